//! `serving.yatai.ai/v1alpha3`: `v1alpha2` plus labels, annotations, extra pod metadata and spec, ingress TLS.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::legacy::{DeploymentTargetHpaConf, LabelItem, LegacyExtraPodSpec, LegacyStatus};
use super::v2alpha1::BentoDeploymentIngressSpec;
use crate::common::{ExtraPodMetadata, Resources};

/// A bento served on Kubernetes (Yatai 1.1). Converted to `v2alpha1`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "serving.yatai.ai",
    version = "v1alpha3",
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
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<DeploymentTargetHpaConf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envs: Option<Vec<LabelItem>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runners: Option<Vec<BentoDeploymentRunnerSpec>>,
    /// Same shape as in `v2alpha1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<BentoDeploymentIngressSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_pod_metadata: Option<ExtraPodMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_pod_spec: Option<LegacyExtraPodSpec>,
}

/// A runner in Yatai's shorthands, with its own labels, annotations and pod extras.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
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
    pub autoscaling: Option<DeploymentTargetHpaConf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envs: Option<Vec<LabelItem>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_pod_metadata: Option<ExtraPodMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_pod_spec: Option<LegacyExtraPodSpec>,
}
