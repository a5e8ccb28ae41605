-- Every upload of a version, whatever its path (proxy, presigned single PUT, presigned multipart),
-- from its start to its end. Each upload writes its own object; its outcome and the reason of a
-- failure are recorded here, not on the version, so that a failed or interrupted re-push never
-- touches the archive being served. Uploads that stop showing signs of life are found here and
-- cleaned up (objects, staging files, multipart uploads).
CREATE TABLE uploads (
    uid TEXT PRIMARY KEY,
    version_uid TEXT NOT NULL REFERENCES versions (uid) ON DELETE CASCADE,
    -- proxy | single | multipart
    transfer TEXT NOT NULL,
    object_key TEXT NOT NULL UNIQUE,
    -- The multipart upload id (S3's, or the server's own on the local backend).
    upload_id TEXT,
    -- uploading | committed | failed
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    -- The manifest of the push this upload belongs to: served together with its archive.
    manifest TEXT NOT NULL,
    -- The archive served when the upload started: its commit wins only if that one is still
    -- served (among concurrent pushes the first to finish wins, the others are told they lost).
    base_object_key TEXT,
    creator_uid TEXT REFERENCES users (uid) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    -- The last sign of life: bytes received, a part presigned.
    active_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX uploads_by_version ON uploads (version_uid, created_at);
CREATE INDEX uploads_by_status ON uploads (status, active_at);

INSERT INTO uploads (uid, version_uid, transfer, object_key, upload_id, status, reason, manifest,
                     base_object_key, creator_uid, created_at, active_at, finished_at)
SELECT p.object_key, p.version_uid, CASE WHEN p.upload_id IS NULL THEN 'single' ELSE 'multipart' END,
       p.object_key, p.upload_id, 'uploading', '', v.manifest, v.object_key, NULL, p.created_at,
       p.created_at, NULL
FROM pending_uploads p JOIN versions v ON v.uid = p.version_uid;

DROP TABLE pending_uploads;

-- A push that replaces a served archive proposes its manifest here; it becomes the version's
-- manifest only with that push's archive, so a failed re-push leaves the version as it was.
ALTER TABLE versions ADD COLUMN push_manifest TEXT;
-- When a push last wrote the manifest: for a short while no other push may (it would pair its
-- manifest with the first push's archive); the second push is told that it lost.
ALTER TABLE versions ADD COLUMN push_claimed_at BIGINT;
-- Who claimed it: the credentials and the connection of that push (its later requests may write
-- the manifest again; a concurrent push from another connection may not).
ALTER TABLE versions ADD COLUMN push_claim_holder TEXT;
ALTER TABLE versions DROP COLUMN pending_object_key;
ALTER TABLE versions DROP COLUMN upload_id;

-- Versions that a failed re-push marked failed (or uploading) although their archive was still
-- stored serve it again.
UPDATE versions SET upload_status = 'success' WHERE object_key IS NOT NULL AND upload_status <> 'success';
