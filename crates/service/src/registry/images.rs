//! The image of a bento version: its build status (`image_build_status`, as Yatai 1.x and its
//! image builder update it), the reference of the last successful build and the reason of the
//! last failure. The API and the dashboard's "build image" follow this one rule.

use yatai_domain::registry::{ImageBuildStatus, Kind};
use yatai_domain::{Action, Error};
use yatai_store::db::versions::{self, Version};
use yatai_store::db::{db_error, image_builds};

use super::{load_version, tag};
use crate::{events, Caller, Services};

/// The longest failure reason kept (builders may send whole logs).
pub const MAX_REASON_CHARS: usize = 4000;

/// Moves a bento version's image build status; `image_reference` only with `success`, the
/// reason kept only with `failed`. A bento that is not uploaded cannot be building.
pub async fn set_status(
    svc: &Services,
    caller: &Caller,
    name: &str,
    version: &str,
    status: ImageBuildStatus,
    image_reference: Option<&str>,
    reason: Option<&str>,
) -> Result<Version, Error> {
    caller.authorize(Action::WriteRegistry)?;
    let (_, v) = load_version(svc, caller, Kind::Bento, name, version).await?;
    let the_tag = tag(name, version);
    if status == ImageBuildStatus::Building && v.object_key.is_none() {
        return Err(Error::Conflict(format!(
            "bento {the_tag} is not uploaded (upload status {}); push it before building its image",
            v.upload_status
        )));
    }
    let reference = image_reference.map(str::trim).filter(|r| !r.is_empty());
    if let Some(r) = reference {
        if status != ImageBuildStatus::Success {
            return Err(Error::field(
                "image_reference",
                "image_reference is only given with image_build_status success",
            ));
        }
        if r.len() > 1024 || r.chars().any(char::is_whitespace) {
            return Err(Error::field(
                "image_reference",
                format!("{r:?} is not an image reference (REGISTRY/REPOSITORY:TAG)"),
            ));
        }
    }
    let reason = match status {
        ImageBuildStatus::Failed => reason
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .unwrap_or("the image builder gave no reason")
            .chars()
            .take(MAX_REASON_CHARS)
            .collect::<String>(),
        _ => String::new(),
    };
    let mut tx = svc.db.begin().await?;
    image_builds::set(&mut tx, &v.uid, status.as_str(), reference, &reason).await?;
    tx.commit().await.map_err(db_error)?;
    events::record(
        svc,
        caller,
        "bento",
        &the_tag,
        &format!("image_build_{}", status.as_str()),
    )
    .await;
    versions::find_by_uid(svc.db.pool(), &v.uid)
        .await?
        .ok_or_else(|| Error::not_found("bento", the_tag))
}

/// What is known about a version's image besides its status (empty when never built).
pub async fn image_of(svc: &Services, v: &Version) -> Result<image_builds::ImageBuild, Error> {
    Ok(
        image_builds::of(svc.db.pool(), std::slice::from_ref(&v.uid))
            .await?
            .remove(&v.uid)
            .unwrap_or_default(),
    )
}
