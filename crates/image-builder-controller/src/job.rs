//! Job mode: the `batch/v1` Job that builds a request's image out of process, running
//! `yatai image build` from the controller's own image. Pure functions, no I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, PodSpec, PodTemplateSpec, SecretKeySelector,
};
use kube::api::ObjectMeta;
use kube::ResourceExt;
use md5::{Digest, Md5};
use yatai_crds::BentoRequest;
use yatai_image_builder::RegistryConfig;

/// The label every build Job (and its pod) carries, naming its request.
pub const REQUEST_LABEL: &str = "yatai.ai/bento-request";

/// How the controller runs build Jobs.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// The image of this very binary (`yatai`).
    pub image: String,
    /// The registry the Job pushes to (passed as `DOCKER_REGISTRY_*`, the password excepted).
    pub registry: RegistryConfig,
    /// A Secret, in the request's namespace, whose key `DOCKER_REGISTRY_PASSWORD` the Job reads.
    pub registry_secret: Option<String>,
    /// The Yatai server bentos come from when a request has no `downloadUrl`.
    pub endpoint: Option<String>,
    /// A Secret, in the request's namespace, whose key `YATAI_API_TOKEN` the Job reads.
    pub token_secret: Option<String>,
    pub base_image: Option<String>,
    pub insecure_registries: Vec<String>,
    /// Deadline (seconds) when a request sets no `imageBuildTimeout`.
    pub default_timeout_secs: i64,
}

/// The Job's name: `<request>-build-<8 hex of md5(bento tag)>`, a DNS-1123 label of at most
/// 63 characters (the request name is cut when needed).
pub fn job_name(request: &BentoRequest) -> String {
    let hash = format!("{:x}", Md5::digest(request.spec.bento_tag.as_bytes()));
    let suffix = format!("-build-{}", &hash[..8]);
    let mut base: String = request
        .name_any()
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    base.truncate(63 - suffix.len());
    let base = base.trim_matches('-');
    let base = if base.is_empty() { "bento" } else { base };
    format!("{base}{suffix}")
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn secret_env(name: &str, secret: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: name.into(),
                optional: Some(true),
            }),
            ..Default::default()
        }),
    }
}

/// The deadline of a request's build, in seconds (`imageBuildTimeout` is in nanoseconds).
pub fn deadline_secs(request: &BentoRequest, settings: &JobSettings) -> i64 {
    request
        .spec
        .image_build_timeout
        .filter(|ns| *ns > 0)
        .map(|ns| (ns / 1_000_000_000).max(1))
        .unwrap_or(settings.default_timeout_secs)
}

/// The Job building `request`'s image: owned by the request, one container running
/// `yatai image build <tag>` from `settings.image`, never retried by Kubernetes (the controller's
/// back-off decides), with the request's extra pod metadata, pod spec, env and resources.
pub fn build_job(request: &BentoRequest, settings: &JobSettings) -> Job {
    let spec = &request.spec;
    let name = job_name(request);
    let owner = crate::desired::owned_by(request);
    let deadline = deadline_secs(request, settings);

    let mut args = vec!["image".to_string(), "build".into(), spec.bento_tag.clone()];
    let mut env_vars = Vec::new();
    let download_url = spec.download_url.as_ref().filter(|u| !u.is_empty());
    match (download_url, &settings.endpoint) {
        (Some(url), _) => {
            args.push("--download-url".into());
            args.push(url.clone());
        }
        (None, Some(endpoint)) => {
            env_vars.push(env("YATAI_ENDPOINT", endpoint.clone()));
            if let Some(s) = &settings.token_secret {
                env_vars.push(secret_env("YATAI_API_TOKEN", s));
            }
        }
        // `yatai image build` fails with a clear message: no source.
        (None, None) => {}
    }
    if let Some(b) = &settings.base_image {
        args.push("--base-image".into());
        args.push(b.clone());
    }
    for r in &settings.insecure_registries {
        args.push("--insecure-registry".into());
        args.push(r.clone());
    }
    // A fresh pod has no cache; the Job's own deadline is the build's.
    args.push("--no-cache".into());
    args.push("--timeout".into());
    args.push(deadline.to_string());

    let reg = &settings.registry;
    let secure = match spec.oci_registry_insecure {
        Some(insecure) => !insecure,
        None => reg.secure,
    };
    env_vars.push(env("DOCKER_REGISTRY_SERVER", reg.server.clone()));
    if let Some(s) = &reg.in_cluster_server {
        env_vars.push(env("DOCKER_REGISTRY_IN_CLUSTER_SERVER", s.clone()));
    }
    if let Some(u) = &reg.username {
        env_vars.push(env("DOCKER_REGISTRY_USERNAME", u.clone()));
    }
    if let Some(s) = &settings.registry_secret {
        env_vars.push(secret_env("DOCKER_REGISTRY_PASSWORD", s));
    }
    env_vars.push(env("DOCKER_REGISTRY_SECURE", secure.to_string()));
    env_vars.push(env(
        "DOCKER_REGISTRY_BENTO_REPOSITORY_NAME",
        reg.bento_repository_name.clone(),
    ));
    // The request's own env comes last and wins over ours of the same name.
    for e in spec.image_builder_extra_container_env.iter().flatten() {
        env_vars.retain(|x| x.name != e.name);
        env_vars.push(e.clone());
    }

    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    if let Some(m) = &spec.image_builder_extra_pod_metadata {
        labels.extend(m.labels.clone().unwrap_or_default());
        annotations.extend(m.annotations.clone().unwrap_or_default());
    }
    labels.insert(REQUEST_LABEL.into(), request.name_any());
    let extra = spec
        .image_builder_extra_pod_spec
        .clone()
        .unwrap_or_default();

    let container = Container {
        name: "builder".into(),
        image: Some(settings.image.clone()),
        args: Some(args),
        env: Some(env_vars),
        resources: spec.image_builder_container_resources.clone(),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        restart_policy: Some("Never".into()),
        priority_class_name: extra.priority_class_name,
        scheduler_name: extra.scheduler_name,
        node_selector: extra.node_selector,
        affinity: extra.affinity,
        tolerations: extra.tolerations,
        topology_spread_constraints: extra.topology_spread_constraints,
        service_account_name: extra.service_account_name,
        image_pull_secrets: None,
        ..Default::default()
    };
    Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: request.namespace(),
            owner_references: Some(vec![owner]),
            labels: Some(BTreeMap::from([(REQUEST_LABEL.into(), request.name_any())])),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(deadline),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: (!annotations.is_empty()).then_some(annotations),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The image a successful Job pushed: the in-cluster reference of Yatai's tag scheme, from
/// the same naming function the builder uses (`RegistryConfig::image_reference`).
pub fn built_image(request: &BentoRequest, settings: &JobSettings) -> String {
    let tag = &request.spec.bento_tag;
    let (name, version) = tag.split_once(':').unwrap_or((tag, ""));
    settings.registry.image_reference(name, version, true)
}

/// Where a build Job stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Running,
    Succeeded,
    /// Failed, with the Job's reason and message.
    Failed(String),
}

/// The state of `job` from its status.
pub fn job_state(job: &Job) -> JobState {
    let Some(status) = &job.status else {
        return JobState::Running;
    };
    let conditions = status.conditions.clone().unwrap_or_default();
    let is = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    if is("Complete").is_some() || status.succeeded.unwrap_or(0) > 0 {
        return JobState::Succeeded;
    }
    if let Some(c) = is("Failed") {
        return JobState::Failed(format!(
            "{}: {}",
            c.reason.clone().unwrap_or_else(|| "Failed".into()),
            c.message.clone().unwrap_or_default()
        ));
    }
    if status.failed.unwrap_or(0) > 0 {
        return JobState::Failed("the build pod failed".into());
    }
    JobState::Running
}

#[cfg(test)]
mod tests {
    use super::*;
    use yatai_crds::BentoRequestSpec;

    #[test]
    fn job_names_are_dns_labels_of_at_most_63_characters() {
        let r = BentoRequest::new(
            "iris",
            BentoRequestSpec {
                bento_tag: "iris:v1".into(),
                ..Default::default()
            },
        );
        let n = job_name(&r);
        assert!(n.starts_with("iris-build-") && n.len() == "iris-build-".len() + 8);
        assert_eq!(n, job_name(&r), "deterministic");
        let long = BentoRequest::new(
            &"a".repeat(200),
            BentoRequestSpec {
                bento_tag: "iris:v2".into(),
                ..Default::default()
            },
        );
        let n2 = job_name(&long);
        assert!(n2.len() <= 63, "{n2}");
        assert!(n2
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        assert_ne!(
            job_name(&BentoRequest::new(
                "iris",
                BentoRequestSpec {
                    bento_tag: "iris:v2".into(),
                    ..Default::default()
                }
            )),
            n,
            "another tag, another Job"
        );
    }
}
