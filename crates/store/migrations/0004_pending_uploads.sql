-- Uploads in progress, one row per upload (presigned single or multipart): several clients may
-- push the same version at once, each into its own object, and none may lose track of another's.
CREATE TABLE pending_uploads (
    object_key TEXT PRIMARY KEY,
    version_uid TEXT NOT NULL REFERENCES versions (uid) ON DELETE CASCADE,
    upload_id TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX pending_uploads_by_version ON pending_uploads (version_uid, created_at);
