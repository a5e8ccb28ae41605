//! Who is calling: an extractor that authenticates the request by API token or session cookie,
//! and resolves the organization it acts in.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;
use yatai_domain::access::authorize;
use yatai_domain::time::now_micros;
use yatai_domain::{Action, Error, Role, Scope};
use yatai_store::db::{
    api_tokens, api_tokens::ApiToken, members, organizations, organizations::Organization,
    sessions, users, users::User,
};

use super::secrets::secret_hash;
use crate::error::ApiError;
use crate::AppState;

/// The header the BentoML CLI sends its API token in.
pub const TOKEN_HEADER: &str = "x-yatai-api-token";
/// The header a browser session may use to pick one of the user's organizations.
pub const ORGANIZATION_HEADER: &str = "x-yatai-organization";
/// The session cookie of the dashboard.
pub const SESSION_COOKIE: &str = "yatai_session";

/// How often `last_used_at` of a token is written at most (microseconds).
const TOKEN_TOUCH_INTERVAL: i64 = 60_000_000;

/// An authenticated user, before any organization is chosen.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: User,
    /// The token the request came with; `None` for a browser session.
    pub token: Option<ApiToken>,
}

impl Identity {
    /// The token's scopes, or `None` for a browser session (which has the user's full role).
    pub fn scopes(&self) -> Option<Vec<Scope>> {
        self.token.as_ref().map(ApiToken::scopes)
    }

    /// Whether the user administers the whole installation (and, for a token, it may write the organization).
    pub fn require_site_admin(&self) -> Result<(), Error> {
        if self.user.is_site_admin == 0 {
            return Err(Error::Forbidden(
                "only a site administrator may do this".into(),
            ));
        }
        if let Some(scopes) = self.scopes() {
            if !scopes.contains(&Scope::WriteOrganization) {
                return Err(Error::Forbidden(
                    "this API token needs the write_organization scope for this".into(),
                ));
            }
        }
        Ok(())
    }
}

/// An authenticated member acting inside one organization.
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Identity,
    pub organization: Organization,
    pub role: Role,
}

impl Caller {
    /// The calling user.
    pub fn user(&self) -> &User {
        &self.identity.user
    }

    /// Fails with 403 unless the caller's role and token scopes allow `action`.
    pub fn authorize(&self, action: Action) -> Result<(), Error> {
        authorize(self.role, self.identity.scopes().as_deref(), action)
    }
}

impl FromRequestParts<AppState> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(identity) = parts.extensions.get::<Identity>() {
            return Ok(identity.clone());
        }
        let identity = authenticate(parts, state).await?;
        parts.extensions.insert(identity.clone());
        Ok(identity)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let identity = Identity::from_request_parts(parts, state).await?;
        let pool = state.db.pool();
        let organization = match &identity.token {
            Some(token) => organizations::find_by_uid(pool, &token.organization_uid).await?,
            None => match parts
                .headers
                .get(ORGANIZATION_HEADER)
                .and_then(|v| v.to_str().ok())
            {
                Some(name) => organizations::find_by_name(pool, name).await?,
                None => organizations::list_for_user(pool, &identity.user.uid)
                    .await?
                    .into_iter()
                    .next(),
            },
        }
        .ok_or_else(|| Error::Forbidden("you are not a member of this organization".into()))?;
        let member = members::find(pool, &organization.uid, &identity.user.uid)
            .await?
            .ok_or_else(|| {
                Error::Forbidden(format!(
                    "you are not a member of the organization {:?}",
                    organization.name
                ))
            })?;
        Ok(Caller {
            role: member.role(),
            identity,
            organization,
        })
    }
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Identity, Error> {
    let pool = state.db.pool();
    let bearer = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let token_value = parts
        .headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .or(bearer);
    if let Some(secret) = token_value.map(str::trim).filter(|s| !s.is_empty()) {
        let token = api_tokens::find_by_hash(pool, &secret_hash(secret))
            .await?
            .ok_or_else(|| {
                Error::Unauthenticated("invalid API token: it does not exist or was revoked".into())
            })?;
        let now = now_micros();
        if token.is_expired(now) {
            return Err(Error::Unauthenticated(format!(
                "the API token {:?} has expired",
                token.name
            )));
        }
        if token
            .last_used_at
            .is_none_or(|t| now - t > TOKEN_TOUCH_INTERVAL)
        {
            api_tokens::touch(pool, &token.uid, now).await?;
        }
        let user = users::find_by_uid(pool, &token.user_uid)
            .await?
            .ok_or_else(|| {
                Error::Unauthenticated("the API token's user no longer exists".into())
            })?;
        return Ok(Identity {
            user,
            token: Some(token),
        });
    }
    let jar = CookieJar::from_headers(&parts.headers);
    if let Some(cookie) = jar.get(SESSION_COOKIE) {
        if let Some(user_uid) = sessions::find_user_uid(pool, &secret_hash(cookie.value())).await? {
            if let Some(user) = users::find_by_uid(pool, &user_uid).await? {
                return Ok(Identity { user, token: None });
            }
        }
        return Err(Error::Unauthenticated(
            "your session has expired: log in again".into(),
        ));
    }
    Err(Error::Unauthenticated(format!(
        "authentication required: send an API token in the {} header, or log in",
        "X-YATAI-API-TOKEN"
    )))
}
