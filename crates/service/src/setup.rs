//! First-run setup: creates the first admin and the default organization, once, with the
//! initialization token.

use yatai_domain::{Error, Role};
use yatai_store::db::users::{self, User};
use yatai_store::db::{db_error, members, organizations, settings};

use crate::secrets::{hash_password, secrets_equal};
use crate::users::NewAccount;
use crate::Services;

/// The name of the organization that setup creates.
pub const DEFAULT_ORGANIZATION: &str = "default";

/// Whether setup has been completed. Setup is closed once it ran, and also as soon as any user
/// exists (an installation restored or imported from Yatai 1.x has its admins already).
pub async fn is_completed(svc: &Services) -> Result<bool, Error> {
    let pool = svc.db.pool();
    Ok(settings::get(pool, settings::SETUP_COMPLETED)
        .await?
        .is_some()
        || users::count(pool).await? > 0)
}

fn closed() -> Error {
    Error::Conflict("setup has already been completed; log in instead".into())
}

/// Checks that setup is still open (409 otherwise) and that `token` is the initialization token
/// (403 otherwise): what the setup form checks before it is shown, and setup itself.
pub async fn check_open(svc: &Services, token: &str) -> Result<(), Error> {
    if is_completed(svc).await? {
        return Err(closed());
    }
    if svc.settings.initialization_token.is_empty()
        || !secrets_equal(token, &svc.settings.initialization_token)
    {
        return Err(Error::Forbidden("invalid initialization token: use the one printed by `yatai serve` or set in YATAI_INITIALIZATION_TOKEN".into()));
    }
    Ok(())
}

/// Runs setup: checks the token and the account, then creates the first admin and the default
/// organization in one transaction. Setup is closed afterwards, for good.
pub async fn complete(svc: &Services, token: &str, account: &NewAccount) -> Result<User, Error> {
    check_open(svc, token).await?;
    account.validate()?;
    let password_hash = hash_password(account.password.clone()).await?;

    let mut tx = svc.db.begin().await?;
    if !settings::insert_new(
        &mut *tx,
        settings::SETUP_COMPLETED,
        &yatai_domain::time::now_micros().to_string(),
    )
    .await?
    {
        return Err(closed());
    }
    let user = users::create(
        &mut tx,
        &users::NewUser {
            name: &account.name,
            email: &account.email,
            first_name: &account.first_name,
            last_name: &account.last_name,
            password_hash: &password_hash,
            is_site_admin: true,
        },
    )
    .await?;
    let org = organizations::create(&mut *tx, DEFAULT_ORGANIZATION, "", &user.uid).await?;
    members::upsert(&mut *tx, &org.uid, &user.uid, Role::Admin).await?;
    crate::deployments::create_default_cluster(&mut tx, &org.uid, &user.uid).await?;
    tx.commit().await.map_err(db_error)?;
    tracing::info!(user = %user.name, "setup completed: first admin created");
    Ok(user)
}
