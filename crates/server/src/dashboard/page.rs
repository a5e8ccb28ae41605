//! What every page handler starts from: the [`Page`] extractor (the logged-in caller, the
//! browser's CSRF token, the URI), the [`Submission`] extractor of a form sent by a logged-in
//! caller, [`CheckedForm`] for the forms sent before login, the frame of every page, and the one
//! way errors become pages.

use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::{CookieJar, Form};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use yatai_domain::{Error, Role};

use crate::auth::secrets::{new_secret, secrets_equal};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;

/// The cookie of the double-submit CSRF check: every form repeats its value in `csrf`.
pub const CSRF_COOKIE: &str = "yatai_csrf";

/// What every page's frame shows: who is logged in, where, the CSRF token, the current page.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub user: Option<String>,
    pub organization: String,
    pub role: String,
    pub is_admin: bool,
    pub csrf: String,
    pub page: &'static str,
    pub flash: String,
}

impl Layout {
    /// The frame of a page seen before login.
    pub fn anonymous(csrf: &str) -> Layout {
        Layout {
            csrf: csrf.to_string(),
            ..Layout::default()
        }
    }
}

/// A page request of a logged-in member. Extracting it fails with the response to show instead:
/// the login page (coming back here after it) without a session, an error page for a user who
/// is no member. It also gives the browser its CSRF cookie when it has none yet.
pub struct Page {
    pub caller: Caller,
    /// The CSRF token every form of the page repeats.
    pub csrf: String,
    pub uri: Uri,
    /// The browser's cookies, with the CSRF cookie added when it was missing.
    jar: CookieJar,
}

impl FromRequestParts<AppState> for Page {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let uri = parts.uri.clone();
        let caller = Caller::from_request_parts(parts, state)
            .await
            .map_err(|e| error_page(e.0, &uri))?;
        let (jar, csrf) = csrf_token(
            CookieJar::from_headers(&parts.headers),
            state.settings.secure_cookies,
        );
        Ok(Page {
            caller,
            csrf,
            uri,
            jar,
        })
    }
}

impl Page {
    /// The frame of this page; `name` marks the current entry of the navigation.
    pub fn layout(&self, name: &'static str) -> Layout {
        let caller = &self.caller;
        Layout {
            user: Some(caller.user().name.clone()),
            organization: caller.organization.name.clone(),
            role: caller.role.as_str().to_string(),
            is_admin: caller.role == Role::Admin,
            csrf: self.csrf.clone(),
            page: name,
            flash: String::new(),
        }
    }

    /// Shows a page with status 200.
    pub fn show(self, t: &impl Template) -> Response {
        self.show_with(StatusCode::OK, t)
    }

    /// Shows a page with `status` (a form shown again with its error has the error's status).
    pub fn show_with(self, status: StatusCode, t: &impl Template) -> Response {
        (self.jar, (status, render(t))).into_response()
    }

    /// Shows the page built, or the error page.
    pub fn respond<T: Template>(self, built: Result<T, Error>) -> Response {
        match built {
            Ok(t) => self.show(&t),
            Err(e) => self.error(e),
        }
    }

    /// The page of an error.
    pub fn error(self, e: Error) -> Response {
        (self.jar, error_page(e, &self.uri)).into_response()
    }

    /// Sends the browser on after a form did its work.
    pub fn redirect(self, to: &str) -> Response {
        (self.jar, Redirect::to(to)).into_response()
    }
}

/// A form sent by a logged-in member: the [`Page`] it was sent from, and its fields once the
/// CSRF check passed. Extracting it fails with the page to show instead (login, "form expired").
pub struct Submission<F> {
    pub page: Page,
    pub form: F,
}

impl<F: DeserializeOwned + Send> FromRequest<AppState> for Submission<F> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let page = Page::from_request_parts(&mut parts, state).await?;
        let CheckedForm(form) =
            CheckedForm::from_request(Request::from_parts(parts, body), state).await?;
        Ok(Submission { page, form })
    }
}

/// The fields of a form whose `csrf` field matches the browser's CSRF cookie (the forms sent
/// before login: setup, login; and logout). Extracting it fails with the page to show instead.
pub struct CheckedForm<F>(pub F);

#[derive(Deserialize)]
struct CsrfField {
    #[serde(default)]
    csrf: String,
}

impl<F: DeserializeOwned + Send> FromRequest<AppState> for CheckedForm<F> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let jar = CookieJar::from_headers(req.headers());
        let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|r| invalid_form(&r.body_text()))?;
        // The body is parsed twice, for the CSRF field and for the form's own fields, so that no
        // form type has to carry the CSRF field.
        let parse = |bytes: Bytes| {
            let mut req = Request::new(Body::from(bytes));
            *req.method_mut() = Method::POST;
            if let Some(ct) = content_type.clone() {
                req.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            req
        };
        let Form(CsrfField { csrf }) = Form::from_request(parse(body.clone()), state)
            .await
            .map_err(|r| invalid_form(&r.body_text()))?;
        if !csrf_matches(&jar, &csrf) {
            return Err(csrf_failed());
        }
        let Form(form) = Form::from_request(parse(body), state)
            .await
            .map_err(|r| invalid_form(&r.body_text()))?;
        Ok(CheckedForm(form))
    }
}

/// A form with no field of its own (its CSRF field aside).
#[derive(Deserialize)]
pub struct NoFields {}

fn invalid_form(detail: &str) -> Response {
    message(
        StatusCode::BAD_REQUEST,
        "invalid-form",
        "Invalid form",
        &format!("The form could not be read ({detail}). Go back, reload the page and try again."),
        "/",
        "Overview",
    )
}

/// The CSRF token of this browser, set as a cookie when it has none yet.
pub fn csrf_token(jar: CookieJar, secure: bool) -> (CookieJar, String) {
    if let Some(c) = jar.get(CSRF_COOKIE) {
        let value = c.value().to_string();
        return (jar, value);
    }
    let value = new_secret("");
    let cookie = Cookie::build((CSRF_COOKIE, value.clone()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .build();
    (jar.add(cookie), value)
}

/// Whether a form's `csrf` field matches the cookie.
fn csrf_matches(jar: &CookieJar, submitted: &str) -> bool {
    jar.get(CSRF_COOKIE)
        .is_some_and(|c| !submitted.is_empty() && secrets_equal(c.value(), submitted))
}

fn csrf_failed() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "csrf-failed",
        "Form expired",
        "This form was not sent from this site, or it expired. Go back, reload the page and try again.",
        "/",
        "Overview",
    )
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

/// The page for an error of the services: a login redirect for a missing session, else a
/// message with the status and the words the API answers with.
pub fn error_page(e: Error, uri: &Uri) -> Response {
    if matches!(e.without_field(), Error::Unauthenticated(_)) {
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
    if status.is_server_error() {
        tracing::error!(error = %api.0, "page failed");
    }
    message(
        status,
        "error",
        heading,
        &api.public_message(),
        "/",
        "Back to the overview",
    )
}
