//! `yatai deployment-operator`, `yatai deployment-operator render` and `yatai convert`: flags and their mapping to
//! the operator's configuration.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use yatai_deployment_operator::config::{Config, Images, IngressConfig, TlsMode, YataiIdentity};

/// Arguments of `yatai deployment-operator`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DeploymentOperatorArgs {
    #[command(subcommand)]
    pub command: Option<DeploymentOperatorCommand>,
    #[command(flatten)]
    pub objects: ObjectArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum DeploymentOperatorCommand {
    /// Print the objects the operator would apply for the BentoDeployments in a file, like `helm template`.
    ///
    /// Takes any Bento objects in the same file as already present. Accepts every BentoDeployment version
    /// (older ones are converted first). Prints a YAML stream; nothing is sent to a cluster.
    Render(RenderArgs),
}

/// Arguments of `yatai deployment-operator render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// YAML file with BentoDeployments and the Bentos they name (`-` for standard input)
    #[arg(long, short, value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub objects: ObjectArgs,
}

/// Arguments of `yatai convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// YAML file with BentoDeployments of older versions (v1alpha1..v1alpha3; `-` for standard input)
    #[arg(long, short, value_name = "FILE")]
    pub file: PathBuf,
}

/// TLS of generated Ingresses when a BentoDeployment names no secret.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TlsModeArg {
    /// no TLS
    None,
    /// a secret named like the deployment (e.g. made by cert-manager)
    Auto,
    /// one shared secret, --ingress-static-tls-secret
    Static,
}

/// Settings that shape the generated objects (shared by the operator and `render`).
#[derive(Debug, Args, Clone)]
pub struct ObjectArgs {
    /// Ingress hosts are <deployment>-<namespace>.<suffix> (the original's `domain-suffix` network setting)
    #[arg(long, env = "YATAI_DEPLOYMENT_DOMAIN_SUFFIX", value_name = "SUFFIX")]
    pub domain_suffix: Option<String>,
    /// IngressClass of generated Ingresses
    #[arg(long, env = "YATAI_DEPLOYMENT_INGRESS_CLASS", value_name = "CLASS")]
    pub ingress_class: Option<String>,
    /// Annotations of every generated Ingress, as a JSON object
    #[arg(
        long,
        env = "YATAI_DEPLOYMENT_INGRESS_ANNOTATIONS",
        value_name = "JSON"
    )]
    pub ingress_annotations: Option<String>,
    /// Path of the Ingress rule
    #[arg(long, env = "YATAI_DEPLOYMENT_INGRESS_PATH", default_value = "/")]
    pub ingress_path: String,
    /// pathType of the Ingress rule (Prefix, Exact, ImplementationSpecific)
    #[arg(
        long,
        env = "YATAI_DEPLOYMENT_INGRESS_PATH_TYPE",
        default_value = "ImplementationSpecific"
    )]
    pub ingress_path_type: String,
    /// TLS of Ingresses whose BentoDeployment names no secret
    #[arg(
        long,
        env = "YATAI_DEPLOYMENT_INGRESS_TLS_MODE",
        value_enum,
        default_value = "none"
    )]
    pub ingress_tls_mode: TlsModeArg,
    /// Secret used by every Ingress with --ingress-tls-mode static
    #[arg(
        long,
        env = "YATAI_DEPLOYMENT_INGRESS_STATIC_TLS_SECRET",
        value_name = "SECRET"
    )]
    pub ingress_static_tls_secret: Option<String>,
    /// Image of the metrics sidecar
    #[arg(
        long,
        env = "INTERNAL_IMAGES_METRICS_TRANSFORMER",
        value_name = "IMAGE"
    )]
    pub metrics_transformer_image: Option<String>,
    /// Image of the API server's routing sidecar
    #[arg(long, env = "INTERNAL_IMAGES_PROXY", value_name = "IMAGE")]
    pub proxy_image: Option<String>,
    /// Image of the monitoring exporter sidecar
    #[arg(long, env = "INTERNAL_IMAGES_MONITOR_EXPORTER", value_name = "IMAGE")]
    pub monitor_exporter_image: Option<String>,
    /// Image of the debugger sidecar (yatai.ai/enable-debug-mode)
    #[arg(long, env = "INTERNAL_IMAGES_DEBUGGER", value_name = "IMAGE")]
    pub debugger_image: Option<String>,
    /// Run containers non-root with a restricted security context
    #[arg(long, env = "ENABLE_RESTRICTED_SECURITY_CONTEXT", value_name = "BOOL", default_value = "false", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub restricted_security_context: bool,
    /// YATAI_T_VERSION of pods made by a Yatai-connected original operator (for a takeover without restarts)
    #[arg(long, env = "YATAI_T_VERSION", value_name = "VERSION", requires_all = ["yatai_org_uid", "yatai_cluster_uid"])]
    pub yatai_version: Option<String>,
    /// YATAI_T_ORG_UID of those pods
    #[arg(long, env = "YATAI_T_ORG_UID", value_name = "UID")]
    pub yatai_org_uid: Option<String>,
    /// YATAI_T_CLUSTER_UID of those pods
    #[arg(long, env = "YATAI_T_CLUSTER_UID", value_name = "UID")]
    pub yatai_cluster_uid: Option<String>,
    /// Organisation name in the Ingress' X-Yatai-Org-Name header [default: unknown]
    #[arg(long, env = "YATAI_ORG_NAME", value_name = "NAME")]
    pub yatai_org_name: Option<String>,
}

impl ObjectArgs {
    pub fn config(&self) -> anyhow::Result<Config> {
        let annotations: BTreeMap<String, String> = match self.ingress_annotations.as_deref() {
            Some(json) if !json.trim().is_empty() => serde_json::from_str(json).context(
                "--ingress-annotations must be a JSON object of strings, e.g. '{\"a\": \"b\"}'",
            )?,
            _ => BTreeMap::new(),
        };
        if matches!(self.ingress_tls_mode, TlsModeArg::Static)
            && self.ingress_static_tls_secret.is_none()
        {
            anyhow::bail!("--ingress-tls-mode static needs --ingress-static-tls-secret");
        }
        let defaults = Images::default();
        Ok(Config {
            ingress: IngressConfig {
                domain_suffix: self.domain_suffix.clone(),
                class_name: self.ingress_class.clone(),
                annotations,
                path: self.ingress_path.clone(),
                path_type: self.ingress_path_type.clone(),
                tls_mode: match self.ingress_tls_mode {
                    TlsModeArg::None => TlsMode::None,
                    TlsModeArg::Auto => TlsMode::Auto,
                    TlsModeArg::Static => TlsMode::Static,
                },
                static_tls_secret: self.ingress_static_tls_secret.clone(),
            },
            images: Images {
                metrics_transformer: self
                    .metrics_transformer_image
                    .clone()
                    .unwrap_or(defaults.metrics_transformer),
                proxy: self.proxy_image.clone().unwrap_or(defaults.proxy),
                monitor_exporter: self
                    .monitor_exporter_image
                    .clone()
                    .unwrap_or(defaults.monitor_exporter),
                debugger: self.debugger_image.clone().unwrap_or(defaults.debugger),
            },
            yatai: self.yatai_version.clone().map(|version| YataiIdentity {
                version,
                org_uid: self.yatai_org_uid.clone().unwrap_or_default(),
                cluster_uid: self.yatai_cluster_uid.clone().unwrap_or_default(),
                org_name: self.yatai_org_name.clone().unwrap_or_default(),
            }),
            restricted_security_context: self.restricted_security_context,
            ..Config::default()
        })
    }
}

fn read(file: &PathBuf) -> anyhow::Result<String> {
    if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("reading standard input")?;
        return Ok(s);
    }
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

pub fn render(args: RenderArgs) -> anyhow::Result<()> {
    let config = args.objects.config()?;
    let docs = yatai_deployment_operator::render::render(&read(&args.file)?, &config)
        .with_context(|| args.file.display().to_string())?;
    print!("{}", yatai_deployment_operator::render::to_yaml(&docs));
    Ok(())
}

pub fn convert(args: ConvertArgs) -> anyhow::Result<()> {
    let docs = yatai_deployment_operator::render::convert(&read(&args.file)?)
        .with_context(|| args.file.display().to_string())?;
    print!("{}", yatai_deployment_operator::render::to_yaml(&docs));
    Ok(())
}

/// Leader election flags, shared by `yatai deployment-operator` and `yatai image-builder`.
#[derive(Debug, Args, Clone)]
pub struct LeaderArgs {
    /// Elect one leader among replicas through a coordination.k8s.io Lease; only the leader reconciles
    /// [default: on inside a cluster, off outside]
    #[arg(long, alias = "leader-elect", env = "YATAI_OPERATOR_LEADER_ELECT", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub leader_election: Option<bool>,
    /// Namespace of the leader Lease [default: the pod's namespace, else the client's default namespace]
    #[arg(
        long,
        alias = "lease-namespace",
        env = "POD_NAMESPACE",
        value_name = "NS"
    )]
    pub leader_election_namespace: Option<String>,
    /// holderIdentity in the Lease [default: POD_NAME, else the host name and a random suffix]
    #[arg(long, alias = "lease-identity", value_name = "ID")]
    pub leader_election_identity: Option<String>,
}

impl LeaderArgs {
    /// The Lease settings when leader election is on.
    pub fn settings(
        &self,
        client: &kube::Client,
        lease: &str,
    ) -> Option<yatai_deployment_operator::leader::LeaseSettings> {
        use yatai_deployment_operator::leader;
        if !self.leader_election.unwrap_or_else(leader::in_cluster) {
            return None;
        }
        let namespace = self
            .leader_election_namespace
            .clone()
            .filter(|n| !n.is_empty())
            .or_else(leader::pod_namespace)
            .unwrap_or_else(|| client.default_namespace().to_string());
        let identity = self
            .leader_election_identity
            .clone()
            .unwrap_or_else(leader::default_identity);
        Some(leader::LeaseSettings::new(lease, &namespace, &identity))
    }
}

/// Runs `work` directly, or only while this replica holds the Lease. Losing the lease is an error: the process
/// exits (the pod restarts and campaigns again) rather than keep caches that another leader has moved past.
pub async fn lead<F: std::future::Future>(
    client: &kube::Client,
    settings: Option<yatai_deployment_operator::leader::LeaseSettings>,
    work: F,
) -> anyhow::Result<F::Output> {
    use yatai_deployment_operator::leader::{LeaderElector, Outcome};
    let Some(settings) = settings else {
        return Ok(work.await);
    };
    tracing::info!(lease = %settings.name, namespace = %settings.namespace, identity = %settings.identity,
        "leader election on: waiting for the lease");
    match LeaderElector::new(client.clone(), settings)
        .lead(work)
        .await
    {
        Outcome::Finished(output) => Ok(output),
        Outcome::Lost { reason } => {
            anyhow::bail!("lost the leader lease ({reason}); exiting so that the pod restarts and campaigns again")
        }
    }
}

/// Flags of the running operator (besides the object settings).
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Address of /metrics, /healthz and /readyz
    #[arg(
        long,
        env = "YATAI_OPERATOR_METRICS_ADDR",
        default_value = "0.0.0.0:8080"
    )]
    pub metrics_addr: std::net::SocketAddr,
    #[command(flatten)]
    pub leader: LeaderArgs,
}

pub async fn run(objects: ObjectArgs, run: RunArgs) -> anyhow::Result<()> {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let config = objects.config()?;
    let client = kube::Client::try_default().await.context(
        "no Kubernetes API: run in a cluster (service account) or with a kubeconfig (KUBECONFIG)",
    )?;
    let ready = Arc::new(AtomicBool::new(false));
    let metrics = tokio::spawn(yatai_deployment_operator::metrics::serve(
        run.metrics_addr,
        ready.clone(),
    ));
    tracing::info!(metrics = %run.metrics_addr, "deployment operator starting");
    let settings = run.leader.settings(
        &client,
        yatai_deployment_operator::leader::DEPLOYMENT_OPERATOR_LEASE,
    );
    if settings.is_some() {
        // A replica waiting for the lease is healthy: ready, so that rollouts of several replicas finish.
        ready.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let result = lead(
        &client,
        settings,
        yatai_deployment_operator::controller::run(client.clone(), config, ready),
    )
    .await;
    metrics.abort();
    result
}
