//! Clusters and deployments: one function per use case (the v1 and v2 APIs and the dashboard
//! are adapters over these), and the reconciler that makes each cluster's runtime match the
//! desired state stored in the database.
//!
//! A change never talks to a runtime directly: it writes the desired state (a new revision,
//! `desired = running | terminated`) and wakes the reconciler. So a crash between the two
//! loses nothing, and a restarted server reconciles every deployment back.

pub mod spec;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;
use yatai_domain::deployments::{
    validate_dns1123_label, ClusterKind, ClusterRuntime, DeploymentStatus, Desired, Observed,
};
use yatai_domain::manifest::BentoManifest;
use yatai_domain::paging::Page;
use yatai_domain::registry::Kind;
use yatai_domain::{names, Action, Error};
use yatai_store::db::clusters::{self, Cluster, NewCluster};
use yatai_store::db::deployments::{
    self as rows, Deployment, NewDeployment, NewTarget, Revision, Target,
};
use yatai_store::db::repositories::Repository;
use yatai_store::db::versions::Version;
use yatai_store::db::{db_error, organizations, repositories, versions};

use crate::{events, Caller, Services};
use spec::Spec;

/// The name of the local cluster every organization has.
pub const DEFAULT_CLUSTER: &str = "default";
/// The namespace deployments go to when nobody names one.
pub const DEFAULT_NAMESPACE: &str = "default";
/// How often the reconciler looks at every deployment when nothing wakes it.
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(3);
/// How long one deployment's reconcile may take before the reconciler moves on.
const RECONCILE_TIMEOUT: Duration = Duration::from_secs(30);

/// The runtimes of the clusters, provided by the program that embeds the services (the server
/// wires `runtime-local` and `runtime-kubernetes`; the service layer knows only the trait).
pub trait Runtimes: Send + Sync {
    /// The runtime of a cluster (built once per cluster and configuration, then reused).
    fn runtime<'a>(
        &'a self,
        cluster: &'a Cluster,
    ) -> yatai_domain::deployments::BoxFuture<'a, Result<Arc<dyn ClusterRuntime>, Error>>;
    /// Refuses a kubeconfig that cannot be used, with a message saying why.
    fn check_kube_config(&self, kube_config: &str) -> Result<(), Error>;
    /// A kubeconfig with its credentials removed, for display.
    fn redact_kube_config(&self, kube_config: &str) -> String;
}

/// The runtimes and the reconciler's wake-up call, set once when the server starts.
#[derive(Default)]
pub struct RuntimeSlot {
    runtimes: OnceLock<Arc<dyn Runtimes>>,
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for RuntimeSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeSlot")
            .field("set", &self.runtimes.get().is_some())
            .finish()
    }
}

impl RuntimeSlot {
    /// Installs the runtimes (once; later calls are ignored).
    pub fn set(&self, runtimes: Arc<dyn Runtimes>) {
        let _ = self.runtimes.set(runtimes);
    }

    fn get(&self) -> Option<&Arc<dyn Runtimes>> {
        self.runtimes.get()
    }

    /// Asks the reconciler to look now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

// ---------------------------------------------------------------------------------------------
// Clusters
// ---------------------------------------------------------------------------------------------

/// Creates the organization's `default` local cluster (part of creating an organization).
pub async fn create_default_cluster(
    tx: &mut yatai_store::db::Tx,
    organization_uid: &str,
    creator_uid: &str,
) -> Result<Cluster, Error> {
    clusters::create(
        &mut **tx,
        &NewCluster {
            organization_uid,
            name: DEFAULT_CLUSTER,
            description: "the server's own machine",
            kind: ClusterKind::Local.as_str(),
            kube_config: "",
            default_namespace: DEFAULT_NAMESPACE,
            creator_uid,
        },
    )
    .await
}

/// A page of the organization's clusters, `default` first.
pub async fn list_clusters(
    svc: &Services,
    caller: &Caller,
    search: &str,
    page: Page,
) -> Result<(Vec<Cluster>, i64), Error> {
    caller.authorize(Action::ReadCluster)?;
    clusters::list(svc.db.pool(), &caller.organization.uid, search, page).await
}

/// A cluster by name (`None` or empty: the default cluster, as the clients mean it).
pub async fn get_cluster(
    svc: &Services,
    caller: &Caller,
    name: Option<&str>,
) -> Result<Cluster, Error> {
    caller.authorize(Action::ReadCluster)?;
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    match name {
        Some(name) => clusters::find(svc.db.pool(), &caller.organization.uid, name)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "cluster {:?} not found in organization {:?}; `GET /api/v1/clusters` lists them",
                    name.chars().take(80).collect::<String>(),
                    caller.organization.name
                ))
            }),
        None => {
            let (mut list, _) =
                clusters::list(svc.db.pool(), &caller.organization.uid, "", Page::new(Some(0), Some(1), 1)?)
                    .await?;
            list.pop().ok_or_else(|| {
                Error::NotFound(format!(
                    "organization {:?} has no cluster; register one with POST /api/v1/clusters",
                    caller.organization.name
                ))
            })
        }
    }
}

/// What a new or changed cluster is made of.
#[derive(Debug, Clone, Default)]
pub struct ClusterInput {
    pub name: String,
    pub description: Option<String>,
    /// `kubernetes` (default) or `local`.
    pub kind: Option<String>,
    pub kube_config: Option<String>,
    pub default_namespace: Option<String>,
}

/// Registers a cluster (administrators).
pub async fn create_cluster(
    svc: &Services,
    caller: &Caller,
    input: &ClusterInput,
) -> Result<Cluster, Error> {
    caller.authorize(Action::WriteCluster)?;
    validate_dns1123_label("cluster name", &input.name).map_err(|e| Error::field("name", e))?;
    let description = input.description.clone().unwrap_or_default();
    names::validate_description("cluster", &description)
        .map_err(|e| Error::field("description", e))?;
    let kind: ClusterKind = input
        .kind
        .as_deref()
        .filter(|k| !k.is_empty())
        .unwrap_or("kubernetes")
        .parse()
        .map_err(|e| Error::field("kind", e))?;
    let namespace = input
        .default_namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.into());
    validate_dns1123_label("namespace", &namespace)
        .map_err(|e| Error::field("default_namespace", e))?;
    let kube_config = input.kube_config.clone().unwrap_or_default();
    check_kube_config(svc, kind, &kube_config)?;
    check_in_cluster(caller, kind, &kube_config)?;
    let cluster = clusters::create(
        svc.db.pool(),
        &NewCluster {
            organization_uid: &caller.organization.uid,
            name: &input.name,
            description: &description,
            kind: kind.as_str(),
            kube_config: &kube_config,
            default_namespace: &namespace,
            creator_uid: &caller.user().uid,
        },
    )
    .await?;
    events::record(svc, caller, "cluster", &cluster.name, "create").await;
    Ok(cluster)
}

/// The cluster the server runs in (a `kubernetes` cluster without kubeconfig) is reached with the
/// server's own service account: only a site administrator may hand that to an organization.
fn check_in_cluster(caller: &Caller, kind: ClusterKind, kube_config: &str) -> Result<(), Error> {
    if kind == ClusterKind::Kubernetes
        && kube_config.trim().is_empty()
        && !caller.user().is_site_admin
    {
        return Err(Error::field(
            "kube_config",
            Error::Forbidden(
                "only a site administrator may register the cluster this server runs in (no kubeconfig); \
                 give the kubeconfig of the cluster to use"
                    .into(),
            ),
        ));
    }
    Ok(())
}

fn check_kube_config(svc: &Services, kind: ClusterKind, kube_config: &str) -> Result<(), Error> {
    if kube_config.len() > 256 * 1024 {
        return Err(Error::field(
            "kube_config",
            Error::invalid("the kubeconfig is larger than 256 KiB"),
        ));
    }
    match kind {
        ClusterKind::Local if !kube_config.is_empty() => Err(Error::field(
            "kube_config",
            Error::invalid("a local cluster takes no kubeconfig"),
        )),
        ClusterKind::Kubernetes if !kube_config.trim().is_empty() => match svc.runtimes.get() {
            Some(r) => r
                .check_kube_config(kube_config)
                .map_err(|e| Error::field("kube_config", e)),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Changes a cluster's description, kubeconfig or default namespace (administrators).
pub async fn update_cluster(
    svc: &Services,
    caller: &Caller,
    name: &str,
    input: &ClusterInput,
) -> Result<Cluster, Error> {
    caller.authorize(Action::WriteCluster)?;
    let cluster = get_cluster(svc, caller, Some(name)).await?;
    let description = input
        .description
        .clone()
        .unwrap_or(cluster.description.clone());
    names::validate_description("cluster", &description)
        .map_err(|e| Error::field("description", e))?;
    let namespace = input
        .default_namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or(cluster.default_namespace.clone());
    validate_dns1123_label("namespace", &namespace)
        .map_err(|e| Error::field("default_namespace", e))?;
    let kind: ClusterKind = cluster.kind.parse()?;
    if let Some(k) = &input.kube_config {
        check_kube_config(svc, kind, k)?;
        check_in_cluster(caller, kind, k)?;
    }
    clusters::update(
        svc.db.pool(),
        &cluster.uid,
        &description,
        input.kube_config.as_deref(),
        &namespace,
    )
    .await?;
    events::record(svc, caller, "cluster", &cluster.name, "update").await;
    svc.runtimes.wake();
    clusters::find_by_uid(svc.db.pool(), &cluster.uid)
        .await?
        .ok_or_else(|| Error::not_found("cluster", name))
}

/// The names of the users who created some clusters, deployments or revisions, by uid (each
/// read once; a user deleted since is missing).
pub async fn user_names(
    svc: &Services,
    uids: &[Option<String>],
) -> Result<HashMap<String, String>, Error> {
    let mut uids: Vec<String> = uids.iter().flatten().cloned().collect();
    uids.sort();
    uids.dedup();
    Ok(yatai_store::db::users::find_many(svc.db.pool(), &uids)
        .await?
        .into_iter()
        .map(|u| (u.uid, u.name))
        .collect())
}

/// The kubeconfig of a cluster as it may be shown: credentials removed.
pub fn shown_kube_config(svc: &Services, cluster: &Cluster) -> String {
    if cluster.kube_config.is_empty() {
        return String::new();
    }
    match svc.runtimes.get() {
        Some(r) => r.redact_kube_config(&cluster.kube_config),
        None => "(redacted)".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Deployments
// ---------------------------------------------------------------------------------------------

/// A deployment with what its presentation needs.
#[derive(Debug, Clone)]
pub struct View {
    pub deployment: Deployment,
    pub cluster: Cluster,
    /// The active revision and its targets (none for a deployment being created).
    pub revision: Option<(Revision, Vec<Target>)>,
}

impl View {
    /// The canonical spec of the active revision's first target.
    pub fn spec(&self) -> Option<Spec> {
        let (_, targets) = self.revision.as_ref()?;
        serde_json::from_str(&targets.first()?.config).ok()
    }
}

/// One target of a change: the bento and its spec.
#[derive(Debug, Clone)]
pub struct TargetInput {
    pub bento_repository: String,
    pub bento_version: String,
    pub spec: Spec,
    pub target_type: String,
    pub canary_rules: Option<Value>,
}

/// A new deployment.
#[derive(Debug, Clone)]
pub struct CreateInput {
    pub name: String,
    pub namespace: Option<String>,
    pub description: Option<String>,
    pub labels: Vec<(String, String)>,
    pub mode: Option<String>,
    pub target: TargetInput,
}

/// A change of a deployment: a new revision with this target (`None`: only metadata).
#[derive(Debug, Clone, Default)]
pub struct UpdateInput {
    pub description: Option<String>,
    pub labels: Option<Vec<(String, String)>>,
    pub mode: Option<String>,
    pub target: Option<TargetInput>,
}

/// The bento a target names, which must be uploaded.
pub async fn deployable_bento(
    svc: &Services,
    caller: &Caller,
    repository: &str,
    version: &str,
) -> Result<(Repository, Version), Error> {
    let tag = crate::registry::tag(repository, version);
    let not_found = || {
        Error::field(
            "bento",
            Error::NotFound(format!(
                "bento \"{}\" not found in organization {:?}; push it first (bentoml push {})",
                tag.chars().take(160).collect::<String>(),
                caller.organization.name,
                tag.chars().take(160).collect::<String>()
            )),
        )
    };
    let repo = repositories::find(
        svc.db.pool(),
        &caller.organization.uid,
        Kind::Bento,
        repository,
    )
    .await?
    .ok_or_else(not_found)?;
    let v = versions::find(svc.db.pool(), &repo.uid, version)
        .await?
        .ok_or_else(not_found)?;
    crate::registry::versions::pullable(Kind::Bento, &tag, &v).map_err(|e| {
        Error::field(
            "bento",
            Error::Conflict(format!("{e}; it cannot be deployed until it is uploaded")),
        )
    })?;
    Ok((repo, v))
}

/// The entry service of a bento (1.4 `entry_service`, else the service name, else `apiserver`).
pub fn entry_service(v: &Version) -> String {
    let value: Value = serde_json::from_str(&v.manifest).unwrap_or(Value::Null);
    if let Some(s) = value
        .get("entry_service")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        return s.to_string();
    }
    BentoManifest::from_value(value)
        .ok()
        .and_then(|m| {
            m.service()
                .map(|s| s.split(':').next_back().unwrap_or(s).to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| spec::V1_MAIN.to_string())
}

fn check_meta(
    description: Option<&str>,
    labels: &[(String, String)],
    mode: Option<&str>,
) -> Result<(), Error> {
    if let Some(d) = description {
        names::validate_description("deployment", d).map_err(|e| Error::field("description", e))?;
    }
    crate::registry::versions::check_labels(labels).map_err(|e| Error::field("labels", e))?;
    if let Some(m) = mode.filter(|m| !m.is_empty()) {
        if !matches!(m, "deployment" | "function") {
            return Err(Error::field(
                "mode",
                Error::invalid(format!(
                    "mode {:?} is not known; expected deployment or function",
                    m.chars().take(40).collect::<String>()
                )),
            ));
        }
    }
    Ok(())
}

fn check_target(t: &TargetInput) -> Result<(), Error> {
    if !matches!(t.target_type.as_str(), "stable" | "canary") {
        return Err(Error::field(
            "targets",
            Error::invalid(format!(
                "target type {:?} is not known; expected stable or canary",
                t.target_type.chars().take(40).collect::<String>()
            )),
        ));
    }
    if t.canary_rules
        .as_ref()
        .is_some_and(|r| !(r.is_null() || r.as_array().is_some_and(|a| a.is_empty())))
    {
        return Err(Error::field(
            "canary_rules",
            Error::invalid("canary rules are not supported by this server; leave them out"),
        ));
    }
    if t.target_type == "canary" {
        return Err(Error::field(
            "targets",
            Error::invalid(
                "canary targets are not supported by this server; deploy a stable target",
            ),
        ));
    }
    Ok(())
}

fn labels_json(labels: &[(String, String)]) -> String {
    let list: Vec<Value> = labels
        .iter()
        .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
        .collect();
    Value::Array(list).to_string()
}

/// The labels of a deployment.
pub fn labels_of(d: &Deployment) -> Vec<(String, String)> {
    serde_json::from_str::<Vec<Value>>(&d.labels)
        .unwrap_or_default()
        .iter()
        .filter_map(|l| {
            Some((
                l.get("key")?.as_str()?.to_string(),
                l.get("value")?.as_str().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

fn new_target(t: &TargetInput) -> Result<(String, String), Error> {
    let config = serde_json::to_string(&t.spec).map_err(|e| Error::Internal(e.to_string()))?;
    let rules = t
        .canary_rules
        .as_ref()
        .filter(|r| !r.is_null())
        .map(Value::to_string)
        .unwrap_or_default();
    Ok((config, rules))
}

/// Creates a deployment on a cluster; it starts deploying at once.
pub async fn create(
    svc: &Services,
    caller: &Caller,
    cluster: &Cluster,
    input: &CreateInput,
) -> Result<View, Error> {
    caller.authorize(Action::WriteDeployment)?;
    validate_dns1123_label("deployment name", &input.name).map_err(|e| Error::field("name", e))?;
    let namespace = input
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| cluster.default_namespace.clone());
    validate_dns1123_label("namespace", &namespace)
        .map_err(|e| Error::field("kube_namespace", e))?;
    check_meta(
        input.description.as_deref(),
        &input.labels,
        input.mode.as_deref(),
    )?;
    check_target(&input.target)?;
    deployable_bento(
        svc,
        caller,
        &input.target.bento_repository,
        &input.target.bento_version,
    )
    .await?;
    let (config, rules) = new_target(&input.target)?;
    let mut tx = svc.db.begin().await?;
    let d = rows::create(
        &mut tx,
        &NewDeployment {
            organization_uid: &caller.organization.uid,
            cluster_uid: &cluster.uid,
            kube_namespace: &namespace,
            name: &input.name,
            description: input.description.as_deref().unwrap_or_default(),
            labels: &labels_json(&input.labels),
            mode: input
                .mode
                .as_deref()
                .filter(|m| !m.is_empty())
                .unwrap_or("deployment"),
            status: DeploymentStatus::Deploying.as_str(),
            creator_uid: &caller.user().uid,
        },
    )
    .await?;
    let revision = rows::add_revision(
        &mut tx,
        &d.uid,
        &caller.user().uid,
        "",
        &[NewTarget {
            target_type: &input.target.target_type,
            bento_repository: &input.target.bento_repository,
            bento_version: &input.target.bento_version,
            config: &config,
            canary_rules: &rules,
        }],
    )
    .await?;
    tx.commit().await.map_err(db_error)?;
    events::record(svc, caller, "deployment", &d.name, "create").await;
    svc.runtimes.wake();
    Ok(View {
        deployment: d,
        cluster: cluster.clone(),
        revision: Some(revision),
    })
}

/// A deployment of a cluster by namespace and name (v1).
pub async fn get(
    svc: &Services,
    caller: &Caller,
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> Result<View, Error> {
    caller.authorize(Action::ReadCluster)?;
    let d = rows::find(svc.db.pool(), &cluster.uid, namespace, name)
        .await?
        .ok_or_else(|| not_found(cluster, Some(namespace), name))?;
    view(svc, d, cluster.clone()).await
}

/// A deployment of a cluster by name, in whatever namespace (v2): the cluster's default
/// namespace wins when the name is in several.
pub async fn get_by_name(
    svc: &Services,
    caller: &Caller,
    cluster: &Cluster,
    name: &str,
) -> Result<View, Error> {
    caller.authorize(Action::ReadCluster)?;
    let mut found = rows::find_by_name(svc.db.pool(), &cluster.uid, name).await?;
    let pick = found
        .iter()
        .position(|d| d.kube_namespace == cluster.default_namespace)
        .unwrap_or(0);
    if found.is_empty() {
        return Err(not_found(cluster, None, name));
    }
    view(svc, found.swap_remove(pick), cluster.clone()).await
}

fn not_found(cluster: &Cluster, namespace: Option<&str>, name: &str) -> Error {
    let name: String = name.chars().take(80).collect();
    match namespace {
        Some(ns) => Error::NotFound(format!(
            "deployment {name:?} not found in namespace {:?} of cluster {:?}",
            ns.chars().take(80).collect::<String>(),
            cluster.name
        )),
        None => Error::NotFound(format!(
            "deployment {name:?} not found in cluster {:?}",
            cluster.name
        )),
    }
}

async fn view(svc: &Services, d: Deployment, cluster: Cluster) -> Result<View, Error> {
    let mut views = views(svc, vec![d], &[cluster]).await?;
    Ok(views.remove(0))
}

/// Views of deployments, reading revisions and targets once per batch.
async fn views(
    svc: &Services,
    list: Vec<Deployment>,
    clusters: &[Cluster],
) -> Result<Vec<View>, Error> {
    let pool = svc.db.pool();
    let uids: Vec<String> = list.iter().map(|d| d.uid.clone()).collect();
    let mut revisions = rows::active_revisions(pool, &uids).await?;
    let rev_uids: Vec<String> = revisions.values().map(|r| r.uid.clone()).collect();
    let mut targets = rows::targets(pool, &rev_uids).await?;
    let mut out = Vec::with_capacity(list.len());
    for d in list {
        let cluster = match clusters.iter().find(|c| c.uid == d.cluster_uid) {
            Some(c) => c.clone(),
            None => clusters::find_by_uid(pool, &d.cluster_uid)
                .await?
                .ok_or_else(|| Error::Internal(format!("deployment {} has no cluster", d.uid)))?,
        };
        let revision = revisions.remove(&d.uid).map(|r| {
            let t = targets.remove(&r.uid).unwrap_or_default();
            (r, t)
        });
        out.push(View {
            deployment: d,
            cluster,
            revision,
        });
    }
    Ok(out)
}

/// A page of deployments, of one cluster or (`None`) of every cluster of the organization.
pub async fn list(
    svc: &Services,
    caller: &Caller,
    cluster: Option<&Cluster>,
    search: &str,
    page: Page,
) -> Result<(Vec<View>, i64), Error> {
    caller.authorize(Action::ReadCluster)?;
    let (list, total) = rows::list(
        svc.db.pool(),
        &caller.organization.uid,
        cluster.map(|c| c.uid.as_str()),
        search,
        page,
    )
    .await?;
    let clusters: Vec<Cluster> = cluster.into_iter().cloned().collect();
    Ok((views(svc, list, &clusters).await?, total))
}

/// Changes a deployment: metadata, and with a target a new revision that is rolled out (a
/// terminated deployment starts again).
pub async fn update(
    svc: &Services,
    caller: &Caller,
    current: &View,
    input: &UpdateInput,
) -> Result<View, Error> {
    caller.authorize(Action::WriteDeployment)?;
    let d = &current.deployment;
    check_meta(
        input.description.as_deref(),
        input.labels.as_deref().unwrap_or_default(),
        input.mode.as_deref(),
    )?;
    if let Some(t) = &input.target {
        check_target(t)?;
        deployable_bento(svc, caller, &t.bento_repository, &t.bento_version).await?;
    }
    if d.status == DeploymentStatus::Terminating.as_str() {
        return Err(Error::Conflict(format!(
            "deployment {:?} is terminating; wait until it is terminated, then update it",
            d.name
        )));
    }
    let mut tx = svc.db.begin().await?;
    rows::update_meta(
        &mut *tx,
        &d.uid,
        input.description.as_deref().unwrap_or(&d.description),
        &input
            .labels
            .as_ref()
            .map(|l| labels_json(l))
            .unwrap_or(d.labels.clone()),
        input
            .mode
            .as_deref()
            .filter(|m| !m.is_empty())
            .unwrap_or(&d.mode),
    )
    .await?;
    if let Some(t) = &input.target {
        let mut t = t.clone();
        if let Some(current) = current.spec() {
            t.spec = spec::over(&current, t.spec);
        }
        let t = &t;
        let (config, rules) = new_target(t)?;
        rows::add_revision(
            &mut tx,
            &d.uid,
            &caller.user().uid,
            "",
            &[NewTarget {
                target_type: &t.target_type,
                bento_repository: &t.bento_repository,
                bento_version: &t.bento_version,
                config: &config,
                canary_rules: &rules,
            }],
        )
        .await?;
        rows::set_desired(
            &mut *tx,
            &d.uid,
            "running",
            DeploymentStatus::Deploying.as_str(),
        )
        .await?;
    }
    tx.commit().await.map_err(db_error)?;
    events::record(svc, caller, "deployment", &d.name, "update").await;
    svc.runtimes.wake();
    reload(svc, current).await
}

async fn reload(svc: &Services, current: &View) -> Result<View, Error> {
    let d = rows::find_by_uid(svc.db.pool(), &current.deployment.uid)
        .await?
        .ok_or_else(|| {
            not_found(
                &current.cluster,
                Some(&current.deployment.kube_namespace),
                &current.deployment.name,
            )
        })?;
    view(svc, d, current.cluster.clone()).await
}

/// Makes a new revision from an old one and rolls it out.
pub async fn rollback(
    svc: &Services,
    caller: &Caller,
    current: &View,
    revision_uid: &str,
) -> Result<View, Error> {
    caller.authorize(Action::WriteDeployment)?;
    let d = &current.deployment;
    let old = rows::revision(svc.db.pool(), &d.uid, revision_uid)
        .await?
        .ok_or_else(|| {
            Error::field(
                "revision_uid",
                Error::NotFound(format!(
                    "deployment {:?} has no revision {:?}",
                    d.name,
                    revision_uid.chars().take(80).collect::<String>()
                )),
            )
        })?;
    let targets = rows::targets(svc.db.pool(), std::slice::from_ref(&old.uid))
        .await?
        .remove(&old.uid)
        .unwrap_or_default();
    for t in &targets {
        deployable_bento(svc, caller, &t.bento_repository, &t.bento_version).await?;
    }
    let new: Vec<NewTarget<'_>> = targets
        .iter()
        .map(|t| NewTarget {
            target_type: &t.target_type,
            bento_repository: &t.bento_repository,
            bento_version: &t.bento_version,
            config: &t.config,
            canary_rules: &t.canary_rules,
        })
        .collect();
    let mut tx = svc.db.begin().await?;
    rows::add_revision(&mut tx, &d.uid, &caller.user().uid, &old.uid, &new).await?;
    rows::set_desired(
        &mut *tx,
        &d.uid,
        "running",
        DeploymentStatus::Deploying.as_str(),
    )
    .await?;
    tx.commit().await.map_err(db_error)?;
    events::record(
        svc,
        caller,
        "deployment",
        &d.name,
        &format!("rollback to revision {}", old.number),
    )
    .await;
    svc.runtimes.wake();
    reload(svc, current).await
}

/// Stops serving; the record and its revisions stay.
pub async fn terminate(svc: &Services, caller: &Caller, current: &View) -> Result<View, Error> {
    caller.authorize(Action::WriteDeployment)?;
    let d = &current.deployment;
    if d.desired != "terminated" {
        rows::set_desired(
            svc.db.pool(),
            &d.uid,
            "terminated",
            DeploymentStatus::Terminating.as_str(),
        )
        .await?;
        events::record(svc, caller, "deployment", &d.name, "terminate").await;
        svc.runtimes.wake();
    }
    reload(svc, current).await
}

/// Deletes a terminated deployment with its revisions.
pub async fn delete(svc: &Services, caller: &Caller, current: &View) -> Result<View, Error> {
    caller.authorize(Action::WriteDeployment)?;
    let d = &current.deployment;
    let status: DeploymentStatus = d.status.parse().unwrap_or(DeploymentStatus::Unknown);
    if d.desired != "terminated" || !status.is_stopped() {
        return Err(Error::Conflict(format!(
            "deployment {:?} is {}; terminate it first (and wait until it is terminated), then delete it",
            d.name, d.status
        )));
    }
    if !rows::delete_terminated(svc.db.pool(), &d.uid).await? {
        return Err(Error::Conflict(format!(
            "deployment {:?} changed meanwhile (it was started again); terminate it first, then delete it",
            d.name
        )));
    }
    events::record(svc, caller, "deployment", &d.name, "delete").await;
    if let Some(runtimes) = svc.runtimes.get() {
        if let Ok(rt) = runtimes.runtime(&current.cluster).await {
            if let Err(e) = rt.remove(&d.uid).await {
                tracing::warn!(deployment = %d.name, error = %e, "could not remove what the runtime kept; the reconciler will retry");
            }
        }
    }
    svc.runtimes.wake();
    let mut gone = current.clone();
    gone.deployment.status = DeploymentStatus::Terminated.as_str().into();
    Ok(gone)
}

/// A page of a deployment's revisions with their targets, newest first.
pub async fn revisions(
    svc: &Services,
    caller: &Caller,
    current: &View,
    page: Page,
) -> Result<(Vec<(Revision, Vec<Target>)>, i64), Error> {
    caller.authorize(Action::ReadCluster)?;
    let (list, total) = rows::revisions(svc.db.pool(), &current.deployment.uid, page).await?;
    let uids: Vec<String> = list.iter().map(|r| r.uid.clone()).collect();
    let mut targets = rows::targets(svc.db.pool(), &uids).await?;
    Ok((
        list.into_iter()
            .map(|r| {
                let t = targets.remove(&r.uid).unwrap_or_default();
                (r, t)
            })
            .collect(),
        total,
    ))
}

/// One revision of a deployment with its targets.
pub async fn revision(
    svc: &Services,
    caller: &Caller,
    current: &View,
    uid: &str,
) -> Result<(Revision, Vec<Target>), Error> {
    caller.authorize(Action::ReadCluster)?;
    let r = rows::revision(svc.db.pool(), &current.deployment.uid, uid)
        .await?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "deployment {:?} has no revision {:?}",
                current.deployment.name,
                uid.chars().take(80).collect::<String>()
            ))
        })?;
    let t = rows::targets(svc.db.pool(), std::slice::from_ref(&r.uid))
        .await?
        .remove(&r.uid)
        .unwrap_or_default();
    Ok((r, t))
}

/// The last lines of a deployment's logs, where its runtime keeps them.
pub async fn logs(
    svc: &Services,
    caller: &Caller,
    current: &View,
    lines: usize,
) -> Result<Vec<String>, Error> {
    caller.authorize(Action::ReadCluster)?;
    let Some(runtimes) = svc.runtimes.get() else {
        return Err(Error::Unavailable("this server runs no deployments".into()));
    };
    let rt = runtimes.runtime(&current.cluster).await?;
    rt.logs(&current.deployment.uid, lines.min(10_000))
        .await
        .ok_or_else(|| {
            Error::NotFound(format!(
                "no logs are kept for deployment {:?} (a Kubernetes cluster shows its conditions instead)",
                current.deployment.name
            ))
        })
}

/// The bentos of the targets of some views, by (repository, version).
pub async fn bentos_of(
    svc: &Services,
    organization_uid: &str,
    targets: &[&Target],
) -> Result<HashMap<(String, String), (Repository, Version)>, Error> {
    let mut out = HashMap::new();
    for t in targets {
        let key = (t.bento_repository.clone(), t.bento_version.clone());
        if out.contains_key(&key) {
            continue;
        }
        let Some(repo) = repositories::find(
            svc.db.pool(),
            organization_uid,
            Kind::Bento,
            &t.bento_repository,
        )
        .await?
        else {
            continue;
        };
        if let Some(v) = versions::find(svc.db.pool(), &repo.uid, &t.bento_version).await? {
            out.insert(key, (repo, v));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The reconciler
// ---------------------------------------------------------------------------------------------

/// What the runtime is asked to make true for one deployment.
pub fn desired(
    d: &Deployment,
    organization: &str,
    cluster: &Cluster,
    revision: &Revision,
    target: &Target,
) -> Result<Desired, Error> {
    let spec: Spec = serde_json::from_str(&target.config).map_err(|e| {
        Error::Internal(format!(
            "the stored spec of deployment {} does not parse: {e}",
            d.name
        ))
    })?;
    let (api_server, runners) = spec::components(&spec);
    let config = spec::to_v1(&spec);
    Ok(Desired {
        uid: d.uid.clone(),
        organization: organization.to_string(),
        cluster: cluster.name.clone(),
        namespace: d.kube_namespace.clone(),
        name: d.name.clone(),
        revision_uid: revision.uid.clone(),
        bento_repository: target.bento_repository.clone(),
        bento_version: target.bento_version.clone(),
        running: d.desired == "running",
        api_server,
        runners,
        config,
    })
}

/// Makes every runtime match the database once; returns how many deployments changed status.
pub async fn reconcile_once(svc: &Services) -> Result<usize, Error> {
    let Some(runtimes) = svc.runtimes.get().cloned() else {
        return Ok(0);
    };
    let pool = svc.db.pool();
    let clusters: HashMap<String, Cluster> = clusters::all(pool)
        .await?
        .into_iter()
        .map(|c| (c.uid.clone(), c))
        .collect();
    let list = rows::all(pool).await?;
    let uids: Vec<String> = list.iter().map(|d| d.uid.clone()).collect();
    let revisions = rows::active_revisions(pool, &uids).await?;
    let rev_uids: Vec<String> = revisions.values().map(|r| r.uid.clone()).collect();
    let targets = rows::targets(pool, &rev_uids).await?;
    let mut org_names: HashMap<String, String> = HashMap::new();
    let mut used: BTreeMap<String, (Arc<dyn ClusterRuntime>, Vec<String>)> = BTreeMap::new();
    let mut changed = 0;
    for d in &list {
        let Some(cluster) = clusters.get(&d.cluster_uid) else {
            continue;
        };
        let runtime = match runtimes.runtime(cluster).await {
            Ok(r) => r,
            Err(e) => {
                let reason = format!("cluster {:?} cannot be reached: {e}", cluster.name);
                changed += observe(svc, d, &Observed::new(DeploymentStatus::Unknown, reason)).await
                    as usize;
                continue;
            }
        };
        used.entry(cluster.uid.clone())
            .or_insert_with(|| (runtime.clone(), Vec::new()))
            .1
            .push(d.uid.clone());
        let (Some(revision), Some(target)) = (
            revisions.get(&d.uid),
            revisions
                .get(&d.uid)
                .and_then(|r| targets.get(&r.uid))
                .and_then(|t| t.first()),
        ) else {
            continue;
        };
        if !org_names.contains_key(&d.organization_uid) {
            let name = organizations::find_by_uid(pool, &d.organization_uid)
                .await?
                .map(|o| o.name)
                .unwrap_or_default();
            org_names.insert(d.organization_uid.clone(), name);
        }
        let want = match desired(
            d,
            &org_names[&d.organization_uid],
            cluster,
            revision,
            target,
        ) {
            Ok(w) => w,
            Err(e) => {
                changed += observe(
                    svc,
                    d,
                    &Observed::new(DeploymentStatus::Failed, e.to_string()),
                )
                .await as usize;
                continue;
            }
        };
        let seen = match tokio::time::timeout(RECONCILE_TIMEOUT, runtime.reconcile(&want)).await {
            Ok(seen) => seen,
            Err(_) => Observed::new(
                DeploymentStatus::Unknown,
                format!(
                    "the cluster {:?} did not answer within {}s",
                    cluster.name,
                    RECONCILE_TIMEOUT.as_secs()
                ),
            ),
        };
        changed += observe(svc, d, &seen).await as usize;
    }
    // What a runtime runs that the database no longer knows (deleted meanwhile) goes away.
    for cluster in clusters.values() {
        let rt = match used.get(&cluster.uid) {
            Some((rt, _)) => rt.clone(),
            None if cluster.kind == ClusterKind::Local.as_str() => {
                match runtimes.runtime(cluster).await {
                    Ok(rt) => rt,
                    Err(_) => continue,
                }
            }
            None => continue,
        };
        let known_here: Vec<String> = used
            .get(&cluster.uid)
            .map(|(_, u)| u.clone())
            .unwrap_or_default();
        // Bounded: an unreachable cluster must not hold up the others.
        let known = tokio::time::timeout(RECONCILE_TIMEOUT, rt.known())
            .await
            .unwrap_or_default();
        for uid in known {
            if !uids.contains(&uid) && !known_here.contains(&uid) {
                match tokio::time::timeout(RECONCILE_TIMEOUT, rt.remove(&uid)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(%uid, error = %e, "could not remove a deleted deployment's leftovers")
                    }
                    Err(_) => {
                        tracing::warn!(%uid, "removing a deleted deployment's leftovers timed out")
                    }
                }
            }
        }
    }
    Ok(changed)
}

/// Records what the runtime saw; returns whether the status changed.
async fn observe(svc: &Services, d: &Deployment, seen: &Observed) -> bool {
    let url = seen.url.clone().unwrap_or_default();
    match rows::set_observed(svc.db.pool(), d, seen.status.as_str(), &seen.reason, &url).await {
        Ok(changed) => {
            if changed && d.status != seen.status.as_str() {
                tracing::info!(deployment = %d.name, from = %d.status, to = %seen.status, reason = %seen.reason, "deployment status changed");
                let _ = yatai_store::db::events::record(
                    svc.db.pool(),
                    &yatai_store::db::events::NewEvent {
                        organization_uid: &d.organization_uid,
                        user_uid: None,
                        user_name: "yatai",
                        api_token_name: "",
                        resource_type: "deployment",
                        resource_name: &d.name,
                        operation_name: &format!("status: {}", seen.status),
                    },
                )
                .await;
            }
            changed && d.status != seen.status.as_str()
        }
        Err(e) => {
            tracing::warn!(deployment = %d.name, error = %e, "could not record a deployment's status");
            false
        }
    }
}

/// Runs the reconciler until the process ends: on start, after every change, and every
/// [`RECONCILE_INTERVAL`].
pub fn spawn_reconciler(svc: Services) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = reconcile_once(&svc).await {
                tracing::warn!(error = %e, "reconciling deployments failed; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(RECONCILE_INTERVAL) => {}
                _ = svc.runtimes.wake.notified() => {}
            }
        }
    })
}

/// The archives of one organization's bentos and models, as a runtime reads them for the
/// deployments of that organization (the reconciler acts for the organization, not for a
/// member: it only ever reads what a deployment of the organization names).
#[derive(Clone)]
pub struct OrganizationArchives {
    svc: Services,
    organization_uid: String,
}

impl OrganizationArchives {
    pub fn new(svc: Services, organization_uid: &str) -> Self {
        OrganizationArchives {
            svc,
            organization_uid: organization_uid.to_string(),
        }
    }
}

impl std::fmt::Debug for OrganizationArchives {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OrganizationArchives({})", self.organization_uid)
    }
}

impl crate::registry::images::ArchiveSource for OrganizationArchives {
    fn fetch<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        version: &'a str,
        dest: &'a std::path::Path,
    ) -> yatai_domain::deployments::BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let tag = crate::registry::tag(name, version);
            let pool = self.svc.db.pool();
            let repo = repositories::find(pool, &self.organization_uid, kind, name)
                .await?
                .ok_or_else(|| Error::not_found(kind.as_str(), &tag))?;
            let v = versions::find(pool, &repo.uid, version)
                .await?
                .ok_or_else(|| Error::not_found(kind.as_str(), &tag))?;
            crate::registry::images::copy_archive(&self.svc, kind, &tag, &v, dest).await
        })
    }
}
