-- One running upload per version, enforced by the database: the check before an upload starts
-- and its insert are two statements, and two pushes that passed the check at the same moment
-- both started uploading (seen with two clients sharing a token). The second insert now fails
-- and that push is told that it lost.
-- Versions that already have several running uploads keep the newest; the others are ended.
UPDATE uploads SET status = 'failed', reason = 'ended: another upload of this version was running', finished_at = active_at
WHERE status = 'uploading'
  AND EXISTS (SELECT 1 FROM uploads o
              WHERE o.version_uid = uploads.version_uid AND o.status = 'uploading'
                AND (o.created_at > uploads.created_at OR (o.created_at = uploads.created_at AND o.uid > uploads.uid)));
CREATE UNIQUE INDEX uploads_one_running ON uploads (version_uid) WHERE status = 'uploading';
