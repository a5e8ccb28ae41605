//! Yatai's domain: the types and rules of the registry, free of I/O.
//!
//! Everything that decides *whether* something is allowed or valid lives here, so that the
//! REST API, the dashboard and the command line apply one rule each.

pub mod access;
pub mod error;
pub mod manifest;
pub mod names;
pub mod registry;
pub mod time;

pub use access::{Action, Role, Scope};
pub use error::{Error, Result};
