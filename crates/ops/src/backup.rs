//! `yatai backup`: a consistent snapshot of the metadata database and of every archive it
//! refers to, in one streamed tar file (format in [`crate::manifest`]).
//!
//! Consistency while the server runs: every table is read in one read transaction (PostgreSQL:
//! REPEATABLE READ, READ ONLY; SQLite: one read transaction on the WAL, a snapshot too), and only
//! the objects that snapshot names in `versions.object_key` are copied. Uploads write a fresh key
//! and switch `object_key` only when the object is complete, so an upload finishing during the
//! backup is either in it whole (snapshot after the switch) or not at all. An object deleted
//! after the snapshot (a version deleted or re-uploaded meanwhile) makes the attempt start over.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures::TryStreamExt;
use sha2::Digest;
use sqlx::Connection;
use yatai_store::{Db, DbBackend, ObjectStorage};

use crate::manifest::{
    self, Manifest, ObjectEntry, Source, TableEntry, FORMAT, FORMAT_VERSION, MANIFEST_ENTRY,
};
use crate::schema::{self, MIGRATIONS_TABLE};
use crate::util::{
    human_bytes, ArchiveWriter, ExactReader, HashingReader, HashingWriter, Progress, Throttle,
};

/// How often a backup starts over when objects vanish under it.
const ATTEMPTS: usize = 3;

/// What a backup wrote.
#[derive(Debug, Clone)]
pub struct BackupSummary {
    pub path: PathBuf,
    pub manifest: Manifest,
    /// Size of the archive file.
    pub archive_size: u64,
    pub elapsed: Duration,
}

/// The snapshot of the database, spooled to files.
struct Snapshot {
    schema_version: i64,
    tables: Vec<(TableEntry, PathBuf)>,
    /// (key, size recorded in the database), sorted by key.
    objects: Vec<(String, Option<i64>)>,
    created_at: String,
}

/// An object named by the snapshot was gone when it was copied.
#[derive(Debug)]
struct Vanished(String);

impl std::fmt::Display for Vanished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "object {:?} was deleted while the backup ran", self.0)
    }
}

impl std::error::Error for Vanished {}

/// Writes a backup of the installation to `output` (which must not exist yet). The file appears
/// only when it is complete.
pub async fn backup(
    db: &Db,
    objects: &ObjectStorage,
    output: &Path,
    progress: Progress,
) -> anyhow::Result<BackupSummary> {
    let started = Instant::now();
    if output.exists() {
        bail!(
            "{} exists already: choose another file or remove it",
            output.display()
        );
    }
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        bail!("the directory {} does not exist", parent.display());
    }
    let mut attempt = 1;
    loop {
        match attempt_backup(db, objects, output, &parent, progress.clone()).await {
            Ok((manifest, archive_size)) => {
                return Ok(BackupSummary {
                    path: output.to_path_buf(),
                    manifest,
                    archive_size,
                    elapsed: started.elapsed(),
                })
            }
            Err(e) if attempt < ATTEMPTS && e.downcast_ref::<Vanished>().is_some() => {
                progress(format!("{e}; starting over with a new snapshot"));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn attempt_backup(
    db: &Db,
    objects: &ObjectStorage,
    output: &Path,
    parent: &Path,
    progress: Progress,
) -> anyhow::Result<(Manifest, u64)> {
    let spool = tempfile::Builder::new()
        .prefix(".yatai-backup-")
        .tempdir_in(parent)
        .with_context(|| {
            format!(
                "cannot create a temporary directory in {}",
                parent.display()
            )
        })?;
    let snapshot = take_snapshot(db, spool.path(), &progress).await?;
    progress(format!(
        "snapshot: {} rows in {} tables (schema version {}), {} objects to copy",
        snapshot.tables.iter().map(|(t, _)| t.rows).sum::<u64>(),
        snapshot.tables.len(),
        snapshot.schema_version,
        snapshot.objects.len()
    ));
    let partial = tempfile::Builder::new()
        .prefix(".yatai-backup-")
        .suffix(".partial")
        .tempfile_in(parent)
        .with_context(|| format!("cannot create a file in {}", parent.display()))?;
    let file = partial.reopen().context("cannot open the output file")?;
    let gzip = crate::util::wants_gzip(output);
    let source = Source {
        database: match db.backend() {
            DbBackend::Sqlite => "sqlite".into(),
            DbBackend::Postgres => "postgres".into(),
        },
        objects: objects.describe().to_string(),
    };
    let storage = objects.clone();
    let handle = tokio::runtime::Handle::current();
    let manifest = tokio::task::spawn_blocking(move || {
        write_archive(file, gzip, snapshot, source, &storage, &handle, &progress)
    })
    .await
    .map_err(|e| anyhow!("the backup writer failed: {e}"))??;
    let archive_size = partial.as_file().metadata()?.len();
    partial.persist_noclobber(output).map_err(|e| {
        anyhow!(
            "cannot move the finished backup to {}: {}",
            output.display(),
            e.error
        )
    })?;
    Ok((manifest, archive_size))
}

/// Reads every table in one read transaction into JSON-lines files.
async fn take_snapshot(db: &Db, spool: &Path, progress: &Progress) -> anyhow::Result<Snapshot> {
    let mut conn = db
        .pool()
        .acquire()
        .await
        .context("cannot connect to the database")?;
    let mut tx = conn.begin().await.context("cannot start a transaction")?;
    if db.backend() == DbBackend::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .context("cannot start a snapshot transaction")?;
    }
    let created_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let schema_version: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT MAX(version) FROM {MIGRATIONS_TABLE} WHERE success"
    ))
    .fetch_one(&mut *tx)
    .await
    .map_err(|_| {
        anyhow!("the database holds no Yatai schema (run `yatai migrate` or `yatai serve` first)")
    })?;
    let schema_version = schema_version.ok_or_else(|| {
        anyhow!("the database holds no Yatai schema (run `yatai migrate` or `yatai serve` first)")
    })?;
    let latest = crate::latest_schema_version();
    if schema_version > latest {
        bail!("the database has schema version {schema_version}, newer than this yatai knows ({latest}): back it up with the yatai that runs it");
    }
    let tables = schema::tables(&mut tx, db.backend()).await?;
    let mut spooled = Vec::new();
    for table in tables {
        let path = spool.join(format!("{}.jsonl", table.name));
        let file =
            File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
        let mut out = HashingWriter::new(BufWriter::with_capacity(1 << 20, file));
        let mut rows = 0u64;
        {
            let sql = schema::select_all(&table);
            let mut stream = sqlx::query(&sql).fetch(&mut *tx);
            while let Some(row) = stream
                .try_next()
                .await
                .with_context(|| format!("cannot read table {}", table.name))?
            {
                let json = schema::row_to_json(&table, &row)?;
                serde_json::to_writer(&mut out, &json)?;
                out.write_all(b"\n")?;
                rows += 1;
            }
        }
        out.flush()?;
        let HashingWriter { hasher, size, .. } = out;
        let sha256 = hex::encode(hasher.finalize());
        progress(format!("table {}: {rows} rows", table.name));
        spooled.push((
            TableEntry {
                table,
                rows,
                size,
                sha256,
            },
            path,
        ));
    }
    let objects: Vec<(String, Option<i64>)> = sqlx::query_as(
        "SELECT object_key, MAX(archive_size) FROM versions WHERE object_key IS NOT NULL GROUP BY object_key ORDER BY object_key",
    )
    .fetch_all(&mut *tx)
    .await
    .context("cannot list the archives the database refers to")?;
    tx.rollback().await.ok();
    Ok(Snapshot {
        schema_version,
        tables: spooled,
        objects,
        created_at,
    })
}

/// Writes the tar: table files, objects streamed from storage, the manifest last.
fn write_archive(
    file: File,
    gzip: bool,
    snapshot: Snapshot,
    source: Source,
    storage: &ObjectStorage,
    handle: &tokio::runtime::Handle,
    progress: &Progress,
) -> anyhow::Result<Manifest> {
    let mtime = chrono::Utc::now().timestamp().max(0) as u64;
    let mut tar = tar::Builder::new(ArchiveWriter::new(file, gzip));
    tar.mode(tar::HeaderMode::Deterministic);
    let mut tables = Vec::new();
    for (entry, path) in snapshot.tables {
        let f = File::open(&path)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(entry.size);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        let mut reader = ExactReader {
            inner: std::io::BufReader::new(f),
            remaining: entry.size,
            tick: |_| {},
        };
        tar.append_data(&mut header, entry.path(), &mut reader)
            .with_context(|| format!("cannot write {} to the archive", entry.path()))?;
        tables.push(entry);
    }
    let total = snapshot.objects.len();
    let expected_bytes: u64 = snapshot
        .objects
        .iter()
        .map(|(_, s)| s.unwrap_or(0).max(0) as u64)
        .sum();
    let mut done_bytes = 0u64;
    let mut throttle = Throttle::new(Duration::from_secs(2));
    let mut objects = Vec::with_capacity(total);
    for (i, (key, _)) in snapshot.objects.into_iter().enumerate() {
        let reader = match handle.block_on(storage.get(&key, None)) {
            Ok(r) => r,
            Err(yatai_domain::Error::NotFound(_)) => return Err(Vanished(key).into()),
            Err(e) => bail!("cannot read object {key:?}: {e}"),
        };
        let size = reader.total_size;
        let stream = reader
            .stream
            .map_err(|e| std::io::Error::other(e.to_string()));
        let bridge = tokio_util::io::SyncIoBridge::new_with_handle(
            tokio_util::io::StreamReader::new(stream),
            handle.clone(),
        );
        let mut hashing = HashingReader::new(ExactReader {
            inner: bridge,
            remaining: size,
            tick: |n: usize| {
                done_bytes += n as u64;
                if throttle.due() {
                    progress(format!(
                        "objects {i}/{total}, {} of {}",
                        human_bytes(done_bytes),
                        human_bytes(expected_bytes.max(done_bytes))
                    ));
                }
            },
        });
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        let path = manifest::object_path(&key);
        tar.append_data(&mut header, &path, &mut hashing)
            .with_context(|| format!("cannot copy object {key:?} into the archive"))?;
        let (read, sha256) = hashing.finish();
        objects.push(ObjectEntry {
            key,
            size: read,
            sha256,
        });
        progress(format!(
            "objects {}/{total}, {} of {}",
            i + 1,
            human_bytes(done_bytes),
            human_bytes(expected_bytes.max(done_bytes))
        ));
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        created_at: snapshot.created_at,
        yatai_version: env!("CARGO_PKG_VERSION").into(),
        source,
        schema_version: snapshot.schema_version,
        tables,
        objects,
    };
    let json = serde_json::to_vec_pretty(&manifest)?;
    let mut header = tar::Header::new_gnu();
    header.set_size(json.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    tar.append_data(&mut header, MANIFEST_ENTRY, &json[..])?;
    let writer = tar.into_inner().context("cannot finish the archive")?;
    writer
        .finish()
        .context("cannot write the archive to disk")?;
    Ok(manifest)
}
