//! Deployments, their revisions and the targets of each revision. A deployment row holds the
//! desired state (`desired`) and what its cluster's runtime last observed (`status`, `url`).

use std::collections::HashMap;

use sqlx::{Any, AnyPool, Executor, Transaction};
use yatai_domain::paging::Page;
use yatai_domain::{time::now_micros, Error};

use super::query::{self, Args};
use super::{db_error, db_error_named};

/// A deployment.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Deployment {
    pub uid: String,
    pub organization_uid: String,
    pub cluster_uid: String,
    pub kube_namespace: String,
    pub name: String,
    pub description: String,
    /// JSON list of `{key, value}`.
    pub labels: String,
    pub mode: String,
    /// `running` or `terminated`.
    pub desired: String,
    /// A `yatai_domain::deployments::DeploymentStatus` wire name.
    pub status: String,
    pub status_reason: String,
    pub url: String,
    pub creator_uid: Option<String>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
    pub status_updated_at: Option<i64>,
}

const COLUMNS: &str = "uid, organization_uid, cluster_uid, kube_namespace, name, description, labels, mode, desired, status, status_reason, url, creator_uid, created_at, updated_at, status_updated_at";

/// A revision: one change of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Revision {
    pub uid: String,
    pub deployment_uid: String,
    pub number: i64,
    /// `active` or `inactive`.
    pub status: String,
    pub rollback_of: String,
    pub creator_uid: Option<String>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

const REVISION_COLUMNS: &str =
    "uid, deployment_uid, number, status, rollback_of, creator_uid, created_at, updated_at";

/// A target of a revision: which bento runs, and how (`config`: the canonical spec, JSON).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Target {
    pub uid: String,
    pub revision_uid: String,
    pub target_type: String,
    pub bento_repository: String,
    pub bento_version: String,
    pub config: String,
    pub canary_rules: String,
    pub creator_uid: Option<String>,
    pub created_at: i64,
}

const TARGET_COLUMNS: &str = "uid, revision_uid, target_type, bento_repository, bento_version, config, canary_rules, creator_uid, created_at";

/// What a new deployment is made of.
#[derive(Debug, Clone)]
pub struct NewDeployment<'a> {
    pub organization_uid: &'a str,
    pub cluster_uid: &'a str,
    pub kube_namespace: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub labels: &'a str,
    pub mode: &'a str,
    pub status: &'a str,
    pub creator_uid: &'a str,
}

/// What a new target is made of.
#[derive(Debug, Clone)]
pub struct NewTarget<'a> {
    pub target_type: &'a str,
    pub bento_repository: &'a str,
    pub bento_version: &'a str,
    pub config: &'a str,
    pub canary_rules: &'a str,
}

/// Inserts a deployment that should run; a taken (cluster, namespace, name) is a conflict.
pub async fn create(
    tx: &mut Transaction<'_, Any>,
    d: &NewDeployment<'_>,
) -> Result<Deployment, Error> {
    let now = now_micros();
    let row = Deployment {
        uid: crate::new_uid(),
        organization_uid: d.organization_uid.into(),
        cluster_uid: d.cluster_uid.into(),
        kube_namespace: d.kube_namespace.into(),
        name: d.name.into(),
        description: d.description.into(),
        labels: d.labels.into(),
        mode: d.mode.into(),
        desired: "running".into(),
        status: d.status.into(),
        status_reason: String::new(),
        url: String::new(),
        creator_uid: Some(d.creator_uid.into()),
        created_at: now,
        updated_at: None,
        status_updated_at: Some(now),
    };
    sqlx::query(&format!(
        "INSERT INTO deployments ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '', '', $11, $12, NULL, $12)"
    ))
    .bind(&row.uid)
    .bind(&row.organization_uid)
    .bind(&row.cluster_uid)
    .bind(&row.kube_namespace)
    .bind(&row.name)
    .bind(&row.description)
    .bind(&row.labels)
    .bind(&row.mode)
    .bind(&row.desired)
    .bind(&row.status)
    .bind(d.creator_uid)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(db_error_named(format!(
        "a deployment named {:?} in namespace {:?} of this cluster",
        d.name, d.kube_namespace
    )))?;
    Ok(row)
}

/// A deployment by cluster, namespace and name.
pub async fn find<'c>(
    ex: impl Executor<'c, Database = Any>,
    cluster_uid: &str,
    kube_namespace: &str,
    name: &str,
) -> Result<Option<Deployment>, Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM deployments WHERE cluster_uid = $1 AND kube_namespace = $2 AND name = $3"
    ))
    .bind(cluster_uid)
    .bind(kube_namespace)
    .bind(name)
    .fetch_optional(ex)
    .await
    .map_err(db_error)
}

/// The deployments of a cluster with this name, in any namespace (the v2 API names a
/// deployment without its namespace).
pub async fn find_by_name<'c>(
    ex: impl Executor<'c, Database = Any>,
    cluster_uid: &str,
    name: &str,
) -> Result<Vec<Deployment>, Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM deployments WHERE cluster_uid = $1 AND name = $2 ORDER BY kube_namespace"
    ))
    .bind(cluster_uid)
    .bind(name)
    .fetch_all(ex)
    .await
    .map_err(db_error)
}

/// A deployment by uid.
pub async fn find_by_uid<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
) -> Result<Option<Deployment>, Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM deployments WHERE uid = $1"))
        .bind(uid)
        .fetch_optional(ex)
        .await
        .map_err(db_error)
}

/// A page of an organization's deployments (of one cluster when given), newest first;
/// `search` matches the name.
pub async fn list(
    pool: &AnyPool,
    organization_uid: &str,
    cluster_uid: Option<&str>,
    search: &str,
    page: Page,
) -> Result<(Vec<Deployment>, i64), Error> {
    let mut args = Args::default();
    let mut from_where = format!(
        "FROM deployments WHERE organization_uid = {}",
        args.push(organization_uid)
    );
    if let Some(c) = cluster_uid {
        from_where.push_str(&format!(" AND cluster_uid = {}", args.push(c)));
    }
    if !search.is_empty() {
        from_where.push_str(&format!(" AND {}", args.contains(&["name"], search)));
    }
    query::page(
        pool,
        COLUMNS,
        &from_where,
        "created_at DESC, uid",
        &args,
        page,
    )
    .await
}

/// Every deployment (the reconciler's view).
pub async fn all(pool: &AnyPool) -> Result<Vec<Deployment>, Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM deployments ORDER BY created_at"
    ))
    .fetch_all(pool)
    .await
    .map_err(db_error)
}

/// Sets what should be (`running` / `terminated`) and the status to show until the runtime
/// reports.
pub async fn set_desired<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
    desired: &str,
    status: &str,
) -> Result<(), Error> {
    let now = now_micros();
    sqlx::query(
        "UPDATE deployments SET desired = $1, status = $2, status_reason = '', updated_at = $3, \
         status_updated_at = $3 WHERE uid = $4",
    )
    .bind(desired)
    .bind(status)
    .bind(now)
    .bind(uid)
    .execute(ex)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Changes the description, labels and mode.
pub async fn update_meta<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
    description: &str,
    labels: &str,
    mode: &str,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE deployments SET description = $1, labels = $2, mode = $3, updated_at = $4 WHERE uid = $5",
    )
    .bind(description)
    .bind(labels)
    .bind(mode)
    .bind(now_micros())
    .bind(uid)
    .execute(ex)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Records what the runtime observed for the row `seen_as` (as the reconciler read it);
/// returns whether the status changed (only then is an event worth writing). A change of the
/// deployment since (a new revision, terminate: both move `updated_at`) makes the report stale,
/// and it is dropped: the next pass reports on the new state.
pub async fn set_observed(
    pool: &AnyPool,
    seen_as: &Deployment,
    status: &str,
    reason: &str,
    url: &str,
) -> Result<bool, Error> {
    let now = now_micros();
    let changed = sqlx::query(
        "UPDATE deployments SET status = $1, status_reason = $2, url = $3, status_updated_at = $4 \
         WHERE uid = $5 AND desired = $6 AND COALESCE(updated_at, 0) = $7 \
         AND (status <> $1 OR status_reason <> $2 OR url <> $3)",
    )
    .bind(status)
    .bind(reason)
    .bind(url)
    .bind(now)
    .bind(&seen_as.uid)
    .bind(&seen_as.desired)
    .bind(seen_as.updated_at.unwrap_or(0))
    .execute(pool)
    .await
    .map_err(db_error)?
    .rows_affected();
    Ok(changed > 0)
}

/// Deletes a deployment with its revisions and targets, only if it is still terminated (one
/// statement decides, so that a concurrent start is not deleted); returns whether it was.
pub async fn delete_terminated<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
) -> Result<bool, Error> {
    let done = sqlx::query(
        "DELETE FROM deployments WHERE uid = $1 AND desired = 'terminated' \
         AND status IN ('terminated', 'non-deployed')",
    )
    .bind(uid)
    .execute(ex)
    .await
    .map_err(db_error)?;
    Ok(done.rows_affected() > 0)
}

/// Adds the next revision of a deployment, active, and makes the others inactive.
///
/// The deployment's row is locked first (see [`super::lock_row`]), so that revisions of one
/// deployment are added in turns, each numbered after the last one committed. On PostgreSQL,
/// an update (which wrote the deployment, then its revisions) and a rollback (its revisions,
/// then the deployment) at once each waited for the other until one was aborted as a deadlock,
/// and two rollbacks read the same last number, the second refused as a duplicate.
pub async fn add_revision(
    tx: &mut Transaction<'_, Any>,
    deployment_uid: &str,
    creator_uid: &str,
    rollback_of: &str,
    targets: &[NewTarget<'_>],
) -> Result<(Revision, Vec<Target>), Error> {
    super::lock_row(
        tx,
        "deployments",
        "deployment",
        deployment_uid,
        super::RowLock::Writers,
    )
    .await?;
    let now = now_micros();
    let number: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(number), 0) + 1 FROM deployment_revisions WHERE deployment_uid = $1",
    )
    .bind(deployment_uid)
    .fetch_one(&mut **tx)
    .await
    .map_err(db_error)?;
    sqlx::query(
        "UPDATE deployment_revisions SET status = 'inactive', updated_at = $1 \
         WHERE deployment_uid = $2 AND status = 'active'",
    )
    .bind(now)
    .bind(deployment_uid)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    let revision = Revision {
        uid: crate::new_uid(),
        deployment_uid: deployment_uid.into(),
        number,
        status: "active".into(),
        rollback_of: rollback_of.into(),
        creator_uid: Some(creator_uid.into()),
        created_at: now,
        updated_at: None,
    };
    sqlx::query(&format!(
        "INSERT INTO deployment_revisions ({REVISION_COLUMNS}) VALUES ($1, $2, $3, 'active', $4, $5, $6, NULL)"
    ))
    .bind(&revision.uid)
    .bind(deployment_uid)
    .bind(number)
    .bind(rollback_of)
    .bind(creator_uid)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    let mut rows = Vec::new();
    for t in targets {
        let row = Target {
            uid: crate::new_uid(),
            revision_uid: revision.uid.clone(),
            target_type: t.target_type.into(),
            bento_repository: t.bento_repository.into(),
            bento_version: t.bento_version.into(),
            config: t.config.into(),
            canary_rules: t.canary_rules.into(),
            creator_uid: Some(creator_uid.into()),
            created_at: now,
        };
        sqlx::query(&format!(
            "INSERT INTO deployment_targets ({TARGET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&row.uid)
        .bind(&row.revision_uid)
        .bind(&row.target_type)
        .bind(&row.bento_repository)
        .bind(&row.bento_version)
        .bind(&row.config)
        .bind(&row.canary_rules)
        .bind(creator_uid)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        rows.push(row);
    }
    Ok((revision, rows))
}

/// The active revision of each of the given deployments, by deployment uid.
pub async fn active_revisions<'c>(
    ex: impl Executor<'c, Database = Any>,
    deployment_uids: &[String],
) -> Result<HashMap<String, Revision>, Error> {
    if deployment_uids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut args = Args::default();
    let sql = format!(
        "SELECT {REVISION_COLUMNS} FROM deployment_revisions WHERE status = 'active' AND deployment_uid IN ({})",
        args.list(deployment_uids)
    );
    let rows: Vec<Revision> = args.fetch_all(ex, &sql).await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.deployment_uid.clone(), r))
        .collect())
}

/// A page of a deployment's revisions, newest first.
pub async fn revisions(
    pool: &AnyPool,
    deployment_uid: &str,
    page: Page,
) -> Result<(Vec<Revision>, i64), Error> {
    let mut args = Args::default();
    let from_where = format!(
        "FROM deployment_revisions WHERE deployment_uid = {}",
        args.push(deployment_uid)
    );
    query::page(
        pool,
        REVISION_COLUMNS,
        &from_where,
        "number DESC",
        &args,
        page,
    )
    .await
}

/// One revision of a deployment.
pub async fn revision<'c>(
    ex: impl Executor<'c, Database = Any>,
    deployment_uid: &str,
    uid: &str,
) -> Result<Option<Revision>, Error> {
    sqlx::query_as(&format!(
        "SELECT {REVISION_COLUMNS} FROM deployment_revisions WHERE deployment_uid = $1 AND uid = $2"
    ))
    .bind(deployment_uid)
    .bind(uid)
    .fetch_optional(ex)
    .await
    .map_err(db_error)
}

/// The targets of the given revisions, by revision uid, in creation order.
pub async fn targets<'c>(
    ex: impl Executor<'c, Database = Any>,
    revision_uids: &[String],
) -> Result<HashMap<String, Vec<Target>>, Error> {
    if revision_uids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut args = Args::default();
    let sql = format!(
        "SELECT {TARGET_COLUMNS} FROM deployment_targets WHERE revision_uid IN ({}) ORDER BY created_at, uid",
        args.list(revision_uids)
    );
    let rows: Vec<Target> = args.fetch_all(ex, &sql).await?;
    let mut by: HashMap<String, Vec<Target>> = HashMap::new();
    for r in rows {
        by.entry(r.revision_uid.clone()).or_default().push(r);
    }
    Ok(by)
}
