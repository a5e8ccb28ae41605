//! Password login with a session, logout, password change, and the BentoML CLI's browser login.

use std::net::IpAddr;

use yatai_domain::time::now_micros;
use yatai_domain::{names, Error};
use yatai_store::db::users::{self, User};
use yatai_store::db::{cli_logins, db_error, sessions};

use crate::secrets::{hash_password, is_legacy_hash, new_secret, secret_hash, verify_password};
use crate::{Identity, Services};

/// How long a CLI browser-login code stays valid.
pub const CLI_LOGIN_TTL_SECS: i64 = 300;

/// Checks a user's password and opens a session; returns the user and the session secret.
/// Failed attempts are throttled per account and per client `address` before any hash is
/// computed.
pub async fn login(
    svc: &Services,
    name_or_email: &str,
    password: &str,
    address: Option<IpAddr>,
) -> Result<(User, String), Error> {
    let account = name_or_email.trim();
    svc.login_throttle.check(account, address)?;
    // A second round only when the password hash changed while the first checked it: another
    // login upgraded a legacy hash (both right), or the password was reset or changed.
    for _ in 0..2 {
        let user = users::find_by_name_or_email(svc.db.pool(), account).await?;
        let ok = verify_password(
            password.to_string(),
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await?;
        let user = match (ok, user) {
            (true, Some(user)) => user,
            _ => break,
        };
        let upgraded = match is_legacy_hash(&user.password_hash) {
            true => Some(hash_password(password.to_string()).await?),
            false => None,
        };
        // The session is opened only if the hash checked above is still the user's: a reset or
        // change committed meanwhile (which ends the user's sessions) would otherwise be
        // outlived by this one, and a legacy hash upgraded over the new password.
        let mut tx = svc.db.begin().await?;
        if !users::lock_if_password_is(&mut tx, &user.uid, &user.password_hash).await? {
            continue;
        }
        if let Some(upgraded) = &upgraded {
            users::set_password_hash(&mut *tx, &user.uid, upgraded).await?;
        }
        let secret = new_secret("ys_");
        let expires = now_micros() + svc.settings.session_ttl.as_micros() as i64;
        sessions::create(&mut *tx, &secret_hash(&secret), &user.uid, expires).await?;
        tx.commit().await.map_err(db_error)?;
        svc.login_throttle.succeeded(account);
        return Ok((user, secret));
    }
    svc.login_throttle.failed(account, address);
    Err(Error::Unauthenticated("wrong user name or password".into()))
}

/// Ends the session whose secret is `secret`.
pub async fn logout(svc: &Services, secret: &str) -> Result<(), Error> {
    sessions::delete(svc.db.pool(), &secret_hash(secret)).await
}

/// Changes the caller's own password (from a logged-in session, with the current password) and
/// ends their sessions.
pub async fn change_password(
    svc: &Services,
    identity: &Identity,
    current_password: &str,
    new_password: &str,
) -> Result<User, Error> {
    if identity.token.is_some() {
        return Err(Error::Forbidden(
            "a password can only be changed from a logged-in session, not with an API token".into(),
        ));
    }
    if !verify_password(
        current_password.to_string(),
        Some(identity.user.password_hash.clone()),
    )
    .await?
    {
        return Err(Error::field(
            "current_password",
            "the current password is wrong",
        ));
    }
    names::validate_password(new_password).map_err(|e| Error::field("new_password", e))?;
    let hash = hash_password(new_password.to_string()).await?;
    let mut tx = svc.db.begin().await?;
    users::set_password_hash(&mut *tx, &identity.user.uid, &hash).await?;
    sessions::delete_for_user(&mut *tx, &identity.user.uid).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(identity.user.clone())
}

/// Starts a browser login of the BentoML CLI: a code the user confirms in the dashboard.
pub async fn start_cli_login(svc: &Services) -> Result<String, Error> {
    let code = new_secret("");
    let expires = now_micros() + CLI_LOGIN_TTL_SECS * 1_000_000;
    cli_logins::create(svc.db.pool(), &secret_hash(&code), expires).await?;
    Ok(code)
}

/// Fails with 404 unless `code` is a CLI browser-login code still waiting for a user to confirm
/// it (the page that asks for the confirmation checks it before showing the button).
pub async fn check_cli_login(svc: &Services, code: &str) -> Result<(), Error> {
    if !cli_logins::is_pending(svc.db.pool(), &secret_hash(code)).await? {
        return Err(Error::NotFound(
            "this CLI login code is unknown, expired or used already: run `bentoml cloud login` again".into(),
        ));
    }
    Ok(())
}

/// The CLI's poll: the token once a logged-in user authorized the code (handed out once).
pub async fn collect_cli_login(svc: &Services, code: &str) -> Result<String, Error> {
    cli_logins::take_token(svc.db.pool(), &secret_hash(code))
        .await?
        .ok_or_else(|| {
            Error::NotFound(
                "the login code is not authorized yet, has expired, or was used already".into(),
            )
        })
}
