//! Users: the members' accounts. Admins create users into their organization and reset passwords.

use axum::extract::State;
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};
use yatai_api_types::{CreateUserSchema, SetPasswordSchema};
use yatai_domain::paging::Page;
use yatai_service::users;

use super::schemas::{self, ListSchema, PageQuery, UserSchema};
use crate::auth::Caller;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user))
        .routes(routes!(set_password))
}

/// The account a user creation asks for.
fn account(body: &CreateUserSchema) -> users::NewAccount {
    users::NewAccount {
        name: body.name.clone(),
        email: body.email.clone(),
        password: body.password.clone(),
        first_name: body.first_name.clone(),
        last_name: body.last_name.clone(),
    }
}

/// Lists the users of the caller's organization.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(PageQuery), responses((status = 200, body = ListSchema<UserSchema>)))]
async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<ListSchema<UserSchema>>> {
    let page = Page::new(q.start, q.count, 100)?;
    let (list, total) = users::list(&state, &caller, page).await?;
    Ok(Json(schemas::page(
        page,
        total,
        list.iter().map(schemas::user).collect(),
    )))
}

/// Creates a user in the caller's organization (admins).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUserSchema, responses((status = 200, body = UserSchema), (status = 409, description = "name or e-mail taken")))]
async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateUserSchema>,
) -> ApiResult<Json<UserSchema>> {
    let user = users::create(&state, &caller, &account(&body), body.role.as_deref()).await?;
    Ok(Json(schemas::user(&user)))
}

/// A user of the caller's organization.
#[utoipa::path(get, path = "/api/v1/users/{name}", tag = "users", params(("name" = String, Path)), responses((status = 200, body = UserSchema), (status = 404, description = "no such user")))]
async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<UserSchema>> {
    Ok(Json(schemas::user(
        &users::get(&state, &caller, &name).await?,
    )))
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
    Ok(Json(schemas::user(&user)))
}
