//! The web dashboard: server-rendered pages (askama templates compiled into the binary, one
//! stylesheet, no JavaScript needed) over the same domain rules and store functions as the API.

// Page helpers return `Err(the response to show instead)`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod format;
mod pages;

use askama::Template;
use axum::http::{StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use yatai_domain::{Action, Error, Role};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;

/// The cookie of the double-submit CSRF check: every form repeats its value in `csrf`.
pub const CSRF_COOKIE: &str = "yatai_csrf";

/// The dashboard's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/setup", get(pages::setup_form).post(pages::setup_submit))
        .route("/login", get(pages::login_form).post(pages::login_submit))
        .route("/logout", post(pages::logout))
        .route("/bentos", get(pages::bento_repositories))
        .route("/bentos/{name}", get(pages::bento_versions))
        .route("/bentos/{name}/{version}", get(pages::bento_version))
        .route("/models", get(pages::model_repositories))
        .route("/models/{name}", get(pages::model_versions))
        .route("/models/{name}/{version}", get(pages::model_version))
        .route("/api_tokens", get(pages::tokens).post(pages::create_token))
        .route("/api_tokens/{uid}/revoke", post(pages::revoke_token))
        .route("/api_tokens/authorize_cli", post(pages::authorize_cli))
        .route("/members", get(pages::members).post(pages::set_member_role))
        .route("/members/role", post(pages::set_member_role))
        .route("/members/remove", post(pages::remove_member))
        .route("/events", get(pages::events))
        .route("/users", get(pages::users).post(pages::create_user))
        .route("/users/{name}/reset_password", post(pages::reset_password))
        .route("/static/app.css", get(stylesheet))
}

async fn stylesheet() -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/app.css"),
    )
        .into_response()
}

/// What every page's frame shows: who is logged in, where, the CSRF token, the current page.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub user: Option<String>,
    pub organization: String,
    pub role: String,
    pub is_admin: bool,
    pub can_write: bool,
    pub csrf: String,
    pub page: &'static str,
    pub flash: String,
}

impl Layout {
    /// The frame of a logged-in page.
    pub fn for_caller(caller: &Caller, csrf: &str, page: &'static str) -> Layout {
        Layout {
            user: Some(caller.user().name.clone()),
            organization: caller.organization.name.clone(),
            role: caller.role.as_str().to_string(),
            is_admin: caller.role == Role::Admin,
            can_write: caller.authorize(Action::WriteRegistry).is_ok(),
            csrf: csrf.to_string(),
            page,
            flash: String::new(),
        }
    }

    /// The frame of a page seen before login.
    pub fn anonymous(csrf: &str) -> Layout {
        Layout {
            csrf: csrf.to_string(),
            ..Layout::default()
        }
    }
}

/// The CSRF token of this browser, set as a cookie when it has none yet.
pub fn csrf_token(jar: CookieJar, secure: bool) -> (CookieJar, String) {
    if let Some(c) = jar.get(CSRF_COOKIE) {
        let value = c.value().to_string();
        return (jar, value);
    }
    let value = crate::auth::secrets::new_secret("");
    let cookie = Cookie::build((CSRF_COOKIE, value.clone()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .build();
    (jar.add(cookie), value)
}

/// Checks a form's `csrf` field against the cookie.
pub fn check_csrf(jar: &CookieJar, submitted: &str) -> Result<(), Response> {
    match jar.get(CSRF_COOKIE) {
        Some(c) if !submitted.is_empty() && crate::auth::secrets::secrets_equal(c.value(), submitted) => Ok(()),
        _ => Err(message(StatusCode::FORBIDDEN, "csrf-failed", "Form expired", "This form was not sent from this site, or it expired. Go back, reload the page and try again.", "/", "Overview")),
    }
}

/// Renders a template into a response.
pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    layout: Layout,
    id: &'a str,
    heading: &'a str,
    text: &'a str,
    link: &'a str,
    link_text: &'a str,
}

/// A page with one message (errors, closed setup...).
pub fn message(
    status: StatusCode,
    id: &str,
    heading: &str,
    text: &str,
    link: &str,
    link_text: &str,
) -> Response {
    let page = MessagePage {
        layout: Layout::default(),
        id,
        heading,
        text,
        link,
        link_text,
    };
    (status, render(&page)).into_response()
}

/// The page for an error of the domain: a login redirect for a missing session, else a message
/// with the API's status code.
pub fn error_page(e: Error, uri: &Uri) -> Response {
    if matches!(e, Error::Unauthenticated(_)) {
        let next = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let to = format!(
            "/login?next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        );
        return Redirect::to(&to).into_response();
    }
    let api = ApiError(e);
    let (status, _) = api.status();
    let heading = match status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::BAD_REQUEST => "Invalid request",
        StatusCode::CONFLICT => "Conflict",
        _ => "Something went wrong",
    };
    message(
        status,
        "error",
        heading,
        &api.0.to_string(),
        "/",
        "Back to the overview",
    )
}

/// The caller of a form submission whose CSRF token matches, or the page to show instead.
pub fn form_caller(
    caller: Result<Caller, ApiError>,
    uri: &Uri,
    jar: &CookieJar,
    csrf: &str,
) -> Result<Caller, Response> {
    let caller = page_caller(caller, uri)?;
    check_csrf(jar, csrf)?;
    Ok(caller)
}

/// The caller of a page, or the page to show instead (login redirect, error).
pub fn page_caller(caller: Result<Caller, ApiError>, uri: &Uri) -> Result<Caller, Response> {
    caller.map_err(|e| error_page(e.0, uri))
}
