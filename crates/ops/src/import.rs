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

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures::TryStreamExt;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};
use yatai_store::{Db, ObjectStorage};

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

/// Microseconds since the epoch of a `timestamptz` column, as SQL.
fn micros(col: &str) -> String {
    format!("(EXTRACT(EPOCH FROM {col}) * 1000000)::bigint")
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
    let mut s = ImportSummary::default();
    let pool = db.pool();
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

    // Users.
    let rows = sqlx::query(&format!(
        "SELECT uid, name, COALESCE(email, name || '@users.imported.invalid'), first_name, last_name, password, \
         (CASE WHEN perm::text = 'admin' THEN 1 ELSE 0 END)::int8, {}, {} FROM \"user\" WHERE deleted_at IS NULL ORDER BY id",
        micros("created_at"),
        micros("updated_at")
    ))
    .fetch_all(legacy)
    .await
    .context("cannot read the Yatai 1.x users")?;
    for r in &rows {
        let uid: String = r.get(0);
        let inserted = insert(
            &mut tx,
            dry,
            "users",
            "uid",
            &uid,
            "INSERT INTO users (uid, name, email, first_name, last_name, password_hash, is_site_admin, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
            vec![
                uid.clone().into(),
                r.get::<String, _>(1).into(),
                r.get::<String, _>(2).into(),
                r.get::<String, _>(3).into(),
                r.get::<String, _>(4).into(),
                r.get::<String, _>(5).into(),
                r.get::<i64, _>(6).into(),
                r.get::<i64, _>(7).into(),
                r.get::<Option<i64>, _>(8).into(),
            ],
        )
        .await?;
        s.add("users", inserted);
    }

    // Organizations.
    let rows = sqlx::query(&format!(
        "SELECT o.uid, o.name, COALESCE(o.description, ''), u.uid, {}, {} FROM organization o \
         LEFT JOIN \"user\" u ON u.id = o.creator_id AND u.deleted_at IS NULL WHERE o.deleted_at IS NULL ORDER BY o.id",
        micros("o.created_at"),
        micros("o.updated_at")
    ))
    .fetch_all(legacy)
    .await
    .context("cannot read the Yatai 1.x organizations")?;
    for r in &rows {
        let uid: String = r.get(0);
        let inserted = insert(
            &mut tx,
            dry,
            "organizations",
            "uid",
            &uid,
            "INSERT INTO organizations (uid, name, description, creator_uid, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            vec![
                uid.clone().into(),
                r.get::<String, _>(1).into(),
                r.get::<String, _>(2).into(),
                r.get::<Option<String>, _>(3).into(),
                r.get::<i64, _>(4).into(),
                r.get::<Option<i64>, _>(5).into(),
            ],
        )
        .await?;
        s.add("organizations", inserted);
    }

    // Members: direct ones and, through user groups, the group's members (strongest role first).
    let rows = sqlx::query(&format!(
        "SELECT o.uid, u.uid, m.role::text, {}, {} FROM organization_member m \
         JOIN organization o ON o.id = m.organization_id AND o.deleted_at IS NULL \
         LEFT JOIN user_group_user_relation g ON g.user_group_id = m.user_group_id AND g.deleted_at IS NULL \
         JOIN \"user\" u ON u.id = COALESCE(m.user_id, g.user_id) AND u.deleted_at IS NULL \
         WHERE m.deleted_at IS NULL \
         ORDER BY CASE m.role::text WHEN 'admin' THEN 0 WHEN 'developer' THEN 1 ELSE 2 END, m.id",
        micros("m.created_at"),
        micros("m.updated_at")
    ))
    .fetch_all(legacy)
    .await
    .context("cannot read the Yatai 1.x members")?;
    for r in &rows {
        let (org, user): (String, String) = (r.get(0), r.get(1));
        let inserted = insert_where(
            &mut tx,
            dry,
            "SELECT 1 FROM members WHERE organization_uid = $1 AND user_uid = $2",
            vec![org.clone().into(), user.clone().into()],
            "INSERT INTO members (organization_uid, user_uid, role, created_at, updated_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            vec![
                org.into(),
                user.into(),
                r.get::<String, _>(2).into(),
                r.get::<i64, _>(3).into(),
                r.get::<Option<i64>, _>(4).into(),
            ],
        )
        .await?;
        s.add("members", inserted);
    }

    // API tokens: stored here as the SHA-256 of the token, so the same token keeps working.
    let rows = sqlx::query(&format!(
        "SELECT t.uid, t.name, COALESCE(t.description, ''), o.uid, u.uid, COALESCE(t.scopes, '[]'), t.token, {}, {}, {}, {} \
         FROM api_token t JOIN organization o ON o.id = t.organization_id AND o.deleted_at IS NULL \
         JOIN \"user\" u ON u.id = t.user_id AND u.deleted_at IS NULL WHERE t.deleted_at IS NULL ORDER BY t.id",
        micros("t.expired_at"),
        micros("t.last_used_at"),
        micros("t.created_at"),
        micros("t.updated_at")
    ))
    .fetch_all(legacy)
    .await
    .context("cannot read the Yatai 1.x API tokens")?;
    for r in &rows {
        let uid: String = r.get(0);
        let scopes = legacy_scopes(&r.get::<String, _>(5));
        let token: String = r.get(6);
        let inserted = insert(
            &mut tx,
            dry,
            "api_tokens",
            "uid",
            &uid,
            "INSERT INTO api_tokens (uid, name, description, organization_uid, user_uid, scopes, token_hash, expired_at, last_used_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
            vec![
                uid.clone().into(),
                r.get::<String, _>(1).into(),
                r.get::<String, _>(2).into(),
                r.get::<String, _>(3).into(),
                r.get::<String, _>(4).into(),
                scopes.into(),
                sha256_hex(&token).into(),
                r.get::<Option<i64>, _>(7).into(),
                r.get::<Option<i64>, _>(8).into(),
                r.get::<i64, _>(9).into(),
                r.get::<Option<i64>, _>(10).into(),
            ],
        )
        .await?;
        s.add("api_tokens", inserted);
    }

    // Repositories.
    for kind in ["bento", "model"] {
        let rows = sqlx::query(&format!(
            "SELECT r.uid, o.uid, r.name, COALESCE(r.description, ''), u.uid, {}, {} FROM {kind}_repository r \
             JOIN organization o ON o.id = r.organization_id AND o.deleted_at IS NULL \
             LEFT JOIN \"user\" u ON u.id = r.creator_id AND u.deleted_at IS NULL WHERE r.deleted_at IS NULL ORDER BY r.id",
            micros("r.created_at"),
            micros("r.updated_at")
        ))
        .fetch_all(legacy)
        .await
        .with_context(|| format!("cannot read the Yatai 1.x {kind} repositories"))?;
        for r in &rows {
            let uid: String = r.get(0);
            let inserted = insert(
                &mut tx,
                dry,
                "repositories",
                "uid",
                &uid,
                "INSERT INTO repositories (uid, organization_uid, kind, name, description, creator_uid, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                vec![
                    uid.clone().into(),
                    r.get::<String, _>(1).into(),
                    kind.to_string().into(),
                    r.get::<String, _>(2).into(),
                    r.get::<String, _>(3).into(),
                    r.get::<Option<String>, _>(4).into(),
                    r.get::<i64, _>(5).into(),
                    r.get::<Option<i64>, _>(6).into(),
                ],
            )
            .await?;
            s.add("repositories", inserted);
        }
    }
    if !dry {
        tx.commit().await?;
    }

    // Versions, one at a time: the archive first, then the row (so an interruption resumes).
    for kind in ["bento", "model"] {
        let rows = sqlx::query(&format!(
            "SELECT v.uid, r.uid, v.version, COALESCE(v.description, ''), COALESCE(v.manifest::text, '{{}}'), \
             {}, v.upload_status::text, COALESCE(v.upload_finished_reason, ''), {}, {}, v.image_build_status::text, \
             u.uid, {}, {}, o.name, o.uid, r.name \
             FROM {kind} v JOIN {kind}_repository r ON r.id = v.{kind}_repository_id AND r.deleted_at IS NULL \
             JOIN organization o ON o.id = r.organization_id AND o.deleted_at IS NULL \
             LEFT JOIN \"user\" u ON u.id = v.creator_id AND u.deleted_at IS NULL WHERE v.deleted_at IS NULL ORDER BY v.id",
            micros("COALESCE(v.build_at, v.created_at)"),
            micros("v.upload_started_at"),
            micros("v.upload_finished_at"),
            micros("v.created_at"),
            micros("v.updated_at"),
        ))
        .fetch_all(legacy)
        .await
        .with_context(|| format!("cannot read the Yatai 1.x {kind}s"))?;
        let total = rows.len();
        for (i, r) in rows.iter().enumerate() {
            let uid: String = r.get(0);
            let exists = sqlx::query("SELECT 1 FROM versions WHERE uid = $1")
                .bind(&uid)
                .fetch_optional(pool)
                .await?
                .is_some();
            if exists {
                s.add("versions", false);
                continue;
            }
            let (org_name, org_uid, repo): (String, String, String) =
                (r.get(14), r.get(15), r.get(16));
            let version: String = r.get(2);
            let mut status: String = r.get(6);
            let mut reason: String = r.get(7);
            let mut archive: (Option<String>, Option<i64>, Option<String>) = (None, None, None);
            if status == "success" {
                let legacy_key = format!("{kind}s/{org_name}/{repo}/{version}.tar.gz");
                let key = format!("{kind}s/{org_uid}/{repo}/{version}/{uid}");
                let source = legacy_objects.ok_or_else(|| {
                    anyhow!("the Yatai 1.x installation holds archives: give its bucket with --from-yatai-s3-endpoint / --from-yatai-s3-bucket-name (and its credentials)")
                })?;
                match source
                    .size(&legacy_key)
                    .await
                    .map_err(|e| anyhow!("cannot read the Yatai 1.x bucket: {e}"))?
                {
                    None => {
                        s.archives_missing.push(format!("{kind} {repo}:{version}"));
                        progress(format!(
                            "warning: the archive of {kind} {repo}:{version} ({legacy_key}) is not in the Yatai 1.x bucket; imported as a failed upload"
                        ));
                        status = "failed".into();
                        reason = format!("the archive was missing from the Yatai 1.x bucket at import ({legacy_key})");
                    }
                    Some(size) if dry => {
                        s.archives_copied += 1;
                        s.archive_bytes += size;
                    }
                    Some(size) => {
                        let reader = source.get(&legacy_key, None).await.map_err(|e| {
                            anyhow!("cannot read {legacy_key} from the Yatai 1.x bucket: {e}")
                        })?;
                        let stored = objects
                            .put_stream(&key, reader.stream.map_err(|e| e.to_string()))
                            .await
                            .map_err(|e| anyhow!("cannot copy {legacy_key}: {e}"))?;
                        if stored.size != size {
                            let _ = objects.delete(&key).await;
                            bail!("the copy of {legacy_key} has {} bytes, the source {size}: nothing of this version was imported; run the import again", stored.size);
                        }
                        s.archives_copied += 1;
                        s.archive_bytes += size;
                        archive = (Some(key), Some(size as i64), Some(stored.sha256));
                        progress(format!(
                            "{kind}s {}/{total}: copied {repo}:{version} ({})",
                            i + 1,
                            human_bytes(size)
                        ));
                    }
                }
            }
            let manifest: String = r.get(4);
            let inserted = insert_where(
                pool,
                dry,
                "SELECT 1 FROM versions WHERE uid = $1",
                vec![uid.clone().into()],
                "INSERT INTO versions (uid, repository_uid, kind, version, description, manifest, build_at, upload_status, \
                 upload_finished_reason, upload_started_at, upload_finished_at, image_build_status, object_key, archive_size, \
                 archive_sha256, creator_uid, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) ON CONFLICT DO NOTHING",
                vec![
                    uid.clone().into(),
                    r.get::<String, _>(1).into(),
                    kind.to_string().into(),
                    version.clone().into(),
                    r.get::<String, _>(3).into(),
                    manifest.clone().into(),
                    r.get::<i64, _>(5).into(),
                    status.into(),
                    reason.into(),
                    r.get::<Option<i64>, _>(8).into(),
                    r.get::<Option<i64>, _>(9).into(),
                    r.get::<String, _>(10).into(),
                    archive.0.into(),
                    archive.1.into(),
                    archive.2.into(),
                    r.get::<Option<String>, _>(11).into(),
                    r.get::<i64, _>(12).into(),
                    r.get::<Option<i64>, _>(13).into(),
                ],
            )
            .await?;
            s.add("versions", inserted);
        }
    }

    // Bento -> model relations, labels and events.
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "SELECT b.uid, o.uid, mr.name, m.version FROM bento_model_rel rel \
         JOIN bento b ON b.id = rel.bento_id AND b.deleted_at IS NULL \
         JOIN bento_repository br ON br.id = b.bento_repository_id AND br.deleted_at IS NULL \
         JOIN model m ON m.id = rel.model_id AND m.deleted_at IS NULL \
         JOIN model_repository mr ON mr.id = m.model_repository_id \
         JOIN organization o ON o.id = mr.organization_id WHERE rel.deleted_at IS NULL ORDER BY rel.id",
    )
    .fetch_all(legacy)
    .await
    .context("cannot read the Yatai 1.x bento-model relations")?;
    for r in &rows {
        let vals: Vec<Bind> = (0..4).map(|i| r.get::<String, _>(i).into()).collect();
        let inserted = insert_where(
            &mut tx,
            dry,
            "SELECT 1 FROM bento_models WHERE bento_uid = $1 AND organization_uid = $2 AND model_name = $3 AND model_version = $4",
            vals.clone(),
            "INSERT INTO bento_models (bento_uid, organization_uid, model_name, model_version) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            vals,
        )
        .await?;
        s.add("bento_models", inserted);
    }
    let resource_uid = "CASE l.resource_type::text \
        WHEN 'bento' THEN (SELECT uid FROM bento WHERE id = l.resource_id) \
        WHEN 'model' THEN (SELECT uid FROM model WHERE id = l.resource_id) \
        WHEN 'bento_repository' THEN (SELECT uid FROM bento_repository WHERE id = l.resource_id) \
        WHEN 'model_repository' THEN (SELECT uid FROM model_repository WHERE id = l.resource_id) END";
    let rows = sqlx::query(&format!(
        "SELECT x.resource_uid, x.org_uid, x.key, x.value FROM (SELECT {resource_uid} AS resource_uid, o.uid AS org_uid, l.key, l.value, l.id \
         FROM label l JOIN organization o ON o.id = l.organization_id AND o.deleted_at IS NULL WHERE l.deleted_at IS NULL) x \
         WHERE x.resource_uid IS NOT NULL ORDER BY x.id"
    ))
    .fetch_all(legacy)
    .await
    .context("cannot read the Yatai 1.x labels")?;
    for r in &rows {
        let (res, org): (String, String) = (r.get(0), r.get(1));
        let key: String = r.get(2);
        let known = sqlx::query("SELECT 1 FROM versions WHERE uid = $1 UNION ALL SELECT 1 FROM repositories WHERE uid = $1")
            .bind(&res)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !known && !dry {
            continue;
        }
        let inserted = insert_where(
            &mut tx,
            dry,
            "SELECT 1 FROM labels WHERE resource_uid = $1 AND label_key = $2",
            vec![res.clone().into(), key.clone().into()],
            "INSERT INTO labels (resource_uid, organization_uid, label_key, label_value) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            vec![res.into(), org.into(), key.into(), r.get::<String, _>(3).into()],
        )
        .await?;
        s.add("labels", inserted);
    }
    let resource_name = "CASE e.resource_type::text \
        WHEN 'bento' THEN (SELECT r.name || ':' || b.version FROM bento b JOIN bento_repository r ON r.id = b.bento_repository_id WHERE b.id = e.resource_id) \
        WHEN 'model' THEN (SELECT r.name || ':' || m.version FROM model m JOIN model_repository r ON r.id = m.model_repository_id WHERE m.id = e.resource_id) \
        WHEN 'bento_repository' THEN (SELECT name FROM bento_repository WHERE id = e.resource_id) \
        WHEN 'model_repository' THEN (SELECT name FROM model_repository WHERE id = e.resource_id) \
        WHEN 'organization' THEN (SELECT name FROM organization WHERE id = e.resource_id) \
        WHEN 'user' THEN (SELECT name FROM \"user\" WHERE id = e.resource_id) \
        WHEN 'api_token' THEN (SELECT name FROM api_token WHERE id = e.resource_id) END";
    let rows = sqlx::query(&format!(
        "SELECT e.uid, o.uid, u.uid, COALESCE(u.name, ''), COALESCE(e.api_token_name, ''), e.resource_type::text, \
         COALESCE({resource_name}, e.name), e.operation_name, e.status::text, {} FROM event e \
         JOIN organization o ON o.id = e.organization_id AND o.deleted_at IS NULL \
         LEFT JOIN \"user\" u ON u.id = e.creator_id WHERE e.deleted_at IS NULL ORDER BY e.id",
        micros("e.created_at")
    ))
    .fetch_all(legacy)
    .await
    .context("cannot read the Yatai 1.x events")?;
    for r in &rows {
        let uid: String = r.get(0);
        let inserted = insert(
            &mut tx,
            dry,
            "events",
            "uid",
            &uid,
            "INSERT INTO events (uid, organization_uid, user_uid, user_name, api_token_name, resource_type, resource_name, operation_name, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
            vec![
                uid.clone().into(),
                r.get::<String, _>(1).into(),
                r.get::<Option<String>, _>(2).into(),
                r.get::<String, _>(3).into(),
                r.get::<String, _>(4).into(),
                r.get::<String, _>(5).into(),
                r.get::<String, _>(6).into(),
                r.get::<String, _>(7).into(),
                r.get::<String, _>(8).into(),
                r.get::<i64, _>(9).into(),
            ],
        )
        .await?;
        s.add("events", inserted);
    }
    if !dry {
        tx.commit().await?;
    }
    s.elapsed = started.elapsed();
    Ok(s)
}

/// A value to bind.
#[derive(Debug, Clone)]
enum Bind {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Bind {
    fn from(v: i64) -> Self {
        Bind::Int(Some(v))
    }
}
impl From<Option<i64>> for Bind {
    fn from(v: Option<i64>) -> Self {
        Bind::Int(v)
    }
}
impl From<String> for Bind {
    fn from(v: String) -> Self {
        Bind::Text(Some(v))
    }
}
impl From<Option<String>> for Bind {
    fn from(v: Option<String>) -> Self {
        Bind::Text(v)
    }
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    values: Vec<Bind>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for v in values {
        q = match v {
            Bind::Int(i) => q.bind(i),
            Bind::Text(s) => q.bind(s),
        };
    }
    q
}

/// Inserts a row keyed by `uid` unless it exists; in a dry run only looks. Returns whether
/// the row is (or would be) new.
async fn insert<'c, E>(
    ex: E,
    dry: bool,
    table: &str,
    key_column: &str,
    key: &str,
    sql: &str,
    values: Vec<Bind>,
) -> anyhow::Result<bool>
where
    E: sqlx::Acquire<'c, Database = sqlx::Any>,
{
    insert_where(
        ex,
        dry,
        &format!("SELECT 1 FROM {table} WHERE {key_column} = $1"),
        vec![key.to_string().into()],
        sql,
        values,
    )
    .await
}

async fn insert_where<'c, E>(
    ex: E,
    dry: bool,
    exists_sql: &str,
    exists_values: Vec<Bind>,
    sql: &str,
    values: Vec<Bind>,
) -> anyhow::Result<bool>
where
    E: sqlx::Acquire<'c, Database = sqlx::Any>,
{
    let mut conn = ex.acquire().await?;
    let exists = bind_all(sqlx::query(exists_sql), exists_values)
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    if exists {
        return Ok(false);
    }
    if dry {
        return Ok(true);
    }
    let done = bind_all(sqlx::query(sql), values)
        .execute(&mut *conn)
        .await
        .with_context(|| {
            format!(
                "cannot import a row ({})",
                sql.split('(').next().unwrap_or(sql).trim()
            )
        })?;
    Ok(done.rows_affected() == 1)
}

/// Yatai 1.x keeps scopes as a JSON list; here they are a comma-separated list of the known ones.
fn legacy_scopes(raw: &str) -> String {
    let list: Vec<String> = serde_json::from_str(raw).unwrap_or_else(|_| {
        raw.split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .collect()
    });
    list.into_iter()
        .filter(|s| {
            matches!(
                s.as_str(),
                "api"
                    | "read_organization"
                    | "write_organization"
                    | "read_cluster"
                    | "write_cluster"
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
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
                    contents
                        .iter()
                        .map(|(t, n)| format!("{n} {t}"))
                        .collect::<Vec<_>>()
                        .join(", ")
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
    fn scopes_become_the_comma_separated_known_ones() {
        assert_eq!(
            legacy_scopes(r#"["api","read_organization","unknown"]"#),
            "api,read_organization"
        );
        assert_eq!(legacy_scopes("api,write_cluster"), "api,write_cluster");
        assert_eq!(
            source_name("postgres://u:secret@db:5433/yatai"),
            "db:5433/yatai"
        );
    }
}
