//! Clusters and deployments over HTTP: v1 as bentoml 1.1 (and Yatai 1.x's dashboard) call it,
//! v2 as bentoml 1.4 calls it. Thin adapters over `yatai_service::deployments`; the one
//! difference between the two is the dialect of a target's `config`.

use std::collections::HashMap;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};
use yatai_api_types::{
    ClusterConfigSchema, ClusterFullSchema, ClusterQuery, ClusterSchema, CreateClusterSchema,
    CreateDeploymentSchema, CreateDeploymentTargetSchema, DeploymentListQuery,
    DeploymentLogsSchema, DeploymentRevisionSchema, DeploymentSchema, DeploymentTargetSchema,
    DeploymentV2Body, ResourceInstanceConfigSchema, ResourceInstanceSchema,
    RollbackDeploymentSchema, UpdateClusterSchema, UpdateDeploymentSchema,
};
use yatai_domain::paging::{Page, MAX_PAGE};
use yatai_domain::registry::ClientGeneration;
use yatai_domain::Error;
use yatai_service::deployments::{self as svc, spec, CreateInput, TargetInput, UpdateInput, View};
use yatai_store::db::clusters::Cluster;
use yatai_store::db::deployments::{Revision, Target};
use yatai_store::db::users;

use super::registry::present::Presenter;
use super::schemas::{self, LabelItem, ListSchema, UserSchema};
use crate::auth::Caller;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_clusters, create_cluster))
        .routes(routes!(get_cluster, update_cluster))
        .routes(routes!(list_instance_types))
        .routes(routes!(list_all_v1))
        .routes(routes!(list_v1, create_v1))
        .routes(routes!(get_v1, update_v1, delete_v1))
        .routes(routes!(terminate_v1))
        .routes(routes!(rollback_v1))
        .routes(routes!(revisions_v1))
        .routes(routes!(revision_v1))
        .routes(routes!(logs_v1))
        .routes(routes!(list_v2, create_v2))
        .routes(routes!(get_v2, update_v2, patch_v2, delete_v2))
        .routes(routes!(terminate_v2))
        .routes(routes!(void_update_v2))
        .routes(routes!(files_v2, upload_files_v2))
}

/// Which API answers: the dialect of a target's `config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    V1,
    V2,
}

/// Paging and search of the v1 lists. Every value is text, so that an empty one (`count=`,
/// which some clients send) reads as absent instead of failing.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct ListParams {
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub count: Option<String>,
    #[serde(default)]
    pub search: Option<String>,
    #[serde(default)]
    pub q: Option<String>,
}

fn number(name: &str, v: Option<&String>) -> Result<Option<i64>, Error> {
    match v.map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            Error::invalid(format!(
                "{name} must be a whole number, got {:?}",
                s.chars().take(40).collect::<String>()
            ))
        }),
    }
}

/// A page from text parameters; `count` above the limit is clamped (bentoml 1.4 asks for
/// "all" by sending the total).
fn page_of(start: Option<&String>, count: Option<&String>, default: i64) -> Result<Page, Error> {
    let count = number("count", count)?.map(|c| c.min(MAX_PAGE));
    Page::new(number("start", start)?, count, default)
}

fn search_of(p: &ListParams) -> String {
    let mut words: Vec<&str> = Vec::new();
    if let Some(s) = p.search.as_deref() {
        words.push(s.trim());
    }
    // `q` words that are not filters search too (`is:dev` and the like are ignored).
    if let Some(q) = p.q.as_deref() {
        words.extend(q.split_whitespace().filter(|w| !w.contains(':')));
    }
    words.join(" ").trim().to_string()
}

// ---------------------------------------------------------------------------------------------
// Presentation
// ---------------------------------------------------------------------------------------------

/// Builds response shapes, looking users up once per request.
struct Present<'a> {
    state: &'a AppState,
    caller: &'a Caller,
    users: HashMap<String, UserSchema>,
    bentos: Presenter<'a>,
}

impl<'a> Present<'a> {
    fn new(state: &'a AppState, caller: &'a Caller) -> Self {
        Present {
            state,
            caller,
            users: HashMap::new(),
            bentos: Presenter::new(state, ClientGeneration::Current),
        }
    }

    /// A user by uid; a user deleted since is shown by a placeholder (the clients need one).
    async fn user(&mut self, uid: Option<&String>) -> Result<UserSchema, Error> {
        let key = uid.cloned().unwrap_or_default();
        if let Some(u) = self.users.get(&key) {
            return Ok(u.clone());
        }
        let found = match uid {
            Some(uid) => users::find_by_uid(self.state.db.pool(), uid).await?,
            None => None,
        };
        let schema = match found {
            Some(u) => schemas::user(&u),
            None => UserSchema {
                resource: schemas::resource("user", &key, "deleted-user", 0, None),
                first_name: String::new(),
                last_name: String::new(),
                email: String::new(),
                avatar_url: String::new(),
                is_site_admin: false,
            },
        };
        self.users.insert(key, schema.clone());
        Ok(schema)
    }

    async fn cluster(&mut self, c: &Cluster) -> Result<ClusterSchema, Error> {
        Ok(ClusterSchema {
            resource: schemas::resource("cluster", &c.uid, &c.name, c.created_at, c.updated_at),
            description: c.description.clone(),
            organization_name: self.caller.organization.name.clone(),
            creator: self.user(c.creator_uid.as_ref()).await?,
            is_first: c.name == svc::DEFAULT_CLUSTER,
            kind: c.kind.clone(),
        })
    }

    async fn cluster_full(&mut self, c: &Cluster) -> Result<ClusterFullSchema, Error> {
        Ok(ClusterFullSchema {
            cluster: self.cluster(c).await?,
            organization: schemas::organization(&self.caller.organization),
            kube_config: svc::shown_kube_config(self.state, c),
            config: ClusterConfigSchema {
                default_deployment_kube_namespace: c.default_namespace.clone(),
            },
            grafana_root_path: String::new(),
            resource_instances: instance_types(c),
        })
    }

    async fn revision(
        &mut self,
        dialect: Dialect,
        r: &Revision,
        targets: &[Target],
    ) -> Result<DeploymentRevisionSchema, Error> {
        let refs: Vec<&Target> = targets.iter().collect();
        let bentos = svc::bentos_of(self.state, &self.caller.organization.uid, &refs).await?;
        let mut out = Vec::new();
        for t in targets {
            let spec: spec::Spec = serde_json::from_str(&t.config).unwrap_or_default();
            let config = match dialect {
                Dialect::V1 => spec::to_v1(&spec),
                Dialect::V2 => spec::to_v2(&spec),
            };
            let key = (t.bento_repository.clone(), t.bento_version.clone());
            let bento = match bentos.get(&key) {
                Some((_, v)) => {
                    let mut b = self
                        .bentos
                        .versions(std::slice::from_ref(v), true, true)
                        .await?
                        .remove(0);
                    // The clients structure a target's bento as BentoWithRepositorySchema, whose
                    // repository declares `latest_bento` without a default: the key must be
                    // there (null is fine; the embedded repository is a shell).
                    if let Some(repo) = b.repository.as_mut() {
                        if repo.kind_fields.latest.is_none() {
                            repo.kind_fields.kind = "bento".to_string();
                            repo.kind_fields.latest = Some(None);
                        }
                    }
                    b
                }
                // The bento was deleted since: the record still names it.
                None => deleted_bento(&t.bento_repository, &t.bento_version),
            };
            out.push(DeploymentTargetSchema {
                // bentoml 1.1 reads `resource_type` as its ResourceType enum, which has no
                // "deployment_target": a target is shown as a part of its revision.
                resource: schemas::resource(
                    "deployment_revision",
                    &t.uid,
                    &t.bento_version,
                    t.created_at,
                    None,
                ),
                creator: self.user(t.creator_uid.as_ref()).await?,
                target_type: t.target_type.clone(),
                bento,
                config,
                canary_rules: serde_json::from_str(&t.canary_rules).ok(),
            });
        }
        Ok(DeploymentRevisionSchema {
            resource: schemas::resource(
                "deployment_revision",
                &r.uid,
                &r.number.to_string(),
                r.created_at,
                r.updated_at,
            ),
            creator: self.user(r.creator_uid.as_ref()).await?,
            status: r.status.clone(),
            targets: out,
            rollback_of: Some(r.rollback_of.clone()).filter(|s| !s.is_empty()),
        })
    }

    async fn deployment(&mut self, dialect: Dialect, v: &View) -> Result<DeploymentSchema, Error> {
        let d = &v.deployment;
        let mut resource =
            schemas::resource("deployment", &d.uid, &d.name, d.created_at, d.updated_at);
        resource.labels = svc::labels_of(d)
            .into_iter()
            .map(|(key, value)| LabelItem { key, value })
            .collect();
        let latest_revision = match &v.revision {
            Some((r, t)) => Some(self.revision(dialect, r, t).await?),
            None => None,
        };
        Ok(DeploymentSchema {
            resource,
            creator: self.user(d.creator_uid.as_ref()).await?,
            cluster: self.cluster(&v.cluster).await?,
            status: d.status.clone(),
            status_reason: d.status_reason.clone(),
            kube_namespace: d.kube_namespace.clone(),
            description: d.description.clone(),
            latest_revision,
            mode: Some(d.mode.clone()),
            urls: Some(d.url.clone())
                .filter(|u| !u.is_empty() && d.desired == "running")
                .into_iter()
                .collect(),
        })
    }

    async fn deployments(
        &mut self,
        dialect: Dialect,
        list: &[View],
    ) -> Result<Vec<DeploymentSchema>, Error> {
        let mut out = Vec::with_capacity(list.len());
        for v in list {
            out.push(self.deployment(dialect, v).await?);
        }
        Ok(out)
    }
}

/// A bento that was deleted after it was deployed, as the clients still need one.
fn deleted_bento(repository: &str, version: &str) -> schemas::VersionSchema {
    let repo = schemas::RepositorySchema {
        resource: schemas::resource("bento_repository", "", repository, 0, None),
        description: String::new(),
        creator: None,
        organization: None,
        kind_fields: schemas::KindFields {
            kind: "bento".to_string(),
            latest: Some(None),
            n_versions: None,
        },
    };
    schemas::VersionSchema {
        resource: schemas::resource("bento", "", version, 0, None),
        version: version.to_string(),
        description: "this bento was deleted".into(),
        image_build_status: "pending".into(),
        image_reference: None,
        image_build_reason: None,
        upload_status: "failed".into(),
        upload_finished_reason: "deleted".into(),
        upload_started_at: None,
        upload_finished_at: None,
        presigned_upload_url: String::new(),
        presigned_download_url: String::new(),
        transmission_strategy: None,
        upload_id: String::new(),
        manifest: serde_json::json!({"service": "", "bentoml_version": "", "size_bytes": 0, "apis": {}, "models": []}),
        build_at: yatai_domain::time::to_rfc3339(0),
        archive_size: None,
        archive_sha256: None,
        creator: None,
        repository: Some(Box::new(repo)),
        models: None,
    }
}

/// The instance types a cluster offers. Local clusters run replicas as processes of this
/// machine: one type, `cpu.local`, without guarantees.
fn instance_types(c: &Cluster) -> Vec<ResourceInstanceSchema> {
    let (name, display, description) = if c.kind == "local" {
        (
            "cpu.local",
            "Local process",
            "a process on the server's machine, sharing its CPUs and memory",
        )
    } else {
        (
            "cpu.default",
            "Default",
            "the namespace's defaults (set resources in the deployment to change them)",
        )
    };
    vec![ResourceInstanceSchema {
        resource: schemas::resource(
            "resource_instance",
            &format!("{}-{name}", c.uid),
            name,
            c.created_at,
            None,
        ),
        display_name: display.into(),
        description: description.into(),
        config: ResourceInstanceConfigSchema {
            group: "cpu".into(),
            resources: serde_json::json!({}),
            price: String::new(),
            node_selectors: Default::default(),
            gpu_config: None,
        },
    }]
}

fn labels(list: Option<&Vec<LabelItem>>) -> Option<Vec<(String, String)>> {
    list.map(|l| l.iter().map(|i| (i.key.clone(), i.value.clone())).collect())
}

// ---------------------------------------------------------------------------------------------
// Clusters
// ---------------------------------------------------------------------------------------------

/// Lists the organization's clusters; `default` (the local one) comes first.
#[utoipa::path(get, path = "/api/v1/clusters", tag = "clusters", params(ListParams), responses((status = 200, body = ListSchema<ClusterSchema>)))]
async fn list_clusters(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ListSchema<ClusterSchema>>> {
    let page = page_of(q.start.as_ref(), q.count.as_ref(), 20)?;
    let (list, total) = svc::list_clusters(&state, &caller, &search_of(&q), page).await?;
    let mut p = Present::new(&state, &caller);
    let mut items = Vec::new();
    for c in &list {
        items.push(p.cluster(c).await?);
    }
    Ok(Json(schemas::page(page, total, items)))
}

/// Registers a cluster: `kubernetes` with a kubeconfig (or none: the server's own cluster).
#[utoipa::path(post, path = "/api/v1/clusters", tag = "clusters", request_body = CreateClusterSchema, responses((status = 200, body = ClusterFullSchema), (status = 409, description = "name taken")))]
async fn create_cluster(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateClusterSchema>,
) -> ApiResult<Json<ClusterFullSchema>> {
    let input = svc::ClusterInput {
        name: body.name,
        description: Some(body.description),
        kind: body.kind,
        kube_config: body.kube_config,
        default_namespace: body
            .default_namespace
            .or(body.config.map(|c| c.default_deployment_kube_namespace)),
    };
    let c = svc::create_cluster(&state, &caller, &input).await?;
    Ok(Json(Present::new(&state, &caller).cluster_full(&c).await?))
}

/// One cluster with its settings (its kubeconfig without credentials).
#[utoipa::path(get, path = "/api/v1/clusters/{cluster}", tag = "clusters", params(("cluster" = String, Path)), responses((status = 200, body = ClusterFullSchema), (status = 404, description = "no such cluster")))]
async fn get_cluster(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ClusterFullSchema>> {
    let c = svc::get_cluster(&state, &caller, Some(&name)).await?;
    Ok(Json(Present::new(&state, &caller).cluster_full(&c).await?))
}

/// Changes a cluster's description, kubeconfig or default namespace.
#[utoipa::path(patch, path = "/api/v1/clusters/{cluster}", tag = "clusters", params(("cluster" = String, Path)), request_body = UpdateClusterSchema, responses((status = 200, body = ClusterFullSchema), (status = 404, description = "no such cluster")))]
async fn update_cluster(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateClusterSchema>,
) -> ApiResult<Json<ClusterFullSchema>> {
    let input = svc::ClusterInput {
        name: name.clone(),
        description: body.description,
        kind: None,
        kube_config: body.kube_config,
        default_namespace: body
            .default_namespace
            .or(body.config.map(|c| c.default_deployment_kube_namespace)),
    };
    let c = svc::update_cluster(&state, &caller, &name, &input).await?;
    Ok(Json(Present::new(&state, &caller).cluster_full(&c).await?))
}

/// The instance types of a cluster (`?cluster=`, default: the default cluster).
#[utoipa::path(get, path = "/api/v1/instance_types", tag = "clusters", params(ClusterQuery), responses((status = 200, body = Vec<ResourceInstanceSchema>)))]
async fn list_instance_types(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ClusterQuery>,
) -> ApiResult<Json<Vec<ResourceInstanceSchema>>> {
    let c = svc::get_cluster(&state, &caller, q.cluster.as_deref()).await?;
    Ok(Json(instance_types(&c)))
}

// ---------------------------------------------------------------------------------------------
// v1
// ---------------------------------------------------------------------------------------------

fn target_v1(t: &CreateDeploymentTargetSchema) -> Result<TargetInput, Error> {
    Ok(TargetInput {
        bento_repository: t.bento_repository.clone(),
        bento_version: t.bento.clone(),
        spec: spec::from_v1(t.config.as_ref())?,
        target_type: t
            .target_type
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "stable".into()),
        canary_rules: t.canary_rules.clone(),
    })
}

fn one_target(targets: &[CreateDeploymentTargetSchema]) -> Result<TargetInput, Error> {
    match targets {
        [t] => target_v1(t),
        [] => Err(Error::field(
            "targets",
            Error::invalid("a deployment needs one target: the bento to run"),
        )),
        _ => Err(Error::field(
            "targets",
            Error::invalid(
                "this server runs one target per deployment (canary targets are not supported)",
            ),
        )),
    }
}

async fn list_v1_of(
    state: &AppState,
    caller: &Caller,
    cluster: Option<&Cluster>,
    q: &ListParams,
) -> Result<ListSchema<DeploymentSchema>, Error> {
    let page = page_of(q.start.as_ref(), q.count.as_ref(), 20)?;
    let (list, total) = svc::list(state, caller, cluster, &search_of(q), page).await?;
    let items = Present::new(state, caller)
        .deployments(Dialect::V1, &list)
        .await?;
    Ok(schemas::page(page, total, items))
}

/// Lists the deployments of every cluster of the organization.
#[utoipa::path(get, path = "/api/v1/deployments", tag = "deployments", params(ListParams), responses((status = 200, body = ListSchema<DeploymentSchema>)))]
async fn list_all_v1(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ListSchema<DeploymentSchema>>> {
    Ok(Json(list_v1_of(&state, &caller, None, &q).await?))
}

/// Lists the deployments of a cluster.
#[utoipa::path(get, path = "/api/v1/clusters/{cluster}/deployments", tag = "deployments", params(("cluster" = String, Path), ListParams), responses((status = 200, body = ListSchema<DeploymentSchema>)))]
async fn list_v1(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(cluster): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ListSchema<DeploymentSchema>>> {
    let c = svc::get_cluster(&state, &caller, Some(&cluster)).await?;
    Ok(Json(list_v1_of(&state, &caller, Some(&c), &q).await?))
}

/// Creates a deployment of an uploaded bento on a cluster; it starts deploying at once.
#[utoipa::path(post, path = "/api/v1/clusters/{cluster}/deployments", tag = "deployments", params(("cluster" = String, Path)), request_body = CreateDeploymentSchema, responses((status = 200, body = DeploymentSchema), (status = 409, description = "name taken, or the bento is not uploaded")))]
async fn create_v1(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(cluster): ApiPath<String>,
    ApiJson(body): ApiJson<CreateDeploymentSchema>,
) -> ApiResult<Json<DeploymentSchema>> {
    let c = svc::get_cluster(&state, &caller, Some(&cluster)).await?;
    let input = CreateInput {
        name: body.name.clone(),
        namespace: body.kube_namespace.clone(),
        description: body.description.clone(),
        labels: labels(body.labels.as_ref()).unwrap_or_default(),
        mode: body.mode.clone(),
        target: one_target(&body.targets)?,
    };
    let v = svc::create(&state, &caller, &c, &input).await?;
    Ok(Json(
        Present::new(&state, &caller)
            .deployment(Dialect::V1, &v)
            .await?,
    ))
}

async fn load_v1(
    state: &AppState,
    caller: &Caller,
    cluster: &str,
    ns: &str,
    name: &str,
) -> Result<View, Error> {
    let c = svc::get_cluster(state, caller, Some(cluster)).await?;
    svc::get(state, caller, &c, ns, name).await
}

/// One deployment.
#[utoipa::path(get, path = "/api/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}", tag = "deployments", params(("cluster" = String, Path), ("namespace" = String, Path), ("name" = String, Path)), responses((status = 200, body = DeploymentSchema), (status = 404, description = "no such deployment")))]
async fn get_v1(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((cluster, ns, name)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<DeploymentSchema>> {
    let v = load_v1(&state, &caller, &cluster, &ns, &name).await?;
    Ok(Json(
        Present::new(&state, &caller)
            .deployment(Dialect::V1, &v)
            .await?,
    ))
}

/// Changes a deployment: a new revision with the given target, rolled out at once.
#[utoipa::path(patch, path = "/api/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}", tag = "deployments", params(("cluster" = String, Path), ("namespace" = String, Path), ("name" = String, Path)), request_body = UpdateDeploymentSchema, responses((status = 200, body = DeploymentSchema), (status = 404, description = "no such deployment")))]
async fn update_v1(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((cluster, ns, name)): ApiPath<(String, String, String)>,
    ApiJson(body): ApiJson<UpdateDeploymentSchema>,
) -> ApiResult<Json<DeploymentSchema>> {
    let v = load_v1(&state, &caller, &cluster, &ns, &name).await?;
    let input = UpdateInput {
        description: body.description.clone(),
        labels: labels(body.labels.as_ref()),
        mode: body.mode.clone(),
        target: Some(one_target(&body.targets)?),
    };
    let v = svc::update(&state, &caller, &v, &input).await?;
    Ok(Json(
        Present::new(&state, &caller)
            .deployment(Dialect::V1, &v)
            .await?,
    ))
}

/// Deletes a terminated deployment.
#[utoipa::path(delete, path = "/api/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}", tag = "deployments", params(("cluster" = String, Path), ("namespace" = String, Path), ("name" = String, Path)), responses((status = 200, body = DeploymentSchema), (status = 409, description = "not terminated")))]
async fn delete_v1(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((cluster, ns, name)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<DeploymentSchema>> {
    let v = load_v1(&state, &caller, &cluster, &ns, &name).await?;
    let mut p = Present::new(&state, &caller);
    let v = svc::delete(&state, &caller, &v).await?;
    Ok(Json(p.deployment(Dialect::V1, &v).await?))
}

/// Stops serving a deployment; its record and revisions stay.
#[utoipa::path(post, path = "/api/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}/terminate", tag = "deployments", params(("cluster" = String, Path), ("namespace" = String, Path), ("name" = String, Path)), responses((status = 200, body = DeploymentSchema)))]
async fn terminate_v1(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((cluster, ns, name)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<DeploymentSchema>> {
    let v = load_v1(&state, &caller, &cluster, &ns, &name).await?;
    let v = svc::terminate(&state, &caller, &v).await?;
    Ok(Json(
        Present::new(&state, &caller)
            .deployment(Dialect::V1, &v)
            .await?,
    ))
}

/// Rolls a deployment back: a new revision made from an old one.
#[utoipa::path(post, path = "/api/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}/rollback", tag = "deployments", params(("cluster" = String, Path), ("namespace" = String, Path), ("name" = String, Path)), request_body = RollbackDeploymentSchema, responses((status = 200, body = DeploymentSchema)))]
async fn rollback_v1(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((cluster, ns, name)): ApiPath<(String, String, String)>,
    ApiJson(body): ApiJson<RollbackDeploymentSchema>,
) -> ApiResult<Json<DeploymentSchema>> {
    let v = load_v1(&state, &caller, &cluster, &ns, &name).await?;
    let v = svc::rollback(&state, &caller, &v, &body.revision_uid).await?;
    Ok(Json(
        Present::new(&state, &caller)
            .deployment(Dialect::V1, &v)
            .await?,
    ))
}

/// The revisions of a deployment, newest first.
#[utoipa::path(get, path = "/api/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}/revisions", tag = "deployments", params(("cluster" = String, Path), ("namespace" = String, Path), ("name" = String, Path), ListParams), responses((status = 200, body = ListSchema<DeploymentRevisionSchema>)))]
async fn revisions_v1(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((cluster, ns, name)): ApiPath<(String, String, String)>,
    ApiQuery(q): ApiQuery<ListParams>,
) -> ApiResult<Json<ListSchema<DeploymentRevisionSchema>>> {
    let v = load_v1(&state, &caller, &cluster, &ns, &name).await?;
    let page = page_of(q.start.as_ref(), q.count.as_ref(), 20)?;
    let (list, total) = svc::revisions(&state, &caller, &v, page).await?;
    let mut p = Present::new(&state, &caller);
    let mut items = Vec::new();
    for (r, t) in &list {
        items.push(p.revision(Dialect::V1, r, t).await?);
    }
    Ok(Json(schemas::page(page, total, items)))
}

/// One revision of a deployment.
#[utoipa::path(get, path = "/api/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}/revisions/{uid}", tag = "deployments", params(("cluster" = String, Path), ("namespace" = String, Path), ("name" = String, Path), ("uid" = String, Path)), responses((status = 200, body = DeploymentRevisionSchema), (status = 404, description = "no such revision")))]
async fn revision_v1(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((cluster, ns, name, uid)): ApiPath<(String, String, String, String)>,
) -> ApiResult<Json<DeploymentRevisionSchema>> {
    let v = load_v1(&state, &caller, &cluster, &ns, &name).await?;
    let (r, t) = svc::revision(&state, &caller, &v, &uid).await?;
    Ok(Json(
        Present::new(&state, &caller)
            .revision(Dialect::V1, &r, &t)
            .await?,
    ))
}

/// How many log lines to return.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct LogsQuery {
    /// The last N lines (default 200, at most 10,000).
    #[serde(default)]
    pub lines: Option<String>,
}

/// The last lines of a deployment's logs (local clusters keep them).
#[utoipa::path(get, path = "/api/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}/logs", tag = "deployments", params(("cluster" = String, Path), ("namespace" = String, Path), ("name" = String, Path), LogsQuery), responses((status = 200, body = DeploymentLogsSchema)))]
async fn logs_v1(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((cluster, ns, name)): ApiPath<(String, String, String)>,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> ApiResult<Json<DeploymentLogsSchema>> {
    let v = load_v1(&state, &caller, &cluster, &ns, &name).await?;
    let n = number("lines", q.lines.as_ref())?
        .unwrap_or(200)
        .clamp(0, 10_000) as usize;
    let lines = svc::logs(&state, &caller, &v, n).await?;
    Ok(Json(DeploymentLogsSchema { lines }))
}

// ---------------------------------------------------------------------------------------------
// v2
// ---------------------------------------------------------------------------------------------

async fn target_v2(
    state: &AppState,
    caller: &Caller,
    body: &DeploymentV2Body,
) -> Result<TargetInput, Error> {
    let (repo, version) = body
        .bento
        .split_once(':')
        .filter(|(r, v)| !r.is_empty() && !v.is_empty() && *v != "latest")
        .ok_or_else(|| {
            Error::field(
                "bento",
                Error::invalid(format!(
                    "bento must be a tag with a version, NAME:VERSION, got {:?}",
                    body.bento.chars().take(160).collect::<String>()
                )),
            )
        })?;
    if body.canary.as_ref().is_some_and(|c| !c.is_null()) {
        return Err(Error::field(
            "canary",
            Error::invalid("canary versions are not supported by this server"),
        ));
    }
    if body.secrets.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err(Error::field(
            "secrets",
            Error::invalid(
                "secrets are not supported by this server; pass the values as --env NAME=VALUE",
            ),
        ));
    }
    let (_, v) = svc::deployable_bento(state, caller, repo, version).await?;
    let envs = body
        .envs
        .as_ref()
        .map(|e| serde_json::to_value(e).unwrap_or_default());
    let spec = spec::from_v2(
        &spec::V2Config {
            access_authorization: body.access_authorization,
            envs: envs.as_ref(),
            secrets: body.secrets.as_deref().unwrap_or_default(),
            services: &body.services,
        },
        &svc::entry_service(&v),
    )?;
    Ok(TargetInput {
        bento_repository: repo.to_string(),
        bento_version: version.to_string(),
        spec,
        target_type: "stable".into(),
        canary_rules: None,
    })
}

/// Lists deployments: of one cluster (`?cluster=`, default: the default cluster), or of all
/// (`?all=true`).
#[utoipa::path(get, path = "/api/v2/deployments", tag = "deployments-v2", params(DeploymentListQuery), responses((status = 200, body = ListSchema<DeploymentSchema>)))]
async fn list_v2(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<DeploymentListQuery>,
) -> ApiResult<Json<ListSchema<DeploymentSchema>>> {
    let all = q
        .all
        .as_deref()
        .is_some_and(|a| matches!(a.to_ascii_lowercase().as_str(), "true" | "1" | "yes"));
    let cluster = match (all, q.cluster.as_deref().filter(|c| !c.is_empty())) {
        (true, None) => None,
        (_, name) => Some(svc::get_cluster(&state, &caller, name).await?),
    };
    let params = ListParams {
        start: q.start.clone(),
        count: q.count.clone(),
        search: q.search.clone(),
        q: q.q.clone(),
    };
    let page = page_of(q.start.as_ref(), q.count.as_ref(), 20)?;
    let (list, total) =
        svc::list(&state, &caller, cluster.as_ref(), &search_of(&params), page).await?;
    let items = Present::new(&state, &caller)
        .deployments(Dialect::V2, &list)
        .await?;
    Ok(Json(schemas::page(page, total, items)))
}

/// Creates a deployment (`?cluster=`, default: the default cluster).
#[utoipa::path(post, path = "/api/v2/deployments", tag = "deployments-v2", params(ClusterQuery), request_body = DeploymentV2Body, responses((status = 200, body = DeploymentSchema), (status = 409, description = "name taken, or the bento is not uploaded")))]
async fn create_v2(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ClusterQuery>,
    ApiJson(body): ApiJson<DeploymentV2Body>,
) -> ApiResult<Json<DeploymentSchema>> {
    let cluster_name = q
        .cluster
        .clone()
        .filter(|c| !c.is_empty())
        .or(body.cluster.clone());
    let c = svc::get_cluster(&state, &caller, cluster_name.as_deref()).await?;
    let target = target_v2(&state, &caller, &body).await?;
    let name = match body.name.clone().filter(|n| !n.is_empty()) {
        Some(n) => n,
        None => generated_name(&target.bento_repository),
    };
    let input = CreateInput {
        name,
        namespace: None,
        description: None,
        labels: labels(body.labels.as_ref()).unwrap_or_default(),
        mode: None,
        target,
    };
    let v = svc::create(&state, &caller, &c, &input).await?;
    Ok(Json(
        Present::new(&state, &caller)
            .deployment(Dialect::V2, &v)
            .await?,
    ))
}

/// A name for a deployment created without one: the bento's name made DNS-safe, plus a
/// random suffix.
fn generated_name(repository: &str) -> String {
    let mut base: String = repository
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    base.truncate(50);
    let base = base.trim_matches('-');
    let suffix: String = yatai_store::new_uid()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(6)
        .collect::<String>()
        .to_ascii_lowercase();
    if base.is_empty() {
        format!("deployment-{suffix}")
    } else {
        format!("{base}-{suffix}")
    }
}

async fn load_v2(
    state: &AppState,
    caller: &Caller,
    name: &str,
    q: &ClusterQuery,
) -> Result<View, Error> {
    let c = svc::get_cluster(state, caller, q.cluster.as_deref()).await?;
    svc::get_by_name(state, caller, &c, name).await
}

/// One deployment (`?cluster=`, default: the default cluster).
#[utoipa::path(get, path = "/api/v2/deployments/{name}", tag = "deployments-v2", params(("name" = String, Path), ClusterQuery), responses((status = 200, body = DeploymentSchema), (status = 404, description = "no such deployment")))]
async fn get_v2(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ClusterQuery>,
) -> ApiResult<Json<DeploymentSchema>> {
    let v = load_v2(&state, &caller, &name, &q).await?;
    Ok(Json(
        Present::new(&state, &caller)
            .deployment(Dialect::V2, &v)
            .await?,
    ))
}

async fn update_v2_inner(
    state: &AppState,
    caller: &Caller,
    name: &str,
    q: &ClusterQuery,
    body: &DeploymentV2Body,
) -> Result<DeploymentSchema, Error> {
    let v = load_v2(state, caller, name, q).await?;
    let input = UpdateInput {
        description: None,
        labels: labels(body.labels.as_ref()),
        mode: None,
        target: Some(target_v2(state, caller, body).await?),
    };
    let v = svc::update(state, caller, &v, &input).await?;
    Present::new(state, caller)
        .deployment(Dialect::V2, &v)
        .await
}

/// Changes a deployment: a new revision, rolled out at once (bentoml 1.4 sends PUT).
#[utoipa::path(put, path = "/api/v2/deployments/{name}", tag = "deployments-v2", params(("name" = String, Path), ClusterQuery), request_body = DeploymentV2Body, responses((status = 200, body = DeploymentSchema), (status = 404, description = "no such deployment")))]
async fn update_v2(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ClusterQuery>,
    ApiJson(body): ApiJson<DeploymentV2Body>,
) -> ApiResult<Json<DeploymentSchema>> {
    Ok(Json(
        update_v2_inner(&state, &caller, &name, &q, &body).await?,
    ))
}

/// The same as PUT (older 1.2 / 1.3 clients send PATCH).
#[utoipa::path(patch, path = "/api/v2/deployments/{name}", tag = "deployments-v2", params(("name" = String, Path), ClusterQuery), request_body = DeploymentV2Body, responses((status = 200, body = DeploymentSchema), (status = 404, description = "no such deployment")))]
async fn patch_v2(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ClusterQuery>,
    ApiJson(body): ApiJson<DeploymentV2Body>,
) -> ApiResult<Json<DeploymentSchema>> {
    Ok(Json(
        update_v2_inner(&state, &caller, &name, &q, &body).await?,
    ))
}

/// Rolls the current revision out again (a restart), as `bentoml deployment update` with
/// nothing to change does.
#[utoipa::path(put, path = "/api/v2/deployments/{name}/void_update", tag = "deployments-v2", params(("name" = String, Path), ClusterQuery), responses((status = 200, body = DeploymentSchema), (status = 404, description = "no such deployment")))]
async fn void_update_v2(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ClusterQuery>,
) -> ApiResult<Json<DeploymentSchema>> {
    let v = load_v2(&state, &caller, &name, &q).await?;
    let v = match &v.revision {
        Some((r, _)) => svc::rollback(&state, &caller, &v, &r.uid.clone()).await?,
        None => v,
    };
    Ok(Json(
        Present::new(&state, &caller)
            .deployment(Dialect::V2, &v)
            .await?,
    ))
}

/// Stops serving a deployment; its record stays.
#[utoipa::path(post, path = "/api/v2/deployments/{name}/terminate", tag = "deployments-v2", params(("name" = String, Path), ClusterQuery), responses((status = 200, body = DeploymentSchema)))]
async fn terminate_v2(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ClusterQuery>,
) -> ApiResult<Json<DeploymentSchema>> {
    let v = load_v2(&state, &caller, &name, &q).await?;
    let v = svc::terminate(&state, &caller, &v).await?;
    Ok(Json(
        Present::new(&state, &caller)
            .deployment(Dialect::V2, &v)
            .await?,
    ))
}

/// Deletes a terminated deployment.
#[utoipa::path(delete, path = "/api/v2/deployments/{name}", tag = "deployments-v2", params(("name" = String, Path), ClusterQuery), responses((status = 200, body = DeploymentSchema), (status = 409, description = "not terminated")))]
async fn delete_v2(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ClusterQuery>,
) -> ApiResult<Json<DeploymentSchema>> {
    let v = load_v2(&state, &caller, &name, &q).await?;
    let mut p = Present::new(&state, &caller);
    let v = svc::delete(&state, &caller, &v).await?;
    Ok(Json(p.deployment(Dialect::V2, &v).await?))
}

fn no_codespaces() -> Error {
    Error::invalid(
        "deployment files (codespaces, `bentoml code`) are not supported by this server; \
         build and push a bento, then deploy it",
    )
}

/// Deployment files (codespaces): not supported, with a clear answer.
#[utoipa::path(get, path = "/api/v2/deployments/{name}/files", tag = "deployments-v2", params(("name" = String, Path)), responses((status = 400, description = "not supported")))]
async fn files_v2(_caller: Caller, ApiPath(_name): ApiPath<String>) -> ApiResult<Json<()>> {
    Err(no_codespaces().into())
}

/// Deployment files (codespaces): not supported, with a clear answer.
#[utoipa::path(post, path = "/api/v2/deployments/{name}/files", tag = "deployments-v2", params(("name" = String, Path)), responses((status = 400, description = "not supported")))]
async fn upload_files_v2(_caller: Caller, ApiPath(_name): ApiPath<String>) -> ApiResult<Json<()>> {
    Err(no_codespaces().into())
}
