//! Conversion of the older `BentoDeployment` versions to `v2alpha1`.
//!
//! Pure functions (no API calls), used by `yatai convert` and by `yatai deployment-operator render`. They follow
//! what the original conversion webhook did, so a converted object names the same `BentoRequest` the original created
//! (see [`bento_name_from_tag`]), with these deliberate differences:
//! - top-level and runner `labels`/`annotations` of `v1alpha3` are kept (the original dropped them);
//! - `v1alpha1` runners are converted (the original dropped them);
//! - QPS and memory targets become `AverageValue` metrics (the original wrote `Utilization` targets with an average
//!   value, which the HPA controller rejects).

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::{
    MetricIdentifier, MetricSpec, MetricTarget, PodsMetricSource, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use md5::{Digest, Md5};

use super::legacy::{DeploymentTargetHpaConf, LabelItem, LegacyExtraPodSpec};
use super::{v1alpha1, v1alpha2, v1alpha3, v2alpha1};
use crate::bento_request::{BentoRequest, BentoRequestSpec};
use crate::common::{ResourceItem, Resources};
use crate::quantity;

/// HPA defaults of Yatai 1.x when a shorthand leaves them out.
const DEFAULT_MIN_REPLICAS: i32 = 2;
const DEFAULT_MAX_REPLICAS: i32 = 10;
/// CPU utilisation target (percent) when no metric is given.
pub const DEFAULT_CPU_UTILIZATION: i32 = 80;
/// The pods metric Yatai's QPS shorthand stands for.
pub const QPS_METRIC: &str = "http_request";

/// A `BentoDeployment` of any served version.
#[derive(Clone, Debug, PartialEq)]
pub enum AnyBentoDeployment {
    V1alpha1(v1alpha1::BentoDeployment),
    V1alpha2(v1alpha2::BentoDeployment),
    V1alpha3(v1alpha3::BentoDeployment),
    V2alpha1(v2alpha1::BentoDeployment),
}

/// Why an object could not be read or converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{0} is not a BentoDeployment version this operator serves (v1alpha1, v1alpha2, v1alpha3, v2alpha1)")]
    UnknownVersion(String),
    #[error("BentoDeployment {name}: {source}")]
    Invalid {
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("BentoDeployment {name}: {field} is not a valid quantity: {value:?} ({reason})")]
    Quantity {
        name: String,
        field: String,
        value: String,
        reason: String,
    },
}

/// The result of a conversion.
#[derive(Clone, Debug, PartialEq)]
pub struct Converted {
    pub deployment: v2alpha1::BentoDeployment,
    /// For the older versions, which named a bento tag: the `BentoRequest` that `spec.bento` now names, as the
    /// original conversion created it. Apply it with the deployment.
    pub bento_request: Option<BentoRequest>,
}

impl AnyBentoDeployment {
    /// Reads a `BentoDeployment` object of any served version (chosen by its `apiVersion`).
    pub fn from_value(value: serde_json::Value) -> Result<Self, ConvertError> {
        let api_version = value
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let name = value
            .pointer("/metadata/name")
            .and_then(|v| v.as_str())
            .unwrap_or("(unnamed)")
            .to_string();
        let invalid = |source| ConvertError::Invalid {
            name: name.clone(),
            source,
        };
        Ok(match api_version.as_str() {
            "serving.yatai.ai/v1alpha1" => {
                Self::V1alpha1(serde_json::from_value(value).map_err(invalid)?)
            }
            "serving.yatai.ai/v1alpha2" => {
                Self::V1alpha2(serde_json::from_value(value).map_err(invalid)?)
            }
            "serving.yatai.ai/v1alpha3" => {
                Self::V1alpha3(serde_json::from_value(value).map_err(invalid)?)
            }
            "serving.yatai.ai/v2alpha1" => {
                Self::V2alpha1(serde_json::from_value(value).map_err(invalid)?)
            }
            _ => return Err(ConvertError::UnknownVersion(api_version)),
        })
    }

    /// `serving.yatai.ai/<version>`.
    pub fn api_version(&self) -> &'static str {
        match self {
            Self::V1alpha1(_) => "serving.yatai.ai/v1alpha1",
            Self::V1alpha2(_) => "serving.yatai.ai/v1alpha2",
            Self::V1alpha3(_) => "serving.yatai.ai/v1alpha3",
            Self::V2alpha1(_) => "serving.yatai.ai/v2alpha1",
        }
    }

    /// Converts to the stored version (a `v2alpha1` object is returned as it is).
    pub fn into_v2alpha1(self) -> Result<Converted, ConvertError> {
        match self {
            Self::V2alpha1(d) => Ok(Converted {
                deployment: d,
                bento_request: None,
            }),
            Self::V1alpha3(d) => from_v1alpha3(d),
            Self::V1alpha2(d) => from_v1alpha3(v1alpha2_to_v1alpha3(d)),
            Self::V1alpha1(d) => from_v1alpha1(d),
        }
    }
}

fn v1alpha2_to_v1alpha3(d: v1alpha2::BentoDeployment) -> v1alpha3::BentoDeployment {
    let s = d.spec;
    v1alpha3::BentoDeployment {
        metadata: d.metadata,
        spec: v1alpha3::BentoDeploymentSpec {
            bento_tag: s.bento_tag,
            resources: s.resources,
            autoscaling: s.autoscaling,
            envs: s.envs,
            runners: s.runners.map(|rs| {
                rs.into_iter()
                    .map(|r| v1alpha3::BentoDeploymentRunnerSpec {
                        name: r.name,
                        resources: r.resources,
                        autoscaling: r.autoscaling,
                        envs: r.envs,
                        ..Default::default()
                    })
                    .collect()
            }),
            ingress: s.ingress.map(|i| v2alpha1::BentoDeploymentIngressSpec {
                enabled: i.enabled,
                ..Default::default()
            }),
            ..Default::default()
        },
        status: None,
    }
}

fn from_v1alpha3(d: v1alpha3::BentoDeployment) -> Result<Converted, ConvertError> {
    let name = d.metadata.name.clone().unwrap_or_default();
    let s = d.spec;
    let runners = s
        .runners
        .map(|rs| {
            rs.into_iter()
                .map(|r| {
                    Ok(v2alpha1::BentoDeploymentRunnerSpec {
                        autoscaling: hpa_from_shorthand(&name, r.autoscaling.as_ref())?,
                        name: r.name,
                        annotations: r.annotations,
                        labels: r.labels,
                        resources: r.resources,
                        envs: r.envs.map(envs_from_items),
                        extra_pod_metadata: r.extra_pod_metadata,
                        extra_pod_spec: r.extra_pod_spec.map(extra_pod_spec),
                    })
                })
                .collect::<Result<Vec<_>, ConvertError>>()
        })
        .transpose()?;
    let spec = v2alpha1::BentoDeploymentSpec {
        bento: bento_name_from_tag(&s.bento_tag),
        annotations: s.annotations,
        labels: s.labels,
        resources: s.resources,
        autoscaling: hpa_from_shorthand(&name, s.autoscaling.as_ref())?,
        envs: s.envs.map(envs_from_items),
        runners,
        ingress: s.ingress,
        monitor_exporter: None,
        extra_pod_metadata: s.extra_pod_metadata,
        extra_pod_spec: s.extra_pod_spec.map(extra_pod_spec),
    };
    Ok(finish(d.metadata, spec, s.bento_tag))
}

fn from_v1alpha1(d: v1alpha1::BentoDeployment) -> Result<Converted, ConvertError> {
    let name = d.metadata.name.clone().unwrap_or_default();
    let s = d.spec;
    let runners = s.runners.map(|rs| {
        rs.into_iter()
            .map(|r| v2alpha1::BentoDeploymentRunnerSpec {
                name: r.name,
                resources: r.resources.map(resources_from_requirements),
                autoscaling: r.autoscaling.map(|a| v2alpha1::Autoscaling {
                    // Kubernetes' own default for an HPA without minReplicas.
                    min_replicas: a.min_replicas.unwrap_or(1),
                    max_replicas: a.max_replicas,
                    metrics: a.metrics,
                    behavior: None,
                }),
                ..Default::default()
            })
            .collect()
    });
    let spec = v2alpha1::BentoDeploymentSpec {
        bento: bento_name_from_tag(&s.bento_tag),
        resources: s.resources,
        autoscaling: hpa_from_shorthand(&name, s.autoscaling.as_ref())?,
        envs: s.envs.map(envs_from_items),
        runners,
        ..Default::default()
    };
    Ok(finish(d.metadata, spec, s.bento_tag))
}

fn finish(
    metadata: ObjectMeta,
    spec: v2alpha1::BentoDeploymentSpec,
    bento_tag: String,
) -> Converted {
    let bento_request = BentoRequest {
        metadata: ObjectMeta {
            name: Some(spec.bento.clone()),
            namespace: metadata.namespace.clone(),
            ..Default::default()
        },
        spec: BentoRequestSpec {
            bento_tag,
            ..Default::default()
        },
        status: None,
    };
    Converted {
        deployment: v2alpha1::BentoDeployment {
            metadata,
            spec,
            status: None,
        },
        bento_request: Some(bento_request),
    }
}

fn extra_pod_spec(s: LegacyExtraPodSpec) -> v2alpha1::ExtraPodSpec {
    v2alpha1::ExtraPodSpec {
        scheduler_name: s.scheduler_name,
        node_selector: s.node_selector,
        affinity: s.affinity,
        tolerations: s.tolerations,
        topology_spread_constraints: s.topology_spread_constraints,
        containers: None,
        service_account_name: None,
    }
}

fn envs_from_items(items: Vec<LabelItem>) -> Vec<EnvVar> {
    items
        .into_iter()
        .map(|i| EnvVar {
            name: i.key,
            value: Some(i.value),
            value_from: None,
        })
        .collect()
}

/// Kubernetes resource requirements in Yatai's shorthand (`nvidia.com/gpu` becomes `gpu`, other names `custom`).
fn resources_from_requirements(r: ResourceRequirements) -> Resources {
    fn item(list: Option<BTreeMap<String, Quantity>>) -> Option<ResourceItem> {
        let list = list?;
        let mut item = ResourceItem::default();
        let mut custom = BTreeMap::new();
        for (name, q) in list {
            match name.as_str() {
                "cpu" => item.cpu = Some(q.0),
                "memory" => item.memory = Some(q.0),
                "nvidia.com/gpu" => item.gpu = Some(q.0),
                _ => {
                    custom.insert(name, q.0);
                }
            }
        }
        if !custom.is_empty() {
            item.custom = Some(custom);
        }
        Some(item)
    }
    Resources {
        requests: item(r.requests),
        limits: item(r.limits),
    }
}

/// Yatai 1.x's autoscaling shorthand as HPA settings, with its defaults (2..10 replicas, CPU at 80%).
fn hpa_from_shorthand(
    name: &str,
    conf: Option<&DeploymentTargetHpaConf>,
) -> Result<Option<v2alpha1::Autoscaling>, ConvertError> {
    let Some(conf) = conf else { return Ok(None) };
    let mut metrics = Vec::new();
    if let Some(qps) = conf.qps.filter(|q| *q > 0) {
        metrics.push(MetricSpec {
            type_: "Pods".into(),
            pods: Some(PodsMetricSource {
                metric: MetricIdentifier {
                    name: QPS_METRIC.into(),
                    selector: None,
                },
                target: MetricTarget {
                    type_: "AverageValue".into(),
                    average_value: Some(Quantity(qps.to_string())),
                    ..Default::default()
                },
            }),
            ..Default::default()
        });
    }
    if let Some(cpu) = conf.cpu.filter(|c| *c > 0) {
        metrics.push(resource_metric(
            "cpu",
            MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(cpu),
                ..Default::default()
            },
        ));
    }
    if let Some(memory) = conf.memory.as_deref().filter(|m| !m.is_empty()) {
        quantity::parse(memory).map_err(|reason| ConvertError::Quantity {
            name: name.to_string(),
            field: "spec.autoscaling.memory".into(),
            value: memory.to_string(),
            reason,
        })?;
        metrics.push(resource_metric(
            "memory",
            MetricTarget {
                type_: "AverageValue".into(),
                average_value: Some(Quantity(memory.to_string())),
                ..Default::default()
            },
        ));
    }
    if metrics.is_empty() {
        metrics.push(default_cpu_metric());
    }
    Ok(Some(v2alpha1::Autoscaling {
        min_replicas: conf.min_replicas.unwrap_or(DEFAULT_MIN_REPLICAS),
        max_replicas: conf.max_replicas.unwrap_or(DEFAULT_MAX_REPLICAS),
        metrics: Some(metrics),
        behavior: None,
    }))
}

fn resource_metric(resource: &str, target: MetricTarget) -> MetricSpec {
    MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: resource.into(),
            target,
        }),
        ..Default::default()
    }
}

/// CPU utilisation at [`DEFAULT_CPU_UTILIZATION`] percent: the metric of an HPA given none.
pub fn default_cpu_metric() -> MetricSpec {
    resource_metric(
        "cpu",
        MetricTarget {
            type_: "Utilization".into(),
            average_utilization: Some(DEFAULT_CPU_UTILIZATION),
            ..Default::default()
        },
    )
}

/// The name the original conversion gave the `BentoRequest` of a bento tag: the tag in kebab case with `:` as
/// `--` (`iris_classifier:abc1` → `iris-classifier--abc-1`), or `bento-<md5 of the tag>` when that is longer than
/// 63 characters. Matching it exactly lets a converted deployment find the `BentoRequest` the original created.
pub fn bento_name_from_tag(tag: &str) -> String {
    let name = go_kebab(tag).replace(':', "--");
    if name.len() <= 63 {
        return name;
    }
    let mut hashed = format!("bento-{}", hex::encode(Md5::digest(tag.as_bytes())));
    hashed.truncate(63);
    hashed
}

/// Kebab case as the Go `strcase` (v0.2) package writes it, which the original used: a `-` goes between a
/// lower-case letter and a digit or capital, between a digit and a letter, before the last capital of an acronym
/// followed by a lower-case letter; spaces, `_`, `-` and `.` become `-`; letters are lower-cased.
fn go_kebab(s: &str) -> String {
    let s = s.trim().as_bytes();
    let mut out = Vec::with_capacity(s.len() + 2);
    for (i, &c) in s.iter().enumerate() {
        let is_cap = c.is_ascii_uppercase();
        let is_low = c.is_ascii_lowercase();
        let v = c.to_ascii_lowercase();
        if let Some(&next) = s.get(i + 1) {
            let is_num = v.is_ascii_digit();
            let next_cap = next.is_ascii_uppercase();
            let next_low = next.is_ascii_lowercase();
            let next_num = next.is_ascii_digit();
            if (is_cap && (next_low || next_num))
                || (is_low && (next_cap || next_num))
                || (is_num && (next_cap || next_low))
            {
                if is_cap && next_low && i > 0 && s[i - 1].is_ascii_uppercase() {
                    out.push(b'-');
                }
                out.push(v);
                if is_low || is_num || next_num {
                    out.push(b'-');
                }
                continue;
            }
        }
        out.push(if matches!(v, b' ' | b'_' | b'-' | b'.') {
            b'-'
        } else {
            v
        });
    }
    String::from_utf8(out).expect("ASCII case changes keep UTF-8 valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bento_names_match_the_original_conversion() {
        assert_eq!(
            bento_name_from_tag("iris_classifier:nxapohu4codzplg6"),
            "iris-classifier--nxapohu-4-codzplg-6"
        );
        assert_eq!(
            bento_name_from_tag("IrisClassifier:v1"),
            "iris-classifier--v-1"
        );
        assert_eq!(bento_name_from_tag("JSONData:abc"), "json-data--abc");
        let long = format!("{}:v", "a".repeat(70));
        let name = bento_name_from_tag(&long);
        assert!(name.starts_with("bento-") && name.len() == 38, "{name}");
    }
}
