//! Users, organizations, members, API tokens, setup, login.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::ResourceSchema;

/// A user as others see them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct UserSchema {
    #[serde(flatten)]
    pub resource: ResourceSchema,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub avatar_url: String,
    #[serde(default)]
    pub is_site_admin: bool,
}

/// An organization.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct OrganizationSchema {
    #[serde(flatten)]
    pub resource: ResourceSchema,
    #[serde(default)]
    pub description: String,
}

/// A member of an organization.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberSchema {
    #[serde(flatten)]
    pub resource: ResourceSchema,
    pub role: String,
    pub user: UserSchema,
    pub organization: OrganizationSchema,
}

/// An API token; `token` holds the secret only in the response to its creation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiTokenSchema {
    #[serde(flatten)]
    pub resource: ResourceSchema,
    #[serde(default)]
    pub description: String,
    pub scopes: Vec<String>,
    pub user: UserSchema,
    pub organization: OrganizationSchema,
    #[serde(default)]
    pub expired_at: Option<String>,
    #[serde(default)]
    pub last_used_at: Option<String>,
    #[serde(default)]
    pub is_expired: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The body of `POST /api/v1/setup`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SetupSchema {
    pub token: String,
    pub name: String,
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
}

/// The body of a login.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginSchema {
    pub name_or_email: String,
    pub password: String,
}

/// The body of a password change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResetPasswordSchema {
    pub current_password: String,
    pub new_password: String,
}

/// A CLI browser-login code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CliLoginCode {
    pub code: String,
}

/// The query of the CLI's token poll.
#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CliLoginPoll {
    pub code: String,
}

/// The token handed to the CLI.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CliLoginToken {
    pub token: String,
}

/// The body of a user creation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateUserSchema {
    pub name: String,
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    /// The new user's role in the caller's organization (default: developer).
    #[serde(default)]
    pub role: Option<String>,
}

/// The body of an admin's password reset.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SetPasswordSchema {
    pub new_password: String,
}

/// The body of `POST /api/v1/members`: add users (or change their role).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AddMembersSchema {
    pub usernames: Vec<String>,
    pub role: String,
}

/// The body of `DELETE /api/v1/members`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RemoveMemberSchema {
    pub username: String,
}

/// The body of an organization creation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateOrganizationSchema {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// The body of an organization update.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpdateOrganizationSchema {
    pub description: Option<String>,
}

/// The body of a token creation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateApiTokenSchema {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub scopes: Vec<String>,
    /// RFC 3339 time after which the token stops working; null for never.
    #[serde(default)]
    pub expired_at: Option<String>,
}

/// The body of a token update; absent fields stay as they are.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpdateApiTokenSchema {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Present and null clears the expiry.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub expired_at: Option<Option<String>>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}
