//! `serving.yatai.ai/v1alpha1` (Yatai 1.0): `bento_tag`, Yatai's resource and autoscaling shorthands.

use k8s_openapi::api::autoscaling::v2::MetricSpec;
use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::legacy::{DeploymentTargetHpaConf, LabelItem, LegacyStatus};
use crate::common::Resources;

/// A bento served on Kubernetes, as Yatai 1.0 first described it. Converted to `v2alpha1`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "serving.yatai.ai",
    version = "v1alpha1",
    kind = "BentoDeployment",
    plural = "bentodeployments",
    namespaced,
    status = "LegacyStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Bento","type":"string","description":"BentoTag","jsonPath":".spec.bento_tag"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","description":"Ready","jsonPath":".status.printerReady"}"#,
    printcolumn = r#"{"name":"MinReplicas","type":"integer","description":"MinReplicas","jsonPath":".spec.autoscaling.min_replicas"}"#,
    printcolumn = r#"{"name":"MaxReplicas","type":"integer","description":"MaxReplicas","jsonPath":".spec.autoscaling.max_replicas"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct BentoDeploymentSpec {
    /// Bento tag, `name:version`.
    pub bento_tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<DeploymentTargetHpaConf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envs: Option<Vec<LabelItem>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runners: Option<Vec<BentoDeploymentRunnerSpec>>,
}

/// A runner with Kubernetes resource requirements and HPA-style autoscaling.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BentoDeploymentRunnerSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<RunnerAutoscaling>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// Autoscaling of a `v1alpha1` runner.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunnerAutoscaling {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    pub max_replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<MetricSpec>>,
}
