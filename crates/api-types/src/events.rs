//! Events: who did what to which resource, and when.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// An event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventSchema {
    pub uid: String,
    pub created_at: String,
    pub resource_type: String,
    pub resource_name: String,
    pub operation_name: String,
    pub status: String,
    pub creator_name: String,
    pub api_token_name: String,
}

/// Filters of the event list.
#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    pub start: Option<i64>,
    pub count: Option<i64>,
    /// e.g. `bento`, `model`, `bento_repository`.
    pub resource_type: Option<String>,
    /// e.g. `create`, `push`, `pull`, `delete`, `update`.
    pub operation_name: Option<String>,
    /// The user who acted.
    pub user: Option<String>,
    /// RFC 3339: only events at or after.
    pub since: Option<String>,
    /// RFC 3339: only events before.
    pub until: Option<String>,
}
