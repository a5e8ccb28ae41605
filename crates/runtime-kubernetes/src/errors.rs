//! API errors as statuses with a reason that says what to do. Refusals the cluster will repeat (401, 403, a missing
//! namespace or CRD, an invalid object) are `failed`; what may pass by itself (unreachable, 5xx, 429, conflicts) is
//! `unknown`, and the next reconcile tries again.

use yatai_domain::deployments::{DeploymentStatus, Observed};

/// A failed API call: what was being done, in which namespace, and the error.
#[derive(Debug)]
pub struct ApiFailure {
    /// What was being done, e.g. "apply BentoDeployment svc".
    pub action: String,
    pub namespace: Option<String>,
    pub error: kube::Error,
}

impl ApiFailure {
    pub fn new(action: impl Into<String>, namespace: Option<&str>, error: kube::Error) -> Self {
        ApiFailure {
            action: action.into(),
            namespace: namespace.map(str::to_string),
            error,
        }
    }
}

/// Whether a 404 says that the namespace is missing (`namespaces "x" not found`), rather than the object or its
/// kind.
fn namespace_missing(message: &str) -> bool {
    message.starts_with("namespaces \"") && message.ends_with("not found")
}

/// The status and the reason of a failed call against the cluster `cluster`.
pub fn classify(f: &ApiFailure, cluster: &str) -> (DeploymentStatus, String) {
    let action = &f.action;
    let ns = f.namespace.as_deref().unwrap_or("(all namespaces)");
    match &f.error {
        kube::Error::Api(status) => {
            let message = &status.message;
            match status.code {
                404 if namespace_missing(message) => (
                    DeploymentStatus::Failed,
                    format!(
                        "namespace {ns} does not exist in cluster {cluster}; create it \
                         (`kubectl create namespace {ns}`) or choose another namespace"
                    ),
                ),
                404 => (
                    DeploymentStatus::Failed,
                    format!(
                        "cluster {cluster} does not know Yatai's resources (404 on {action}: {message}); \
                         install the CRDs (`yatai crds | kubectl apply -f -`, or the yatai-crds Helm chart) \
                         and run `yatai image-builder` and `yatai deployment-operator` in the cluster"
                    ),
                ),
                401 => (
                    DeploymentStatus::Failed,
                    format!(
                        "cluster {cluster} rejected Yatai's credentials (401 on {action}): the token or \
                         certificate of its kubeconfig is invalid or expired; update the cluster's kubeconfig"
                    ),
                ),
                403 => (
                    DeploymentStatus::Failed,
                    format!(
                        "Yatai's credentials for cluster {cluster} may not {action} in namespace {ns} \
                         (403: {message}); grant its user or service account a Role on bentorequests \
                         (resources.yatai.ai) and bentodeployments (serving.yatai.ai) there, or choose \
                         another namespace"
                    ),
                ),
                400 | 422 => (
                    DeploymentStatus::Failed,
                    format!(
                        "cluster {cluster} refused to {action} in namespace {ns} ({}: {message}); \
                         check the deployment's config (are the CRDs of this Yatai version installed?)",
                        status.code
                    ),
                ),
                code => (
                    DeploymentStatus::Unknown,
                    format!(
                        "cluster {cluster} answered {code} to {action} in namespace {ns} ({message}); \
                         Yatai tries again"
                    ),
                ),
            }
        }
        kube::Error::Auth(_) => (
            DeploymentStatus::Failed,
            format!(
                "cannot authenticate to cluster {cluster} with its kubeconfig ({action}); \
                 update the cluster's kubeconfig"
            ),
        ),
        kube::Error::SerdeError(e) => (
            DeploymentStatus::Unknown,
            format!(
                "cluster {cluster} answered {action} with an object Yatai cannot read ({e}); \
                 are the CRDs of this Yatai version installed?"
            ),
        ),
        other => (
            DeploymentStatus::Unknown,
            format!(
                "cannot reach the API server of cluster {cluster} ({action}: {other}); check the \
                 kubeconfig's server address and certificate, and that the cluster is reachable from \
                 the Yatai server; Yatai tries again"
            ),
        ),
    }
}

/// [`classify`] as an [`Observed`].
pub fn observed(f: &ApiFailure, cluster: &str) -> Observed {
    let (status, reason) = classify(f, cluster);
    Observed::new(status, reason)
}

/// [`classify`] as a domain error (for `remove`): forbidden, not found, or unavailable.
pub fn domain_error(f: &ApiFailure, cluster: &str) -> yatai_domain::Error {
    let (status, reason) = classify(f, cluster);
    match (&f.error, status) {
        (kube::Error::Api(s), _) if s.code == 403 || s.code == 401 => {
            yatai_domain::Error::Forbidden(reason)
        }
        (_, DeploymentStatus::Failed) => yatai_domain::Error::InvalidArgument(reason),
        _ => yatai_domain::Error::Unavailable(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            reason: reason.into(),
            message: message.into(),
            ..kube::core::Status::failure(message, reason)
        }))
    }

    #[test]
    fn api_errors_say_what_to_do() {
        let cases = [
            (
                api(404, "NotFound", "namespaces \"prod\" not found"),
                DeploymentStatus::Failed,
                "namespace prod does not exist in cluster c1; create it",
            ),
            (
                api(404, "NotFound", "the server could not find the requested resource"),
                DeploymentStatus::Failed,
                "install the CRDs",
            ),
            (
                api(403, "Forbidden", "bentodeployments.serving.yatai.ai \"svc\" is forbidden: User \"u\" cannot patch"),
                DeploymentStatus::Failed,
                "may not apply BentoDeployment svc in namespace prod (403",
            ),
            (api(401, "Unauthorized", "Unauthorized"), DeploymentStatus::Failed, "update the cluster's kubeconfig"),
            (api(503, "ServiceUnavailable", "etcd"), DeploymentStatus::Unknown, "Yatai tries again"),
            (
                kube::Error::Service("connection refused".into()),
                DeploymentStatus::Unknown,
                "cannot reach the API server of cluster c1",
            ),
        ];
        for (error, status, reason) in cases {
            let f = ApiFailure::new("apply BentoDeployment svc", Some("prod"), error);
            let (got, why) = classify(&f, "c1");
            assert_eq!(got, status, "{why}");
            assert!(why.contains(reason), "{why:?} should contain {reason:?}");
        }
    }
}
