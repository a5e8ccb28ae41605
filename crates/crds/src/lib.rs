//! Kubernetes custom resources of Yatai, as Rust types.
//!
//! - [`Bento`] and [`BentoRequest`] (group `resources.yatai.ai`, version `v1alpha1`): a built bento image, and a
//!   request to build one.
//! - [`BentoDeployment`] (group `serving.yatai.ai`): `v2alpha1` is the stored version; `v1alpha1`..`v1alpha3` are the
//!   older versions users still have in their YAML, converted with [`bento_deployment::convert`].
//! - [`quantity`]: resource quantities, validated and printed in the canonical form the API server stores.
//!
//! Field names and shapes are those of the original Go operators, so existing objects and YAML keep working: every
//! field of the original CRDs is accepted and kept on a round trip, including the ones no Rust code reads. The crate
//! holds types and pure conversions only (no client, no controller runtime) so that the operators, the server and the
//! CLI can all use it.

pub mod bento;
pub mod bento_deployment;
pub mod bento_request;
pub mod common;
mod print;
pub mod quantity;

pub use bento::{Bento, BentoSpec, BentoStatus};
pub use bento_deployment::v2alpha1::{BentoDeployment, BentoDeploymentSpec, BentoDeploymentStatus};
pub use bento_request::{BentoRequest, BentoRequestSpec, BentoRequestStatus};
pub use print::{all_crds, crds_yaml};

/// API group of [`Bento`] and [`BentoRequest`].
pub const RESOURCES_GROUP: &str = "resources.yatai.ai";
/// API group of [`BentoDeployment`].
pub const SERVING_GROUP: &str = "serving.yatai.ai";
