//! The Yatai HTTP server: the REST API the BentoML CLI speaks (`/api/v1/...`), health,
//! metrics and the OpenAPI document, as thin handlers over the domain and the store.

pub mod api;
pub mod auth;
pub mod dashboard;
pub mod error;
pub mod metrics;
pub mod state;

pub use state::{AppState, Settings, UploadTimings};

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// Builds the whole application router for `state`.
pub fn app(state: AppState) -> axum::Router {
    api::router(state)
}

/// Builds the application router over the service handles (what test harnesses take).
pub fn app_of(svc: yatai_service::Services) -> axum::Router {
    app(AppState { svc })
}

/// Serves the application on `listener` until ctrl-c or SIGTERM, then drains in-flight requests.
/// The janitor (see `yatai_service::registry::janitor`) sweeps on start and periodically meanwhile.
pub async fn serve(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    let janitor = yatai_service::registry::janitor::spawn(state.svc.clone());
    let app = app(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await;
    janitor.abort();
    served
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}
