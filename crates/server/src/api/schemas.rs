//! The JSON shapes of resources, as Yatai 1.x and the BentoML clients know them, and the
//! conversions from stored rows.

use serde::Serialize;
use utoipa::ToSchema;
use yatai_domain::time::{now_micros, to_rfc3339};
use yatai_store::db::{api_tokens::ApiToken, organizations::Organization, users::User};

/// A key/value label.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema, PartialEq, Eq)]
pub struct LabelItem {
    pub key: String,
    pub value: String,
}

/// The fields every resource has.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ResourceSchema {
    pub uid: String,
    pub name: String,
    pub resource_type: &'static str,
    pub labels: Vec<LabelItem>,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub deleted_at: Option<String>,
}

impl ResourceSchema {
    /// Builds the common fields.
    pub fn new(
        resource_type: &'static str,
        uid: &str,
        name: &str,
        created_at: i64,
        updated_at: Option<i64>,
    ) -> Self {
        ResourceSchema {
            uid: uid.to_string(),
            name: name.to_string(),
            resource_type,
            labels: Vec::new(),
            created_at: to_rfc3339(created_at),
            updated_at: updated_at.map(to_rfc3339),
            deleted_at: None,
        }
    }
}

/// A user as others see them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserSchema {
    #[serde(flatten)]
    pub resource: ResourceSchema,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub avatar_url: String,
    pub is_site_admin: bool,
}

impl From<&User> for UserSchema {
    fn from(u: &User) -> Self {
        UserSchema {
            resource: ResourceSchema::new("user", &u.uid, &u.name, u.created_at, u.updated_at),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            email: u.email.clone(),
            avatar_url: String::new(),
            is_site_admin: u.is_site_admin != 0,
        }
    }
}

/// An organization.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OrganizationSchema {
    #[serde(flatten)]
    pub resource: ResourceSchema,
    pub description: String,
}

impl From<&Organization> for OrganizationSchema {
    fn from(o: &Organization) -> Self {
        OrganizationSchema {
            resource: ResourceSchema::new(
                "organization",
                &o.uid,
                &o.name,
                o.created_at,
                o.updated_at,
            ),
            description: o.description.clone(),
        }
    }
}

/// A member of an organization.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemberSchema {
    #[serde(flatten)]
    pub resource: ResourceSchema,
    pub role: String,
    pub user: UserSchema,
    pub organization: OrganizationSchema,
}

/// An API token; `token` holds the secret only in the response to its creation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiTokenSchema {
    #[serde(flatten)]
    pub resource: ResourceSchema,
    pub description: String,
    pub scopes: Vec<String>,
    pub user: UserSchema,
    pub organization: OrganizationSchema,
    pub expired_at: Option<String>,
    pub last_used_at: Option<String>,
    pub is_expired: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl ApiTokenSchema {
    /// Builds the token's shape; `secret` only right after creation.
    pub fn new(t: &ApiToken, user: &User, org: &Organization, secret: Option<String>) -> Self {
        ApiTokenSchema {
            resource: ResourceSchema::new("api_token", &t.uid, &t.name, t.created_at, t.updated_at),
            description: t.description.clone(),
            scopes: t.scopes().iter().map(|s| s.as_str().to_string()).collect(),
            user: user.into(),
            organization: org.into(),
            expired_at: t.expired_at.map(to_rfc3339),
            last_used_at: t.last_used_at.map(to_rfc3339),
            is_expired: t.is_expired(now_micros()),
            token: secret,
        }
    }
}

/// A page of a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ListSchema<T> {
    pub start: i64,
    pub count: i64,
    pub total: i64,
    pub items: Vec<T>,
}

impl<T> ListSchema<T> {
    /// A list that holds every item (no paging).
    pub fn all(items: Vec<T>) -> Self {
        let n = items.len() as i64;
        ListSchema {
            start: 0,
            count: n,
            total: n,
            items,
        }
    }
}

/// A bento or model version as the clients read it. `name` is the version; for a bento the
/// `resource_type` is `bento`, for a model `model`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VersionSchema {
    #[serde(flatten)]
    pub resource: ResourceSchema,
    pub version: String,
    pub description: String,
    pub image_build_status: String,
    /// The image of the last successful build (bentos).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_reference: Option<String>,
    /// Why the last image build failed (bentos).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_build_reason: Option<String>,
    pub upload_status: String,
    pub upload_finished_reason: String,
    pub upload_started_at: Option<String>,
    pub upload_finished_at: Option<String>,
    /// Filled only by `presign_upload_url` / `presign_multipart_upload_url`; never null.
    pub presigned_upload_url: String,
    /// Filled only by `presign_download_url`; never null.
    pub presigned_download_url: String,
    /// `proxy`, `presigned_url` (multipart) or null (ask `presign_*_url`).
    pub transmission_strategy: Option<&'static str>,
    pub upload_id: String,
    #[schema(value_type = Object)]
    pub manifest: serde_json::Value,
    pub build_at: String,
    /// Size in bytes of the stored archive, once uploaded.
    pub archive_size: Option<i64>,
    /// SHA-256 of the stored archive, once uploaded.
    pub archive_sha256: Option<String>,
    pub creator: Option<UserSchema>,
    /// The repository, in lists that span repositories and in a version's full form.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub repository: Option<Box<serde_json::Value>>,
    /// A bento's models (full form only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<VersionSchema>>,
}

/// A bento or model repository; `latest_bento` / `latest_model` and `n_bentos` / `n_models` are
/// named after the kind, so this is built as JSON.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RepositorySchema {
    #[serde(flatten)]
    pub resource: ResourceSchema,
    pub description: String,
    pub creator: Option<UserSchema>,
    pub organization: Option<OrganizationSchema>,
    /// `latest_bento` or `latest_model`, and `n_bentos` or `n_models`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub kind_fields: serde_json::Map<String, serde_json::Value>,
}

/// An event.
#[derive(Debug, Clone, Serialize, ToSchema)]
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
