//! Organizations and the current organization.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use yatai_domain::{access::authorize, names, Action, Error, Role};
use yatai_store::db::{members, organizations};

use super::schemas::{ListSchema, OrganizationSchema};
use crate::auth::{Caller, Identity};
use crate::error::{ApiJson, ApiPath, ApiResult};
use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orgs, create_org))
        .routes(routes!(get_org, update_org))
        .routes(routes!(get_current_org, update_current_org))
}

/// The body of an organization creation.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateOrganizationSchema {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// The body of an organization update.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateOrganizationSchema {
    pub description: Option<String>,
}

/// Resolves an organization the identity is a member of, with their role; 404 otherwise.
async fn membership(
    state: &AppState,
    identity: &Identity,
    name: &str,
) -> Result<(organizations::Organization, Role), Error> {
    let pool = state.db.pool();
    let org = organizations::find_by_name(pool, name)
        .await?
        .ok_or_else(|| Error::not_found("organization", name))?;
    if let Some(token) = &identity.token {
        if token.organization_uid != org.uid {
            return Err(Error::not_found("organization", name));
        }
    }
    let member = members::find(pool, &org.uid, &identity.user.uid)
        .await?
        .ok_or_else(|| Error::not_found("organization", name))?;
    Ok((org, member.role()))
}

/// The organizations the caller belongs to (a token sees only its own).
#[utoipa::path(get, path = "/api/v1/orgs", tag = "organizations", responses((status = 200, body = ListSchema<OrganizationSchema>)))]
async fn list_orgs(
    State(state): State<AppState>,
    identity: Identity,
) -> ApiResult<Json<ListSchema<OrganizationSchema>>> {
    let mut orgs = organizations::list_for_user(state.db.pool(), &identity.user.uid).await?;
    if let Some(token) = &identity.token {
        authorize(
            Role::Guest,
            identity.scopes().as_deref(),
            Action::ReadOrganization,
        )?;
        orgs.retain(|o| o.uid == token.organization_uid);
    }
    Ok(Json(ListSchema::all(
        orgs.iter().map(OrganizationSchema::from).collect(),
    )))
}

/// Creates an organization (site admins); the creator becomes its admin.
#[utoipa::path(post, path = "/api/v1/orgs", tag = "organizations", request_body = CreateOrganizationSchema, responses((status = 200, body = OrganizationSchema), (status = 409, description = "name taken")))]
async fn create_org(
    State(state): State<AppState>,
    identity: Identity,
    ApiJson(body): ApiJson<CreateOrganizationSchema>,
) -> ApiResult<Json<OrganizationSchema>> {
    identity.require_site_admin()?;
    if identity.token.is_some() {
        // A token acts in its own organization only: it could not use the one it created.
        return Err(Error::Forbidden(
            "create organizations from a logged-in session (the dashboard): an API token acts only in its own organization and could not use the new one".into(),
        )
        .into());
    }
    names::validate_name("organization name", &body.name)?;
    names::validate_description("organization", &body.description)?;
    let mut tx = state.db.begin().await?;
    let org =
        organizations::create(&mut *tx, &body.name, &body.description, &identity.user.uid).await?;
    members::upsert(&mut *tx, &org.uid, &identity.user.uid, Role::Admin).await?;
    tx.commit().await.map_err(yatai_store::db::db_error)?;
    Ok(Json((&org).into()))
}

/// An organization the caller belongs to.
#[utoipa::path(get, path = "/api/v1/orgs/{name}", tag = "organizations", params(("name" = String, Path)), responses((status = 200, body = OrganizationSchema), (status = 404, description = "no such organization")))]
async fn get_org(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<OrganizationSchema>> {
    let (org, role) = membership(&state, &identity, &name).await?;
    authorize(role, identity.scopes().as_deref(), Action::ReadOrganization)?;
    Ok(Json((&org).into()))
}

/// Changes an organization's description (its admins).
#[utoipa::path(patch, path = "/api/v1/orgs/{name}", tag = "organizations", params(("name" = String, Path)), request_body = UpdateOrganizationSchema, responses((status = 200, body = OrganizationSchema)))]
async fn update_org(
    State(state): State<AppState>,
    identity: Identity,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateOrganizationSchema>,
) -> ApiResult<Json<OrganizationSchema>> {
    let (org, role) = membership(&state, &identity, &name).await?;
    authorize(
        role,
        identity.scopes().as_deref(),
        Action::WriteOrganization,
    )?;
    Ok(Json(update(&state, org, body).await?))
}

async fn update(
    state: &AppState,
    mut org: organizations::Organization,
    body: UpdateOrganizationSchema,
) -> Result<OrganizationSchema, Error> {
    if let Some(d) = body.description {
        names::validate_description("organization", &d)?;
        organizations::set_description(state.db.pool(), &org.uid, &d).await?;
        org.description = d;
        org.updated_at = Some(yatai_domain::time::now_micros());
    }
    Ok((&org).into())
}

/// The organization the request acts in (the token's, or the session's chosen one).
#[utoipa::path(get, path = "/api/v1/current_org", tag = "organizations", responses((status = 200, body = OrganizationSchema)))]
async fn get_current_org(caller: Caller) -> ApiResult<Json<OrganizationSchema>> {
    caller.authorize(Action::ReadRegistry)?;
    Ok(Json((&caller.organization).into()))
}

/// Changes the current organization's description (its admins).
#[utoipa::path(patch, path = "/api/v1/current_org", tag = "organizations", request_body = UpdateOrganizationSchema, responses((status = 200, body = OrganizationSchema)))]
async fn update_current_org(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<UpdateOrganizationSchema>,
) -> ApiResult<Json<OrganizationSchema>> {
    caller.authorize(Action::WriteOrganization)?;
    Ok(Json(update(&state, caller.organization, body).await?))
}
