//! The JSON shapes of the API live in `yatai-api-types`; this module turns stored rows into them
//! (the one place that knows both).

use yatai_domain::time::{now_micros, to_rfc3339};
use yatai_store::db::{api_tokens::ApiToken, organizations::Organization, users::User};

pub use yatai_api_types::{
    ApiTokenSchema, EventSchema, KindFields, LabelItem, ListSchema, MemberSchema,
    OrganizationSchema, PageQuery, RepositorySchema, ResourceSchema, UserSchema, VersionSchema,
};

/// The common fields of a resource.
pub fn resource(
    resource_type: &str,
    uid: &str,
    name: &str,
    created_at: i64,
    updated_at: Option<i64>,
) -> ResourceSchema {
    ResourceSchema::new(
        resource_type,
        uid,
        name,
        to_rfc3339(created_at),
        updated_at.map(to_rfc3339),
    )
}

/// A user as others see them.
pub fn user(u: &User) -> UserSchema {
    UserSchema {
        resource: resource("user", &u.uid, &u.name, u.created_at, u.updated_at),
        first_name: u.first_name.clone(),
        last_name: u.last_name.clone(),
        email: u.email.clone(),
        avatar_url: String::new(),
        is_site_admin: u.is_site_admin,
    }
}

/// An organization.
pub fn organization(o: &Organization) -> OrganizationSchema {
    OrganizationSchema {
        resource: resource("organization", &o.uid, &o.name, o.created_at, o.updated_at),
        description: o.description.clone(),
    }
}

/// An API token; `secret` only right after its creation.
pub fn api_token(
    t: &ApiToken,
    owner: &User,
    org: &Organization,
    secret: Option<String>,
) -> ApiTokenSchema {
    ApiTokenSchema {
        resource: resource("api_token", &t.uid, &t.name, t.created_at, t.updated_at),
        description: t.description.clone(),
        scopes: t.scopes().iter().map(|s| s.as_str().to_string()).collect(),
        user: user(owner),
        organization: organization(org),
        expired_at: t.expired_at.map(to_rfc3339),
        last_used_at: t.last_used_at.map(to_rfc3339),
        is_expired: t.is_expired(now_micros()),
        token: secret,
    }
}

/// One page of a list.
pub fn page<T>(page: yatai_domain::paging::Page, total: i64, items: Vec<T>) -> ListSchema<T> {
    ListSchema::page(page.start, total, items)
}
