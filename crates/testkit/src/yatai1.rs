//! A Yatai 1.x (Go) installation for import tests: a PostgreSQL database with the tables of
//! Yatai 1.x as its migrations 000001–000006 leave them (the tables `yatai import` reads, with
//! their columns, types, enums and constraints; written from the published schema, not copied),
//! and rows written the way the Go server writes them: xid API tokens stored as they are, JSON
//! scope lists, bcrypt password hashes, uids from `generate_object_id()`-like values, archives
//! at `bentos|models/<org>/<repo>/<version>.tar.gz`.

use sqlx::Connection;

/// The schema of Yatai 1.x (PostgreSQL).
pub const SCHEMA: &str = r#"
CREATE TYPE "user_perm" AS ENUM ('default', 'admin');
CREATE TYPE "member_role" AS ENUM ('guest', 'developer', 'admin');
CREATE TYPE "resource_type" AS ENUM ('user', 'organization', 'cluster', 'bento_repository', 'bento', 'deployment', 'deployment_revision', 'model_repository', 'model', 'api_token', 'terminal_record', 'yatai_component');
CREATE TYPE "event_status" AS ENUM ('pending', 'success', 'failed');
CREATE TYPE "bento_upload_status" AS ENUM ('pending', 'uploading', 'success', 'failed');
CREATE TYPE "bento_image_build_status" AS ENUM ('pending', 'building', 'success', 'failed');
CREATE TYPE "model_upload_status" AS ENUM ('pending', 'uploading', 'success', 'failed');
CREATE TYPE "model_image_build_status" AS ENUM ('pending', 'building', 'success', 'failed');
CREATE TABLE "user" (id SERIAL PRIMARY KEY, uid VARCHAR(32) UNIQUE NOT NULL, perm user_perm NOT NULL DEFAULT 'default',
  name VARCHAR(128) UNIQUE NOT NULL, first_name VARCHAR(128) NOT NULL, last_name VARCHAR(128) NOT NULL, email VARCHAR(256) UNIQUE DEFAULT NULL,
  password VARCHAR(1024) NOT NULL, config TEXT DEFAULT '{}', is_email_verified BOOLEAN NOT NULL DEFAULT false,
  created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP WITH TIME ZONE, deleted_at TIMESTAMP WITH TIME ZONE);
CREATE TABLE "organization" (id SERIAL PRIMARY KEY, uid VARCHAR(32) UNIQUE NOT NULL, name VARCHAR(128) UNIQUE NOT NULL, description TEXT,
  config TEXT DEFAULT '{}', creator_id INTEGER NOT NULL REFERENCES "user"("id") ON DELETE CASCADE,
  created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP WITH TIME ZONE, deleted_at TIMESTAMP WITH TIME ZONE);
CREATE TABLE "api_token" (id SERIAL PRIMARY KEY, uid VARCHAR(32) UNIQUE NOT NULL, name VARCHAR(128) NOT NULL, description TEXT,
  token VARCHAR(256) UNIQUE NOT NULL, scopes TEXT, organization_id INTEGER NOT NULL REFERENCES "organization"("id") ON DELETE CASCADE,
  user_id INTEGER NOT NULL REFERENCES "user"("id") ON DELETE CASCADE, last_used_at TIMESTAMP WITH TIME ZONE DEFAULT NULL,
  expired_at TIMESTAMP WITH TIME ZONE DEFAULT NULL, created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP WITH TIME ZONE, deleted_at TIMESTAMP WITH TIME ZONE);
CREATE TABLE "user_group" (id SERIAL PRIMARY KEY, uid VARCHAR(32) UNIQUE NOT NULL, name VARCHAR(128) NOT NULL,
  organization_id INTEGER NOT NULL REFERENCES "organization"("id") ON DELETE CASCADE, creator_id INTEGER NOT NULL REFERENCES "user"("id") ON DELETE CASCADE,
  created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP WITH TIME ZONE, deleted_at TIMESTAMP WITH TIME ZONE);
CREATE TABLE "organization_member" (id SERIAL PRIMARY KEY, uid VARCHAR(32) UNIQUE NOT NULL,
  organization_id INTEGER NOT NULL REFERENCES "organization"("id") ON DELETE CASCADE, user_group_id INTEGER REFERENCES "user_group"("id") ON DELETE CASCADE,
  user_id INTEGER REFERENCES "user"("id") ON DELETE CASCADE, role member_role NOT NULL DEFAULT 'guest',
  creator_id INTEGER NOT NULL REFERENCES "user"("id") ON DELETE CASCADE, created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP WITH TIME ZONE, deleted_at TIMESTAMP WITH TIME ZONE);
CREATE TABLE "user_group_user_relation" (id SERIAL PRIMARY KEY, uid VARCHAR(32) UNIQUE NOT NULL,
  user_group_id INTEGER NOT NULL REFERENCES "user_group"("id") ON DELETE CASCADE, user_id INTEGER NOT NULL REFERENCES "user"("id") ON DELETE CASCADE,
  creator_id INTEGER NOT NULL REFERENCES "user"("id") ON DELETE CASCADE, created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP WITH TIME ZONE, deleted_at TIMESTAMP WITH TIME ZONE);
CREATE TABLE "bento_repository" (id SERIAL PRIMARY KEY, uid VARCHAR(32) UNIQUE NOT NULL, name VARCHAR(128) NOT NULL, description TEXT, manifest JSONB,
  organization_id INTEGER NOT NULL REFERENCES "organization"("id") ON DELETE CASCADE, creator_id INTEGER NOT NULL REFERENCES "user"("id") ON DELETE CASCADE,
  created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP WITH TIME ZONE, deleted_at TIMESTAMP WITH TIME ZONE);
CREATE TABLE "bento" (id SERIAL PRIMARY KEY, uid VARCHAR(32) UNIQUE NOT NULL, version VARCHAR(512) NOT NULL, description TEXT, manifest JSONB, file_path TEXT,
  bento_repository_id INTEGER NOT NULL REFERENCES "bento_repository"("id") ON DELETE CASCADE,
  upload_status bento_upload_status NOT NULL DEFAULT 'pending', image_build_status bento_image_build_status NOT NULL DEFAULT 'pending',
  image_build_status_syncing_at TIMESTAMP WITH TIME ZONE DEFAULT NULL, image_build_status_updated_at TIMESTAMP WITH TIME ZONE DEFAULT NULL,
  upload_started_at TIMESTAMP WITH TIME ZONE DEFAULT NULL, upload_finished_at TIMESTAMP WITH TIME ZONE DEFAULT NULL, upload_finished_reason TEXT,
  creator_id INTEGER NOT NULL REFERENCES "user"("id") ON DELETE CASCADE, build_at TIMESTAMP WITH TIME ZONE,
  created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP WITH TIME ZONE, deleted_at TIMESTAMP WITH TIME ZONE);
CREATE TABLE "model_repository" (id SERIAL PRIMARY KEY, uid VARCHAR(32) UNIQUE NOT NULL, name VARCHAR(128) NOT NULL, description TEXT, manifest JSONB,
  organization_id INTEGER NOT NULL REFERENCES "organization"("id") ON DELETE CASCADE, creator_id INTEGER NOT NULL REFERENCES "user"("id") ON DELETE CASCADE,
  created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP WITH TIME ZONE, deleted_at TIMESTAMP WITH TIME ZONE);
CREATE TABLE "model" (id SERIAL PRIMARY KEY, uid VARCHAR(32) UNIQUE NOT NULL, version VARCHAR(512) NOT NULL, description TEXT, manifest JSONB,
  model_repository_id INTEGER NOT NULL REFERENCES "model_repository"("id") ON DELETE CASCADE,
  upload_status model_upload_status NOT NULL DEFAULT 'pending', image_build_status model_image_build_status NOT NULL DEFAULT 'pending',
  image_build_status_syncing_at TIMESTAMP WITH TIME ZONE DEFAULT NULL, image_build_status_updated_at TIMESTAMP WITH TIME ZONE DEFAULT NULL,
  upload_started_at TIMESTAMP WITH TIME ZONE DEFAULT NULL, upload_finished_at TIMESTAMP WITH TIME ZONE DEFAULT NULL, upload_finished_reason TEXT,
  creator_id INTEGER NOT NULL REFERENCES "user"("id") ON DELETE CASCADE, build_at TIMESTAMP WITH TIME ZONE,
  created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP, updated_at TIMESTAMP WITH TIME ZONE, deleted_at TIMESTAMP WITH TIME ZONE);
CREATE TABLE "bento_model_rel" (id SERIAL PRIMARY KEY, bento_id INTEGER NOT NULL REFERENCES "bento"("id") ON DELETE CASCADE,
  model_id INTEGER NOT NULL REFERENCES "model"("id") ON DELETE CASCADE, created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP WITH TIME ZONE, deleted_at TIMESTAMP WITH TIME ZONE);
CREATE TABLE "event" (id SERIAL PRIMARY KEY, uid VARCHAR(32) UNIQUE NOT NULL, name VARCHAR(128) NOT NULL, status event_status NOT NULL DEFAULT 'pending',
  organization_id INTEGER REFERENCES "organization"("id") ON DELETE CASCADE, cluster_id INTEGER, resource_type resource_type NOT NULL,
  resource_id INTEGER NOT NULL, operation_name VARCHAR(128) NOT NULL, info TEXT DEFAULT '{}', api_token_name VARCHAR(128) DEFAULT NULL,
  creator_id INTEGER NOT NULL REFERENCES "user"("id") ON DELETE CASCADE, created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP WITH TIME ZONE, deleted_at TIMESTAMP WITH TIME ZONE);
CREATE TABLE "label" (id SERIAL PRIMARY KEY, uid VARCHAR(32) UNIQUE NOT NULL, resource_type resource_type NOT NULL, resource_id INTEGER NOT NULL,
  key VARCHAR(128) NOT NULL, value VARCHAR(1024) NOT NULL, creator_id INTEGER NOT NULL REFERENCES "user"("id") ON DELETE CASCADE,
  organization_id INTEGER REFERENCES "organization"("id") ON DELETE CASCADE, created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at TIMESTAMP WITH TIME ZONE, deleted_at TIMESTAMP WITH TIME ZONE);
"#;

/// The API token of the legacy admin (an xid, as the Go server makes them).
pub const LEGACY_TOKEN: &str = "cnb1a6pl0s8l4l8v3j6g";
/// A token that was deleted in the legacy installation.
pub const DELETED_TOKEN: &str = "cnb1a6pl0s8l4l8v3j7z";

/// Creates a Yatai 1.x database with a few records in it; returns its URL. The archives of
/// `archives` (kind, repo, version, bytes) are described as uploaded; put them in the bucket
/// with [`legacy_key`].
pub async fn legacy_database(archives: &[(&str, &str, &str, &[u8])]) -> String {
    let url = crate::fresh_postgres_database().await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(SCHEMA)
        .execute(&mut conn)
        .await
        .expect("legacy schema");
    let data = format!(
        r#"
INSERT INTO "user" (uid, perm, name, first_name, last_name, email, password, created_at) VALUES
  ('65a1b2c3d4e5f60718293a4b5', 'admin', 'admin', 'Ada', 'Admin', 'admin@legacy.example', '$2a$08$2rD9O6hU6yqOe1lT0pZbBeM0mB8hX2gN3cX9Jm1F7Zk3rT8uV2w1K', '2023-01-02 03:04:05.123456+00'),
  ('65a1b2c3d4e5f60718293a4b6', 'default', 'dev', 'Dev', 'Eloper', NULL, '$2a$08$Pq1mN0bVcXz9Lk8Jh7Gf6uD5sA4qW3eR2tY1uI0oP9lK8jH7gF6dS', '2023-01-03 00:00:00+00'),
  ('65a1b2c3d4e5f60718293a4b7', 'default', 'gone', 'Gone', 'User', 'gone@legacy.example', '$2a$08$xxxxxxxxxxxxxxxxxxxxxu1O6hU6yqOe1lT0pZbBeM0mB8hX2gN3', '2023-01-03 00:00:00+00');
UPDATE "user" SET deleted_at = now() WHERE name = 'gone';
INSERT INTO organization (uid, name, description, creator_id, created_at) VALUES ('65a1b2c3d4e5f60718293a4c0', 'default', 'the default org', 1, '2023-01-02 03:04:06+00');
INSERT INTO user_group (uid, name, organization_id, creator_id) VALUES ('65a1b2c3d4e5f60718293a4c9', 'devs', 1, 1);
INSERT INTO organization_member (uid, organization_id, user_id, role, creator_id) VALUES ('65a1b2c3d4e5f60718293a4c1', 1, 1, 'admin', 1);
INSERT INTO organization_member (uid, organization_id, user_group_id, role, creator_id) VALUES ('65a1b2c3d4e5f60718293a4c2', 1, 1, 'developer', 1);
INSERT INTO user_group_user_relation (uid, user_group_id, user_id, creator_id) VALUES ('65a1b2c3d4e5f60718293a4c3', 1, 2, 1);
INSERT INTO api_token (uid, name, description, token, scopes, organization_id, user_id, last_used_at, created_at) VALUES
  ('65a1b2c3d4e5f60718293a4d0', 'cli', 'bentoml cloud login', '{LEGACY_TOKEN}', '["api","read_organization","write_organization","read_cluster"]', 1, 1, '2023-05-01 00:00:00+00', '2023-01-04 00:00:00+00'),
  ('65a1b2c3d4e5f60718293a4d1', 'old', NULL, '{DELETED_TOKEN}', '["api"]', 1, 1, NULL, '2023-01-04 00:00:00+00');
UPDATE api_token SET deleted_at = now() WHERE name = 'old';
"#
    );
    sqlx::raw_sql(&data)
        .execute(&mut conn)
        .await
        .expect("legacy data");
    let mut n = 0;
    for (kind, repo, version, _) in archives {
        n += 1;
        sqlx::query(&format!(
            "INSERT INTO {kind}_repository (uid, name, description, organization_id, creator_id) SELECT $1, $2, 'legacy repo', 1, 1 \
             WHERE NOT EXISTS (SELECT 1 FROM {kind}_repository WHERE name = $2)"
        ))
        .bind(format!("65a1b2c3d4e5f60718293a5{n:02}"))
        .bind(repo)
        .execute(&mut conn)
        .await
        .unwrap();
        let manifest = if *kind == "bento" {
            r#"{"service": "service:svc", "bentoml_version": "1.0.20", "size_bytes": 100, "apis": {}, "models": ["iris_clf:v1"]}"#
        } else {
            r#"{"module": "bentoml.sklearn", "api_version": "v1", "bentoml_version": "1.0.20", "size_bytes": 100, "metadata": {}, "context": {}, "options": {}}"#
        };
        sqlx::query(&format!(
            "INSERT INTO {kind} (uid, version, description, manifest, {kind}_repository_id, upload_status, image_build_status, \
             upload_started_at, upload_finished_at, creator_id, build_at, created_at) \
             SELECT $1, $2, 'legacy', $3::jsonb, r.id, 'success', 'pending', '2023-02-01 00:00:00+00', '2023-02-01 00:00:01+00', 1, \
             '2023-01-31 12:30:34.554117+00', '2023-02-01 00:00:00+00' FROM {kind}_repository r WHERE r.name = $4"
        ))
        .bind(format!("65a1b2c3d4e5f60718293a6{n:02}"))
        .bind(version)
        .bind(manifest)
        .bind(repo)
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query(&format!(
            "INSERT INTO label (uid, resource_type, resource_id, key, value, creator_id, organization_id) \
             SELECT $1, '{kind}', v.id, 'stage', 'prod', 1, 1 FROM {kind} v WHERE v.version = $2"
        ))
        .bind(format!("65a1b2c3d4e5f60718293a7{n:02}"))
        .bind(version)
        .execute(&mut conn)
        .await
        .unwrap();
        sqlx::query(&format!(
            "INSERT INTO event (uid, name, status, organization_id, resource_type, resource_id, operation_name, api_token_name, creator_id) \
             SELECT $1, 'push', 'success', 1, '{kind}', v.id, 'push', 'cli', 1 FROM {kind} v WHERE v.version = $2"
        ))
        .bind(format!("65a1b2c3d4e5f60718293a8{n:02}"))
        .bind(version)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    sqlx::raw_sql(
        "INSERT INTO bento_model_rel (bento_id, model_id) SELECT b.id, m.id FROM bento b, model m LIMIT 1;",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.ok();
    url
}

/// Where Yatai 1.x keeps the archive of a version.
pub fn legacy_key(kind: &str, org: &str, repo: &str, version: &str) -> String {
    format!("{kind}s/{org}/{repo}/{version}.tar.gz")
}
