//! Facts about the server.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The server's version.
#[derive(Serialize, Clone, Deserialize, ToSchema)]
pub struct ServerVersion {
    pub version: String,
    pub git_commit: String,
    pub build_date: String,
}

/// Facts about this installation.
#[derive(Serialize, Clone, Deserialize, ToSchema)]
pub struct InfoSchema {
    pub is_saas: bool,
    pub saas_domain_suffix: String,
    pub database: String,
    pub object_storage: String,
}
