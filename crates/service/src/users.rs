//! Users: the members' accounts. Admins create users into their organization and reset their
//! passwords; only a site administrator may touch a site administrator's password.

use yatai_domain::paging::Page;
use yatai_domain::{names, Action, Error, Role};
use yatai_store::db::users::{self, User};
use yatai_store::db::{db_error, members, sessions};

use crate::secrets::hash_password;
use crate::{Caller, Services};

/// A new account.
#[derive(Debug, Clone, Default)]
pub struct NewAccount {
    pub name: String,
    pub email: String,
    pub password: String,
    pub first_name: String,
    pub last_name: String,
}

impl NewAccount {
    /// Checks the fields a person chooses; errors name their field.
    pub fn validate(&self) -> Result<(), Error> {
        names::validate_name("user name", &self.name).map_err(|e| Error::field("name", e))?;
        names::validate_email(&self.email).map_err(|e| Error::field("email", e))?;
        names::validate_password(&self.password).map_err(|e| Error::field("password", e))?;
        for (field, value) in [
            ("first_name", &self.first_name),
            ("last_name", &self.last_name),
        ] {
            if value.chars().count() > 64 {
                return Err(Error::field(
                    field,
                    format!(
                        "{} must have at most 64 characters",
                        field.replace('_', " ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Creates a user and adds them to the caller's organization with `role` (default developer).
pub async fn create(
    svc: &Services,
    caller: &Caller,
    account: &NewAccount,
    role: Option<&str>,
) -> Result<User, Error> {
    caller.authorize(Action::ManageMembers)?;
    account.validate()?;
    let role: Role = role
        .filter(|r| !r.is_empty())
        .unwrap_or("developer")
        .parse()
        .map_err(|e: Error| Error::field("role", e))?;
    let hash = hash_password(account.password.clone()).await?;
    let mut tx = svc.db.begin().await?;
    // The caller may have been demoted since the request began (see `Caller::authorize_again`).
    caller
        .authorize_again(&mut tx, Action::ManageMembers)
        .await?;
    let user = users::create(
        &mut tx,
        &users::NewUser {
            name: &account.name,
            email: &account.email,
            first_name: &account.first_name,
            last_name: &account.last_name,
            password_hash: &hash,
            is_site_admin: false,
        },
    )
    .await
    .map_err(|e| match e {
        Error::Conflict(m) => Error::field("name", Error::Conflict(m)),
        other => other,
    })?;
    members::upsert(&mut *tx, &caller.organization.uid, &user.uid, role).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(user)
}

/// Finds a user who is a member of the caller's organization.
pub async fn find_visible(svc: &Services, caller: &Caller, name: &str) -> Result<User, Error> {
    let user = users::find_by_name(svc.db.pool(), name)
        .await?
        .ok_or_else(|| Error::not_found("user", name))?;
    members::find(svc.db.pool(), &caller.organization.uid, &user.uid)
        .await?
        .ok_or_else(|| Error::not_found("user", name))?;
    Ok(user)
}

/// A user of the caller's organization.
pub async fn get(svc: &Services, caller: &Caller, name: &str) -> Result<User, Error> {
    caller.authorize(Action::ReadOrganization)?;
    find_visible(svc, caller, name).await
}

/// A page of the users of the caller's organization, by name.
pub async fn list(svc: &Services, caller: &Caller, page: Page) -> Result<(Vec<User>, i64), Error> {
    caller.authorize(Action::ReadOrganization)?;
    users::list_in_organization(svc.db.pool(), &caller.organization.uid, page).await
}

/// Sets a new password for a user of the caller's organization (admins) and ends their sessions.
/// Only a site administrator may reset a site administrator's password (anyone may reset their
/// own): without this, an organization admin could take over the whole installation.
pub async fn reset_password(
    svc: &Services,
    caller: &Caller,
    name: &str,
    new_password: &str,
) -> Result<User, Error> {
    caller.authorize(Action::ManageMembers)?;
    let user = find_visible(svc, caller, name).await?;
    if user.is_site_admin && caller.user().uid != user.uid && !caller.user().is_site_admin {
        return Err(Error::Forbidden(
            "only a site administrator may reset a site administrator's password".into(),
        ));
    }
    names::validate_password(new_password).map_err(|e| Error::field("new_password", e))?;
    let hash = hash_password(new_password.to_string()).await?;
    let mut tx = svc.db.begin().await?;
    // The caller may have been demoted since the request began (see `Caller::authorize_again`).
    caller
        .authorize_again(&mut tx, Action::ManageMembers)
        .await?;
    users::set_password_hash(&mut *tx, &user.uid, &hash).await?;
    sessions::delete_for_user(&mut *tx, &user.uid).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(user)
}
