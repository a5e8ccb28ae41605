//! The server's own presigned URLs, for the local-directory backend: the same presigned upload
//! and download flows as on S3, with URLs signed by HMAC-SHA256 that expire.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use utoipa_axum::{router::OpenApiRouter, routes};
use yatai_domain::{time::now_micros, Error};
use yatai_store::db::settings;

use crate::error::{ApiQuery, ApiResult};
use crate::AppState;

/// The setting that holds the signing key.
const KEY_SETTING: &str = "presign_key";
/// How long a presigned URL stays valid.
pub const URL_TTL: Duration = Duration::from_secs(6 * 3600);

/// What a presigned URL allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Get,
    Put,
    Part,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Put => "put",
            Op::Part => "part",
        }
    }
}

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_object))
        .routes(routes!(put_object))
        .routes(routes!(put_part))
}

async fn signing_key(state: &AppState) -> Result<&Vec<u8>, Error> {
    state
        .presign_key
        .get_or_try_init(|| async {
            let pool = state.db.pool();
            settings::insert_new(pool, KEY_SETTING, &crate::auth::secrets::new_secret("")).await?;
            let hex_key = settings::get(pool, KEY_SETTING)
                .await?
                .ok_or_else(|| Error::Internal("presign key missing".into()))?;
            Ok(hex_key.into_bytes())
        })
        .await
}

fn signature(key: &[u8], op: Op, object: &str, upload_id: &str, part: u16, expires: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{}\n{object}\n{upload_id}\n{part}\n{expires}", op.as_str()).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A URL of this server that allows `op` on `object` until it expires.
pub async fn url(
    state: &AppState,
    op: Op,
    object: &str,
    upload_id: &str,
    part: u16,
) -> Result<String, Error> {
    let expires = now_micros() / 1_000_000 + URL_TTL.as_secs() as i64;
    let sig = signature(
        signing_key(state).await?,
        op,
        object,
        upload_id,
        part,
        expires,
    );
    let mut url = url::Url::parse(&format!(
        "{}/api/v1/presigned/{}",
        state.settings.public_url,
        op.as_str()
    ))
    .map_err(|e| Error::Internal(format!("bad public URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("key", object)
        .append_pair("upload_id", upload_id)
        .append_pair("part_number", &part.to_string())
        .append_pair("expires", &expires.to_string())
        .append_pair("signature", &sig);
    Ok(url.to_string())
}

/// The query of a presigned URL.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Presigned {
    key: String,
    #[serde(default)]
    upload_id: String,
    #[serde(default)]
    part_number: u16,
    expires: i64,
    signature: String,
}

async fn verify(state: &AppState, op: Op, p: &Presigned) -> Result<(), Error> {
    let expected = signature(
        signing_key(state).await?,
        op,
        &p.key,
        &p.upload_id,
        p.part_number,
        p.expires,
    );
    if !crate::auth::secrets::secrets_equal(&expected, &p.signature) {
        return Err(Error::Forbidden(
            "the presigned URL's signature does not match".into(),
        ));
    }
    if p.expires < now_micros() / 1_000_000 {
        return Err(Error::Forbidden(
            "the presigned URL has expired; ask for a new one".into(),
        ));
    }
    Ok(())
}

/// Downloads an object with a presigned URL (supports Range).
#[utoipa::path(get, path = "/api/v1/presigned/get", tag = "presigned", params(Presigned), responses((status = 200, description = "the archive")))]
async fn get_object(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<Presigned>,
) -> ApiResult<Response> {
    verify(&state, Op::Get, &p).await?;
    Ok(super::registry::stream_object(&state, &p.key, &headers).await?)
}

/// Uploads a whole object with a presigned URL.
#[utoipa::path(put, path = "/api/v1/presigned/put", tag = "presigned", params(Presigned), responses((status = 200, description = "stored")))]
async fn put_object(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<Presigned>,
    body: Body,
) -> ApiResult<Response> {
    verify(&state, Op::Put, &p).await?;
    let _in_flight = crate::metrics::UploadInFlight::start();
    let stored = state
        .objects
        .put_stream(&p.key, body.into_data_stream())
        .await?;
    Ok((
        StatusCode::OK,
        [(header::ETAG, format!("\"{}\"", &stored.sha256[..32]))],
    )
        .into_response())
}

/// Uploads one part of a multipart upload with a presigned URL; answers its ETag.
#[utoipa::path(put, path = "/api/v1/presigned/part", tag = "presigned", params(Presigned), responses((status = 200, description = "stored; ETag header")))]
async fn put_part(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<Presigned>,
    body: Body,
) -> ApiResult<Response> {
    verify(&state, Op::Part, &p).await?;
    if p.part_number == 0 {
        return Err(Error::invalid("part_number starts at 1").into());
    }
    let _in_flight = crate::metrics::UploadInFlight::start();
    let etag = state
        .objects
        .put_local_part(&p.upload_id, p.part_number, body.into_data_stream())
        .await?;
    Ok((StatusCode::OK, [(header::ETAG, etag)]).into_response())
}
