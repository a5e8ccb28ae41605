//! The deployment's status from the conditions of its `BentoRequest` (written by `yatai image-builder`) and of its
//! `BentoDeployment` (written by `yatai deployment-operator`): a pure function, tested as a table.
//!
//! | BentoRequest | BentoDeployment (conditions of its current generation) | status | reason |
//! |---|---|---|---|
//! | any | `BentoFound=True`, `Available=True`, `Progressing≠True` | `running` | — |
//! | any | `BentoFound=True`, `Available=True`, `Progressing=True` | `deploying` | Progressing's message |
//! | any | `BentoFound=True`, `Available=False` (`InvalidSpec`) | `failed` | Available's message |
//! | any | `BentoFound=True`, `Available=False`, `Progressing=True` | `deploying` | Available's message |
//! | any | `BentoFound=True`, `Available=False`, `Progressing≠True` | `unhealthy` | Available's message |
//! | any | `BentoFound=True`, no `Available` | `deploying` | waiting for the operator's report |
//! | `ImageBuilding=True` | Bento not found yet, or stale | `image-building` | ImageBuilding's message |
//! | `ImageBuilding=False` (`BuildFailed`) | Bento not found yet, or stale | `image-build-failed` | its message |
//! | `ImageExistsChecked=False` | Bento not found yet, or stale | `image-build-failed` | "cannot check …" + message |
//! | no `BentoAvailable=True` | Bento not found yet, or stale | `image-building` | waiting for the image builder |
//! | any | `BentoFound=False` (`BentoNotFound`) | `failed` | its message |
//! | `BentoAvailable=True` (or none) | stale or no conditions | `deploying` | waiting for the deployment operator |
//!
//! "Stale" means the conditions were written for an older generation of the BentoDeployment (the operator has not
//! seen the latest spec yet): they say nothing about the revision just applied.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use yatai_crds::bento_deployment::condition as bd;
use yatai_crds::bento_request::condition as br;
use yatai_domain::deployments::DeploymentStatus;

fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

fn is(conditions: &[Condition], type_: &str, status: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == status)
}

fn message(c: Option<&Condition>, fallback: &str) -> String {
    match c {
        Some(c) if !c.message.is_empty() => c.message.clone(),
        Some(c) if !c.reason.is_empty() => c.reason.clone(),
        _ => fallback.to_string(),
    }
}

/// The status and reason of a deployment whose `BentoRequest` has `request` conditions (`None`: no BentoRequest)
/// and whose `BentoDeployment` has `deployment` conditions at `generation` (its `metadata.generation`).
/// `names` = (BentoRequest, BentoDeployment) names, for the messages.
pub fn status_from_conditions(
    request: Option<&[Condition]>,
    deployment: &[Condition],
    generation: Option<i64>,
    names: (&str, &str),
) -> (DeploymentStatus, String) {
    let (request_name, deployment_name) = names;
    // Only conditions written for the current generation describe the current spec.
    let current: Vec<Condition> = deployment
        .iter()
        .filter(|c| match (c.observed_generation, generation) {
            (Some(seen), Some(now)) => seen >= now,
            _ => true,
        })
        .cloned()
        .collect();
    let d = current.as_slice();

    if is(d, bd::BENTO_FOUND, "True") {
        let available = find(d, bd::AVAILABLE);
        let progressing = find(d, bd::PROGRESSING);
        let rolling = progressing.is_some_and(|c| c.status == "True");
        return match available.map(|c| c.status.as_str()) {
            Some("True") if rolling => (
                DeploymentStatus::Deploying,
                message(progressing, "rolling out"),
            ),
            Some("True") => (DeploymentStatus::Running, String::new()),
            _ if available.is_some_and(|c| c.reason == "InvalidSpec") => (
                DeploymentStatus::Failed,
                message(available, "the BentoDeployment is invalid"),
            ),
            None => (
                DeploymentStatus::Deploying,
                format!("waiting for the deployment operator to report on BentoDeployment {deployment_name}"),
            ),
            _ if rolling => (
                DeploymentStatus::Deploying,
                message(available, "waiting for ready pods"),
            ),
            _ => (
                DeploymentStatus::Unhealthy,
                message(available, "the deployment has no ready pods"),
            ),
        };
    }
    if let Some(c) = find(d, bd::BENTO_FOUND).filter(|c| c.reason == "BentoNotFound") {
        return (
            DeploymentStatus::Failed,
            message(Some(c), "the Bento is not found"),
        );
    }

    // The Bento is not there yet (or the operator has not looked): the image builder's state.
    if let Some(r) = request {
        let bento_available = is(r, br::BENTO_AVAILABLE, "True");
        if !bento_available {
            let building = find(r, br::IMAGE_BUILDING);
            if let Some(c) = building.filter(|c| c.status == "True") {
                return (
                    DeploymentStatus::ImageBuilding,
                    message(Some(c), "building the image"),
                );
            }
            if let Some(c) = building.filter(|c| c.reason == "BuildFailed") {
                return (
                    DeploymentStatus::ImageBuildFailed,
                    message(Some(c), "the image build failed"),
                );
            }
            if let Some(c) = find(r, br::IMAGE_EXISTS_CHECKED).filter(|c| c.status == "False") {
                return (
                    DeploymentStatus::ImageBuildFailed,
                    format!(
                        "cannot check whether the image exists: {}",
                        message(Some(c), "unknown error")
                    ),
                );
            }
            return (
                DeploymentStatus::ImageBuilding,
                format!(
                    "waiting for the image of BentoRequest {request_name} \
                     (is `yatai image-builder` running in the cluster?)"
                ),
            );
        }
    }
    (
        DeploymentStatus::Deploying,
        format!(
            "waiting for the deployment operator to pick up BentoDeployment {deployment_name} \
             (is `yatai deployment-operator` running in the cluster?)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeploymentStatus::*;

    fn c(spec: &str) -> Condition {
        // "Type=Status/Reason: message@generation"
        let (rest, generation) = match spec.split_once('@') {
            Some((r, g)) => (r, Some(g.parse().unwrap())),
            None => (spec, None),
        };
        let (head, message) = rest.split_once(": ").unwrap_or((rest, ""));
        let (ts, reason) = head.split_once('/').unwrap_or((head, ""));
        let (type_, status) = ts.split_once('=').unwrap();
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: generation,
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
        }
    }

    fn cs(specs: &[&str]) -> Vec<Condition> {
        specs.iter().map(|s| c(s)).collect()
    }

    #[test]
    fn the_status_table() {
        const RUNNING: &[&str] = &[
            "BentoFound=True/BentoFound: Bento b found@2",
            "Available=True/DeploymentsAvailable: ok@2",
            "Progressing=False/UpToDate: Every object matches@2",
        ];
        // (BentoRequest conditions or None, BentoDeployment conditions, generation, status, reason contains)
        #[allow(clippy::type_complexity)]
        let table: &[(Option<&[&str]>, &[&str], i64, DeploymentStatus, &str)] = &[
            (None, RUNNING, 2, Running, ""),
            (
                Some(&["ImageBuilding=True/Building: building x"]),
                RUNNING,
                2,
                Running,
                "",
            ),
            (
                None,
                &[
                    "BentoFound=True/BentoFound: f@2",
                    "Available=True/DeploymentsAvailable: ok@2",
                    "Progressing=True/Reconciling: rolling out svc@2",
                ],
                2,
                Deploying,
                "rolling out svc",
            ),
            (
                None,
                &[
                    "BentoFound=True/BentoFound: f@2",
                    "Available=False/DeploymentsUnavailable: Waiting for ready pods of: svc@2",
                    "Progressing=True/Reconciling: applied Deployment svc@2",
                ],
                2,
                Deploying,
                "Waiting for ready pods of: svc",
            ),
            (
                None,
                &[
                    "BentoFound=True/BentoFound: f@2",
                    "Available=False/DeploymentsUnavailable: Waiting for ready pods of: svc@2",
                    "Progressing=False/UpToDate: Every object matches@2",
                ],
                2,
                Unhealthy,
                "Waiting for ready pods of: svc",
            ),
            (
                None,
                &[
                    "BentoFound=True/BentoFound: f@2",
                    "Available=False/InvalidSpec: Invalid BentoDeployment: no runner r@2",
                    "Progressing=False/InvalidSpec: Invalid BentoDeployment: no runner r@2",
                ],
                2,
                Failed,
                "Invalid BentoDeployment: no runner r",
            ),
            (
                None,
                &["BentoFound=True/BentoFound: f@2"],
                2,
                Deploying,
                "waiting for the deployment operator",
            ),
            // Conditions of generation 1 say nothing about generation 2 (a new revision just applied).
            (
                Some(&["BentoAvailable=True/BentoCreated: ok"]),
                RUNNING,
                3,
                Deploying,
                "pick up BentoDeployment svc",
            ),
            (
                Some(&[
                    "ImageExists=False/ImageMissing: img",
                    "ImageBuilding=True/Building: building reg/x:y",
                ]),
                &[
                    "BentoFound=False/BentoRequestPending: Waiting for Bento b@1",
                    "Available=False/BentoRequestPending: Waiting for Bento b@1",
                ],
                1,
                ImageBuilding,
                "building reg/x:y",
            ),
            (
                Some(&["ImageBuilding=False/BuildFailed: pip could not resolve torch==9"]),
                &["BentoFound=False/BentoRequestPending: Waiting@1"],
                1,
                ImageBuildFailed,
                "pip could not resolve torch==9",
            ),
            (
                Some(&["ImageExistsChecked=False/CheckFailed: registry unreachable"]),
                &[],
                1,
                ImageBuildFailed,
                "cannot check whether the image exists: registry unreachable",
            ),
            // Nobody has looked at either object yet.
            (
                Some(&[]),
                &[],
                1,
                ImageBuilding,
                "is `yatai image-builder` running",
            ),
            // The image is there, the operator has not seen the new spec.
            (
                Some(&[
                    "ImageExists=True/ImageFound: img",
                    "BentoAvailable=True/BentoCreated: ok",
                ]),
                &["BentoFound=False/BentoRequestPending: Waiting@1"],
                2,
                Deploying,
                "is `yatai deployment-operator` running",
            ),
            (
                None,
                &["BentoFound=False/BentoNotFound: Bento b not found in namespace prod@1"],
                1,
                Failed,
                "Bento b not found in namespace prod",
            ),
            (
                None,
                &[],
                1,
                Deploying,
                "waiting for the deployment operator",
            ),
        ];
        for (i, (request, deployment, generation, status, reason)) in table.iter().enumerate() {
            let request = request.map(cs);
            let (got, why) = status_from_conditions(
                request.as_deref(),
                &cs(deployment),
                Some(*generation),
                ("b", "svc"),
            );
            assert_eq!(got, *status, "row {i}: {why}");
            assert!(
                why.contains(reason),
                "row {i}: {why:?} should contain {reason:?}"
            );
            if *status == Running {
                assert!(why.is_empty(), "row {i}: {why}");
            }
        }
    }
}
