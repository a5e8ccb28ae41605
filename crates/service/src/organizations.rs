//! Organizations: site administrators create them; members read them; admins describe them.
//! A token acts in its own organization only.

use yatai_domain::access::authorize;
use yatai_domain::{names, Action, Error, Role};
use yatai_store::db::organizations::{self, Organization};
use yatai_store::db::{db_error, members};

use crate::{Caller, Identity, Services};

/// An organization the identity is a member of, with their role; 404 otherwise (a token sees
/// only its own organization).
async fn membership(
    svc: &Services,
    identity: &Identity,
    name: &str,
) -> Result<(Organization, Role), Error> {
    let pool = svc.db.pool();
    let org = organizations::find_by_name(pool, name)
        .await?
        .ok_or_else(|| Error::not_found("organization", name))?;
    if let Some(token) = &identity.token {
        if token.organization_uid != org.uid {
            return Err(Error::not_found("organization", name));
        }
    }
    let member = members::find(pool, &org.uid, &identity.user.uid)
        .await?
        .ok_or_else(|| Error::not_found("organization", name))?;
    Ok((org, member.role()))
}

/// The organizations the identity belongs to (a token sees only its own).
pub async fn list(svc: &Services, identity: &Identity) -> Result<Vec<Organization>, Error> {
    let mut orgs = organizations::list_for_user(svc.db.pool(), &identity.user.uid).await?;
    if let Some(token) = &identity.token {
        authorize(
            Role::Guest,
            identity.scopes().as_deref(),
            Action::ReadOrganization,
        )?;
        orgs.retain(|o| o.uid == token.organization_uid);
    }
    Ok(orgs)
}

/// Creates an organization (site administrators, from a session); the creator becomes its admin.
pub async fn create(
    svc: &Services,
    identity: &Identity,
    name: &str,
    description: &str,
) -> Result<Organization, Error> {
    identity.require_site_admin()?;
    if identity.token.is_some() {
        // A token acts in its own organization only: it could not use the one it created.
        return Err(Error::Forbidden(
            "create organizations from a logged-in session (the dashboard): an API token acts only in its own organization and could not use the new one".into(),
        ));
    }
    names::validate_name("organization name", name).map_err(|e| Error::field("name", e))?;
    names::validate_description("organization", description)
        .map_err(|e| Error::field("description", e))?;
    let mut tx = svc.db.begin().await?;
    let org = organizations::create(&mut *tx, name, description, &identity.user.uid).await?;
    members::upsert(&mut *tx, &org.uid, &identity.user.uid, Role::Admin).await?;
    crate::deployments::create_default_cluster(&mut tx, &org.uid, &identity.user.uid).await?;
    tx.commit().await.map_err(db_error)?;
    Ok(org)
}

/// An organization the identity belongs to.
pub async fn get(svc: &Services, identity: &Identity, name: &str) -> Result<Organization, Error> {
    let (org, role) = membership(svc, identity, name).await?;
    authorize(role, identity.scopes().as_deref(), Action::ReadOrganization)?;
    Ok(org)
}

/// Changes the description of an organization the identity administers.
pub async fn update(
    svc: &Services,
    identity: &Identity,
    name: &str,
    description: Option<&str>,
) -> Result<Organization, Error> {
    let (org, role) = membership(svc, identity, name).await?;
    authorize(
        role,
        identity.scopes().as_deref(),
        Action::WriteOrganization,
    )?;
    describe(svc, org, description).await
}

/// Changes the description of the caller's organization (its admins).
pub async fn update_current(
    svc: &Services,
    caller: &Caller,
    description: Option<&str>,
) -> Result<Organization, Error> {
    caller.authorize(Action::WriteOrganization)?;
    describe(svc, caller.organization.clone(), description).await
}

async fn describe(
    svc: &Services,
    mut org: Organization,
    description: Option<&str>,
) -> Result<Organization, Error> {
    if let Some(d) = description {
        names::validate_description("organization", d)
            .map_err(|e| Error::field("description", e))?;
        organizations::set_description(svc.db.pool(), &org.uid, d).await?;
        org.description = d.to_string();
        org.updated_at = Some(yatai_domain::time::now_micros());
    }
    Ok(org)
}
