//! Versions of bentos and models: create with manifest and labels, read, list, change, delete,
//! the models a bento uses, and what may be pulled.

use yatai_domain::registry::{bento_model_tags, parse_build_at, Kind, UploadStatus};
use yatai_domain::{names, time::now_micros, Action, Error};
use yatai_store::db::repositories as repos;
use yatai_store::db::users::{self, User};
use yatai_store::db::versions::{self, NewVersion, Version, VersionPage};
use yatai_store::db::{bento_models, db_error, labels, uploads as upload_rows, RowLock};

use super::query::ListSpec;
use super::{load_repository, load_version, tag, uploads};
use crate::{events, Caller, Services};

/// The longest value of a label.
pub const MAX_LABEL_VALUE_CHARS: usize = 1024;
/// The most labels one version carries.
pub const MAX_LABELS: usize = 100;

/// A new version as the clients send it.
#[derive(Debug, Clone)]
pub struct NewVersionInput {
    pub version: String,
    pub description: String,
    pub manifest: serde_json::Value,
    /// The clients' `build_at` (their naive format or RFC 3339); now when absent.
    pub build_at: Option<String>,
    pub labels: Vec<(String, String)>,
}

/// Changes to a version; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct VersionChanges {
    pub description: Option<String>,
    pub manifest: Option<serde_json::Value>,
    pub labels: Option<Vec<(String, String)>>,
}

/// Checks labels: valid keys, no key twice, bounded values.
pub fn check_labels(list: &[(String, String)]) -> Result<(), Error> {
    if list.len() > MAX_LABELS {
        return Err(Error::field(
            "labels",
            format!("at most {MAX_LABELS} labels, not {}", list.len()),
        ));
    }
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in list {
        names::validate_label_key(key).map_err(|e| Error::field("labels", e))?;
        if value.chars().count() > MAX_LABEL_VALUE_CHARS {
            return Err(Error::field(
                "labels",
                format!(
                    "the value of label {key:?} is longer than {MAX_LABEL_VALUE_CHARS} characters"
                ),
            ));
        }
        if seen.contains(&key.as_str()) {
            return Err(Error::field(
                "labels",
                format!("label {key:?} is given twice"),
            ));
        }
        seen.push(key);
    }
    Ok(())
}

/// Checks a manifest and returns it as stored (JSON text, every key kept).
pub fn check_manifest(kind: Kind, manifest: &serde_json::Value) -> Result<String, Error> {
    if !manifest.is_object() {
        return Err(Error::field(
            "manifest",
            format!("the {} manifest must be a JSON object", kind.as_str()),
        ));
    }
    if let Some(size) = manifest.get("size_bytes") {
        if !size.is_u64() {
            return Err(Error::field(
                "manifest",
                "manifest.size_bytes must be a non-negative integer",
            ));
        }
    }
    serde_json::to_string(manifest).map_err(|e| Error::Internal(e.to_string()))
}

/// Creates a version in `pending` state; the creating push claims its manifest.
pub async fn create(
    svc: &Services,
    caller: &Caller,
    kind: Kind,
    repository: &str,
    input: &NewVersionInput,
) -> Result<Version, Error> {
    caller.authorize(Action::WriteRegistry)?;
    let repo = load_repository(svc, caller, kind, repository).await?;
    names::validate_version(&input.version).map_err(|e| Error::field("version", e))?;
    names::validate_description(kind.as_str(), &input.description)
        .map_err(|e| Error::field("description", e))?;
    let manifest = check_manifest(kind, &input.manifest)?;
    check_labels(&input.labels)?;
    let build_at = match input.build_at.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => parse_build_at(s).map_err(|e| Error::field("build_at", e))?,
        None => now_micros(),
    };
    let mut tx = svc.db.begin().await?;
    let v = versions::create(
        &mut *tx,
        &NewVersion {
            repository_uid: &repo.uid,
            kind,
            version: &input.version,
            description: &input.description,
            manifest: &manifest,
            build_at,
            creator_uid: &caller.user().uid,
            claim_holder: &caller.push_credentials(),
        },
    )
    .await?;
    labels::replace(&mut tx, &caller.organization.uid, &v.uid, &input.labels).await?;
    if kind == Kind::Bento {
        bento_models::replace(
            &mut tx,
            &caller.organization.uid,
            &v.uid,
            &bento_model_tags(&input.manifest),
        )
        .await?;
    }
    tx.commit().await.map_err(db_error)?;
    events::record(
        svc,
        caller,
        kind.as_str(),
        &tag(repository, &v.version),
        "create",
    )
    .await;
    Ok(v)
}

/// Changes a version's description, labels or manifest. The manifest belongs to a push: it is
/// claimed first (a concurrent push learns at once that it lost), and a version serving an
/// archive takes it only together with that push's archive.
pub async fn update(
    svc: &Services,
    caller: &Caller,
    kind: Kind,
    repository: &str,
    version: &str,
    changes: &VersionChanges,
) -> Result<Version, Error> {
    caller.authorize(Action::WriteRegistry)?;
    let v = load_version(svc, caller, kind, repository, version).await?;
    let manifest = changes
        .manifest
        .as_ref()
        .map(|m| check_manifest(kind, m))
        .transpose()?;
    if let Some(l) = &changes.labels {
        check_labels(l)?;
    }
    if let Some(d) = &changes.description {
        names::validate_description(kind.as_str(), d)
            .map_err(|e| Error::field("description", e))?;
    }
    let the_tag = tag(repository, version);
    if let Some(m) = &manifest {
        uploads::claim_manifest(svc, caller, kind, &v, &the_tag, m).await?;
    }
    let mut tx = svc.db.begin().await?;
    // A version serving no archive took the manifest at once, and its model relations with it.
    if let (Some(m), Kind::Bento, None) = (&changes.manifest, kind, &v.object_key) {
        bento_models::replace(
            &mut tx,
            &caller.organization.uid,
            &v.uid,
            &bento_model_tags(m),
        )
        .await?;
    }
    if let Some(d) = &changes.description {
        versions::update_description(&mut *tx, &v.uid, d).await?;
    }
    if let Some(l) = &changes.labels {
        labels::replace(&mut tx, &caller.organization.uid, &v.uid, l).await?;
    }
    tx.commit().await.map_err(db_error)?;
    events::record(svc, caller, kind.as_str(), &the_tag, "update").await;
    versions::find_by_uid(svc.db.pool(), &v.uid)
        .await?
        .ok_or_else(|| Error::not_found(kind.as_str(), &the_tag))
}

/// Deletes a version, its archive and the uploads still running; a model still used by a bento
/// is refused with the bento named.
pub async fn delete(
    svc: &Services,
    caller: &Caller,
    kind: Kind,
    repository: &str,
    version: &str,
) -> Result<Version, Error> {
    caller.authorize(Action::WriteRegistry)?;
    let v = load_version(svc, caller, kind, repository, version).await?;
    if kind == Kind::Model {
        let users = bentos_of_model(svc, caller, repository, version).await?;
        if !users.is_empty() {
            let repos_by_uid = repos::find_many(
                svc.db.pool(),
                &users
                    .iter()
                    .map(|b| b.repository_uid.clone())
                    .collect::<Vec<_>>(),
            )
            .await?;
            let tags: Vec<String> = users
                .iter()
                .filter_map(|b| {
                    repos_by_uid
                        .iter()
                        .find(|r| r.uid == b.repository_uid)
                        .map(|r| tag(&r.name, &b.version))
                })
                .collect();
            return Err(Error::Conflict(format!(
                "model {} is used by bento {}; delete the bento first",
                tag(repository, version),
                tags.join(", ")
            )));
        }
    }
    let mut tx = svc.db.begin().await?;
    // Locked first, so that an upload started meanwhile is either seen here (and its archive
    // deleted below) or waits and then finds the version gone; read without the lock, it could
    // commit in between, be deleted with the version, and leave its archive behind for good.
    versions::lock(&mut tx, &v.uid, RowLock::WritersAndReferences).await?;
    let running = upload_rows::uploading_of_version(&mut *tx, &v.uid).await?;
    labels::replace(&mut tx, &caller.organization.uid, &v.uid, &[]).await?;
    versions::delete(&mut *tx, &v.uid).await?;
    tx.commit().await.map_err(db_error)?;
    for u in &running {
        uploads::discard_objects(svc, u).await;
    }
    if let Some(key) = &v.object_key {
        if let Err(e) = svc.objects.delete(key).await {
            tracing::error!(error = %e, key, "could not delete the archive of a deleted version");
        }
    }
    events::record(
        svc,
        caller,
        kind.as_str(),
        &tag(repository, version),
        "delete",
    )
    .await;
    Ok(v)
}

/// A page of versions of the organization (of one repository when `repository` is given).
pub async fn list(
    svc: &Services,
    caller: &Caller,
    kind: Kind,
    repository: Option<&str>,
    spec: &ListSpec,
) -> Result<VersionPage, Error> {
    caller.authorize(Action::ReadRegistry)?;
    let repository_uid = match repository {
        Some(name) => Some(load_repository(svc, caller, kind, name).await?.uid),
        None => None,
    };
    versions::list(
        &svc.db,
        &caller.organization.uid,
        kind,
        &spec.version_filter(repository_uid)?,
        spec.page(),
    )
    .await
}

/// The pushed model versions a bento version uses (models not pushed yet are left out).
pub async fn models_of_bento(
    svc: &Services,
    caller: &Caller,
    bento: &Version,
) -> Result<Vec<Version>, Error> {
    caller.authorize(Action::ReadRegistry)?;
    versions::models_of_bento(svc.db.pool(), &caller.organization.uid, &bento.uid).await
}

/// The bento versions that use a model version.
pub async fn bentos_of_model(
    svc: &Services,
    caller: &Caller,
    model: &str,
    version: &str,
) -> Result<Vec<Version>, Error> {
    caller.authorize(Action::ReadRegistry)?;
    versions::bentos_using_model(svc.db.pool(), &caller.organization.uid, model, version).await
}

/// The users who created a batch of versions (each once).
pub async fn creators_of(svc: &Services, list: &[Version]) -> Result<Vec<User>, Error> {
    let mut uids: Vec<String> = list.iter().filter_map(|v| v.creator_uid.clone()).collect();
    uids.sort();
    uids.dedup();
    users::find_many(svc.db.pool(), &uids).await
}

/// The key of the archive a version serves, or a clear refusal when it cannot be pulled. A
/// version that has a whole archive serves it, whatever a re-push in progress is doing.
pub fn pullable(kind: Kind, tag: &str, v: &Version) -> Result<String, Error> {
    match (&v.object_key, v.status()) {
        (Some(key), _) => Ok(key.clone()),
        (None, status) => {
            let why = match status {
                UploadStatus::Failed if !v.upload_finished_reason.is_empty() => {
                    format!("its upload failed: {}", v.upload_finished_reason)
                }
                UploadStatus::Failed => "its upload failed".to_string(),
                UploadStatus::Uploading => "it is still being uploaded".to_string(),
                _ => "it has not been uploaded yet".to_string(),
            };
            Err(Error::Conflict(format!(
                "{} \"{tag}\" cannot be pulled: {why}",
                kind.title()
            )))
        }
    }
}

/// What a pull reads: the version and the key of its archive; records the pull when `whole`
/// (a range request is a part of a pull, not a pull).
pub async fn pull(
    svc: &Services,
    caller: &Caller,
    kind: Kind,
    repository: &str,
    version: &str,
    whole: bool,
) -> Result<(Version, String), Error> {
    let v = load_version(svc, caller, kind, repository, version).await?;
    let the_tag = tag(repository, version);
    let key = pullable(kind, &the_tag, &v)?;
    if whole {
        events::record(svc, caller, kind.as_str(), &the_tag, "pull").await;
    }
    Ok((v, key))
}
