//! API tokens of the caller in the current organization: the secret is shown once, stored hashed.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use yatai_domain::paging::Page;
use yatai_domain::Error;
use yatai_service::tokens;

use super::schemas::{ApiTokenSchema, ListSchema, PageQuery};
use crate::auth::Caller;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::AppState;

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

impl CreateApiTokenSchema {
    /// The token the body asks for.
    pub fn new_token(&self) -> tokens::NewToken {
        tokens::NewToken {
            name: self.name.clone(),
            description: self.description.clone(),
            scopes: self.scopes.clone(),
            expired_at: self.expired_at.clone(),
        }
    }
}

/// A page of the caller's tokens in the current organization, as the API shows them.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    page: Page,
) -> Result<ListSchema<ApiTokenSchema>, Error> {
    let (list, total) = tokens::list(state, caller, page).await?;
    let items = list
        .iter()
        .map(|t| ApiTokenSchema::new(t, caller.user(), &caller.organization, None))
        .collect();
    Ok(ListSchema::page(page, total, items))
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
    let (token, secret) = tokens::create(&state, &caller, &body.new_token()).await?;
    Ok(Json(ApiTokenSchema::new(
        &token,
        caller.user(),
        &caller.organization,
        Some(secret),
    )))
}

/// One of the caller's API tokens (without its secret).
#[utoipa::path(get, path = "/api/v1/api_tokens/{uid}", tag = "api_tokens", params(("uid" = String, Path)), responses((status = 200, body = ApiTokenSchema), (status = 404, description = "no such token")))]
async fn get_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(uid): ApiPath<String>,
) -> ApiResult<Json<ApiTokenSchema>> {
    let token = tokens::get(&state, &caller, &uid).await?;
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
    let changes = tokens::TokenChanges {
        description: body.description,
        scopes: body.scopes,
        expired_at: body.expired_at,
    };
    let updated = tokens::update(&state, &caller, &uid, &changes).await?;
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
    let token = tokens::revoke(&state, &caller, &uid).await?;
    Ok(Json(ApiTokenSchema::new(
        &token,
        caller.user(),
        &caller.organization,
        None,
    )))
}
