//! Users: the members' accounts. Admins create users into their organization and reset passwords.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use yatai_service::users;

use super::schemas::{ListSchema, PageQuery, UserSchema};
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

impl CreateUserSchema {
    /// The account the body asks for.
    pub fn account(&self) -> users::NewAccount {
        users::NewAccount {
            name: self.name.clone(),
            email: self.email.clone(),
            password: self.password.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
        }
    }
}

/// Lists the users of the caller's organization.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(PageQuery), responses((status = 200, body = ListSchema<UserSchema>)))]
async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<ListSchema<UserSchema>>> {
    let page = q.page()?;
    let (list, total) = users::list(&state, &caller, page).await?;
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
    let user = users::create(&state, &caller, &body.account(), body.role.as_deref()).await?;
    Ok(Json((&user).into()))
}

/// A user of the caller's organization.
#[utoipa::path(get, path = "/api/v1/users/{name}", tag = "users", params(("name" = String, Path)), responses((status = 200, body = UserSchema), (status = 404, description = "no such user")))]
async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<UserSchema>> {
    Ok(Json((&users::get(&state, &caller, &name).await?).into()))
}

/// Sets a new password for a user of the caller's organization (admins); ends their sessions.
#[utoipa::path(post, path = "/api/v1/users/{name}/reset_password", tag = "users", params(("name" = String, Path)), request_body = SetPasswordSchema, responses((status = 200, body = UserSchema)))]
async fn set_password(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<SetPasswordSchema>,
) -> ApiResult<Json<UserSchema>> {
    let user = users::reset_password(&state, &caller, &name, &body.new_password).await?;
    Ok(Json((&user).into()))
}
