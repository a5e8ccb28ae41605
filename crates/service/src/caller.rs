//! Who is calling: an authenticated user (by API token or browser session), and the member of
//! one organization acting through it. The HTTP layer extracts the credentials; the rules live here.

use yatai_domain::access::authorize;
use yatai_domain::time::now_micros;
use yatai_domain::{Action, Error, Role, Scope};
use yatai_store::db::{
    api_tokens, api_tokens::ApiToken, members, organizations, organizations::Organization,
    sessions, users, users::User, Tx,
};

use crate::secrets::secret_hash;
use crate::Services;

/// The header the BentoML CLI sends its API token in (for messages).
pub const TOKEN_HEADER_NAME: &str = "X-YATAI-API-TOKEN";

/// How often `last_used_at` of a token is written at most (microseconds).
const TOKEN_TOUCH_INTERVAL: i64 = 60_000_000;

/// An authenticated user, before any organization is chosen.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: User,
    /// The token the request came with; `None` for a browser session.
    pub token: Option<ApiToken>,
    /// The token's organization and the user's role there, read with the token (`None`: a
    /// browser session, or the organization is gone).
    token_organization: Option<(Organization, Option<Role>)>,
    /// The registry's generation, read with the token (`None`: not read): what the request's
    /// registry reads are at least as new as (see [`crate::read_cache`]).
    pub registry_generation: Option<i64>,
}

impl Identity {
    /// The token's scopes, or `None` for a browser session (which has the user's full role).
    pub fn scopes(&self) -> Option<Vec<Scope>> {
        self.token.as_ref().map(ApiToken::scopes)
    }

    /// Whether the user administers the whole installation (and, for a token, it may write the organization).
    pub fn require_site_admin(&self) -> Result<(), Error> {
        if !self.user.is_site_admin {
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
    /// The client's connection, when known.
    pub client: Option<std::net::SocketAddr>,
}

impl Caller {
    /// The calling user.
    pub fn user(&self) -> &User {
        &self.identity.user
    }

    /// Who pushes, as far as the server can tell pushes apart: the credentials and the
    /// connection. A client keeps its connection between its requests; concurrent clients each
    /// have their own.
    pub fn push_holder(&self) -> String {
        let credentials = self.push_credentials();
        match self.client {
            Some(addr) => format!("{credentials}@{addr}"),
            None => credentials,
        }
    }

    /// The credentials part of [`Self::push_holder`]: a version's creation claims it for any
    /// connection of its creator (a script may create a version, then change it, with two
    /// connections).
    pub fn push_credentials(&self) -> String {
        match &self.identity.token {
            Some(t) => format!("token:{}", t.uid),
            None => format!("session:{}", self.user().uid),
        }
    }

    /// Fails with 403 unless the caller's role and token scopes allow `action`.
    pub fn authorize(&self, action: Action) -> Result<(), Error> {
        authorize(self.role, self.identity.scopes().as_deref(), action)
    }

    /// Takes the organization's lock (`members::lock_organization`, held until `tx` ends, as
    /// every change of roles does) and checks [`Self::authorize`] again with the caller's role as
    /// it is then: the role read when the request began may have been taken away since, and an
    /// admin demoted by another could otherwise make himself admin again with a request sent
    /// before.
    pub async fn authorize_again(&self, tx: &mut Tx, action: Action) -> Result<(), Error> {
        members::lock_organization(&mut **tx, &self.organization.uid).await?;
        let role = members::find(&mut **tx, &self.organization.uid, &self.user().uid)
            .await?
            .map(|m| m.role)
            .ok_or_else(|| {
                Error::Forbidden(format!(
                    "you are no longer a member of the organization {:?}",
                    self.organization.name
                ))
            })?;
        authorize(role, self.identity.scopes().as_deref(), action)
    }
}

/// Authenticates a request by its API token, else its session cookie's value.
pub async fn authenticate(
    svc: &Services,
    token: Option<&str>,
    session: Option<&str>,
) -> Result<Identity, Error> {
    let pool = svc.db.pool();
    if let Some(secret) = token.map(str::trim).filter(|s| !s.is_empty()) {
        let holder = api_tokens::find_by_hash_with_holder(pool, &secret_hash(secret))
            .await?
            .ok_or_else(|| {
                Error::Unauthenticated("invalid API token: it does not exist or was revoked".into())
            })?;
        let token = holder.token;
        let now = now_micros();
        if token.is_expired(now) {
            return Err(Error::Unauthenticated(format!(
                "the API token {:?} has expired",
                token.name
            )));
        }
        let user = holder.user.ok_or_else(|| {
            Error::Unauthenticated("the API token's user no longer exists".into())
        })?;
        if token
            .last_used_at
            .is_none_or(|t| now - t > TOKEN_TOUCH_INTERVAL)
        {
            api_tokens::touch(pool, &token.uid, now).await?;
        }
        return Ok(Identity {
            user,
            token: Some(token),
            token_organization: holder.organization,
            registry_generation: holder.registry_generation,
        });
    }
    if let Some(cookie) = session {
        if let Some(user_uid) = sessions::find_user_uid(pool, &secret_hash(cookie)).await? {
            if let Some(user) = users::find_by_uid(pool, &user_uid).await? {
                return Ok(Identity {
                    user,
                    token: None,
                    token_organization: None,
                    registry_generation: None,
                });
            }
        }
        return Err(Error::Unauthenticated(
            "your session has expired: log in again".into(),
        ));
    }
    Err(Error::Unauthenticated(format!(
        "authentication required: send an API token in the {TOKEN_HEADER_NAME} header, or log in"
    )))
}

/// The member acting for `identity`: in its token's organization, else in the organization
/// named by a browser session (`organization`), else in the user's first organization.
pub async fn resolve(
    svc: &Services,
    identity: Identity,
    organization: Option<&str>,
    client: Option<std::net::SocketAddr>,
) -> Result<Caller, Error> {
    let pool = svc.db.pool();
    // The token's organization (read with the token), else the one the session named, else
    // the user's first.
    let found = if identity.token.is_some() {
        identity.token_organization.clone()
    } else {
        let uid = match organization {
            Some(name) => organizations::find_by_name(pool, name)
                .await?
                .map(|o| o.uid),
            None => organizations::list_for_user(pool, &identity.user.uid)
                .await?
                .into_iter()
                .next()
                .map(|o| o.uid),
        };
        match uid {
            Some(uid) => organizations::find_with_role(pool, &uid, &identity.user.uid).await?,
            None => None,
        }
    };
    let (organization, role) = found
        .ok_or_else(|| Error::Forbidden("you are not a member of this organization".into()))?;
    let role = role.ok_or_else(|| {
        Error::Forbidden(format!(
            "you are not a member of the organization {:?}",
            organization.name
        ))
    })?;
    Ok(Caller {
        role,
        identity,
        organization,
        client,
    })
}
