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
    /// A stable machine-readable kind: `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`, `internal`, `unavailable`.
    pub error: &'static str,
    /// A sentence for the user.
    pub message: String,
}

impl ApiError {
    /// The status code and kind for this error.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match &self.0 {
            Error::InvalidArgument(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Error::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self.0, "request failed");
        }
        let body = ErrorBody {
            error: kind,
            message: self.0.to_string(),
        };
        (status, axum::Json(body)).into_response()
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
