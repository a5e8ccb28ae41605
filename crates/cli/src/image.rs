//! `yatai image build`: a bento becomes an image in a registry, in this process.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use yatai_image_builder::{BuildOptions, Installer, RegistryConfig, Source};

/// `yatai image ...`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the OCI image of a bento and push it, without a Docker daemon.
    ///
    /// The bento comes from a Yatai server (--endpoint and --api-token: streamed, progress
    /// shown, and its image build status reported) or from --download-url (http(s), s3:// with
    /// the S3_* or AWS_* settings, file:// or a path). The image is the base image (by digest),
    /// a layer with the bento's locked Python requirements installed from wheels for the base's
    /// Python and platform (nothing runs inside the image), and a layer with the bento (and its
    /// models) at /home/bentoml/bento; it serves the bento on port 3000 as user bentoml (uid
    /// 1034), like the images BentoML and Yatai build. The dependency layer is cached by the
    /// hash of (requirements, base digest, platform), on disk (--cache-dir) and in the registry
    /// itself, so a new version with the same requirements installs and uploads nothing.
    /// The same inputs give the same image digest. The tag (Yatai's scheme,
    /// yatai.NAME.VERSION) is written last: a failed build leaves no tag. Prints the image
    /// reference and its digest last.
    Build(BuildArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum InstallerArg {
    /// uv when it is on PATH, else pip
    Auto,
    Uv,
    Pip,
}

/// The `DOCKER_REGISTRY_*` settings, as flags of the same names.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Registry to push to (host[:port][/path])
    #[arg(
        long = "docker-registry-server",
        env = "DOCKER_REGISTRY_SERVER",
        value_name = "SERVER"
    )]
    server: Option<String>,
    /// The same registry as reached from inside the cluster (reported, not pushed to)
    #[arg(
        long = "docker-registry-in-cluster-server",
        env = "DOCKER_REGISTRY_IN_CLUSTER_SERVER",
        value_name = "SERVER"
    )]
    in_cluster_server: Option<String>,
    /// Registry user name
    #[arg(
        long = "docker-registry-username",
        env = "DOCKER_REGISTRY_USERNAME",
        value_name = "USER"
    )]
    username: Option<String>,
    /// Registry password (a bearer token when no user name is given)
    #[arg(
        long = "docker-registry-password",
        env = "DOCKER_REGISTRY_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    password: Option<String>,
    /// https (true) or plain http (false) [default: true]
    #[arg(
        long = "docker-registry-secure",
        env = "DOCKER_REGISTRY_SECURE",
        value_name = "BOOL"
    )]
    secure: Option<String>,
    /// Repository of the bento images [default: yatai-bentos]
    #[arg(
        long = "docker-registry-bento-repository-name",
        env = "DOCKER_REGISTRY_BENTO_REPOSITORY_NAME",
        value_name = "NAME"
    )]
    repository: Option<String>,
}

impl RegistryArgs {
    /// The registry, or `None` when no `DOCKER_REGISTRY_SERVER` is given.
    pub fn resolve_if_set(&self) -> anyhow::Result<Option<RegistryConfig>> {
        if self.server.as_deref().is_none_or(|s| s.trim().is_empty()) {
            return Ok(None);
        }
        self.resolve().map(Some)
    }

    fn resolve(&self) -> anyhow::Result<RegistryConfig> {
        let flags = [
            ("DOCKER_REGISTRY_SERVER", self.server.clone()),
            (
                "DOCKER_REGISTRY_IN_CLUSTER_SERVER",
                self.in_cluster_server.clone(),
            ),
            ("DOCKER_REGISTRY_USERNAME", self.username.clone()),
            ("DOCKER_REGISTRY_PASSWORD", self.password.clone()),
            ("DOCKER_REGISTRY_SECURE", self.secure.clone()),
            (
                "DOCKER_REGISTRY_BENTO_REPOSITORY_NAME",
                self.repository.clone(),
            ),
        ];
        RegistryConfig::from_lookup(|k| {
            flags
                .iter()
                .find(|(n, _)| *n == k)
                .and_then(|(_, v)| v.clone())
        })
        .map_err(anyhow::Error::msg)
    }
}

fn default_cache_dir() -> anyhow::Result<PathBuf> {
    Ok(std::env::var_os("HOME")
        .map(PathBuf::from)
        .context("HOME is not set: give --cache-dir or --no-cache")?
        .join(".cache/yatai/image-builder"))
}

/// What both the command and the controller build with: base image, registry, cache.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The Python base image [default: the bento's base image, else python:X.Y-slim]
    #[arg(long, env = "YATAI_BASE_IMAGE", value_name = "REF")]
    base_image: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Another registry (e.g. the base image's) to reach over plain http; repeatable
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure: Vec<String>,
    /// Local cache of dependency layers [default: ~/.cache/yatai/image-builder]
    #[arg(long, env = "YATAI_IMAGE_CACHE_DIR", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

impl TargetArgs {
    fn cache_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.cache_dir {
            Some(d) => Ok(d.clone()),
            None => default_cache_dir(),
        }
    }
}

/// Arguments of `yatai image-builder`.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// Watch only this namespace [default: every namespace]
    #[arg(long, env = "YATAI_IMAGE_BUILDER_NAMESPACE", value_name = "NAMESPACE")]
    namespace: Option<String>,
    /// The Yatai server bentos come from when a BentoRequest has no downloadUrl (the build
    /// status is reported there)
    #[arg(long, env = "YATAI_ENDPOINT", value_name = "URL")]
    endpoint: Option<String>,
    /// API token for --endpoint
    #[arg(
        long,
        env = "YATAI_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    api_token: Option<String>,
    #[command(flatten)]
    target: TargetArgs,
    /// Build timeout when a BentoRequest sets no imageBuildTimeout, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    timeout: u64,
    /// Build each image in a Kubernetes Job (in the BentoRequest's namespace) running this
    /// binary's `yatai image build`, instead of in this process
    #[arg(long, env = "YATAI_IMAGE_BUILDER_JOB", default_value_t = false)]
    build_in_job: bool,
    /// The image of this very binary, which build Jobs run (required with --build-in-job)
    #[arg(long, env = "YATAI_IMAGE_BUILDER_JOB_IMAGE", value_name = "REF")]
    job_image: Option<String>,
    /// A Secret in the BentoRequest's namespace whose key DOCKER_REGISTRY_PASSWORD build Jobs read
    #[arg(
        long,
        env = "YATAI_IMAGE_BUILDER_JOB_REGISTRY_SECRET",
        value_name = "NAME"
    )]
    job_registry_secret: Option<String>,
    /// A Secret in the BentoRequest's namespace whose key YATAI_API_TOKEN build Jobs read
    #[arg(
        long,
        env = "YATAI_IMAGE_BUILDER_JOB_TOKEN_SECRET",
        value_name = "NAME"
    )]
    job_token_secret: Option<String>,
    #[command(flatten)]
    leader: crate::operator::LeaderArgs,
}

impl ControllerArgs {
    /// The Job settings with --build-in-job, which needs --job-image.
    fn job_settings(&self) -> anyhow::Result<Option<yatai_image_builder_controller::JobSettings>> {
        if !self.build_in_job {
            return Ok(None);
        }
        let image = self
            .job_image
            .clone()
            .filter(|i| !i.trim().is_empty())
            .context(
                "--build-in-job needs --job-image (YATAI_IMAGE_BUILDER_JOB_IMAGE): the image of \
                 this yatai binary, which the build Jobs run",
            )?;
        Ok(Some(yatai_image_builder_controller::JobSettings {
            image,
            registry: self.target.registry.resolve()?,
            registry_secret: self.job_registry_secret.clone(),
            endpoint: self.endpoint.clone(),
            token_secret: self.job_token_secret.clone(),
            base_image: self.target.base_image.clone(),
            insecure_registries: self.target.insecure.clone(),
            default_timeout_secs: self.timeout as i64,
        }))
    }
}

/// `yatai image-builder`: the controller, with the kubeconfig or in-cluster config.
pub async fn controller(args: ControllerArgs) -> anyhow::Result<()> {
    yatai_image_builder::install_crypto_provider();
    let job = args.job_settings()?;
    let server = match &args.endpoint {
        Some(e) => Some(
            yatai_client::Client::new(e, args.api_token.as_deref()).map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    let builder = yatai_image_builder_controller::InProcessBuilder {
        registry: args.target.registry.resolve()?,
        server,
        base_image: args.target.base_image.clone(),
        insecure_registries: args.target.insecure.clone(),
        cache_dir: Some(args.target.cache_dir()?),
        default_timeout: Duration::from_secs(args.timeout),
    };
    let client = kube::Client::try_default().await.context(
        "cannot reach Kubernetes: run inside a cluster or with a kubeconfig (KUBECONFIG or ~/.kube/config)",
    )?;
    tracing::info!(namespace = ?args.namespace, "image-builder controller started");
    let settings = args.leader.settings(
        &client,
        yatai_deployment_operator::leader::IMAGE_BUILDER_LEASE,
    );
    crate::operator::lead(
        &client,
        settings,
        yatai_image_builder_controller::run(client.clone(), Arc::new(builder), args.namespace, job),
    )
    .await
}

/// Arguments of `yatai image build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The bento, NAME:VERSION
    #[arg(value_name = "BENTO_TAG")]
    bento_tag: String,
    /// URL of the Yatai server holding the bento
    #[arg(
        long,
        env = "YATAI_ENDPOINT",
        value_name = "URL",
        conflicts_with = "download_url"
    )]
    endpoint: Option<String>,
    /// API token for --endpoint
    #[arg(
        long,
        env = "YATAI_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    api_token: Option<String>,
    /// Get the bento archive from this URL instead (http(s)://, s3://BUCKET/KEY, file:// or a path)
    #[arg(long, value_name = "URL")]
    download_url: Option<String>,
    #[command(flatten)]
    target: TargetArgs,
    /// What installs the wheels
    #[arg(long, value_enum, default_value_t = InstallerArg::Auto)]
    installer: InstallerArg,
    /// Use no local cache (a fresh builder, as a build pod is)
    #[arg(long)]
    no_cache: bool,
    /// Neither read nor write the copy of the dependency cache kept in the registry
    #[arg(long)]
    no_registry_cache: bool,
    /// Python major.minor to install for, when the base has several
    #[arg(long, value_name = "X.Y")]
    python_version: Option<String>,
    /// Give up after this many seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    timeout: u64,
    /// Do not report the image build status to the Yatai server
    #[arg(long)]
    no_report_status: bool,
}

pub async fn run(cmd: ImageCommand) -> anyhow::Result<()> {
    match cmd {
        ImageCommand::Build(args) => build(args).await,
    }
}

async fn build(args: BuildArgs) -> anyhow::Result<()> {
    let registry = args.target.registry.resolve()?;
    let source = match (&args.endpoint, &args.download_url) {
        (Some(endpoint), None) => Source::Server(
            yatai_client::Client::new(endpoint, args.api_token.as_deref())
                .map_err(anyhow::Error::msg)?,
        ),
        (None, Some(url)) => Source::Url(url.clone()),
        _ => anyhow::bail!(
            "say where the bento comes from: --endpoint URL --api-token TOKEN (a Yatai server), or --download-url URL"
        ),
    };
    let installer = match args.installer {
        InstallerArg::Auto => Installer::detect(),
        InstallerArg::Uv => Installer::Uv,
        InstallerArg::Pip => Installer::Pip,
    };
    let cache_dir = if args.no_cache {
        None
    } else {
        Some(args.target.cache_dir()?)
    };
    let opts = BuildOptions {
        bento_tag: args.bento_tag.clone(),
        source,
        base_image: args.target.base_image.clone(),
        registry,
        insecure_registries: args.target.insecure.clone(),
        installer,
        cache_dir,
        registry_cache: !args.no_registry_cache,
        python_version: args.python_version.clone(),
        timeout: Some(Duration::from_secs(args.timeout)),
        work_dir: None,
    };
    let report: Arc<yatai_image_builder::Reporter> = Arc::new(|line: &str| eprintln!("{line}"));
    let out = if args.no_report_status {
        yatai_image_builder::build(&opts, report).await
    } else {
        yatai_image_builder::build_and_report(&opts, report).await
    }?;
    if out.in_cluster_image != out.image {
        println!("in-cluster image: {}", out.in_cluster_image);
    }
    println!("image: {}", out.image);
    println!("digest: {}", out.digest);
    Ok(())
}

/// The image builder of `yatai serve` (when a registry is configured): builds in the server's
/// process, reading the archives from the server's own storage.
#[derive(Debug)]
pub struct InServerBuilder {
    pub registry: RegistryConfig,
    pub base_image: Option<String>,
    pub timeout: Duration,
}

type Boxed<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

impl yatai_service::registry::images::ImageBuilder for InServerBuilder {
    fn build(
        &self,
        job: yatai_service::registry::images::BuildJob,
    ) -> Boxed<'static, Result<String, String>> {
        let tag = format!("{}:{}", job.name, job.version);
        let opts = BuildOptions {
            bento_tag: tag.clone(),
            source: Source::Fetcher(Arc::new(StorageFetch(job.archives))),
            base_image: self.base_image.clone(),
            registry: self.registry.clone(),
            insecure_registries: Vec::new(),
            installer: Installer::detect(),
            // No local state: the registry keeps the dependency cache.
            cache_dir: None,
            registry_cache: true,
            python_version: None,
            timeout: Some(self.timeout),
            work_dir: None,
        };
        Box::pin(async move {
            let bento = tag.clone();
            let report: Arc<yatai_image_builder::Reporter> =
                Arc::new(move |line: &str| tracing::info!(bento = %bento, "{line}"));
            yatai_image_builder::build(&opts, report)
                .await
                .map(|out| out.image)
                .map_err(|e| e.to_string())
        })
    }
}

/// The server's storage as the image builder's source of archives.
#[derive(Debug)]
pub struct StorageFetch(pub Arc<dyn yatai_service::registry::images::ArchiveSource>);

impl yatai_image_builder::Fetch for StorageFetch {
    fn fetch<'a>(
        &'a self,
        kind: yatai_client::Kind,
        name: &'a str,
        version: &'a str,
        dest: &'a std::path::Path,
    ) -> Boxed<'a, Result<(), yatai_image_builder::BuildError>> {
        use yatai_domain::Error;
        use yatai_image_builder::BuildError;
        let kind = match kind {
            yatai_client::Kind::Bento => yatai_domain::registry::Kind::Bento,
            yatai_client::Kind::Model => yatai_domain::registry::Kind::Model,
        };
        Box::pin(async move {
            self.0
                .fetch(kind, name, version, dest)
                .await
                .map_err(|e| match e {
                    Error::NotFound(m) => BuildError::NotFound(m),
                    Error::Conflict(m) => BuildError::NotUploaded(m),
                    other => BuildError::Source(format!("reading {name}:{version}: {other}")),
                })
        })
    }
}
