//! Settings of the operator that shape the generated objects (flags / environment of `yatai deployment-operator`).

use std::collections::BTreeMap;

/// How the Ingress gets TLS when the BentoDeployment gives no secret (the original's `ingress-tls-mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// No TLS.
    #[default]
    None,
    /// TLS with a secret named like the deployment (filled by e.g. cert-manager).
    Auto,
    /// TLS with one shared secret ([`IngressConfig::static_tls_secret`]).
    Static,
}

/// Ingress settings common to all BentoDeployments (the original kept them in its `network` ConfigMap).
#[derive(Clone, Debug, PartialEq)]
pub struct IngressConfig {
    /// Hosts are `<deployment>-<namespace>.<domain_suffix>`.
    pub domain_suffix: Option<String>,
    pub class_name: Option<String>,
    pub annotations: BTreeMap<String, String>,
    pub path: String,
    pub path_type: String,
    pub tls_mode: TlsMode,
    pub static_tls_secret: Option<String>,
}

impl Default for IngressConfig {
    fn default() -> Self {
        Self {
            domain_suffix: None,
            class_name: None,
            annotations: BTreeMap::new(),
            path: "/".into(),
            path_type: "ImplementationSpecific".into(),
            tls_mode: TlsMode::None,
            static_tls_secret: None,
        }
    }
}

/// Images of the sidecars every bento pod gets, as the original operator added them.
#[derive(Clone, Debug, PartialEq)]
pub struct Images {
    pub metrics_transformer: String,
    pub proxy: String,
    pub monitor_exporter: String,
    pub debugger: String,
}

impl Default for Images {
    fn default() -> Self {
        Self {
            metrics_transformer: "quay.io/bentoml/yatai-bento-metrics-transformer:0.0.3".into(),
            proxy: "quay.io/bentoml/bentoml-proxy:0.0.1".into(),
            monitor_exporter: "quay.io/bentoml/bentoml-monitor-exporter:0.0.3".into(),
            debugger: "quay.io/bentoml/bento-debugger:0.0.8".into(),
        }
    }
}

/// Values a Yatai-connected original operator put into every pod (`YATAI_T_VERSION`, `YATAI_T_ORG_UID`,
/// `YATAI_T_CLUSTER_UID`) and the organisation name in the Ingress headers. Give the same values to take over such
/// pods without restarting them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct YataiIdentity {
    pub version: String,
    pub org_uid: String,
    pub cluster_uid: String,
    pub org_name: String,
}

/// Everything besides the BentoDeployment and its Bento that decides the desired objects.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub ingress: IngressConfig,
    pub images: Images,
    pub yatai: Option<YataiIdentity>,
    /// Run containers as non-root with a restricted security context (`ENABLE_RESTRICTED_SECURITY_CONTEXT`).
    pub restricted_security_context: bool,
    /// Service account of pods whose BentoDeployment names none. The controller resolves it per namespace (the
    /// first service account labelled `yatai.ai/bento-deployment-pod=true`, else `default`).
    pub default_service_account: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ingress: IngressConfig::default(),
            images: Images::default(),
            yatai: None,
            restricted_security_context: false,
            default_service_account: "default".into(),
        }
    }
}
