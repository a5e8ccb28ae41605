//! `Bento` (resources.yatai.ai/v1alpha1): a bento whose image is built and can be deployed.

use k8s_openapi::api::core::v1::LocalObjectReference;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{BentoContext, BentoManifest, BentoModel, BentoRunner};

/// A bento and the image that serves it. Written by the image builder (or by hand); read by the deployment
/// operator.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "resources.yatai.ai",
    version = "v1alpha1",
    kind = "Bento",
    plural = "bentoes",
    namespaced,
    status = "BentoStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Tag","type":"string","description":"Tag","jsonPath":".spec.tag"}"#,
    printcolumn = r#"{"name":"Image","type":"string","description":"Image","jsonPath":".spec.image"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BentoSpec {
    /// Bento tag, `name:version`.
    pub tag: String,
    /// Image reference that serves this bento.
    pub image: String,
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
    /// Secrets to pull the image with; the deployment operator puts them on the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,
}

/// Observed state of a `Bento`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BentoStatus {
    pub ready: bool,
}

impl BentoSpec {
    /// The bento's repository (name) and version, split from the tag; a tag without `:` is all name.
    pub fn name_and_version(&self) -> (&str, &str) {
        self.tag.split_once(':').unwrap_or((self.tag.as_str(), ""))
    }

    /// The bento's runners, empty when it has none.
    pub fn runners(&self) -> &[BentoRunner] {
        self.runners.as_deref().unwrap_or_default()
    }
}
