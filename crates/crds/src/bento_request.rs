//! `BentoRequest` (resources.yatai.ai/v1alpha1): a request to make a bento deployable (build its image, or use a
//! given one), answered by a `Bento` of the same name.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvFromSource, EnvVar, PodStatus, ResourceRequirements, Toleration,
    TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{BentoContext, BentoManifest, BentoModel, BentoRunner, ExtraPodMetadata};

/// Condition types the image builder sets on a `BentoRequest`.
pub mod condition {
    pub const IMAGE_EXISTS_CHECKED: &str = "ImageExistsChecked";
    pub const IMAGE_EXISTS: &str = "ImageExists";
    pub const IMAGE_BUILDING: &str = "ImageBuilding";
    pub const BENTO_AVAILABLE: &str = "BentoAvailable";
    pub const MODELS_SEEDING: &str = "ModelsSeeding";
    pub const MODELS_EXISTS: &str = "ModelsExists";
}

/// A bento to build into an image (or to take from `image`).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "resources.yatai.ai",
    version = "v1alpha1",
    kind = "BentoRequest",
    plural = "bentorequests",
    namespaced,
    status = "BentoRequestStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Bento-Tag","type":"string","description":"Bento Tag","jsonPath":".spec.bentoTag"}"#,
    printcolumn = r#"{"name":"Download-Url","type":"string","description":"Download URL","jsonPath":".spec.downloadUrl"}"#,
    printcolumn = r#"{"name":"Image","type":"string","description":"Image","jsonPath":".spec.image"}"#,
    printcolumn = r#"{"name":"Image-Exists","type":"string","description":"Image Exists","jsonPath":".status.conditions[?(@.type=='ImageExists')].status"}"#,
    printcolumn = r#"{"name":"Bento-Available","type":"string","description":"Bento Available","jsonPath":".status.conditions[?(@.type=='BentoAvailable')].status"}"#,
    printcolumn = r#"{"name":"Image-Builder-Pod-Phase","type":"string","description":"Image Builder Pod Phase","jsonPath":".status.imageBuilderPodStatus.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BentoRequestSpec {
    /// Bento tag, `name:version`.
    pub bento_tag: String,
    /// Where to download the bento archive from (http(s) or s3://); by default from the registry server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
    /// Use this image and skip the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<BentoContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runners: Option<Vec<BentoRunner>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<BentoModel>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<BentoManifest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_args: Option<Vec<String>>,
    /// Build timeout in nanoseconds (a Go `time.Duration`, as the original wrote it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_build_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_config_json_secret_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci_registry_insecure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_builder_extra_pod_metadata: Option<ExtraPodMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_builder_extra_pod_spec: Option<ImageBuilderExtraPodSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_builder_extra_container_env: Option<Vec<EnvVar>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_builder_container_resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downloader_container_env_from: Option<Vec<EnvFromSource>>,
}

/// Scheduling settings for an image builder pod.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageBuilderExtraPodSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// Observed state of a `BentoRequest`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BentoRequestStatus {
    pub conditions: Vec<Condition>,
    /// Status of the pod that built the image (empty when the build ran in-process).
    pub image_builder_pod_status: PodStatus,
}
