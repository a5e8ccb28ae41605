//! Live objects as the API server returns them, read leniently: a status written by another version of the
//! image builder or the operator (a missing field, a condition without a time) must not make the deployment
//! unreadable, so objects are read as `DynamicObject`s and only the fields the runtime uses are picked.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{ApiResource, DynamicObject};
use serde_json::Value;
use yatai_crds::{BentoDeployment, BentoRequest};

/// The API resource of `BentoRequest` (`resources.yatai.ai/v1alpha1`).
pub fn bento_requests() -> ApiResource {
    ApiResource::erase::<BentoRequest>(&())
}

/// The API resource of `BentoDeployment` (`serving.yatai.ai/v2alpha1`, the version the operator watches).
pub fn bento_deployments() -> ApiResource {
    ApiResource::erase::<BentoDeployment>(&())
}

/// A string field (JSON pointer into the object's body, e.g. `/spec/bento`).
pub fn str_at<'a>(object: &'a DynamicObject, pointer: &str) -> Option<&'a str> {
    object.data.pointer(pointer).and_then(Value::as_str)
}

/// `status.conditions`, each read field by field (missing ones empty).
pub fn conditions(object: &DynamicObject) -> Vec<Condition> {
    let Some(items) = object
        .data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
    else {
        return Vec::new();
    };
    let text = |c: &Value, k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    items
        .iter()
        .filter(|c| c.get("type").is_some())
        .map(|c| Condition {
            type_: text(c, "type"),
            status: text(c, "status"),
            reason: text(c, "reason"),
            message: text(c, "message"),
            observed_generation: c.get("observedGeneration").and_then(Value::as_i64),
            last_transition_time: c
                .get("lastTransitionTime")
                .and_then(|t| serde_json::from_value::<Time>(t.clone()).ok())
                .unwrap_or(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
        })
        .collect()
}

/// Whether a live BentoDeployment asks for an Ingress.
pub fn ingress_enabled(bd: &DynamicObject) -> bool {
    bd.data
        .pointer("/spec/ingress/enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}
