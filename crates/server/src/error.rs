//! The one place where errors become HTTP responses: `{"error": KIND, "message": TEXT}`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use yatai_domain::Error;

/// An error returned by a handler.
#[derive(Debug)]
pub struct ApiError(pub Error);

/// The JSON body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable machine-readable kind: `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`, `internal`, `unavailable`, `too_many_requests`.
    pub error: &'static str,
    /// A sentence for the user.
    pub message: String,
    /// The input field the error is about, when it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    /// The status code and kind for this error.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self.0.without_field() {
            Error::InvalidArgument(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Error::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Error::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            // without_field() never answers a field error; this arm only completes the match.
            Error::Field { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
        }
    }

    /// What the user is told: the message, or only that something failed on our side.
    pub fn public_message(&self) -> String {
        public_message(&self.0)
    }
}

/// What a client is told of a fault on our side: the detail (database and storage endpoints,
/// upload ids, internal keys) goes to the log only.
fn public_message(e: &Error) -> String {
    match e.without_field() {
        Error::Internal(_) => {
            "the server failed to complete the request; its log has the details".into()
        }
        Error::Unavailable(_) => {
            "a service the server depends on (database or object storage) is unavailable; try again shortly".into()
        }
        other => cap_echo(&other.to_string()),
    }
}

/// The longest error message sent back: messages quote the offending input, and a megabyte of
/// label key must not come back as a megabyte of error.
const MAX_MESSAGE_CHARS: usize = 512;

fn cap_echo(message: &str) -> String {
    if message.chars().count() <= MAX_MESSAGE_CHARS {
        return message.to_string();
    }
    let cut: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
    format!("{cut}… (message cut)")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self.0, "request failed");
        }
        let retry_after = match self.0.without_field() {
            Error::TooManyRequests {
                retry_after_secs, ..
            } => Some(retry_after_secs.to_string()),
            _ => None,
        };
        let body = ErrorBody {
            error: kind,
            message: public_message(&self.0),
            field: self.0.field_name().map(str::to_string),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after.and_then(|s| s.parse().ok()) {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs);
        }
        response
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError(Error::InvalidArgument(format!(
            "invalid JSON body: {}",
            r.body_text()
        )))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError(Error::InvalidArgument(format!(
            "invalid query string: {}",
            r.body_text()
        )))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError(Error::InvalidArgument(format!(
            "invalid path: {}",
            r.body_text()
        )))
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// JSON body extractor whose rejections use the error shape above.
#[derive(Debug, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// Query extractor whose rejections use the error shape above.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// Path extractor whose rejections use the error shape above.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);
