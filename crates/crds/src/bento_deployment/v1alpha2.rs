//! `serving.yatai.ai/v1alpha2`: `v1alpha1` plus runner envs and an ingress switch.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::legacy::{DeploymentTargetHpaConf, LabelItem, LegacyStatus};
use crate::common::Resources;

/// A bento served on Kubernetes (Yatai 1.0). Converted to `v2alpha1`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "serving.yatai.ai",
    version = "v1alpha2",
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<BentoDeploymentIngressSpec>,
}

/// A runner in Yatai's shorthands.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BentoDeploymentRunnerSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<DeploymentTargetHpaConf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envs: Option<Vec<LabelItem>>,
}

/// Ingress on or off.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BentoDeploymentIngressSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}
