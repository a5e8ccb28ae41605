//! Clusters and deployments: v1 (bentoml 1.1's `bentoml deployment`, Yatai 1.x) and v2
//! (bentoml 1.4's `bentoml deployment` / `bentoml deploy`).
//!
//! One deployment record serves both generations: bentoml 1.1 structures its schemas with
//! cattrs, which ignores keys it does not declare (checked against the installed client), and
//! 1.4 declares `__forbid_extra_keys__ = False`. What differs is a target's `config`, which each
//! API writes in its own dialect; it is carried as JSON here and parsed into the canonical spec
//! by the service layer. Fields a client declares as non-optional are never null.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{LabelItem, OrganizationSchema, ResourceSchema, UserSchema, VersionSchema};

/// A cluster as lists show it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ClusterSchema {
    #[serde(flatten)]
    pub resource: ResourceSchema,
    #[serde(default)]
    pub description: String,
    /// The organization's name (bentoml 1.4 reads it).
    #[serde(default)]
    pub organization_name: String,
    pub creator: UserSchema,
    /// Whether this is the organization's first (default) cluster.
    #[serde(default)]
    pub is_first: bool,
    /// `local` or `kubernetes`.
    #[serde(default)]
    pub kind: String,
}

/// A cluster's settings the clients read.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ClusterConfigSchema {
    pub default_deployment_kube_namespace: String,
}

/// An instance type (Yatai's "resource instance"): what `--instance-type` names.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ResourceInstanceSchema {
    #[serde(flatten)]
    pub resource: ResourceSchema,
    pub display_name: String,
    pub description: String,
    pub config: ResourceInstanceConfigSchema,
}

/// What an instance type gives a replica.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ResourceInstanceConfigSchema {
    pub group: String,
    #[schema(value_type = Object)]
    pub resources: serde_json::Value,
    pub price: String,
    #[serde(default)]
    pub node_selectors: BTreeMap<String, String>,
    /// bentoml 1.4 reads these.
    #[serde(default)]
    pub gpu_config: Option<serde_json::Value>,
}

/// A cluster with its settings. `kube_config` is redacted: credentials are never returned.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ClusterFullSchema {
    #[serde(flatten)]
    pub cluster: ClusterSchema,
    pub organization: OrganizationSchema,
    pub kube_config: String,
    pub config: ClusterConfigSchema,
    #[serde(default)]
    pub grafana_root_path: String,
    #[serde(default)]
    pub resource_instances: Vec<ResourceInstanceSchema>,
}

/// Registers a cluster.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CreateClusterSchema {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `kubernetes` (the default) or `local`.
    #[serde(default)]
    pub kind: Option<String>,
    /// The kubeconfig (YAML) of a `kubernetes` cluster; empty or absent: the cluster the
    /// server runs in (in-cluster configuration).
    #[serde(default)]
    pub kube_config: Option<String>,
    /// The namespace deployments go to when the client names none (`default`).
    #[serde(default)]
    pub default_namespace: Option<String>,
    /// Yatai 1.x's shape of the same.
    #[serde(default)]
    pub config: Option<ClusterConfigSchema>,
}

/// Changes a cluster; absent fields keep their value.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpdateClusterSchema {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub kube_config: Option<String>,
    #[serde(default)]
    pub default_namespace: Option<String>,
    #[serde(default)]
    pub config: Option<ClusterConfigSchema>,
}

/// A target of a revision: the bento (full form, with its repository) and how it runs. The
/// `config` is in the dialect of the API that answers (v1: `resources`, `hpa_conf`, `envs` of
/// `{key, value}`, `runners`; v2: `services`, `envs` of `{name, value}`, `secrets`,
/// `access_authorization`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DeploymentTargetSchema {
    #[serde(flatten)]
    pub resource: ResourceSchema,
    pub creator: UserSchema,
    #[serde(rename = "type")]
    pub target_type: String,
    pub bento: VersionSchema,
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub canary_rules: Option<serde_json::Value>,
}

/// A revision: the targets of one change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DeploymentRevisionSchema {
    #[serde(flatten)]
    pub resource: ResourceSchema,
    pub creator: UserSchema,
    /// `active` or `inactive`.
    pub status: String,
    pub targets: Vec<DeploymentTargetSchema>,
    /// The revision this one restored, for a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<String>,
}

/// A deployment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DeploymentSchema {
    #[serde(flatten)]
    pub resource: ResourceSchema,
    pub creator: UserSchema,
    pub cluster: ClusterSchema,
    /// One of the clients' `DeploymentStatus` values.
    pub status: String,
    /// Why the status is what it is (empty when running).
    #[serde(default)]
    pub status_reason: String,
    pub kube_namespace: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_revision: Option<DeploymentRevisionSchema>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Where the deployment answers.
    #[serde(default)]
    pub urls: Vec<String>,
}

/// A target as a v1 client writes it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CreateDeploymentTargetSchema {
    /// `stable` (the default) or `canary`.
    #[serde(rename = "type", default)]
    pub target_type: Option<String>,
    pub bento_repository: String,
    /// The bento version.
    pub bento: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub canary_rules: Option<serde_json::Value>,
}

/// Changes a deployment (v1): a new revision with these targets.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct UpdateDeploymentSchema {
    pub targets: Vec<CreateDeploymentTargetSchema>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub labels: Option<Vec<LabelItem>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub do_not_deploy: Option<bool>,
    /// Sent by `bentoml deployment update -f` (ignored: the path names them).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub kube_namespace: Option<String>,
    #[serde(default)]
    pub cluster_name: Option<String>,
}

/// Creates a deployment (v1).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CreateDeploymentSchema {
    pub name: String,
    #[serde(default)]
    pub kube_namespace: Option<String>,
    pub targets: Vec<CreateDeploymentTargetSchema>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub labels: Option<Vec<LabelItem>>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub do_not_deploy: Option<bool>,
    #[serde(default)]
    pub cluster_name: Option<String>,
}

/// A rollback: make a new revision from an old one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RollbackDeploymentSchema {
    pub revision_uid: String,
}

/// An environment variable (v2).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct EnvItem {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// Creates or changes a deployment (v2), as `bentoml deployment create|update|apply` and
/// `bentoml deploy` send it. `services` maps a service name to its `instance_type`, `scaling`
/// (`min_replicas`, `max_replicas`), `envs`, `deployment_strategy`, ...
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DeploymentV2Body {
    /// The deployment's name (create only; generated from the bento when absent).
    #[serde(default)]
    pub name: Option<String>,
    /// `repository:version`.
    pub bento: String,
    #[serde(default)]
    pub access_authorization: bool,
    #[serde(default)]
    pub envs: Option<Vec<EnvItem>>,
    #[serde(default)]
    pub labels: Option<Vec<LabelItem>>,
    #[serde(default)]
    pub secrets: Option<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub services: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub canary: Option<serde_json::Value>,
    #[serde(default)]
    pub dev: bool,
    /// Sent by some clients in the body (the query's `cluster` wins).
    #[serde(default)]
    pub cluster: Option<String>,
}

/// The cluster a v2 call is about (`?cluster=`; empty or absent: the default cluster).
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
pub struct ClusterQuery {
    #[serde(default)]
    pub cluster: Option<String>,
}

/// The v2 list: paging, search, and `all` (every cluster).
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
pub struct DeploymentListQuery {
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub all: Option<String>,
    #[serde(default)]
    pub start: Option<String>,
    #[serde(default)]
    pub count: Option<String>,
    #[serde(default)]
    pub search: Option<String>,
    #[serde(default)]
    pub q: Option<String>,
}

/// The last lines of a deployment's logs (local clusters).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DeploymentLogsSchema {
    pub lines: Vec<String>,
}
