-- Identity: users, organizations, members, API tokens, browser sessions, settings.
-- Portable SQL: the same file runs on SQLite and PostgreSQL. Times are microseconds since the epoch;
-- flags are BIGINT 0/1 (sqlx's Any driver decodes no SQLite boolean).

CREATE TABLE users (
    uid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL UNIQUE,
    first_name TEXT NOT NULL DEFAULT '',
    last_name TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    is_site_admin BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT
);

CREATE TABLE organizations (
    uid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    creator_uid TEXT REFERENCES users (uid),
    created_at BIGINT NOT NULL,
    updated_at BIGINT
);

CREATE TABLE members (
    organization_uid TEXT NOT NULL REFERENCES organizations (uid) ON DELETE CASCADE,
    user_uid TEXT NOT NULL REFERENCES users (uid) ON DELETE CASCADE,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT,
    PRIMARY KEY (organization_uid, user_uid)
);
CREATE INDEX members_by_user ON members (user_uid);

CREATE TABLE api_tokens (
    uid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    organization_uid TEXT NOT NULL REFERENCES organizations (uid) ON DELETE CASCADE,
    user_uid TEXT NOT NULL REFERENCES users (uid) ON DELETE CASCADE,
    scopes TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    expired_at BIGINT,
    last_used_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT,
    UNIQUE (organization_uid, user_uid, name)
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_uid TEXT NOT NULL REFERENCES users (uid) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
