//! What a `BentoRequest` should lead to, without I/O.

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use yatai_crds::{Bento, BentoRequest, BentoSpec};

/// The controller owner reference to `request`: what it owns goes away with it.
pub fn owned_by(request: &BentoRequest) -> OwnerReference {
    OwnerReference {
        api_version: BentoRequest::api_version(&()).into_owned(),
        kind: BentoRequest::kind(&()).into_owned(),
        name: request.name_any(),
        uid: request.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The `Bento` answering `request`, serving `image`: same name and namespace, owned by the
/// request (so that Kubernetes deletes it with the request).
pub fn bento(request: &BentoRequest, image: &str) -> Bento {
    let spec = &request.spec;
    let owner = owned_by(request);
    Bento {
        metadata: ObjectMeta {
            name: Some(request.name_any()),
            namespace: request.namespace(),
            owner_references: Some(vec![owner]),
            labels: request.metadata.labels.clone(),
            ..Default::default()
        },
        spec: BentoSpec {
            tag: spec.bento_tag.clone(),
            image: image.to_string(),
            context: spec.context.clone(),
            runners: spec.runners.clone(),
            models: spec.models.clone(),
            service_name: spec.service_name.clone(),
            manifest: spec.manifest.clone(),
            image_pull_secrets: spec
                .docker_config_json_secret_name
                .as_ref()
                .filter(|s| !s.is_empty())
                .map(|s| vec![LocalObjectReference { name: s.clone() }]),
        },
        status: None,
    }
}

/// Sets condition `type_` in `conditions` (the transition time moves only when the status
/// changes), returning whether anything changed.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) -> bool {
    let status = if status { "True" } else { "False" }.to_string();
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        let changed = c.status != status || c.reason != reason || c.message != message;
        if c.status != status {
            c.last_transition_time = now;
        }
        c.status = status;
        c.reason = reason.to_string();
        c.message = message.to_string();
        c.observed_generation = generation;
        return changed;
    }
    conditions.push(Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time: now,
    });
    true
}

/// The status of condition `type_`, when set.
pub fn condition_status<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a str> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// How long to wait before retrying after the `failures`-th failure in a row: 5 s, doubling,
/// at most 5 minutes.
pub fn backoff(failures: u32) -> std::time::Duration {
    let secs = 5u64.saturating_mul(1u64 << failures.saturating_sub(1).min(10));
    std::time::Duration::from_secs(secs.min(300))
}

#[cfg(test)]
mod tests {
    use super::*;
    use yatai_crds::BentoRequestSpec;

    fn now(s: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(s).unwrap())
    }

    #[test]
    fn the_bento_is_owned_by_its_request() {
        let mut r = BentoRequest::new(
            "iris",
            BentoRequestSpec {
                bento_tag: "iris:v1".into(),
                docker_config_json_secret_name: Some("regcred".into()),
                ..Default::default()
            },
        );
        r.metadata.namespace = Some("ml".into());
        r.metadata.uid = Some("uid-1".into());
        let b = bento(&r, "reg/yatai-bentos:yatai.iris.v1");
        assert_eq!(b.metadata.name.as_deref(), Some("iris"));
        assert_eq!(b.metadata.namespace.as_deref(), Some("ml"));
        let owner = &b.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("BentoRequest", "uid-1", Some(true))
        );
        assert_eq!(b.spec.tag, "iris:v1");
        assert_eq!(b.spec.image, "reg/yatai-bentos:yatai.iris.v1");
        assert_eq!(
            b.spec.image_pull_secrets.as_ref().unwrap()[0].name,
            "regcred"
        );
    }

    #[test]
    fn conditions_move_their_time_only_on_a_change_of_status() {
        let mut c = Vec::new();
        assert!(set_condition(
            &mut c,
            "ImageBuilding",
            true,
            "Building",
            "",
            None,
            now(1)
        ));
        assert!(!set_condition(
            &mut c,
            "ImageBuilding",
            true,
            "Building",
            "",
            None,
            now(2)
        ));
        assert_eq!(c[0].last_transition_time, now(1));
        assert!(set_condition(
            &mut c,
            "ImageBuilding",
            false,
            "Built",
            "",
            None,
            now(3)
        ));
        assert_eq!(c[0].last_transition_time, now(3));
        assert_eq!(condition_status(&c, "ImageBuilding"), Some("False"));
        assert_eq!(condition_status(&c, "BentoAvailable"), None);
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let s: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(s, vec![5, 10, 20, 40, 80, 160, 300, 300, 300]);
    }
}
