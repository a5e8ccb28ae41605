//! API tokens of the caller in the current organization: the secret is shown once, stored hashed.

use axum::extract::State;
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};
use yatai_api_types::{CreateApiTokenSchema, UpdateApiTokenSchema};
use yatai_domain::paging::Page;
use yatai_domain::Error;
use yatai_service::tokens;

use super::schemas::{self, ApiTokenSchema, ListSchema, PageQuery};
use crate::auth::Caller;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(get_token, update_token, delete_token))
}

/// The token a creation asks for.
fn new_token(body: &CreateApiTokenSchema) -> tokens::NewToken {
    tokens::NewToken {
        name: body.name.clone(),
        description: body.description.clone(),
        scopes: body.scopes.clone(),
        expired_at: body.expired_at.clone(),
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
        .map(|t| schemas::api_token(t, caller.user(), &caller.organization, None))
        .collect();
    Ok(schemas::page(page, total, items))
}

/// Lists the caller's API tokens in the current organization.
#[utoipa::path(get, path = "/api/v1/api_tokens", tag = "api_tokens", params(PageQuery), responses((status = 200, body = ListSchema<ApiTokenSchema>)))]
async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<ListSchema<ApiTokenSchema>>> {
    Ok(Json(
        list(&state, &caller, Page::new(q.start, q.count, 100)?).await?,
    ))
}

/// Creates an API token; the response holds the secret in `token`, shown only this once.
#[utoipa::path(post, path = "/api/v1/api_tokens", tag = "api_tokens", request_body = CreateApiTokenSchema, responses((status = 200, body = ApiTokenSchema), (status = 409, description = "name taken")))]
async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateApiTokenSchema>,
) -> ApiResult<Json<ApiTokenSchema>> {
    let (token, secret) = tokens::create(&state, &caller, &new_token(&body)).await?;
    Ok(Json(schemas::api_token(
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
    Ok(Json(schemas::api_token(
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
    Ok(Json(schemas::api_token(
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
    Ok(Json(schemas::api_token(
        &token,
        caller.user(),
        &caller.organization,
        None,
    )))
}
