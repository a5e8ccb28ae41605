//! Operator metrics (reconciles, their duration and errors) and the HTTP endpoints `/metrics`, `/healthz` and
//! `/readyz`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::{extract::State, http::StatusCode, routing::get, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub const RECONCILES: &str = "yatai_deployment_operator_reconciles_total";
pub const RECONCILE_ERRORS: &str = "yatai_deployment_operator_reconcile_errors_total";
pub const RECONCILE_DURATION: &str = "yatai_deployment_operator_reconcile_duration_seconds";
pub const OBJECTS_APPLIED: &str = "yatai_deployment_operator_objects_applied_total";
pub const OBJECTS_DELETED: &str = "yatai_deployment_operator_objects_deleted_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder (installed on first use).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ])
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (tests, or a host binary): then ours only renders its own.
        let _ = metrics::set_global_recorder(recorder);
        metrics::describe_counter!(RECONCILES, "BentoDeployment reconciles, by result");
        metrics::describe_counter!(RECONCILE_ERRORS, "Failed reconciles, by error kind");
        metrics::describe_histogram!(
            RECONCILE_DURATION,
            metrics::Unit::Seconds,
            "Duration of one reconcile"
        );
        metrics::describe_counter!(
            OBJECTS_APPLIED,
            "Objects applied (created or changed), by kind"
        );
        metrics::describe_counter!(
            OBJECTS_DELETED,
            "Objects deleted as no longer desired, by kind"
        );
        handle
    })
}

/// Records one finished reconcile.
pub fn reconciled(duration: Duration, error_kind: Option<&'static str>) {
    handle();
    let result = if error_kind.is_some() { "error" } else { "ok" };
    metrics::counter!(RECONCILES, "result" => result).increment(1);
    metrics::histogram!(RECONCILE_DURATION).record(duration.as_secs_f64());
    if let Some(kind) = error_kind {
        metrics::counter!(RECONCILE_ERRORS, "kind" => kind).increment(1);
    }
}

pub fn applied(kind: &'static str) {
    handle();
    metrics::counter!(OBJECTS_APPLIED, "kind" => kind).increment(1);
}

pub fn deleted(kind: &'static str) {
    handle();
    metrics::counter!(OBJECTS_DELETED, "kind" => kind).increment(1);
}

/// Serves `/metrics`, `/healthz` (alive) and `/readyz` (`ready` is set once the controller watches).
pub async fn serve(addr: SocketAddr, ready: Arc<AtomicBool>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(|| async { handle().render() }))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(ready): State<Arc<AtomicBool>>| async move {
                if ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "starting")
                }
            }),
        )
        .with_state(ready);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}
