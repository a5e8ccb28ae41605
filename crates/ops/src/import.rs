//! `yatai import`: copies a running Yatai 1.x (Go) installation into this one.
//!
//! What Yatai 1.x keeps (its PostgreSQL schema, migrations 000001–000006 of bentoml/Yatai) and
//! where it goes here:
//!
//! | Yatai 1.x | here |
//! |---|---|
//! | `"user"` (bcrypt `password`, `perm`) | `users` (the hash is kept; `perm = 'admin'` -> site admin) |
//! | `organization` | `organizations` |
//! | `organization_member` (user or user group, `role`) | `members` (group members get the group's role) |
//! | `api_token` (the token itself, `scopes` as a JSON list) | `api_tokens` (SHA-256 of the token: the same token keeps working) |
//! | `bento_repository`, `model_repository` | `repositories` (`kind`) |
//! | `bento`, `model` (`manifest` JSONB) | `versions` (`kind`), archive copied and checked |
//! | `bento_model_rel` | `bento_models` |
//! | `label` | `labels` |
//! | `event` | `events` |
//!
//! Archives live in the Yatai 1.x bucket at `bentos/<org>/<repo>/<version>.tar.gz` and
//! `models/<org>/<repo>/<version>.tar.gz`; each is copied to this installation's storage, its
//! size checked against the source object and its SHA-256 recorded.
//!
//! Every record keeps its Yatai 1.x `uid`, and rows are inserted with `ON CONFLICT DO NOTHING`,
//! so a second run changes nothing and an interrupted run resumes: a version row is written only
//! after its archive was copied. Deleted records (`deleted_at` set) are not imported.
//!
//! Each table is one `Step`: a SELECT whose columns carry our column names, typed by the
//! target's own catalog and written by the same binder as `yatai restore` (`schema`); a row is
//! "already here" when its primary key is.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures::TryStreamExt;
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::{AnyConnection, PgPool, Row};
use yatai_domain::registry::{Kind, UploadStatus};
use yatai_domain::Scope;
use yatai_store::db::api_tokens::join_scopes;
use yatai_store::{Db, ObjectStorage};

use crate::schema::{self, quote, Column, ColumnType, Table, Value};
use crate::util::{human_bytes, Progress};

/// The setting that marks an installation as the target of an import (its value names the
/// source), so that a later run may resume into it.
pub const MARKER: &str = "imported_from_yatai1";

/// What import may do.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Only count what would be imported.
    pub dry_run: bool,
}

/// How many records of each kind were (or, in a dry run, would be) imported; records already
/// there are counted as `existing`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub new: Vec<(&'static str, u64)>,
    pub existing: u64,
    pub archives_copied: u64,
    pub archive_bytes: u64,
    /// Versions whose upload had succeeded but whose archive is not in the source bucket.
    pub archives_missing: Vec<String>,
    pub elapsed: Duration,
}

impl ImportSummary {
    fn add(&mut self, what: &'static str, inserted: bool) {
        if !inserted {
            self.existing += 1;
            return;
        }
        match self.new.iter_mut().find(|(w, _)| *w == what) {
            Some((_, n)) => *n += 1,
            None => self.new.push((what, 1)),
        }
    }

    /// `users 2, organizations 1, ...` for people.
    pub fn describe(&self) -> String {
        if self.new.is_empty() {
            return "nothing new".into();
        }
        self.new
            .iter()
            .map(|(w, n)| format!("{w} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// New records of one kind.
    pub fn count(&self, what: &str) -> u64 {
        self.new
            .iter()
            .find(|(w, _)| *w == what)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    }
}

/// Connects to the Yatai 1.x database.
pub async fn connect_legacy(url: &str) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .map_err(|e| {
            anyhow!(
                "cannot connect to the Yatai 1.x database at {}: {}",
                yatai_store::db::redact_url(url),
                e.to_string().replace('\n', " ")
            )
        })
}

/// Imports everything from the Yatai 1.x database `legacy` and its bucket `legacy_objects`
/// into `db` + `objects` (whose schema must be migrated).
pub async fn import(
    legacy: &PgPool,
    legacy_objects: Option<&ObjectStorage>,
    source_name: &str,
    db: &Db,
    objects: &ObjectStorage,
    options: &ImportOptions,
    progress: Progress,
) -> anyhow::Result<ImportSummary> {
    let started = Instant::now();
    check_legacy_schema(legacy).await?;
    check_target(db, source_name).await?;
    let dry = options.dry_run;
    let pool = db.pool();
    let catalog = {
        let mut conn = pool.acquire().await?;
        schema::tables(&mut conn, db.backend()).await?
    };
    let mut run = Run {
        legacy,
        legacy_objects,
        objects,
        catalog,
        dry,
        progress,
        summary: ImportSummary::default(),
    };

    // Identities and repositories, in one transaction.
    let mut tx = pool.begin().await?;
    if !dry {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(MARKER)
        .bind(source_name)
        .execute(&mut *tx)
        .await?;
    }
    for step in identity_steps() {
        run.step(&mut tx, &step).await?;
    }
    // A dry run ends its transaction too: kept open, it held a connection beside the two below
    // (a pool of `--db-max-connections 2` waited out its timeout).
    if dry {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }

    // Versions, one at a time and each committed alone: the archive first, then the row (so an
    // interruption resumes).
    let mut conn = pool.acquire().await?;
    for step in version_steps() {
        run.step(&mut conn, &step).await?;
    }
    drop(conn);

    // Bento -> model relations, labels and events, in one transaction.
    let mut tx = pool.begin().await?;
    for step in relation_steps() {
        run.step(&mut tx, &step).await?;
    }
    if !dry {
        tx.commit().await?;
    }
    let mut s = run.summary;
    s.elapsed = started.elapsed();
    Ok(s)
}

/// One Yatai 1.x table (or a part of one) and the table of ours it fills.
struct Step {
    /// Our table; the summary counts its rows under this name.
    table: &'static str,
    /// The Yatai 1.x records, for messages ("bento repositories").
    what: String,
    /// Reads the Yatai 1.x rows, each column named after the column of `table` it fills (and
    /// typed by that column); columns named `_...` are only read by `treat`.
    select: String,
    treat: Treat,
}

/// What happens to a row between reading and writing it, beyond the SELECT.
#[derive(Debug, Clone, Copy)]
enum Treat {
    Nothing,
    /// Yatai 1.x stores the token itself (`_token`) and its scopes as a JSON list: ours keeps
    /// the SHA-256 of the token (so the same token keeps working) and its known scopes.
    ApiToken,
    /// The archive is copied before the row is written (and a missing one makes the version a
    /// failed upload).
    Version(Kind),
    /// A label of a resource that was not imported (a deleted version) stays behind.
    Label,
}

/// Microseconds since the epoch of a `timestamptz` column, as SQL.
fn micros(col: &str) -> String {
    format!("(EXTRACT(EPOCH FROM {col}) * 1000000)::bigint")
}

/// The `created_at, updated_at` columns of the legacy table aliased `t`.
fn stamps(t: &str) -> String {
    format!(
        "{} AS created_at, {} AS updated_at",
        micros(&format!("{t}.created_at")),
        micros(&format!("{t}.updated_at"))
    )
}

/// Users, organizations, members, API tokens and repositories.
fn identity_steps() -> Vec<Step> {
    let mut steps = vec![
        Step {
            table: "users",
            what: "users".into(),
            select: format!(
                "SELECT u.uid, u.name, COALESCE(u.email, u.name || '@users.imported.invalid') AS email, u.first_name, \
                 u.last_name, u.password AS password_hash, \
                 (CASE WHEN u.perm::text = 'admin' THEN 1 ELSE 0 END)::int8 AS is_site_admin, {} \
                 FROM \"user\" u WHERE u.deleted_at IS NULL ORDER BY u.id",
                stamps("u")
            ),
            treat: Treat::Nothing,
        },
        Step {
            table: "organizations",
            what: "organizations".into(),
            select: format!(
                "SELECT o.uid, o.name, COALESCE(o.description, '') AS description, u.uid AS creator_uid, {} \
                 FROM organization o LEFT JOIN \"user\" u ON u.id = o.creator_id AND u.deleted_at IS NULL \
                 WHERE o.deleted_at IS NULL ORDER BY o.id",
                stamps("o")
            ),
            treat: Treat::Nothing,
        },
        // Direct members and, through user groups, the group's members (strongest role first).
        Step {
            table: "members",
            what: "members".into(),
            select: format!(
                "SELECT o.uid AS organization_uid, u.uid AS user_uid, m.role::text AS role, {} FROM organization_member m \
                 JOIN organization o ON o.id = m.organization_id AND o.deleted_at IS NULL \
                 LEFT JOIN user_group_user_relation g ON g.user_group_id = m.user_group_id AND g.deleted_at IS NULL \
                 JOIN \"user\" u ON u.id = COALESCE(m.user_id, g.user_id) AND u.deleted_at IS NULL \
                 WHERE m.deleted_at IS NULL \
                 ORDER BY CASE m.role::text WHEN 'admin' THEN 0 WHEN 'developer' THEN 1 ELSE 2 END, m.id",
                stamps("m")
            ),
            treat: Treat::Nothing,
        },
        Step {
            table: "api_tokens",
            what: "API tokens".into(),
            select: format!(
                "SELECT t.uid, t.name, COALESCE(t.description, '') AS description, o.uid AS organization_uid, \
                 u.uid AS user_uid, COALESCE(t.scopes, '[]') AS scopes, t.token AS _token, {} AS expired_at, \
                 {} AS last_used_at, {} \
                 FROM api_token t JOIN organization o ON o.id = t.organization_id AND o.deleted_at IS NULL \
                 JOIN \"user\" u ON u.id = t.user_id AND u.deleted_at IS NULL WHERE t.deleted_at IS NULL ORDER BY t.id",
                micros("t.expired_at"),
                micros("t.last_used_at"),
                stamps("t")
            ),
            treat: Treat::ApiToken,
        },
    ];
    steps.extend(KINDS.map(|kind| kind.as_str()).map(|kind| Step {
        table: "repositories",
        what: format!("{kind} repositories"),
        select: format!(
            "SELECT r.uid, o.uid AS organization_uid, '{kind}'::text AS kind, r.name, \
             COALESCE(r.description, '') AS description, u.uid AS creator_uid, {} FROM {kind}_repository r \
             JOIN organization o ON o.id = r.organization_id AND o.deleted_at IS NULL \
             LEFT JOIN \"user\" u ON u.id = r.creator_id AND u.deleted_at IS NULL WHERE r.deleted_at IS NULL ORDER BY r.id",
            stamps("r")
        ),
        treat: Treat::Nothing,
    }));
    steps
}

/// Bentos and models.
const KINDS: [Kind; 2] = [Kind::Bento, Kind::Model];

/// Bentos and models (each with its archive).
fn version_steps() -> Vec<Step> {
    KINDS
        .map(|k| (k, k.as_str()))
        .map(|(k, kind)| Step {
            table: "versions",
            what: format!("{kind}s"),
            select: format!(
                "SELECT v.uid, r.uid AS repository_uid, '{kind}'::text AS kind, v.version, \
                 COALESCE(v.description, '') AS description, COALESCE(v.manifest::text, '{{}}') AS manifest, \
                 {} AS build_at, v.upload_status::text AS upload_status, \
                 COALESCE(v.upload_finished_reason, '') AS upload_finished_reason, {} AS upload_started_at, \
                 {} AS upload_finished_at, v.image_build_status::text AS image_build_status, u.uid AS creator_uid, {}, \
                 o.name AS _org_name, o.uid AS _org_uid, r.name AS _repo_name \
                 FROM {kind} v JOIN {kind}_repository r ON r.id = v.{kind}_repository_id AND r.deleted_at IS NULL \
                 JOIN organization o ON o.id = r.organization_id AND o.deleted_at IS NULL \
                 LEFT JOIN \"user\" u ON u.id = v.creator_id AND u.deleted_at IS NULL WHERE v.deleted_at IS NULL ORDER BY v.id",
                micros("COALESCE(v.build_at, v.created_at)"),
                micros("v.upload_started_at"),
                micros("v.upload_finished_at"),
                stamps("v"),
            ),
            treat: Treat::Version(k),
        })
        .into()
}

/// Bento -> model relations, labels and events.
fn relation_steps() -> Vec<Step> {
    let label_resource = "CASE l.resource_type::text \
        WHEN 'bento' THEN (SELECT uid FROM bento WHERE id = l.resource_id) \
        WHEN 'model' THEN (SELECT uid FROM model WHERE id = l.resource_id) \
        WHEN 'bento_repository' THEN (SELECT uid FROM bento_repository WHERE id = l.resource_id) \
        WHEN 'model_repository' THEN (SELECT uid FROM model_repository WHERE id = l.resource_id) END";
    let event_resource = "CASE e.resource_type::text \
        WHEN 'bento' THEN (SELECT r.name || ':' || b.version FROM bento b JOIN bento_repository r ON r.id = b.bento_repository_id WHERE b.id = e.resource_id) \
        WHEN 'model' THEN (SELECT r.name || ':' || m.version FROM model m JOIN model_repository r ON r.id = m.model_repository_id WHERE m.id = e.resource_id) \
        WHEN 'bento_repository' THEN (SELECT name FROM bento_repository WHERE id = e.resource_id) \
        WHEN 'model_repository' THEN (SELECT name FROM model_repository WHERE id = e.resource_id) \
        WHEN 'organization' THEN (SELECT name FROM organization WHERE id = e.resource_id) \
        WHEN 'user' THEN (SELECT name FROM \"user\" WHERE id = e.resource_id) \
        WHEN 'api_token' THEN (SELECT name FROM api_token WHERE id = e.resource_id) END";
    vec![
        Step {
            table: "bento_models",
            what: "bento-model relations".into(),
            select: "SELECT b.uid AS bento_uid, o.uid AS organization_uid, mr.name AS model_name, m.version AS model_version \
                 FROM bento_model_rel rel \
                 JOIN bento b ON b.id = rel.bento_id AND b.deleted_at IS NULL \
                 JOIN bento_repository br ON br.id = b.bento_repository_id AND br.deleted_at IS NULL \
                 JOIN model m ON m.id = rel.model_id AND m.deleted_at IS NULL \
                 JOIN model_repository mr ON mr.id = m.model_repository_id \
                 JOIN organization o ON o.id = mr.organization_id WHERE rel.deleted_at IS NULL ORDER BY rel.id"
                .into(),
            treat: Treat::Nothing,
        },
        Step {
            table: "labels",
            what: "labels".into(),
            select: format!(
                "SELECT x.resource_uid, x.organization_uid, x.label_key, x.label_value FROM \
                 (SELECT {label_resource} AS resource_uid, o.uid AS organization_uid, l.key AS label_key, \
                 l.value AS label_value, l.id FROM label l \
                 JOIN organization o ON o.id = l.organization_id AND o.deleted_at IS NULL WHERE l.deleted_at IS NULL) x \
                 WHERE x.resource_uid IS NOT NULL ORDER BY x.id"
            ),
            treat: Treat::Label,
        },
        Step {
            table: "events",
            what: "events".into(),
            select: format!(
                "SELECT e.uid, o.uid AS organization_uid, u.uid AS user_uid, COALESCE(u.name, '') AS user_name, \
                 COALESCE(e.api_token_name, '') AS api_token_name, e.resource_type::text AS resource_type, \
                 COALESCE({event_resource}, e.name) AS resource_name, e.operation_name, e.status::text AS status, \
                 {} AS created_at FROM event e \
                 JOIN organization o ON o.id = e.organization_id AND o.deleted_at IS NULL \
                 LEFT JOIN \"user\" u ON u.id = e.creator_id WHERE e.deleted_at IS NULL ORDER BY e.id",
                micros("e.created_at")
            ),
            treat: Treat::Nothing,
        },
    ]
}

/// A row on its way from Yatai 1.x to here: the columns it fills, typed by our catalog, and
/// their values.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    columns: Vec<Column>,
    values: Vec<Value>,
}

impl Record {
    /// Reads a legacy row: every column must be one of `table`'s (or a `_...` one, read as text).
    fn read(table: &Table, row: &PgRow) -> anyhow::Result<Record> {
        let columns = row
            .columns()
            .iter()
            .map(|c| {
                let name = sqlx::Column::name(c);
                let ty = if name.starts_with('_') {
                    ColumnType::Text
                } else {
                    table
                        .columns
                        .iter()
                        .find(|t| t.name == name)
                        .ok_or_else(|| {
                            anyhow!(
                                "the import fills {}.{name}, which this schema does not have",
                                table.name
                            )
                        })?
                        .ty
                };
                Ok(Column {
                    name: name.to_string(),
                    ty,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let values = schema::row_values(&table.name, &columns, row)?;
        Ok(Record { columns, values })
    }

    fn get(&self, name: &str) -> anyhow::Result<&Value> {
        self.columns
            .iter()
            .position(|c| c.name == name)
            .map(|i| &self.values[i])
            .ok_or_else(|| anyhow!("the import reads no column {name}"))
    }

    /// A text column that is never null.
    fn text(&self, name: &str) -> anyhow::Result<&str> {
        match self.get(name)? {
            Value::Text(Some(s)) => Ok(s),
            other => bail!("column {name} holds {other:?}, not text"),
        }
    }

    /// Sets a column, adding it when the SELECT did not read it.
    fn set(&mut self, name: &str, value: Value) {
        match self.columns.iter().position(|c| c.name == name) {
            Some(i) => self.values[i] = value,
            None => {
                let ty = match value {
                    Value::Int(_) => ColumnType::Int,
                    Value::Text(_) => ColumnType::Text,
                };
                self.columns.push(Column {
                    name: name.to_string(),
                    ty,
                });
                self.values.push(value);
            }
        }
    }

    /// The columns and values written (without the `_...` ones).
    fn written(self) -> (Vec<Column>, Vec<Value>) {
        self.columns
            .into_iter()
            .zip(self.values)
            .filter(|(c, _)| !c.name.starts_with('_'))
            .unzip()
    }
}

/// What an import run works with.
struct Run<'a> {
    legacy: &'a PgPool,
    legacy_objects: Option<&'a ObjectStorage>,
    objects: &'a ObjectStorage,
    /// Our tables, from the target's own catalog.
    catalog: Vec<Table>,
    dry: bool,
    progress: Progress,
    summary: ImportSummary,
}

impl Run<'_> {
    /// Reads the legacy rows of `step` and writes each one that is not here yet.
    async fn step(&mut self, conn: &mut AnyConnection, step: &Step) -> anyhow::Result<()> {
        let table = self
            .catalog
            .iter()
            .find(|t| t.name == step.table)
            .cloned()
            .ok_or_else(|| anyhow!("the target database has no table {}", step.table))?;
        let rows = sqlx::query(&step.select)
            .fetch_all(self.legacy)
            .await
            .with_context(|| format!("cannot read the Yatai 1.x {}", step.what))?;
        let total = rows.len();
        for (i, row) in rows.iter().enumerate() {
            let mut record = Record::read(&table, row)?;
            if let Treat::Label = step.treat {
                if !self.dry && !resource_imported(conn, record.text("resource_uid")?).await? {
                    continue;
                }
            }
            if exists(conn, &table, &record).await? {
                self.summary.add(step.table, false);
                continue;
            }
            match step.treat {
                Treat::Nothing | Treat::Label => {}
                Treat::ApiToken => {
                    let scopes = legacy_scopes(record.text("scopes")?);
                    let hash = yatai_store::db::secret_hash(record.text("_token")?);
                    record.set("scopes", Value::Text(Some(scopes)));
                    record.set("token_hash", Value::Text(Some(hash)));
                }
                Treat::Version(kind) => {
                    self.copy_archive(kind, &mut record, (i + 1, total)).await?
                }
            }
            let inserted = self.insert(conn, &table, record).await?;
            self.summary.add(step.table, inserted);
        }
        Ok(())
    }

    /// Writes a row unless it exists (in a dry run, only looks); whether it is (or would be) new.
    async fn insert(
        &self,
        conn: &mut AnyConnection,
        table: &Table,
        record: Record,
    ) -> anyhow::Result<bool> {
        if self.dry {
            return Ok(true);
        }
        let (columns, values) = record.written();
        let sql = format!(
            "{} ON CONFLICT DO NOTHING",
            schema::insert_sql(&table.name, &columns, 1)
        );
        let done = schema::bind_values(sqlx::query(&sql), values)
            .execute(&mut *conn)
            .await
            .with_context(|| format!("cannot import a row (INSERT INTO {})", table.name))?;
        Ok(done.rows_affected() == 1)
    }

    /// Copies the archive of an uploaded version (`n` of `total`) and records it in `record`;
    /// a version whose archive is not in the source bucket becomes a failed upload.
    async fn copy_archive(
        &mut self,
        kind: Kind,
        record: &mut Record,
        (n, total): (usize, usize),
    ) -> anyhow::Result<()> {
        if record.text("upload_status")? != UploadStatus::Success.as_str() {
            return Ok(());
        }
        let uid = record.text("uid")?;
        let version = record.text("version")?;
        let repo = record.text("_repo_name")?;
        let legacy_key = format!(
            "{}/{}/{repo}/{version}.tar.gz",
            kind.object_prefix(),
            record.text("_org_name")?
        );
        let key = object_key(kind, record.text("_org_uid")?, repo, version, uid);
        let source = self.legacy_objects.ok_or_else(|| {
            anyhow!("the Yatai 1.x installation holds archives: give its bucket with --from-yatai-s3-endpoint / --from-yatai-s3-bucket-name (and its credentials)")
        })?;
        let size = source
            .size(&legacy_key)
            .await
            .map_err(|e| anyhow!("cannot read the Yatai 1.x bucket: {e}"))?;
        let s = &mut self.summary;
        let Some(size) = size else {
            let kind = kind.as_str();
            s.archives_missing.push(format!("{kind} {repo}:{version}"));
            (self.progress)(format!(
                "warning: the archive of {kind} {repo}:{version} ({legacy_key}) is not in the Yatai 1.x bucket; imported as a failed upload"
            ));
            let reason = format!(
                "the archive was missing from the Yatai 1.x bucket at import ({legacy_key})"
            );
            record.set("upload_status", text(UploadStatus::Failed.as_str()));
            record.set("upload_finished_reason", text(&reason));
            return Ok(());
        };
        s.archives_copied += 1;
        s.archive_bytes += size;
        if self.dry {
            return Ok(());
        }
        let reader = source
            .get(&legacy_key, None)
            .await
            .map_err(|e| anyhow!("cannot read {legacy_key} from the Yatai 1.x bucket: {e}"))?;
        let stored = self
            .objects
            .put_stream(&key, reader.stream.map_err(|e| e.to_string()))
            .await
            .map_err(|e| anyhow!("cannot copy {legacy_key}: {e}"))?;
        if stored.size != size {
            let _ = self.objects.delete(&key).await;
            bail!("the copy of {legacy_key} has {} bytes, the source {size}: nothing of this version was imported; run the import again", stored.size);
        }
        (self.progress)(format!(
            "{}s {n}/{total}: copied {repo}:{version} ({})",
            kind.as_str(),
            human_bytes(size)
        ));
        record.set("object_key", text(&key));
        record.set("archive_size", Value::Int(Some(size as i64)));
        record.set("archive_sha256", Value::Text(Some(stored.sha256)));
        Ok(())
    }
}

fn text(s: &str) -> Value {
    Value::Text(Some(s.to_string()))
}

/// Where the archive of version `uid` is kept here.
// The import uses the version's uid as the unique part of the key, so that a rerun writes the
// same key.
fn object_key(kind: Kind, organization_uid: &str, repo: &str, version: &str, uid: &str) -> String {
    yatai_store::objects::ArchiveKey::new(kind, organization_uid, repo, version, uid).into_string()
}

/// Whether a row with `record`'s primary key is here.
async fn exists(conn: &mut AnyConnection, table: &Table, record: &Record) -> anyhow::Result<bool> {
    if table.primary_key.is_empty() {
        bail!("table {} has no primary key to import by", table.name);
    }
    let sql = format!(
        "SELECT 1 FROM {} WHERE {}",
        quote(&table.name),
        table
            .primary_key
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} = ${}", quote(c), i + 1))
            .collect::<Vec<_>>()
            .join(" AND ")
    );
    let key = table
        .primary_key
        .iter()
        .map(|c| record.get(c).cloned())
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(schema::bind_values(sqlx::query(&sql), key)
        .fetch_optional(&mut *conn)
        .await?
        .is_some())
}

/// Whether the version or repository `uid` was imported.
async fn resource_imported(conn: &mut AnyConnection, uid: &str) -> anyhow::Result<bool> {
    Ok(sqlx::query(
        "SELECT 1 FROM versions WHERE uid = $1 UNION ALL SELECT 1 FROM repositories WHERE uid = $1",
    )
    .bind(uid)
    .fetch_optional(&mut *conn)
    .await?
    .is_some())
}

/// Yatai 1.x keeps scopes as a JSON list (or, in old rows, comma separated): here they are the
/// stored list of the scopes this Yatai knows.
fn legacy_scopes(raw: &str) -> String {
    let list: Vec<String> = serde_json::from_str(raw).unwrap_or_else(|_| {
        raw.split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .collect()
    });
    let known: Vec<Scope> = list.iter().filter_map(|s| s.parse().ok()).collect();
    join_scopes(&known)
}

/// Checks that the source looks like Yatai 1.x.
async fn check_legacy_schema(legacy: &PgPool) -> anyhow::Result<()> {
    let found: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() \
         AND table_name IN ('user', 'organization', 'organization_member', 'api_token', 'bento_repository', 'bento', \
         'model_repository', 'model', 'bento_model_rel', 'label', 'event', 'user_group_user_relation')",
    )
    .fetch_all(legacy)
    .await?;
    if found.len() < 12 {
        bail!(
            "the source database is not a Yatai 1.x database (found only {} of its 12 tables: {})",
            found.len(),
            found.join(", ")
        );
    }
    Ok(())
}

/// The target must be empty, or the target of an earlier import of the same source.
async fn check_target(db: &Db, source_name: &str) -> anyhow::Result<()> {
    let marker: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
        .bind(MARKER)
        .fetch_optional(db.pool())
        .await?;
    match marker {
        Some(m) if m == source_name => Ok(()),
        Some(m) => {
            bail!("this installation holds an import of another Yatai 1.x installation ({m})")
        }
        None => {
            let contents = crate::restore::target_contents(db).await?;
            if contents.is_empty() {
                Ok(())
            } else {
                bail!(
                    "the target installation is not empty ({}): import into a new installation",
                    crate::restore::describe_contents(&contents)
                )
            }
        }
    }
}

/// A stable name of the source for the marker: host, port and database, without credentials.
pub fn source_name(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}{}",
            u.host_str().unwrap_or(""),
            u.port().unwrap_or(5432),
            u.path()
        ),
        Err(_) => yatai_store::db::redact_url(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_become_the_stored_list_of_the_known_ones() {
        assert_eq!(
            legacy_scopes(r#"["api","read_organization","unknown"]"#),
            "api,read_organization"
        );
        assert_eq!(legacy_scopes("api,write_cluster"), "api,write_cluster");
        assert_eq!(legacy_scopes(r#""api", "nope""#), "api");
        assert_eq!(legacy_scopes("[]"), "");
        assert_eq!(
            source_name("postgres://u:secret@db:5433/yatai"),
            "db:5433/yatai"
        );
    }

    #[test]
    fn a_record_writes_what_was_set_and_not_what_was_only_read() {
        let col = |name: &str, ty| Column {
            name: name.into(),
            ty,
        };
        let mut r = Record {
            columns: vec![
                col("uid", ColumnType::Text),
                col("scopes", ColumnType::Text),
                col("_token", ColumnType::Text),
            ],
            values: vec![text("t1"), text("[]"), text("secret")],
        };
        assert_eq!(r.text("_token").unwrap(), "secret");
        assert!(r.text("missing").is_err());
        r.set("scopes", text("api"));
        r.set("archive_size", Value::Int(Some(7)));
        let (columns, values) = r.written();
        assert_eq!(
            columns,
            [
                col("uid", ColumnType::Text),
                col("scopes", ColumnType::Text),
                col("archive_size", ColumnType::Int)
            ]
        );
        assert_eq!(values, [text("t1"), text("api"), Value::Int(Some(7))]);
    }
}
