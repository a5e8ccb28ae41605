//! `yatai restore`: puts a backup into an installation of either backend pair.
//!
//! Nothing is written to the target before the whole archive has been read once and found
//! whole: every entry the manifest lists is there with its size and SHA-256, nothing else is,
//! every row parses with its columns' types, every archive a version refers to is in it, and
//! the tar ends with its end-of-archive marker (so a corrupted or truncated file is refused
//! and leaves the target untouched). Then the target schema is migrated to the backup's
//! version, the objects are written (each checked again against its SHA-256), all rows are
//! inserted in one transaction, and the remaining migrations run.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use sqlx::migrate::Migrator;
use yatai_store::{Db, ObjectStorage};

use crate::manifest::{
    Manifest, ObjectEntry, FORMAT, FORMAT_VERSION, MANIFEST_ENTRY, OBJECTS_DIR, TABLES_DIR,
};
use crate::schema::{self, json_to_values, quote, Value, MIGRATIONS_TABLE};
use crate::util::{
    human_bytes, open_archive, ExactReader, HashingReader, Progress, Tail, Throttle,
};

/// Largest manifest accepted (it lists every object).
const MAX_MANIFEST: u64 = 512 * 1024 * 1024;

/// What restore may do.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Replace the contents of a target that is not empty.
    pub force: bool,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreSummary {
    pub manifest: Manifest,
    /// What the target held before (empty when it was empty).
    pub replaced: Vec<(String, i64)>,
    pub elapsed: Duration,
}

/// A verified archive: its manifest and the table files staged on disk.
struct Verified {
    manifest: Manifest,
    staged: HashMap<String, PathBuf>,
}

/// Restores the backup at `input` into the installation `db` + `objects`.
pub async fn restore(
    input: &Path,
    db: &Db,
    objects: &ObjectStorage,
    options: &RestoreOptions,
    progress: Progress,
) -> anyhow::Result<RestoreSummary> {
    let started = Instant::now();
    let meta = std::fs::metadata(input)
        .with_context(|| format!("cannot read the backup {}", input.display()))?;
    if !meta.is_file() {
        bail!("{} is not a file", input.display());
    }
    let contents = target_contents(db).await?;
    if !contents.is_empty() && !options.force {
        bail!(
            "the target installation is not empty ({}): restore refuses to overwrite it; use --force to replace its contents",
            describe_contents(&contents)
        );
    }

    // Pass 1: read the whole archive, check it, stage the table files.
    let stage = tempfile::Builder::new()
        .prefix(".yatai-restore-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let stage_path = stage.path().to_path_buf();
    let input_path = input.to_path_buf();
    let p = progress.clone();
    let total = meta.len();
    progress(format!(
        "verifying {} ({})",
        input.display(),
        human_bytes(total)
    ));
    let verified = tokio::task::spawn_blocking(move || verify(&input_path, total, &stage_path, &p))
        .await
        .map_err(|e| anyhow!("the archive check failed: {e}"))??;
    let manifest = verified.manifest.clone();
    progress(format!(
        "archive verified: {} rows in {} tables, {} objects ({}), schema version {}",
        manifest.rows(),
        manifest.tables.len(),
        manifest.objects.len(),
        human_bytes(manifest.object_bytes()),
        manifest.schema_version
    ));

    // The target schema, as the backup had it.
    migrate_to(db, Some(manifest.schema_version)).await?;
    let target_tables = {
        let mut conn = db.pool().acquire().await?;
        schema::tables(&mut conn, db.backend()).await?
    };
    // What a target makes from the data is not restored: a backup taken by a binary that did
    // not know the table for bookkeeping holds it as data.
    let data_tables: Vec<_> = manifest
        .tables
        .iter()
        .filter(|t| !yatai_store::db::BOOKKEEPING.contains(&t.table.name.as_str()))
        .collect();
    for t in &data_tables {
        let Some(target) = target_tables.iter().find(|x| x.name == t.table.name) else {
            bail!(
                "the target database has no table {} after migrating to schema version {}",
                t.table.name,
                manifest.schema_version
            );
        };
        for c in &t.table.columns {
            if !target.columns.iter().any(|x| x.name == c.name) {
                bail!("the target table {} has no column {}", t.table.name, c.name);
            }
        }
    }

    // Pass 2: the objects.
    let storage = objects.clone();
    let input_path = input.to_path_buf();
    let handle = tokio::runtime::Handle::current();
    let m = manifest.clone();
    let p = progress.clone();
    tokio::task::spawn_blocking(move || store_objects(&input_path, &m, &storage, &handle, &p))
        .await
        .map_err(|e| anyhow!("writing the objects failed: {e}"))??;

    // The rows, in one transaction.
    let mut tx = db.begin().await.context("cannot start a transaction")?;
    if !contents.is_empty() {
        for t in target_tables.iter().rev() {
            sqlx::query(&format!("DELETE FROM {}", quote(&t.name)))
                .execute(&mut *tx)
                .await
                .with_context(|| format!("cannot empty table {}", t.name))?;
        }
    }
    for t in &data_tables {
        let path = &verified.staged[&t.table.name];
        insert_rows(&mut tx, t, path).await?;
        progress(format!("table {}: {} rows restored", t.table.name, t.rows));
    }
    tx.commit()
        .await
        .context("cannot commit the restored rows")?;
    let applied = migrate_to(db, None).await?;
    if applied > 0 {
        progress(format!(
            "applied {applied} newer schema migrations to the restored data"
        ));
    }
    Ok(RestoreSummary {
        manifest,
        replaced: contents,
        elapsed: started.elapsed(),
    })
}

/// Whether the database holds a schema (its migrations table exists).
pub async fn has_schema(db: &Db) -> bool {
    sqlx::query(&format!("SELECT 1 FROM {MIGRATIONS_TABLE} LIMIT 1"))
        .fetch_optional(db.pool())
        .await
        .is_ok()
}

/// Rows per table of the target, for the tables that have any.
pub async fn target_contents(db: &Db) -> anyhow::Result<Vec<(String, i64)>> {
    let mut conn = db
        .pool()
        .acquire()
        .await
        .context("cannot connect to the target database")?;
    let has_schema = sqlx::query(&format!("SELECT 1 FROM {MIGRATIONS_TABLE} LIMIT 1"))
        .fetch_optional(&mut *conn)
        .await
        .is_ok();
    if !has_schema {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for t in schema::tables(&mut conn, db.backend()).await? {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", quote(&t.name)))
            .fetch_one(&mut *conn)
            .await?;
        if n > 0 {
            out.push((t.name, n));
        }
    }
    Ok(out)
}

/// `3 users, 1 organizations` for people.
pub(crate) fn describe_contents(contents: &[(String, i64)]) -> String {
    contents
        .iter()
        .map(|(t, n)| format!("{n} {t}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the migrations up to `version` (all when `None`); returns how many ran.
async fn migrate_to(db: &Db, version: Option<i64>) -> anyhow::Result<usize> {
    let migrator = Migrator {
        migrations: Cow::Owned(
            yatai_store::db::MIGRATOR
                .iter()
                .filter(|m| version.is_none_or(|v| m.version <= v))
                .cloned()
                .collect(),
        ),
        ignore_missing: true,
        locking: true,
        no_tx: false,
    };
    let count = |db: &Db| {
        let pool = db.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {MIGRATIONS_TABLE}"))
                .fetch_one(&pool)
                .await
                .unwrap_or(0)
        }
    };
    let before = count(db).await;
    migrator
        .run(db.pool())
        .await
        .map_err(|e| anyhow!("migrating the target database failed: {e}"))?;
    Ok((count(db).await - before).max(0) as usize)
}

fn corrupt(what: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("the archive is corrupted or truncated: {what}; nothing was restored")
}

/// Pass 1: reads every entry, hashing it; stages table files; checks against the manifest.
fn verify(path: &Path, total: u64, stage: &Path, progress: &Progress) -> anyhow::Result<Verified> {
    let count = Arc::new(AtomicU64::new(0));
    let reader = open_archive(path, count.clone())
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut tail = Tail::new(reader);
    let mut seen: HashMap<String, (u64, String)> = HashMap::new();
    let mut lines: HashMap<String, u64> = HashMap::new();
    let mut staged: HashMap<String, PathBuf> = HashMap::new();
    let mut manifest_bytes: Option<Vec<u8>> = None;
    let mut throttle = Throttle::new(Duration::from_secs(2));
    {
        let mut archive = tar::Archive::new(&mut tail);
        let entries = archive.entries().map_err(corrupt)?;
        for entry in entries {
            let mut entry = entry.map_err(corrupt)?;
            let name = entry
                .path()
                .map_err(corrupt)?
                .to_str()
                .ok_or_else(|| corrupt("an entry name is not UTF-8"))?
                .to_string();
            let declared = entry.size();
            if manifest_bytes.is_some() {
                return Err(corrupt(format!("entry {name:?} follows the manifest")));
            }
            if seen.contains_key(&name) {
                return Err(corrupt(format!("entry {name:?} appears twice")));
            }
            let mut reader = HashingReader::new(ExactReader {
                inner: &mut entry,
                remaining: declared,
                tick: |_| {},
            });
            if name == MANIFEST_ENTRY {
                if declared > MAX_MANIFEST {
                    return Err(corrupt("the manifest is implausibly large"));
                }
                let mut buf = Vec::with_capacity(declared as usize);
                reader
                    .read_to_end(&mut buf)
                    .map_err(|e| corrupt(format!("{name}: {e}")))?;
                manifest_bytes = Some(buf);
            } else if let Some(file) = name.strip_prefix(TABLES_DIR) {
                let table = file
                    .strip_suffix(".jsonl")
                    .filter(|t| {
                        !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    })
                    .ok_or_else(|| corrupt(format!("unexpected entry {name:?}")))?
                    .to_string();
                let target = stage.join(format!("{table}.jsonl"));
                let mut out = io::BufWriter::new(File::create(&target)?);
                let mut n = 0u64;
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let k = reader
                        .read(&mut buf)
                        .map_err(|e| corrupt(format!("{name}: {e}")))?;
                    if k == 0 {
                        break;
                    }
                    n += buf[..k].iter().filter(|b| **b == b'\n').count() as u64;
                    out.write_all(&buf[..k])?;
                }
                out.flush()?;
                lines.insert(table.clone(), n);
                staged.insert(table, target);
            } else if name.starts_with(OBJECTS_DIR) && name.len() > OBJECTS_DIR.len() {
                io::copy(&mut reader, &mut io::sink())
                    .map_err(|e| corrupt(format!("{name}: {e}")))?;
            } else {
                return Err(corrupt(format!("unexpected entry {name:?}")));
            }
            seen.insert(name, reader.finish());
            if throttle.due() {
                progress(format!(
                    "verifying: {} of {}",
                    human_bytes(count.load(Ordering::Relaxed)),
                    human_bytes(total)
                ));
            }
        }
    }
    io::copy(&mut tail, &mut io::sink()).map_err(corrupt)?;
    if !tail.ends_like_a_tar() {
        return Err(corrupt(
            "the tar has no end-of-archive marker (the file is cut short)",
        ));
    }
    let manifest_bytes = manifest_bytes.ok_or_else(|| {
        corrupt("it has no manifest.json (the file is cut short, or it is not a Yatai backup)")
    })?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| corrupt(format!("manifest.json does not parse: {e}")))?;
    if manifest.format != FORMAT {
        bail!("not a Yatai backup (format {:?})", manifest.format);
    }
    if manifest.format_version > FORMAT_VERSION {
        bail!(
            "the backup has format version {}, newer than this yatai reads ({FORMAT_VERSION}): restore it with a newer yatai",
            manifest.format_version
        );
    }
    let latest = crate::latest_schema_version();
    if manifest.schema_version > latest {
        bail!(
            "the backup has schema version {}, newer than this yatai knows ({latest}): restore it with the yatai that wrote it or a newer one",
            manifest.schema_version
        );
    }
    let check = |path: String, size: u64, sha: &str| -> anyhow::Result<()> {
        match seen.get(&path) {
            None => Err(corrupt(format!("{path} is missing"))),
            Some((s, _)) if *s != size => Err(corrupt(format!(
                "{path} has {s} bytes, the manifest says {size}"
            ))),
            Some((_, h)) if h != sha => Err(corrupt(format!(
                "{path}: its SHA-256 differs from the manifest's"
            ))),
            Some(_) => Ok(()),
        }
    };
    let mut listed = HashSet::new();
    for t in &manifest.tables {
        check(t.path(), t.size, &t.sha256)?;
        if lines.get(&t.table.name) != Some(&t.rows) {
            return Err(corrupt(format!(
                "{} holds {} rows, the manifest says {}",
                t.path(),
                lines.get(&t.table.name).copied().unwrap_or(0),
                t.rows
            )));
        }
        listed.insert(t.path());
    }
    let mut keys = HashSet::new();
    for o in &manifest.objects {
        check(o.path(), o.size, &o.sha256)?;
        listed.insert(o.path());
        keys.insert(o.key.as_str());
    }
    if let Some(extra) = seen
        .keys()
        .find(|k| *k != MANIFEST_ENTRY && !listed.contains(*k))
    {
        return Err(corrupt(format!("entry {extra:?} is not in the manifest")));
    }
    // Every row parses with its columns; every archive a version serves is in the backup.
    for t in &manifest.tables {
        let key_column = (t.table.name == "versions")
            .then(|| t.table.columns.iter().position(|c| c.name == "object_key"))
            .flatten();
        let file = BufReader::new(File::open(&staged[&t.table.name])?);
        for (i, line) in file.lines().enumerate() {
            let values = json_to_values(&t.table.columns, &line?)
                .map_err(|e| corrupt(format!("{} line {}: {e}", t.path(), i + 1)))?;
            if let Some(k) = key_column {
                if let Value::Text(Some(key)) = &values[k] {
                    if !keys.contains(key.as_str()) {
                        return Err(corrupt(format!(
                            "the archive {key:?} of a version is not in the backup"
                        )));
                    }
                }
            }
        }
    }
    Ok(Verified { manifest, staged })
}

/// Pass 2: streams every object of the archive into the target storage.
fn store_objects(
    path: &Path,
    manifest: &Manifest,
    storage: &ObjectStorage,
    handle: &tokio::runtime::Handle,
    progress: &Progress,
) -> anyhow::Result<()> {
    let expected: HashMap<&str, &ObjectEntry> = manifest
        .objects
        .iter()
        .map(|o| (o.key.as_str(), o))
        .collect();
    let total = manifest.objects.len();
    let total_bytes = manifest.object_bytes();
    let reader = open_archive(path, Arc::new(AtomicU64::new(0)))?;
    let mut archive = tar::Archive::new(reader);
    let mut done = 0usize;
    let mut done_bytes = 0u64;
    let mut throttle = Throttle::new(Duration::from_secs(2));
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let name = entry
            .path()
            .map_err(corrupt)?
            .to_string_lossy()
            .into_owned();
        let Some(key) = name.strip_prefix(OBJECTS_DIR) else {
            continue;
        };
        let key = key.to_string();
        let want = expected.get(key.as_str()).ok_or_else(|| {
            corrupt(format!(
                "the archive changed since it was verified ({name})"
            ))
        })?;
        let mut buf = vec![0u8; 256 * 1024];
        let entry_ref = &mut entry;
        let mut tick = |n: usize| {
            done_bytes += n as u64;
            if throttle.due() {
                progress(format!(
                    "objects {done}/{total}, {} of {}",
                    human_bytes(done_bytes),
                    human_bytes(total_bytes)
                ));
            }
        };
        let body = futures::stream::poll_fn(move |_| {
            std::task::Poll::Ready(match entry_ref.read(&mut buf) {
                Ok(0) => None,
                Ok(n) => {
                    tick(n);
                    Some(Ok::<_, io::Error>(Bytes::copy_from_slice(&buf[..n])))
                }
                Err(e) => Some(Err(e)),
            })
        });
        let stored = handle
            .block_on(storage.put_stream(&key, body))
            .map_err(|e| anyhow!("cannot write object {key:?} to {}: {e}", storage.describe()))?;
        if stored.sha256 != want.sha256 || stored.size != want.size {
            let _ = handle.block_on(storage.delete(&key));
            return Err(corrupt(format!(
                "object {key:?} differs from what was verified (the file changed during the restore)"
            )));
        }
        done += 1;
        progress(format!(
            "objects {done}/{total}, {} of {}",
            human_bytes(done_bytes),
            human_bytes(total_bytes)
        ));
    }
    if done != total {
        return Err(corrupt(format!(
            "{done} objects were found on the second read, {total} on the first"
        )));
    }
    Ok(())
}

/// Inserts the rows of one staged table file, many rows per statement.
async fn insert_rows(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    entry: &crate::manifest::TableEntry,
    path: &Path,
) -> anyhow::Result<()> {
    let columns = &entry.table.columns;
    let per_batch = (8000 / columns.len().max(1)).clamp(1, 500);
    let file = tokio::fs::File::open(path).await?;
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(file));
    let mut batch: Vec<Vec<Value>> = Vec::with_capacity(per_batch);
    loop {
        let line = lines.next_line().await?;
        if let Some(line) = &line {
            batch
                .push(json_to_values(columns, line).map_err(|e| anyhow!("{}: {e}", entry.path()))?);
        }
        if batch.len() >= per_batch || (line.is_none() && !batch.is_empty()) {
            let sql = schema::insert_sql(&entry.table.name, columns, batch.len());
            let q = schema::bind_values(sqlx::query(&sql), batch.drain(..).flatten());
            q.execute(&mut **tx)
                .await
                .with_context(|| format!("cannot insert the rows of table {}", entry.table.name))?;
        }
        if line.is_none() {
            break;
        }
    }
    Ok(())
}
