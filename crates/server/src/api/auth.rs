//! Password login with a session cookie, logout, the current user, and password change.

use axum::extract::State;
use axum::Json;
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use yatai_domain::{names, time::now_micros, Error};
use yatai_store::db::{sessions, users};

use super::schemas::UserSchema;
use crate::auth::secrets::{hash_password, new_secret, secret_hash, verify_password};
use crate::auth::{ClientAddr, Identity, SESSION_COOKIE};
use crate::error::{ApiJson, ApiResult};
use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(current))
        .routes(routes!(reset_password))
        .routes(routes!(cli_login_code))
        .routes(routes!(cli_login_token))
}

/// How long a CLI browser-login code stays valid.
pub const CLI_LOGIN_TTL_SECS: i64 = 300;

/// A CLI browser-login code.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct CliLoginCode {
    pub code: String,
}

/// The query of the CLI's token poll.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CliLoginPoll {
    pub code: String,
}

/// The token handed to the CLI.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct CliLoginToken {
    pub token: String,
}

/// Starts a browser login of the BentoML CLI: a code to confirm at `/api_tokens?code=CODE`.
#[utoipa::path(get, path = "/api/v1/auth/code", tag = "auth", responses((status = 200, body = CliLoginCode)))]
async fn cli_login_code(State(state): State<AppState>) -> ApiResult<Json<CliLoginCode>> {
    let code = new_secret("");
    let expires = now_micros() + CLI_LOGIN_TTL_SECS * 1_000_000;
    yatai_store::db::cli_logins::create(state.db.pool(), &secret_hash(&code), expires).await?;
    Ok(Json(CliLoginCode { code }))
}

/// The CLI's poll: the token once a logged-in user authorized the code (once), 404 before.
#[utoipa::path(get, path = "/api/v1/auth/token", tag = "auth", params(CliLoginPoll),
    responses((status = 200, body = CliLoginToken), (status = 404, description = "not authorized yet, expired or already collected")))]
async fn cli_login_token(
    State(state): State<AppState>,
    crate::error::ApiQuery(q): crate::error::ApiQuery<CliLoginPoll>,
) -> ApiResult<Json<CliLoginToken>> {
    match yatai_store::db::cli_logins::take_token(state.db.pool(), &secret_hash(&q.code)).await? {
        Some(token) => Ok(Json(CliLoginToken { token })),
        None => Err(Error::NotFound(
            "the login code is not authorized yet, has expired, or was used already".into(),
        )
        .into()),
    }
}

/// The body of a login.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginSchema {
    pub name_or_email: String,
    pub password: String,
}

/// The body of a password change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetPasswordSchema {
    pub current_password: String,
    pub new_password: String,
}

/// Checks a user's password and opens a session; returns the session secret. Failed attempts
/// are throttled per account and per client `address` before any hash is computed.
pub async fn open_session(
    state: &AppState,
    name_or_email: &str,
    password: &str,
    address: Option<std::net::IpAddr>,
) -> Result<(users::User, String), Error> {
    let account = name_or_email.trim();
    state.login_throttle.check(account, address)?;
    let user = users::find_by_name_or_email(state.db.pool(), account).await?;
    let ok = verify_password(
        password.to_string(),
        user.as_ref().map(|u| u.password_hash.clone()),
    )
    .await?;
    let user = match (ok, user) {
        (true, Some(user)) => user,
        _ => {
            state.login_throttle.failed(account, address);
            return Err(Error::Unauthenticated("wrong user name or password".into()));
        }
    };
    state.login_throttle.succeeded(account);
    if crate::auth::secrets::is_legacy_hash(&user.password_hash) {
        let upgraded = hash_password(password.to_string()).await?;
        users::set_password_hash(state.db.pool(), &user.uid, &upgraded).await?;
    }
    let secret = new_secret("ys_");
    let expires = now_micros() + state.settings.session_ttl.as_micros() as i64;
    sessions::create(state.db.pool(), &secret_hash(&secret), &user.uid, expires).await?;
    Ok((user, secret))
}

/// The session cookie for `secret` (HttpOnly, SameSite=Lax, Secure over HTTPS).
pub fn session_cookie(state: &AppState, secret: String) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, secret))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.settings.secure_cookies)
        .max_age(time::Duration::seconds(
            state.settings.session_ttl.as_secs() as i64,
        ))
        .build()
}

/// Logs in with a password; sets the session cookie.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginSchema,
    responses((status = 200, body = UserSchema), (status = 401, description = "wrong name or password"), (status = 429, description = "too many failed logins, or too many at once: wait Retry-After seconds")))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(address): ClientAddr,
    jar: CookieJar,
    ApiJson(body): ApiJson<LoginSchema>,
) -> ApiResult<(CookieJar, Json<UserSchema>)> {
    let (user, secret) = open_session(&state, &body.name_or_email, &body.password, address).await?;
    Ok((
        jar.add(session_cookie(&state, secret)),
        Json((&user).into()),
    ))
}

/// Ends the session of the cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 200, description = "logged out")))]
async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
) -> ApiResult<(CookieJar, Json<serde_json::Value>)> {
    if let Some(c) = jar.get(SESSION_COOKIE) {
        sessions::delete(state.db.pool(), &secret_hash(c.value())).await?;
    }
    Ok((
        jar.remove(Cookie::build(SESSION_COOKIE).path("/")),
        Json(serde_json::json!({})),
    ))
}

/// The authenticated user.
#[utoipa::path(get, path = "/api/v1/auth/current", tag = "auth", responses((status = 200, body = UserSchema), (status = 401, description = "not authenticated")))]
async fn current(identity: Identity) -> Json<UserSchema> {
    Json((&identity.user).into())
}

/// Changes the caller's password and ends their other sessions.
#[utoipa::path(patch, path = "/api/v1/auth/reset_password", tag = "auth", request_body = ResetPasswordSchema, responses((status = 200, body = UserSchema)))]
async fn reset_password(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(body): ApiJson<ResetPasswordSchema>,
) -> ApiResult<Json<UserSchema>> {
    if identity.token.is_some() {
        return Err(Error::Forbidden(
            "a password can only be changed from a logged-in session, not with an API token".into(),
        )
        .into());
    }
    if !verify_password(
        body.current_password,
        Some(identity.user.password_hash.clone()),
    )
    .await?
    {
        return Err(Error::invalid("the current password is wrong").into());
    }
    names::validate_password(&body.new_password)?;
    let hash = hash_password(body.new_password).await?;
    let mut tx = state.db.begin().await?;
    users::set_password_hash(&mut *tx, &identity.user.uid, &hash).await?;
    sessions::delete_for_user(&mut *tx, &identity.user.uid).await?;
    tx.commit().await.map_err(yatai_store::db::db_error)?;
    Ok(Json((&identity.user).into()))
}
