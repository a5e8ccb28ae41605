//! Repositories of bentos or models: create (idempotent: clients race on it), read, list,
//! describe, delete when empty.

use yatai_domain::registry::Kind;
use yatai_domain::{names, Action, Error};
use yatai_store::db::repositories::{self as repos, Repository, RepositoryFilter, RepositoryPage};
use yatai_store::db::{db_error, versions};

use super::load_repository;
use super::query::ListSpec;
use crate::{events, Caller, Services};

/// Creates a repository, or returns the existing one with that name.
pub async fn create(
    svc: &Services,
    caller: &Caller,
    kind: Kind,
    name: &str,
    description: &str,
) -> Result<Repository, Error> {
    caller.authorize(Action::WriteRegistry)?;
    names::validate_repository_name(name).map_err(|e| Error::field("name", e))?;
    names::validate_description("repository", description)
        .map_err(|e| Error::field("description", e))?;
    let pool = svc.db.pool();
    let existed = repos::find(pool, &caller.organization.uid, kind, name)
        .await?
        .is_some();
    let repo = repos::create_or_get(
        pool,
        &caller.organization.uid,
        kind,
        name,
        description,
        &caller.user().uid,
    )
    .await?;
    if !existed {
        events::record(svc, caller, kind.repository_type(), &repo.name, "create").await;
    }
    Ok(repo)
}

/// A page of repositories, by the parsed list query.
pub async fn list(
    svc: &Services,
    caller: &Caller,
    kind: Kind,
    spec: &ListSpec,
) -> Result<RepositoryPage, Error> {
    caller.authorize(Action::ReadRegistry)?;
    repos::list(
        &svc.db,
        &caller.organization.uid,
        kind,
        &RepositoryFilter {
            search: spec.search.clone(),
            labels: spec.labels.clone(),
        },
        spec.repository_order()?,
        spec.page(),
    )
    .await
}

/// A repository as a page of one: with its latest version and number of versions. Not found
/// when it was deleted since it was read.
pub async fn with_latest(svc: &Services, repository: &Repository) -> Result<RepositoryPage, Error> {
    let page = repos::one(&svc.db, repository).await?;
    if page.repositories.is_empty() {
        return Err(super::repository_not_found(
            repository.kind,
            &repository.name,
        ));
    }
    Ok(page)
}

/// Changes a repository's description.
pub async fn update(
    svc: &Services,
    caller: &Caller,
    kind: Kind,
    name: &str,
    description: Option<&str>,
) -> Result<Repository, Error> {
    caller.authorize(Action::WriteRegistry)?;
    let mut repo = load_repository(svc, caller, kind, name).await?;
    if let Some(d) = description {
        names::validate_description("repository", d).map_err(|e| Error::field("description", e))?;
        repos::set_description(svc.db.pool(), &repo.uid, d).await?;
        repo.description = d.to_string();
        events::record(svc, caller, kind.repository_type(), &repo.name, "update").await;
    }
    Ok(repo)
}

/// Deletes a repository that has no version left.
pub async fn delete(
    svc: &Services,
    caller: &Caller,
    kind: Kind,
    name: &str,
) -> Result<Repository, Error> {
    caller.authorize(Action::WriteRegistry)?;
    let repo = load_repository(svc, caller, kind, name).await?;
    // Counted and deleted in one transaction, the repository locked first: a version created
    // meanwhile is counted (or waits, and then finds the repository gone). Counted apart, it
    // could be created in between and deleted with the repository, its archive left behind.
    let mut tx = svc.db.begin().await?;
    repos::lock_for_delete(&mut tx, &repo.uid).await?;
    let n = versions::count_in_repository(&mut *tx, &repo.uid).await?;
    if n > 0 {
        return Err(Error::Conflict(format!(
            "the {} repository {name:?} still has {n} version(s); delete them first",
            kind.as_str()
        )));
    }
    repos::delete(&mut *tx, &repo.uid).await?;
    tx.commit().await.map_err(db_error)?;
    events::record(svc, caller, kind.repository_type(), &repo.name, "delete").await;
    Ok(repo)
}
