//! Deployments: the list, the create and edit forms (an edit is a new revision), and one
//! deployment with its URL, revisions (each can be rolled back to), events and logs, and the
//! Terminate and Delete buttons. Every page and form calls `yatai_service::deployments` like the
//! v1 API does; a form's spec is read by the service's own v1 parser (`spec::from_v1`), so the
//! rules and the field errors are the service's.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use yatai_domain::deployments::DeploymentStatus;
use yatai_domain::manifest::BentoManifest;
use yatai_domain::paging::Page as Range;
use yatai_domain::registry::Kind;
use yatai_domain::{Action, Error};
use yatai_service::deployments::{self as svc, spec, CreateInput, TargetInput, UpdateInput, View};
use yatai_service::events::{self, EventQuery};
use yatai_service::registry::query::ListSpec;
use yatai_service::registry::{tag, versions};
use yatai_store::db::clusters::Cluster;
use yatai_store::db::versions::Version;

use crate::auth::Caller;
use crate::dashboard::form::FormError;
use crate::dashboard::format::{exact, relative};
use crate::dashboard::page::{Layout, NoFields, Page, Submission};
use crate::dashboard::pager::{Pager, PAGE_SIZE};
use crate::dashboard::pages::events::{event_rows, EventRow};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/deployments", get(list).post(create))
        .route("/deployments/new", get(new_form))
        .route("/clusters/{c}/namespaces/{ns}/deployments/{d}", get(detail))
        .route(
            "/clusters/{c}/namespaces/{ns}/deployments/{d}/edit",
            get(edit_form).post(update),
        )
        .route(
            "/clusters/{c}/namespaces/{ns}/deployments/{d}/rollback",
            post(rollback),
        )
        .route(
            "/clusters/{c}/namespaces/{ns}/deployments/{d}/terminate",
            post(terminate),
        )
        .route(
            "/clusters/{c}/namespaces/{ns}/deployments/{d}/delete",
            post(delete),
        )
}

/// How many log lines the page shows.
const LOG_LINES: usize = 200;

/// The page of a deployment.
fn href_of(cluster: &str, namespace: &str, name: &str) -> String {
    format!("/clusters/{cluster}/namespaces/{namespace}/deployments/{name}")
}

/// A deployment as a table row (`templates/deployment_rows.html`).
pub struct DeploymentRow {
    pub name: String,
    pub href: String,
    pub status: String,
    pub reason: String,
    pub cluster: String,
    pub namespace: String,
    pub bento: String,
    pub bento_href: String,
    pub url: String,
    pub created_relative: String,
    pub created_exact: String,
}

fn deployment_row(v: &View) -> DeploymentRow {
    let d = &v.deployment;
    let target = v.revision.as_ref().and_then(|(_, t)| t.first());
    DeploymentRow {
        name: d.name.clone(),
        href: href_of(&v.cluster.name, &d.kube_namespace, &d.name),
        status: d.status.clone(),
        reason: d.status_reason.clone(),
        cluster: v.cluster.name.clone(),
        namespace: d.kube_namespace.clone(),
        bento: target
            .map(|t| tag(&t.bento_repository, &t.bento_version))
            .unwrap_or_default(),
        bento_href: target
            .map(|t| format!("/bentos/{}/{}", t.bento_repository, t.bento_version))
            .unwrap_or_default(),
        // As the API shows it: a URL only while the deployment is meant to run.
        url: if d.desired == "running" {
            d.url.clone()
        } else {
            String::new()
        },
        created_relative: relative(d.created_at),
        created_exact: exact(d.created_at),
    }
}

/// The rows of a page of deployments.
pub fn deployment_rows(list: &[View]) -> Vec<DeploymentRow> {
    list.iter().map(deployment_row).collect()
}

// ---------------------------------------------------------------------------------------------
// The list
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    search: String,
    #[serde(default)]
    start: i64,
}

#[derive(Template)]
#[template(path = "deployments.html")]
struct ListPage {
    layout: Layout,
    search: String,
    deployments: Vec<DeploymentRow>,
    can_create: bool,
    pager: Pager,
}

async fn list(State(state): State<AppState>, page: Page, Query(q): Query<ListQuery>) -> Response {
    let start = q.start.max(0);
    let built = async {
        let caller = &page.caller;
        let (list, total) = svc::list(
            &state,
            caller,
            None,
            q.search.trim(),
            Range {
                start,
                count: PAGE_SIZE,
            },
        )
        .await?;
        Ok(ListPage {
            layout: page.layout("deployments"),
            deployments: deployment_rows(&list),
            can_create: caller.authorize(Action::WriteDeployment).is_ok(),
            pager: Pager::new(
                "/deployments",
                &[("search", q.search.as_str())],
                start,
                list.len(),
                total,
            ),
            search: q.search.clone(),
        })
    }
    .await;
    page.respond(built)
}

// ---------------------------------------------------------------------------------------------
// The create and edit forms
// ---------------------------------------------------------------------------------------------

/// The form's inputs by name. Runner inputs are `runner.NAME.min_replicas` and
/// `runner.NAME.max_replicas`, so the fields are read by name rather than into a struct.
type Fields = BTreeMap<String, String>;

fn field<'a>(f: &'a Fields, name: &str) -> &'a str {
    f.get(name).map(|s| s.as_str()).unwrap_or("")
}

/// A number input as JSON: a number when it reads as one, else the text (the service's
/// parser then says what is wrong with it); `None` when empty.
fn number(text: &str) -> Option<Value> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match serde_json::from_str::<Value>(text) {
        Ok(n @ Value::Number(_)) => Some(n),
        _ => Some(Value::String(text.to_string())),
    }
}

fn hpa_conf(min: &str, max: &str) -> Value {
    let mut m = Map::new();
    if let Some(n) = number(min) {
        m.insert("min_replicas".into(), n);
    }
    if let Some(n) = number(max) {
        m.insert("max_replicas".into(), n);
    }
    Value::Object(m)
}

/// The v1 target config the form describes (bentoml 1.1's `config`), for `spec::from_v1`.
fn v1_config(f: &Fields, runners: &[String]) -> Value {
    let mut config = Map::new();
    config.insert(
        "hpa_conf".into(),
        hpa_conf(field(f, "min_replicas"), field(f, "max_replicas")),
    );
    let mut resources = Map::new();
    for (kind, cpu, memory) in [
        ("requests", "cpu_request", "memory_request"),
        ("limits", "cpu_limit", "memory_limit"),
    ] {
        let mut item = Map::new();
        for (key, input) in [("cpu", cpu), ("memory", memory)] {
            let value = field(f, input).trim();
            if !value.is_empty() {
                item.insert(key.into(), json!(value));
            }
        }
        if !item.is_empty() {
            resources.insert(kind.into(), Value::Object(item));
        }
    }
    if !resources.is_empty() {
        config.insert("resources".into(), Value::Object(resources));
    }
    let envs: Vec<Value> = field(f, "envs")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            json!({"key": k.trim(), "value": v})
        })
        .collect();
    config.insert("envs".into(), Value::Array(envs));
    if !runners.is_empty() {
        let mut r = Map::new();
        for name in runners {
            let min = field(f, &format!("runner.{name}.min_replicas"));
            let max = field(f, &format!("runner.{name}.max_replicas"));
            r.insert(name.clone(), json!({"hpa_conf": hpa_conf(min, max)}));
        }
        config.insert("runners".into(), Value::Object(r));
    }
    Value::Object(config)
}

/// The input of the form a field error of the service is about.
fn form_field(service_field: &str) -> String {
    let mapped = match service_field {
        "config.hpa_conf.min_replicas" => "min_replicas",
        "config.hpa_conf.max_replicas" => "max_replicas",
        "config.envs" => "envs",
        "config.resources.requests.cpu" => "cpu_request",
        "config.resources.requests.memory" => "memory_request",
        "config.resources.limits.cpu" => "cpu_limit",
        "config.resources.limits.memory" => "memory_limit",
        other => {
            if let Some(rest) = other.strip_prefix("config.runners.") {
                for end in ["min_replicas", "max_replicas"] {
                    if let Some(name) = rest.strip_suffix(&format!(".hpa_conf.{end}")) {
                        return format!("runner.{name}.{end}");
                    }
                }
            }
            other
        }
    };
    mapped.to_string()
}

/// The error shown in the form: next to the input it is about, else above the buttons.
fn form_error(e: Error, inputs: &[String]) -> Result<FormError, Error> {
    let e = match e {
        Error::Field { field, cause } => Error::Field {
            field: form_field(&field),
            cause,
        },
        other => other,
    };
    let is_form_error = match e.field_name() {
        Some(_) => true,
        None => matches!(e, Error::InvalidArgument(_)),
    };
    if !is_form_error {
        return Err(e);
    }
    let names: Vec<&str> = inputs.iter().map(String::as_str).collect();
    Ok(FormError::anywhere(e, &names))
}

/// One input of the deployment form, with its value and error.
pub struct Input {
    pub name: String,
    pub label: String,
    pub value: String,
    pub placeholder: &'static str,
    pub error: String,
}

/// A runner of the bento, with its two inputs.
pub struct RunnerInputs {
    pub name: String,
    /// Minimum and maximum replicas.
    pub inputs: Vec<Input>,
}

/// A bento that can be picked: `repo:version`.
pub struct BentoChoice {
    pub tag: String,
    pub selected: bool,
}

/// A cluster that can be picked.
pub struct ClusterChoice {
    pub name: String,
    pub kind: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "deployment_form.html")]
struct FormPage {
    layout: Layout,
    /// `true`: the edit form of an existing deployment.
    editing: bool,
    title: String,
    /// Where the bento (and, for a new deployment, cluster) picker sends the browser.
    pick_action: String,
    /// The namespace and name of the deployment being edited.
    at_namespace: String,
    at_name: String,
    back: String,
    bentos: Vec<BentoChoice>,
    bento: String,
    bento_error: String,
    clusters: Vec<ClusterChoice>,
    cluster: String,
    cluster_error: String,
    /// Name and namespace (a new deployment only).
    identity: Vec<Input>,
    description: Input,
    replicas: Vec<Input>,
    resources: Vec<Input>,
    envs: Input,
    runners: Vec<RunnerInputs>,
    general_error: String,
}

/// The uploaded bento versions of the organization, newest first (the picker).
async fn bento_choices(
    state: &AppState,
    caller: &Caller,
    selected: &str,
) -> Result<Vec<BentoChoice>, Error> {
    let spec = ListSpec::parse(
        Some(0),
        Some(100),
        None,
        Some("status:success sort:created_at-desc"),
    )?;
    let found = versions::list(state, caller, Kind::Bento, None, &spec).await?;
    let mut out: Vec<BentoChoice> = found
        .versions
        .iter()
        .filter_map(|v| {
            let repo = found.related.repository(&v.repository_uid)?;
            let t = tag(&repo.name, &v.version);
            Some(BentoChoice {
                selected: t == selected,
                tag: t,
            })
        })
        .collect();
    if !selected.is_empty() && !out.iter().any(|b| b.selected) {
        // The bento of the deployment, or one typed in: kept, the service judges it.
        out.insert(
            0,
            BentoChoice {
                tag: selected.to_string(),
                selected: true,
            },
        );
    }
    Ok(out)
}

/// `repo:version` split, as the service takes it (an incomplete tag goes through as is, and
/// the service says that it is not found).
fn split_tag(t: &str) -> (String, String) {
    let (r, v) = t.trim().split_once(':').unwrap_or((t.trim(), ""));
    (r.to_string(), v.to_string())
}

/// The runners of a bento's manifest.
fn runners_of(v: &Version) -> Vec<String> {
    let value: Value = serde_json::from_str(&v.manifest).unwrap_or(Value::Null);
    BentoManifest::from_value(value)
        .map(|m| m.runners().iter().map(|r| r.name.clone()).collect())
        .unwrap_or_default()
}

/// The runners of the picked bento; none when it cannot be deployed (the service says why
/// when the form is sent).
async fn picked_runners(state: &AppState, caller: &Caller, bento: &str) -> Vec<String> {
    let (repo, version) = split_tag(bento);
    if repo.is_empty() || version.is_empty() {
        return Vec::new();
    }
    match svc::deployable_bento(state, caller, &repo, &version).await {
        Ok((_, v)) => runners_of(&v),
        Err(_) => Vec::new(),
    }
}

/// The form's values of a spec (the edit form starts from the active revision).
fn fields_of_spec(s: &spec::Spec) -> Fields {
    let mut f = Fields::new();
    f.insert("min_replicas".into(), s.main.min_replicas.to_string());
    f.insert("max_replicas".into(), s.main.max_replicas.to_string());
    let r = &s.main.resources;
    for (input, value) in [
        (
            "cpu_request",
            r.requests.as_ref().and_then(|i| i.cpu.clone()),
        ),
        (
            "memory_request",
            r.requests.as_ref().and_then(|i| i.memory.clone()),
        ),
        ("cpu_limit", r.limits.as_ref().and_then(|i| i.cpu.clone())),
        (
            "memory_limit",
            r.limits.as_ref().and_then(|i| i.memory.clone()),
        ),
    ] {
        f.insert(input.into(), value.unwrap_or_default());
    }
    let envs: Vec<String> = s
        .envs
        .iter()
        .chain(s.main.envs.iter())
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    f.insert("envs".into(), envs.join("\n"));
    for (name, o) in &s.others {
        f.insert(
            format!("runner.{name}.min_replicas"),
            o.min_replicas.to_string(),
        );
        f.insert(
            format!("runner.{name}.max_replicas"),
            o.max_replicas.to_string(),
        );
    }
    f
}

struct FormParts<'a> {
    editing: bool,
    title: String,
    pick_action: String,
    at: (String, String),
    back: String,
    bento: String,
    cluster: String,
    clusters: &'a [Cluster],
    runners: Vec<String>,
    fields: Fields,
    error: FormError,
}

async fn form_page(state: &AppState, page: &Page, p: FormParts<'_>) -> Result<FormPage, Error> {
    let error_of = |name: &str| {
        if p.error.on(name) {
            p.error.message.clone()
        } else {
            String::new()
        }
    };
    let input = |name: &str, label: &str, placeholder: &'static str| Input {
        name: name.to_string(),
        label: label.to_string(),
        value: field(&p.fields, name).to_string(),
        placeholder,
        error: error_of(name),
    };
    let inputs_of_form: Vec<String> = inputs(&p.runners);
    let general_error = if !p.error.message.is_empty()
        && !inputs_of_form.iter().any(|i| p.error.on(i))
        && !["bento", "cluster"].iter().any(|i| p.error.on(i))
    {
        p.error.message.clone()
    } else {
        String::new()
    };
    Ok(FormPage {
        layout: page.layout("deployments"),
        editing: p.editing,
        title: p.title.clone(),
        pick_action: p.pick_action.clone(),
        at_namespace: p.at.0.clone(),
        at_name: p.at.1.clone(),
        back: p.back.clone(),
        bentos: bento_choices(state, &page.caller, &p.bento).await?,
        bento: p.bento.clone(),
        bento_error: error_of("bento"),
        clusters: p
            .clusters
            .iter()
            .map(|c| ClusterChoice {
                name: c.name.clone(),
                kind: c.kind.clone(),
                selected: c.name == p.cluster,
            })
            .collect(),
        cluster: p.cluster.clone(),
        cluster_error: error_of("cluster"),
        identity: vec![
            input("name", "Name", "my-service"),
            input("kube_namespace", "Namespace", ""),
        ],
        description: input("description", "Description", ""),
        replicas: vec![
            input("min_replicas", "Minimum replicas", "1"),
            input("max_replicas", "Maximum replicas", "1"),
        ],
        resources: vec![
            input("cpu_request", "CPU request", "500m"),
            input("memory_request", "Memory request", "512Mi"),
            input("cpu_limit", "CPU limit", "1"),
            input("memory_limit", "Memory limit", "1Gi"),
        ],
        envs: input("envs", "Environment (NAME=value, one per line)", ""),
        runners: p
            .runners
            .iter()
            .map(|r| RunnerInputs {
                name: r.clone(),
                inputs: vec![
                    input(&format!("runner.{r}.min_replicas"), "Minimum replicas", "1"),
                    input(&format!("runner.{r}.max_replicas"), "Maximum replicas", "1"),
                ],
            })
            .collect(),
        general_error,
    })
}

/// The names of the form's inputs (errors go next to them).
fn inputs(runners: &[String]) -> Vec<String> {
    let mut out: Vec<String> = [
        "bento",
        "cluster",
        "name",
        "kube_namespace",
        "description",
        "min_replicas",
        "max_replicas",
        "cpu_request",
        "memory_request",
        "cpu_limit",
        "memory_limit",
        "envs",
    ]
    .map(String::from)
    .to_vec();
    for r in runners {
        out.push(format!("runner.{r}.min_replicas"));
        out.push(format!("runner.{r}.max_replicas"));
    }
    out
}

/// What the create form's picker sends.
#[derive(Deserialize, Default)]
struct PickQuery {
    #[serde(default)]
    bento: String,
    #[serde(default)]
    cluster: String,
}

async fn all_clusters(state: &AppState, caller: &Caller) -> Result<Vec<Cluster>, Error> {
    Ok(svc::list_clusters(state, caller, "", Range::all()).await?.0)
}

async fn new_form(
    State(state): State<AppState>,
    page: Page,
    Query(q): Query<PickQuery>,
) -> Response {
    let built = async {
        let caller = &page.caller;
        caller.authorize(Action::WriteDeployment)?;
        let clusters = all_clusters(&state, caller).await?;
        let cluster = svc::get_cluster(&state, caller, Some(&q.cluster)).await?;
        let bento = if q.bento.is_empty() {
            bento_choices(&state, caller, "")
                .await?
                .first()
                .map(|b| b.tag.clone())
                .unwrap_or_default()
        } else {
            q.bento.clone()
        };
        let runners = picked_runners(&state, caller, &bento).await;
        let mut fields = fields_of_spec(&spec::from_v1(None)?);
        fields.insert("kube_namespace".into(), cluster.default_namespace.clone());
        for r in &runners {
            fields.insert(format!("runner.{r}.min_replicas"), "1".into());
            fields.insert(format!("runner.{r}.max_replicas"), "1".into());
        }
        form_page(
            &state,
            &page,
            FormParts {
                editing: false,
                title: "New deployment".into(),
                pick_action: "/deployments/new".into(),
                at: Default::default(),
                back: "/deployments".into(),
                bento,
                cluster: cluster.name.clone(),
                clusters: &clusters,
                runners,
                fields,
                error: FormError::default(),
            },
        )
        .await
    }
    .await;
    page.respond(built)
}

/// The target the form describes, read by the service's v1 parser.
fn target_of(f: &Fields, runners: &[String]) -> Result<TargetInput, Error> {
    let (repo, version) = split_tag(field(f, "bento"));
    Ok(TargetInput {
        bento_repository: repo,
        bento_version: version,
        spec: spec::from_v1(Some(&v1_config(f, runners)))?,
        target_type: "stable".into(),
        canary_rules: None,
    })
}

/// Runner names the form was sent with (its inputs name them).
fn sent_runners(f: &Fields) -> Vec<String> {
    let mut out: Vec<String> = f
        .keys()
        .filter_map(|k| {
            k.strip_prefix("runner.")
                .and_then(|r| {
                    r.strip_suffix(".min_replicas")
                        .or(r.strip_suffix(".max_replicas"))
                })
                .map(str::to_string)
        })
        .collect();
    out.dedup();
    out
}

/// "Create deployment": the same service functions as `POST /api/v1/clusters/{cluster}/deployments`.
async fn create(
    State(state): State<AppState>,
    Submission { page, form }: Submission<Fields>,
) -> Response {
    let runners = sent_runners(&form);
    let caller = &page.caller;
    let done = async {
        let cluster = svc::get_cluster(&state, caller, Some(field(&form, "cluster")))
            .await
            .map_err(|e| match e {
                Error::NotFound(_) => Error::field("cluster", e),
                e => e,
            })?;
        let input = CreateInput {
            name: field(&form, "name").trim().to_string(),
            namespace: Some(field(&form, "kube_namespace").trim().to_string()),
            description: Some(field(&form, "description").to_string()),
            labels: Vec::new(),
            mode: None,
            target: target_of(&form, &runners)?,
        };
        svc::create(&state, caller, &cluster, &input).await
    }
    .await;
    match done {
        Ok(v) => page.redirect(&href_of(
            &v.cluster.name,
            &v.deployment.kube_namespace,
            &v.deployment.name,
        )),
        Err(e) => {
            let error = match form_error(e, &inputs(&runners)) {
                Ok(error) => error,
                Err(e) => return page.error(e),
            };
            let shown = async {
                let clusters = all_clusters(&state, caller).await?;
                form_page(
                    &state,
                    &page,
                    FormParts {
                        editing: false,
                        title: "New deployment".into(),
                        pick_action: "/deployments/new".into(),
                        at: Default::default(),
                        back: "/deployments".into(),
                        bento: field(&form, "bento").to_string(),
                        cluster: field(&form, "cluster").to_string(),
                        clusters: &clusters,
                        runners: runners.clone(),
                        fields: form.clone(),
                        error: error.clone(),
                    },
                )
                .await
            }
            .await;
            match shown {
                Ok(view) => page.show_with(error.status, &view),
                Err(e) => page.error(e),
            }
        }
    }
}

/// A deployment by its address.
async fn load(
    state: &AppState,
    caller: &Caller,
    (cluster, namespace, name): &(String, String, String),
) -> Result<View, Error> {
    let c = svc::get_cluster(state, caller, Some(cluster)).await?;
    svc::get(state, caller, &c, namespace, name).await
}

async fn edit_form(
    State(state): State<AppState>,
    page: Page,
    Path(at): Path<(String, String, String)>,
    Query(q): Query<PickQuery>,
) -> Response {
    let built = async {
        let caller = &page.caller;
        caller.authorize(Action::WriteDeployment)?;
        let v = load(&state, caller, &at).await?;
        let current = v
            .revision
            .as_ref()
            .and_then(|(_, t)| t.first())
            .map(|t| tag(&t.bento_repository, &t.bento_version))
            .unwrap_or_default();
        let bento = if q.bento.is_empty() {
            current
        } else {
            q.bento.clone()
        };
        let mut fields = fields_of_spec(&v.spec().unwrap_or_default());
        fields.insert("description".into(), v.deployment.description.clone());
        let runners = picked_runners(&state, caller, &bento).await;
        for r in &runners {
            for end in ["min_replicas", "max_replicas"] {
                fields
                    .entry(format!("runner.{r}.{end}"))
                    .or_insert_with(|| "1".into());
            }
        }
        edit_page(
            &state,
            &page,
            &v,
            bento,
            runners,
            fields,
            FormError::default(),
        )
        .await
    }
    .await;
    page.respond(built)
}

async fn edit_page(
    state: &AppState,
    page: &Page,
    v: &View,
    bento: String,
    runners: Vec<String>,
    fields: Fields,
    error: FormError,
) -> Result<FormPage, Error> {
    let d = &v.deployment;
    let href = href_of(&v.cluster.name, &d.kube_namespace, &d.name);
    form_page(
        state,
        page,
        FormParts {
            editing: true,
            title: format!("Edit {}", d.name),
            pick_action: format!("{href}/edit"),
            at: (d.kube_namespace.clone(), d.name.clone()),
            back: href,
            bento,
            cluster: v.cluster.name.clone(),
            clusters: std::slice::from_ref(&v.cluster),
            runners,
            fields,
            error,
        },
    )
    .await
}

/// "Save as a new revision": the same service functions as the v1 PATCH of a deployment.
async fn update(
    State(state): State<AppState>,
    Path(at): Path<(String, String, String)>,
    Submission { page, form }: Submission<Fields>,
) -> Response {
    let runners = sent_runners(&form);
    let caller = &page.caller;
    let v = match load(&state, caller, &at).await {
        Ok(v) => v,
        Err(e) => return page.error(e),
    };
    let done = async {
        let input = UpdateInput {
            description: Some(field(&form, "description").to_string()),
            labels: None,
            mode: None,
            target: Some(target_of(&form, &runners)?),
        };
        svc::update(&state, caller, &v, &input).await
    }
    .await;
    match done {
        Ok(v) => page.redirect(&href_of(
            &v.cluster.name,
            &v.deployment.kube_namespace,
            &v.deployment.name,
        )),
        Err(e) => {
            let error = match form_error(e, &inputs(&runners)) {
                Ok(error) => error,
                Err(e) => return page.error(e),
            };
            let bento = field(&form, "bento").to_string();
            match edit_page(
                &state,
                &page,
                &v,
                bento,
                runners.clone(),
                form.clone(),
                error.clone(),
            )
            .await
            {
                Ok(view) => page.show_with(error.status, &view),
                Err(e) => page.error(e),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One deployment
// ---------------------------------------------------------------------------------------------

/// A revision as a table row.
pub struct RevisionRow {
    pub uid: String,
    pub number: i64,
    pub active: bool,
    pub bento: String,
    pub bento_href: String,
    pub replicas: String,
    pub creator: String,
    pub rollback_of: String,
    pub created_relative: String,
    pub created_exact: String,
}

#[derive(Template)]
#[template(path = "deployment.html")]
struct DetailPage {
    layout: Layout,
    d: DeploymentRow,
    description: String,
    desired: String,
    terminated: bool,
    cluster_kind: String,
    curl: String,
    revisions: Vec<RevisionRow>,
    events: Vec<EventRow>,
    logs: Option<String>,
    logs_note: String,
    can_write: bool,
}

/// The route of the bento's first API, for the curl example.
fn first_route(v: &Version) -> String {
    let value: Value = serde_json::from_str(&v.manifest).unwrap_or(Value::Null);
    let schema_route = value
        .get("schema")
        .and_then(|s| s.get("routes"))
        .and_then(Value::as_array)
        .and_then(|r| r.first())
        .and_then(|r| r.get("route").and_then(Value::as_str).map(str::to_string));
    if let Some(r) = schema_route {
        return r;
    }
    let manifest = BentoManifest::from_value(value).unwrap_or_default();
    manifest
        .apis()
        .first()
        .map(|(name, api)| {
            api.extra
                .get("route")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("/{name}"))
        })
        .unwrap_or_else(|| "/".into())
}

async fn detail(
    State(state): State<AppState>,
    page: Page,
    Path(at): Path<(String, String, String)>,
) -> Response {
    let built = async {
        let caller = &page.caller;
        let v = load(&state, caller, &at).await?;
        let d = &v.deployment;
        let row = deployment_row(&v);
        let (list, _) = svc::revisions(
            &state,
            caller,
            &v,
            Range {
                start: 0,
                count: 50,
            },
        )
        .await?;
        let active = v.revision.as_ref().map(|(r, _)| r.uid.clone());
        let mut uids: Vec<Option<String>> =
            list.iter().map(|(r, _)| r.creator_uid.clone()).collect();
        uids.push(d.creator_uid.clone());
        let names = svc::user_names(&state, &uids).await?;
        let numbers: BTreeMap<String, i64> = list
            .iter()
            .map(|(r, _)| (r.uid.clone(), r.number))
            .collect();
        let revisions = list
            .iter()
            .map(|(r, targets)| {
                let t = targets.first();
                let spec: Option<spec::Spec> = t.and_then(|t| serde_json::from_str(&t.config).ok());
                RevisionRow {
                    uid: r.uid.clone(),
                    number: r.number,
                    active: active.as_deref() == Some(r.uid.as_str()),
                    bento: t
                        .map(|t| tag(&t.bento_repository, &t.bento_version))
                        .unwrap_or_default(),
                    bento_href: t
                        .map(|t| format!("/bentos/{}/{}", t.bento_repository, t.bento_version))
                        .unwrap_or_default(),
                    replicas: spec
                        .map(|s| format!("{}–{}", s.main.min_replicas, s.main.max_replicas))
                        .unwrap_or_default(),
                    creator: r
                        .creator_uid
                        .as_ref()
                        .and_then(|u| names.get(u).cloned())
                        .unwrap_or_else(|| "—".into()),
                    rollback_of: if r.rollback_of.is_empty() {
                        String::new()
                    } else {
                        numbers
                            .get(&r.rollback_of)
                            .map(|n| format!("#{n}"))
                            .unwrap_or_else(|| "an older revision".into())
                    },
                    created_relative: relative(r.created_at),
                    created_exact: exact(r.created_at),
                }
            })
            .collect();
        let (events, _) = events::list(
            &state,
            caller,
            &EventQuery {
                resource_type: Some("deployment".into()),
                resource_name: Some(d.name.clone()),
                ..EventQuery::default()
            },
            Range {
                start: 0,
                count: 20,
            },
        )
        .await?;
        let target = v.revision.as_ref().and_then(|(_, t)| t.first());
        let route = match target {
            Some(t) => svc::bentos_of(&state, &caller.organization.uid, &[t])
                .await?
                .into_values()
                .next()
                .map(|(_, b)| first_route(&b))
                .unwrap_or_else(|| "/".into()),
            None => "/".into(),
        };
        let url = if row.url.is_empty() {
            "<URL>".to_string()
        } else {
            row.url.trim_end_matches('/').to_string()
        };
        let route = if route.starts_with('/') {
            route
        } else {
            format!("/{route}")
        };
        let curl =
            format!("curl -X POST {url}{route} -H 'Content-Type: application/json' -d '{{}}'");
        let (logs, logs_note) = match svc::logs(&state, caller, &v, LOG_LINES).await {
            Ok(lines) => (Some(lines.join("\n")), String::new()),
            Err(e) => {
                // Why there are none, in the service's words ("no logs are kept" on Kubernetes,
                // "runs no deployments" without runtimes); any other error as the API says it.
                let note = match e {
                    Error::NotFound(m) | Error::Unavailable(m) => m,
                    e => FormError::anywhere(e, &[]).message,
                };
                let why = if d.status_reason.is_empty() {
                    format!("Status: {}.", d.status)
                } else {
                    format!("Status: {}: {}", d.status, d.status_reason)
                };
                (None, format!("{note}. {why}"))
            }
        };
        let status: DeploymentStatus = d.status.parse().unwrap_or(DeploymentStatus::Unknown);
        Ok(DetailPage {
            layout: page.layout("deployments"),
            description: d.description.clone(),
            desired: d.desired.clone(),
            terminated: d.desired == "terminated" && status.is_stopped(),
            cluster_kind: v.cluster.kind.clone(),
            curl,
            revisions,
            events: event_rows(events),
            logs,
            logs_note,
            can_write: caller.authorize(Action::WriteDeployment).is_ok(),
            d: row,
        })
    }
    .await;
    page.respond(built)
}

#[derive(Deserialize)]
struct RollbackForm {
    #[serde(default)]
    revision_uid: String,
}

/// "Roll back to this": the same service function as `POST .../rollback` of the v1 API.
async fn rollback(
    State(state): State<AppState>,
    Path(at): Path<(String, String, String)>,
    Submission { page, form }: Submission<RollbackForm>,
) -> Response {
    let done = async {
        let v = load(&state, &page.caller, &at).await?;
        svc::rollback(&state, &page.caller, &v, &form.revision_uid).await
    }
    .await;
    match done {
        Ok(_) => page.redirect(&href_of(&at.0, &at.1, &at.2)),
        Err(e) => page.error(e),
    }
}

/// "Terminate": the same service function as `POST .../terminate` of the v1 API.
async fn terminate(
    State(state): State<AppState>,
    Path(at): Path<(String, String, String)>,
    Submission { page, .. }: Submission<NoFields>,
) -> Response {
    let done = async {
        let v = load(&state, &page.caller, &at).await?;
        svc::terminate(&state, &page.caller, &v).await
    }
    .await;
    match done {
        Ok(_) => page.redirect(&href_of(&at.0, &at.1, &at.2)),
        Err(e) => page.error(e),
    }
}

/// "Delete": the same service function as the v1 DELETE of a deployment.
async fn delete(
    State(state): State<AppState>,
    Path(at): Path<(String, String, String)>,
    Submission { page, .. }: Submission<NoFields>,
) -> Response {
    let done = async {
        let v = load(&state, &page.caller, &at).await?;
        svc::delete(&state, &page.caller, &v).await
    }
    .await;
    match done {
        Ok(_) => page.redirect("/deployments"),
        Err(e) => page.error(e),
    }
}
