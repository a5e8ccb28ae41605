//! Members: who belongs to an organization, with which role. An organization always keeps an
//! admin.

use yatai_domain::paging::Page;
use yatai_domain::{Action, Error, Role};
use yatai_store::db::db_error;
use yatai_store::db::members::{self, Member};
use yatai_store::db::users::{self, User};

use crate::{Caller, Services};

/// A page of the members of the caller's organization, each with their user.
pub async fn list(
    svc: &Services,
    caller: &Caller,
    page: Page,
) -> Result<(Vec<(Member, User)>, i64), Error> {
    caller.authorize(Action::ReadOrganization)?;
    let pool = svc.db.pool();
    let (rows, total) = members::list(pool, &caller.organization.uid, page).await?;
    let uids: Vec<String> = rows.iter().map(|m| m.user_uid.clone()).collect();
    let people = users::find_many(pool, &uids).await?;
    let items = rows
        .into_iter()
        .filter_map(|m| {
            let user = people.iter().find(|u| u.uid == m.user_uid)?.clone();
            Some((m, user))
        })
        .collect();
    Ok((items, total))
}

/// Adds users to the caller's organization with `role`, or changes their role; refuses to leave
/// the organization without an admin. All or nothing.
pub async fn set_roles(
    svc: &Services,
    caller: &Caller,
    usernames: &[String],
    role: &str,
) -> Result<(), Error> {
    caller.authorize(Action::ManageMembers)?;
    let role: Role = role.parse().map_err(|e: Error| Error::field("role", e))?;
    if usernames.is_empty() {
        return Err(Error::field(
            "username",
            "usernames must name at least one user",
        ));
    }
    let mut tx = svc.db.begin().await?;
    // Under the organization's lock, which the count of admins below relies on too.
    caller
        .authorize_again(&mut tx, Action::ManageMembers)
        .await?;
    for name in usernames {
        let user = users::find_by_name(&mut *tx, name)
            .await?
            .ok_or_else(|| Error::field("username", Error::not_found("user", name)))?;
        members::upsert(&mut *tx, &caller.organization.uid, &user.uid, role).await?;
    }
    if members::count_admins(&mut *tx, &caller.organization.uid).await? == 0 {
        return Err(Error::Conflict(
            "the organization must keep at least one admin".into(),
        ));
    }
    tx.commit().await.map_err(db_error)?;
    Ok(())
}

/// Removes a user from the caller's organization, refusing to remove the last admin.
pub async fn remove(svc: &Services, caller: &Caller, username: &str) -> Result<(), Error> {
    caller.authorize(Action::ManageMembers)?;
    let mut tx = svc.db.begin().await?;
    // Under the organization's lock, which the count of admins below relies on too.
    caller
        .authorize_again(&mut tx, Action::ManageMembers)
        .await?;
    let user = users::find_by_name(&mut *tx, username)
        .await?
        .ok_or_else(|| Error::field("username", Error::not_found("member", username)))?;
    if !members::delete(&mut *tx, &caller.organization.uid, &user.uid).await? {
        return Err(Error::field(
            "username",
            Error::not_found("member", username),
        ));
    }
    if members::count_admins(&mut *tx, &caller.organization.uid).await? == 0 {
        return Err(Error::Conflict(
            "the organization must keep at least one admin".into(),
        ));
    }
    tx.commit().await.map_err(db_error)?;
    Ok(())
}
