//! First-run setup: creates the first admin and the default organization, once.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::schemas::UserSchema;
use crate::error::{ApiJson, ApiResult};
use crate::AppState;

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

pub use yatai_service::setup::{is_completed, DEFAULT_ORGANIZATION};

impl SetupSchema {
    /// The first admin's account.
    pub fn account(&self) -> yatai_service::users::NewAccount {
        yatai_service::users::NewAccount {
            name: self.name.clone(),
            email: self.email.clone(),
            password: self.password.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
        }
    }
}

/// Creates the first admin user and the default organization, with the initialization token.
#[utoipa::path(post, path = "/api/v1/setup", tag = "setup", request_body = SetupSchema,
    responses((status = 200, body = UserSchema), (status = 403, description = "wrong token"), (status = 409, description = "setup already done")))]
async fn setup(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SetupSchema>,
) -> ApiResult<Json<UserSchema>> {
    let user = yatai_service::setup::complete(&state, &body.token, &body.account()).await?;
    Ok(Json((&user).into()))
}
