//! The dashboard's pages, one module per resource, each with its routes. A new resource is one more module here, merged in `dashboard::router`.

pub mod auth;
pub mod clusters;
pub mod deployments;
pub mod events;
pub mod members;
pub mod overview;
pub mod registry;
pub mod tokens;
pub mod users;
