//! Clusters: where an organization's deployments run (`local` or `kubernetes`).

use sqlx::{Any, AnyPool, Executor};
use yatai_domain::paging::Page;
use yatai_domain::{time::now_micros, Error};

use super::query::{self, Args};
use super::{db_error, db_error_named};

/// A cluster. Its `Debug` leaves the kubeconfig out (it holds credentials).
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Cluster {
    pub uid: String,
    pub organization_uid: String,
    pub name: String,
    pub description: String,
    /// `local` or `kubernetes` (see `yatai_domain::deployments::ClusterKind`).
    pub kind: String,
    /// The kubeconfig (a secret: never shown in full); empty for `local` and in-cluster.
    pub kube_config: String,
    pub default_namespace: String,
    pub creator_uid: Option<String>,
    pub created_at: i64,
    pub updated_at: Option<i64>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("uid", &self.uid)
            .field("organization_uid", &self.organization_uid)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field(
                "kube_config",
                &format_args!("<{} bytes, redacted>", self.kube_config.len()),
            )
            .field("default_namespace", &self.default_namespace)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "uid, organization_uid, name, description, kind, kube_config, default_namespace, creator_uid, created_at, updated_at";

/// What a new cluster is made of.
#[derive(Debug, Clone)]
pub struct NewCluster<'a> {
    pub organization_uid: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub kind: &'a str,
    pub kube_config: &'a str,
    pub default_namespace: &'a str,
    pub creator_uid: &'a str,
}

/// Inserts a cluster; a taken name is a conflict.
pub async fn create<'c>(
    ex: impl Executor<'c, Database = Any>,
    c: &NewCluster<'_>,
) -> Result<Cluster, Error> {
    let cluster = Cluster {
        uid: crate::new_uid(),
        organization_uid: c.organization_uid.to_string(),
        name: c.name.to_string(),
        description: c.description.to_string(),
        kind: c.kind.to_string(),
        kube_config: c.kube_config.to_string(),
        default_namespace: c.default_namespace.to_string(),
        creator_uid: Some(c.creator_uid.to_string()),
        created_at: now_micros(),
        updated_at: None,
    };
    sqlx::query(&format!(
        "INSERT INTO clusters ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)"
    ))
    .bind(&cluster.uid)
    .bind(&cluster.organization_uid)
    .bind(&cluster.name)
    .bind(&cluster.description)
    .bind(&cluster.kind)
    .bind(&cluster.kube_config)
    .bind(&cluster.default_namespace)
    .bind(c.creator_uid)
    .bind(cluster.created_at)
    .execute(ex)
    .await
    .map_err(db_error_named(format!("a cluster named {:?}", c.name)))?;
    Ok(cluster)
}

/// The cluster of an organization by name.
pub async fn find<'c>(
    ex: impl Executor<'c, Database = Any>,
    organization_uid: &str,
    name: &str,
) -> Result<Option<Cluster>, Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM clusters WHERE organization_uid = $1 AND name = $2"
    ))
    .bind(organization_uid)
    .bind(name)
    .fetch_optional(ex)
    .await
    .map_err(db_error)
}

/// A cluster by uid.
pub async fn find_by_uid<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
) -> Result<Option<Cluster>, Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM clusters WHERE uid = $1"))
        .bind(uid)
        .fetch_optional(ex)
        .await
        .map_err(db_error)
}

/// A page of an organization's clusters: `default` first (the clients take the first as the
/// default cluster), then by name; `search` matches the name.
pub async fn list(
    pool: &AnyPool,
    organization_uid: &str,
    search: &str,
    page: Page,
) -> Result<(Vec<Cluster>, i64), Error> {
    let mut args = Args::default();
    let mut from_where = format!(
        "FROM clusters WHERE organization_uid = {}",
        args.push(organization_uid)
    );
    if !search.is_empty() {
        from_where.push_str(&format!(" AND {}", args.contains(&["name"], search)));
    }
    query::page(
        pool,
        COLUMNS,
        &from_where,
        "CASE WHEN name = 'default' THEN 0 ELSE 1 END, name",
        &args,
        page,
    )
    .await
}

/// Every cluster (the reconciler's view).
pub async fn all(pool: &AnyPool) -> Result<Vec<Cluster>, Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM clusters"))
        .fetch_all(pool)
        .await
        .map_err(db_error)
}

/// Changes a cluster's description, kubeconfig (when `Some`) and default namespace.
pub async fn update<'c>(
    ex: impl Executor<'c, Database = Any>,
    uid: &str,
    description: &str,
    kube_config: Option<&str>,
    default_namespace: &str,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE clusters SET description = $1, kube_config = COALESCE($2, kube_config), \
         default_namespace = $3, updated_at = $4 WHERE uid = $5",
    )
    .bind(description)
    .bind(kube_config)
    .bind(default_namespace)
    .bind(now_micros())
    .bind(uid)
    .execute(ex)
    .await
    .map_err(db_error)?;
    Ok(())
}
