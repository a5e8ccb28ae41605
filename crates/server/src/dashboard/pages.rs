//! The dashboard's page handlers. Data and permission checks come from the same domain rules
//! and store functions as the REST API; these handlers only shape them for people.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::{CookieJar, Form};
use serde::Deserialize;
use yatai_domain::registry::Kind;
use yatai_domain::time::{now_micros, parse_rfc3339};
use yatai_domain::{Action, Error, Role, Scope};
use yatai_store::db::versions::{Version, VersionFilter};
use yatai_store::db::{
    bento_models, cli_logins, events as event_rows, labels, members as member_rows,
    repositories as repos, users as user_rows, versions,
};

use super::format::{exact, human_size, relative};
use super::{
    check_csrf, csrf_token, error_page, form_caller, message, page_caller, render, Layout,
};
use crate::api::{api_tokens, auth, events, members, setup, users};
use crate::auth::secrets::{hash_password, secret_hash};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;

type MaybeCaller = Result<Caller, ApiError>;

/// One input of a form, with its error.
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub kind: &'static str,
    pub value: String,
    pub required: bool,
    pub autocomplete: &'static str,
    pub error: String,
}

fn field(
    name: &'static str,
    label: &'static str,
    kind: &'static str,
    required: bool,
    autocomplete: &'static str,
) -> Field {
    Field {
        name,
        label,
        kind,
        value: String::new(),
        required,
        autocomplete,
        error: String::new(),
    }
}

/// The form field an error message is about, from the words the domain's rules use.
fn error_field(e: &Error) -> &'static str {
    let m = e.to_string();
    if m.contains("exists already") {
        "name"
    } else if m.contains("password") {
        "password"
    } else if m.contains("e-mail") {
        "email"
    } else if m.contains("scope") {
        "scopes"
    } else if m.contains("expired_at") {
        "expired_at"
    } else if m.contains("role") {
        "role"
    } else if m.contains("name") || m.contains("exists already") {
        "name"
    } else {
        "other"
    }
}

fn person_fields(values: &[(&str, &str)], error: Option<&Error>) -> Vec<Field> {
    let mut fields = vec![
        field("name", "User name", "text", true, "username"),
        field("email", "E-mail", "email", true, "email"),
        field(
            "password",
            "Password (8 characters or more)",
            "password",
            true,
            "new-password",
        ),
        field("first_name", "First name", "text", false, "given-name"),
        field("last_name", "Last name", "text", false, "family-name"),
    ];
    for f in &mut fields {
        if f.kind != "password" {
            f.value = values
                .iter()
                .find(|(k, _)| *k == f.name)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default();
        }
        if let Some(e) = error {
            if error_field(e) == f.name || (f.name == "name" && error_field(e) == "other") {
                f.error = e.to_string();
            }
        }
    }
    fields
}

// ---------------------------------------------------------------- setup, login

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    layout: Layout,
    token: String,
    fields: Vec<Field>,
}

#[derive(Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

pub async fn setup_form(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<TokenQuery>,
) -> Response {
    match setup::is_completed(&state).await {
        Ok(true) => {
            return message(
                StatusCode::CONFLICT,
                "setup-closed",
                "Setup is done",
                "This installation is set up already. Log in instead.",
                "/login",
                "Log in",
            )
        }
        Ok(false) => {}
        Err(e) => return error_page(e, &Uri::from_static("/setup")),
    }
    if q.token.is_empty()
        || !crate::auth::secrets::secrets_equal(&q.token, &state.settings.initialization_token)
    {
        return message(
            StatusCode::FORBIDDEN,
            "setup-invalid",
            "Invalid setup link",
            "This setup link has a wrong or missing token. Use the URL that `yatai serve` printed.",
            "",
            "",
        );
    }
    let (jar, csrf) = csrf_token(jar, state.settings.secure_cookies);
    (
        jar,
        render(&SetupPage {
            layout: Layout::anonymous(&csrf),
            token: q.token,
            fields: person_fields(&[], None),
        }),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    csrf: String,
    token: String,
    name: String,
    email: String,
    password: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
}

pub async fn setup_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(f): Form<SetupForm>,
) -> Response {
    if let Err(r) = check_csrf(&jar, &f.csrf) {
        return r;
    }
    let body = setup::SetupSchema {
        token: f.token.clone(),
        name: f.name.clone(),
        email: f.email.clone(),
        password: f.password.clone(),
        first_name: f.first_name.clone(),
        last_name: f.last_name.clone(),
    };
    match setup::complete(&state, &body).await {
        Ok(_) => match auth::open_session(&state, &f.name, &f.password).await {
            Ok((_, secret)) => (
                jar.add(auth::session_cookie(&state, secret)),
                Redirect::to("/"),
            )
                .into_response(),
            Err(e) => error_page(e, &Uri::from_static("/")),
        },
        Err(e @ (Error::InvalidArgument(_) | Error::Conflict(_))) if !matches!(e, Error::Conflict(ref m) if m.contains("setup")) =>
        {
            let values = [
                ("name", f.name.as_str()),
                ("email", f.email.as_str()),
                ("first_name", f.first_name.as_str()),
                ("last_name", f.last_name.as_str()),
            ];
            let page = SetupPage {
                layout: Layout::anonymous(&f.csrf),
                token: f.token,
                fields: person_fields(&values, Some(&e)),
            };
            (StatusCode::BAD_REQUEST, render(&page)).into_response()
        }
        Err(Error::Conflict(_)) => message(
            StatusCode::CONFLICT,
            "setup-closed",
            "Setup is done",
            "This installation is set up already. Log in instead.",
            "/login",
            "Log in",
        ),
        Err(Error::Forbidden(_)) => message(
            StatusCode::FORBIDDEN,
            "setup-invalid",
            "Invalid setup link",
            "This setup link has a wrong or missing token. Use the URL that `yatai serve` printed.",
            "",
            "",
        ),
        Err(e) => error_page(e, &Uri::from_static("/setup")),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    next: String,
    name_or_email: String,
    error: String,
}

#[derive(Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: String,
}

/// Only local paths are followed after login (no open redirect).
fn safe_next(next: &str) -> String {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next.to_string()
    } else {
        "/".to_string()
    }
}

pub async fn login_form(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<NextQuery>,
) -> Response {
    if let Ok(false) = setup::is_completed(&state).await {
        return message(
            StatusCode::OK,
            "setup-pending",
            "Set up first",
            "No administrator exists yet. Open the setup URL that `yatai serve` printed.",
            "",
            "",
        );
    }
    let (jar, csrf) = csrf_token(jar, state.settings.secure_cookies);
    (
        jar,
        render(&LoginPage {
            layout: Layout::anonymous(&csrf),
            next: safe_next(&q.next),
            name_or_email: String::new(),
            error: String::new(),
        }),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
    name_or_email: String,
    password: String,
}

pub async fn login_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(f): Form<LoginForm>,
) -> Response {
    if let Err(r) = check_csrf(&jar, &f.csrf) {
        return r;
    }
    match auth::open_session(&state, &f.name_or_email, &f.password).await {
        Ok((_, secret)) => (
            jar.add(auth::session_cookie(&state, secret)),
            Redirect::to(&safe_next(&f.next)),
        )
            .into_response(),
        Err(e) => {
            let page = LoginPage {
                layout: Layout::anonymous(&f.csrf),
                next: safe_next(&f.next),
                name_or_email: f.name_or_email,
                error: e.to_string(),
            };
            (StatusCode::UNAUTHORIZED, render(&page)).into_response()
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(f): Form<CsrfOnly>,
) -> Response {
    if let Err(r) = check_csrf(&jar, &f.csrf) {
        return r;
    }
    if let Some(c) = jar.get(crate::auth::SESSION_COOKIE) {
        let _ = yatai_store::db::sessions::delete(state.db.pool(), &secret_hash(c.value())).await;
    }
    (
        jar.remove(
            axum_extra::extract::cookie::Cookie::build(crate::auth::SESSION_COOKIE).path("/"),
        ),
        Redirect::to("/login"),
    )
        .into_response()
}

// ---------------------------------------------------------------- registry views

/// A version as a table row.
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

/// The navigation entry of a kind's pages.
fn page_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Bento => "bentos",
        Kind::Model => "models",
    }
}

fn base_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Bento => "/bentos",
        Kind::Model => "/models",
    }
}

async fn version_rows(state: &AppState, list: &[Version]) -> Result<Vec<VersionRow>, Error> {
    let uids: Vec<String> = list.iter().map(|v| v.uid.clone()).collect();
    let mut label_map = labels::of(state.db.pool(), &uids).await?;
    let mut repo_uids: Vec<String> = list.iter().map(|v| v.repository_uid.clone()).collect();
    repo_uids.sort();
    repo_uids.dedup();
    let repositories = repos::find_many(state.db.pool(), &repo_uids).await?;
    Ok(list
        .iter()
        .map(|v| {
            let repo = repositories
                .iter()
                .find(|r| r.uid == v.repository_uid)
                .map(|r| r.name.as_str())
                .unwrap_or("?");
            let kind = if v.kind == Kind::Model.as_str() {
                Kind::Model
            } else {
                Kind::Bento
            };
            VersionRow {
                version: v.version.clone(),
                tag: format!("{repo}:{}", v.version),
                href: format!("{}/{repo}/{}", base_of(kind), v.version),
                status: v.upload_status.clone(),
                size: v.archive_size.map(human_size).unwrap_or_else(|| "—".into()),
                labels: label_map.remove(&v.uid).unwrap_or_default(),
                created_relative: relative(v.created_at),
                created_exact: exact(v.created_at),
            }
        })
        .collect())
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    layout: Layout,
    bento_repositories: i64,
    model_repositories: i64,
    bento_versions: i64,
    model_versions: i64,
    members: usize,
    latest_bentos: Vec<VersionRow>,
    latest_models: Vec<VersionRow>,
    events: Vec<EventRow>,
}

pub async fn overview(
    State(state): State<AppState>,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
) -> Response {
    let caller = match page_caller(caller, &uri) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (jar, csrf) = csrf_token(jar, state.settings.secure_cookies);
    let page = async {
        caller.authorize(Action::ReadRegistry)?;
        let pool = state.db.pool();
        let org = &caller.organization.uid;
        let (_, bento_repositories) =
            repos::list(pool, org, Kind::Bento, "", Default::default(), 0, 0).await?;
        let (_, model_repositories) =
            repos::list(pool, org, Kind::Model, "", Default::default(), 0, 0).await?;
        let (bentos, bento_versions) =
            versions::list(pool, org, Kind::Bento, &VersionFilter::default(), 0, 5).await?;
        let (models, model_versions) =
            versions::list(pool, org, Kind::Model, &VersionFilter::default(), 0, 5).await?;
        let members = member_rows::list(pool, org).await?.len();
        let events = if caller.authorize(Action::ReadOrganization).is_ok() {
            event_page(
                &state,
                &caller,
                &events::EventQuery {
                    start: None,
                    count: Some(8),
                    resource_type: None,
                    operation_name: None,
                    user: None,
                    since: None,
                    until: None,
                },
            )
            .await?
            .0
        } else {
            Vec::new()
        };
        Ok::<_, Error>(OverviewPage {
            layout: Layout::for_caller(&caller, &csrf, "overview"),
            bento_repositories,
            model_repositories,
            bento_versions,
            model_versions,
            members,
            latest_bentos: version_rows(&state, &bentos).await?,
            latest_models: version_rows(&state, &models).await?,
            events,
        })
    }
    .await;
    (
        jar,
        page.map(|p| render(&p))
            .unwrap_or_else(|e| error_page(e, &uri)),
    )
        .into_response()
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

#[derive(Template)]
#[template(path = "repositories.html")]
struct RepositoriesPage {
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
    prev: Option<String>,
    next: Option<String>,
    range_text: String,
}

impl RepositoriesPage {
    /// An empty list page of `kind` under `base`, keeping the filters of `form`.
    fn new(
        caller: &Caller,
        csrf: &str,
        kind: Kind,
        title: String,
        base: String,
        form: &ListForm,
    ) -> Self {
        RepositoriesPage {
            layout: Layout::for_caller(caller, csrf, page_name(kind)),
            title,
            kind: kind.as_str(),
            base,
            push_command: match kind {
                Kind::Bento => "bentoml push NAME:VERSION",
                Kind::Model => "bentoml models push NAME:VERSION",
            },
            search: form.search.clone(),
            label: form.label.clone(),
            sort: form.sort.clone(),
            sort_options: SORTS.to_vec(),
            error: String::new(),
            show_versions: false,
            repositories: Vec::new(),
            rows: Vec::new(),
            prev: None,
            next: None,
            range_text: String::new(),
        }
    }
}

#[derive(Deserialize, Default)]
pub struct ListForm {
    #[serde(default)]
    search: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    start: i64,
}

/// The page size of dashboard lists.
const PAGE: i64 = 25;

impl ListForm {
    fn to_query(&self) -> Result<crate::api::registry::ListQuery, Error> {
        let mut q = Vec::new();
        if !self.label.trim().is_empty() {
            if !self.label.contains('=') {
                return Err(Error::invalid("a label filter looks like KEY=VALUE"));
            }
            q.push(format!("label:{}", self.label.trim()));
        }
        if !self.sort.is_empty() {
            q.push(format!("sort:{}", self.sort));
        }
        Ok(crate::api::registry::ListQuery {
            start: Some(self.start.max(0)),
            count: Some(PAGE),
            search: Some(self.search.clone()),
            q: Some(q.join(" ")),
        })
    }

    fn link(&self, base: &str, start: i64) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("search", &self.search)
            .append_pair("label", &self.label)
            .append_pair("sort", &self.sort)
            .append_pair("start", &start.to_string())
            .finish();
        format!("{base}?{query}")
    }
}

fn pager(
    form: &ListForm,
    base: &str,
    shown: usize,
    total: i64,
) -> (Option<String>, Option<String>, String) {
    let start = form.start.max(0);
    let prev = (start > 0).then(|| form.link(base, (start - PAGE).max(0)));
    let next = (start + (shown as i64) < total).then(|| form.link(base, start + PAGE));
    let text = if total == 0 {
        String::new()
    } else {
        format!("{}–{} of {total}", start + 1, start + shown as i64)
    };
    (prev, next, text)
}

const SORTS: [(&str, &str); 3] = [
    ("created_at-desc", "Newest first"),
    ("created_at-asc", "Oldest first"),
    ("name-asc", "Name"),
];

async fn repositories_page(
    state: AppState,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
    kind: Kind,
    form: ListForm,
) -> Response {
    let caller = match page_caller(caller, &uri) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (jar, csrf) = csrf_token(jar, state.settings.secure_cookies);
    let base = base_of(kind).to_string();
    let mut page = RepositoriesPage::new(
        &caller,
        &csrf,
        kind,
        format!("{}s", kind.title()),
        base.clone(),
        &form,
    );
    let result = async {
        caller.authorize(Action::ReadRegistry)?;
        let spec = form.to_query()?.parse()?;
        let pool = state.db.pool();
        if spec.labels.is_empty() {
            let (rows, total) = repos::list(
                pool,
                &caller.organization.uid,
                kind,
                &spec.search,
                spec.repository_order()?,
                spec.start,
                spec.count,
            )
            .await?;
            let uids: Vec<String> = rows.iter().map(|r| r.uid.clone()).collect();
            let latest = versions::latest_of(pool, &uids).await?;
            let mut latest_by_repository: std::collections::HashMap<String, VersionRow> = latest
                .iter()
                .map(|v| v.repository_uid.clone())
                .zip(version_rows(&state, &latest).await?)
                .collect();
            for r in rows.iter() {
                let latest = latest_by_repository.remove(&r.uid);
                page.repositories.push(RepositoryRow {
                    name: r.name.clone(),
                    description: r.description.clone(),
                    versions: versions::count_in_repository(pool, &r.uid).await?,
                    latest,
                    created_relative: relative(r.created_at),
                    created_exact: exact(r.created_at),
                });
            }
            (page.prev, page.next, page.range_text) = pager(&form, &base, rows.len(), total);
        } else {
            // A label filter applies to versions: show the matching versions.
            let filter = spec.version_filter(None)?;
            let (rows, total) = versions::list(
                pool,
                &caller.organization.uid,
                kind,
                &filter,
                spec.start,
                spec.count,
            )
            .await?;
            page.show_versions = true;
            page.rows = version_rows(&state, &rows).await?;
            (page.prev, page.next, page.range_text) = pager(&form, &base, rows.len(), total);
        }
        Ok::<_, Error>(())
    }
    .await;
    match result {
        Ok(()) => (jar, render(&page)).into_response(),
        Err(e @ Error::InvalidArgument(_)) => {
            page.error = e.to_string();
            (jar, (StatusCode::BAD_REQUEST, render(&page))).into_response()
        }
        Err(e) => error_page(e, &uri),
    }
}

pub async fn bento_repositories(
    State(state): State<AppState>,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
    Query(form): Query<ListForm>,
) -> Response {
    repositories_page(state, uri, jar, caller, Kind::Bento, form).await
}

pub async fn model_repositories(
    State(state): State<AppState>,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
    Query(form): Query<ListForm>,
) -> Response {
    repositories_page(state, uri, jar, caller, Kind::Model, form).await
}

async fn versions_page(
    state: AppState,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
    kind: Kind,
    name: String,
    form: ListForm,
) -> Response {
    let caller = match page_caller(caller, &uri) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (jar, csrf) = csrf_token(jar, state.settings.secure_cookies);
    let base = format!("{}/{name}", base_of(kind));
    let result = async {
        caller.authorize(Action::ReadRegistry)?;
        let pool = state.db.pool();
        let repo = repos::find(pool, &caller.organization.uid, kind, &name)
            .await?
            .ok_or_else(|| Error::not_found(&format!("{} repository", kind.as_str()), &name))?;
        let spec = form.to_query()?.parse()?;
        let filter = spec.version_filter(Some(repo.uid.clone()))?;
        let (rows, total) = versions::list(
            pool,
            &caller.organization.uid,
            kind,
            &filter,
            spec.start,
            spec.count,
        )
        .await?;
        let (prev, next, range_text) = pager(&form, &base, rows.len(), total);
        let mut page = RepositoriesPage::new(
            &caller,
            &csrf,
            kind,
            format!("{} {name}", kind.title()),
            base.clone(),
            &form,
        );
        page.show_versions = true;
        page.rows = version_rows(&state, &rows).await?;
        (page.prev, page.next, page.range_text) = (prev, next, range_text);
        Ok::<_, Error>(page)
    }
    .await;
    match result {
        Ok(page) => (jar, render(&page)).into_response(),
        Err(e) => error_page(e, &uri),
    }
}

pub async fn bento_versions(
    State(state): State<AppState>,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
    Path(name): Path<String>,
    Query(form): Query<ListForm>,
) -> Response {
    versions_page(state, uri, jar, caller, Kind::Bento, name, form).await
}

pub async fn model_versions(
    State(state): State<AppState>,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
    Path(name): Path<String>,
    Query(form): Query<ListForm>,
) -> Response {
    versions_page(state, uri, jar, caller, Kind::Model, name, form).await
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

async fn version_page(
    state: AppState,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
    kind: Kind,
    name: String,
    version: String,
) -> Response {
    let caller = match page_caller(caller, &uri) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (jar, csrf) = csrf_token(jar, state.settings.secure_cookies);
    let result = async {
        caller.authorize(Action::ReadRegistry)?;
        let pool = state.db.pool();
        let org = &caller.organization.uid;
        let repo = repos::find(pool, org, kind, &name)
            .await?
            .ok_or_else(|| Error::not_found(&format!("{} repository", kind.as_str()), &name))?;
        let v = versions::find(pool, &repo.uid, &version)
            .await?
            .ok_or_else(|| Error::not_found(kind.as_str(), format!("{name}:{version}")))?;
        let manifest: serde_json::Value = serde_json::from_str(&v.manifest).unwrap_or_default();
        let mut related = Vec::new();
        match kind {
            Kind::Bento => {
                for (m, mv) in bento_models::models_of(pool, &v.uid).await? {
                    if let Some(r) = repos::find(pool, org, Kind::Model, &m).await? {
                        if let Some(found) = versions::find(pool, &r.uid, &mv).await? {
                            related.push(found);
                        }
                    }
                }
            }
            Kind::Model => {
                for uid in bento_models::bentos_using(pool, org, &name, &version).await? {
                    if let Some(b) = versions::find_by_uid(pool, &uid).await? {
                        related.push(b);
                    }
                }
            }
        }
        let creator = match &v.creator_uid {
            Some(uid) => user_rows::find_by_uid(pool, uid)
                .await?
                .map(|u| u.name)
                .unwrap_or_default(),
            None => String::new(),
        };
        let row = version_rows(&state, std::slice::from_ref(&v))
            .await?
            .remove(0);
        let build = yatai_store::db::image_builds::of(pool, std::slice::from_ref(&v.uid))
            .await?
            .remove(&v.uid)
            .unwrap_or_default();
        Ok::<_, Error>(VersionPage {
            layout: Layout::for_caller(&caller, &csrf, page_name(kind)),
            kind: kind.as_str(),
            kind_title: kind.title(),
            base: base_of(kind),
            repository: name.clone(),
            v: row,
            reason: v.upload_finished_reason.clone(),
            sha256: v.archive_sha256.clone().unwrap_or_else(|| "—".into()),
            creator,
            build_at: exact(v.build_at),
            image_build_status: v.image_build_status.clone(),
            image_reference: build.image_reference,
            image_build_reason: build.reason,
            description: v.description.clone(),
            facts: manifest_facts(kind, &manifest),
            pull_command: match kind {
                Kind::Bento => format!("bentoml pull {name}:{version}"),
                Kind::Model => format!("bentoml models pull {name}:{version}"),
            },
            related: version_rows(&state, &related).await?,
            manifest: serde_json::to_string_pretty(&manifest).unwrap_or_default(),
        })
    }
    .await;
    match result {
        Ok(page) => (jar, render(&page)).into_response(),
        Err(e) => error_page(e, &uri),
    }
}

pub async fn bento_version(
    State(state): State<AppState>,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    version_page(state, uri, jar, caller, Kind::Bento, name, version).await
}

pub async fn model_version(
    State(state): State<AppState>,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    version_page(state, uri, jar, caller, Kind::Model, name, version).await
}

// ---------------------------------------------------------------- API tokens

/// A token as a table row.
pub struct TokenRow {
    pub uid: String,
    pub name: String,
    pub description: String,
    pub scopes: Vec<String>,
    pub expires: String,
    pub expired: bool,
    pub last_used: String,
}

#[derive(Template)]
#[template(path = "api_tokens.html")]
struct TokensPage {
    layout: Layout,
    endpoint: String,
    cli_code: Option<String>,
    cli_done: bool,
    created_secret: Option<String>,
    tokens: Vec<TokenRow>,
    can_create: bool,
    scope_choices: Vec<(&'static str, &'static str, bool)>,
    form_name: String,
    form_description: String,
    form_expired_at: String,
    error_field: &'static str,
    error: String,
}

fn scope_help(s: Scope) -> &'static str {
    match s {
        Scope::Api => "push and pull bentos and models (what the BentoML CLI needs)",
        Scope::ReadOrganization => "read the organization",
        Scope::WriteOrganization => "change the organization, members and tokens",
        Scope::ReadCluster => "read clusters and deployments",
        Scope::WriteCluster => "change clusters and deployments",
    }
}

impl TokensPage {
    async fn load(state: &AppState, caller: &Caller, csrf: &str) -> Result<TokensPage, Error> {
        let tokens = api_tokens::list(state, caller).await?;
        Ok(TokensPage {
            layout: Layout::for_caller(caller, csrf, "api_tokens"),
            endpoint: state.settings.public_url.clone(),
            cli_code: None,
            cli_done: false,
            created_secret: None,
            tokens: tokens
                .into_iter()
                .map(|t| TokenRow {
                    uid: t.resource.uid,
                    name: t.resource.name,
                    description: t.description,
                    scopes: t.scopes,
                    expires: t
                        .expired_at
                        .map(|e| e[..10].to_string())
                        .unwrap_or_else(|| "never".into()),
                    expired: t.is_expired,
                    last_used: t
                        .last_used_at
                        .and_then(|l| parse_rfc3339(&l))
                        .map(relative)
                        .unwrap_or_else(|| "never".into()),
                })
                .collect(),
            can_create: caller.authorize(Action::ManageOwnTokens).is_ok(),
            scope_choices: Scope::ALL
                .iter()
                .map(|s| (s.as_str(), scope_help(*s), *s == Scope::Api))
                .collect(),
            form_name: String::new(),
            form_description: String::new(),
            form_expired_at: String::new(),
            error_field: "",
            error: String::new(),
        })
    }
}

#[derive(Deserialize)]
pub struct CodeQuery {
    #[serde(default)]
    code: String,
}

pub async fn tokens(
    State(state): State<AppState>,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
    Query(q): Query<CodeQuery>,
) -> Response {
    let caller = match page_caller(caller, &uri) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (jar, csrf) = csrf_token(jar, state.settings.secure_cookies);
    let result = async {
        let mut page = TokensPage::load(&state, &caller, &csrf).await?;
        if !q.code.is_empty() {
            if !cli_logins::is_pending(state.db.pool(), &secret_hash(&q.code)).await? {
                return Err(Error::NotFound("this CLI login code is unknown, expired or used already: run `bentoml cloud login` again".into()));
            }
            page.cli_code = Some(q.code.clone());
        }
        Ok(page)
    }
    .await;
    match result {
        Ok(page) => (jar, render(&page)).into_response(),
        Err(e) => error_page(e, &uri),
    }
}

#[derive(Deserialize)]
pub struct CreateTokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    expired_at: String,
}

pub async fn create_token(
    State(state): State<AppState>,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
    Form(f): Form<CreateTokenForm>,
) -> Response {
    let caller = match form_caller(caller, &uri, &jar, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let expired_at = (!f.expired_at.is_empty()).then(|| format!("{}T23:59:59Z", f.expired_at));
    let body = api_tokens::CreateApiTokenSchema {
        name: f.name.clone(),
        description: f.description.clone(),
        scopes: f.scopes.clone(),
        expired_at,
    };
    let created = api_tokens::create(&state, &caller, body).await;
    let mut page = match TokensPage::load(&state, &caller, &f.csrf).await {
        Ok(p) => p,
        Err(e) => return error_page(e, &uri),
    };
    match created {
        Ok(t) => {
            page.created_secret = t.token;
            page.layout.flash = format!("Token {:?} created.", t.resource.name);
            render(&page)
        }
        Err(e @ Error::Forbidden(_)) => error_page(e, &uri),
        Err(e) => {
            page.error_field = error_field(&e);
            page.error = e.to_string();
            page.form_name = f.name;
            page.form_description = f.description;
            page.form_expired_at = f.expired_at;
            page.scope_choices = Scope::ALL
                .iter()
                .map(|s| {
                    (
                        s.as_str(),
                        scope_help(*s),
                        f.scopes.iter().any(|x| x == s.as_str()),
                    )
                })
                .collect();
            (StatusCode::BAD_REQUEST, render(&page)).into_response()
        }
    }
}

pub async fn revoke_token(
    State(state): State<AppState>,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
    Path(uid): Path<String>,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let caller = match form_caller(caller, &uri, &jar, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r,
    };
    match api_tokens::revoke(&state, &caller, &uid).await {
        Ok(_) => Redirect::to("/api_tokens").into_response(),
        Err(e) => error_page(e, &uri),
    }
}

#[derive(Deserialize)]
pub struct AuthorizeCliForm {
    #[serde(default)]
    csrf: String,
    code: String,
}

pub async fn authorize_cli(
    State(state): State<AppState>,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
    Form(f): Form<AuthorizeCliForm>,
) -> Response {
    let caller = match form_caller(caller, &uri, &jar, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let result = async {
        let code_hash = secret_hash(&f.code);
        if !cli_logins::is_pending(state.db.pool(), &code_hash).await? {
            return Err(Error::NotFound("this CLI login code is unknown, expired or used already: run `bentoml cloud login` again".into()));
        }
        let name = format!("cli-login-{}", &crate::auth::secrets::new_secret("")[..8]);
        let scopes = Scope::ALL.iter().map(|s| s.as_str().to_string()).collect();
        let body = api_tokens::CreateApiTokenSchema { name, description: "created by a browser login of the BentoML CLI".into(), scopes, expired_at: None };
        let token = api_tokens::create(&state, &caller, body).await?;
        let secret = token.token.clone().unwrap_or_default();
        if !cli_logins::authorize(state.db.pool(), &code_hash, &caller.user().uid, &secret).await? {
            let _ = api_tokens::revoke(&state, &caller, &token.resource.uid).await;
            return Err(Error::Conflict("this CLI login code was used meanwhile".into()));
        }
        let mut page = TokensPage::load(&state, &caller, &f.csrf).await?;
        page.cli_code = Some(f.code.clone());
        page.cli_done = true;
        Ok(page)
    }
    .await;
    match result {
        Ok(page) => render(&page),
        Err(e) => error_page(e, &uri),
    }
}

// ---------------------------------------------------------------- members, users, events

/// A member as a table row.
pub struct MemberRow {
    pub name: String,
    pub email: String,
    pub role: String,
}

#[derive(Template)]
#[template(path = "members.html")]
struct MembersPage {
    layout: Layout,
    /// The user name the add form was sent with (kept after an error).
    username: String,
    members: Vec<MemberRow>,
    roles: Vec<String>,
    error: String,
}

const ROLES: [&str; 3] = [
    Role::Guest.as_str_const(),
    Role::Developer.as_str_const(),
    Role::Admin.as_str_const(),
];

async fn members_page(
    state: &AppState,
    caller: &Caller,
    csrf: &str,
    error: String,
) -> Result<MembersPage, Error> {
    let list = members::list(state, caller).await?;
    Ok(MembersPage {
        layout: Layout::for_caller(caller, csrf, "members"),
        username: String::new(),
        members: list
            .into_iter()
            .map(|m| MemberRow {
                name: m.user.resource.name,
                email: m.user.email,
                role: m.role,
            })
            .collect(),
        roles: ROLES.iter().map(|r| r.to_string()).collect(),
        error,
    })
}

pub async fn members(
    State(state): State<AppState>,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
) -> Response {
    let caller = match page_caller(caller, &uri) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (jar, csrf) = csrf_token(jar, state.settings.secure_cookies);
    match members_page(&state, &caller, &csrf, String::new()).await {
        Ok(page) => (jar, render(&page)).into_response(),
        Err(e) => error_page(e, &uri),
    }
}

#[derive(Deserialize)]
pub struct MemberForm {
    #[serde(default)]
    csrf: String,
    username: String,
    #[serde(default)]
    role: String,
}

async fn member_action(
    state: AppState,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
    f: MemberForm,
    remove: bool,
) -> Response {
    let caller = match form_caller(caller, &uri, &jar, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let done = async {
        if remove {
            members::remove(&state, &caller, &f.username).await
        } else {
            let role: Role = f.role.parse()?;
            members::set_roles(&state, &caller, std::slice::from_ref(&f.username), role).await
        }
    }
    .await;
    match done {
        Ok(()) => Redirect::to("/members").into_response(),
        Err(e @ Error::Forbidden(_)) => error_page(e, &uri),
        Err(e) => match members_page(&state, &caller, &f.csrf, e.to_string()).await {
            Ok(mut page) => {
                page.username = f.username;
                (StatusCode::BAD_REQUEST, render(&page)).into_response()
            }
            Err(e) => error_page(e, &uri),
        },
    }
}

/// Adds a member with a role, or changes a member's role.
pub async fn set_member_role(
    State(state): State<AppState>,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
    Form(f): Form<MemberForm>,
) -> Response {
    member_action(state, uri, jar, caller, f, false).await
}

pub async fn remove_member(
    State(state): State<AppState>,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
    Form(f): Form<MemberForm>,
) -> Response {
    member_action(state, uri, jar, caller, f, true).await
}

/// A user as a table row.
pub struct UserRow {
    pub name: String,
    pub email: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    layout: Layout,
    users: Vec<UserRow>,
    fields: Vec<Field>,
    roles: Vec<String>,
    error_field: String,
    error: String,
}

async fn users_page(state: &AppState, caller: &Caller, csrf: &str) -> Result<UsersPage, Error> {
    caller.authorize(Action::ManageMembers)?;
    let list = user_rows::list_in_organization(state.db.pool(), &caller.organization.uid).await?;
    Ok(UsersPage {
        layout: Layout::for_caller(caller, csrf, "users"),
        users: list
            .iter()
            .map(|u| UserRow {
                name: u.name.clone(),
                email: u.email.clone(),
                created: exact(u.created_at),
            })
            .collect(),
        fields: person_fields(&[], None),
        roles: ROLES.iter().map(|r| r.to_string()).collect(),
        error_field: String::new(),
        error: String::new(),
    })
}

pub async fn users(
    State(state): State<AppState>,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
) -> Response {
    let caller = match page_caller(caller, &uri) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (jar, csrf) = csrf_token(jar, state.settings.secure_cookies);
    match users_page(&state, &caller, &csrf).await {
        Ok(page) => (jar, render(&page)).into_response(),
        Err(e) => error_page(e, &uri),
    }
}

#[derive(Deserialize)]
pub struct CreateUserForm {
    #[serde(default)]
    csrf: String,
    name: String,
    email: String,
    password: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    role: String,
}

pub async fn create_user(
    State(state): State<AppState>,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
    Form(f): Form<CreateUserForm>,
) -> Response {
    let caller = match form_caller(caller, &uri, &jar, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let body = users::CreateUserSchema {
        name: f.name.clone(),
        email: f.email.clone(),
        password: f.password.clone(),
        first_name: f.first_name.clone(),
        last_name: f.last_name.clone(),
        role: Some(f.role.clone()),
    };
    match users::create(&state, &caller, body).await {
        Ok(u) => match users_page(&state, &caller, &f.csrf).await {
            Ok(mut page) => {
                page.layout.flash = format!("User {:?} created.", u.name);
                render(&page)
            }
            Err(e) => error_page(e, &uri),
        },
        Err(e @ Error::Forbidden(_)) => error_page(e, &uri),
        Err(e) => match users_page(&state, &caller, &f.csrf).await {
            Ok(mut page) => {
                let values = [
                    ("name", f.name.as_str()),
                    ("email", f.email.as_str()),
                    ("first_name", f.first_name.as_str()),
                    ("last_name", f.last_name.as_str()),
                ];
                page.fields = person_fields(&values, Some(&e));
                page.error_field = error_field(&e).to_string();
                page.error = e.to_string();
                (StatusCode::BAD_REQUEST, render(&page)).into_response()
            }
            Err(e) => error_page(e, &uri),
        },
    }
}

#[derive(Deserialize)]
pub struct ResetPasswordForm {
    #[serde(default)]
    csrf: String,
    new_password: String,
}

pub async fn reset_password(
    State(state): State<AppState>,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
    Path(name): Path<String>,
    Form(f): Form<ResetPasswordForm>,
) -> Response {
    let caller = match form_caller(caller, &uri, &jar, &f.csrf) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let done = async {
        caller.authorize(Action::ManageMembers)?;
        let user = users::find_visible(&state, &caller, &name).await?;
        yatai_domain::names::validate_password(&f.new_password)?;
        let hash = hash_password(f.new_password.clone()).await?;
        user_rows::set_password_hash(state.db.pool(), &user.uid, &hash).await?;
        yatai_store::db::sessions::delete_for_user(state.db.pool(), &user.uid).await
    }
    .await;
    match users_page(&state, &caller, &f.csrf).await {
        Ok(mut page) => match done {
            Ok(()) => {
                page.layout.flash = format!("New password set for {name:?}.");
                render(&page)
            }
            Err(e @ Error::Forbidden(_)) => error_page(e, &uri),
            Err(e) => {
                page.error_field = name;
                page.error = e.to_string();
                (StatusCode::BAD_REQUEST, render(&page)).into_response()
            }
        },
        Err(e) => error_page(e, &uri),
    }
}

/// An event as a table row.
pub struct EventRow {
    pub operation: String,
    pub resource: String,
    pub resource_type: String,
    pub user: String,
    pub token: String,
    pub created_relative: String,
    pub created_exact: String,
}

async fn event_page(
    state: &AppState,
    caller: &Caller,
    q: &events::EventQuery,
) -> Result<(Vec<EventRow>, i64), Error> {
    let list = events::list(state, caller, q).await?;
    let rows = list
        .items
        .into_iter()
        .map(|e| {
            let t = parse_rfc3339(&e.created_at).unwrap_or_else(now_micros);
            EventRow {
                operation: e.operation_name,
                resource: e.resource_name,
                resource_type: e.resource_type,
                user: e.creator_name,
                token: e.api_token_name,
                created_relative: relative(t),
                created_exact: exact(t),
            }
        })
        .collect();
    Ok((rows, list.total))
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage {
    layout: Layout,
    events: Vec<EventRow>,
    resource_types: Vec<String>,
    operations: Vec<String>,
    resource_type: String,
    operation_name: String,
    user: String,
    since: String,
    error: String,
    prev: Option<String>,
    next: Option<String>,
    range_text: String,
}

#[derive(Deserialize, Default)]
pub struct EventForm {
    #[serde(default)]
    resource_type: String,
    #[serde(default)]
    operation_name: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    start: i64,
}

pub async fn events(
    State(state): State<AppState>,
    uri: Uri,
    jar: CookieJar,
    caller: MaybeCaller,
    Query(f): Query<EventForm>,
) -> Response {
    let caller = match page_caller(caller, &uri) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (jar, csrf) = csrf_token(jar, state.settings.secure_cookies);
    let start = f.start.max(0);
    let q = events::EventQuery {
        start: Some(start),
        count: Some(PAGE),
        resource_type: Some(f.resource_type.clone()),
        operation_name: Some(f.operation_name.clone()),
        user: Some(f.user.clone()),
        since: (!f.since.is_empty()).then(|| format!("{}T00:00:00Z", f.since)),
        until: None,
    };
    let mut page = EventsPage {
        layout: Layout::for_caller(&caller, &csrf, "events"),
        events: Vec::new(),
        resource_types: ["bento", "bento_repository", "model", "model_repository"]
            .map(String::from)
            .to_vec(),
        operations: event_rows::operation_names(state.db.pool(), &caller.organization.uid)
            .await
            .unwrap_or_default(),
        resource_type: f.resource_type.clone(),
        operation_name: f.operation_name.clone(),
        user: f.user.clone(),
        since: f.since.clone(),
        error: String::new(),
        prev: None,
        next: None,
        range_text: String::new(),
    };
    match event_page(&state, &caller, &q).await {
        Ok((rows, total)) => {
            let link = |s: i64| {
                let query = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("resource_type", &f.resource_type)
                    .append_pair("operation_name", &f.operation_name)
                    .append_pair("user", &f.user)
                    .append_pair("since", &f.since)
                    .append_pair("start", &s.to_string())
                    .finish();
                format!("/events?{query}")
            };
            page.prev = (start > 0).then(|| link((start - PAGE).max(0)));
            page.next = (start + (rows.len() as i64) < total).then(|| link(start + PAGE));
            page.range_text = if total == 0 {
                String::new()
            } else {
                format!("{}–{} of {total}", start + 1, start + rows.len() as i64)
            };
            page.events = rows;
            (jar, render(&page)).into_response()
        }
        Err(e @ Error::InvalidArgument(_)) => {
            page.error = e.to_string();
            (jar, (StatusCode::BAD_REQUEST, render(&page))).into_response()
        }
        Err(e) => error_page(e, &uri),
    }
}
