//! The objects a deployment becomes, as pure functions of its [`Desired`] state: the `BentoRequest` of its bento
//! (built into an image by `yatai image-builder`) and the `BentoDeployment` (served by `yatai deployment-operator`).
//!
//! Nothing here does I/O, so that the exact bodies the runtime applies are unit-testable and snapshot-tested.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::EnvVar;
use kube::api::ObjectMeta;
use md5::{Digest, Md5};
use serde_json::{Map, Value};
use yatai_crds::bento_deployment::convert::bento_name_from_tag;
use yatai_crds::bento_deployment::v2alpha1::{
    Autoscaling, BentoDeploymentIngressSpec, BentoDeploymentRunnerSpec, ExtraPodMetadata,
    ExtraPodSpec, MonitorExporterSpec,
};
use yatai_crds::common::{BentoRunner, ResourceItem, Resources};
use yatai_crds::{BentoDeployment, BentoDeploymentSpec, BentoRequest, BentoRequestSpec};
use yatai_domain::deployments::{validate_dns1123_label, ComponentSpec, Desired};

/// Label: the deployment's uid (as a label value, see [`label_value`]).
pub const LABEL_DEPLOYMENT_UID: &str = "yatai.ai/deployment-uid";
/// Label: the deployment's organization.
pub const LABEL_ORGANIZATION: &str = "yatai.ai/organization";
/// Label: the cluster's name in Yatai.
pub const LABEL_CLUSTER: &str = "yatai.ai/cluster";
/// Label: the deployment's name.
pub const LABEL_DEPLOYMENT: &str = "yatai.ai/deployment";
/// Label on everything this runtime writes.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The value of [`LABEL_MANAGED_BY`] (also the server-side apply field manager).
pub const MANAGER: &str = "yatai";
pub const LABEL_BENTO_REPOSITORY: &str = "yatai.ai/bento-repository";
pub const LABEL_BENTO_VERSION: &str = "yatai.ai/bento-version";
/// Annotation: the deployment's uid exactly (a label value may be a hash of it).
pub const ANNOTATION_DEPLOYMENT_UID: &str = "yatai.ai/deployment-uid";
/// Annotation: the revision the object was last applied for.
pub const ANNOTATION_REVISION_UID: &str = "yatai.ai/revision-uid";
/// Annotation: hash of the applied body; a live object with the same hash is not applied again.
pub const ANNOTATION_APPLIED_HASH: &str = "yatai.ai/applied-hash";
/// The deployment operator's annotation choosing the rollout strategy.
pub const ANNOTATION_DEPLOYMENT_STRATEGY: &str = "yatai.ai/deployment-strategy";

/// Why a [`Desired`] cannot be written as objects; the message names the field and says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidDesired(pub String);

/// A label value for any string: the string itself when it is a valid label value (at most 63 characters of
/// `[A-Za-z0-9._-]`, starting and ending with an alphanumeric), else `h-` and the MD5 of it.
pub fn label_value(s: &str) -> String {
    let valid = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric();
    if valid {
        s.to_string()
    } else {
        format!("h-{}", md5_hex(s))
    }
}

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

/// The bento tag `repo:version`.
pub fn bento_tag(desired: &Desired) -> String {
    format!("{}:{}", desired.bento_repository, desired.bento_version)
}

/// The name of the `BentoRequest` (and so of the `Bento`) of a bento: the name Yatai 1.x gave it
/// (`iris_classifier:abc1` → `iris-classifier--abc-1`), so that deployments converted from Yatai 1.x and ours share
/// it; `bento-<md5 of the tag>` when that is not a DNS-1123 label. Stable, at most 63 characters.
pub fn bento_request_name(repository: &str, version: &str) -> String {
    let tag = format!("{repository}:{version}");
    let name = bento_name_from_tag(&tag);
    if validate_dns1123_label("name", &name).is_ok() {
        return name;
    }
    let mut hashed = format!("bento-{}", md5_hex(&tag));
    hashed.truncate(63);
    hashed
}

/// The labels that tie an object to its deployment.
fn deployment_labels(desired: &Desired, uid: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED_BY.into(), MANAGER.into()),
        (LABEL_DEPLOYMENT_UID.into(), label_value(uid)),
        (
            LABEL_ORGANIZATION.into(),
            label_value(&desired.organization),
        ),
        (LABEL_CLUSTER.into(), label_value(&desired.cluster)),
    ])
}

/// The label selector of a deployment's objects.
pub fn uid_selector(uid: &str) -> String {
    format!(
        "{LABEL_MANAGED_BY}={MANAGER},{LABEL_DEPLOYMENT_UID}={}",
        label_value(uid)
    )
}

/// Sets [`ANNOTATION_APPLIED_HASH`] to the hash of the object as it is without it.
fn stamp<T: serde::Serialize>(object: &mut T, meta: impl Fn(&mut T) -> &mut ObjectMeta) {
    meta(object)
        .annotations
        .get_or_insert_with(Default::default)
        .remove(ANNOTATION_APPLIED_HASH);
    let hash = md5_hex(&serde_json::to_string(object).expect("CRD types serialize"));
    meta(object)
        .annotations
        .get_or_insert_with(Default::default)
        .insert(ANNOTATION_APPLIED_HASH.into(), hash);
}

/// The hash a live object was applied with.
pub fn applied_hash(meta: &ObjectMeta) -> Option<&str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_APPLIED_HASH))
        .map(String::as_str)
}

/// The parsed parts of the client's target config (`Desired.config`, the v1 shape) this runtime uses.
#[derive(Debug, Default)]
struct TargetConfig {
    enable_ingress: bool,
    deployment_strategy: Option<String>,
    extra_pod_metadata: Option<ExtraPodMetadata>,
    extra_pod_spec: Option<ExtraPodSpec>,
    monitor_exporter: Option<MonitorExporterSpec>,
    runner_overrides: BTreeMap<String, (Option<ExtraPodMetadata>, Option<ExtraPodSpec>)>,
    bento_request_overrides: Map<String, Value>,
}

/// The keys of `bento_request_overrides` (bentoml 1.1 `BentoRequestOverrides`), all fields of `BentoRequestSpec`.
const BENTO_REQUEST_OVERRIDES: [&str; 7] = [
    "imageBuildTimeout",
    "imageBuilderExtraPodMetadata",
    "imageBuilderExtraPodSpec",
    "imageBuilderExtraContainerEnv",
    "imageBuilderContainerResources",
    "dockerConfigJsonSecretName",
    "downloaderContainerEnvFrom",
];

fn field<T: serde::de::DeserializeOwned>(
    object: &Value,
    key: &str,
    path: &str,
) -> Result<Option<T>, InvalidDesired> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|e| {
            InvalidDesired(format!(
                "config.{path}{key} is not valid ({e}); fix it in the deployment's config"
            ))
        }),
    }
}

fn parse_config(config: &Value) -> Result<TargetConfig, InvalidDesired> {
    let mut out = TargetConfig {
        enable_ingress: field::<bool>(config, "enable_ingress", "")?.unwrap_or(false),
        deployment_strategy: field(config, "deployment_strategy", "")?,
        ..Default::default()
    };
    if let Some(o) = config.get("bento_deployment_overrides") {
        let p = "bento_deployment_overrides.";
        out.extra_pod_metadata = field(o, "extraPodMetadata", p)?;
        out.extra_pod_spec = field(o, "extraPodSpec", p)?;
        out.monitor_exporter = field(o, "monitorExporter", p)?;
    }
    if let Some(runners) = config.get("runners").and_then(Value::as_object) {
        for (name, runner) in runners {
            if let Some(o) = runner.get("bento_deployment_overrides") {
                let p = format!("runners.{name}.bento_deployment_overrides.");
                out.runner_overrides.insert(
                    name.clone(),
                    (
                        field(o, "extraPodMetadata", &p)?,
                        field(o, "extraPodSpec", &p)?,
                    ),
                );
            }
        }
    }
    if let Some(o) = config
        .get("bento_request_overrides")
        .and_then(Value::as_object)
    {
        for (k, v) in o {
            if BENTO_REQUEST_OVERRIDES.contains(&k.as_str()) && !v.is_null() {
                out.bento_request_overrides.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(out)
}

/// Checks what must hold before anything is written: the names are DNS-1123 labels.
pub fn validate(desired: &Desired) -> Result<(), InvalidDesired> {
    validate_dns1123_label("namespace", &desired.namespace)
        .map_err(|e| InvalidDesired(e.to_string()))?;
    validate_dns1123_label("deployment name", &desired.name)
        .map_err(|e| InvalidDesired(e.to_string()))?;
    if desired.bento_repository.is_empty() || desired.bento_version.is_empty() {
        return Err(InvalidDesired(
            "the deployment names no bento (repository and version are required)".into(),
        ));
    }
    parse_config(&desired.config).map(|_| ())
}

/// The `BentoRequest` of the deployment's bento. `creator_uid` is the uid of the deployment that first created it
/// (deployments of the same bento in one namespace share it); the live label is kept so that two deployments do not
/// take it from each other on every reconcile.
pub fn bento_request(desired: &Desired, creator_uid: &str) -> Result<BentoRequest, InvalidDesired> {
    validate(desired)?;
    let config = parse_config(&desired.config)?;
    let mut spec = Value::Object(config.bento_request_overrides);
    spec["bentoTag"] = Value::String(bento_tag(desired));
    let mut spec: BentoRequestSpec = serde_json::from_value(spec).map_err(|e| {
        InvalidDesired(format!(
            "config.bento_request_overrides is not valid ({e}); fix it in the deployment's config"
        ))
    })?;
    if !desired.runners.is_empty() {
        spec.runners = Some(
            desired
                .runners
                .keys()
                .map(|name| BentoRunner {
                    name: name.clone(),
                    ..Default::default()
                })
                .collect(),
        );
    }
    let name = bento_request_name(&desired.bento_repository, &desired.bento_version);
    let mut labels = deployment_labels(desired, creator_uid);
    labels.insert(
        LABEL_BENTO_REPOSITORY.into(),
        label_value(&desired.bento_repository),
    );
    labels.insert(
        LABEL_BENTO_VERSION.into(),
        label_value(&desired.bento_version),
    );
    let mut request = BentoRequest::new(&name, spec);
    request.metadata.namespace = Some(desired.namespace.clone());
    request.metadata.labels = Some(labels);
    request.metadata.annotations = Some(BTreeMap::from([(
        ANNOTATION_DEPLOYMENT_UID.into(),
        creator_uid.to_string(),
    )]));
    stamp(&mut request, |r| &mut r.metadata);
    Ok(request)
}

fn resources(r: &yatai_domain::deployments::Resources) -> Option<Resources> {
    let item = |i: &yatai_domain::deployments::ResourceItem| ResourceItem {
        cpu: i.cpu.clone(),
        memory: i.memory.clone(),
        gpu: i.gpu.clone(),
        custom: None,
    };
    if r.requests.is_none() && r.limits.is_none() {
        return None;
    }
    Some(Resources {
        requests: r.requests.as_ref().map(item),
        limits: r.limits.as_ref().map(item),
    })
}

fn envs(c: &ComponentSpec) -> Option<Vec<EnvVar>> {
    (!c.envs.is_empty()).then(|| {
        c.envs
            .iter()
            .map(|(name, value)| EnvVar {
                name: name.clone(),
                value: Some(value.clone()),
                value_from: None,
            })
            .collect()
    })
}

fn autoscaling(c: &ComponentSpec) -> Autoscaling {
    let min = i32::try_from(c.min_replicas).unwrap_or(i32::MAX);
    let max = i32::try_from(c.max_replicas).unwrap_or(i32::MAX).max(min);
    Autoscaling {
        min_replicas: min,
        max_replicas: max,
        ..Default::default()
    }
}

/// The `BentoDeployment` (`serving.yatai.ai/v2alpha1`, the version `yatai deployment-operator` watches) named after
/// the deployment, in its namespace, serving the bento of [`bento_request`].
pub fn bento_deployment(desired: &Desired) -> Result<BentoDeployment, InvalidDesired> {
    validate(desired)?;
    let config = parse_config(&desired.config)?;
    let runners: Vec<BentoDeploymentRunnerSpec> = desired
        .runners
        .iter()
        .map(|(name, c)| {
            let (metadata, pod_spec) = config
                .runner_overrides
                .get(name)
                .cloned()
                .unwrap_or_default();
            BentoDeploymentRunnerSpec {
                name: Some(name.clone()),
                resources: resources(&c.resources),
                autoscaling: Some(autoscaling(c)),
                envs: envs(c),
                extra_pod_metadata: metadata,
                extra_pod_spec: pod_spec,
                ..Default::default()
            }
        })
        .collect();
    let spec = BentoDeploymentSpec {
        bento: bento_request_name(&desired.bento_repository, &desired.bento_version),
        annotations: config
            .deployment_strategy
            .map(|s| BTreeMap::from([(ANNOTATION_DEPLOYMENT_STRATEGY.to_string(), s)])),
        resources: resources(&desired.api_server.resources),
        autoscaling: Some(autoscaling(&desired.api_server)),
        envs: envs(&desired.api_server),
        runners: (!runners.is_empty()).then_some(runners),
        ingress: Some(BentoDeploymentIngressSpec {
            enabled: Some(config.enable_ingress),
            ..Default::default()
        }),
        monitor_exporter: config.monitor_exporter,
        extra_pod_metadata: config.extra_pod_metadata,
        extra_pod_spec: config.extra_pod_spec,
        ..Default::default()
    };
    let mut labels = deployment_labels(desired, &desired.uid);
    labels.insert(LABEL_DEPLOYMENT.into(), desired.name.clone());
    let mut bd = BentoDeployment::new(&desired.name, spec);
    bd.metadata.namespace = Some(desired.namespace.clone());
    bd.metadata.labels = Some(labels);
    bd.metadata.annotations = Some(BTreeMap::from([
        (ANNOTATION_DEPLOYMENT_UID.into(), desired.uid.clone()),
        (ANNOTATION_REVISION_UID.into(), desired.revision_uid.clone()),
    ]));
    stamp(&mut bd, |b| &mut b.metadata);
    Ok(bd)
}

/// Whether every field of `desired` has the same value in `live` (fields only others set are ignored; lists must
/// match item for item): a live object edited by hand is applied again, one only defaulted by the API server is
/// not.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, v)| match l.get(k) {
            Some(lv) => is_subset(v, lv),
            None => {
                v.is_null()
                    || v.as_object().is_some_and(|o| o.is_empty())
                    || v.as_array().is_some_and(|a| a.is_empty())
            }
        }),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| is_subset(a, b))
        }
        _ => desired == live,
    }
}

/// Whether a live object already is what `desired` would make it: applied with the same body (hash), and its
/// labels and spec not changed since by someone else.
pub fn up_to_date<T: serde::Serialize>(
    desired: &T,
    desired_meta: &ObjectMeta,
    live_meta: &ObjectMeta,
    live_spec: Option<&Value>,
) -> bool {
    if applied_hash(live_meta).is_none() || applied_hash(live_meta) != applied_hash(desired_meta) {
        return false;
    }
    let labels_kept = desired_meta.labels.iter().flatten().all(|(k, v)| {
        live_meta
            .labels
            .as_ref()
            .and_then(|l| l.get(k))
            .is_some_and(|lv| lv == v)
    });
    let want = serde_json::to_value(desired).unwrap_or_default();
    labels_kept && is_subset(&want["spec"], live_spec.unwrap_or(&Value::Null))
}

/// The deployment uid of a live object: the annotation (exact), else the label.
pub fn uid_of(meta: &ObjectMeta) -> Option<String> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_DEPLOYMENT_UID))
        .or_else(|| {
            meta.labels
                .as_ref()
                .and_then(|l| l.get(LABEL_DEPLOYMENT_UID))
        })
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bento_request_names_are_dns1123_stable_and_short() {
        assert_eq!(
            bento_request_name("iris_classifier", "abc1"),
            "iris-classifier--abc-1"
        );
        let long = bento_request_name(&"r".repeat(60), "v1");
        assert!(long.starts_with("bento-") && long.len() <= 63, "{long}");
        assert_eq!(long, bento_request_name(&"r".repeat(60), "v1"));
        for (repo, version) in [
            ("a", "b"),
            ("UPPER", "x"),
            ("dots.in.name", "v_1"),
            ("é", "1"),
        ] {
            let n = bento_request_name(repo, version);
            validate_dns1123_label("name", &n).unwrap();
        }
    }

    #[test]
    fn label_values_are_valid_or_hashed() {
        assert_eq!(label_value("abc-123"), "abc-123");
        assert_eq!(label_value("a b").len(), 34);
        assert!(label_value(&"x".repeat(64)).starts_with("h-"));
        assert!(label_value("").starts_with("h-"));
    }
}
