//! The runtime of `kubernetes` clusters: a deployment's [`Desired`] state becomes a `BentoRequest` (its bento, built
//! into an image by `yatai image-builder`) and a `BentoDeployment` (`serving.yatai.ai/v2alpha1`, served by
//! `yatai deployment-operator`), written with server-side apply (field manager `yatai`); its status comes back from
//! their conditions.
//!
//! - [`KubernetesRuntime`]: the [`ClusterRuntime`], built from a kubeconfig, in-cluster, or a given client.
//! - [`objects`]: the pure functions from a [`Desired`] to the two objects (snapshot-tested).
//! - [`status`]: the pure mapping from conditions to a [`DeploymentStatus`] (the table is in its docs).
//! - [`kubeconfig`]: checking ([`validate_kubeconfig`]) and redacting ([`redact_kubeconfig`]) kubeconfigs.
//! - [`errors`]: API errors as a status and a reason that says what to do.
//!
//! Every call is idempotent: an object whose live `yatai.ai/applied-hash` annotation matches the desired body is not
//! applied again, so a periodic reconcile of an unchanged deployment costs two GETs.
//!
//! Wiring in the server: one runtime per registered cluster, e.g.
//! `KubernetesRuntime::from_kubeconfig(&yaml, RuntimeOptions::for_cluster(name)).await?` (or
//! [`KubernetesRuntime::in_cluster`] for the cluster the server runs in), kept as `Arc<dyn ClusterRuntime>`.

pub mod errors;
pub mod kubeconfig;
mod live;
pub mod objects;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use yatai_domain::deployments::{BoxFuture, ClusterRuntime, DeploymentStatus, Desired, Observed};

use errors::ApiFailure;
pub use kubeconfig::{redact_kubeconfig, validate_kubeconfig, KubeconfigError, KubeconfigPolicy};
use objects::{InvalidDesired, LABEL_CLUSTER, LABEL_MANAGED_BY, MANAGER};

/// Settings of a runtime.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// The cluster's name in Yatai: written as the `yatai.ai/cluster` label, used in messages, and, when not empty,
    /// the scope of [`ClusterRuntime::known`] (so that a second Yatai sharing the Kubernetes cluster under another
    /// cluster name is not taken for deployments to remove).
    pub cluster: String,
    /// The namespaces [`ClusterRuntime::remove`], [`ClusterRuntime::known`] and [`ClusterRuntime::logs`] (which get
    /// only a uid) look in; empty: every namespace (needs cluster-wide `list`).
    pub namespaces: Vec<String>,
    /// What a kubeconfig given to [`KubernetesRuntime::from_kubeconfig`] may refer to.
    pub kubeconfig_policy: KubeconfigPolicy,
}

impl RuntimeOptions {
    /// Options for the cluster named `cluster` in Yatai, every namespace, strict kubeconfig policy.
    pub fn for_cluster(cluster: impl Into<String>) -> Self {
        RuntimeOptions {
            cluster: cluster.into(),
            ..Default::default()
        }
    }
}

/// Why a runtime could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig does not parse, has no current context, or refers to local credentials.
    #[error("{0}")]
    Kubeconfig(#[from] KubeconfigError),
    /// Not inside a pod with a service account.
    #[error(
        "not running inside a Kubernetes pod with a service account ({0}); register the cluster with a kubeconfig"
    )]
    InCluster(String),
    /// The client could not be built (TLS settings).
    #[error("cannot make a Kubernetes client: {0}")]
    Client(String),
}

/// The runtime of one Kubernetes cluster.
#[derive(Clone)]
pub struct KubernetesRuntime {
    client: Client,
    opts: RuntimeOptions,
}

impl std::fmt::Debug for KubernetesRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesRuntime")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// How long one call to the API server may take: the server reconciles every deployment every few seconds, and a
/// cluster that stopped answering must not hold those calls for minutes.
pub const API_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

fn client_from(mut config: kube::Config) -> Result<Client, Error> {
    config.connect_timeout = Some(API_TIMEOUT.min(config.connect_timeout.unwrap_or(API_TIMEOUT)));
    config.read_timeout = Some(API_TIMEOUT);
    config.write_timeout = Some(API_TIMEOUT);
    // Fixed message: the TLS errors do not quote keys, but nothing from the kubeconfig is echoed anyway.
    Client::try_from(config).map_err(|e| {
        Error::Client(match e {
            kube::Error::RustlsTls(_) => {
                "the kubeconfig's client certificate, key or certificate authority cannot be used"
                    .into()
            }
            _ => "the kubeconfig's connection settings cannot be used".into(),
        })
    })
}

impl KubernetesRuntime {
    /// A runtime talking through `client` (tests use a fake API server).
    pub fn new(client: Client, opts: RuntimeOptions) -> Self {
        KubernetesRuntime { client, opts }
    }

    /// A runtime for the current context of a kubeconfig (YAML text). The error says what is wrong without
    /// quoting the kubeconfig. Must be called within a Tokio runtime.
    pub async fn from_kubeconfig(yaml: &str, opts: RuntimeOptions) -> Result<Self, Error> {
        let config = kubeconfig::config(yaml, opts.kubeconfig_policy).await?;
        Ok(Self::new(client_from(config)?, opts))
    }

    /// A runtime for the cluster the server runs in (its pod's service account). Must be called within a Tokio
    /// runtime.
    pub async fn in_cluster(opts: RuntimeOptions) -> Result<Self, Error> {
        let config = kube::Config::incluster().map_err(|e| Error::InCluster(e.to_string()))?;
        Ok(Self::new(client_from(config)?, opts))
    }

    /// The options it was made with.
    pub fn options(&self) -> &RuntimeOptions {
        &self.opts
    }

    fn cluster_name<'a>(&'a self, desired: Option<&'a Desired>) -> &'a str {
        match desired {
            Some(d) if !d.cluster.is_empty() => &d.cluster,
            _ if !self.opts.cluster.is_empty() => &self.opts.cluster,
            _ => "(unnamed)",
        }
    }

    /// The APIs of kind `K` in the runtime's scope: one per configured namespace, or one for all of them.
    fn scoped(&self, resource: &ApiResource) -> Vec<(Option<String>, Api<DynamicObject>)> {
        if self.opts.namespaces.is_empty() {
            vec![(None, Api::all_with(self.client.clone(), resource))]
        } else {
            self.opts
                .namespaces
                .iter()
                .map(|ns| (Some(ns.clone()), self.api(resource, ns)))
                .collect()
        }
    }

    fn api(&self, resource: &ApiResource, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), ns, resource)
    }

    async fn list(
        &self,
        resource: &ApiResource,
        selector: &str,
    ) -> Result<Vec<DynamicObject>, ApiFailure> {
        let what = format!("{}s", resource.kind);
        let mut out = Vec::new();
        for (ns, api) in self.scoped(resource) {
            let list = api
                .list(&ListParams::default().labels(selector))
                .await
                .map_err(|e| ApiFailure::new(format!("list {what}"), ns.as_deref(), e))?;
            out.extend(list.items);
        }
        Ok(out)
    }

    /// Start or roll out: apply what differs, then read the status.
    async fn deploy(&self, d: &Desired) -> Result<Observed, ApiFailure> {
        let ns = d.namespace.as_str();
        let cluster = self.cluster_name(Some(d));
        let bds = self.api(&live::bento_deployments(), ns);
        let brs = self.api(&live::bento_requests(), ns);
        let params = PatchParams::apply(MANAGER).force();

        let mut live_bd = bds.get_opt(&d.name).await.map_err(|e| {
            ApiFailure::new(format!("read BentoDeployment {}", d.name), Some(ns), e)
        })?;
        if let Some(bd) = &live_bd {
            if let Some(reason) = foreign(&bd.metadata, &d.uid) {
                return Ok(Observed::new(
                    DeploymentStatus::Failed,
                    format!(
                        "a BentoDeployment named {} already exists in namespace {ns} of cluster {cluster} and \
                         {reason}; delete it or choose another deployment name",
                        d.name
                    ),
                ));
            }
        }

        let request_name = objects::bento_request_name(&d.bento_repository, &d.bento_version);
        let mut live_br = brs.get_opt(&request_name).await.map_err(|e| {
            ApiFailure::new(format!("read BentoRequest {request_name}"), Some(ns), e)
        })?;
        let ours = live_br.as_ref().is_none_or(|r| managed(&r.metadata));
        if ours {
            // Deployments of one bento in one namespace share its BentoRequest: the one that created it keeps it
            // up to date (runners, overrides); another takes it over only once that one is gone, so that two
            // deployments never rewrite it in turn.
            let creator = match live_br.as_ref().and_then(|r| objects::uid_of(&r.metadata)) {
                Some(c) if c != d.uid && self.in_use_by(ns, &c).await? => c,
                _ => d.uid.clone(),
            };
            let desired = match objects::bento_request(d, &creator) {
                Ok(r) => r,
                Err(InvalidDesired(why)) => {
                    return Ok(Observed::new(DeploymentStatus::Failed, why))
                }
            };
            let current = live_br.as_ref().is_some_and(|r| {
                objects::up_to_date(&desired, &desired.metadata, &r.metadata, r.data.get("spec"))
            });
            if creator == d.uid && !current {
                tracing::info!(namespace = ns, name = %request_name, "applying BentoRequest");
                live_br = Some(
                    brs.patch(&request_name, &params, &Patch::Apply(&desired))
                        .await
                        .map_err(|e| {
                            ApiFailure::new(
                                format!("apply BentoRequest {request_name}"),
                                Some(ns),
                                e,
                            )
                        })?,
                );
            }
        } else if let Some(r) = &live_br {
            // Made by someone else (`yatai convert`, by hand): used as it is when it names the same bento.
            let tag = objects::bento_tag(d);
            let theirs = live::str_at(r, "/spec/bentoTag").unwrap_or_default();
            if theirs != tag {
                return Ok(Observed::new(
                    DeploymentStatus::Failed,
                    format!(
                        "a BentoRequest named {request_name} not managed by Yatai exists in namespace {ns} of \
                         cluster {cluster} for bento {} instead of {tag}; delete it",
                        theirs
                    ),
                ));
            }
        }

        let desired = match objects::bento_deployment(d) {
            Ok(b) => b,
            Err(InvalidDesired(why)) => return Ok(Observed::new(DeploymentStatus::Failed, why)),
        };
        if let Some(bd) = live_bd
            .as_ref()
            .filter(|b| b.metadata.deletion_timestamp.is_some())
        {
            // Terminated a moment ago: an apply now would land on the object on its way out.
            return Ok(Observed::new(
                DeploymentStatus::Deploying,
                format!(
                    "waiting for Kubernetes to finish deleting the previous BentoDeployment {} in namespace {ns}",
                    bd.name_any()
                ),
            ));
        }
        let current = live_bd.as_ref().is_some_and(|b| {
            objects::up_to_date(&desired, &desired.metadata, &b.metadata, b.data.get("spec"))
        });
        if !current {
            tracing::info!(namespace = ns, name = %d.name, revision = %d.revision_uid, "applying BentoDeployment");
            live_bd = Some(
                bds.patch(&d.name, &params, &Patch::Apply(&desired))
                    .await
                    .map_err(|e| {
                        ApiFailure::new(format!("apply BentoDeployment {}", d.name), Some(ns), e)
                    })?,
            );
        }
        let bd = live_bd.expect("read or applied");

        let request_conditions: Option<Vec<Condition>> = live_br.as_ref().map(live::conditions);
        let bd_conditions = live::conditions(&bd);
        let (status, reason) = status::status_from_conditions(
            request_conditions.as_deref(),
            &bd_conditions,
            bd.metadata.generation,
            (&request_name, &d.name),
        );
        let mut observed = Observed::new(status, reason);
        observed.url = Some(self.url(&bd, ns).await);
        Ok(observed)
    }

    /// Where the deployment answers: its Ingress's host when it has one, else the API server's Service.
    async fn url(&self, bd: &DynamicObject, ns: &str) -> String {
        let name = bd.name_any();
        if live::ingress_enabled(bd) {
            let ingresses: Api<Ingress> = Api::namespaced(self.client.clone(), ns);
            // Best effort: without the Ingress (not made yet, or not readable) the Service URL is still right.
            if let Ok(Some(ingress)) = ingresses.get_opt(&name).await {
                let spec = ingress.spec.unwrap_or_default();
                let host = spec
                    .rules
                    .iter()
                    .flatten()
                    .find_map(|r| r.host.clone())
                    .filter(|h| !h.is_empty());
                if let Some(host) = host {
                    let tls = spec.tls.as_ref().is_some_and(|t| !t.is_empty());
                    return format!("{}://{host}", if tls { "https" } else { "http" });
                }
            }
        }
        format!("http://{name}.{ns}.svc.cluster.local:3000")
    }

    /// Stop serving: delete the BentoDeployment (the BentoRequest and its Bento stay, so that a new start is fast).
    async fn terminate(&self, d: &Desired) -> Result<Observed, ApiFailure> {
        let ns = d.namespace.as_str();
        let bds = self.api(&live::bento_deployments(), ns);
        let live = match bds.get_opt(&d.name).await {
            Ok(live) => live,
            // A namespace that does not exist holds nothing to stop.
            Err(kube::Error::Api(s)) if s.code == 404 => None,
            Err(e) => {
                return Err(ApiFailure::new(
                    format!("read BentoDeployment {}", d.name),
                    Some(ns),
                    e,
                ))
            }
        };
        let Some(bd) = live.filter(|bd| foreign(&bd.metadata, &d.uid).is_none()) else {
            return Ok(Observed::new(DeploymentStatus::Terminated, ""));
        };
        if bd.metadata.deletion_timestamp.is_none() {
            tracing::info!(namespace = ns, name = %d.name, "deleting BentoDeployment");
            match bds.delete(&d.name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    return Ok(Observed::new(DeploymentStatus::Terminated, ""))
                }
                Err(e) => {
                    return Err(ApiFailure::new(
                        format!("delete BentoDeployment {}", d.name),
                        Some(ns),
                        e,
                    ))
                }
            }
        }
        Ok(Observed::new(
            DeploymentStatus::Terminating,
            format!(
                "BentoDeployment {} is being deleted from namespace {ns}",
                d.name
            ),
        ))
    }

    /// Whether the deployment `uid` has a BentoDeployment (not being deleted) in `ns`.
    async fn in_use_by(&self, ns: &str, uid: &str) -> Result<bool, ApiFailure> {
        let list = self
            .api(&live::bento_deployments(), ns)
            .list(&ListParams::default().labels(&objects::uid_selector(uid)))
            .await
            .map_err(|e| ApiFailure::new("list BentoDeployments", Some(ns), e))?;
        Ok(list
            .items
            .iter()
            .any(|bd| bd.metadata.deletion_timestamp.is_none()))
    }

    async fn remove_all(&self, uid: &str) -> Result<(), ApiFailure> {
        let selector = objects::uid_selector(uid);
        // (namespace, BentoRequest name) that may have lost their last user.
        let mut candidates = BTreeSet::new();
        for bd in self.list(&live::bento_deployments(), &selector).await? {
            let ns = bd.namespace().unwrap_or_default();
            let api = self.api(&live::bento_deployments(), &ns);
            tracing::info!(namespace = %ns, name = %bd.name_any(), uid, "deleting BentoDeployment");
            match api
                .delete(&bd.name_any(), &DeleteParams::background())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    return Err(ApiFailure::new(
                        format!("delete BentoDeployment {}", bd.name_any()),
                        Some(&ns),
                        e,
                    ))
                }
            }
            candidates.insert((ns, bento_of(&bd)));
        }
        for br in self.list(&live::bento_requests(), &selector).await? {
            candidates.insert((br.namespace().unwrap_or_default(), br.name_any()));
        }
        for (ns, name) in candidates {
            let brs = self.api(&live::bento_requests(), &ns);
            let Some(br) = brs
                .get_opt(&name)
                .await
                .map_err(|e| ApiFailure::new(format!("read BentoRequest {name}"), Some(&ns), e))?
            else {
                continue;
            };
            if !managed(&br.metadata) {
                continue;
            }
            // Deployments of the same bento in the namespace share its BentoRequest: it stays while one uses it.
            let bds = self.api(&live::bento_deployments(), &ns);
            let users: Vec<String> = bds
                .list(&ListParams::default())
                .await
                .map_err(|e| ApiFailure::new("list BentoDeployments", Some(&ns), e))?
                .items
                .into_iter()
                .filter(|bd| {
                    bento_of(bd) == name
                        && bd.metadata.deletion_timestamp.is_none()
                        && objects::uid_of(&bd.metadata).as_deref() != Some(uid)
                })
                .map(|bd| bd.name_any())
                .collect();
            if !users.is_empty() {
                tracing::info!(namespace = %ns, name = %name, ?users, "BentoRequest kept: still used");
                continue;
            }
            tracing::info!(namespace = %ns, name = %name, uid, "deleting BentoRequest");
            match brs.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    return Err(ApiFailure::new(
                        format!("delete BentoRequest {name}"),
                        Some(&ns),
                        e,
                    ))
                }
            }
        }
        Ok(())
    }

    fn known_selector(&self) -> String {
        let mut selector = format!("{LABEL_MANAGED_BY}={MANAGER}");
        if !self.opts.cluster.is_empty() {
            selector.push_str(&format!(
                ",{LABEL_CLUSTER}={}",
                objects::label_value(&self.opts.cluster)
            ));
        }
        selector
    }

    async fn known_uids(&self) -> Result<Vec<String>, ApiFailure> {
        let selector = self.known_selector();
        let mut uids = BTreeSet::new();
        let mut used = BTreeSet::new();
        for bd in self.list(&live::bento_deployments(), &selector).await? {
            uids.extend(objects::uid_of(&bd.metadata));
            used.insert((bd.namespace().unwrap_or_default(), bento_of(&bd)));
        }
        // A terminated deployment has only its BentoRequest left (one another deployment uses is that one's).
        for br in self.list(&live::bento_requests(), &selector).await? {
            if !used.contains(&(br.namespace().unwrap_or_default(), br.name_any())) {
                uids.extend(objects::uid_of(&br.metadata));
            }
        }
        Ok(uids.into_iter().collect())
    }

    /// The conditions of the deployment's objects, one line each (`kubectl describe` in short).
    async fn condition_lines(&self, uid: &str) -> Result<Vec<String>, ApiFailure> {
        let selector = objects::uid_selector(uid);
        let mut lines = Vec::new();
        let mut requests = BTreeMap::new();
        for br in self.list(&live::bento_requests(), &selector).await? {
            requests.insert((br.namespace().unwrap_or_default(), br.name_any()), br);
        }
        let bds = self.list(&live::bento_deployments(), &selector).await?;
        for bd in &bds {
            let ns = bd.namespace().unwrap_or_default();
            let bento = bento_of(bd);
            if let std::collections::btree_map::Entry::Vacant(e) =
                requests.entry((ns.clone(), bento.clone()))
            {
                let api = self.api(&live::bento_requests(), &ns);
                if let Ok(Some(br)) = api.get_opt(&bento).await {
                    e.insert(br);
                }
            }
        }
        let line = |kind: &str, name: &str, c: &Condition| {
            format!(
                "{} {kind} {name}: {}={} ({}) {}",
                c.last_transition_time.0, c.type_, c.status, c.reason, c.message
            )
        };
        for ((_, name), br) in &requests {
            for c in &live::conditions(br) {
                lines.push(line("BentoRequest", name, c));
            }
        }
        for bd in &bds {
            for c in &live::conditions(bd) {
                lines.push(line("BentoDeployment", &bd.name_any(), c));
            }
        }
        lines.sort();
        Ok(lines)
    }
}

/// The bento (`spec.bento`) a live BentoDeployment serves.
fn bento_of(bd: &DynamicObject) -> String {
    live::str_at(bd, "/spec/bento")
        .unwrap_or_default()
        .to_string()
}

/// Whether an object was written by this runtime.
fn managed(meta: &kube::api::ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(LABEL_MANAGED_BY))
        .is_some_and(|v| v == MANAGER)
}

/// Why a live BentoDeployment is not this deployment's to write, if it is not.
fn foreign(meta: &kube::api::ObjectMeta, uid: &str) -> Option<String> {
    if !managed(meta) {
        return Some("is not managed by Yatai".into());
    }
    match objects::uid_of(meta) {
        Some(other) if other != uid && other != objects::label_value(uid) => {
            Some(format!("belongs to another Yatai deployment (uid {other})"))
        }
        _ => None,
    }
}

impl ClusterRuntime for KubernetesRuntime {
    fn reconcile<'a>(&'a self, desired: &'a Desired) -> BoxFuture<'a, Observed> {
        Box::pin(async move {
            if let Err(InvalidDesired(why)) = objects::validate(desired) {
                return Observed::new(DeploymentStatus::Failed, why);
            }
            let result = if desired.running {
                self.deploy(desired).await
            } else {
                self.terminate(desired).await
            };
            result.unwrap_or_else(|f| {
                let observed = errors::observed(&f, self.cluster_name(Some(desired)));
                tracing::warn!(uid = %desired.uid, status = %observed.status.as_str(), reason = %observed.reason, "reconcile failed");
                observed
            })
        })
    }

    fn remove<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, yatai_domain::Result<()>> {
        Box::pin(async move {
            self.remove_all(uid)
                .await
                .map_err(|f| errors::domain_error(&f, self.cluster_name(None)))
        })
    }

    fn logs<'a>(&'a self, uid: &'a str, lines: usize) -> BoxFuture<'a, Option<Vec<String>>> {
        Box::pin(async move {
            match self.condition_lines(uid).await {
                Ok(all) if !all.is_empty() => {
                    let skip = all.len().saturating_sub(lines);
                    Some(all.into_iter().skip(skip).collect())
                }
                Ok(_) => None,
                Err(f) => {
                    tracing::warn!(uid, error = %f.error, "cannot read the conditions");
                    None
                }
            }
        })
    }

    fn known<'a>(&'a self) -> BoxFuture<'a, Vec<String>> {
        Box::pin(async move {
            self.known_uids().await.unwrap_or_else(|f| {
                // Knowing nothing makes the server remove nothing: the safe side.
                tracing::warn!(error = %f.error, action = %f.action, "cannot list the deployments of the cluster");
                Vec::new()
            })
        })
    }
}
