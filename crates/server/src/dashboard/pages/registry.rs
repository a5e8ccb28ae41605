//! Bentos and models: repository lists, the versions of a repository, one version. Both kinds
//! follow one life cycle, so each page is written once and takes the [`Kind`].

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use yatai_domain::registry::Kind;
use yatai_domain::Error;
use yatai_service::registry::query::ListSpec;
use yatai_service::registry::{load_version, repositories, tag, versions};
use yatai_store::db::related::Related;
use yatai_store::db::versions::Version;

use crate::dashboard::form::FormError;
use crate::dashboard::format::{exact, human_size, relative};
use crate::dashboard::page::{Layout, NoFields, Page, Submission};
use crate::dashboard::pager::{Pager, PAGE_SIZE};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/bentos", get(repository_list::<Bentos>))
        .route("/bentos/{name}", get(version_list::<Bentos>))
        .route("/bentos/{name}/{version}", get(version_page::<Bentos>))
        .route("/bentos/{name}/{version}/build_image", post(build_image))
        .route("/models", get(repository_list::<Models>))
        .route("/models/{name}", get(version_list::<Models>))
        .route("/models/{name}/{version}", get(version_page::<Models>))
}

/// A kind of registry item, for the route table.
trait KindPages: Send + Sync + 'static {
    const KIND: Kind;
}
struct Bentos;
struct Models;
impl KindPages for Bentos {
    const KIND: Kind = Kind::Bento;
}
impl KindPages for Models {
    const KIND: Kind = Kind::Model;
}

/// The navigation entry of a kind's pages.
fn nav_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Bento => "bentos",
        Kind::Model => "models",
    }
}

/// The URL of a kind's pages.
fn base_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Bento => "/bentos",
        Kind::Model => "/models",
    }
}

/// A version as a table row (`templates/version_rows.html`).
pub struct VersionRow {
    pub version: String,
    pub tag: String,
    pub href: String,
    pub status: String,
    pub size: String,
    pub labels: Vec<(String, String)>,
    pub created_relative: String,
    pub created_exact: String,
}

/// The rows of a batch of versions, with their repositories and labels read once.
pub async fn version_rows(state: &AppState, list: &[Version]) -> Result<Vec<VersionRow>, Error> {
    let related = Related::of_versions(&state.db, list, true).await?;
    Ok(rows_of(list, &related))
}

/// The rows of versions whose repositories and labels were read with them (a page).
pub fn rows_of(list: &[Version], related: &Related) -> Vec<VersionRow> {
    list.iter()
        .map(|v| {
            let repo = related
                .repository(&v.repository_uid)
                .map(|r| r.name.as_str())
                .unwrap_or("?");
            VersionRow {
                version: v.version.clone(),
                tag: tag(repo, &v.version),
                href: format!("{}/{repo}/{}", base_of(v.kind), v.version),
                status: v.upload_status.to_string(),
                size: v.archive_size.map(human_size).unwrap_or_else(|| "—".into()),
                labels: related.labels(&v.uid).to_vec(),
                created_relative: relative(v.created_at),
                created_exact: exact(v.created_at),
            }
        })
        .collect()
}

/// A repository as a table row.
pub struct RepositoryRow {
    pub name: String,
    pub description: String,
    pub versions: i64,
    pub latest: Option<VersionRow>,
    pub created_relative: String,
    pub created_exact: String,
}

/// The filters of a list page, as its form sends them.
#[derive(Deserialize, Default)]
struct ListFilters {
    #[serde(default)]
    search: String,
    /// `KEY=VALUE`
    #[serde(default)]
    label: String,
    /// `FIELD-asc|desc`
    #[serde(default)]
    sort: String,
    #[serde(default)]
    start: i64,
}

const SORTS: [(&str, &str); 3] = [
    ("created_at-desc", "Newest first"),
    ("created_at-asc", "Oldest first"),
    ("name-asc", "Name"),
];

impl ListFilters {
    /// The list query of the filters, parsed by the service like the API's `q`.
    fn spec(&self) -> Result<ListSpec, Error> {
        let mut q = Vec::new();
        if !self.label.trim().is_empty() {
            q.push(format!("label:{}", self.label.trim()));
        }
        if !self.sort.is_empty() {
            q.push(format!("sort:{}", self.sort));
        }
        ListSpec::parse(
            Some(self.start.max(0)),
            Some(PAGE_SIZE),
            Some(&self.search),
            Some(&q.join(" ")),
        )
    }

    fn pager(&self, base: &str, shown: usize, total: i64) -> Pager {
        let filters = [
            ("search", self.search.as_str()),
            ("label", &self.label),
            ("sort", &self.sort),
        ];
        Pager::new(base, &filters, self.start, shown, total)
    }
}

#[derive(Template)]
#[template(path = "repositories.html")]
struct ListPage {
    layout: Layout,
    title: String,
    kind: &'static str,
    base: String,
    push_command: &'static str,
    search: String,
    label: String,
    sort: String,
    sort_options: Vec<(&'static str, &'static str)>,
    error: String,
    show_versions: bool,
    repositories: Vec<RepositoryRow>,
    rows: Vec<VersionRow>,
    pager: Pager,
}

impl ListPage {
    /// An empty list page of `kind` at `base`, keeping the filters.
    fn new(page: &Page, kind: Kind, title: String, base: String, filters: &ListFilters) -> Self {
        ListPage {
            layout: page.layout(nav_of(kind)),
            title,
            kind: kind.as_str(),
            base,
            push_command: match kind {
                Kind::Bento => "bentoml push NAME:VERSION",
                Kind::Model => "bentoml models push NAME:VERSION",
            },
            search: filters.search.clone(),
            label: filters.label.clone(),
            sort: filters.sort.clone(),
            sort_options: SORTS.to_vec(),
            error: String::new(),
            show_versions: false,
            repositories: Vec::new(),
            rows: Vec::new(),
            pager: Pager::default(),
        }
    }

    /// Shows the page, or a filter's error on it.
    fn respond(mut self, page: Page, filled: Result<(), Error>) -> Response {
        match filled {
            Ok(()) => page.show(&self),
            Err(e) => match FormError::of(e, &["q"]) {
                Ok(error) => {
                    self.error = error.message;
                    page.show_with(error.status, &self)
                }
                Err(e) => page.error(e),
            },
        }
    }
}

async fn repository_list<K: KindPages>(
    State(state): State<AppState>,
    page: Page,
    Query(filters): Query<ListFilters>,
) -> Response {
    let kind = K::KIND;
    let base = base_of(kind).to_string();
    let mut view = ListPage::new(
        &page,
        kind,
        format!("{}s", kind.title()),
        base.clone(),
        &filters,
    );
    let filled = async {
        let spec = filters.spec()?;
        let caller = &page.caller;
        if !spec.labels.is_empty() {
            // A label filter applies to versions: show the matching versions.
            let found = versions::list(&state, caller, kind, None, &spec).await?;
            view.show_versions = true;
            view.rows = rows_of(&found.versions, &found.related);
            view.pager = filters.pager(&base, found.versions.len(), found.total);
            return Ok(());
        }
        let found = repositories::list(&state, caller, kind, &spec).await?;
        for r in &found.repositories {
            view.repositories.push(RepositoryRow {
                name: r.name.clone(),
                description: r.description.clone(),
                versions: found.n_versions.get(&r.uid).copied().unwrap_or(0),
                latest: found
                    .latest
                    .get(&r.uid)
                    .map(|v| rows_of(std::slice::from_ref(v), &found.related).remove(0)),
                created_relative: relative(r.created_at),
                created_exact: exact(r.created_at),
            });
        }
        view.pager = filters.pager(&base, found.repositories.len(), found.total);
        Ok(())
    }
    .await;
    view.respond(page, filled)
}

async fn version_list<K: KindPages>(
    State(state): State<AppState>,
    page: Page,
    Path(name): Path<String>,
    Query(filters): Query<ListFilters>,
) -> Response {
    let kind = K::KIND;
    let base = format!("{}/{name}", base_of(kind));
    let mut view = ListPage::new(
        &page,
        kind,
        format!("{} {name}", kind.title()),
        base.clone(),
        &filters,
    );
    view.show_versions = true;
    let filled = async {
        let spec = filters.spec()?;
        let found = versions::list(&state, &page.caller, kind, Some(&name), &spec).await?;
        view.rows = rows_of(&found.versions, &found.related);
        view.pager = filters.pager(&base, found.versions.len(), found.total);
        Ok(())
    }
    .await;
    view.respond(page, filled)
}

#[derive(Template)]
#[template(path = "version.html")]
struct VersionPage {
    layout: Layout,
    kind: &'static str,
    kind_title: &'static str,
    base: &'static str,
    repository: String,
    v: VersionRow,
    reason: String,
    sha256: String,
    creator: String,
    build_at: String,
    image_build_status: String,
    /// The image of the last successful build, and why the last build failed.
    image_reference: String,
    image_build_reason: String,
    /// Whether the "Build image" button is shown: builds are enabled and the caller may write.
    can_build: bool,
    description: String,
    facts: Vec<(String, String)>,
    pull_command: String,
    related: Vec<VersionRow>,
    manifest: String,
}

/// Facts of a manifest worth showing: bentoml version, services, APIs, runners, python, module.
fn manifest_facts(kind: Kind, m: &serde_json::Value) -> Vec<(String, String)> {
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    let names = |v: Option<&serde_json::Value>, key: &str| -> Option<String> {
        let list: Vec<String> = match v? {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|i| i.get(key).and_then(|n| n.as_str()).map(str::to_string))
                .collect(),
            serde_json::Value::Object(o) => o.keys().cloned().collect(),
            _ => Vec::new(),
        };
        (!list.is_empty()).then(|| list.join(", "))
    };
    let mut facts = Vec::new();
    let mut push = |k: &str, v: Option<String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            facts.push((k.to_string(), v));
        }
    };
    push("BentoML", m.get("bentoml_version").and_then(text));
    match kind {
        Kind::Bento => {
            push("Service", m.get("service").and_then(text));
            push("Services", names(m.get("services"), "name"));
            push(
                "APIs",
                names(m.get("apis"), "name")
                    .or_else(|| m.get("schema").and_then(|s| names(s.get("routes"), "name"))),
            );
            push("Runners", names(m.get("runners"), "name"));
            push(
                "Python",
                m.get("image")
                    .and_then(|i| i.get("python_version"))
                    .and_then(text),
            );
        }
        Kind::Model => {
            push("Module", m.get("module").and_then(text));
            push(
                "Framework",
                m.get("context")
                    .and_then(|c| c.get("framework_name"))
                    .and_then(text),
            );
            push(
                "Python",
                m.get("context")
                    .and_then(|c| c.get("python_version"))
                    .and_then(text),
            );
        }
    }
    facts
}

async fn version_page<K: KindPages>(
    State(state): State<AppState>,
    page: Page,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    let kind = K::KIND;
    let built = async {
        let caller = &page.caller;
        let v = load_version(&state, caller, kind, &name, &version).await?;
        let related = match kind {
            Kind::Bento => versions::models_of_bento(&state, caller, &v).await?,
            Kind::Model => versions::bentos_of_model(&state, caller, &name, &version).await?,
        };
        let creator = versions::creators_of(&state, std::slice::from_ref(&v))
            .await?
            .into_iter()
            .next()
            .map(|u| u.name)
            .unwrap_or_default();
        let manifest: serde_json::Value = serde_json::from_str(&v.manifest).unwrap_or_default();
        let row = version_rows(&state, std::slice::from_ref(&v))
            .await?
            .remove(0);
        let image = yatai_service::registry::images::image_of(&state, &v).await?;
        Ok(VersionPage {
            layout: page.layout(nav_of(kind)),
            kind: kind.as_str(),
            kind_title: kind.title(),
            base: base_of(kind),
            repository: name.clone(),
            v: row,
            reason: v.upload_finished_reason.clone(),
            sha256: v.archive_sha256.clone().unwrap_or_else(|| "—".into()),
            creator,
            build_at: exact(v.build_at),
            image_build_status: v.image_build_status.to_string(),
            image_reference: image.image_reference,
            image_build_reason: image.reason,
            can_build: kind == Kind::Bento
                && yatai_service::registry::images::builds_enabled(&state)
                && caller
                    .authorize(yatai_domain::Action::WriteRegistry)
                    .is_ok(),
            description: v.description.clone(),
            facts: manifest_facts(kind, &manifest),
            pull_command: match kind {
                Kind::Bento => format!("bentoml pull {}", tag(&name, &version)),
                Kind::Model => format!("bentoml models pull {}", tag(&name, &version)),
            },
            related: version_rows(&state, &related).await?,
            manifest: serde_json::to_string_pretty(&manifest).unwrap_or_default(),
        })
    }
    .await;
    page.respond(built)
}

/// The "Build image" button of a bento's page: the same service function as
/// `POST /api/v1/bento_repositories/{name}/bentos/{version}/build_image`.
async fn build_image(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    Submission { page, .. }: Submission<NoFields>,
) -> Response {
    match yatai_service::registry::images::request_build(&state, &page.caller, &name, &version)
        .await
    {
        Ok(_) => page.redirect(&format!("/bentos/{name}/{version}")),
        Err(e) => page.error(e),
    }
}
