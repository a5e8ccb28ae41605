//! Backup and restore on both backend pairs and across them, compared with an independent dump
//! (every row of every table by primary key, every object's bytes), and a server started on the
//! restored installation serving what was pushed before the backup to the token made before it.
//! Corrupted, truncated and foreign archives and non-empty targets are refused, target untouched.

use std::path::{Path, PathBuf};

use yatai_ops::backup::backup;
use yatai_ops::restore::{restore, RestoreOptions};
use yatai_ops::util::quiet;
use yatai_testkit::dump::{dump_database, dump_objects};
use yatai_testkit::install::{seed, Installation, Pair, Seeded};

async fn seeded(pair: Pair) -> (Installation, Seeded) {
    let inst = Installation::of(pair).await;
    let server = inst.serve(yatai_server::app_of).await;
    let seeded = seed(&server).await;
    server.stop().await;
    (inst, seeded)
}

async fn backup_of(inst: &Installation, file: &Path) -> yatai_ops::backup::BackupSummary {
    let db = inst.db().await;
    let summary = backup(&db, &inst.storage().await, file, quiet())
        .await
        .expect("backup");
    db.close().await;
    summary
}

async fn restore_into(inst: &Installation, file: &Path, force: bool) -> anyhow::Result<()> {
    let db = inst.db().await;
    let result = restore(
        file,
        &db,
        &inst.storage().await,
        &RestoreOptions { force },
        quiet(),
    )
    .await
    .map(|_| ());
    db.close().await;
    result
}

/// Asserts two installations hold the same rows and objects.
async fn assert_identical(a: &Installation, b: &Installation) {
    let (da, db) = (
        dump_database(&a.database_url).await,
        dump_database(&b.database_url).await,
    );
    assert!(
        da.values().map(|rows| rows.len()).sum::<usize>() > 10,
        "the source has data"
    );
    assert_eq!(
        da.keys().collect::<Vec<_>>(),
        db.keys().collect::<Vec<_>>(),
        "same tables"
    );
    for (table, rows) in &da {
        assert_eq!(rows, &db[table], "table {table} differs");
    }
    let (oa, ob) = (
        dump_objects(&a.storage().await).await,
        dump_objects(&b.storage().await).await,
    );
    assert!(!oa.is_empty());
    assert_eq!(oa, ob, "objects differ");
}

/// Starts a server on the restored installation and pulls everything with the old token.
async fn assert_serves(inst: &Installation, seeded: &Seeded) {
    let server = inst.serve(yatai_server::app_of).await;
    assert_counts_made(inst).await;
    for (kind, repo, version, bytes) in &seeded.pushed {
        let got = server
            .download(&seeded.token, kind, repo, version)
            .await
            .unwrap_or_else(|| panic!("{kind} {repo}:{version} is not served"));
        assert!(
            got == *bytes,
            "{kind} {repo}:{version} differs after restore"
        );
    }
    assert!(
        server
            .download(&seeded.token, "model", "clf", "never-uploaded")
            .await
            .is_none(),
        "a version never uploaded stays without archive"
    );
    server.stop().await;
}

/// Asserts that the counts the server keeps from the data (left out of backups) are those of
/// the restored rows once a server started on them.
async fn assert_counts_made(inst: &Installation) {
    let db = inst.db().await;
    let kept: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT repository_uid, n FROM {} WHERE n <> 0 ORDER BY repository_uid",
        yatai_store::db::counts::VERSIONS
    ))
    .fetch_all(db.pool())
    .await
    .expect("the counts are made at the start");
    let counted: Vec<(String, i64)> = sqlx::query_as(
        "SELECT repository_uid, COUNT(*) FROM versions GROUP BY repository_uid ORDER BY repository_uid",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert!(!counted.is_empty(), "the restore has versions");
    assert_eq!(kept, counted, "counts of versions after the restore");
    db.close().await;
}

async fn round_trip(from: Pair, to: Pair, file_name: &str) {
    let (source, seeded) = seeded(from).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(file_name);
    let summary = backup_of(&source, &file).await;
    assert_eq!(summary.manifest.objects.len(), seeded.pushed.len());
    assert!(summary
        .manifest
        .tables
        .iter()
        .any(|t| t.table.name == "versions" && t.rows == 6));
    let target = Installation::of(to).await;
    restore_into(&target, &file, false).await.expect("restore");
    assert_identical(&source, &target).await;
    assert_serves(&target, &seeded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_sqlite_and_directory() {
    round_trip(Pair::Embedded, Pair::Embedded, "b.tar").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_postgres_and_s3() {
    round_trip(Pair::Production, Pair::Production, "b.tar.gz").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_directory_to_postgres_and_s3_and_back() {
    let (source, seeded) = seeded(Pair::Embedded).await;
    let dir = tempfile::tempdir().unwrap();
    let there = dir.path().join("there.tar");
    backup_of(&source, &there).await;
    let middle = Installation::production().await;
    restore_into(&middle, &there, false)
        .await
        .expect("restore into PostgreSQL + S3");
    assert_identical(&source, &middle).await;
    // Back up before serving: downloads add events.
    let back = dir.path().join("back.tgz");
    backup_of(&middle, &back).await;
    assert_serves(&middle, &seeded).await;

    let end = Installation::embedded();
    restore_into(&end, &back, false)
        .await
        .expect("restore into SQLite + directory");
    assert_identical(&source, &end).await;
    assert_serves(&end, &seeded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_s3_to_sqlite_and_directory() {
    round_trip(Pair::Production, Pair::Embedded, "b.tar").await;
}

/// The target holds nothing at all: no schema, no rows, no objects.
async fn assert_untouched(target: &Installation) {
    let tables = dump_database(&target.database_url).await;
    assert!(
        tables.is_empty(),
        "the target database was written: {:?}",
        tables.keys()
    );
    let db = target.db().await;
    let migrations = sqlx::query("SELECT 1 FROM _sqlx_migrations")
        .fetch_all(db.pool())
        .await;
    assert!(migrations.is_err(), "the target schema was migrated");
    db.close().await;
    assert!(
        dump_objects(&target.storage().await).await.is_empty(),
        "objects were written"
    );
}

fn flip(file: &Path, at: usize, out: &Path) {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(out, bytes).unwrap();
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{:?} not in the archive", String::from_utf8_lossy(needle)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_corrupted_byte_anywhere_is_refused_and_the_target_stays_untouched() {
    let (source, _) = seeded(Pair::Embedded).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.tar");
    backup_of(&source, &file).await;
    let bytes = std::fs::read(&file).unwrap();
    let bad = dir.path().join("bad.tar");
    let places = [
        (
            "a row of the users table",
            find(&bytes, b"admin@example.com") + 2,
        ),
        (
            "the header of a table file",
            find(&bytes, b"tables/users.jsonl") + 1,
        ),
        ("the middle of the biggest object", bytes.len() / 2),
        ("the manifest", find(&bytes, b"\"schema_version\"") + 3),
        ("a size in the manifest", find(&bytes, b"\"size\": ") + 9),
    ];
    for (what, at) in places {
        flip(&file, at, &bad);
        let target = Installation::embedded();
        let err = restore_into(&target, &bad, false)
            .await
            .expect_err(&format!("a flipped byte in {what} must be refused"))
            .to_string();
        assert!(
            err.contains("corrupted") || err.contains("not a Yatai backup"),
            "{what}: {err}"
        );
        assert_untouched(&target).await;
    }
    // The same against PostgreSQL + S3, for a byte of an object.
    flip(&file, bytes.len() / 3, &bad);
    let target = Installation::production().await;
    let err = restore_into(&target, &bad, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("SHA-256") || err.contains("corrupted"),
        "{err}"
    );
    assert_untouched(&target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_archive_is_refused_and_the_target_stays_untouched() {
    let (source, _) = seeded(Pair::Embedded).await;
    let dir = tempfile::tempdir().unwrap();
    for name in ["b.tar", "b.tar.gz"] {
        let file = dir.path().join(name);
        backup_of(&source, &file).await;
        let bytes = std::fs::read(&file).unwrap();
        let cut_file = dir.path().join(format!("cut-{name}"));
        for cut in [
            0,
            100,
            512,
            bytes.len() / 2,
            bytes.len() - 1500,
            bytes.len() - 600,
            bytes.len() - 1,
        ] {
            std::fs::write(&cut_file, &bytes[..cut]).unwrap();
            let target = Installation::embedded();
            let err = restore_into(&target, &cut_file, false)
                .await
                .expect_err(&format!(
                    "{name} cut at {cut} of {} must be refused",
                    bytes.len()
                ))
                .to_string();
            assert!(
                err.contains("truncated") || err.contains("corrupted"),
                "{name} cut at {cut}: {err}"
            );
            assert_untouched(&target).await;
        }
    }
    let not_a_backup = dir.path().join("x.tar");
    std::fs::write(&not_a_backup, yatai_testkit::install::archive(1, 1000)).unwrap();
    let target = Installation::embedded();
    assert!(restore_into(&target, &not_a_backup, false).await.is_err());
    assert_untouched(&target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_empty_target_is_refused_unless_forced_and_then_replaced() {
    let (source, seeded_source) = seeded(Pair::Embedded).await;
    let dir = tempfile::tempdir().unwrap();
    let file: PathBuf = dir.path().join("b.tar");
    backup_of(&source, &file).await;

    let (target, _) = seeded(Pair::Production).await;
    let before = dump_database(&target.database_url).await;
    let objects_before = dump_objects(&target.storage().await).await;
    let err = restore_into(&target, &file, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not empty") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        dump_database(&target.database_url).await,
        before,
        "untouched"
    );
    assert_eq!(dump_objects(&target.storage().await).await, objects_before);

    restore_into(&target, &file, true)
        .await
        .expect("forced restore");
    assert_eq!(
        dump_database(&target.database_url).await,
        dump_database(&source.database_url).await,
        "the rows are the backup's"
    );
    assert_serves(&target, &seeded_source).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_refuses_to_overwrite_a_file_and_a_database_without_schema() {
    let (source, _) = seeded(Pair::Embedded).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.tar");
    std::fs::write(&file, b"precious").unwrap();
    let db = source.db().await;
    let err = backup(&db, &source.storage().await, &file, quiet())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exists already"), "{err}");
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");

    let empty = Installation::embedded();
    let db = empty.db().await;
    let err = backup(
        &db,
        &empty.storage().await,
        &dir.path().join("e.tar"),
        quiet(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no Yatai schema"), "{err}");
    assert!(!dir.path().join("e.tar").exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no temporary files are left: {leftovers:?}"
    );
}

/// Backups taken while uploads keep finishing: each restored backup holds, for every version
/// whose row names an archive, exactly that archive (size and SHA-256 as the row records).
async fn backups_during_uploads(pair: Pair) {
    use yatai_testkit::dump::Cell;
    let source = Installation::of(pair).await;
    let server = source.serve(yatai_server::app_of).await;
    let token = server.setup_admin().await;
    let server = std::sync::Arc::new(server);
    let uploader = {
        let server = server.clone();
        let token = token.clone();
        tokio::spawn(async move {
            for i in 0..24u64 {
                let bytes = yatai_testkit::install::archive(100 + i, 256 * 1024 + i as usize);
                server
                    .push(
                        &token,
                        "model",
                        "busy",
                        &format!("v{i}"),
                        &bytes,
                        serde_json::json!([]),
                    )
                    .await;
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let mut seen_counts = Vec::new();
    for n in 0..4 {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let file = dir.path().join(format!("during-{n}.tar"));
        let db = source.db().await;
        let summary = backup(&db, &source.storage().await, &file, quiet())
            .await
            .expect("backup");
        db.close().await;
        seen_counts.push(summary.manifest.objects.len());
        let target = Installation::embedded();
        restore_into(&target, &file, false)
            .await
            .expect("a backup taken during uploads restores");
        let tables = dump_database(&target.database_url).await;
        let objects = dump_objects(&target.storage().await).await;
        for row in &tables["versions"] {
            if let Cell::Text(key) = &row["object_key"] {
                let (size, sha) = objects
                    .get(key)
                    .unwrap_or_else(|| panic!("archive {key} missing"));
                assert_eq!(row["archive_sha256"], Cell::Text(sha.clone()));
                assert_eq!(row["archive_size"], Cell::Int(*size as i64));
            }
        }
        assert_eq!(
            objects.len(),
            tables["versions"]
                .iter()
                .filter(|r| r["object_key"] != Cell::Null)
                .count(),
            "only the archives the snapshot names are copied"
        );
    }
    uploader.await.unwrap();
    assert!(
        seen_counts.windows(2).all(|w| w[0] <= w[1]),
        "{seen_counts:?}"
    );
    assert!(
        seen_counts.iter().any(|n| *n > 0 && *n < 24),
        "some backup ran while uploads were going on: {seen_counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backups_during_uploads_hold_each_upload_whole_or_not_at_all_sqlite() {
    backups_during_uploads(Pair::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backups_during_uploads_hold_each_upload_whole_or_not_at_all_postgres() {
    backups_during_uploads(Pair::Production).await;
}

/// Rewrites the backup `file` as a binary would have written it that took the bookkeeping table
/// `table` for data (an older one, run on a database a newer one had served): the table, with
/// the columns and rows of `like`, is in the archive and its manifest.
fn with_bookkeeping_as_data(file: &Path, table: &str, like: &str, out: &Path) {
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    let mut archive = tar::Archive::new(std::fs::File::open(file).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
        entries.push((name, bytes));
    }
    let (_, manifest) = entries.pop().expect("the manifest, last");
    let mut manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let tables = manifest["tables"].as_array_mut().unwrap();
    let mut extra = tables
        .iter()
        .find(|t| t["name"] == like)
        .expect("the table copied")
        .clone();
    extra["name"] = table.into();
    tables.push(extra);
    let like_path = format!("tables/{like}.jsonl");
    let rows = entries
        .iter()
        .find(|(n, _)| *n == like_path)
        .unwrap()
        .1
        .clone();
    let at = entries
        .iter()
        .position(|(n, _)| n.starts_with("objects/"))
        .unwrap_or(entries.len());
    entries.insert(at, (format!("tables/{table}.jsonl"), rows));
    entries.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    let mut tar = tar::Builder::new(std::fs::File::create(out).unwrap());
    for (name, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, name, &bytes[..]).unwrap();
    }
    tar.finish().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_holding_bookkeeping_as_data_restores_without_it() {
    let (source, seeded) = seeded(Pair::Embedded).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.tar");
    backup_of(&source, &file).await;
    let old = dir.path().join("old.tar");
    with_bookkeeping_as_data(
        &file,
        yatai_store::db::counts::VERSIONS,
        "repositories",
        &old,
    );
    for to in [Pair::Embedded, Pair::Production] {
        let target = Installation::of(to).await;
        restore_into(&target, &old, false)
            .await
            .expect("the bookkeeping table is skipped, not refused");
        assert_identical(&source, &target).await;
        assert_serves(&target, &seeded).await;
    }
}
