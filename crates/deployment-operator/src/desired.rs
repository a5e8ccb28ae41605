//! The pure heart of the operator: a BentoDeployment and its Bento in, the objects that should exist out.
//!
//! The objects are those the original Go operator wrote, field for field (names, labels, selectors, the pod
//! template with its sidecars, probes, env, ports, resources and volumes), so that a cluster it managed is taken
//! over without a rollout. Where it wrote something invalid or lost user input, this function says so instead
//! (see docs/deployment-operator.md).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, ExecAction, HTTPGetAction, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SeccompProfile, SecurityContext, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use serde::Serialize;
use yatai_crds::bento_deployment::convert::default_cpu_metric;
use yatai_crds::bento_deployment::v2alpha1::{
    Autoscaling, ExtraPodMetadata, ExtraPodSpec, Resources,
};
use yatai_crds::quantity::{self, Format};
use yatai_crds::{Bento, BentoDeployment};

use crate::config::{Config, TlsMode};
use crate::envoy;
use crate::names::{self, Component};

/// Port the bento serves on (`PORT` may change it), named `http`.
pub const BENTO_PORT: i32 = 3000;
pub const BENTO_PORT_NAME: &str = "http";
/// Service port that always reaches the bento directly (the original's debug-routing proxy sits on 3000).
pub const NON_PROXY_PORT: i32 = 3001;
const MONITOR_EXPORTER_PORT: i32 = 3002;
/// Port of the metrics sidecar, named `metrics`.
pub const METRICS_PORT: i32 = 3003;
const PROXY_PORT: i32 = 3004;
const MONITOR_EXPORTER_PROBE_PORT: i32 = 3005;

const ANNOTATION_STRATEGY: &str = "yatai.ai/deployment-strategy";
const ANNOTATION_DEBUG_MODE: &str = "yatai.ai/enable-debug-mode";
const ANNOTATION_PRIVILEGED: &str = "yatai.ai/enable-container-privileged";
const ANNOTATION_PTRACE: &str = "yatai.ai/enable-container-ptrace";
const ANNOTATION_RUN_AS_ROOT: &str = "yatai.ai/run-container-as-root";
const ANNOTATION_HOST_IPC: &str = "yatai.ai/enable-host-ipc";
const ANNOTATION_HOST_NETWORK: &str = "yatai.ai/enable-host-network";
const ANNOTATION_HOST_PID: &str = "yatai.ai/enable-host-pid";
const ANNOTATION_PROXY_REQUESTS_CPU: &str = "yatai.ai/proxy-sidecar-resources-requests-cpu";
const ANNOTATION_PROXY_REQUESTS_MEMORY: &str = "yatai.ai/proxy-sidecar-resources-requests-memory";
const ANNOTATION_PROXY_LIMITS_CPU: &str = "yatai.ai/proxy-sidecar-resources-limits-cpu";
const ANNOTATION_PROXY_LIMITS_MEMORY: &str = "yatai.ai/proxy-sidecar-resources-limits-memory";

/// One object to apply.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Object {
    Deployment(Box<Deployment>),
    Service(Service),
    HorizontalPodAutoscaler(HorizontalPodAutoscaler),
    Ingress(Ingress),
    ConfigMap(ConfigMap),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Deployment(_) => "Deployment",
            Object::Service(_) => "Service",
            Object::HorizontalPodAutoscaler(_) => "HorizontalPodAutoscaler",
            Object::Ingress(_) => "Ingress",
            Object::ConfigMap(_) => "ConfigMap",
        }
    }

    pub fn api_version(&self) -> &'static str {
        match self {
            Object::Deployment(_) => "apps/v1",
            Object::Service(_) | Object::ConfigMap(_) => "v1",
            Object::HorizontalPodAutoscaler(_) => "autoscaling/v2",
            Object::Ingress(_) => "networking.k8s.io/v1",
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Deployment(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::HorizontalPodAutoscaler(o) => &o.metadata,
            Object::Ingress(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
        }
    }

    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// The object as JSON with `apiVersion` and `kind` (the form applied and printed).
    pub fn to_value(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("Kubernetes objects serialise");
        let map = v.as_object_mut().expect("an object");
        map.insert("apiVersion".into(), self.api_version().into());
        map.insert("kind".into(), self.kind().into());
        v
    }
}

/// The objects a BentoDeployment should have, and the labels that select its API server pods.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub objects: Vec<Object>,
    pub pod_selector: BTreeMap<String, String>,
}

/// A BentoDeployment that cannot be turned into objects, with the field at fault and what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

fn spec_error(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        message: message.into(),
    }
}

/// Computes every object for `bd` served by `bento`. Checks the whole input first, so an error means no object at
/// all (never half a set).
pub fn desired(bd: &BentoDeployment, bento: &Bento, config: &Config) -> Result<Desired, SpecError> {
    validate(bd, bento, config)?;
    let mut objects = Vec::new();
    for (index, runner) in bento.spec.runners().iter().enumerate() {
        let c = Component::Runner {
            name: &runner.name,
            index,
        };
        objects.push(Object::Deployment(Box::new(deployment(
            bd, bento, config, c,
        )?)));
        objects.push(Object::HorizontalPodAutoscaler(hpa(bd, bento, c)));
        objects.push(Object::Service(service(bd, bento, c)));
    }
    let api = Component::ApiServer;
    objects.push(Object::ConfigMap(envoy_config_map(bd)));
    objects.push(Object::Deployment(Box::new(deployment(
        bd, bento, config, api,
    )?)));
    objects.push(Object::HorizontalPodAutoscaler(hpa(bd, bento, api)));
    objects.push(Object::Service(service(bd, bento, api)));
    if bd.spec.ingress_enabled() {
        objects.push(Object::Ingress(ingress(bd, bento, config)?));
    }
    let pod_selector =
        BTreeMap::from([(names::LABEL_SELECTOR.to_string(), names::kube_name(bd, api))]);
    Ok(Desired {
        objects,
        pod_selector,
    })
}

fn validate(bd: &BentoDeployment, bento: &Bento, config: &Config) -> Result<(), SpecError> {
    if bd.metadata.name.as_deref().unwrap_or_default().is_empty() {
        return Err(spec_error("metadata.name", "is empty"));
    }
    if bento.spec.image.is_empty() {
        return Err(spec_error(
            "bento",
            format!("Bento {} has no image", bento.spec.tag),
        ));
    }
    validate_autoscaling("spec.autoscaling", bd.spec.autoscaling.as_ref())?;
    validate_resources("spec.resources", bd.spec.resources.as_ref())?;
    let bento_runners: Vec<&str> = bento
        .spec
        .runners()
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    for (i, runner) in bd.spec.runners().iter().enumerate() {
        let field = format!("spec.runners[{i}]");
        let Some(name) = runner.name.as_deref().filter(|n| !n.is_empty()) else {
            return Err(spec_error(
                format!("{field}.name"),
                "is missing: name the bento runner these settings are for",
            ));
        };
        if !bento_runners.contains(&name) {
            let has = if bento_runners.is_empty() {
                "it has no runners".to_string()
            } else {
                format!("its runners are {}", bento_runners.join(", "))
            };
            return Err(spec_error(
                format!("{field}.name"),
                format!(
                    "the bento {} has no runner {name:?} ({has})",
                    bento.spec.tag
                ),
            ));
        }
        validate_autoscaling(&format!("{field}.autoscaling"), runner.autoscaling.as_ref())?;
        validate_resources(&format!("{field}.resources"), runner.resources.as_ref())?;
        port_from_envs(&format!("{field}.envs"), runner.envs.as_deref())?;
        component_annotations(&field, runner.annotations.as_ref())?;
    }
    port_from_envs("spec.envs", bd.spec.envs.as_deref())?;
    component_annotations("spec", bd.spec.annotations.as_ref())?;
    proxy_resources(bd.spec.annotations.as_ref())?;
    is_old_bentoml(bento)?;
    if bd.spec.ingress_enabled() {
        if config
            .ingress
            .domain_suffix
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            return Err(spec_error(
                "spec.ingress.enabled",
                "the Ingress needs a host, and the operator has no domain suffix: start it with --domain-suffix \
                 (the original's `domain-suffix` in its `network` ConfigMap)",
            ));
        }
        if config.ingress.tls_mode == TlsMode::Static && config.ingress.static_tls_secret.is_none()
        {
            return Err(spec_error(
                "spec.ingress",
                "the operator's TLS mode is static but it has no --ingress-static-tls-secret",
            ));
        }
    }
    Ok(())
}

fn validate_autoscaling(field: &str, a: Option<&Autoscaling>) -> Result<(), SpecError> {
    let Some(a) = a else { return Ok(()) };
    if a.min_replicas < 0 {
        return Err(spec_error(
            format!("{field}.minReplicas"),
            format!("is {}: replicas cannot be negative", a.min_replicas),
        ));
    }
    if a.max_replicas < 0 {
        return Err(spec_error(
            format!("{field}.maxReplicas"),
            format!("is {}: replicas cannot be negative", a.max_replicas),
        ));
    }
    if a.min_replicas == 0 {
        return Err(spec_error(
            format!("{field}.minReplicas"),
            "is 0: an HPA keeps at least 1 replica",
        ));
    }
    if a.max_replicas < a.min_replicas {
        return Err(spec_error(
            field,
            format!(
                "minReplicas ({}) is greater than maxReplicas ({})",
                a.min_replicas, a.max_replicas
            ),
        ));
    }
    Ok(())
}

fn check_quantity(field: String, value: &str) -> Result<String, SpecError> {
    quantity::canonical(value).map_err(|reason| {
        spec_error(
            field,
            format!("{value:?} is not a valid quantity: {reason} (examples: 500m, 2, 512Mi, 1Gi)"),
        )
    })
}

fn validate_resources(field: &str, r: Option<&Resources>) -> Result<(), SpecError> {
    resource_requirements(field, r).map(|_| ())
}

/// Yatai's resource shorthand as Kubernetes requirements, over the original's defaults (requests 300m / 500Mi,
/// limits 500m / 1Gi). Quantities are written in canonical form, as the original's Go client sent them.
fn resource_requirements(
    field: &str,
    r: Option<&Resources>,
) -> Result<ResourceRequirements, SpecError> {
    let mut requests = BTreeMap::from([
        ("cpu".to_string(), Quantity("300m".into())),
        ("memory".to_string(), Quantity("500Mi".into())),
    ]);
    let mut limits = BTreeMap::from([
        ("cpu".to_string(), Quantity("500m".into())),
        ("memory".to_string(), Quantity("1Gi".into())),
    ]);
    if let Some(r) = r {
        for (part, item, list, gpu) in [
            ("limits", r.limits.as_ref(), &mut limits, true),
            // Requests never carry the GPU shorthand (the original ignored it there too: GPUs are limits).
            ("requests", r.requests.as_ref(), &mut requests, false),
        ] {
            let Some(item) = item else { continue };
            let mut set =
                |name: &str, key: &str, value: &Option<String>| -> Result<(), SpecError> {
                    if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                        let q = check_quantity(format!("{field}.{part}.{name}"), v)?;
                        list.insert(key.to_string(), Quantity(q));
                    }
                    Ok(())
                };
            set("cpu", "cpu", &item.cpu)?;
            set("memory", "memory", &item.memory)?;
            if gpu {
                set("gpu", "nvidia.com/gpu", &item.gpu)?;
            }
            for (k, v) in item.custom.iter().flatten() {
                let q = check_quantity(format!("{field}.{part}.custom.{k}"), v)?;
                list.insert(k.clone(), Quantity(q));
            }
        }
    }
    Ok(ResourceRequirements {
        requests: Some(requests),
        limits: Some(limits),
        claims: None,
    })
}

/// The port the bento listens on: `PORT` from the envs when given.
fn port_from_envs(field: &str, envs: Option<&[EnvVar]>) -> Result<i32, SpecError> {
    let Some(env) = envs.into_iter().flatten().find(|e| e.name == "PORT") else {
        return Ok(BENTO_PORT);
    };
    let value = env.value.as_deref().unwrap_or_default();
    value
        .parse::<i32>()
        .ok()
        .filter(|p| (1..=65535).contains(p))
        .ok_or_else(|| {
            spec_error(
                format!("{field}.PORT"),
                format!("{value:?} is not a port number (1-65535)"),
            )
        })
}

fn component_annotations(
    field: &str,
    a: Option<&BTreeMap<String, String>>,
) -> Result<(), SpecError> {
    strategy(a)
        .map(|_| ())
        .map_err(|m| spec_error(format!("{field}.annotations.{ANNOTATION_STRATEGY}"), m))
}

fn annotation<'a>(a: Option<&'a BTreeMap<String, String>>, key: &str) -> Option<&'a str> {
    a.and_then(|a| a.get(key)).map(String::as_str)
}

fn flag(a: Option<&BTreeMap<String, String>>, key: &str) -> bool {
    annotation(a, key) == Some("true")
}

fn strategy(a: Option<&BTreeMap<String, String>>) -> Result<DeploymentStrategy, String> {
    let rolling = |surge: IntOrString, unavailable: IntOrString| DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(surge),
            max_unavailable: Some(unavailable),
        }),
    };
    let pct = |s: &str| IntOrString::String(s.into());
    Ok(match annotation(a, ANNOTATION_STRATEGY).unwrap_or_default() {
        "" | "RollingUpdate" => rolling(pct("25%"), pct("25%")),
        "Recreate" => DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None },
        "RampedSlowRollout" => rolling(IntOrString::Int(1), IntOrString::Int(0)),
        "BestEffortControlledRollout" => rolling(IntOrString::Int(0), pct("20%")),
        other => {
            return Err(format!(
                "{other:?} is not a strategy (RollingUpdate, Recreate, RampedSlowRollout, BestEffortControlledRollout)"
            ))
        }
    })
}

fn proxy_resources(
    a: Option<&BTreeMap<String, String>>,
) -> Result<ResourceRequirements, SpecError> {
    let q = |key: &str, default: &str| -> Result<Quantity, SpecError> {
        let v = annotation(a, key)
            .filter(|v| !v.is_empty())
            .unwrap_or(default);
        Ok(Quantity(check_quantity(
            format!("spec.annotations.{key}"),
            v,
        )?))
    };
    Ok(ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), q(ANNOTATION_PROXY_REQUESTS_CPU, "100m")?),
            (
                "memory".into(),
                q(ANNOTATION_PROXY_REQUESTS_MEMORY, "200Mi")?,
            ),
        ])),
        limits: Some(BTreeMap::from([
            ("cpu".into(), q(ANNOTATION_PROXY_LIMITS_CPU, "300m")?),
            (
                "memory".into(),
                q(ANNOTATION_PROXY_LIMITS_MEMORY, "1000Mi")?,
            ),
        ])),
        claims: None,
    })
}

/// BentoML up to 1.0.0a7 took the runner's and API server's bind address as a positional argument.
fn is_old_bentoml(bento: &Bento) -> Result<bool, SpecError> {
    let Some(v) = bento
        .spec
        .context
        .as_ref()
        .and_then(|c| c.bentoml_version.as_deref())
        .filter(|v| !v.is_empty())
    else {
        return Ok(false);
    };
    let parsed = pep440(v).ok_or_else(|| {
        spec_error(
            "bento.spec.context.bentomlVersion",
            format!("{v:?} is not a version"),
        )
    })?;
    Ok(parsed <= (vec![1, 0, 0], (0, 7)))
}

/// A PEP 440 version as (release, (pre-release rank, number)): enough to order BentoML versions. Final releases
/// rank above their pre-releases (a=0, b=1, rc=2, final=3).
fn pep440(v: &str) -> Option<(Vec<u64>, (u8, u64))> {
    let v = v.trim().trim_start_matches('v');
    let v = v.split(['+', '-']).next()?;
    let end = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (release, rest) = v.split_at(end);
    let mut nums: Vec<u64> = release
        .trim_end_matches('.')
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    while nums.len() < 3 {
        nums.push(0);
    }
    let rest = rest.trim_start_matches('.');
    let pre = if rest.is_empty() || rest.starts_with("post") || rest.starts_with("dev") {
        (3, 0)
    } else {
        let (rank, num) = if let Some(n) = rest.strip_prefix("rc") {
            (2, n)
        } else if let Some(n) = rest.strip_prefix('a') {
            (0, n)
        } else if let Some(n) = rest.strip_prefix('b') {
            (1, n)
        } else {
            return None;
        };
        let digits: String = num.chars().take_while(|c| c.is_ascii_digit()).collect();
        (rank, digits.parse().unwrap_or(0))
    };
    Some((nums, pre))
}

fn owner_reference(bd: &BentoDeployment) -> OwnerReference {
    OwnerReference {
        api_version: BentoDeployment::api_version(&()).into_owned(),
        kind: BentoDeployment::kind(&()).into_owned(),
        name: bd.metadata.name.clone().unwrap_or_default(),
        uid: bd.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn meta(
    bd: &BentoDeployment,
    name: String,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: bd.metadata.namespace.clone(),
        labels,
        annotations,
        owner_references: Some(vec![owner_reference(bd)]),
        ..Default::default()
    }
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn http_probe(path: &str, port: IntOrString, initial: i32, timeout: i32, failures: i32) -> Probe {
    Probe {
        initial_delay_seconds: Some(initial),
        timeout_seconds: Some(timeout),
        failure_threshold: Some(failures),
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn exec_probe(command: Vec<String>, initial: i32, timeout: i32, failures: i32) -> Probe {
    Probe {
        initial_delay_seconds: Some(initial),
        timeout_seconds: Some(timeout),
        failure_threshold: Some(failures),
        exec: Some(ExecAction {
            command: Some(command),
        }),
        ..Default::default()
    }
}

fn port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: number,
        protocol: Some("TCP".into()),
        ..Default::default()
    }
}

fn requirements(
    req_cpu: &str,
    req_mem: &str,
    lim_cpu: &str,
    lim_mem: &str,
) -> ResourceRequirements {
    let q = |s: &str| Quantity(quantity::canonical(s).expect("constant quantities are valid"));
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".into(), q(req_cpu)),
            ("memory".into(), q(req_mem)),
        ])),
        limits: Some(BTreeMap::from([
            ("cpu".into(), q(lim_cpu)),
            ("memory".into(), q(lim_mem)),
        ])),
        claims: None,
    }
}

/// The main container's environment: the user's (first of each name wins), then the defaults the bento expects.
fn main_envs(
    bd: &BentoDeployment,
    config: &Config,
    specs: Option<&[EnvVar]>,
    port: i32,
    monitor: bool,
) -> Vec<EnvVar> {
    let mut envs: Vec<EnvVar> = Vec::new();
    for e in specs.into_iter().flatten() {
        if !envs.iter().any(|x| x.name == e.name) {
            envs.push(e.clone());
        }
    }
    let mut defaults = vec![
        env("PORT", port.to_string()),
        env(
            "YATAI_T_DEPLOYMENT_UID",
            bd.metadata.uid.clone().unwrap_or_default(),
        ),
        env(
            "YATAI_BENTO_DEPLOYMENT_NAME",
            bd.metadata.name.clone().unwrap_or_default(),
        ),
        env(
            "YATAI_BENTO_DEPLOYMENT_NAMESPACE",
            bd.metadata.namespace.clone().unwrap_or_default(),
        ),
    ];
    if let Some(y) = &config.yatai {
        defaults.push(env("YATAI_T_VERSION", y.version.clone()));
        defaults.push(env("YATAI_T_ORG_UID", y.org_uid.clone()));
        defaults.push(env("YATAI_T_CLUSTER_UID", y.cluster_uid.clone()));
    }
    for d in defaults {
        if !envs.iter().any(|x| x.name == d.name) {
            envs.push(d);
        }
    }
    if monitor {
        // BentoML sends monitoring data over OTLP to the exporter sidecar, unless the user configured monitoring.
        let otlp = format!(
            "monitoring.enabled=true\nmonitoring.type=otlp\nmonitoring.options.endpoint=http://127.0.0.1:{MONITOR_EXPORTER_PORT}\nmonitoring.options.insecure=true"
        );
        match envs.iter().position(|e| e.name == "BENTOML_CONFIG_OPTIONS") {
            None => envs.push(env("BENTOML_CONFIG_OPTIONS", otlp)),
            Some(i) => {
                let current = envs[i].value.clone().unwrap_or_default();
                if !current.contains("monitoring") {
                    envs.remove(i);
                    let mut options = current.trim().to_string();
                    if !options.is_empty() {
                        options.push('\n');
                    }
                    options.push_str(&otlp);
                    envs.push(env("BENTOML_CONFIG_OPTIONS", options));
                }
            }
        }
    }
    envs
}

fn deployment(
    bd: &BentoDeployment,
    bento: &Bento,
    config: &Config,
    c: Component,
) -> Result<Deployment, SpecError> {
    let name = names::kube_name(bd, c);
    let settings = c.runner_name().and_then(|n| bd.spec.runner(n));
    let resource_annotations = match c {
        Component::ApiServer => bd.spec.annotations.as_ref(),
        Component::Runner { .. } => settings.and_then(|r| r.annotations.as_ref()),
    };
    let strategy = strategy(resource_annotations).map_err(|m| spec_error("annotations", m))?;
    Ok(Deployment {
        metadata: meta(
            bd,
            name.clone(),
            Some(names::labels(bd, bento, c)),
            Some(names::annotations(bd, bento, c)),
        ),
        spec: DeploymentSpec {
            // No replicas: the HPA owns them.
            replicas: None,
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([(names::LABEL_SELECTOR.to_string(), name)])),
                match_expressions: None,
            },
            template: pod_template(bd, bento, config, c)?,
            strategy: Some(strategy),
            ..Default::default()
        },
        status: None,
    })
}

fn pod_template(
    bd: &BentoDeployment,
    bento: &Bento,
    config: &Config,
    c: Component,
) -> Result<PodTemplateSpec, SpecError> {
    let (repo, version) = bento.spec.name_and_version();
    let kube_name = names::kube_name(bd, c);
    let settings = c.runner_name().and_then(|n| bd.spec.runner(n));
    let (spec_envs, resource_annotations, yatai_resources, field) = match c {
        Component::ApiServer => (
            bd.spec.envs.as_deref(),
            bd.spec.annotations.as_ref(),
            bd.spec.resources.as_ref(),
            "spec".to_string(),
        ),
        Component::Runner { .. } => (
            settings.and_then(|r| r.envs.as_deref()),
            settings.and_then(|r| r.annotations.as_ref()),
            settings.and_then(|r| r.resources.as_ref()),
            "spec.runners[]".to_string(),
        ),
    };
    let monitor = c == Component::ApiServer
        && bd
            .spec
            .monitor_exporter
            .as_ref()
            .is_some_and(|m| m.enabled == Some(true));
    let container_port = port_from_envs(&format!("{field}.envs"), spec_envs)?;
    let envs = main_envs(bd, config, spec_envs, container_port, monitor);
    let debug = flag(resource_annotations, ANNOTATION_DEBUG_MODE);
    let old = is_old_bentoml(bento)?;

    let mut liveness = http_probe(
        "/livez",
        IntOrString::String(BENTO_PORT_NAME.into()),
        10,
        20,
        6,
    );
    let mut readiness = http_probe(
        "/readyz",
        IntOrString::String(BENTO_PORT_NAME.into()),
        5,
        5,
        12,
    );
    let bind = format!("tcp://0.0.0.0:{container_port}");
    let args: Vec<String> = match c {
        Component::Runner { name, .. } => {
            let mut a = vec![
                "./env/docker/entrypoint.sh",
                "python",
                "-m",
                "bentoml._internal.server.cli.runner",
                ".",
            ];
            if old {
                a.extend([name, &bind]);
            } else {
                a.extend(["--runner-name", name, "--bind", &bind]);
            }
            a.extend(["--working-dir", "."]);
            a.into_iter().map(String::from).collect()
        }
        Component::ApiServer if !bento.spec.runners().is_empty() => {
            // The API server finds each runner through its Service: the runner map BentoML's api_server takes.
            let mut runner_map = BTreeMap::new();
            let mut ready_urls = vec![format!("http://localhost:{container_port}/readyz")];
            let mut live_urls = vec![format!("http://localhost:{container_port}/healthz")];
            for r in bento.spec.runners() {
                let svc = names::runner_service_name(bd, bento, &r.name);
                runner_map.insert(r.name.clone(), format!("tcp://{svc}:{BENTO_PORT}"));
                ready_urls.push(format!("http://{svc}:{BENTO_PORT}/readyz"));
                live_urls.push(format!("http://{svc}:{BENTO_PORT}/healthz"));
            }
            let python = |urls: &[String]| {
                let calls: Vec<String> = urls.iter().map(|u| format!("urlopen('{u}')")).collect();
                vec![
                    "python3".to_string(),
                    "-c".to_string(),
                    format!("from urllib.request import urlopen; {}", calls.join("; ")),
                ]
            };
            liveness = exec_probe(python(&live_urls), 5, 5, 6);
            readiness = exec_probe(python(&ready_urls), 5, 5, 36);
            let map = serde_json::to_string(&runner_map).expect("a map of strings serialises");
            let mut a: Vec<String> = [
                "./env/docker/entrypoint.sh",
                "python",
                "-m",
                "bentoml._internal.server.cli.api_server",
                ".",
            ]
            .into_iter()
            .map(String::from)
            .collect();
            if !old {
                a.push("--bind".into());
            }
            a.extend([
                bind.clone(),
                "--runner-map".into(),
                format!("'{map}'"),
                "--working-dir".into(),
                ".".into(),
            ]);
            a
        }
        Component::ApiServer => [
            "./env/docker/entrypoint.sh",
            "bentoml",
            "serve",
            ".",
            "--production",
        ]
        .into_iter()
        .map(String::from)
        .collect(),
    };

    let resources = resource_requirements(&field, yatai_resources)?;
    // /dev/shm gets half the memory limit (64Mi without one), printed as the original's Go client printed it.
    let shm = match resources.limits.as_ref().and_then(|l| l.get("memory")) {
        Some(m) => {
            let (nanos, _) = quantity::parse(&m.0)
                .map_err(|e| spec_error(format!("{field}.resources.limits.memory"), e))?;
            quantity::format_value(quantity::milli(nanos) / 2 * 1_000_000, Format::BinarySi)
        }
        None => "64Mi".to_string(),
    };
    let mut volumes = vec![Volume {
        name: "shared-memory".into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity(shm)),
            ..Default::default()
        }),
        ..Default::default()
    }];

    let (sidecar_security, main_security) = if config.restricted_security_context {
        let restricted = SecurityContext {
            allow_privilege_escalation: Some(false),
            run_as_non_root: Some(true),
            run_as_user: Some(1000),
            run_as_group: Some(1000),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..Default::default()
        };
        // The bento images run as user bentoml (uid 1034).
        let main = SecurityContext {
            run_as_user: Some(1034),
            ..restricted.clone()
        };
        (Some(restricted), Some(main))
    } else {
        (None, None)
    };
    let mut main_security = main_security;
    if flag(resource_annotations, ANNOTATION_PRIVILEGED) {
        main_security
            .get_or_insert_with(Default::default)
            .privileged = Some(true);
    }
    if flag(resource_annotations, ANNOTATION_PTRACE) {
        main_security
            .get_or_insert_with(Default::default)
            .capabilities = Some(Capabilities {
            add: Some(vec!["SYS_PTRACE".into()]),
            drop: None,
        });
    }
    if flag(resource_annotations, ANNOTATION_RUN_AS_ROOT) {
        main_security
            .get_or_insert_with(Default::default)
            .run_as_user = Some(0);
    }

    let mut containers = vec![Container {
        name: "main".into(),
        image: Some(bento.spec.image.clone()),
        command: Some(vec!["sh".into(), "-c".into()]),
        args: Some(vec![args.join(" ")]),
        liveness_probe: Some(liveness),
        readiness_probe: Some(readiness),
        resources: Some(resources),
        env: Some(envs),
        tty: Some(true),
        stdin: Some(true),
        volume_mounts: Some(vec![VolumeMount {
            name: "shared-memory".into(),
            mount_path: "/dev/shm".into(),
            ..Default::default()
        }]),
        ports: Some(vec![port(BENTO_PORT_NAME, container_port)]),
        security_context: main_security,
        ..Default::default()
    }];

    let metrics_probe = || http_probe("/healthz", IntOrString::String("metrics".into()), 5, 5, 10);
    containers.push(Container {
        name: "metrics-transformer".into(),
        image: Some(config.images.metrics_transformer.clone()),
        resources: Some(requirements("10m", "10Mi", "100m", "100Mi")),
        readiness_probe: Some(metrics_probe()),
        liveness_probe: Some(metrics_probe()),
        env: Some(vec![
            env("BENTOML_SERVER_HOST", "localhost"),
            env("BENTOML_SERVER_PORT", container_port.to_string()),
            env("PORT", METRICS_PORT.to_string()),
            env(
                "OLD_METRICS_PREFIX",
                format!("BENTOML_{}_", repo.replace('-', ":")),
            ),
            env("NEW_METRICS_PREFIX", "BENTOML_"),
        ]),
        ports: Some(vec![port("metrics", METRICS_PORT)]),
        security_context: sidecar_security.clone(),
        ..Default::default()
    });

    if c == Component::ApiServer {
        volumes.push(Volume {
            name: "envoy-config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: envoy_config_map_name(bd),
                ..Default::default()
            }),
            ..Default::default()
        });
        let live_check = || {
            exec_probe(
                vec![
                    "sh".into(),
                    "-c".into(),
                    "curl -s localhost:9901/server_info | grep state | grep -q LIVE".into(),
                ],
                5,
                5,
                10,
            )
        };
        containers.push(Container {
            name: "proxy".into(),
            image: Some(config.images.proxy.clone()),
            command: Some(vec![
                "envoy".into(),
                "--config-path".into(),
                "/etc/envoy/envoy.yaml".into(),
            ]),
            volume_mounts: Some(vec![VolumeMount {
                name: "envoy-config".into(),
                mount_path: "/etc/envoy".into(),
                ..Default::default()
            }]),
            ports: Some(vec![port("http-proxy", PROXY_PORT)]),
            readiness_probe: Some(live_check()),
            liveness_probe: Some(live_check()),
            resources: Some(proxy_resources(bd.spec.annotations.as_ref())?),
            security_context: sidecar_security.clone(),
            ..Default::default()
        });
    }

    if monitor {
        let m = bd
            .spec
            .monitor_exporter
            .as_ref()
            .expect("monitor is only set with a monitor exporter");
        let mut option_envs = Vec::new();
        let mut seen = Vec::new();
        for e in m.structure_options.iter().flatten() {
            seen.push(e.name.to_lowercase());
            option_envs.push(EnvVar {
                name: format!("FLUENTBIT_OUTPUT_OPTION_{}", e.name.to_uppercase()),
                ..e.clone()
            });
        }
        // Sorted by key (a map): the original's order was random, which rolled pods on every update.
        for (k, v) in m.options.iter().flatten() {
            if !seen.contains(&k.to_lowercase()) {
                option_envs.push(env(
                    &format!("FLUENTBIT_OUTPUT_OPTION_{}", k.to_uppercase()),
                    v.clone(),
                ));
            }
        }
        let mut mounts = Vec::new();
        for (i, mount) in m.mounts.iter().flatten().enumerate() {
            let name = format!("monitor-exporter-{i}");
            volumes.push(mount.volume_source.clone().into_volume(name.clone()));
            mounts.push(VolumeMount {
                name,
                mount_path: mount.path.clone().unwrap_or_default(),
                read_only: mount.read_only.filter(|r| *r),
                ..Default::default()
            });
        }
        let mut envs = vec![
            env("FLUENTBIT_OTLP_PORT", MONITOR_EXPORTER_PORT.to_string()),
            env(
                "FLUENTBIT_HTTP_PORT",
                MONITOR_EXPORTER_PROBE_PORT.to_string(),
            ),
            env("FLUENTBIT_OUTPUT", m.output.clone().unwrap_or_default()),
        ];
        envs.extend(option_envs);
        containers.push(Container {
            name: "monitor-exporter".into(),
            image: Some(config.images.monitor_exporter.clone()),
            volume_mounts: Some(mounts),
            env: Some(envs),
            resources: Some(requirements("100m", "24Mi", "1000m", "72Mi")),
            readiness_probe: Some(http_probe(
                "/readyz",
                IntOrString::Int(MONITOR_EXPORTER_PROBE_PORT),
                5,
                5,
                10,
            )),
            liveness_probe: Some(http_probe(
                "/livez",
                IntOrString::Int(MONITOR_EXPORTER_PROBE_PORT),
                5,
                5,
                10,
            )),
            security_context: sidecar_security.clone(),
            ..Default::default()
        });
    }

    if debug {
        containers.push(Container {
            name: "debugger".into(),
            image: Some(config.images.debugger.clone()),
            command: Some(vec!["sleep".into(), "infinity".into()]),
            security_context: Some(SecurityContext {
                capabilities: Some(Capabilities {
                    add: Some(vec!["SYS_PTRACE".into()]),
                    drop: None,
                }),
                ..Default::default()
            }),
            resources: Some(requirements("100m", "100Mi", "1000m", "1000Mi")),
            stdin: Some(true),
            tty: Some(true),
            ..Default::default()
        });
    }

    let mut pod_labels = names::labels(bd, bento, c);
    pod_labels.insert(names::LABEL_BENTO_REPOSITORY.into(), repo.into());
    pod_labels.insert(names::LABEL_BENTO_VERSION.into(), version.into());
    pod_labels.insert(names::LABEL_SELECTOR.into(), kube_name);
    let mut pod_annotations = names::annotations(bd, bento, c);

    // A runner listed in the BentoDeployment uses its own pod extras (even none); others use the top-level ones.
    let (extra_meta, extra_spec): (Option<&ExtraPodMetadata>, Option<&ExtraPodSpec>) =
        match settings {
            Some(r) => (r.extra_pod_metadata.as_ref(), r.extra_pod_spec.as_ref()),
            None => (
                bd.spec.extra_pod_metadata.as_ref(),
                bd.spec.extra_pod_spec.as_ref(),
            ),
        };
    if let Some(m) = extra_meta {
        pod_annotations.extend(m.annotations.clone().into_iter().flatten());
        pod_labels.extend(m.labels.clone().into_iter().flatten());
    }

    let mut pod = PodSpec {
        containers,
        volumes: Some(volumes),
        image_pull_secrets: bento.spec.image_pull_secrets.clone(),
        ..Default::default()
    };
    if let Some(x) = extra_spec {
        pod.scheduler_name = x.scheduler_name.clone().filter(|s| !s.is_empty());
        pod.node_selector = x.node_selector.clone().filter(|m| !m.is_empty());
        pod.affinity = x.affinity.clone();
        pod.tolerations = x.tolerations.clone().filter(|t| !t.is_empty());
        pod.topology_spread_constraints = x
            .topology_spread_constraints
            .clone()
            .filter(|t| !t.is_empty());
        pod.containers
            .extend(x.containers.clone().into_iter().flatten());
        pod.service_account_name = x.service_account_name.clone().filter(|s| !s.is_empty());
    }
    if pod.service_account_name.is_none() {
        pod.service_account_name = Some(config.default_service_account.clone());
    }
    if flag(resource_annotations, ANNOTATION_HOST_IPC) {
        pod.host_ipc = Some(true);
    }
    if flag(resource_annotations, ANNOTATION_HOST_NETWORK) {
        pod.host_network = Some(true);
    }
    if flag(resource_annotations, ANNOTATION_HOST_PID) {
        pod.host_pid = Some(true);
    }
    if debug {
        pod.share_process_namespace = Some(true);
    }
    Ok(PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(pod_labels),
            annotations: Some(pod_annotations),
            ..Default::default()
        }),
        spec: Some(pod),
    })
}

fn hpa(bd: &BentoDeployment, bento: &Bento, c: Component) -> HorizontalPodAutoscaler {
    let name = names::kube_name(bd, c);
    let conf = match c {
        Component::ApiServer => bd.spec.autoscaling.clone(),
        Component::Runner { name, .. } => bd.spec.runner(name).and_then(|r| r.autoscaling.clone()),
    }
    .unwrap_or(Autoscaling {
        min_replicas: 1,
        max_replicas: 1,
        metrics: None,
        behavior: None,
    });
    let metrics = conf
        .metrics
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| vec![default_cpu_metric()]);
    HorizontalPodAutoscaler {
        metadata: meta(
            bd,
            name.clone(),
            Some(names::labels(bd, bento, c)),
            Some(names::annotations(bd, bento, c)),
        ),
        spec: HorizontalPodAutoscalerSpec {
            min_replicas: Some(conf.min_replicas),
            max_replicas: conf.max_replicas,
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name,
            },
            metrics: Some(metrics),
            behavior: conf.behavior,
        },
        status: None,
    }
}

fn service(bd: &BentoDeployment, bento: &Bento, c: Component) -> Service {
    let labels = names::labels(bd, bento, c);
    let mut selector = labels.clone();
    if c == Component::ApiServer {
        // The API server's Service also reaches debug pods; a runner's only production ones.
        selector.remove(names::LABEL_TARGET_TYPE);
    }
    let http = IntOrString::String(BENTO_PORT_NAME.into());
    Service {
        metadata: meta(
            bd,
            names::service_name(bd, bento, c),
            Some(labels),
            Some(names::annotations(bd, bento, c)),
        ),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![
                ServicePort {
                    name: Some(BENTO_PORT_NAME.into()),
                    port: BENTO_PORT,
                    target_port: Some(http.clone()),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                },
                ServicePort {
                    name: Some("http-non-proxy".into()),
                    port: NON_PROXY_PORT,
                    target_port: Some(http),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        status: None,
    }
}

fn envoy_config_map_name(bd: &BentoDeployment) -> String {
    format!(
        "{}-envoy-config",
        names::kube_name(bd, Component::ApiServer)
    )
}

fn envoy_config_map(bd: &BentoDeployment) -> ConfigMap {
    let ns = bd.metadata.namespace.clone().unwrap_or_default();
    let debug_service = format!(
        "{}-d.{ns}.svc.cluster.local",
        names::kube_name(bd, Component::ApiServer)
    );
    ConfigMap {
        metadata: meta(bd, envoy_config_map_name(bd), None, None),
        data: Some(BTreeMap::from([(
            "envoy.yaml".to_string(),
            envoy::config(
                PROXY_PORT,
                &debug_service,
                NON_PROXY_PORT,
                "localhost",
                BENTO_PORT,
            ),
        )])),
        ..Default::default()
    }
}

/// The host of the Ingress: `<deployment>-<namespace>.<domain suffix>`.
pub fn ingress_host(bd: &BentoDeployment, config: &Config) -> String {
    format!(
        "{}-{}.{}",
        bd.metadata.name.as_deref().unwrap_or_default(),
        bd.metadata.namespace.as_deref().unwrap_or_default(),
        config.ingress.domain_suffix.as_deref().unwrap_or_default()
    )
}

fn ingress(bd: &BentoDeployment, bento: &Bento, config: &Config) -> Result<Ingress, SpecError> {
    let c = Component::ApiServer;
    let name = names::kube_name(bd, c);
    let host = ingress_host(bd, config);
    let (repo, version) = bento.spec.name_and_version();
    let org = config
        .yatai
        .as_ref()
        .map(|y| y.org_name.as_str())
        .filter(|o| !o.is_empty())
        .unwrap_or("unknown");
    let mut annotations = names::annotations(bd, bento, c);
    annotations.insert(
        "nginx.ingress.kubernetes.io/configuration-snippet".into(),
        format!(
            "\nmore_set_headers \"X-Powered-By: Yatai\";\nmore_set_headers \"X-Yatai-Org-Name: {org}\";\nmore_set_headers \"X-Yatai-Bento: {repo}:{version}\";\n"
        ),
    );
    annotations.insert(
        "nginx.ingress.kubernetes.io/ssl-redirect".into(),
        "false".into(),
    );
    annotations.extend(config.ingress.annotations.clone());
    let spec_ingress = bd.spec.ingress.clone().unwrap_or_default();
    annotations.extend(spec_ingress.annotations.clone().into_iter().flatten());
    let mut labels = names::labels(bd, bento, c);
    labels.extend(spec_ingress.labels.clone().into_iter().flatten());
    let tls_secret = match spec_ingress
        .tls
        .and_then(|t| t.secret_name)
        .filter(|s| !s.is_empty())
    {
        Some(secret) => Some(secret),
        None => match config.ingress.tls_mode {
            TlsMode::None => None,
            TlsMode::Auto => Some(name.clone()),
            TlsMode::Static => config.ingress.static_tls_secret.clone(),
        },
    };
    Ok(Ingress {
        metadata: meta(bd, name, Some(labels), Some(annotations)),
        spec: Some(IngressSpec {
            ingress_class_name: config.ingress.class_name.clone(),
            tls: tls_secret.map(|secret| {
                vec![IngressTLS {
                    hosts: Some(vec![host.clone()]),
                    secret_name: Some(secret),
                }]
            }),
            rules: Some(vec![IngressRule {
                host: Some(host),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some(config.ingress.path.clone()),
                        path_type: config.ingress.path_type.clone(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: names::service_name(bd, bento, c),
                                port: Some(ServiceBackendPort {
                                    name: Some(BENTO_PORT_NAME.into()),
                                    number: None,
                                }),
                            }),
                            resource: None,
                        },
                    }],
                }),
            }]),
            default_backend: None,
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::pep440;

    #[test]
    fn bentoml_versions_order_as_pep_440() {
        let old = |v: &str| pep440(v).unwrap() <= pep440("1.0.0a7").unwrap();
        assert!(old("1.0.0a7"));
        assert!(old("1.0.0a3"));
        assert!(old("0.13.1"));
        assert!(!old("1.0.0"));
        assert!(!old("1.0.0rc1"));
        assert!(!old("1.0.20"));
        assert!(!old("1.4.40"));
        assert!(pep440("not a version").is_none());
    }
}
