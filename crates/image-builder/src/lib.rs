//! A daemonless, in-process image builder for BentoML bentos.
//!
//! A bento becomes an OCI image the way `ko`, `jib` and `crane append` make images: nothing runs
//! inside the image and no daemon is involved.
//! - The **base** (a Python image) is used by digest; its layers are never unpacked except to
//!   read the Python version, the C library and `/etc/passwd` when a dependency layer must be
//!   made, and they reach the target repository by mount or copy, never rebuilt.
//! - The **dependency layer** is the bento's locked requirements installed from wheels for the
//!   base's Python and platform (`pip`/`uv` with `--target`), laid out as BentoML's images do
//!   (`/app/.venv`). It is cached by the hash of (requirements, base digest, platform) on disk
//!   and in the registry itself, so a fresh builder reuses it without installing or uploading.
//! - The **bento layer** holds the bento at `/home/bentoml/bento`, with the models it uses.
//! - Layers and config are deterministic: the same inputs give the same image digest.
//! - The tag is written last, once every blob is in the registry: a failed build leaves no tag.
//!
//! Kubernetes is not in here: the `image-builder` controller and the server call [`build`].

pub mod bento;
pub mod deps;
pub mod image;
pub mod layer;
pub mod naming;
pub mod registry;
pub mod source;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oci_client::{Reference, RegistryOperation};
use yatai_client::types::ImageBuildStatus;
use yatai_client::Kind;

pub use deps::Installer;
use layer::Layer;
pub use naming::{image_tag, RegistryConfig};
use registry::Registry;
pub use source::{Fetch, Source};

/// Receives one line of progress at a time.
pub type Reporter = dyn Fn(&str) + Send + Sync;

/// Why a build failed; each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Bad options.
    #[error("{0}")]
    Config(String),
    /// The bento (or a model it uses) does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The bento exists but its archive is not uploaded.
    #[error("{0}")]
    NotUploaded(String),
    /// The archive could not be fetched.
    #[error("{0}")]
    Source(String),
    /// The archive is not a bento.
    #[error("not a usable bento archive: {0}")]
    BadArchive(String),
    /// The registry does not answer.
    #[error("cannot reach the registry {registry}: {detail} (check DOCKER_REGISTRY_SERVER, DOCKER_REGISTRY_SECURE and that the registry runs)")]
    RegistryUnreachable { registry: String, detail: String },
    /// The registry refused the credentials.
    #[error("the registry {registry} refused the credentials: {detail} (check DOCKER_REGISTRY_USERNAME and DOCKER_REGISTRY_PASSWORD)")]
    RegistryAuth { registry: String, detail: String },
    /// Anything else the registry said.
    #[error("{0}")]
    Registry(String),
    /// A requirement has no installable wheel for the base.
    #[error("cannot install requirement {package}: {detail}")]
    MissingWheel { package: String, detail: String },
    /// The installer failed otherwise.
    #[error("{0}")]
    Install(String),
    /// The base image is not usable.
    #[error("base image: {0}")]
    Base(String),
    /// The build took longer than allowed.
    #[error("the build did not finish within {}s (raise --timeout)", .0.as_secs())]
    Timeout(Duration),
    /// Local disk trouble.
    #[error("{0}")]
    Io(String),
}

/// Installs the TLS crypto provider the HTTP clients use (once; later calls do nothing).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// What to build and where to push it.
#[derive(Clone)]
pub struct BuildOptions {
    /// `name:version` of the bento.
    pub bento_tag: String,
    pub source: Source,
    /// The Python base image, by tag or digest; `None`: the one the bento names, else
    /// `python:X.Y-slim` for the bento's Python.
    pub base_image: Option<String>,
    pub registry: RegistryConfig,
    /// Other registries (e.g. the base's) spoken to over plain http.
    pub insecure_registries: Vec<String>,
    pub installer: Installer,
    /// The local cache of dependency layers; `None` for a builder without local state.
    pub cache_dir: Option<PathBuf>,
    /// Whether to use and fill the registry's copy of the dependency cache.
    pub registry_cache: bool,
    /// The Python `major.minor` to install for, when the base has several.
    pub python_version: Option<String>,
    /// The whole build must end within this time.
    pub timeout: Option<Duration>,
    /// Where work files go (a temporary directory when `None`).
    pub work_dir: Option<PathBuf>,
}

/// How one layer got into the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerReport {
    pub what: String,
    pub digest: String,
    pub size: u64,
    /// `pushed`, `already in the registry`, `mounted from REPO`, `copied from REPO`.
    pub how: String,
}

/// The result of a build.
#[derive(Debug, Clone)]
pub struct BuildOutput {
    /// `server/repository:tag`.
    pub image: String,
    /// The same through the in-cluster server, when one is configured.
    pub in_cluster_image: String,
    /// The manifest digest.
    pub digest: String,
    /// Whether the dependency layer came from a cache (no install).
    pub deps_cached: bool,
    pub layers: Vec<LayerReport>,
}

impl BuildOutput {
    /// `image@digest`.
    pub fn pinned(&self) -> String {
        let repo = self
            .image
            .rsplit_once(':')
            .map(|(r, _)| r)
            .unwrap_or(&self.image);
        format!("{repo}@{}", self.digest)
    }
}

fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / 1048576.0)
}

/// Builds the image of `opts.bento_tag` and pushes it; see the crate documentation.
pub async fn build(opts: &BuildOptions, report: Arc<Reporter>) -> Result<BuildOutput, BuildError> {
    match opts.timeout {
        Some(t) => tokio::time::timeout(t, build_inner(opts, report))
            .await
            .map_err(|_| BuildError::Timeout(t))?,
        None => build_inner(opts, report).await,
    }
}

/// [`build`], reporting `building`, then `success` with the image or `failed` with the reason
/// to the Yatai server the bento comes from (nothing is reported for other sources).
pub async fn build_and_report(
    opts: &BuildOptions,
    report: Arc<Reporter>,
) -> Result<BuildOutput, BuildError> {
    let (name, version) = split(&opts.bento_tag)?;
    let server = opts.source.server().cloned();
    if let Some(c) = &server {
        if let Err(e) = c
            .update_image_build_status(name, version, ImageBuildStatus::Building, None, None)
            .await
        {
            // The bento must exist to be built: say so rather than failing later.
            return Err(match e {
                yatai_client::ClientError::NotFound { message } => BuildError::NotFound(message),
                yatai_client::ClientError::Api {
                    status: 409,
                    message,
                } => BuildError::NotUploaded(message),
                other => {
                    BuildError::Source(format!("cannot report the build to the server: {other}"))
                }
            });
        }
    }
    let result = build(opts, report.clone()).await;
    if let Some(c) = &server {
        let sent = match &result {
            Ok(out) => {
                c.update_image_build_status(
                    name,
                    version,
                    ImageBuildStatus::Success,
                    Some(&out.image),
                    None,
                )
                .await
            }
            Err(e) => {
                c.update_image_build_status(
                    name,
                    version,
                    ImageBuildStatus::Failed,
                    None,
                    Some(&e.to_string()),
                )
                .await
            }
        };
        if let Err(e) = sent {
            report(&format!(
                "warning: could not report the build status to the server: {e}"
            ));
        }
    }
    result
}

/// Whether `image` (a reference with tag or digest) is in its registry.
pub async fn image_exists(
    registry: &RegistryConfig,
    insecure: &[String],
    image: &str,
) -> Result<bool, BuildError> {
    let r = parse_ref(image, "the image")?;
    let reg = Registry::new(registry, insecure);
    Ok(reg.manifest_raw(&r).await?.is_some())
}

fn split(tag: &str) -> Result<(&str, &str), BuildError> {
    yatai_client::split_tag(tag).map_err(|e| BuildError::Config(e.to_string()))
}

fn parse_ref(s: &str, what: &str) -> Result<Reference, BuildError> {
    Reference::from_str(s)
        .map_err(|e| BuildError::Config(format!("{what} {s:?} is not an image reference: {e}")))
}

async fn build_inner(
    opts: &BuildOptions,
    report: Arc<Reporter>,
) -> Result<BuildOutput, BuildError> {
    let started = Instant::now();
    let (name, version) = split(&opts.bento_tag)?;
    let image = opts.registry.image_reference(name, version, false);
    let target = parse_ref(&image, "the target image")?;
    let reg = Registry::new(&opts.registry, &opts.insecure_registries);

    let tmp;
    let work: PathBuf = match &opts.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d)
                .map_err(|e| BuildError::Io(format!("{}: {e}", d.display())))?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()
                .map_err(|e| BuildError::Io(format!("temporary directory: {e}")))?;
            tmp.path().to_path_buf()
        }
    };

    // 1. The registry first: a refused login or a registry that is down fails in seconds,
    //    before anything is downloaded.
    report(&format!("pushing to {image}"));
    reg.login(&target, RegistryOperation::Push).await?;
    reg.has_blob(&target, image::EMPTY_DIGEST).await?;

    // 2. The bento.
    let bento_dir = work.join("bento");
    let _ = std::fs::remove_dir_all(&bento_dir);
    std::fs::create_dir_all(&bento_dir).map_err(|e| BuildError::Io(e.to_string()))?;
    let archive = match &opts.source {
        Source::Server(_) | Source::Fetcher(_) => {
            let dest = work.join("bento.archive");
            opts.source
                .fetch_named(Kind::Bento, name, version, &dest, report.clone())
                .await?;
            dest
        }
        Source::Url(url) => {
            source::from_url(url, &work.join("bento.archive"), report.clone()).await?
        }
    };
    let what = format!("bento {name}:{version}");
    {
        let (archive, bento_dir, what) = (archive.clone(), bento_dir.clone(), what.clone());
        tokio::task::spawn_blocking(move || bento::extract(&archive, &bento_dir, &what))
            .await
            .map_err(|e| BuildError::Io(e.to_string()))??;
    }
    let manifest = bento::read_manifest(&bento_dir, &what)?;
    if let Some(tag) = manifest.tag() {
        if tag != opts.bento_tag {
            return Err(BuildError::BadArchive(format!(
                "the archive holds bento {tag}, not {}",
                opts.bento_tag
            )));
        }
    }
    fetch_models(opts, &manifest, &bento_dir, &work, report.clone()).await?;

    // The base, by digest.
    let base_name = match &opts.base_image {
        Some(b) => b.clone(),
        None => manifest.base_image().map(str::to_owned).unwrap_or_else(|| {
            format!(
                "python:{}-slim",
                manifest.python_version().unwrap_or("3.11")
            )
        }),
    };
    let base_given = parse_ref(&base_name, "the base image")?;
    let (base_manifest, base_digest, base_config) =
        reg.pull_manifest_and_config(&base_given).await?;
    let base = parse_ref(
        &format!(
            "{}/{}@{}",
            base_given.registry(),
            base_given.repository(),
            base_digest
        ),
        "the base image",
    )?;
    let base_cfg: serde_json::Value = serde_json::from_str(&base_config)
        .map_err(|e| BuildError::Base(format!("its config is not JSON: {e}")))?;
    let arch = base_cfg["architecture"]
        .as_str()
        .unwrap_or("amd64")
        .to_string();
    let os = base_cfg["os"].as_str().unwrap_or("linux").to_string();
    if os != "linux" {
        return Err(BuildError::Base(format!(
            "{base_name} is a {os} image; bentos need a linux one"
        )));
    }
    report(&format!("base image {base_name} is {base}"));

    // 3. The dependency layer: from a cache, or installed now.
    let (requirements, req_source) = deps::requirements(&manifest, &bento_dir)?;
    let platform_name = format!("{os}/{arch}");
    let python_ask = opts.python_version.clone().unwrap_or_default();
    let key = deps::cache_key(
        &requirements,
        &base_digest,
        &platform_name,
        &python_ask,
        opts.installer,
    );
    let cache_ref = parse_ref(
        &format!(
            "{}/{}:yatai-deps.{}",
            target.registry(),
            target.repository(),
            &key[..40]
        ),
        "the dependency cache",
    )?;
    report(&format!(
        "requirements from {req_source} ({} lines), dependency cache key {}",
        requirements.lines().count(),
        &key[..16]
    ));
    let mut layers_report = Vec::new();
    let (deps_layer, deps_cached, deps_in_registry) = dependency_layer(
        opts,
        &reg,
        &cache_ref,
        &target,
        &base,
        &base_manifest,
        &key,
        &requirements,
        &arch,
        &work,
        report.clone(),
    )
    .await?;

    // 4. The bento layer.
    let bento_layer = {
        let (dir, out) = (bento_dir.clone(), work.join("bento-layer.tar.gz"));
        tokio::task::spawn_blocking(move || bento_layer(&dir, &out))
            .await
            .map_err(|e| BuildError::Io(e.to_string()))??
    };
    report(&format!(
        "bento layer {} ({})",
        short(&bento_layer.digest),
        mib(bento_layer.size)
    ));

    // 5. Blobs into the target repository: base layers by mount or copy, ours by upload.
    let mut layer_descs = Vec::new();
    for (i, l) in base_manifest.layers.iter().enumerate() {
        let size = l.size.max(0) as u64;
        let how = if reg.has_blob(&target, &l.digest).await? {
            "already in the registry".to_string()
        } else if reg.mount(&target, &base, &l.digest).await {
            format!("mounted from {}", base.repository())
        } else {
            let file = work.join(format!("base-{i}.tar.gz"));
            if !file.exists() {
                reg.pull_blob_to(&base, &l.digest, &file).await?;
            }
            reg.push_blob_file(&target, &file, &l.digest, size).await?;
            format!("copied from {}", base.registry())
        };
        layers_report.push(LayerReport {
            what: format!("base layer {}", i + 1),
            digest: l.digest.clone(),
            size,
            how,
        });
        layer_descs.push(image::Descriptor {
            media_type: image::oci_layer_type(&l.media_type),
            digest: l.digest.clone(),
            size,
        });
    }
    let deps_how = if deps_in_registry || reg.has_blob(&target, &deps_layer.digest).await? {
        "already in the registry".to_string()
    } else {
        reg.push_blob_file(
            &target,
            &deps_layer.path,
            &deps_layer.digest,
            deps_layer.size,
        )
        .await?;
        "pushed".to_string()
    };
    if opts.registry_cache && !deps_in_registry {
        push_cache_entry(&reg, &cache_ref, &deps_layer, &key, &arch, &os).await?;
    }
    layers_report.push(LayerReport {
        what: format!(
            "dependency layer ({})",
            if deps_cached {
                "cached, not installed"
            } else {
                "installed now"
            }
        ),
        digest: deps_layer.digest.clone(),
        size: deps_layer.size,
        how: deps_how,
    });
    layer_descs.push(image::Descriptor::of(&deps_layer));
    let bento_how = if reg.has_blob(&target, &bento_layer.digest).await? {
        "already in the registry".to_string()
    } else {
        reg.push_blob_file(
            &target,
            &bento_layer.path,
            &bento_layer.digest,
            bento_layer.size,
        )
        .await?;
        "pushed".to_string()
    };
    layers_report.push(LayerReport {
        what: "bento layer".into(),
        digest: bento_layer.digest.clone(),
        size: bento_layer.size,
        how: bento_how,
    });
    layer_descs.push(image::Descriptor::of(&bento_layer));

    // 6. Config and manifest; the tag is the very last write.
    let created = manifest
        .creation_time
        .clone()
        .flatten()
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into());
    let config = image::config(&image::ConfigInput {
        base_config: base_config.as_bytes(),
        bento_name: name,
        bento_version: version,
        created: &created,
        deps: &deps_layer,
        bento: &bento_layer,
        deps_note: &format!("{req_source}, cache key {}", &key[..16]),
        extra_labels: &[],
    })
    .map_err(BuildError::Base)?;
    let config_desc = image::Descriptor {
        media_type: image::CONFIG_MEDIA_TYPE.into(),
        digest: image::digest(&config),
        size: config.len() as u64,
    };
    if !reg.has_blob(&target, &config_desc.digest).await? {
        reg.push_blob_bytes(&target, config, &config_desc.digest)
            .await?;
    }
    let body = image::manifest(
        &config_desc,
        &layer_descs,
        &[
            ("org.opencontainers.image.base.digest", base_digest.as_str()),
            ("org.opencontainers.image.base.name", base_name.as_str()),
        ],
    );
    let digest = image::digest(&body);
    reg.push_manifest(&target, body, image::MANIFEST_MEDIA_TYPE)
        .await?;
    for l in &layers_report {
        report(&format!(
            "{}: {} ({}) {}",
            l.what,
            short(&l.digest),
            mib(l.size),
            l.how
        ));
    }
    report(&format!(
        "built {image} in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(BuildOutput {
        in_cluster_image: opts.registry.image_reference(name, version, true),
        image,
        digest,
        deps_cached,
        layers: layers_report,
    })
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}

/// Adds the models the bento uses but does not carry (bentoml 1.2+ bentos reference them),
/// from the server, under `models/NAME/VERSION` where bentoml looks for them.
async fn fetch_models(
    opts: &BuildOptions,
    manifest: &yatai_domain::manifest::BentoManifest,
    bento_dir: &Path,
    work: &Path,
    report: Arc<Reporter>,
) -> Result<(), BuildError> {
    for tag in manifest.model_tags() {
        let Some((model, mversion)) = tag.split_once(':') else {
            continue;
        };
        let dir = bento_dir.join("models").join(model).join(mversion);
        if dir.join("model.yaml").exists() {
            continue;
        }
        if !opts.source.has_models() {
            return Err(BuildError::Source(format!(
                "the bento uses model {tag}, which it does not carry; build from the Yatai server \
                 (--endpoint) so that the model can be fetched"
            )));
        }
        let archive = work.join(format!("model-{model}-{mversion}.archive"));
        opts.source
            .fetch_named(Kind::Model, model, mversion, &archive, report.clone())
            .await?;
        std::fs::create_dir_all(&dir).map_err(|e| BuildError::Io(e.to_string()))?;
        let (a, d, w) = (archive.clone(), dir.clone(), format!("model {tag}"));
        tokio::task::spawn_blocking(move || bento::extract(&a, &d, &w))
            .await
            .map_err(|e| BuildError::Io(e.to_string()))??;
        let latest = bento_dir.join("models").join(model).join("latest");
        if !latest.exists() {
            std::fs::write(&latest, mversion).map_err(|e| BuildError::Io(e.to_string()))?;
        }
        let _ = std::fs::remove_file(&archive);
    }
    Ok(())
}

/// The bento layer: `/home/bentoml/bento` owned by `bentoml`, the entrypoint executable.
fn bento_layer(dir: &Path, out: &Path) -> Result<Layer, BuildError> {
    let io = |e: std::io::Error| BuildError::Io(format!("bento layer: {e}"));
    let bento = image::BENTO_PATH.trim_start_matches('/');
    let mut entries = vec![
        layer::Entry::dir("home", 0o755, 0),
        layer::Entry::dir("home/bentoml", 0o755, deps::BENTO_UID),
        layer::Entry::dir(bento, 0o755, deps::BENTO_UID),
    ];
    for mut e in layer::tree(dir, bento, deps::BENTO_UID).map_err(io)? {
        // BentoML's Dockerfile makes the entrypoint executable (bentoml 1.0 writes it 0644).
        if e.path == format!("{bento}/env/docker/entrypoint.sh") {
            e.mode = 0o755;
        }
        entries.push(e);
    }
    layer::write(entries, out).map_err(io)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CacheMeta {
    digest: String,
    diff_id: String,
    size: u64,
}

/// Finds the dependency layer in the local cache, then in the registry's; builds it otherwise.
/// Returns the layer, whether it came from a cache, and whether the registry has it already.
#[allow(clippy::too_many_arguments)]
async fn dependency_layer(
    opts: &BuildOptions,
    reg: &Registry,
    cache_ref: &Reference,
    target: &Reference,
    base: &Reference,
    base_manifest: &oci_client::manifest::OciImageManifest,
    key: &str,
    requirements: &str,
    arch: &str,
    work: &Path,
    report: Arc<Reporter>,
) -> Result<(Layer, bool, bool), BuildError> {
    let local = opts.cache_dir.as_ref().map(|d| d.join("deps").join(key));
    if let Some(dir) = &local {
        if let Ok(text) = std::fs::read(dir.join("meta.json")) {
            if let Ok(meta) = serde_json::from_slice::<CacheMeta>(&text) {
                let path = dir.join("layer.tar.gz");
                if path
                    .metadata()
                    .map(|m| m.len() == meta.size)
                    .unwrap_or(false)
                {
                    report(&format!(
                        "dependency layer {} reused from the local cache",
                        short(&meta.digest)
                    ));
                    let layer = Layer {
                        path,
                        digest: meta.digest,
                        diff_id: meta.diff_id,
                        size: meta.size,
                    };
                    return Ok((layer, true, false));
                }
            }
        }
    }
    if opts.registry_cache {
        if let Some(layer) = registry_cache_lookup(reg, cache_ref, target, key).await? {
            report(&format!(
                "dependency layer {} reused from the registry ({}): nothing to install or upload",
                short(&layer.digest),
                cache_ref.tag().unwrap_or_default()
            ));
            return Ok((layer, true, true));
        }
    }

    // Not cached: read the base, install, lay out.
    report("dependency layer not cached: reading the base image's Python, C library and users");
    let mut files = Vec::new();
    for (i, l) in base_manifest.layers.iter().enumerate() {
        if !l.media_type.contains("gzip") {
            return Err(BuildError::Base(format!(
                "layer {} of the base is {}; only gzip layers can be read",
                i + 1,
                l.media_type
            )));
        }
        let file = work.join(format!("base-{i}.tar.gz"));
        reg.pull_blob_to(base, &l.digest, &file).await?;
        files.push(file);
    }
    let facts = tokio::task::spawn_blocking(move || deps::scan_base(&files))
        .await
        .map_err(|e| BuildError::Io(e.to_string()))??;
    if facts.musl {
        return Err(BuildError::Base(
            "it uses musl (Alpine); manylinux wheels need a glibc base such as Debian".into(),
        ));
    }
    let python = match (&opts.python_version, &facts.python_version) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => p.clone(),
        (None, None) => {
            return Err(BuildError::Base(
                "no python3.X in /usr/local/bin or /usr/bin: use a Python base image".into(),
            ))
        }
    };
    let glibc = facts.glibc.unwrap_or_else(|| {
        report("warning: could not tell the base's glibc version; assuming 2.17 (manylinux2014)");
        (2, 17)
    });
    let platform = deps::Platform {
        arch: arch.to_string(),
        glibc,
    };
    let target_dir = work.join("site-packages");
    let _ = std::fs::remove_dir_all(&target_dir);
    std::fs::create_dir_all(&target_dir).map_err(|e| BuildError::Io(e.to_string()))?;
    let req_file = work.join("requirements.txt");
    std::fs::write(&req_file, requirements).map_err(|e| BuildError::Io(e.to_string()))?;
    report(&format!(
        "installing the requirements with {} for Python {python} on {} (wheels only, nothing runs in the image)",
        opts.installer.name(),
        platform.describe()
    ));
    let t = Instant::now();
    deps::install(opts.installer, &req_file, &target_dir, &python, &platform).await?;
    report(&format!("installed in {:.1}s", t.elapsed().as_secs_f64()));
    let out_dir = local.clone().unwrap_or_else(|| work.join("deps"));
    let tmp_dir = out_dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp_dir);
    std::fs::create_dir_all(&tmp_dir)
        .map_err(|e| BuildError::Io(format!("{}: {e}", tmp_dir.display())))?;
    let layer = {
        let (t, out) = (target_dir.clone(), tmp_dir.join("layer.tar.gz"));
        tokio::task::spawn_blocking(move || -> Result<Layer, BuildError> {
            let entries = deps::venv_entries(&t, &facts)?;
            layer::write(entries, &out)
                .map_err(|e| BuildError::Io(format!("dependency layer: {e}")))
        })
        .await
        .map_err(|e| BuildError::Io(e.to_string()))??
    };
    let meta = CacheMeta {
        digest: layer.digest.clone(),
        diff_id: layer.diff_id.clone(),
        size: layer.size,
    };
    std::fs::write(
        tmp_dir.join("meta.json"),
        serde_json::to_vec(&meta).unwrap_or_default(),
    )
    .map_err(|e| BuildError::Io(e.to_string()))?;
    // Whole or not at all: a crash mid-write leaves only the .partial directory.
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::rename(&tmp_dir, &out_dir)
        .map_err(|e| BuildError::Io(format!("{}: {e}", out_dir.display())))?;
    let layer = Layer {
        path: out_dir.join("layer.tar.gz"),
        ..layer
    };
    report(&format!(
        "dependency layer {} ({})",
        short(&layer.digest),
        mib(layer.size)
    ));
    Ok((layer, false, false))
}

/// The registry's copy of the dependency cache: a small image under `yatai-deps.KEY` whose one
/// layer is the dependency layer and whose config names its diff_id.
async fn registry_cache_lookup(
    reg: &Registry,
    cache_ref: &Reference,
    target: &Reference,
    key: &str,
) -> Result<Option<Layer>, BuildError> {
    let Some(raw) = reg.manifest_raw(cache_ref).await? else {
        return Ok(None);
    };
    let m: serde_json::Value = match serde_json::from_slice(&raw) {
        Ok(v) => v,
        Err(_) => return Ok(None),
    };
    if m["annotations"]["ai.yatai.deps.key"].as_str() != Some(key) {
        return Ok(None);
    }
    let (Some(digest), Some(size), Some(config_digest)) = (
        m["layers"][0]["digest"].as_str(),
        m["layers"][0]["size"].as_u64(),
        m["config"]["digest"].as_str(),
    ) else {
        return Ok(None);
    };
    if !reg.has_blob(target, digest).await? {
        return Ok(None);
    }
    let config: serde_json::Value =
        serde_json::from_slice(&reg.pull_blob_bytes(cache_ref, config_digest).await?)
            .unwrap_or_default();
    let Some(diff_id) = config["rootfs"]["diff_ids"][0].as_str() else {
        return Ok(None);
    };
    Ok(Some(Layer {
        path: PathBuf::new(),
        digest: digest.into(),
        diff_id: diff_id.into(),
        size,
    }))
}

async fn push_cache_entry(
    reg: &Registry,
    cache_ref: &Reference,
    layer: &Layer,
    key: &str,
    arch: &str,
    os: &str,
) -> Result<(), BuildError> {
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": os,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
    }))
    .unwrap_or_default();
    let config_desc = image::Descriptor {
        media_type: image::CONFIG_MEDIA_TYPE.into(),
        digest: image::digest(&config),
        size: config.len() as u64,
    };
    if !reg.has_blob(cache_ref, &config_desc.digest).await? {
        reg.push_blob_bytes(cache_ref, config, &config_desc.digest)
            .await?;
    }
    let body = image::manifest(
        &config_desc,
        &[image::Descriptor::of(layer)],
        &[("ai.yatai.deps.key", key)],
    );
    reg.push_manifest(cache_ref, body, image::MANIFEST_MEDIA_TYPE)
        .await
}
