//! Clusters and deployments: the statuses the clients know, the DNS-1123 rules for names and
//! namespaces, and the desired state a cluster runtime is asked to make true.
//!
//! The desired state lives in the database (one row per deployment, one per revision); a
//! runtime (`runtime-local` on the server's own machine, `runtime-kubernetes` for a cluster)
//! only ever receives a [`Desired`] and answers with what it [`Observed`], so that after a
//! restart of the server everything is reconciled back from the database.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

crate::wire_enum! {
    /// Where a cluster's deployments run.
    pub enum ClusterKind ("cluster kind") {
        /// Supervised processes on the server's own machine (the embedded default).
        Local = "local",
        /// `BentoRequest` + `BentoDeployment` written into a Kubernetes namespace.
        Kubernetes = "kubernetes",
    }
}

crate::wire_enum! {
    /// A deployment's status, with the values of the clients' own `DeploymentStatus` enum
    /// (bentoml 1.1 `schemas.py`, 1.4 compares the same strings).
    pub enum DeploymentStatus ("deployment status") {
        Unknown = "unknown",
        NonDeployed = "non-deployed",
        Running = "running",
        Unhealthy = "unhealthy",
        Failed = "failed",
        Deploying = "deploying",
        Terminating = "terminating",
        Terminated = "terminated",
        ImageBuilding = "image-building",
        ImageBuildFailed = "image-build-failed",
        ImageBuildSucceeded = "image-build-succeeded",
    }
}

impl DeploymentStatus {
    /// Whether the deployment has stopped serving for good (delete is allowed).
    pub fn is_stopped(self) -> bool {
        matches!(
            self,
            DeploymentStatus::Terminated | DeploymentStatus::NonDeployed
        )
    }
}

/// The longest DNS-1123 label (Kubernetes object names, namespaces).
pub const DNS1123_LABEL_MAX: usize = 63;

/// Checks a DNS-1123 label (`my-bento-1`): lower-case letters, digits and `-`, starting and
/// ending with a letter or digit, at most 63 characters. `what` names the field in the error.
pub fn validate_dns1123_label(what: &str, value: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::invalid(format!(
            "{what} {value:?} is not a valid DNS-1123 label: {why} (lower-case letters, digits \
             and '-', starting and ending with a letter or digit, at most {DNS1123_LABEL_MAX} \
             characters, e.g. \"my-service-1\")",
            value = clip(value)
        )))
    };
    if value.is_empty() {
        return bad("it is empty");
    }
    if value.len() > DNS1123_LABEL_MAX {
        return bad(&format!("it has {} characters", value.len()));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return bad(&format!("{c:?} is not allowed"));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return bad("it starts or ends with '-'");
    }
    Ok(())
}

/// At most 80 characters of a value, for messages (the error body echoes input).
fn clip(value: &str) -> String {
    value.chars().take(80).collect()
}

/// CPU and memory as Kubernetes quantities (`500m`, `1Gi`), as the clients send them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
}

/// Requests and limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ResourceItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceItem>,
}

/// How one component (the API server, or a runner / a 1.4 service) is to run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentSpec {
    /// Replicas to run (the autoscaler's minimum).
    pub min_replicas: u32,
    /// The autoscaler's maximum (equal to `min_replicas` when not scaling).
    pub max_replicas: u32,
    /// Environment variables, in order.
    #[serde(default)]
    pub envs: Vec<(String, String)>,
    #[serde(default)]
    pub resources: Resources,
}

/// Everything a runtime needs to make one deployment true. Built by the service layer from the
/// deployment row and its active revision; the runtime never reads the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    /// The deployment's uid (stable across revisions).
    pub uid: String,
    pub organization: String,
    pub cluster: String,
    pub namespace: String,
    pub name: String,
    /// The active revision; a change of revision means "roll out again".
    pub revision_uid: String,
    pub bento_repository: String,
    pub bento_version: String,
    /// `true` to serve, `false` to stop serving (terminated).
    pub running: bool,
    /// The API server (or the 1.4 entry service).
    pub api_server: ComponentSpec,
    /// Runners (bentoml < 1.4) or the other services (1.4), by name.
    #[serde(default)]
    pub runners: BTreeMap<String, ComponentSpec>,
    /// The target config exactly as the client sent it (v1 shape), for runtimes that pass
    /// overrides through (Kubernetes `extraPodSpec`, ...).
    #[serde(default)]
    pub config: serde_json::Value,
}

/// What a runtime saw when it last made a deployment true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub status: DeploymentStatus,
    /// Why, in a sentence a user can act on (empty when running).
    pub reason: String,
    /// Where the deployment answers, once known.
    pub url: Option<String>,
}

impl Observed {
    pub fn new(status: DeploymentStatus, reason: impl Into<String>) -> Self {
        Observed {
            status,
            reason: reason.into(),
            url: None,
        }
    }
}

/// A boxed future, so that runtimes can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A cluster's runtime. `reconcile` is idempotent and cheap when nothing changed: the server
/// calls it for every deployment of the cluster on start, after every change, and periodically.
pub trait ClusterRuntime: Send + Sync {
    /// Makes `desired` true (start, roll out a new revision, or stop) and reports what is.
    fn reconcile<'a>(&'a self, desired: &'a Desired) -> BoxFuture<'a, Observed>;
    /// Removes everything of a deleted deployment (processes, objects, logs).
    fn remove<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, Result<()>>;
    /// The last `lines` lines of the deployment's logs, when the runtime keeps them.
    fn logs<'a>(&'a self, uid: &'a str, lines: usize) -> BoxFuture<'a, Option<Vec<String>>>;
    /// The uids of the deployments this runtime currently runs something for, so that the
    /// server can remove what the database no longer knows.
    fn known<'a>(&'a self) -> BoxFuture<'a, Vec<String>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_labels() {
        for ok in ["a", "my-bento", "x1", &"a".repeat(63)] {
            validate_dns1123_label("name", ok).unwrap();
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", "é", &"a".repeat(64)] {
            let e = validate_dns1123_label("name", bad).unwrap_err().to_string();
            assert!(e.contains("DNS-1123"), "{e}");
        }
    }

    #[test]
    fn statuses_use_the_client_values() {
        assert_eq!(DeploymentStatus::NonDeployed.as_str(), "non-deployed");
        assert_eq!(
            "image-build-failed".parse::<DeploymentStatus>().unwrap(),
            DeploymentStatus::ImageBuildFailed
        );
        assert!(DeploymentStatus::Terminated.is_stopped());
        assert!(!DeploymentStatus::Running.is_stopped());
    }
}
