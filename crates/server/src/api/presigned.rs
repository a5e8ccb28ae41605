//! The server's own presigned URLs, for the local-directory backend: the same presigned upload
//! and download flows as on S3. The storage facade signs and checks them; a PUT writes only into
//! an upload that is still running (the service's rule).

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::{router::OpenApiRouter, routes};
use yatai_service::registry::uploads;
use yatai_store::objects::{LocalPresigned, PresignOp};

use crate::error::{ApiQuery, ApiResult};
use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_object))
        .routes(routes!(put_object))
        .routes(routes!(put_part))
}

/// The query of a presigned URL.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PresignedQuery {
    /// The object the URL is for.
    key: String,
    /// The multipart upload (part URLs).
    #[serde(default)]
    upload_id: String,
    /// The part number (part URLs).
    #[serde(default)]
    part_number: u16,
    /// Expiry, seconds since the epoch.
    expires: i64,
    /// HMAC-SHA256 of the rest.
    signature: String,
}

impl From<PresignedQuery> for LocalPresigned {
    fn from(q: PresignedQuery) -> Self {
        LocalPresigned {
            key: q.key,
            upload_id: q.upload_id,
            part_number: q.part_number,
            expires: q.expires,
            signature: q.signature,
        }
    }
}

/// Downloads an object with a presigned URL (supports Range).
#[utoipa::path(get, path = "/api/v1/presigned/get", tag = "presigned", params(PresignedQuery),
    responses((status = 200, description = "the archive"), (status = 206, description = "a range of it"), (status = 403, description = "bad or expired signature")))]
async fn get_object(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<PresignedQuery>,
) -> ApiResult<Response> {
    let p = LocalPresigned::from(q);
    state
        .objects
        .verify_local_presigned(PresignOp::Get.name(), &p)
        .await?;
    Ok(super::stream::stream_object(&state, &p.key, &headers).await?)
}

/// Uploads a whole object with a presigned URL, while its upload runs.
#[utoipa::path(put, path = "/api/v1/presigned/put", tag = "presigned", params(PresignedQuery),
    responses((status = 200, description = "stored; ETag header"), (status = 403, description = "bad or expired signature, or the upload has ended")))]
async fn put_object(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PresignedQuery>,
    body: Body,
) -> ApiResult<Response> {
    let p = LocalPresigned::from(q);
    state
        .objects
        .verify_local_presigned(PresignOp::Put.name(), &p)
        .await?;
    let _in_flight = crate::metrics::UploadInFlight::start();
    let etag = uploads::receive_presigned_put(&state, &p.key, body.into_data_stream()).await?;
    Ok((StatusCode::OK, [(header::ETAG, etag)]).into_response())
}

/// Uploads one part of a multipart upload with a presigned URL, while the upload runs; answers
/// the part's ETag.
#[utoipa::path(put, path = "/api/v1/presigned/part", tag = "presigned", params(PresignedQuery),
    responses((status = 200, description = "stored; ETag header"), (status = 403, description = "bad or expired signature, or the upload has ended")))]
async fn put_part(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PresignedQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let p = LocalPresigned::from(q);
    let op = PresignOp::Part {
        upload_id: p.upload_id.clone(),
        part_number: p.part_number,
    };
    state.objects.verify_local_presigned(op.name(), &p).await?;
    let _in_flight = crate::metrics::UploadInFlight::start();
    let etag = uploads::receive_presigned_part(
        &state,
        &p.key,
        &p.upload_id,
        p.part_number,
        headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()),
        body.into_data_stream(),
    )
    .await?;
    Ok((StatusCode::OK, [(header::ETAG, etag)]).into_response())
}
