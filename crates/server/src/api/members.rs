//! Members of the current organization and their roles.

use axum::extract::State;
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};
use yatai_api_types::{AddMembersSchema, RemoveMemberSchema};
use yatai_domain::paging::Page;
use yatai_domain::Error;
use yatai_service::members;

use super::schemas::{self, ListSchema, MemberSchema, PageQuery};
use crate::auth::Caller;
use crate::error::{ApiJson, ApiQuery, ApiResult};
use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_members, add_members, remove_member))
}

/// A page of the members of the caller's organization, as the API shows them.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    page: Page,
) -> Result<ListSchema<MemberSchema>, Error> {
    let (rows, total) = members::list(state, caller, page).await?;
    let org = schemas::organization(&caller.organization);
    let items = rows
        .iter()
        .map(|(m, user)| MemberSchema {
            resource: schemas::resource(
                "organization_member",
                &format!("{}-{}", m.organization_uid, m.user_uid),
                &user.name,
                m.created_at,
                m.updated_at,
            ),
            role: m.role.to_string(),
            user: schemas::user(user),
            organization: org.clone(),
        })
        .collect();
    Ok(schemas::page(page, total, items))
}

/// Lists the members of the current organization.
#[utoipa::path(get, path = "/api/v1/members", tag = "members", params(PageQuery), responses((status = 200, body = ListSchema<MemberSchema>)))]
async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<ListSchema<MemberSchema>>> {
    Ok(Json(
        list(&state, &caller, Page::new(q.start, q.count, 100)?).await?,
    ))
}

/// Adds users to the current organization with a role, or changes their role (admins).
#[utoipa::path(post, path = "/api/v1/members", tag = "members", request_body = AddMembersSchema, responses((status = 200, body = ListSchema<MemberSchema>)))]
async fn add_members(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<AddMembersSchema>,
) -> ApiResult<Json<ListSchema<MemberSchema>>> {
    members::set_roles(&state, &caller, &body.usernames, &body.role).await?;
    Ok(Json(list(&state, &caller, Page::all()).await?))
}

/// Removes a user from the current organization (admins).
#[utoipa::path(delete, path = "/api/v1/members", tag = "members", request_body = RemoveMemberSchema, responses((status = 200, body = ListSchema<MemberSchema>)))]
async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RemoveMemberSchema>,
) -> ApiResult<Json<ListSchema<MemberSchema>>> {
    members::remove(&state, &caller, &body.username).await?;
    Ok(Json(list(&state, &caller, Page::all()).await?))
}
