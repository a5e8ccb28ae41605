//! What the controller needs from an image builder, and the one that builds in this process.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use yatai_crds::BentoRequest;
use yatai_image_builder::{BuildOptions, Installer, RegistryConfig, Source};

/// Checks and builds the images of bento requests.
pub trait ImageBuilder: Send + Sync {
    /// The image a request gets (its `spec.image`, or Yatai's name for the bento).
    fn image_for(&self, request: &BentoRequest) -> String;
    /// Whether that image is in the registry already.
    fn image_exists<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<bool, String>>;
    /// Builds and pushes the image of `request`; returns the reference pods pull.
    fn build<'a>(&'a self, request: &'a BentoRequest) -> BoxFuture<'a, Result<String, String>>;
}

/// Builds in this process with `yatai-image-builder`, from the Yatai server (reporting the
/// image build status there) or from the request's `downloadUrl`.
pub struct InProcessBuilder {
    pub registry: RegistryConfig,
    /// The server bentos come from when a request has no `downloadUrl`.
    pub server: Option<yatai_client::Client>,
    pub base_image: Option<String>,
    pub insecure_registries: Vec<String>,
    pub cache_dir: Option<std::path::PathBuf>,
    /// Used when a request sets no `imageBuildTimeout`.
    pub default_timeout: Duration,
}

impl InProcessBuilder {
    fn options(&self, request: &BentoRequest) -> Result<BuildOptions, String> {
        let spec = &request.spec;
        let source = match (&spec.download_url, &self.server) {
            (Some(url), _) if !url.is_empty() => Source::Url(url.clone()),
            (_, Some(c)) => Source::Server(c.clone()),
            _ => {
                return Err(format!(
                    "BentoRequest {} has no downloadUrl and no Yatai server is configured (YATAI_ENDPOINT)",
                    spec.bento_tag
                ))
            }
        };
        let mut registry = self.registry.clone();
        if let Some(insecure) = spec.oci_registry_insecure {
            registry.secure = !insecure;
        }
        let timeout = spec
            .image_build_timeout
            .filter(|ns| *ns > 0)
            .map(|ns| Duration::from_nanos(ns as u64))
            .unwrap_or(self.default_timeout);
        Ok(BuildOptions {
            bento_tag: spec.bento_tag.clone(),
            source,
            base_image: self.base_image.clone(),
            registry,
            insecure_registries: self.insecure_registries.clone(),
            installer: Installer::detect(),
            cache_dir: self.cache_dir.clone(),
            registry_cache: true,
            python_version: None,
            timeout: Some(timeout),
            work_dir: None,
        })
    }
}

impl ImageBuilder for InProcessBuilder {
    fn image_for(&self, request: &BentoRequest) -> String {
        if let Some(i) = request.spec.image.as_ref().filter(|i| !i.is_empty()) {
            return i.clone();
        }
        let (name, version) = request
            .spec
            .bento_tag
            .split_once(':')
            .unwrap_or((&request.spec.bento_tag, ""));
        self.registry.image_reference(name, version, false)
    }

    fn image_exists<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            yatai_image_builder::image_exists(&self.registry, &self.insecure_registries, image)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn build<'a>(&'a self, request: &'a BentoRequest) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let opts = self.options(request)?;
            let tag = request.spec.bento_tag.clone();
            let report: Arc<yatai_image_builder::Reporter> =
                Arc::new(move |line: &str| tracing::info!(bento = %tag, "{line}"));
            let out = yatai_image_builder::build_and_report(&opts, report)
                .await
                .map_err(|e| e.to_string())?;
            Ok(out.in_cluster_image)
        })
    }
}
