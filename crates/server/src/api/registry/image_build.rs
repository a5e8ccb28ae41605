//! The image build status of a bento version, as Yatai 1.x and its image builder update it
//! (`PATCH .../update_image_build_status` with `{"image_build_status": ...}`), plus the image
//! reference of a successful build and the reason of a failed one.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use yatai_api_types::{ImageBuildStatus, UpdateImageBuildStatusSchema};
use yatai_domain::{Action, Error};
use yatai_store::db::{db_error, image_builds};

use super::{client_generation, load_version, Bentos, Presenter};
use crate::api::events;
use crate::api::schemas::VersionSchema;
use crate::auth::Caller;
use crate::error::{ApiJson, ApiPath, ApiResult};
use crate::AppState;

/// The longest failure reason kept (builders may send whole logs).
const MAX_REASON: usize = 4000;

/// Applies a status change; the one rule both the API and the dashboard's "build image" follow.
pub async fn set_status(
    state: &AppState,
    caller: &Caller,
    name: &str,
    version: &str,
    body: &UpdateImageBuildStatusSchema,
) -> Result<yatai_store::db::versions::Version, Error> {
    caller.authorize(Action::WriteRegistry)?;
    let (_, v) = load_version::<Bentos>(state, caller, name, version).await?;
    let status = body.image_build_status;
    if status == ImageBuildStatus::Building && v.upload_status != "success" {
        return Err(Error::Conflict(format!(
            "bento {name}:{version} is not uploaded (upload status {}); push it before building its image",
            v.upload_status
        )));
    }
    let reference = body
        .image_reference
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    if let Some(r) = reference {
        if status != ImageBuildStatus::Success {
            return Err(Error::invalid(
                "image_reference is only given with image_build_status success",
            ));
        }
        if r.len() > 1024 || r.chars().any(char::is_whitespace) {
            return Err(Error::invalid(format!(
                "image_reference {r:?} is not an image reference (REGISTRY/REPOSITORY:TAG)"
            )));
        }
    }
    let reason = match status {
        ImageBuildStatus::Failed => body
            .reason
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .unwrap_or("the image builder gave no reason")
            .chars()
            .take(MAX_REASON)
            .collect::<String>(),
        _ => String::new(),
    };
    let mut tx = state.db.begin().await?;
    image_builds::set(&mut tx, &v.uid, status.as_str(), reference, &reason).await?;
    tx.commit().await.map_err(db_error)?;
    events::record(
        state,
        caller,
        "bento",
        &format!("{name}:{version}"),
        &format!("image_build_{}", status.as_str()),
    )
    .await;
    yatai_store::db::versions::find_by_uid(state.db.pool(), &v.uid)
        .await?
        .ok_or_else(|| Error::not_found("bento", format!("{name}:{version}")))
}

pub async fn update_image_build_status(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<UpdateImageBuildStatusSchema>,
) -> ApiResult<Json<VersionSchema>> {
    let v = set_status(&state, &caller, &name, &version, &body).await?;
    Ok(Json(
        Presenter::new(&state, client_generation(&headers))
            .version(&v, false)
            .await?,
    ))
}
