//! Authentication (API tokens, session cookies, passwords) and the request's caller.

mod caller;
pub use yatai_service::secrets;

pub use caller::{Caller, Identity, ORGANIZATION_HEADER, SESSION_COOKIE, TOKEN_HEADER};

use axum_extra::extract::cookie::{Cookie, SameSite};

use crate::AppState;

/// The session cookie for `secret` (HttpOnly, SameSite=Lax, Secure over HTTPS); the API's login
/// and the dashboard's set the same one.
pub fn session_cookie(state: &AppState, secret: String) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, secret))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.settings.secure_cookies)
        .max_age(time::Duration::seconds(
            state.settings.session_ttl.as_secs() as i64,
        ))
        .build()
}

/// The cookie that ends a session in the browser.
pub fn session_cookie_removal() -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE).path("/").build()
}

/// The address of the client's connection, when the server was started with connection info.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}
