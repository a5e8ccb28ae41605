//! Names, labels and annotations of the generated objects, exactly as the original operator chose them: the
//! objects it created keep their names and, above all, their selectors (which Kubernetes never lets change).

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use yatai_crds::{Bento, BentoDeployment};

pub const LABEL_BENTO_DEPLOYMENT: &str = "yatai.ai/bento-deployment";
pub const LABEL_BENTO_REPOSITORY: &str = "yatai.ai/bento-repository";
pub const LABEL_BENTO_VERSION: &str = "yatai.ai/bento-version";
pub const LABEL_TARGET_TYPE: &str = "yatai.ai/bento-deployment-target-type";
pub const LABEL_CREATOR: &str = "yatai.ai/creator";
pub const LABEL_COMPONENT_TYPE: &str = "yatai.ai/bento-deployment-component-type";
pub const LABEL_COMPONENT_NAME: &str = "yatai.ai/bento-deployment-component-name";
pub const LABEL_SELECTOR: &str = "yatai.ai/selector";
/// Service accounts with this label set to `true` are given to pods that name none.
pub const LABEL_BENTO_DEPLOYMENT_POD: &str = "yatai.ai/bento-deployment-pod";
pub const ANNOTATION_BENTO_REPOSITORY: &str = "yatai.ai/bento-repository";
pub const ANNOTATION_BENTO_VERSION: &str = "yatai.ai/bento-version";
/// The value of `yatai.ai/creator` (the original's name, kept so its objects and ours are told apart by nothing).
pub const CREATOR: &str = "yatai-deployment";
pub const COMPONENT_API_SERVER: &str = "api-server";
pub const COMPONENT_RUNNER: &str = "runner";
pub const TARGET_PRODUCTION: &str = "production";

/// One part of a deployment: the API server, or one runner of the bento.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component<'a> {
    ApiServer,
    /// A runner, with its index in the Bento's runner list (which names its Deployment).
    Runner {
        name: &'a str,
        index: usize,
    },
}

impl Component<'_> {
    pub fn runner_name(&self) -> Option<&str> {
        match self {
            Component::ApiServer => None,
            Component::Runner { name, .. } => Some(name),
        }
    }
}

fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

fn bd_name(bd: &BentoDeployment) -> &str {
    bd.metadata.name.as_deref().unwrap_or_default()
}

/// Name of the component's Deployment and HPA (`<bd>` or `<bd>-runner-<index>`).
pub fn kube_name(bd: &BentoDeployment, c: Component) -> String {
    match c {
        Component::ApiServer => bd_name(bd).to_string(),
        Component::Runner { index, .. } => format!("{}-runner-{index}", bd_name(bd)),
    }
}

/// Name of the component's Service: the API server's is `<bd>`; a runner's is derived from the bento tag and the
/// runner name (so the API server's runner map can name it), hashed to fit 63 characters.
pub fn service_name(bd: &BentoDeployment, bento: &Bento, c: Component) -> String {
    match c {
        Component::ApiServer => kube_name(bd, c),
        Component::Runner { name, .. } => runner_service_name(bd, bento, name),
    }
}

pub fn runner_service_name(bd: &BentoDeployment, bento: &Bento, runner: &str) -> String {
    let (repo, version) = bento.spec.name_and_version();
    let name = format!(
        "{}-runner-{}",
        bd_name(bd),
        md5_hex(&format!("{repo}:{version}-{runner}"))
    );
    if name.len() <= 63 {
        return name;
    }
    format!(
        "runner-{}",
        md5_hex(&format!("{}-{repo}:{version}-{runner}", bd_name(bd)))
    )
}

/// Labels of every object of the component (and of its pods, before the pod extras).
pub fn labels(bd: &BentoDeployment, bento: &Bento, c: Component) -> BTreeMap<String, String> {
    let (repo, version) = bento.spec.name_and_version();
    let mut labels = BTreeMap::from([
        (LABEL_BENTO_DEPLOYMENT.to_string(), bd_name(bd).to_string()),
        (LABEL_BENTO_REPOSITORY.to_string(), repo.to_string()),
        (LABEL_BENTO_VERSION.to_string(), version.to_string()),
        (LABEL_TARGET_TYPE.to_string(), TARGET_PRODUCTION.to_string()),
        (LABEL_CREATOR.to_string(), CREATOR.to_string()),
    ]);
    match c {
        Component::ApiServer => {
            labels.insert(LABEL_COMPONENT_TYPE.into(), COMPONENT_API_SERVER.into());
        }
        Component::Runner { name, .. } => {
            labels.insert(LABEL_COMPONENT_TYPE.into(), COMPONENT_RUNNER.into());
            labels.insert(LABEL_COMPONENT_NAME.into(), name.into());
        }
    }
    // A runner listed in the BentoDeployment uses its own labels (even none); an unlisted one the top-level labels.
    let extra = match c.runner_name().and_then(|n| bd.spec.runner(n)) {
        Some(runner) => runner.labels.as_ref(),
        None => bd.spec.labels.as_ref(),
    };
    labels.extend(
        extra
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    labels
}

/// Annotations of every object of the component: the bento's name and version, and the pod extras' annotations.
pub fn annotations(bd: &BentoDeployment, bento: &Bento, c: Component) -> BTreeMap<String, String> {
    let (repo, version) = bento.spec.name_and_version();
    let mut out = BTreeMap::from([
        (ANNOTATION_BENTO_REPOSITORY.to_string(), repo.to_string()),
        (ANNOTATION_BENTO_VERSION.to_string(), version.to_string()),
    ]);
    let mut extra = bd
        .spec
        .extra_pod_metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref());
    if let Some(runner) = c.runner_name().and_then(|n| bd.spec.runner(n)) {
        if let Some(meta) = &runner.extra_pod_metadata {
            extra = meta.annotations.as_ref();
        }
    }
    out.extend(
        extra
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    out
}
