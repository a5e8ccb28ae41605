//! Version, info, health and metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};
use yatai_api_types::{InfoSchema, ServerVersion};

use crate::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(version))
        .routes(routes!(info))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// The server's version.
#[utoipa::path(get, path = "/api/v1/version", tag = "meta", responses((status = 200, body = ServerVersion)))]
async fn version() -> Json<ServerVersion> {
    Json(ServerVersion {
        version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: option_env!("YATAI_GIT_COMMIT").unwrap_or("").to_string(),
        build_date: option_env!("YATAI_BUILD_DATE").unwrap_or("").to_string(),
    })
}

/// Facts about this installation.
#[utoipa::path(get, path = "/api/v1/info", tag = "meta", responses((status = 200, body = InfoSchema)))]
async fn info(State(state): State<AppState>) -> Json<InfoSchema> {
    Json(InfoSchema {
        is_saas: false,
        saas_domain_suffix: String::new(),
        database: match state.db.backend() {
            yatai_store::DbBackend::Sqlite => "sqlite".to_string(),
            yatai_store::DbBackend::Postgres => "postgresql".to_string(),
        },
        // Which kind only: the endpoint and bucket are the operator's business, not every caller's.
        object_storage: if state.objects.is_local() {
            "directory"
        } else {
            "s3"
        }
        .to_string(),
    })
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "meta", responses((status = 200, description = "alive")))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database and object storage answer.
#[utoipa::path(get, path = "/readyz", tag = "meta", responses((status = 200, description = "ready"), (status = 503, description = "a dependency is down")))]
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    // Anyone may ask, so the answer names what is down, never where it lives; the log has that.
    let mut down = Vec::new();
    if let Err(e) = state.db.ping().await {
        tracing::warn!(error = %e, "readiness: the database does not answer");
        down.push("database");
    }
    if let Err(e) = state.objects.check().await {
        tracing::warn!(error = %e, "readiness: object storage does not answer");
        down.push("object storage");
    }
    if down.is_empty() {
        (StatusCode::OK, "ready".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {} unavailable", down.join(" and ")),
        )
    }
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "meta", responses((status = 200, description = "Prometheus text format")))]
async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::handle().render(),
    )
}
