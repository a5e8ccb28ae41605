//! The caller's API tokens: list, create (the secret shown once, with the login commands),
//! revoke, and the confirmation of a BentoML CLI browser login.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use yatai_domain::paging::Page as Range;
use yatai_domain::time::{now_micros, to_rfc3339};
use yatai_domain::{Action, Error, Scope};
use yatai_service::{sessions, tokens};

use crate::dashboard::form::FormError;
use crate::dashboard::format::relative;
use crate::dashboard::page::{Layout, NoFields, Page, Submission};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api_tokens", get(list).post(create))
        .route("/api_tokens/{uid}/revoke", post(revoke))
        .route("/api_tokens/authorize_cli", post(authorize_cli))
}

/// A token as a table row.
pub struct TokenRow {
    pub uid: String,
    pub name: String,
    pub description: String,
    pub scopes: Vec<&'static str>,
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
    /// (scope, what it allows, checked)
    scope_choices: Vec<(&'static str, &'static str, bool)>,
    form: CreateTokenForm,
    error: FormError,
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
    async fn load(state: &AppState, page: &Page) -> Result<TokensPage, Error> {
        let (list, _) = tokens::list(state, &page.caller, Range::all()).await?;
        let now = now_micros();
        Ok(TokensPage {
            layout: page.layout("api_tokens"),
            endpoint: state.settings.public_url.clone(),
            cli_code: None,
            cli_done: false,
            created_secret: None,
            tokens: list
                .into_iter()
                .map(|t| TokenRow {
                    scopes: t.scopes().into_iter().map(Scope::as_str).collect(),
                    expires: t
                        .expired_at
                        .map(|e| to_rfc3339(e)[..10].to_string())
                        .unwrap_or_else(|| "never".into()),
                    expired: t.is_expired(now),
                    last_used: t
                        .last_used_at
                        .map(relative)
                        .unwrap_or_else(|| "never".into()),
                    uid: t.uid,
                    name: t.name,
                    description: t.description,
                })
                .collect(),
            can_create: page.caller.authorize(Action::ManageOwnTokens).is_ok(),
            scope_choices: Scope::ALL
                .iter()
                .map(|s| (s.as_str(), scope_help(*s), *s == Scope::Api))
                .collect(),
            form: CreateTokenForm::default(),
            error: FormError::default(),
        })
    }
}

#[derive(Deserialize)]
struct CodeQuery {
    /// The code of a BentoML CLI browser login to confirm.
    #[serde(default)]
    code: String,
}

async fn list(State(state): State<AppState>, page: Page, Query(q): Query<CodeQuery>) -> Response {
    let built = async {
        let mut view = TokensPage::load(&state, &page).await?;
        if !q.code.is_empty() {
            sessions::check_cli_login(&state, &q.code).await?;
            view.cli_code = Some(q.code);
        }
        Ok(view)
    }
    .await;
    page.respond(built)
}

#[derive(Deserialize, Default)]
struct CreateTokenForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    scopes: Vec<String>,
    /// A day (`2030-01-31`): the token works until its end.
    #[serde(default)]
    expired_at: String,
}

async fn create(
    State(state): State<AppState>,
    Submission { page, form }: Submission<CreateTokenForm>,
) -> Response {
    let new = tokens::NewToken {
        name: form.name.clone(),
        description: form.description.clone(),
        scopes: form.scopes.clone(),
        expired_at: (!form.expired_at.is_empty()).then(|| format!("{}T23:59:59Z", form.expired_at)),
    };
    let created = tokens::create(&state, &page.caller, &new).await;
    let mut view = match TokensPage::load(&state, &page).await {
        Ok(v) => v,
        Err(e) => return page.error(e),
    };
    match created {
        Ok((t, secret)) => {
            view.created_secret = Some(secret);
            view.layout.flash = format!("Token {:?} created.", t.name);
            page.show(&view)
        }
        Err(e) => match FormError::of(e, &["name", "description", "scopes", "expired_at"]) {
            Ok(error) => {
                for choice in &mut view.scope_choices {
                    choice.2 = form.scopes.iter().any(|s| s == choice.0);
                }
                view.form = form;
                view.error = error;
                page.show_with(view.error.status, &view)
            }
            Err(e) => page.error(e),
        },
    }
}

async fn revoke(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    Submission { page, .. }: Submission<NoFields>,
) -> Response {
    match tokens::revoke(&state, &page.caller, &uid).await {
        Ok(_) => page.redirect("/api_tokens"),
        Err(e) => page.error(e),
    }
}

#[derive(Deserialize)]
struct AuthorizeCliForm {
    code: String,
}

async fn authorize_cli(
    State(state): State<AppState>,
    Submission { page, form }: Submission<AuthorizeCliForm>,
) -> Response {
    let built = async {
        tokens::authorize_cli_login(&state, &page.caller, &form.code).await?;
        let mut view = TokensPage::load(&state, &page).await?;
        view.cli_code = Some(form.code);
        view.cli_done = true;
        Ok(view)
    }
    .await;
    page.respond(built)
}
