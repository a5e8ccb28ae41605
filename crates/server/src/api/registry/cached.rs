//! Registry reads answered through the service's read cache ([`yatai_service::read_cache`]):
//! the adapter's part is the key (the request's path and query, and the client generation,
//! which shapes the answer) and the JSON encoding.

use std::future::Future;

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use yatai_domain::Error;
use yatai_service::read_cache::ReadCache;

use super::client_generation;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::AppState;

/// The response header that tells whether an answer was kept (`hit`) or read afresh (`miss`).
pub const CACHE_HEADER: &str = "x-yatai-read-cache";

/// Answers a registry read from the cache while nothing changed, else from `compute`.
pub async fn answer<T, F, Fut>(
    state: &AppState,
    caller: &Caller,
    uri: &Uri,
    headers: &HeaderMap,
    compute: F,
) -> ApiResult<Response>
where
    T: Serialize,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("");
    let key = format!("{:?} {path}", client_generation(headers));
    let (body, lookup) = ReadCache::answer(state, caller, &key, || async {
        let value = compute().await?;
        serde_json::to_vec(&value)
            .map(Bytes::from)
            .map_err(|e| Error::Internal(format!("cannot encode the answer: {e}")))
    })
    .await?;
    metrics::counter!("yatai_read_cache_total", "result" => lookup.as_str()).increment(1);
    Ok((
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (
                axum::http::HeaderName::from_static(CACHE_HEADER),
                HeaderValue::from_static(lookup.as_str()),
            ),
        ],
        body,
    )
        .into_response())
}
