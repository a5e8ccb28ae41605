-- Browser login of the BentoML CLI: a short-lived code that a logged-in user authorizes in the
-- dashboard; the CLI then collects the API token made for it, once.
CREATE TABLE cli_login_codes (
    code_hash TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    user_uid TEXT REFERENCES users (uid) ON DELETE CASCADE,
    token_secret TEXT
);
