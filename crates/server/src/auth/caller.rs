//! The HTTP side of "who is calling": extractors that take the credentials of a request (API
//! token header, `Authorization: Bearer`, session cookie, organization header) and hand them to
//! the service's authentication.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;
pub use yatai_service::{Caller, Identity};

use crate::error::ApiError;
use crate::AppState;

/// The header the BentoML CLI sends its API token in.
pub const TOKEN_HEADER: &str = "x-yatai-api-token";
/// The header a browser session may use to pick one of the user's organizations.
pub const ORGANIZATION_HEADER: &str = "x-yatai-organization";
/// The session cookie of the dashboard.
pub const SESSION_COOKIE: &str = "yatai_session";

impl FromRequestParts<AppState> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(identity) = parts.extensions.get::<Identity>() {
            return Ok(identity.clone());
        }
        let bearer = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let token = parts
            .headers
            .get(TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .or(bearer);
        let jar = CookieJar::from_headers(&parts.headers);
        let session = jar.get(SESSION_COOKIE).map(|c| c.value());
        let identity = yatai_service::caller::authenticate(state, token, session).await?;
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
        let organization = parts
            .headers
            .get(ORGANIZATION_HEADER)
            .and_then(|v| v.to_str().ok());
        let client = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0);
        Ok(yatai_service::caller::resolve(state, identity, organization, client).await?)
    }
}
