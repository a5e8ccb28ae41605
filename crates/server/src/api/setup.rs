//! First-run setup: creates the first admin and the default organization, once.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use yatai_domain::{names, Error, Role};
use yatai_store::db::{members, organizations, settings, users};

use super::schemas::UserSchema;
use crate::auth::secrets::{hash_password, secrets_equal};
use crate::error::{ApiJson, ApiResult};
use crate::AppState;

/// The name of the organization that setup creates.
pub const DEFAULT_ORGANIZATION: &str = "default";

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(setup))
}

/// The body of `POST /api/v1/setup`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetupSchema {
    pub token: String,
    pub name: String,
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
}

/// Whether setup has been completed.
/// Setup is closed once it ran, and also as soon as any user exists (an installation restored or
/// imported from Yatai 1.x has its admins already).
pub async fn is_completed(state: &AppState) -> Result<bool, Error> {
    let pool = state.db.pool();
    Ok(settings::get(pool, settings::SETUP_COMPLETED)
        .await?
        .is_some()
        || users::count(pool).await? > 0)
}

/// Creates the first admin user and the default organization, with the initialization token.
#[utoipa::path(post, path = "/api/v1/setup", tag = "setup", request_body = SetupSchema,
    responses((status = 200, body = UserSchema), (status = 403, description = "wrong token"), (status = 409, description = "setup already done")))]
async fn setup(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SetupSchema>,
) -> ApiResult<Json<UserSchema>> {
    let user = complete(&state, &body).await?;
    Ok(Json((&user).into()))
}

/// Runs setup: checks the token and the input, then creates the first admin and the default
/// organization in one transaction. Setup is closed afterwards, for good.
pub async fn complete(state: &AppState, body: &SetupSchema) -> Result<users::User, Error> {
    let closed = || Error::Conflict("setup has already been completed; log in instead".into());
    if is_completed(state).await? {
        return Err(closed());
    }
    if state.settings.initialization_token.is_empty()
        || !secrets_equal(&body.token, &state.settings.initialization_token)
    {
        return Err(Error::Forbidden("invalid initialization token: use the one printed by `yatai serve` or set in YATAI_INITIALIZATION_TOKEN".into()));
    }
    names::validate_name("user name", &body.name)?;
    names::validate_email(&body.email)?;
    names::validate_password(&body.password)?;
    let password_hash = hash_password(body.password.clone()).await?;

    let mut tx = state.db.begin().await?;
    if !settings::insert_new(
        &mut *tx,
        settings::SETUP_COMPLETED,
        &yatai_domain::time::now_micros().to_string(),
    )
    .await?
    {
        return Err(closed());
    }
    let user = users::create(
        &mut *tx,
        &users::NewUser {
            name: &body.name,
            email: &body.email,
            first_name: &body.first_name,
            last_name: &body.last_name,
            password_hash: &password_hash,
            is_site_admin: true,
        },
    )
    .await?;
    let org = organizations::create(&mut *tx, DEFAULT_ORGANIZATION, "", &user.uid).await?;
    members::upsert(&mut *tx, &org.uid, &user.uid, Role::Admin).await?;
    tx.commit().await.map_err(yatai_store::db::db_error)?;
    tracing::info!(user = %user.name, "setup completed: first admin created");
    Ok(user)
}
