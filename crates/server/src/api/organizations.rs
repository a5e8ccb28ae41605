//! Organizations and the current organization.

use axum::extract::State;
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};
use yatai_api_types::{CreateOrganizationSchema, UpdateOrganizationSchema};
use yatai_domain::Action;
use yatai_service::organizations;

use super::schemas::{self, ListSchema, OrganizationSchema};
use crate::auth::{Caller, Identity};
use crate::error::{ApiJson, ApiPath, ApiResult};
use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orgs, create_org))
        .routes(routes!(get_org, update_org))
        .routes(routes!(get_current_org, update_current_org))
}

/// The organizations the caller belongs to (a token sees only its own).
#[utoipa::path(get, path = "/api/v1/orgs", tag = "organizations", responses((status = 200, body = ListSchema<OrganizationSchema>)))]
async fn list_orgs(
    State(state): State<AppState>,
    identity: Identity,
) -> ApiResult<Json<ListSchema<OrganizationSchema>>> {
    let orgs = organizations::list(&state, &identity).await?;
    Ok(Json(ListSchema::all(
        orgs.iter().map(schemas::organization).collect(),
    )))
}

/// Creates an organization (site admins, from a session); the creator becomes its admin.
#[utoipa::path(post, path = "/api/v1/orgs", tag = "organizations", request_body = CreateOrganizationSchema, responses((status = 200, body = OrganizationSchema), (status = 409, description = "name taken")))]
async fn create_org(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(body): ApiJson<CreateOrganizationSchema>,
) -> ApiResult<Json<OrganizationSchema>> {
    let org = organizations::create(&state, &identity, &body.name, &body.description).await?;
    Ok(Json(schemas::organization(&org)))
}

/// An organization the caller belongs to.
#[utoipa::path(get, path = "/api/v1/orgs/{name}", tag = "organizations", params(("name" = String, Path)), responses((status = 200, body = OrganizationSchema), (status = 404, description = "no such organization")))]
async fn get_org(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<OrganizationSchema>> {
    Ok(Json(schemas::organization(
        &organizations::get(&state, &identity, &name).await?,
    )))
}

/// Changes an organization's description (its admins).
#[utoipa::path(patch, path = "/api/v1/orgs/{name}", tag = "organizations", params(("name" = String, Path)), request_body = UpdateOrganizationSchema, responses((status = 200, body = OrganizationSchema)))]
async fn update_org(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateOrganizationSchema>,
) -> ApiResult<Json<OrganizationSchema>> {
    let org = organizations::update(&state, &identity, &name, body.description.as_deref()).await?;
    Ok(Json(schemas::organization(&org)))
}

/// The organization the request acts in (the token's, or the session's chosen one).
#[utoipa::path(get, path = "/api/v1/current_org", tag = "organizations", responses((status = 200, body = OrganizationSchema)))]
async fn get_current_org(caller: Caller) -> ApiResult<Json<OrganizationSchema>> {
    caller.authorize(Action::ReadRegistry)?;
    Ok(Json(schemas::organization(&caller.organization)))
}

/// Changes the current organization's description (its admins).
#[utoipa::path(patch, path = "/api/v1/current_org", tag = "organizations", request_body = UpdateOrganizationSchema, responses((status = 200, body = OrganizationSchema)))]
async fn update_current_org(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UpdateOrganizationSchema>,
) -> ApiResult<Json<OrganizationSchema>> {
    let org = organizations::update_current(&state, &caller, body.description.as_deref()).await?;
    Ok(Json(schemas::organization(&org)))
}
