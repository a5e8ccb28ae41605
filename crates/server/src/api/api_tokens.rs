//! API tokens of the caller in the current organization: the secret is shown once, stored hashed.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use yatai_domain::paging::Page;
use yatai_domain::time::{now_micros, parse_rfc3339};
use yatai_domain::{names, Action, Error, Scope};
use yatai_store::db::api_tokens::{self, ApiToken, ApiTokenChanges, NewApiToken};

use super::schemas::{ApiTokenSchema, ListSchema, PageQuery};
use crate::auth::secrets::{new_secret, secret_hash};
use crate::auth::Caller;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::AppState;

/// The prefix of every API token secret.
pub const TOKEN_PREFIX: &str = "yt_";

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(get_token, update_token, delete_token))
}

/// The body of a token creation.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateApiTokenSchema {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub scopes: Vec<String>,
    /// RFC 3339 time after which the token stops working; null for never.
    #[serde(default)]
    pub expired_at: Option<String>,
}

/// The body of a token update; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateApiTokenSchema {
    pub description: Option<String>,
    pub scopes: Option<Vec<String>>,
    /// Present and null clears the expiry.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub expired_at: Option<Option<String>>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Parses and checks requested scopes: known, at least one, and none beyond the caller's own token.
fn parse_scopes(caller: &Caller, requested: &[String]) -> Result<Vec<Scope>, Error> {
    let mut scopes = Vec::new();
    for s in requested {
        let scope: Scope = s.parse()?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.is_empty() {
        return Err(Error::invalid(format!(
            "scopes must name at least one of: {}",
            Scope::ALL.map(Scope::as_str).join(", ")
        )));
    }
    if let Some(own) = caller.identity.scopes() {
        if let Some(extra) = scopes.iter().find(|s| !own.contains(s)) {
            return Err(Error::Forbidden(format!("an API token cannot create or widen a token to the scope {extra} that it does not have itself")));
        }
    }
    Ok(scopes)
}

fn parse_expiry(value: Option<&str>) -> Result<Option<i64>, Error> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => {
            let t = parse_rfc3339(v).ok_or_else(|| {
                Error::invalid(format!(
                    "expired_at {v:?} is not an RFC 3339 time such as 2030-01-31T00:00:00Z"
                ))
            })?;
            if t <= now_micros() {
                return Err(Error::invalid("expired_at must be in the future"));
            }
            Ok(Some(t))
        }
    }
}

/// Creates a token for the caller; returns it with its secret.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    body: CreateApiTokenSchema,
) -> Result<ApiTokenSchema, Error> {
    caller.authorize(Action::ManageOwnTokens)?;
    names::validate_name("token name", &body.name)?;
    names::validate_description("token", &body.description)?;
    let scopes = parse_scopes(caller, &body.scopes)?;
    let expired_at = parse_expiry(body.expired_at.as_deref())?;
    let secret = new_secret(TOKEN_PREFIX);
    let token = api_tokens::create(
        state.db.pool(),
        &NewApiToken {
            name: &body.name,
            description: &body.description,
            organization_uid: &caller.organization.uid,
            user_uid: &caller.user().uid,
            scopes: &scopes,
            token_hash: &secret_hash(&secret),
            expired_at,
        },
    )
    .await?;
    Ok(ApiTokenSchema::new(
        &token,
        caller.user(),
        &caller.organization,
        Some(secret),
    ))
}

/// A page of the caller's tokens in the current organization.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    page: Page,
) -> Result<ListSchema<ApiTokenSchema>, Error> {
    caller.authorize(Action::ManageOwnTokens)?;
    let (tokens, total) = api_tokens::list(
        state.db.pool(),
        &caller.organization.uid,
        Some(&caller.user().uid),
        page,
    )
    .await?;
    let items = tokens
        .iter()
        .map(|t| ApiTokenSchema::new(t, caller.user(), &caller.organization, None))
        .collect();
    Ok(ListSchema::page(page, total, items))
}

/// One of the caller's tokens; another user's or organization's token is not found.
async fn find_own(state: &AppState, caller: &Caller, uid: &str) -> Result<ApiToken, Error> {
    caller.authorize(Action::ManageOwnTokens)?;
    api_tokens::find(state.db.pool(), &caller.organization.uid, uid)
        .await?
        .filter(|t| t.user_uid == caller.user().uid)
        .ok_or_else(|| Error::not_found("API token", uid))
}

/// Revokes one of the caller's tokens.
pub async fn revoke(state: &AppState, caller: &Caller, uid: &str) -> Result<ApiTokenSchema, Error> {
    let token = find_own(state, caller, uid).await?;
    api_tokens::delete(state.db.pool(), &token.uid).await?;
    Ok(ApiTokenSchema::new(
        &token,
        caller.user(),
        &caller.organization,
        None,
    ))
}

/// Lists the caller's API tokens in the current organization.
#[utoipa::path(get, path = "/api/v1/api_tokens", tag = "api_tokens", params(PageQuery), responses((status = 200, body = ListSchema<ApiTokenSchema>)))]
async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<ListSchema<ApiTokenSchema>>> {
    Ok(Json(list(&state, &caller, q.page()?).await?))
}

/// Creates an API token; the response holds the secret in `token`, shown only this once.
#[utoipa::path(post, path = "/api/v1/api_tokens", tag = "api_tokens", request_body = CreateApiTokenSchema, responses((status = 200, body = ApiTokenSchema), (status = 409, description = "name taken")))]
async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateApiTokenSchema>,
) -> ApiResult<Json<ApiTokenSchema>> {
    Ok(Json(create(&state, &caller, body).await?))
}

/// One of the caller's API tokens (without its secret).
#[utoipa::path(get, path = "/api/v1/api_tokens/{uid}", tag = "api_tokens", params(("uid" = String, Path)), responses((status = 200, body = ApiTokenSchema), (status = 404, description = "no such token")))]
async fn get_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(uid): ApiPath<String>,
) -> ApiResult<Json<ApiTokenSchema>> {
    let token = find_own(&state, &caller, &uid).await?;
    Ok(Json(ApiTokenSchema::new(
        &token,
        caller.user(),
        &caller.organization,
        None,
    )))
}

/// Changes the description, scopes or expiry of one of the caller's API tokens.
#[utoipa::path(patch, path = "/api/v1/api_tokens/{uid}", tag = "api_tokens", params(("uid" = String, Path)), request_body = UpdateApiTokenSchema, responses((status = 200, body = ApiTokenSchema)))]
async fn update_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(uid): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateApiTokenSchema>,
) -> ApiResult<Json<ApiTokenSchema>> {
    let token = find_own(&state, &caller, &uid).await?;
    if let Some(d) = &body.description {
        names::validate_description("token", d)?;
    }
    let changes = ApiTokenChanges {
        description: body.description,
        scopes: body
            .scopes
            .as_deref()
            .map(|s| parse_scopes(&caller, s))
            .transpose()?,
        expired_at: body
            .expired_at
            .map(|e| parse_expiry(e.as_deref()))
            .transpose()?,
    };
    let updated = api_tokens::update(state.db.pool(), &token, &changes).await?;
    Ok(Json(ApiTokenSchema::new(
        &updated,
        caller.user(),
        &caller.organization,
        None,
    )))
}

/// Revokes (deletes) one of the caller's API tokens.
#[utoipa::path(delete, path = "/api/v1/api_tokens/{uid}", tag = "api_tokens", params(("uid" = String, Path)), responses((status = 200, body = ApiTokenSchema)))]
async fn delete_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(uid): ApiPath<String>,
) -> ApiResult<Json<ApiTokenSchema>> {
    Ok(Json(revoke(&state, &caller, &uid).await?))
}
