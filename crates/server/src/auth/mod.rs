//! Authentication (API tokens, session cookies, passwords) and the request's caller.

mod caller;
pub mod secrets;

pub use caller::{Caller, Identity, ORGANIZATION_HEADER, SESSION_COOKIE, TOKEN_HEADER};
