//! The JSON shapes of Yatai's HTTP API, as Yatai 1.x and the BentoML clients know them.
//!
//! Plain data with serde and utoipa derives and nothing else (no axum, no sqlx), so that the
//! server, the typed client, the image builder and the operators share one definition. Response
//! shapes deserialize with defaults for the fields a client may not get, so that older servers
//! and newer ones read alike; request bodies serialize for the client and deserialize for the
//! server.

mod common;
mod deployments;
mod events;
mod identity;
mod meta;
mod registry;

pub use common::*;
pub use deployments::*;
pub use events::*;
pub use identity::*;
pub use meta::*;
pub use registry::*;
