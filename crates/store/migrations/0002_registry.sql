-- The registry: bento and model repositories and their versions (one table each, told apart by
-- `kind`, since both follow the same life cycle), labels, the bento -> model relation, events.

CREATE TABLE repositories (
    uid TEXT PRIMARY KEY,
    organization_uid TEXT NOT NULL REFERENCES organizations (uid) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    creator_uid TEXT REFERENCES users (uid) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT,
    UNIQUE (organization_uid, kind, name)
);

CREATE TABLE versions (
    uid TEXT PRIMARY KEY,
    repository_uid TEXT NOT NULL REFERENCES repositories (uid) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    version TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    manifest TEXT NOT NULL,
    build_at BIGINT NOT NULL,
    upload_status TEXT NOT NULL,
    upload_finished_reason TEXT NOT NULL DEFAULT '',
    upload_started_at BIGINT,
    upload_finished_at BIGINT,
    image_build_status TEXT NOT NULL DEFAULT 'pending',
    -- The archive currently served, and the one being uploaded (each upload writes a fresh key).
    object_key TEXT,
    pending_object_key TEXT,
    upload_id TEXT,
    archive_size BIGINT,
    archive_sha256 TEXT,
    creator_uid TEXT REFERENCES users (uid) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT,
    UNIQUE (repository_uid, version)
);
CREATE INDEX versions_by_repository_build ON versions (repository_uid, build_at);

CREATE TABLE labels (
    resource_uid TEXT NOT NULL,
    organization_uid TEXT NOT NULL REFERENCES organizations (uid) ON DELETE CASCADE,
    label_key TEXT NOT NULL,
    label_value TEXT NOT NULL,
    PRIMARY KEY (resource_uid, label_key)
);
CREATE INDEX labels_by_key_value ON labels (organization_uid, label_key, label_value);

-- Which models (by tag) a bento version uses, from its manifest; the model need not be pushed yet.
CREATE TABLE bento_models (
    bento_uid TEXT NOT NULL REFERENCES versions (uid) ON DELETE CASCADE,
    organization_uid TEXT NOT NULL,
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    PRIMARY KEY (bento_uid, model_name, model_version)
);
CREATE INDEX bento_models_by_model ON bento_models (organization_uid, model_name, model_version);

CREATE TABLE events (
    uid TEXT PRIMARY KEY,
    organization_uid TEXT NOT NULL REFERENCES organizations (uid) ON DELETE CASCADE,
    user_uid TEXT,
    user_name TEXT NOT NULL DEFAULT '',
    api_token_name TEXT NOT NULL DEFAULT '',
    resource_type TEXT NOT NULL,
    resource_name TEXT NOT NULL,
    operation_name TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'success',
    created_at BIGINT NOT NULL
);
CREATE INDEX events_by_org_time ON events (organization_uid, created_at);
