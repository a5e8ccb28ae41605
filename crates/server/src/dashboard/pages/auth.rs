//! Before and around a session: first-run setup, login, logout.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use yatai_domain::Error;
use yatai_service::{sessions, setup};

use crate::auth::{session_cookie, session_cookie_removal, ClientAddr, SESSION_COOKIE};
use crate::dashboard::form::{person_fields, Field, FormError, PersonForm, PERSON_FIELDS};
use crate::dashboard::page::{
    csrf_token, error_page, message, render, CheckedForm, Layout, NoFields,
};
use crate::error::ApiError;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/setup", get(setup_form).post(setup_submit))
        .route("/login", get(login_form).post(login_submit))
        .route("/logout", post(logout))
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    layout: Layout,
    token: String,
    fields: Vec<Field>,
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    token: String,
}

/// The page for a setup that cannot run: done already, or a wrong link.
fn setup_refused(e: Error) -> Response {
    match e.without_field() {
        Error::Conflict(_) => message(
            StatusCode::CONFLICT,
            "setup-closed",
            "Setup is done",
            "This installation is set up already. Log in instead.",
            "/login",
            "Log in",
        ),
        Error::Forbidden(_) => message(
            StatusCode::FORBIDDEN,
            "setup-invalid",
            "Invalid setup link",
            "This setup link has a wrong or missing token. Use the URL that `yatai serve` printed.",
            "",
            "",
        ),
        _ => error_page(e, &Uri::from_static("/setup")),
    }
}

async fn setup_form(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(q): Query<TokenQuery>,
) -> Response {
    if let Err(e) = setup::check_open(&state, &q.token).await {
        return setup_refused(e);
    }
    let (jar, csrf) = csrf_token(jar, state.settings.secure_cookies);
    let page = SetupPage {
        layout: Layout::anonymous(&csrf),
        token: q.token,
        fields: person_fields(&[], None),
    };
    (jar, render(&page)).into_response()
}

#[derive(Deserialize)]
struct SetupForm {
    token: String,
    #[serde(flatten)]
    person: PersonForm,
}

async fn setup_submit(
    State(state): State<AppState>,
    ClientAddr(address): ClientAddr,
    jar: CookieJar,
    CheckedForm(f): CheckedForm<SetupForm>,
) -> Response {
    let person = &f.person;
    let error = match setup::complete(&state, &f.token, &person.account()).await {
        Ok(_) => {
            // The new admin is logged in at once.
            return match sessions::login(&state, &person.name, &person.password, address).await {
                Ok((_, secret)) => {
                    (jar.add(session_cookie(&state, secret)), Redirect::to("/")).into_response()
                }
                Err(e) => error_page(e, &Uri::from_static("/")),
            };
        }
        Err(e) => match FormError::of(e, &PERSON_FIELDS) {
            Ok(error) => error,
            Err(e) => return setup_refused(e),
        },
    };
    let (jar, csrf) = csrf_token(jar, state.settings.secure_cookies);
    let page = SetupPage {
        layout: Layout::anonymous(&csrf),
        fields: f.person.fields(&error),
        token: f.token,
    };
    (jar, (error.status, render(&page))).into_response()
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
struct NextQuery {
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

async fn login_form(
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
    let page = LoginPage {
        layout: Layout::anonymous(&csrf),
        next: safe_next(&q.next),
        name_or_email: String::new(),
        error: String::new(),
    };
    (jar, render(&page)).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    next: String,
    name_or_email: String,
    password: String,
}

async fn login_submit(
    State(state): State<AppState>,
    ClientAddr(address): ClientAddr,
    jar: CookieJar,
    CheckedForm(f): CheckedForm<LoginForm>,
) -> Response {
    match sessions::login(&state, &f.name_or_email, &f.password, address).await {
        Ok((_, secret)) => (
            jar.add(session_cookie(&state, secret)),
            Redirect::to(&safe_next(&f.next)),
        )
            .into_response(),
        Err(e) => {
            let (jar, csrf) = csrf_token(jar, state.settings.secure_cookies);
            let api = ApiError(e);
            let page = LoginPage {
                layout: Layout::anonymous(&csrf),
                next: safe_next(&f.next),
                name_or_email: f.name_or_email,
                error: api.public_message(),
            };
            (jar, (api.status().0, render(&page))).into_response()
        }
    }
}

async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    CheckedForm(NoFields {}): CheckedForm<NoFields>,
) -> Response {
    if let Some(c) = jar.get(SESSION_COOKIE) {
        if let Err(e) = sessions::logout(&state, c.value()).await {
            return error_page(e, &Uri::from_static("/"));
        }
    }
    (jar.remove(session_cookie_removal()), Redirect::to("/login")).into_response()
}
