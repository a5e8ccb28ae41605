//! `serving.yatai.ai/v2alpha1`, the stored version.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscalerBehavior, MetricSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Container, EnvVar, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::common::{ExtraPodMetadata, ResourceItem, Resources, VolumeSource};

/// A bento served on Kubernetes: an API server Deployment + Service, one per runner, an HPA per component and an
/// optional Ingress.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "serving.yatai.ai",
    version = "v2alpha1",
    kind = "BentoDeployment",
    plural = "bentodeployments",
    namespaced,
    status = "BentoDeploymentStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Bento","type":"string","description":"Bento","jsonPath":".spec.bento"}"#,
    printcolumn = r#"{"name":"Available","type":"string","description":"Available","jsonPath":".status.conditions[?(@.type=='Available')].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BentoDeploymentSpec {
    /// Name of a `Bento` in the same namespace, or of a `BentoRequest` whose `Bento` is awaited.
    pub bento: String,
    /// Annotations that switch features of the API server (e.g. `yatai.ai/deployment-strategy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Labels added to the API server's objects and pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envs: Option<Vec<EnvVar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runners: Option<Vec<BentoDeploymentRunnerSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<BentoDeploymentIngressSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_exporter: Option<MonitorExporterSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_pod_metadata: Option<ExtraPodMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_pod_spec: Option<ExtraPodSpec>,
}

/// Replicas and HPA metrics of one component.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Autoscaling {
    pub min_replicas: i32,
    pub max_replicas: i32,
    /// `autoscaling/v2` metrics; CPU at 80% when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<MetricSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

/// Settings of one runner (by its name in the bento).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BentoDeploymentRunnerSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envs: Option<Vec<EnvVar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_pod_metadata: Option<ExtraPodMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_pod_spec: Option<ExtraPodSpec>,
}

/// The API server's Ingress.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BentoDeploymentIngressSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<BentoDeploymentIngressTlsSpec>,
}

/// TLS of the Ingress: the secret holding the certificate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BentoDeploymentIngressTlsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// The monitoring data exporter (a fluent-bit sidecar of the API server).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitorExporterSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// fluent-bit output plugin name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
    /// Options whose values may come from secrets or config maps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structure_options: Option<Vec<EnvVar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<MonitorExporterMountSpec>>,
}

/// A volume mounted into the monitor exporter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitorExporterMountSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(flatten)]
    pub volume_source: VolumeSource,
}

/// Pod spec fields merged into the generated pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtraPodSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    /// Extra containers (sidecars) added after the generated ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<Vec<Container>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// Observed state of a `BentoDeployment`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BentoDeploymentStatus {
    /// `Available`, `BentoFound`, `Progressing` (and `BentoRequestFound` while a Bento is awaited).
    pub conditions: Vec<Condition>,
    /// Labels selecting the API server's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<BTreeMap<String, String>>,
}

impl BentoDeploymentSpec {
    /// The runner settings, empty when none are given.
    pub fn runners(&self) -> &[BentoDeploymentRunnerSpec] {
        self.runners.as_deref().unwrap_or_default()
    }

    /// Settings given for the runner `name`, if any.
    pub fn runner(&self, name: &str) -> Option<&BentoDeploymentRunnerSpec> {
        self.runners()
            .iter()
            .find(|r| r.name.as_deref() == Some(name))
    }

    /// Whether the Ingress is wanted.
    pub fn ingress_enabled(&self) -> bool {
        self.ingress
            .as_ref()
            .and_then(|i| i.enabled)
            .unwrap_or(false)
    }
}
