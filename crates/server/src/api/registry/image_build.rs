//! `PATCH .../update_image_build_status`: an adapter over
//! `yatai_service::registry::images::set_status`.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use yatai_api_types::UpdateImageBuildStatusSchema;
use yatai_service::registry::images;

use super::{client_generation, Presenter};
use crate::api::schemas::VersionSchema;
use crate::auth::Caller;
use crate::error::{ApiJson, ApiPath, ApiResult};
use crate::AppState;

pub async fn update_image_build_status(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<UpdateImageBuildStatusSchema>,
) -> ApiResult<Json<VersionSchema>> {
    let status = body.image_build_status.as_str().parse()?;
    let v = images::set_status(
        &state,
        &caller,
        &name,
        &version,
        status,
        body.image_reference.as_deref(),
        body.reason.as_deref(),
    )
    .await?;
    Ok(Json(
        Presenter::new(&state, client_generation(&headers))
            .version(&v, false)
            .await?,
    ))
}

/// `POST .../build_image`: an adapter over `yatai_service::registry::images::request_build`
/// (not in Yatai 1.x): the server builds the image itself when configured with a registry.
pub async fn build_image(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> ApiResult<Json<VersionSchema>> {
    let v = images::request_build(&state, &caller, &name, &version).await?;
    Ok(Json(
        Presenter::new(&state, client_generation(&headers))
            .version(&v, false)
            .await?,
    ))
}
