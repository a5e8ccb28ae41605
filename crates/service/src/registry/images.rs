//! The image of a bento version: its build status (`image_build_status`, as Yatai 1.x and its
//! image builder update it), the reference of the last successful build and the reason of the
//! last failure. The API and the dashboard's "build image" follow this one rule.
//!
//! The server builds images itself when it has an [`ImageBuilder`] (`Settings::image_builder`,
//! set by `yatai serve` when a docker registry is configured): [`request_build`] marks the
//! bento `pending` and builds it in the background, reading its archives from the server's own
//! storage, with at most [`BUILD_CONCURRENCY`] builds at a time.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use yatai_domain::registry::{ImageBuildStatus, Kind};
use yatai_domain::time::now_micros;
use yatai_domain::{Action, Error};
use yatai_store::db::versions::{self, Version};
use yatai_store::db::{db_error, image_builds};

use super::{load_version, tag};
use crate::{events, Caller, Services};

/// How many images the server builds at once; more requests wait their turn (`pending`).
pub const BUILD_CONCURRENCY: usize = 2;

/// A `pending` or `building` status older than this is a build that died with its process:
/// a new build may be requested.
pub const BUILD_STALE_AFTER: Duration = Duration::from_secs(2 * 3600);

/// The message when the server has no image builder.
pub const NOT_CONFIGURED: &str = "this server does not build images: start `yatai serve` with a docker registry \
     (DOCKER_REGISTRY_SERVER, and as needed DOCKER_REGISTRY_USERNAME, DOCKER_REGISTRY_PASSWORD, \
     DOCKER_REGISTRY_SECURE, DOCKER_REGISTRY_BENTO_REPOSITORY_NAME, or the --docker-registry-* flags) \
     to enable builds, or run `yatai image build` / the image-builder operator";

/// Builds the image of a bento in this process (the server's embedding program provides it:
/// the service does not know how images are made).
pub trait ImageBuilder: Send + Sync + std::fmt::Debug {
    /// Builds and pushes the image of `job`; the image reference, or why it failed.
    fn build(&self, job: BuildJob) -> BoxFuture<'static, Result<String, String>>;
}

/// One build: the bento, and where its archives (and its models') come from.
#[derive(Debug, Clone)]
pub struct BuildJob {
    pub name: String,
    pub version: String,
    pub archives: Arc<dyn ArchiveSource>,
}

/// Writes the archive of a bento or model version of the organization to a file.
pub trait ArchiveSource: Send + Sync + std::fmt::Debug {
    fn fetch<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        version: &'a str,
        dest: &'a Path,
    ) -> BoxFuture<'a, Result<(), Error>>;
}

/// The archives of the server's own storage, as the member who requested the build may read them.
#[derive(Clone)]
struct StoredArchives {
    svc: Services,
    caller: Caller,
}

impl std::fmt::Debug for StoredArchives {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoredArchives({})", self.caller.organization.name)
    }
}

impl ArchiveSource for StoredArchives {
    fn fetch<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        version: &'a str,
        dest: &'a Path,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let v = load_version(&self.svc, &self.caller, kind, name, version).await?;
            copy_archive(&self.svc, kind, &tag(name, version), &v, dest).await
        })
    }
}

/// Writes the archive `v` serves into the file `dest` (for the image builder and the local
/// runtime), or refuses as a pull would when it has none.
pub(crate) async fn copy_archive(
    svc: &Services,
    kind: Kind,
    tag: &str,
    v: &Version,
    dest: &Path,
) -> Result<(), Error> {
    let key = super::versions::pullable(kind, tag, v)?;
    let mut reader = svc.objects.get(&key, None).await?;
    let io = |e: std::io::Error| Error::Internal(format!("{}: {e}", dest.display()));
    let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
    while let Some(chunk) = reader.stream.next().await {
        file.write_all(&chunk?).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    Ok(())
}

/// Whether this server builds images itself.
pub fn builds_enabled(svc: &Services) -> bool {
    svc.settings.image_builder.is_some()
}

/// "Build image": marks the bento `pending` and builds its image in the background (then
/// `building`, then `success` with the image or `failed` with the reason, through
/// [`set_status`]). Admins and developers; the bento must be uploaded; a build already pending
/// or building is a conflict; a server without an image builder says how to configure one.
pub async fn request_build(
    svc: &Services,
    caller: &Caller,
    name: &str,
    version: &str,
) -> Result<Version, Error> {
    caller.authorize(Action::WriteRegistry)?;
    let v = load_version(svc, caller, Kind::Bento, name, version).await?;
    let Some(builder) = svc.settings.image_builder.clone() else {
        return Err(Error::Conflict(NOT_CONFIGURED.into()));
    };
    let the_tag = tag(name, version);
    if v.object_key.is_none() {
        return Err(Error::Conflict(format!(
            "bento {the_tag} is not uploaded (upload status {}); push it before building its image",
            v.upload_status
        )));
    }
    let since = now_micros() - BUILD_STALE_AFTER.as_micros() as i64;
    let v = transition(
        svc,
        caller,
        &v,
        name,
        version,
        ImageBuildStatus::Pending,
        None,
        None,
        Some(since),
    )
    .await?;
    let (svc, caller) = (svc.clone(), caller.clone());
    let (name, version) = (name.to_string(), version.to_string());
    tokio::spawn(async move {
        let _slot = svc.image_build_slots.clone().acquire_owned().await;
        run_build(&svc, &caller, &name, &version, builder).await;
    });
    Ok(v)
}

/// One background build, its status reported through [`set_status`] as the member who asked.
async fn run_build(
    svc: &Services,
    caller: &Caller,
    name: &str,
    version: &str,
    builder: Arc<dyn ImageBuilder>,
) {
    let the_tag = tag(name, version);
    let building = ImageBuildStatus::Building;
    if let Err(e) = set_status(svc, caller, name, version, building, None, None).await {
        tracing::warn!(bento = %the_tag, "image build not started: {e}");
        return;
    }
    tracing::info!(bento = %the_tag, "image build started");
    let job = BuildJob {
        name: name.to_string(),
        version: version.to_string(),
        archives: Arc::new(StoredArchives {
            svc: svc.clone(),
            caller: caller.clone(),
        }),
    };
    // A panicking builder fails the build instead of leaving it `building`.
    let result = match tokio::spawn(builder.build(job)).await {
        Ok(r) => r,
        Err(e) => Err(format!("the image builder crashed: {e}")),
    };
    let reported = match &result {
        Ok(image) => {
            tracing::info!(bento = %the_tag, image = %image, "image build succeeded");
            let s = ImageBuildStatus::Success;
            set_status(svc, caller, name, version, s, Some(image), None).await
        }
        Err(reason) => {
            tracing::warn!(bento = %the_tag, "image build failed: {reason}");
            let s = ImageBuildStatus::Failed;
            set_status(svc, caller, name, version, s, None, Some(reason)).await
        }
    };
    if let Err(e) = reported {
        tracing::warn!(bento = %the_tag, "cannot record the result of the image build: {e}");
    }
}

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
    let v = load_version(svc, caller, Kind::Bento, name, version).await?;
    transition(
        svc,
        caller,
        &v,
        name,
        version,
        status,
        image_reference,
        reason,
        None,
    )
    .await
}

/// The rule of [`set_status`] on a loaded version; with `in_progress_since`, refused with 409
/// while a build set pending or building since then is in progress.
#[allow(clippy::too_many_arguments)]
async fn transition(
    svc: &Services,
    caller: &Caller,
    v: &Version,
    name: &str,
    version: &str,
    status: ImageBuildStatus,
    image_reference: Option<&str>,
    reason: Option<&str>,
    in_progress_since: Option<i64>,
) -> Result<Version, Error> {
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
    let done = image_builds::set_unless_in_progress(
        &mut tx,
        &v.uid,
        status.as_str(),
        reference,
        &reason,
        in_progress_since,
    )
    .await?;
    if !done {
        drop(tx);
        let now = versions::find_by_uid(svc.db.pool(), &v.uid)
            .await?
            .map(|v| v.image_build_status.to_string())
            .unwrap_or_else(|| "in progress".into());
        return Err(Error::Conflict(format!(
            "an image build of bento {the_tag} is already {now}: wait until it succeeds or fails"
        )));
    }
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
