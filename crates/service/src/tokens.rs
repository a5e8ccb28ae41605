//! API tokens of the caller in the current organization: the secret is shown once, stored as its
//! SHA-256; a token may never hand out more than it has.

use yatai_domain::paging::Page;
use yatai_domain::time::{now_micros, parse_rfc3339};
use yatai_domain::{names, Action, Error, Scope};
use yatai_store::db::api_tokens::{self, ApiToken, ApiTokenChanges, NewApiToken};
use yatai_store::db::cli_logins;

use crate::secrets::{new_secret, secret_hash};
use crate::{Caller, Services};

/// The prefix of every API token secret.
pub const TOKEN_PREFIX: &str = "yt_";

/// What a new token is asked to be.
#[derive(Debug, Clone, Default)]
pub struct NewToken {
    pub name: String,
    pub description: String,
    /// Scope names as sent.
    pub scopes: Vec<String>,
    /// RFC 3339 expiry, or none for never.
    pub expired_at: Option<String>,
}

/// Changes to a token; `None` leaves a field as it is (`Some(None)` clears the expiry).
#[derive(Debug, Clone, Default)]
pub struct TokenChanges {
    pub description: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub expired_at: Option<Option<String>>,
}

/// Parses and checks requested scopes: known, at least one, and none beyond the caller's own token.
fn parse_scopes(caller: &Caller, requested: &[String]) -> Result<Vec<Scope>, Error> {
    let mut scopes = Vec::new();
    for s in requested {
        let scope: Scope = s.parse().map_err(|e: Error| Error::field("scopes", e))?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.is_empty() {
        return Err(Error::field(
            "scopes",
            format!(
                "scopes must name at least one of: {}",
                Scope::ALL.map(Scope::as_str).join(", ")
            ),
        ));
    }
    if let Some(own) = caller.identity.scopes() {
        if let Some(extra) = scopes.iter().find(|s| !own.contains(s)) {
            return Err(Error::Forbidden(format!("an API token cannot create or widen a token to the scope {extra} that it does not have itself")));
        }
    }
    Ok(scopes)
}

fn parse_expiry(value: Option<&str>) -> Result<Option<i64>, Error> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => {
            let t = parse_rfc3339(v).ok_or_else(|| {
                Error::field(
                    "expired_at",
                    format!(
                        "expired_at {v:?} is not an RFC 3339 time such as 2030-01-31T00:00:00Z"
                    ),
                )
            })?;
            if t <= now_micros() {
                return Err(Error::field(
                    "expired_at",
                    "expired_at must be in the future",
                ));
            }
            Ok(Some(t))
        }
    }
}

/// Creates a token for the caller; returns it with its secret (shown only this once).
pub async fn create(
    svc: &Services,
    caller: &Caller,
    new: &NewToken,
) -> Result<(ApiToken, String), Error> {
    caller.authorize(Action::ManageOwnTokens)?;
    names::validate_name("token name", &new.name).map_err(|e| Error::field("name", e))?;
    names::validate_description("token", &new.description)
        .map_err(|e| Error::field("description", e))?;
    let scopes = parse_scopes(caller, &new.scopes)?;
    let expired_at = parse_expiry(new.expired_at.as_deref())?;
    let secret = new_secret(TOKEN_PREFIX);
    let token = api_tokens::create(
        svc.db.pool(),
        &NewApiToken {
            name: &new.name,
            description: &new.description,
            organization_uid: &caller.organization.uid,
            user_uid: &caller.user().uid,
            scopes: &scopes,
            token_hash: &secret_hash(&secret),
            expired_at,
        },
    )
    .await
    .map_err(|e| match e {
        Error::Conflict(m) => Error::field("name", Error::Conflict(m)),
        other => other,
    })?;
    Ok((token, secret))
}

/// A page of the caller's tokens in the current organization.
pub async fn list(
    svc: &Services,
    caller: &Caller,
    page: Page,
) -> Result<(Vec<ApiToken>, i64), Error> {
    caller.authorize(Action::ManageOwnTokens)?;
    api_tokens::list(
        svc.db.pool(),
        &caller.organization.uid,
        Some(&caller.user().uid),
        page,
    )
    .await
}

/// One of the caller's tokens; another user's or organization's token is not found.
pub async fn get(svc: &Services, caller: &Caller, uid: &str) -> Result<ApiToken, Error> {
    caller.authorize(Action::ManageOwnTokens)?;
    api_tokens::find(svc.db.pool(), &caller.organization.uid, uid)
        .await?
        .filter(|t| t.user_uid == caller.user().uid)
        .ok_or_else(|| Error::not_found("API token", uid))
}

/// Changes the description, scopes or expiry of one of the caller's tokens.
pub async fn update(
    svc: &Services,
    caller: &Caller,
    uid: &str,
    changes: &TokenChanges,
) -> Result<ApiToken, Error> {
    let token = get(svc, caller, uid).await?;
    if let Some(d) = &changes.description {
        names::validate_description("token", d).map_err(|e| Error::field("description", e))?;
    }
    let changes = ApiTokenChanges {
        description: changes.description.clone(),
        scopes: changes
            .scopes
            .as_deref()
            .map(|s| parse_scopes(caller, s))
            .transpose()?,
        expired_at: changes
            .expired_at
            .as_ref()
            .map(|e| parse_expiry(e.as_deref()))
            .transpose()?,
    };
    api_tokens::update(svc.db.pool(), &token.uid, &changes)
        .await?
        .ok_or_else(|| Error::not_found("API token", uid))
}

/// Revokes (deletes) one of the caller's tokens.
pub async fn revoke(svc: &Services, caller: &Caller, uid: &str) -> Result<ApiToken, Error> {
    let token = get(svc, caller, uid).await?;
    api_tokens::delete(svc.db.pool(), &token.uid).await?;
    Ok(token)
}

/// Hands a new token with every scope to the BentoML CLI waiting on a browser login `code`,
/// once the logged-in caller confirmed it.
pub async fn authorize_cli_login(
    svc: &Services,
    caller: &Caller,
    code: &str,
) -> Result<ApiToken, Error> {
    crate::sessions::check_cli_login(svc, code).await?;
    let code_hash = secret_hash(code);
    let new = NewToken {
        name: format!("cli-login-{}", &new_secret("")[..8]),
        description: "created by a browser login of the BentoML CLI".into(),
        scopes: Scope::ALL.iter().map(|s| s.as_str().to_string()).collect(),
        expired_at: None,
    };
    let (token, secret) = create(svc, caller, &new).await?;
    if !cli_logins::authorize(svc.db.pool(), &code_hash, &caller.user().uid, &secret).await? {
        let _ = revoke(svc, caller, &token.uid).await;
        return Err(Error::Conflict(
            "this CLI login code was used meanwhile".into(),
        ));
    }
    Ok(token)
}
