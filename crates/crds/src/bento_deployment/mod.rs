//! `BentoDeployment` (serving.yatai.ai): a bento served on Kubernetes.
//!
//! One module per version. [`v2alpha1`] is the stored and served version, the one the operator works on;
//! [`v1alpha1`], [`v1alpha2`] and [`v1alpha3`] (snake_case fields, `bento_tag` instead of a Bento name) are the
//! versions users still have in their YAML: [`convert`] turns them into `v2alpha1` (`yatai convert`, and
//! `yatai deployment-operator render`, which accepts every version). See [`crd`] for why they are listed but not
//! served.

pub mod convert;
pub mod legacy;
pub mod v1alpha1;
pub mod v1alpha2;
pub mod v1alpha3;
pub mod v2alpha1;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The stored version.
pub const STORAGE_VERSION: &str = "v2alpha1";

/// Condition types of a `BentoDeployment`.
pub mod condition {
    /// The bento answers: every component's Deployment is available.
    pub const AVAILABLE: &str = "Available";
    /// The `Bento` named in `spec.bento` exists.
    pub const BENTO_FOUND: &str = "BentoFound";
    /// A `BentoRequest` of that name exists (its `Bento` is awaited).
    pub const BENTO_REQUEST_FOUND: &str = "BentoRequestFound";
    /// Objects are being applied or rolled out.
    pub const PROGRESSING: &str = "Progressing";
}

/// The multi-version CRD: `v2alpha1` served and stored; the older versions listed with their schemas but not
/// served.
///
/// Why not served: the API server can only convert between versions through a webhook, and without one it would
/// store a `v1alpha3` object's snake_case fields under `v2alpha1` unconverted (a deployment without a `bento`).
/// Refusing the old versions (`no matches for kind "BentoDeployment" in version ".../v1alpha3"`) is the honest
/// answer; `yatai convert -f OLD.yaml` rewrites such files. They stay listed because a cluster that ever stored them
/// keeps them in the CRD's `status.storedVersions`, and the API server refuses a CRD that drops those.
pub fn crd() -> CustomResourceDefinition {
    let versions = vec![
        v1alpha1::BentoDeployment::crd(),
        v1alpha2::BentoDeployment::crd(),
        v1alpha3::BentoDeployment::crd(),
        v2alpha1::BentoDeployment::crd(),
    ];
    // The four derives describe one kind; merging can only fail if they disagree on names or scope.
    let mut crd = kube::core::crd::merge_crds(versions, STORAGE_VERSION)
        .expect("the BentoDeployment versions share group, kind, names and scope");
    for version in &mut crd.spec.versions {
        version.served = version.name == STORAGE_VERSION;
    }
    crd
}
