//! Prometheus metrics: request counts and latencies per route, and uploads in flight.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Name of the gauge of uploads being streamed right now.
pub const UPLOADS_IN_FLIGHT: &str = "yatai_uploads_in_flight";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("yatai_http_request_duration_seconds".into()),
                &[
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    120.0,
                ],
            )
            .expect("static bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may be installed already (several apps in one test process): then
        // this handle renders nothing new, which only tests that share a process can notice.
        let _ = metrics::set_global_recorder(recorder);
        metrics::gauge!(UPLOADS_IN_FLIGHT).set(0.0);
        handle
    })
}

/// Middleware that counts and times every request by its route template.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("yatai_http_requests_total", &labels).increment(1);
    metrics::histogram!("yatai_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Counts an upload as in flight until dropped.
pub struct UploadInFlight(());

impl UploadInFlight {
    /// Starts counting.
    pub fn start() -> Self {
        metrics::gauge!(UPLOADS_IN_FLIGHT).increment(1.0);
        UploadInFlight(())
    }
}

impl Drop for UploadInFlight {
    fn drop(&mut self) {
        metrics::gauge!(UPLOADS_IN_FLIGHT).decrement(1.0);
    }
}
