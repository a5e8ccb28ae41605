//! The registry: bento and model repositories, their versions, and their archives. Bentos and
//! models follow one life cycle, so each use case is written once and takes the [`Kind`].

pub mod images;
pub mod janitor;
pub mod query;
pub mod repositories;
pub mod uploads;
pub mod versions;

use yatai_domain::registry::Kind;
use yatai_domain::{Action, Error};
use yatai_store::db::repositories::{self as repos, Repository};
use yatai_store::db::versions::{self as version_rows, Version};

use crate::{Caller, Services};

/// A version's tag as users write it: `name:version`.
pub fn tag(name: &str, version: &str) -> String {
    format!("{name}:{version}")
}

/// Finds a repository of the caller's organization or fails with 404.
pub async fn load_repository(
    svc: &Services,
    caller: &Caller,
    kind: Kind,
    name: &str,
) -> Result<Repository, Error> {
    caller.authorize(Action::ReadRegistry)?;
    repos::find(svc.db.pool(), &caller.organization.uid, kind, name)
        .await?
        .ok_or_else(|| repository_not_found(kind, name))
}

/// The error for a repository that is not there (or no longer).
pub(crate) fn repository_not_found(kind: Kind, name: &str) -> Error {
    Error::not_found(kind.repository_type().replace('_', " ").as_str(), name)
}

/// Finds a version of a repository of the caller's organization or fails with 404, naming the
/// repository when that is what is missing.
pub async fn load_version(
    svc: &Services,
    caller: &Caller,
    kind: Kind,
    name: &str,
    version: &str,
) -> Result<Version, Error> {
    caller.authorize(Action::ReadRegistry)?;
    let found =
        version_rows::find_by_tag(svc.db.pool(), &caller.organization.uid, kind, name, version)
            .await?;
    match found {
        Some(v) => Ok(v),
        None => {
            // Only to say which is missing.
            load_repository(svc, caller, kind, name).await?;
            Err(Error::not_found(kind.as_str(), tag(name, version)))
        }
    }
}

/// A fresh object key for one archive of a version (see [`yatai_store::objects::ArchiveKey`]).
pub fn new_object_key(kind: Kind, organization_uid: &str, repo: &str, version: &str) -> String {
    yatai_store::objects::ArchiveKey::fresh(kind, organization_uid, repo, version).into_string()
}
