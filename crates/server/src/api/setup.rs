//! First-run setup: creates the first admin and the default organization, once.

use axum::extract::State;
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};
use yatai_api_types::SetupSchema;

use super::schemas::{self, UserSchema};
use crate::error::{ApiJson, ApiResult};
use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(setup))
}

pub use yatai_service::setup::{is_completed, DEFAULT_ORGANIZATION};

/// The first admin's account.
fn account(body: &SetupSchema) -> yatai_service::users::NewAccount {
    yatai_service::users::NewAccount {
        name: body.name.clone(),
        email: body.email.clone(),
        password: body.password.clone(),
        first_name: body.first_name.clone(),
        last_name: body.last_name.clone(),
    }
}

/// Creates the first admin user and the default organization, with the initialization token.
#[utoipa::path(post, path = "/api/v1/setup", tag = "setup", request_body = SetupSchema,
    responses((status = 200, body = UserSchema), (status = 403, description = "wrong token"), (status = 409, description = "setup already done")))]
async fn setup(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SetupSchema>,
) -> ApiResult<Json<UserSchema>> {
    let user = yatai_service::setup::complete(&state, &body.token, &account(&body)).await?;
    Ok(Json(schemas::user(&user)))
}
