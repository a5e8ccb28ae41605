//! Members of the current organization and their roles.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use yatai_domain::paging::Page;
use yatai_domain::{Action, Error, Role};
use yatai_store::db::{members, users};

use super::schemas::{ListSchema, MemberSchema, OrganizationSchema, PageQuery, ResourceSchema};
use crate::auth::Caller;
use crate::error::{ApiJson, ApiQuery, ApiResult};
use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_members, add_members, remove_member))
}

/// The body of `POST /api/v1/members`: add users (or change their role).
#[derive(Debug, Deserialize, ToSchema)]
pub struct AddMembersSchema {
    pub usernames: Vec<String>,
    pub role: String,
}

/// The body of `DELETE /api/v1/members`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RemoveMemberSchema {
    pub username: String,
}

/// A page of the members of the caller's organization, with their users.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    page: Page,
) -> Result<ListSchema<MemberSchema>, Error> {
    caller.authorize(Action::ReadOrganization)?;
    let pool = state.db.pool();
    let (rows, total) = members::list(pool, &caller.organization.uid, page).await?;
    let uids: Vec<String> = rows.iter().map(|m| m.user_uid.clone()).collect();
    let people = users::find_many(pool, &uids).await?;
    let org = OrganizationSchema::from(&caller.organization);
    let items = rows
        .iter()
        .filter_map(|m| {
            let user = people.iter().find(|u| u.uid == m.user_uid)?;
            Some(MemberSchema {
                resource: ResourceSchema::new(
                    "organization_member",
                    &format!("{}-{}", m.organization_uid, m.user_uid),
                    &user.name,
                    m.created_at,
                    m.updated_at,
                ),
                role: m.role.clone(),
                user: user.into(),
                organization: org.clone(),
            })
        })
        .collect();
    Ok(ListSchema::page(page, total, items))
}

/// Sets the role of users in the caller's organization, refusing to leave it without an admin.
pub async fn set_roles(
    state: &AppState,
    caller: &Caller,
    usernames: &[String],
    role: Role,
) -> Result<(), Error> {
    caller.authorize(Action::ManageMembers)?;
    if usernames.is_empty() {
        return Err(Error::invalid("usernames must name at least one user"));
    }
    let mut tx = state.db.begin().await?;
    for name in usernames {
        let user = users::find_by_name(&mut *tx, name)
            .await?
            .ok_or_else(|| Error::not_found("user", name))?;
        members::upsert(&mut *tx, &caller.organization.uid, &user.uid, role).await?;
    }
    if members::count_admins(&mut *tx, &caller.organization.uid).await? == 0 {
        return Err(Error::Conflict(
            "the organization must keep at least one admin".into(),
        ));
    }
    tx.commit().await.map_err(yatai_store::db::db_error)?;
    Ok(())
}

/// Removes a user from the caller's organization, refusing to remove the last admin.
pub async fn remove(state: &AppState, caller: &Caller, username: &str) -> Result<(), Error> {
    caller.authorize(Action::ManageMembers)?;
    let mut tx = state.db.begin().await?;
    let user = users::find_by_name(&mut *tx, username)
        .await?
        .ok_or_else(|| Error::not_found("member", username))?;
    if !members::delete(&mut *tx, &caller.organization.uid, &user.uid).await? {
        return Err(Error::not_found("member", username));
    }
    if members::count_admins(&mut *tx, &caller.organization.uid).await? == 0 {
        return Err(Error::Conflict(
            "the organization must keep at least one admin".into(),
        ));
    }
    tx.commit().await.map_err(yatai_store::db::db_error)?;
    Ok(())
}

/// Lists the members of the current organization.
#[utoipa::path(get, path = "/api/v1/members", tag = "members", params(PageQuery), responses((status = 200, body = ListSchema<MemberSchema>)))]
async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<ListSchema<MemberSchema>>> {
    Ok(Json(list(&state, &caller, q.page()?).await?))
}

/// Adds users to the current organization with a role, or changes their role (admins).
#[utoipa::path(post, path = "/api/v1/members", tag = "members", request_body = AddMembersSchema, responses((status = 200, body = ListSchema<MemberSchema>)))]
async fn add_members(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<AddMembersSchema>,
) -> ApiResult<Json<ListSchema<MemberSchema>>> {
    let role: Role = body.role.parse()?;
    set_roles(&state, &caller, &body.usernames, role).await?;
    Ok(Json(list(&state, &caller, Page::all()).await?))
}

/// Removes a user from the current organization (admins).
#[utoipa::path(delete, path = "/api/v1/members", tag = "members", request_body = RemoveMemberSchema, responses((status = 200, body = ListSchema<MemberSchema>)))]
async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<RemoveMemberSchema>,
) -> ApiResult<Json<ListSchema<MemberSchema>>> {
    remove(&state, &caller, &body.username).await?;
    Ok(Json(list(&state, &caller, Page::all()).await?))
}
