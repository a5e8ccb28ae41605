//! Every uploaded archive is hashed once, whatever its transfer path: the bytes the server hashed
//! with SHA-256 (`yatai_sha256_bytes_total` on /metrics) grow by the archive's size per upload.
//!
//! This file is its own test process with one test, so that no other upload moves the counter
//! while it is read; the backend pairs run one after the other.

mod common;

use common::registry::*;
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use yatai_domain::registry::TransmissionStrategy;
use yatai_server::Settings;

async fn hashed_bytes(c: &Client) -> u64 {
    let (s, body) = c.get("/metrics").await;
    assert_eq!(s, StatusCode::OK);
    let text = body.as_str().unwrap_or_default().to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{} ", yatai_archive::SHA256_BYTES_METRIC)))
        .map(|v| v.trim().parse::<f64>().unwrap() as u64)
        .unwrap_or(0)
}

/// An archive of a few MiB in a 251-byte cycle.
fn archive(mib: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..mib * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    tar_archive(&[("./weights.bin", &data)])
}

async fn proxy(backend: Backend) {
    let app = TestApp::start(backend).await;
    let c = api_client(&app).await;
    let bytes = archive(3);
    create_version(&c, "model", "m", "v1", model_manifest(1), json!([])).await;
    let before = hashed_bytes(&c).await;
    let (s, b) = proxy_upload(&c, "model", "m", "v1", bytes.clone()).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(
        hashed_bytes(&c).await - before,
        bytes.len() as u64,
        "{backend:?}: a proxy upload is hashed once"
    );
}

async fn presigned(backend: Backend) {
    let settings = Settings {
        transmission_strategy: TransmissionStrategy::PresignedUrl,
        ..Settings::default()
    };
    let app = TestApp::start_with(backend, settings).await;
    let c = api_client(&app).await;

    // One presigned PUT.
    let bytes = archive(2);
    create_version(&c, "model", "s", "v1", model_manifest(1), json!([])).await;
    let path = version_path("model", "s", "v1");
    let before = hashed_bytes(&c).await;
    let (_, v) = c
        .patch(&format!("{path}/presign_upload_url"), json!({}))
        .await;
    let (s, b) = put_raw(
        &c,
        v["presigned_upload_url"].as_str().unwrap(),
        bytes.clone(),
        false,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    finish_ok(&c, &path).await;
    assert_eq!(
        hashed_bytes(&c).await - before,
        bytes.len() as u64,
        "{backend:?}: a presigned upload is hashed once"
    );

    // Multipart: two parts (S3's smallest part is 5 MiB), joined, then checked.
    let bytes = archive(7);
    create_version(&c, "model", "b", "v1", model_manifest(1), json!([])).await;
    let path = version_path("model", "b", "v1");
    let before = hashed_bytes(&c).await;
    let (_, v) = c
        .patch(&format!("{path}/start_multipart_upload"), json!({}))
        .await;
    let upload_id = v["upload_id"].as_str().unwrap().to_string();
    let (s, b) = put_parts_and_complete(
        &c,
        &path,
        &upload_id,
        &[(1, &bytes[..5 << 20]), (2, &bytes[5 << 20..])],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let v = finish_ok(&c, &path).await;
    assert_eq!(v["archive_size"], bytes.len());
    assert_eq!(
        hashed_bytes(&c).await - before,
        bytes.len() as u64,
        "{backend:?}: a multipart upload is hashed once"
    );
    let (s, _, got) = download(&c, "model", "b", "v1", &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        got == bytes,
        "{backend:?}: the joined parts come back whole"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_upload_is_hashed_once_on_every_path_and_backend() {
    for backend in [Backend::Embedded, Backend::Production] {
        proxy(backend).await;
        presigned(backend).await;
    }
}
