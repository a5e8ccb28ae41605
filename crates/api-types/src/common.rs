//! Shapes every resource shares: labels, the resource fields, pages, errors.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A key/value label.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct LabelItem {
    pub key: String,
    pub value: String,
}

/// The fields every resource has.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ResourceSchema {
    pub uid: String,
    pub name: String,
    pub resource_type: String,
    #[serde(default)]
    pub labels: Vec<LabelItem>,
    pub created_at: String,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub deleted_at: Option<String>,
}

impl ResourceSchema {
    /// The common fields of a resource; times are RFC 3339 strings.
    pub fn new(
        resource_type: &str,
        uid: &str,
        name: &str,
        created_at: String,
        updated_at: Option<String>,
    ) -> Self {
        ResourceSchema {
            uid: uid.to_string(),
            name: name.to_string(),
            resource_type: resource_type.to_string(),
            labels: Vec::new(),
            created_at,
            updated_at,
            deleted_at: None,
        }
    }
}

/// A page of a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ListSchema<T> {
    pub start: i64,
    pub count: i64,
    pub total: i64,
    pub items: Vec<T>,
}

impl<T> ListSchema<T> {
    /// A page of a list of `total` items that starts at `start`.
    pub fn page(start: i64, total: i64, items: Vec<T>) -> Self {
        ListSchema {
            start,
            count: items.len() as i64,
            total,
            items,
        }
    }

    /// A list that holds every item (no paging).
    pub fn all(items: Vec<T>) -> Self {
        let n = items.len() as i64;
        Self::page(0, n, items)
    }
}

/// The paging query of a list (`start`, `count`, at most 1000 items a page).
#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Index of the first item (default 0).
    pub start: Option<i64>,
    /// How many items (default 100, at most 1000).
    pub count: Option<i64>,
}

/// The body of every error response: `{"error": KIND, "message": TEXT}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ErrorBody {
    /// A stable machine-readable kind: `bad_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `conflict`, `internal`, `unavailable`, `too_many_requests`.
    pub error: String,
    /// A sentence for the user.
    pub message: String,
    /// The input field the error is about, when it is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}
