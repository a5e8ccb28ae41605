//! Authentication (API tokens, session cookies, passwords) and the request's caller.

mod caller;
pub use yatai_service::secrets;

pub use caller::{Caller, Identity, ORGANIZATION_HEADER, SESSION_COOKIE, TOKEN_HEADER};

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
