//! Moving archives: thin adapters over the upload life cycle of the service
//! (`yatai_service::registry::uploads`), and downloads.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::{StreamExt, TryStreamExt};
use yatai_api_types::{CompleteMultipart, FinishUpload, PresignPart};
use yatai_archive::GZIP_MAGIC;
use yatai_domain::registry::{offers_presigned_urls, ClientGeneration, UploadStatus};
use yatai_domain::Error;
use yatai_service::registry::{uploads, versions};
use yatai_store::db::versions::Version;
use yatai_store::objects::PresignOp;

use super::{client_generation, Presenter, RegistryKind};
use crate::api::schemas::VersionSchema;
use crate::auth::Caller;
use crate::error::{ApiJson, ApiPath, ApiResult};
use crate::metrics::UploadInFlight;
use crate::AppState;

type VersionPath = ApiPath<(String, String)>;

async fn respond(
    state: &AppState,
    headers: &HeaderMap,
    v: &Version,
    fill: impl FnOnce(&mut VersionSchema),
) -> ApiResult<Json<VersionSchema>> {
    let mut schema = Presenter::new(state, client_generation(headers))
        .version(v, false)
        .await?;
    fill(&mut schema);
    Ok(Json(schema))
}

pub async fn start_upload<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): VersionPath,
) -> ApiResult<Json<VersionSchema>> {
    let v = uploads::start(&state, &caller, K::KIND, &name, &version).await?;
    respond(&state, &headers, &v, |_| {}).await
}

pub async fn upload<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): VersionPath,
    body: Body,
) -> ApiResult<Json<VersionSchema>> {
    let _in_flight = UploadInFlight::start();
    let declared: Option<u64> = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|h| h.to_str().ok())
        .and_then(|s| s.parse().ok());
    let v = uploads::receive_proxy(
        &state,
        &caller,
        K::KIND,
        &name,
        &version,
        declared,
        body.into_data_stream(),
    )
    .await?;
    respond(&state, &headers, &v, |_| {}).await
}

pub async fn presign_upload_url<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): VersionPath,
) -> ApiResult<Json<VersionSchema>> {
    let (v, url) = uploads::presign_single(
        &state,
        &caller,
        K::KIND,
        &name,
        &version,
        client_generation(&headers),
    )
    .await?;
    respond(&state, &headers, &v, |s| {
        s.presigned_upload_url = url.unwrap_or_default()
    })
    .await
}

pub async fn start_multipart_upload<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): VersionPath,
) -> ApiResult<Json<VersionSchema>> {
    let (v, upload_id) =
        uploads::start_multipart(&state, &caller, K::KIND, &name, &version).await?;
    respond(&state, &headers, &v, |s| s.upload_id = upload_id).await
}

pub async fn presign_multipart_upload_url<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): VersionPath,
    ApiJson(body): ApiJson<PresignPart>,
) -> ApiResult<Json<VersionSchema>> {
    let (v, url) = uploads::presign_part(
        &state,
        &caller,
        K::KIND,
        &name,
        &version,
        &body.upload_id,
        body.part_number,
    )
    .await?;
    respond(&state, &headers, &v, |s| {
        s.presigned_upload_url = url;
        s.upload_id = body.upload_id;
    })
    .await
}

pub async fn complete_multipart_upload<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): VersionPath,
    ApiJson(body): ApiJson<CompleteMultipart>,
) -> ApiResult<Json<VersionSchema>> {
    let parts = body
        .parts
        .into_iter()
        .map(|p| (p.part_number, p.etag))
        .collect();
    let v = uploads::complete_multipart(
        &state,
        &caller,
        K::KIND,
        &name,
        &version,
        &body.upload_id,
        parts,
    )
    .await?;
    respond(&state, &headers, &v, |_| {}).await
}

pub async fn finish_upload<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): VersionPath,
    ApiJson(body): ApiJson<FinishUpload>,
) -> ApiResult<Json<VersionSchema>> {
    let status = UploadStatus::parse(&body.status)?;
    let v = uploads::finish(
        &state,
        &caller,
        K::KIND,
        &name,
        &version,
        status,
        &body.reason,
    )
    .await?;
    respond(&state, &headers, &v, |_| {}).await
}

pub async fn presign_download_url<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): VersionPath,
) -> ApiResult<Json<VersionSchema>> {
    let presigned = offers_presigned_urls(
        state.settings.transmission_strategy,
        client_generation(&headers),
    );
    let (v, key) = versions::pull(&state, &caller, K::KIND, &name, &version, presigned).await?;
    if !presigned {
        return respond(&state, &headers, &v, |_| {}).await;
    }
    let url = state
        .objects
        .presign(
            &key,
            &PresignOp::Get,
            state.settings.uploads.download_url_ttl,
        )
        .await?;
    respond(&state, &headers, &v, |s| s.presigned_download_url = url).await
}

pub async fn download<K: RegistryKind>(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath((name, version)): VersionPath,
) -> ApiResult<Response> {
    let whole = !headers.contains_key(header::RANGE);
    let (_, key) = versions::pull(&state, &caller, K::KIND, &name, &version, whole).await?;
    let response = if client_generation(&headers) == ClientGeneration::Legacy {
        legacy_gzip_stream(&state, &key).await?
    } else {
        crate::api::stream::stream_object(&state, &key, &headers).await?
    };
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
