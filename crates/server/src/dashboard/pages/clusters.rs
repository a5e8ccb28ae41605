//! Clusters: the list (the local `default` one and the Kubernetes clusters registered), the form
//! that adds a Kubernetes cluster, and one cluster with its settings and its deployments. Every
//! page calls `yatai_service::deployments` like the v1 API does.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use yatai_domain::deployments::ClusterKind;
use yatai_domain::paging::Page as Range;
use yatai_domain::{Action, Error};
use yatai_service::deployments::{self as svc, ClusterInput};
use yatai_store::db::clusters::Cluster;

use crate::dashboard::form::FormError;
use crate::dashboard::format::{exact, relative};
use crate::dashboard::page::{Layout, Page, Submission};
use crate::dashboard::pager::{Pager, PAGE_SIZE};
use crate::dashboard::pages::deployments::{deployment_rows, DeploymentRow};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/clusters", get(list).post(create))
        .route("/clusters/new", get(new_form))
        .route("/clusters/{name}", get(detail))
}

/// A cluster as a table row.
pub struct ClusterRow {
    pub name: String,
    pub description: String,
    pub kind: String,
    pub is_local: bool,
    pub default_namespace: String,
    pub creator: String,
    pub created_relative: String,
    pub created_exact: String,
}

async fn cluster_rows(state: &AppState, list: &[Cluster]) -> Result<Vec<ClusterRow>, Error> {
    let uids: Vec<Option<String>> = list.iter().map(|c| c.creator_uid.clone()).collect();
    let names = svc::user_names(state, &uids).await?;
    Ok(list
        .iter()
        .map(|c| ClusterRow {
            name: c.name.clone(),
            description: c.description.clone(),
            kind: c.kind.clone(),
            is_local: c.kind == ClusterKind::Local.as_str(),
            default_namespace: c.default_namespace.clone(),
            creator: c
                .creator_uid
                .as_ref()
                .and_then(|u| names.get(u).cloned())
                .unwrap_or_else(|| "—".into()),
            created_relative: relative(c.created_at),
            created_exact: exact(c.created_at),
        })
        .collect())
}

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    start: i64,
}

#[derive(Template)]
#[template(path = "clusters.html")]
struct ListPage {
    layout: Layout,
    clusters: Vec<ClusterRow>,
    can_create: bool,
    pager: Pager,
}

async fn list(State(state): State<AppState>, page: Page, Query(q): Query<ListQuery>) -> Response {
    let start = q.start.max(0);
    let built = async {
        let (list, total) = svc::list_clusters(
            &state,
            &page.caller,
            "",
            Range {
                start,
                count: PAGE_SIZE,
            },
        )
        .await?;
        Ok(ListPage {
            layout: page.layout("clusters"),
            clusters: cluster_rows(&state, &list).await?,
            can_create: page.caller.authorize(Action::WriteCluster).is_ok(),
            pager: Pager::new("/clusters", &[], start, list.len(), total),
        })
    }
    .await;
    page.respond(built)
}

/// The fields of the form that adds a Kubernetes cluster.
#[derive(Deserialize, Default)]
struct ClusterForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    default_namespace: String,
    /// Empty: the Kubernetes cluster the server runs in.
    #[serde(default)]
    kube_config: String,
}

const CLUSTER_FIELDS: [&str; 4] = ["name", "description", "default_namespace", "kube_config"];

#[derive(Template)]
#[template(path = "cluster_new.html")]
struct NewPage {
    layout: Layout,
    form: ClusterForm,
    error: FormError,
}

async fn new_form(page: Page) -> Response {
    if let Err(e) = page.caller.authorize(Action::WriteCluster) {
        return page.error(e);
    }
    let view = NewPage {
        layout: page.layout("clusters"),
        form: ClusterForm {
            default_namespace: svc::DEFAULT_NAMESPACE.into(),
            ..ClusterForm::default()
        },
        error: FormError::default(),
    };
    page.show(&view)
}

/// "Add a Kubernetes cluster": the same service function as `POST /api/v1/clusters`.
async fn create(
    State(state): State<AppState>,
    Submission { page, form }: Submission<ClusterForm>,
) -> Response {
    let input = ClusterInput {
        name: form.name.trim().to_string(),
        description: Some(form.description.clone()),
        kind: Some(ClusterKind::Kubernetes.as_str().into()),
        kube_config: Some(form.kube_config.clone()),
        default_namespace: Some(form.default_namespace.trim().to_string()),
    };
    match svc::create_cluster(&state, &page.caller, &input).await {
        Ok(c) => page.redirect(&format!("/clusters/{}", c.name)),
        Err(e) => match FormError::of(e, &CLUSTER_FIELDS) {
            Ok(error) => {
                let view = NewPage {
                    layout: page.layout("clusters"),
                    form,
                    error,
                };
                page.show_with(view.error.status, &view)
            }
            Err(e) => page.error(e),
        },
    }
}

#[derive(Template)]
#[template(path = "cluster.html")]
struct DetailPage {
    layout: Layout,
    c: ClusterRow,
    kube_config: String,
    deployments: Vec<DeploymentRow>,
    can_deploy: bool,
    pager: Pager,
}

async fn detail(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    let start = q.start.max(0);
    let built = async {
        let caller = &page.caller;
        let cluster = svc::get_cluster(&state, caller, Some(&name)).await?;
        let (list, total) = svc::list(
            &state,
            caller,
            Some(&cluster),
            "",
            Range {
                start,
                count: PAGE_SIZE,
            },
        )
        .await?;
        Ok(DetailPage {
            layout: page.layout("clusters"),
            kube_config: svc::shown_kube_config(&state, &cluster),
            c: cluster_rows(&state, std::slice::from_ref(&cluster))
                .await?
                .remove(0),
            deployments: deployment_rows(&list),
            can_deploy: caller.authorize(Action::WriteDeployment).is_ok(),
            pager: Pager::new(
                &format!("/clusters/{}", cluster.name),
                &[],
                start,
                list.len(),
                total,
            ),
        })
    }
    .await;
    page.respond(built)
}
