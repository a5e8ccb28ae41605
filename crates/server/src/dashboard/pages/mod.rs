//! The dashboard's pages, one module per resource, each with its routes. A new resource (the
//! deployments and clusters come next) is one more module here, merged in `dashboard::router`.

pub mod auth;
pub mod events;
pub mod members;
pub mod overview;
pub mod registry;
pub mod tokens;
pub mod users;
