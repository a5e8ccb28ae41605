//! Password login with a session cookie, logout, the current user, and password change.

use axum::extract::State;
use axum::Json;
use axum_extra::extract::CookieJar;
use utoipa_axum::{router::OpenApiRouter, routes};
use yatai_api_types::{
    CliLoginCode, CliLoginPoll, CliLoginToken, LoginSchema, ResetPasswordSchema,
};
use yatai_service::sessions;

use super::schemas::{self, UserSchema};
use crate::auth::{session_cookie, session_cookie_removal, ClientAddr, Identity, SESSION_COOKIE};
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

/// Starts a browser login of the BentoML CLI: a code to confirm at `/api_tokens?code=CODE`.
#[utoipa::path(get, path = "/api/v1/auth/code", tag = "auth", responses((status = 200, body = CliLoginCode)))]
async fn cli_login_code(State(state): State<AppState>) -> ApiResult<Json<CliLoginCode>> {
    Ok(Json(CliLoginCode {
        code: sessions::start_cli_login(&state).await?,
    }))
}

/// The CLI's poll: the token once a logged-in user authorized the code (once), 404 before.
#[utoipa::path(get, path = "/api/v1/auth/token", tag = "auth", params(CliLoginPoll),
    responses((status = 200, body = CliLoginToken), (status = 404, description = "not authorized yet, expired or already collected")))]
async fn cli_login_token(
    State(state): State<AppState>,
    crate::error::ApiQuery(q): crate::error::ApiQuery<CliLoginPoll>,
) -> ApiResult<Json<CliLoginToken>> {
    Ok(Json(CliLoginToken {
        token: sessions::collect_cli_login(&state, &q.code).await?,
    }))
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
    let (user, secret) =
        sessions::login(&state, &body.name_or_email, &body.password, address).await?;
    Ok((
        jar.add(session_cookie(&state, secret)),
        Json(schemas::user(&user)),
    ))
}

/// Ends the session of the cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 200, description = "logged out")))]
async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
) -> ApiResult<(CookieJar, Json<serde_json::Value>)> {
    if let Some(c) = jar.get(SESSION_COOKIE) {
        sessions::logout(&state, c.value()).await?;
    }
    Ok((
        jar.remove(session_cookie_removal()),
        Json(serde_json::json!({})),
    ))
}

/// The authenticated user.
#[utoipa::path(get, path = "/api/v1/auth/current", tag = "auth", responses((status = 200, body = UserSchema), (status = 401, description = "not authenticated")))]
async fn current(identity: Identity) -> Json<UserSchema> {
    Json(schemas::user(&identity.user))
}

/// Changes the caller's password and ends their other sessions.
#[utoipa::path(patch, path = "/api/v1/auth/reset_password", tag = "auth", request_body = ResetPasswordSchema, responses((status = 200, body = UserSchema)))]
async fn reset_password(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(body): ApiJson<ResetPasswordSchema>,
) -> ApiResult<Json<UserSchema>> {
    let user = sessions::change_password(
        &state,
        &identity,
        &body.current_password,
        &body.new_password,
    )
    .await?;
    Ok(Json(schemas::user(&user)))
}
