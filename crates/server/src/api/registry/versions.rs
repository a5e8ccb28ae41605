//! Version handlers, generic over the kind: create with manifest and labels, read, list, update, delete.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use yatai_domain::registry::{bento_model_tags, parse_build_at, Kind};
use yatai_domain::{names, time::now_micros, Action, Error};
use yatai_service::registry::uploads;
use yatai_store::db::versions::{self, NewVersion};
use yatai_store::db::{
    bento_models, db_error, labels, repositories as repos, uploads as upload_rows,
};

use super::{
    client_generation, load_repository, load_version, Bentos, ListQuery, Models, Presenter,
    RegistryKind,
};
use crate::api::events;
use crate::api::schemas::{LabelItem, ListSchema, VersionSchema};
use crate::auth::Caller;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::AppState;

/// The body of a version creation, as the clients send it.
#[derive(Debug, Deserialize)]
pub struct CreateVersion {
    pub version: String,
    #[serde(default)]
    pub description: String,
    pub manifest: serde_json::Value,
    #[serde(default)]
    pub build_at: Option<String>,
    #[serde(default)]
    pub labels: Option<Vec<LabelItem>>,
}

/// The body of a version update; absent fields stay.
#[derive(Debug, Deserialize)]
pub struct UpdateVersion {
    pub description: Option<String>,
    pub manifest: Option<serde_json::Value>,
    pub labels: Option<Vec<LabelItem>>,
}

/// Checks labels: valid keys, no key twice, values of at most 1024 characters.
fn check_labels(list: &[LabelItem]) -> Result<Vec<(String, String)>, Error> {
    let mut out: Vec<(String, String)> = Vec::new();
    for l in list {
        names::validate_label_key(&l.key)?;
        if l.value.chars().count() > 1024 {
            return Err(Error::invalid(format!(
                "the value of label {:?} is longer than 1024 characters",
                l.key
            )));
        }
        if out.iter().any(|(k, _)| *k == l.key) {
            return Err(Error::invalid(format!("label {:?} is given twice", l.key)));
        }
        out.push((l.key.clone(), l.value.clone()));
    }
    Ok(out)
}

fn check_manifest(kind: Kind, manifest: &serde_json::Value) -> Result<String, Error> {
    if !manifest.is_object() {
        return Err(Error::invalid(format!(
            "the {} manifest must be a JSON object",
            kind.as_str()
        )));
    }
    if let Some(size) = manifest.get("size_bytes") {
        if !size.is_u64() {
            return Err(Error::invalid(
                "manifest.size_bytes must be a non-negative integer",
            ));
        }
    }
    serde_json::to_string(manifest).map_err(|e| Error::Internal(e.to_string()))
}

pub async fn create<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<CreateVersion>,
) -> ApiResult<Json<VersionSchema>> {
    caller.authorize(Action::WriteRegistry)?;
    let repo = load_repository::<K>(&state, &caller, &name).await?;
    names::validate_version(&body.version)?;
    names::validate_description(K::KIND.as_str(), &body.description)?;
    let manifest = check_manifest(K::KIND, &body.manifest)?;
    let label_list = check_labels(body.labels.as_deref().unwrap_or_default())?;
    let build_at = match body.build_at.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => parse_build_at(s)?,
        None => now_micros(),
    };
    let mut tx = state.db.begin().await?;
    let v = versions::create(
        &mut *tx,
        &NewVersion {
            repository_uid: &repo.uid,
            kind: K::KIND,
            version: &body.version,
            description: &body.description,
            manifest: &manifest,
            build_at,
            creator_uid: &caller.user().uid,
            claim_holder: &caller.push_credentials(),
        },
    )
    .await?;
    labels::replace(&mut tx, &caller.organization.uid, &v.uid, &label_list).await?;
    if K::KIND == Kind::Bento {
        bento_models::replace(
            &mut tx,
            &caller.organization.uid,
            &v.uid,
            &bento_model_tags(&body.manifest),
        )
        .await?;
    }
    tx.commit().await.map_err(db_error)?;
    events::record(
        &state,
        &caller,
        K::KIND.as_str(),
        &format!("{name}:{}", v.version),
        "create",
    )
    .await;
    Ok(Json(
        Presenter::new(&state, client_generation(&headers))
            .version(&v, false)
            .await?,
    ))
}

pub async fn get<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> ApiResult<Json<VersionSchema>> {
    let (repo, v) = load_version::<K>(&state, &caller, &name, &version).await?;
    let mut presenter = Presenter::new(&state, client_generation(&headers));
    let mut schema = presenter
        .versions(std::slice::from_ref(&v), true, true)
        .await?
        .remove(0);
    if K::KIND == Kind::Bento {
        let models = used_models(&state, &caller, &v.uid).await?;
        schema.models = Some(presenter.versions(&models, true, true).await?);
    }
    let _ = repo;
    Ok(Json(schema))
}

/// The pushed model versions a bento version uses.
async fn used_models(
    state: &AppState,
    caller: &Caller,
    bento_uid: &str,
) -> Result<Vec<versions::Version>, Error> {
    let pool = state.db.pool();
    let mut out = Vec::new();
    for (model, version) in bento_models::models_of(pool, bento_uid).await? {
        if let Some(repo) = repos::find(pool, &caller.organization.uid, Kind::Model, &model).await?
        {
            if let Some(v) = versions::find(pool, &repo.uid, &version).await? {
                out.push(v);
            }
        }
    }
    Ok(out)
}

pub async fn update<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<UpdateVersion>,
) -> ApiResult<Json<VersionSchema>> {
    caller.authorize(Action::WriteRegistry)?;
    let (_, mut v) = load_version::<K>(&state, &caller, &name, &version).await?;
    let manifest = body
        .manifest
        .as_ref()
        .map(|m| check_manifest(K::KIND, m))
        .transpose()?;
    let label_list = body.labels.as_deref().map(check_labels).transpose()?;
    if let Some(d) = &body.description {
        names::validate_description(K::KIND.as_str(), d)?;
    }
    // The manifest belongs to a push: it is claimed first, so that a concurrent push learns
    // at once that it lost, and a version serving an archive takes it only with its archive.
    if let Some(m) = &manifest {
        uploads::claim_manifest(
            &state,
            &caller,
            K::KIND,
            &v,
            &format!("{name}:{version}"),
            m,
        )
        .await?;
    }
    let mut tx = state.db.begin().await?;
    // A version serving no archive took the manifest at once, and its model relations with it.
    if let (Some(m), Kind::Bento, None) = (&manifest, K::KIND, &v.object_key) {
        let parsed: serde_json::Value = serde_json::from_str(m).unwrap_or_default();
        bento_models::replace(
            &mut tx,
            &caller.organization.uid,
            &v.uid,
            &bento_model_tags(&parsed),
        )
        .await?;
    }
    if let Some(d) = body.description {
        v.description = d;
        versions::update_description(&mut *tx, &v.uid, &v.description).await?;
    }
    if let Some(l) = label_list {
        labels::replace(&mut tx, &caller.organization.uid, &v.uid, &l).await?;
    }
    tx.commit().await.map_err(db_error)?;
    events::record(
        &state,
        &caller,
        K::KIND.as_str(),
        &format!("{name}:{version}"),
        "update",
    )
    .await;
    let v = versions::find_by_uid(state.db.pool(), &v.uid)
        .await?
        .ok_or_else(|| Error::not_found(K::KIND.as_str(), &version))?;
    Ok(Json(
        Presenter::new(&state, client_generation(&headers))
            .version(&v, false)
            .await?,
    ))
}

pub async fn delete<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> ApiResult<Json<VersionSchema>> {
    caller.authorize(Action::WriteRegistry)?;
    let (_, v) = load_version::<K>(&state, &caller, &name, &version).await?;
    let pool = state.db.pool();
    let schema = Presenter::new(&state, client_generation(&headers))
        .version(&v, false)
        .await?;
    let mut tx = state.db.begin().await?;
    if K::KIND == Kind::Model {
        let users =
            bento_models::bentos_using(&mut *tx, &caller.organization.uid, &name, &version).await?;
        if !users.is_empty() {
            let mut tags = Vec::new();
            for uid in &users {
                if let Some(b) = versions::find_by_uid(pool, uid).await? {
                    if let Some(r) = repos::find_many(pool, std::slice::from_ref(&b.repository_uid))
                        .await?
                        .first()
                    {
                        tags.push(format!("{}:{}", r.name, b.version));
                    }
                }
            }
            return Err(Error::Conflict(format!(
                "model {name}:{version} is used by bento {}; delete the bento first",
                tags.join(", ")
            ))
            .into());
        }
    }
    let running = upload_rows::uploading_of_version(&mut *tx, &v.uid).await?;
    labels::replace(&mut tx, &caller.organization.uid, &v.uid, &[]).await?;
    versions::delete(&mut *tx, &v.uid).await?;
    tx.commit().await.map_err(db_error)?;
    for u in &running {
        if let Some(id) = &u.upload_id {
            let _ = state.objects.abort_multipart(&u.object_key, id).await;
        }
    }
    let mut keys: Vec<String> = running.into_iter().map(|u| u.object_key).collect();
    keys.extend(v.object_key.clone());
    for key in &keys {
        if let Err(e) = state.objects.delete(key).await {
            tracing::error!(error = %e, key, "could not delete the archive of a deleted version");
        }
    }
    events::record(
        &state,
        &caller,
        K::KIND.as_str(),
        &format!("{name}:{version}"),
        "delete",
    )
    .await;
    Ok(Json(schema))
}

async fn list_versions<K: RegistryKind>(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    q: &ListQuery,
    repository_uid: Option<String>,
) -> Result<ListSchema<VersionSchema>, Error> {
    caller.authorize(Action::ReadRegistry)?;
    let spec = q.parse()?;
    let filter = spec.version_filter(repository_uid)?;
    let (rows, total) = versions::list(
        state.db.pool(),
        &caller.organization.uid,
        K::KIND,
        &filter,
        spec.page(),
    )
    .await?;
    let items = Presenter::new(state, client_generation(headers))
        .versions(&rows, true, true)
        .await?;
    Ok(ListSchema {
        start: spec.start,
        count: items.len() as i64,
        total,
        items,
    })
}

pub async fn list_in_repository<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<ListSchema<VersionSchema>>> {
    let repo = load_repository::<K>(&state, &caller, &name).await?;
    Ok(Json(
        list_versions::<K>(&state, &caller, &headers, &q, Some(repo.uid)).await?,
    ))
}

pub async fn list_all<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<ListSchema<VersionSchema>>> {
    Ok(Json(
        list_versions::<K>(&state, &caller, &headers, &q, None).await?,
    ))
}

pub async fn models_of_bento(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> ApiResult<Json<Vec<VersionSchema>>> {
    let (_, v) = load_version::<Bentos>(&state, &caller, &name, &version).await?;
    let models = used_models(&state, &caller, &v.uid).await?;
    Ok(Json(
        Presenter::new(&state, client_generation(&headers))
            .versions(&models, true, true)
            .await?,
    ))
}

pub async fn bentos_of_model(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): ApiPath<(String, String)>,
) -> ApiResult<Json<Vec<VersionSchema>>> {
    load_version::<Models>(&state, &caller, &name, &version).await?;
    let pool = state.db.pool();
    let mut bentos = Vec::new();
    for uid in bento_models::bentos_using(pool, &caller.organization.uid, &name, &version).await? {
        if let Some(b) = versions::find_by_uid(pool, &uid).await? {
            bentos.push(b);
        }
    }
    Ok(Json(
        Presenter::new(&state, client_generation(&headers))
            .versions(&bentos, true, true)
            .await?,
    ))
}
