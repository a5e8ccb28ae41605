//! `seed-yatai1 SPEC.json`: builds a Yatai 1.x (Go) installation for the end-to-end tests of
//! `yatai import` (tests/e2e/test_operations.py), reusing [`yatai_testkit::yatai1`] so that the
//! legacy schema and the way the Go server writes its rows exist only once.
//!
//! It creates a fresh PostgreSQL database (on `YATAI_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) holding the Yatai 1.x schema and records (users
//! with bcrypt hashes, the `default` organization, the xid API tokens, ...), describes each
//! archive of the spec as an uploaded version with the manifest the spec gives (what the Go server
//! stored for the client's push), and puts the archive's bytes, unchanged, into a fresh bucket on
//! the S3 test server (`YATAI_TEST_S3_ENDPOINT`, default `http://127.0.0.1:5055`) under the Yatai
//! 1.x key `bentos|models/<org>/<repo>/<version>.tar.gz`.
//!
//! The spec: `{"archives": [{"kind": "bento"|"model", "repo": NAME, "version": VERSION,
//! "path": FILE, "manifest": {...}}], "organization": NAME}`; `organization` (optional) renames
//! the fixture's `default` organization, as a Yatai 1.x admin may have.
//!
//! Prints one JSON object on stdout: `database_url`, `s3` (`endpoint`, `bucket`, `access_key`,
//! `secret_key`, `region`), `organization`, `token` (a live legacy API token), `deleted_token`
//! (one deleted in the legacy installation) and `objects` (`kind`, `repo`, `version`, `key`,
//! `size`, `sha256` of every archive put in the bucket).

use axum::body::Bytes;
use serde_json::{json, Value};
use sqlx::Connection;
use yatai_store::{ObjectStorage, ObjectStorageConfig};
use yatai_testkit::yatai1::{legacy_database, legacy_key, DELETED_TOKEN, LEGACY_TOKEN};

/// The organization the legacy fixture creates.
const FIXTURE_ORGANIZATION: &str = "default";

struct Archive {
    kind: String,
    repo: String,
    version: String,
    bytes: Vec<u8>,
    manifest: Value,
}

fn fail(message: String) -> ! {
    eprintln!("seed-yatai1: error: {message}");
    std::process::exit(1);
}

fn text(entry: &Value, field: &str) -> String {
    entry[field]
        .as_str()
        .unwrap_or_else(|| {
            fail(format!(
                "spec: an archive lacks the text field {field:?}: {entry}"
            ))
        })
        .to_string()
}

fn read_spec(path: &str) -> (Vec<Archive>, String) {
    let raw = std::fs::read_to_string(path)
        .unwrap_or_else(|e| fail(format!("cannot read the spec {path}: {e}")));
    let spec: Value = serde_json::from_str(&raw)
        .unwrap_or_else(|e| fail(format!("the spec {path} is not JSON: {e}")));
    let organization = match &spec["organization"] {
        Value::Null => FIXTURE_ORGANIZATION.to_string(),
        Value::String(name) => name.clone(),
        other => fail(format!("spec: organization must be a name, not {other}")),
    };
    let entries = spec["archives"]
        .as_array()
        .unwrap_or_else(|| fail(format!("the spec {path} has no \"archives\" list")));
    let archives = entries
        .iter()
        .map(|entry| {
            let kind = text(entry, "kind");
            if kind != "bento" && kind != "model" {
                fail(format!("spec: kind must be bento or model, not {kind:?}"));
            }
            let file = text(entry, "path");
            let bytes = std::fs::read(&file)
                .unwrap_or_else(|e| fail(format!("cannot read the archive {file}: {e}")));
            let manifest = entry["manifest"].clone();
            if !manifest.is_object() {
                fail(format!("spec: the manifest of {file} is not an object"));
            }
            Archive {
                kind,
                repo: text(entry, "repo"),
                version: text(entry, "version"),
                bytes,
                manifest,
            }
        })
        .collect();
    (archives, organization)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 2 || args[1].starts_with('-') {
        eprintln!("usage: seed-yatai1 SPEC.json   (see the source for the spec and the output)");
        std::process::exit(2);
    }
    let (archives, organization) = read_spec(&args[1]);

    // The database: schema, records, and a version row per archive (the fixture's own rows).
    let refs: Vec<(&str, &str, &str, &[u8])> = archives
        .iter()
        .map(|a| {
            (
                a.kind.as_str(),
                a.repo.as_str(),
                a.version.as_str(),
                a.bytes.as_slice(),
            )
        })
        .collect();
    let database_url = legacy_database(&refs).await;

    // The manifest the Go server stored for the client's push (the fixture writes a stand-in).
    let mut conn = sqlx::PgConnection::connect(&database_url)
        .await
        .unwrap_or_else(|e| fail(format!("cannot reconnect to {database_url}: {e}")));
    if organization != FIXTURE_ORGANIZATION {
        sqlx::query("UPDATE organization SET name = $1 WHERE name = $2")
            .bind(&organization)
            .bind(FIXTURE_ORGANIZATION)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| fail(format!("cannot rename the organization: {e}")));
    }
    for a in &archives {
        let kind = &a.kind;
        let updated = sqlx::query(&format!(
            "UPDATE {kind} SET manifest = $1::jsonb WHERE version = $2 AND {kind}_repository_id = \
             (SELECT id FROM {kind}_repository WHERE name = $3)"
        ))
        .bind(a.manifest.to_string())
        .bind(&a.version)
        .bind(&a.repo)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| {
            fail(format!(
                "cannot store the manifest of {kind} {}: {e}",
                a.repo
            ))
        });
        if updated.rows_affected() != 1 {
            fail(format!(
                "the fixture made {} rows for {kind} {}:{}",
                updated.rows_affected(),
                a.repo,
                a.version
            ));
        }
    }
    conn.close().await.ok();

    // The bucket, in the Yatai 1.x layout.
    let s3 = yatai_testkit::fresh_s3_bucket().await;
    let bucket = ObjectStorage::open(&ObjectStorageConfig::S3(s3.clone()))
        .await
        .unwrap_or_else(|e| fail(format!("cannot open the bucket {}: {e}", s3.bucket)));
    let mut objects = Vec::new();
    for a in &archives {
        let key = legacy_key(&a.kind, &organization, &a.repo, &a.version);
        let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(a.bytes.clone()))]);
        let stored = bucket
            .put_stream(&key, body)
            .await
            .unwrap_or_else(|e| fail(format!("cannot put {key}: {e}")));
        objects.push(json!({
            "kind": a.kind,
            "repo": a.repo,
            "version": a.version,
            "key": key,
            "size": stored.size,
            "sha256": stored.sha256,
        }));
    }

    let out = json!({
        "database_url": database_url,
        "s3": {
            "endpoint": s3.endpoint,
            "bucket": s3.bucket,
            "access_key": s3.access_key,
            "secret_key": s3.secret_key,
            "region": s3.region,
        },
        "organization": organization,
        "token": LEGACY_TOKEN,
        "deleted_token": DELETED_TOKEN,
        "objects": objects,
    });
    println!("{out}");
}
