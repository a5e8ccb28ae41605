//! Users: the members' accounts. Admins create users into their organization and reset passwords.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use yatai_domain::{names, Action, Error, Role};
use yatai_store::db::{members, sessions, users};

use super::schemas::{ListSchema, PageQuery, UserSchema};
use crate::auth::secrets::hash_password;
use crate::auth::Caller;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user))
        .routes(routes!(set_password))
}

/// The body of a user creation.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateUserSchema {
    pub name: String,
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    /// The new user's role in the caller's organization (default: developer).
    #[serde(default)]
    pub role: Option<String>,
}

/// The body of an admin's password reset.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetPasswordSchema {
    pub new_password: String,
}

/// Creates a user and adds them to the caller's organization.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    body: CreateUserSchema,
) -> Result<users::User, Error> {
    caller.authorize(Action::ManageMembers)?;
    names::validate_name("user name", &body.name)?;
    names::validate_email(&body.email)?;
    names::validate_password(&body.password)?;
    let role: Role = body.role.as_deref().unwrap_or("developer").parse()?;
    let hash = hash_password(body.password).await?;
    let mut tx = state.db.begin().await?;
    let user = users::create(
        &mut *tx,
        &users::NewUser {
            name: &body.name,
            email: &body.email,
            first_name: &body.first_name,
            last_name: &body.last_name,
            password_hash: &hash,
            is_site_admin: false,
        },
    )
    .await?;
    members::upsert(&mut *tx, &caller.organization.uid, &user.uid, role).await?;
    tx.commit().await.map_err(yatai_store::db::db_error)?;
    Ok(user)
}

/// Finds a user who is a member of the caller's organization.
pub async fn find_visible(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<users::User, Error> {
    let user = users::find_by_name(state.db.pool(), name)
        .await?
        .ok_or_else(|| Error::not_found("user", name))?;
    members::find(state.db.pool(), &caller.organization.uid, &user.uid)
        .await?
        .ok_or_else(|| Error::not_found("user", name))?;
    Ok(user)
}

/// Lists the users of the caller's organization.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(PageQuery), responses((status = 200, body = ListSchema<UserSchema>)))]
async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<ListSchema<UserSchema>>> {
    caller.authorize(Action::ReadOrganization)?;
    let page = q.page()?;
    let (list, total) =
        users::list_in_organization(state.db.pool(), &caller.organization.uid, page).await?;
    Ok(Json(ListSchema::page(
        page,
        total,
        list.iter().map(UserSchema::from).collect(),
    )))
}

/// Creates a user in the caller's organization (admins).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUserSchema, responses((status = 200, body = UserSchema), (status = 409, description = "name or e-mail taken")))]
async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateUserSchema>,
) -> ApiResult<Json<UserSchema>> {
    let user = create(&state, &caller, body).await?;
    Ok(Json((&user).into()))
}

/// A user of the caller's organization.
#[utoipa::path(get, path = "/api/v1/users/{name}", tag = "users", params(("name" = String, Path)), responses((status = 200, body = UserSchema), (status = 404, description = "no such user")))]
async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<UserSchema>> {
    caller.authorize(Action::ReadOrganization)?;
    Ok(Json((&find_visible(&state, &caller, &name).await?).into()))
}

/// Sets a new password for a user of the caller's organization (admins) and ends their sessions.
/// Only a site administrator may reset a site administrator's password (anyone may reset their
/// own): without this, an organization admin could take over the whole installation. The API
/// route and the dashboard form both call this one function.
pub async fn reset_password(
    state: &AppState,
    caller: &Caller,
    name: &str,
    new_password: &str,
) -> Result<users::User, Error> {
    caller.authorize(Action::ManageMembers)?;
    let user = find_visible(state, caller, name).await?;
    if user.is_site_admin != 0 && caller.user().uid != user.uid && caller.user().is_site_admin == 0
    {
        return Err(Error::Forbidden(
            "only a site administrator may reset a site administrator's password".into(),
        ));
    }
    names::validate_password(new_password)?;
    let hash = hash_password(new_password.to_string()).await?;
    let mut tx = state.db.begin().await?;
    users::set_password_hash(&mut *tx, &user.uid, &hash).await?;
    sessions::delete_for_user(&mut *tx, &user.uid).await?;
    tx.commit().await.map_err(yatai_store::db::db_error)?;
    Ok(user)
}

/// Sets a new password for a user of the caller's organization (admins); ends their sessions.
#[utoipa::path(post, path = "/api/v1/users/{name}/reset_password", tag = "users", params(("name" = String, Path)), request_body = SetPasswordSchema, responses((status = 200, body = UserSchema)))]
async fn set_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<SetPasswordSchema>,
) -> ApiResult<Json<UserSchema>> {
    let user = reset_password(&state, &caller, &name, &body.new_password).await?;
    Ok(Json((&user).into()))
}
