//! The deployment operator: `BentoDeployment` → Deployments, Services, HPAs, an Ingress, in the controller-rs shape.
//!
//! - [`desired`]: the pure function from a BentoDeployment and its Bento to the objects that should exist;
//! - [`controller`]: the reconcile (server-side apply, pruning, adoption of the original operator's objects),
//!   status conditions, error policy with back-off;
//! - [`leader`]: leader election through a Lease, so that only one replica reconciles;
//! - [`metrics`]: reconcile count, duration and errors on `/metrics`;
//! - [`render`]: the same objects for the BentoDeployments of a YAML file, without a cluster.

pub mod config;
pub mod controller;
pub mod desired;
pub mod envoy;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod render;

pub use config::Config;
pub use desired::{desired, Desired, Object, SpecError};
