//! Moving archives: the upload life cycle (proxy, presigned single, presigned multipart), the
//! integrity check that closes every upload, and downloads.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures::{SinkExt, Stream, StreamExt, TryStreamExt};
use serde::Deserialize;
use yatai_domain::registry::{offers_presigned_urls, ClientGeneration, Kind, UploadStatus};
use yatai_domain::{Action, Error};
use yatai_store::archive::{self, ArchiveFacts, GZIP_MAGIC};
use yatai_store::db::pending_uploads;
use yatai_store::db::versions::{self, Version};

use super::{client_generation, load_version, Presenter, RegistryKind};
use crate::api::events;
use crate::api::presigned::{self, Op, URL_TTL};
use crate::api::schemas::VersionSchema;
use crate::auth::Caller;
use crate::error::{ApiJson, ApiPath, ApiResult};
use crate::metrics::UploadInFlight;
use crate::AppState;

type VersionPath = ApiPath<(String, String)>;

/// A fresh key for one upload of a version: each upload writes its own object, so a failed or
/// concurrent upload never touches the archive being served.
fn new_object_key(kind: Kind, organization_uid: &str, repo: &str, version: &str) -> String {
    format!(
        "{}/{organization_uid}/{repo}/{version}/{}",
        kind.object_prefix(),
        yatai_store::new_uid()
    )
}

async fn respond<K: RegistryKind>(
    state: &AppState,
    headers: &HeaderMap,
    uid: &str,
    fill: impl FnOnce(&mut VersionSchema),
) -> ApiResult<Json<VersionSchema>> {
    let v = versions::find_by_uid(state.db.pool(), uid)
        .await?
        .ok_or_else(|| Error::not_found(K::KIND.as_str(), uid))?;
    let mut schema = Presenter::new(state, client_generation(headers))
        .version(&v, false)
        .await?;
    fill(&mut schema);
    Ok(Json(schema))
}

async fn writable<K: RegistryKind>(
    state: &AppState,
    caller: &Caller,
    name: &str,
    version: &str,
) -> Result<Version, Error> {
    caller.authorize(Action::WriteRegistry)?;
    Ok(load_version::<K>(state, caller, name, version).await?.1)
}

pub async fn start_upload<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): VersionPath,
) -> ApiResult<Json<VersionSchema>> {
    let v = writable::<K>(&state, &caller, &name, &version).await?;
    versions::start_upload(state.db.pool(), &v.uid, None, None).await?;
    respond::<K>(&state, &headers, &v.uid, |_| {}).await
}

/// Streams `body` into `key` while checking it as an archive, in one pass.
async fn store_and_inspect<S, E>(
    state: &AppState,
    key: &str,
    body: S,
) -> Result<Result<ArchiveFacts, String>, Error>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let (tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, Error>>(4);
    let inspector = tokio::spawn(archive::inspect_stream(rx));
    let teed = body.then(move |chunk| {
        let mut tx = tx.clone();
        async move {
            if let Ok(c) = &chunk {
                let _ = tx.send(Ok(c.clone())).await;
            }
            chunk
        }
    });
    let stored = state.objects.put_stream(key, Box::pin(teed)).await;
    let facts = inspector
        .await
        .map_err(|e| Error::Internal(format!("archive check failed: {e}")))??;
    stored?;
    Ok(facts)
}

/// Makes `key` the served archive of `v` (unless another upload won meanwhile: then the newer
/// one stays and this one is dropped), and deletes the archive it replaces.
async fn commit_upload(
    state: &AppState,
    caller: &Caller,
    kind: Kind,
    tag: &str,
    uid: &str,
    key: &str,
    facts: &ArchiveFacts,
) -> Result<(), Error> {
    for _ in 0..5 {
        let current = versions::find_by_uid(state.db.pool(), uid)
            .await?
            .ok_or_else(|| Error::not_found(kind.as_str(), tag))?;
        if versions::finish_success(
            state.db.pool(),
            uid,
            current.object_key.as_deref(),
            key,
            facts.size as i64,
            &facts.sha256,
        )
        .await?
        {
            if let Some(old) = current.object_key.filter(|old| old != key) {
                if let Err(e) = state.objects.delete(&old).await {
                    tracing::error!(error = %e, key = old, "could not delete a replaced archive");
                }
            }
            events::record(state, caller, kind.as_str(), tag, "push").await;
            return Ok(());
        }
    }
    let _ = state.objects.delete(key).await;
    Err(Error::Conflict(format!(
        "{} {tag} was replaced by another upload at the same time; push again if yours should win",
        kind.title()
    )))
}

/// Records a failed upload with its reason and removes what it wrote.
async fn fail_upload(
    state: &AppState,
    uid: &str,
    key: Option<&str>,
    reason: &str,
) -> Result<(), Error> {
    versions::finish_failed(state.db.pool(), uid, reason).await?;
    if let Some(key) = key {
        let _ = state.objects.delete(key).await;
    }
    Ok(())
}

pub async fn upload<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): VersionPath,
    body: Body,
) -> ApiResult<Json<VersionSchema>> {
    let v = writable::<K>(&state, &caller, &name, &version).await?;
    let tag = format!("{name}:{version}");
    let _in_flight = UploadInFlight::start();
    let key = new_object_key(K::KIND, &caller.organization.uid, &name, &version);
    versions::start_upload(state.db.pool(), &v.uid, Some(&key), None).await?;
    let declared: Option<u64> = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|h| h.to_str().ok())
        .and_then(|s| s.parse().ok());
    let facts = match store_and_inspect(&state, &key, body.into_data_stream()).await {
        Ok(Ok(facts)) => facts,
        Ok(Err(reason)) => {
            fail_upload(&state, &v.uid, Some(&key), &reason).await?;
            return Err(Error::invalid(format!(
                "upload of {} {tag} refused: {reason}",
                K::KIND.title()
            ))
            .into());
        }
        Err(e) => {
            fail_upload(&state, &v.uid, Some(&key), &e.to_string()).await?;
            return Err(e.into());
        }
    };
    if let Some(n) = declared.filter(|n| *n != facts.size) {
        let reason = format!("received {} bytes but Content-Length said {n}", facts.size);
        fail_upload(&state, &v.uid, Some(&key), &reason).await?;
        return Err(Error::invalid(format!(
            "upload of {} {tag} refused: {reason}",
            K::KIND.title()
        ))
        .into());
    }
    commit_upload(&state, &caller, K::KIND, &tag, &v.uid, &key, &facts).await?;
    respond::<K>(&state, &headers, &v.uid, |_| {}).await
}

pub async fn presign_upload_url<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): VersionPath,
) -> ApiResult<Json<VersionSchema>> {
    let v = writable::<K>(&state, &caller, &name, &version).await?;
    if !offers_presigned_urls(
        state.settings.transmission_strategy,
        client_generation(&headers),
    ) {
        return respond::<K>(&state, &headers, &v.uid, |_| {}).await;
    }
    let key = new_object_key(K::KIND, &caller.organization.uid, &name, &version);
    let url = match state.objects.presigned_put(&key, URL_TTL) {
        Some(url) => url,
        None => presigned::url(&state, Op::Put, &key, "", 0).await?,
    };
    pending_uploads::create(state.db.pool(), &v.uid, &key, None).await?;
    versions::start_upload(state.db.pool(), &v.uid, None, None).await?;
    respond::<K>(&state, &headers, &v.uid, |s| s.presigned_upload_url = url).await
}

pub async fn start_multipart_upload<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): VersionPath,
) -> ApiResult<Json<VersionSchema>> {
    let v = writable::<K>(&state, &caller, &name, &version).await?;
    let key = new_object_key(K::KIND, &caller.organization.uid, &name, &version);
    let upload_id = state.objects.create_multipart(&key).await?;
    pending_uploads::create(state.db.pool(), &v.uid, &key, Some(&upload_id)).await?;
    versions::start_upload(state.db.pool(), &v.uid, None, Some(&upload_id)).await?;
    respond::<K>(&state, &headers, &v.uid, |_| {}).await
}

/// The body of `presign_multipart_upload_url`.
#[derive(Debug, Deserialize)]
pub struct PresignPart {
    pub upload_id: String,
    pub part_number: u16,
}

/// The object key of the multipart upload `upload_id` of `v`.
async fn multipart_in_progress(
    state: &AppState,
    v: &Version,
    upload_id: &str,
) -> Result<String, Error> {
    pending_uploads::find_multipart(state.db.pool(), &v.uid, upload_id)
        .await?
        .map(|p| p.object_key)
        .ok_or_else(|| Error::invalid(format!("upload_id {upload_id:?} is not a multipart upload in progress; call start_multipart_upload")))
}

pub async fn presign_multipart_upload_url<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): VersionPath,
    ApiJson(body): ApiJson<PresignPart>,
) -> ApiResult<Json<VersionSchema>> {
    let v = writable::<K>(&state, &caller, &name, &version).await?;
    let key = multipart_in_progress(&state, &v, &body.upload_id).await?;
    if !(1..=10000).contains(&body.part_number) {
        return Err(Error::invalid("part_number must be between 1 and 10000").into());
    }
    let url = match state
        .objects
        .presigned_part(&key, &body.upload_id, body.part_number, URL_TTL)
    {
        Some(url) => url,
        None => presigned::url(&state, Op::Part, &key, &body.upload_id, body.part_number).await?,
    };
    respond::<K>(&state, &headers, &v.uid, |s| s.presigned_upload_url = url).await
}

/// One uploaded part.
#[derive(Debug, Deserialize)]
pub struct CompletedPart {
    pub part_number: u16,
    pub etag: String,
}

/// The body of `complete_multipart_upload`.
#[derive(Debug, Deserialize)]
pub struct CompleteMultipart {
    pub upload_id: String,
    pub parts: Vec<CompletedPart>,
}

pub async fn complete_multipart_upload<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): VersionPath,
    ApiJson(body): ApiJson<CompleteMultipart>,
) -> ApiResult<Json<VersionSchema>> {
    let v = writable::<K>(&state, &caller, &name, &version).await?;
    let key = multipart_in_progress(&state, &v, &body.upload_id).await?;
    let parts = body
        .parts
        .into_iter()
        .map(|p| (p.part_number, p.etag))
        .collect();
    state
        .objects
        .complete_multipart(&key, &body.upload_id, parts)
        .await?;
    respond::<K>(&state, &headers, &v.uid, |_| {}).await
}

/// The body of `finish_upload`.
#[derive(Debug, Deserialize)]
pub struct FinishUpload {
    pub status: String,
    #[serde(default)]
    pub reason: String,
}

pub async fn finish_upload<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): VersionPath,
    ApiJson(body): ApiJson<FinishUpload>,
) -> ApiResult<Json<VersionSchema>> {
    let v = writable::<K>(&state, &caller, &name, &version).await?;
    let tag = format!("{name}:{version}");
    match UploadStatus::parse(&body.status)? {
        UploadStatus::Failed => {
            for p in pending_uploads::of_version(state.db.pool(), &v.uid).await? {
                discard_pending(&state, &p).await;
            }
            let reason = if body.reason.is_empty() {
                "the client reported a failure".to_string()
            } else {
                body.reason
            };
            if v.status() != UploadStatus::Success {
                fail_upload(&state, &v.uid, None, &reason).await?;
            }
        }
        UploadStatus::Success => finish_presigned::<K>(&state, &caller, &v, &tag).await?,
        other => {
            return Err(Error::invalid(format!(
                "finish_upload takes status success or failed, not {}",
                other.as_str()
            ))
            .into())
        }
    }
    respond::<K>(&state, &headers, &v.uid, |_| {}).await
}

/// Forgets an upload in progress and removes what it wrote.
async fn discard_pending(state: &AppState, p: &pending_uploads::PendingUpload) {
    if let Some(id) = &p.upload_id {
        let _ = state.objects.abort_multipart(&p.object_key, id).await;
    }
    let _ = state.objects.delete(&p.object_key).await;
    let _ = pending_uploads::delete(state.db.pool(), &p.object_key).await;
}

/// Closes the presigned uploads of `v` that are complete: the newest whole archive becomes the
/// served one, older complete ones are superseded (several clients may push one version at once,
/// each into its own object); uploads still running are left alone.
async fn finish_presigned<K: RegistryKind>(
    state: &AppState,
    caller: &Caller,
    v: &Version,
    tag: &str,
) -> Result<(), Error> {
    let pending = pending_uploads::of_version(state.db.pool(), &v.uid).await?;
    if pending.is_empty() && v.status() != UploadStatus::Success {
        return Err(Error::Conflict(format!(
            "no upload of {} {tag} is in progress: upload it before finishing",
            K::KIND.title()
        )));
    }
    let mut committed = false;
    let mut refused = None;
    for p in pending {
        if state.objects.size(&p.object_key).await?.is_none() {
            continue; // still being uploaded
        }
        if committed {
            discard_pending(state, &p).await;
            continue;
        }
        let reader = state.objects.get(&p.object_key, None).await?;
        match archive::inspect_stream(reader.stream).await? {
            Ok(facts) => {
                commit_upload(state, caller, K::KIND, tag, &v.uid, &p.object_key, &facts).await?;
                pending_uploads::delete(state.db.pool(), &p.object_key).await?;
                committed = true;
            }
            Err(reason) => {
                discard_pending(state, &p).await;
                refused = Some(reason);
            }
        }
    }
    if committed {
        return Ok(());
    }
    let current = versions::find_by_uid(state.db.pool(), &v.uid)
        .await?
        .ok_or_else(|| Error::not_found(K::KIND.as_str(), tag))?;
    if current.status() == UploadStatus::Success && refused.is_none() {
        return Ok(()); // another client's upload of this version finished it
    }
    let reason = refused.unwrap_or_else(|| "no archive was uploaded".to_string());
    if current.status() != UploadStatus::Success {
        fail_upload(state, &v.uid, None, &reason).await?;
    }
    Err(Error::invalid(format!(
        "upload of {} {tag} refused: {reason}",
        K::KIND.title()
    )))
}

/// The key of the archive to serve, or a clear refusal when the version cannot be pulled.
fn downloadable(kind: Kind, tag: &str, v: &Version) -> Result<String, Error> {
    match (v.status(), &v.object_key) {
        (UploadStatus::Success, Some(key)) => Ok(key.clone()),
        (status, _) => {
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

pub async fn presign_download_url<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): VersionPath,
) -> ApiResult<Json<VersionSchema>> {
    let (_, v) = load_version::<K>(&state, &caller, &name, &version).await?;
    let tag = format!("{name}:{version}");
    let key = downloadable(K::KIND, &tag, &v)?;
    if !offers_presigned_urls(
        state.settings.transmission_strategy,
        client_generation(&headers),
    ) {
        return respond::<K>(&state, &headers, &v.uid, |_| {}).await;
    }
    let url = match state.objects.presigned_get(&key, URL_TTL) {
        Some(url) => url,
        None => presigned::url(&state, Op::Get, &key, "", 0).await?,
    };
    events::record(&state, &caller, K::KIND.as_str(), &tag, "pull").await;
    respond::<K>(&state, &headers, &v.uid, |s| s.presigned_download_url = url).await
}

pub async fn download<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): VersionPath,
) -> ApiResult<Response> {
    let (_, v) = load_version::<K>(&state, &caller, &name, &version).await?;
    let tag = format!("{name}:{version}");
    let key = downloadable(K::KIND, &tag, &v)?;
    let whole = !headers.contains_key(header::RANGE);
    let response = if client_generation(&headers) == ClientGeneration::Legacy {
        legacy_gzip_stream(&state, &key).await?
    } else {
        super::stream_object(&state, &key, &headers).await?
    };
    if whole {
        events::record(&state, &caller, K::KIND.as_str(), &tag, "pull").await;
    }
    Ok(response)
}

/// bentoml 1.0 reads only gzip archives: gzip a plain tar on the fly (a gzip one passes as is).
async fn legacy_gzip_stream(state: &AppState, key: &str) -> Result<Response, Error> {
    let reader = state.objects.get(key, None).await?;
    let total = reader.total_size;
    let mut stream = reader.stream;
    let first = stream.next().await.transpose()?.unwrap_or_default();
    let is_gzip = first.starts_with(&GZIP_MAGIC);
    let whole = futures::stream::iter([Ok(first)]).chain(stream);
    if is_gzip {
        return Ok((
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (header::CONTENT_LENGTH, total.to_string()),
            ],
            Body::from_stream(whole),
        )
            .into_response());
    }
    let plain =
        tokio_util::io::StreamReader::new(whole.map_err(|e| std::io::Error::other(e.to_string())));
    let gz = async_compression::tokio::bufread::GzipEncoder::with_quality(
        plain,
        async_compression::Level::Fastest,
    );
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(tokio_util::io::ReaderStream::new(gz)),
    )
        .into_response())
}
