//! Types shared by `Bento` and `BentoRequest` (the bento's own description) and by several BentoDeployment versions.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{self, ContainerPort};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a bento was built.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BentoContext {
    /// Version of BentoML that built the bento; old versions (<= 1.0.0a7) are started differently.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bentoml_version: Option<String>,
}

/// What the bento's service (or one runner) exposes besides port 3000.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BentoManifest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_ports: Option<Vec<ContainerPort>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub livez_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readyz_endpoint: Option<String>,
}

/// A runner of the bento (BentoML 1.0-1.1 services have runners served as separate processes).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BentoRunner {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runnable_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<BentoManifest>,
}

/// A model the bento uses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BentoModel {
    /// `name:version`.
    pub tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,
}

/// Labels and annotations added to the pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ExtraPodMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
}

/// Yatai's resource shorthand: quantities as strings, `gpu` for `nvidia.com/gpu`, anything else under `custom`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ResourceItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<BTreeMap<String, String>>,
}

/// Requests and limits in Yatai's shorthand ([`ResourceItem`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ResourceItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceItem>,
}

/// The source of a volume: exactly the fields of a Kubernetes `Volume` except its name (Go's inlined
/// `corev1.VolumeSource`, which `k8s-openapi` has no type for).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VolumeSource {
    #[serde(
        rename = "awsElasticBlockStore",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub aws_elastic_block_store: Option<v1::AWSElasticBlockStoreVolumeSource>,
    #[serde(rename = "azureDisk", default, skip_serializing_if = "Option::is_none")]
    pub azure_disk: Option<v1::AzureDiskVolumeSource>,
    #[serde(rename = "azureFile", default, skip_serializing_if = "Option::is_none")]
    pub azure_file: Option<v1::AzureFileVolumeSource>,
    #[serde(rename = "cephfs", default, skip_serializing_if = "Option::is_none")]
    pub cephfs: Option<v1::CephFSVolumeSource>,
    #[serde(rename = "cinder", default, skip_serializing_if = "Option::is_none")]
    pub cinder: Option<v1::CinderVolumeSource>,
    #[serde(rename = "configMap", default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<v1::ConfigMapVolumeSource>,
    #[serde(rename = "csi", default, skip_serializing_if = "Option::is_none")]
    pub csi: Option<v1::CSIVolumeSource>,
    #[serde(
        rename = "downwardAPI",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub downward_api: Option<v1::DownwardAPIVolumeSource>,
    #[serde(rename = "emptyDir", default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<v1::EmptyDirVolumeSource>,
    #[serde(rename = "ephemeral", default, skip_serializing_if = "Option::is_none")]
    pub ephemeral: Option<v1::EphemeralVolumeSource>,
    #[serde(rename = "fc", default, skip_serializing_if = "Option::is_none")]
    pub fc: Option<v1::FCVolumeSource>,
    #[serde(
        rename = "flexVolume",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub flex_volume: Option<v1::FlexVolumeSource>,
    #[serde(rename = "flocker", default, skip_serializing_if = "Option::is_none")]
    pub flocker: Option<v1::FlockerVolumeSource>,
    #[serde(
        rename = "gcePersistentDisk",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub gce_persistent_disk: Option<v1::GCEPersistentDiskVolumeSource>,
    #[serde(rename = "gitRepo", default, skip_serializing_if = "Option::is_none")]
    pub git_repo: Option<v1::GitRepoVolumeSource>,
    #[serde(rename = "glusterfs", default, skip_serializing_if = "Option::is_none")]
    pub glusterfs: Option<v1::GlusterfsVolumeSource>,
    #[serde(rename = "hostPath", default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<v1::HostPathVolumeSource>,
    #[serde(rename = "image", default, skip_serializing_if = "Option::is_none")]
    pub image: Option<v1::ImageVolumeSource>,
    #[serde(rename = "iscsi", default, skip_serializing_if = "Option::is_none")]
    pub iscsi: Option<v1::ISCSIVolumeSource>,
    #[serde(rename = "nfs", default, skip_serializing_if = "Option::is_none")]
    pub nfs: Option<v1::NFSVolumeSource>,
    #[serde(
        rename = "persistentVolumeClaim",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub persistent_volume_claim: Option<v1::PersistentVolumeClaimVolumeSource>,
    #[serde(
        rename = "photonPersistentDisk",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub photon_persistent_disk: Option<v1::PhotonPersistentDiskVolumeSource>,
    #[serde(
        rename = "portworxVolume",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub portworx_volume: Option<v1::PortworxVolumeSource>,
    #[serde(rename = "projected", default, skip_serializing_if = "Option::is_none")]
    pub projected: Option<v1::ProjectedVolumeSource>,
    #[serde(rename = "quobyte", default, skip_serializing_if = "Option::is_none")]
    pub quobyte: Option<v1::QuobyteVolumeSource>,
    #[serde(rename = "rbd", default, skip_serializing_if = "Option::is_none")]
    pub rbd: Option<v1::RBDVolumeSource>,
    #[serde(rename = "scaleIO", default, skip_serializing_if = "Option::is_none")]
    pub scale_io: Option<v1::ScaleIOVolumeSource>,
    #[serde(rename = "secret", default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<v1::SecretVolumeSource>,
    #[serde(rename = "storageos", default, skip_serializing_if = "Option::is_none")]
    pub storageos: Option<v1::StorageOSVolumeSource>,
    #[serde(
        rename = "vsphereVolume",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub vsphere_volume: Option<v1::VsphereVirtualDiskVolumeSource>,
}

impl VolumeSource {
    /// A pod volume named `name` with this source.
    pub fn into_volume(self, name: String) -> v1::Volume {
        v1::Volume {
            name,
            aws_elastic_block_store: self.aws_elastic_block_store,
            azure_disk: self.azure_disk,
            azure_file: self.azure_file,
            cephfs: self.cephfs,
            cinder: self.cinder,
            config_map: self.config_map,
            csi: self.csi,
            downward_api: self.downward_api,
            empty_dir: self.empty_dir,
            ephemeral: self.ephemeral,
            fc: self.fc,
            flex_volume: self.flex_volume,
            flocker: self.flocker,
            gce_persistent_disk: self.gce_persistent_disk,
            git_repo: self.git_repo,
            glusterfs: self.glusterfs,
            host_path: self.host_path,
            image: self.image,
            iscsi: self.iscsi,
            nfs: self.nfs,
            persistent_volume_claim: self.persistent_volume_claim,
            photon_persistent_disk: self.photon_persistent_disk,
            portworx_volume: self.portworx_volume,
            projected: self.projected,
            quobyte: self.quobyte,
            rbd: self.rbd,
            scale_io: self.scale_io,
            secret: self.secret,
            storageos: self.storageos,
            vsphere_volume: self.vsphere_volume,
        }
    }
}
