//! `yatai import` from a Yatai 1.x installation (its PostgreSQL schema and rows as the Go server
//! writes them, archives in its bucket layout): a dry run writes nothing, the import brings
//! everything over, the legacy API token pulls the legacy archives byte-identical, a second run
//! changes nothing, and an interrupted run resumes.

use futures::stream;
use yatai_ops::import::{connect_legacy, import, ImportOptions, ImportSummary};
use yatai_ops::util::quiet;
use yatai_store::ObjectStorage;
use yatai_testkit::dump::{dump_database, dump_objects, Cell};
use yatai_testkit::install::{archive, Installation};
use yatai_testkit::yatai1::{legacy_database, legacy_key, DELETED_TOKEN, LEGACY_TOKEN};

struct Legacy {
    url: String,
    bucket: ObjectStorage,
    archives: Vec<(&'static str, &'static str, &'static str, Vec<u8>)>,
}

async fn legacy() -> Legacy {
    let archives = vec![
        ("model", "iris_clf", "v1", archive(7, 300 * 1024)),
        ("bento", "iris", "b1", archive(8, 40 * 1024)),
    ];
    let refs: Vec<(&str, &str, &str, &[u8])> = archives
        .iter()
        .map(|(k, r, v, b)| (*k, *r, *v, b.as_slice()))
        .collect();
    let url = legacy_database(&refs).await;
    let s3 = yatai_testkit::fresh_s3_bucket().await;
    let bucket = ObjectStorage::open(&yatai_store::ObjectStorageConfig::S3(s3))
        .await
        .unwrap();
    for (kind, repo, version, bytes) in &archives {
        bucket
            .put_stream(
                &legacy_key(kind, "default", repo, version),
                stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(bytes.clone()))]),
            )
            .await
            .unwrap();
    }
    Legacy {
        url,
        bucket,
        archives,
    }
}

async fn run(legacy: &Legacy, target: &Installation, dry_run: bool) -> ImportSummary {
    let pool = connect_legacy(&legacy.url).await.unwrap();
    let db = target.db().await;
    db.migrate().await.unwrap();
    let s = import(
        &pool,
        Some(&legacy.bucket),
        &yatai_ops::import::source_name(&legacy.url),
        &db,
        &target.storage().await,
        &ImportOptions { dry_run },
        quiet(),
    )
    .await
    .expect("import");
    db.close().await;
    pool.close().await;
    s
}

fn assert_counts(s: &ImportSummary) {
    for (what, n) in [
        ("users", 2),
        ("organizations", 1),
        ("members", 2),
        ("api_tokens", 1),
        ("repositories", 2),
        ("versions", 2),
        ("labels", 2),
        ("bento_models", 1),
        ("events", 2),
    ] {
        assert_eq!(s.count(what), n, "{what}: {}", s.describe());
    }
    assert_eq!(s.archives_copied, 2);
    assert!(s.archives_missing.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_installation_is_imported_once_and_its_tokens_pull_its_archives() {
    let legacy = legacy().await;
    let target = Installation::embedded();

    let dry = run(&legacy, &target, true).await;
    assert_counts(&dry);
    assert!(
        dump_database(&target.database_url)
            .await
            .values()
            .all(|rows| rows.is_empty()),
        "a dry run writes no row"
    );
    assert!(
        dump_objects(&target.storage().await).await.is_empty(),
        "nor any object"
    );

    let first = run(&legacy, &target, false).await;
    assert_counts(&first);
    let tables = dump_database(&target.database_url).await;
    let users = &tables["users"];
    assert_eq!(users.len(), 2, "the deleted user stays behind");
    let admin = users
        .iter()
        .find(|u| u["name"] == Cell::Text("admin".into()))
        .unwrap();
    assert_eq!(admin["is_site_admin"], Cell::Int(1));
    assert!(
        matches!(&admin["password_hash"], Cell::Text(h) if h.starts_with("$2a$08$")),
        "the bcrypt hash is kept"
    );
    let dev = users
        .iter()
        .find(|u| u["name"] == Cell::Text("dev".into()))
        .unwrap();
    assert_eq!(
        dev["email"],
        Cell::Text("dev@users.imported.invalid".into())
    );
    let roles: Vec<&Cell> = tables["members"].iter().map(|m| &m["role"]).collect();
    assert!(
        roles.contains(&&Cell::Text("admin".into()))
            && roles.contains(&&Cell::Text("developer".into()))
    );
    assert_eq!(
        tables["api_tokens"][0]["scopes"],
        Cell::Text("api,read_organization,write_organization,read_cluster".into())
    );
    assert_eq!(
        admin["created_at"],
        Cell::Int(1672628645123456),
        "times keep their microseconds"
    );

    // The legacy token pulls the legacy archives, byte for byte; the deleted one does not.
    let server = target.serve(yatai_server::app_of).await;
    for (kind, repo, version, bytes) in &legacy.archives {
        let got = server.download(LEGACY_TOKEN, kind, repo, version).await;
        assert!(
            got.as_ref() == Some(bytes),
            "{kind} {repo}:{version} is served as it was"
        );
        assert!(server
            .download(DELETED_TOKEN, kind, repo, version)
            .await
            .is_none());
    }
    server.stop().await;

    // Idempotent: a second run finds everything there.
    let before = dump_database(&target.database_url).await;
    let objects_before = dump_objects(&target.storage().await).await;
    let again = run(&legacy, &target, false).await;
    assert!(again.new.is_empty(), "{}", again.describe());
    assert_eq!(again.archives_copied, 0);
    // (the server above added pull events and touched the token: compare with what it left)
    assert_eq!(dump_database(&target.database_url).await, before);
    assert_eq!(dump_objects(&target.storage().await).await, objects_before);

    // Resumable: a version whose row never got written (interrupted after or before its
    // archive was copied) is imported on the next run.
    let db = target.db().await;
    sqlx::query("DELETE FROM versions WHERE kind = 'bento'")
        .execute(db.pool())
        .await
        .unwrap();
    db.close().await;
    let resumed = run(&legacy, &target, false).await;
    assert_eq!(resumed.count("versions"), 1, "{}", resumed.describe());
    assert_eq!(resumed.count("bento_models"), 1, "{}", resumed.describe());
    assert_eq!(dump_database(&target.database_url).await, before);
    assert_eq!(dump_objects(&target.storage().await).await, objects_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_archive_is_reported_and_a_foreign_target_refused() {
    let legacy = legacy().await;
    legacy
        .bucket
        .delete(&legacy_key("bento", "default", "iris", "b1"))
        .await
        .unwrap();
    let target = Installation::production().await;
    let s = run(&legacy, &target, false).await;
    assert_eq!(s.archives_copied, 1);
    assert_eq!(s.archives_missing, vec!["bento iris:b1".to_string()]);
    let tables = dump_database(&target.database_url).await;
    let bento = tables["versions"]
        .iter()
        .find(|v| v["kind"] == Cell::Text("bento".into()))
        .unwrap();
    assert_eq!(bento["upload_status"], Cell::Text("failed".into()));
    assert_eq!(bento["object_key"], Cell::Null);

    // An installation with its own data is not an import target.
    let other = Installation::embedded();
    let server = other.serve(yatai_server::app_of).await;
    server.setup_admin().await;
    server.stop().await;
    let pool = connect_legacy(&legacy.url).await.unwrap();
    let db = other.db().await;
    let err = import(
        &pool,
        Some(&legacy.bucket),
        "x",
        &db,
        &other.storage().await,
        &ImportOptions::default(),
        quiet(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_records_and_their_labels_stay_behind_and_archives_are_keyed_here() {
    let legacy = legacy().await;
    // A deleted bento (uploaded, but its archive is gone with it) with a label of its own.
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&legacy.url)
        .await
        .unwrap();
    sqlx::raw_sql(
        "INSERT INTO bento (uid, version, bento_repository_id, upload_status, creator_id, deleted_at) \
         SELECT 'deletedbento0000000000000', 'b0', r.id, 'success', 1, now() FROM bento_repository r WHERE r.name = 'iris'; \
         INSERT INTO label (uid, resource_type, resource_id, key, value, creator_id, organization_id) \
         SELECT 'deletedlabel0000000000000', 'bento', b.id, 'stage', 'old', 1, 1 FROM bento b WHERE b.version = 'b0';",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::Connection::close(conn).await.unwrap();

    let target = Installation::production().await;
    let s = run(&legacy, &target, false).await;
    assert_counts(&s);
    let tables = dump_database(&target.database_url).await;
    let text = |row: &std::collections::BTreeMap<String, Cell>, col: &str| match &row[col] {
        Cell::Text(s) => s.clone(),
        other => panic!("{col} is {other:?}"),
    };
    assert!(
        tables["versions"]
            .iter()
            .all(|v| text(v, "version") != "b0"),
        "the deleted bento is not imported"
    );
    assert!(
        tables["labels"]
            .iter()
            .all(|l| text(l, "label_value") != "old"),
        "nor its label"
    );

    // Each archive is kept under <kind>s/<organization uid>/<repo>/<version>/<version uid>,
    // with its size and SHA-256; the token is kept as its SHA-256.
    let org = text(&tables["organizations"][0], "uid");
    for (kind, repo, version, bytes) in &legacy.archives {
        let v = tables["versions"]
            .iter()
            .find(|v| text(v, "version") == *version)
            .unwrap();
        assert_eq!(
            text(v, "object_key"),
            format!("{kind}s/{org}/{repo}/{version}/{}", text(v, "uid"))
        );
        assert_eq!(v["archive_size"], Cell::Int(bytes.len() as i64));
        assert_eq!(text(v, "archive_sha256"), sha256_hex(bytes));
    }
    assert_eq!(
        text(&tables["api_tokens"][0], "token_hash"),
        sha256_hex(LEGACY_TOKEN.as_bytes())
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
