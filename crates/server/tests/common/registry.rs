//! Helpers for registry tests: archives, manifests, versions, every transfer path.
#![allow(dead_code)]

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{Client, TestApp};

/// A tar archive holding the given files (as the clients build them).
pub fn tar_archive(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn model_manifest(size: u64) -> Value {
    json!({"module": "bentoml.picklable_model", "api_version": "v1", "bentoml_version": "1.4.40", "size_bytes": size,
           "metadata": {"ä": "ö"}, "context": {"framework_name": "x"}, "options": {}, "future_key": {"kept": [1, 2]}})
}

pub fn bento_manifest(models: &[&str]) -> Value {
    json!({"service": "service:svc", "bentoml_version": "1.4.40", "size_bytes": 100, "apis": {}, "models": models,
           "runners": [], "services": [{"name": "svc", "models": []}], "schema": {"x": 1}, "spec": 2})
}

/// Creates a repository and a version; returns the version JSON.
pub async fn create_version(
    c: &Client,
    kind: &str,
    repo: &str,
    version: &str,
    manifest: Value,
    labels: Value,
) -> Value {
    let (s, b) = c
        .post(
            &format!("/api/v1/{kind}_repositories"),
            json!({"name": repo, "description": ""}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = c
        .post(&format!("/api/v1/{kind}_repositories/{repo}/{kind}s"), json!({"version": version, "description": "", "manifest": manifest, "build_at": "2026-11-25 12:30:34.554117", "labels": labels}))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

pub fn version_path(kind: &str, repo: &str, version: &str) -> String {
    format!("/api/v1/{kind}_repositories/{repo}/{kind}s/{version}")
}

/// Uploads through the server (proxy).
pub async fn proxy_upload(
    c: &Client,
    kind: &str,
    repo: &str,
    version: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    let path = version_path(kind, repo, version);
    let (s, b) = c.patch(&format!("{path}/start_upload"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    put_raw(c, &format!("{}{path}/upload", c.base), bytes, true).await
}

pub async fn put_raw(
    c: &Client,
    url: &str,
    bytes: Vec<u8>,
    with_token: bool,
) -> (StatusCode, Value) {
    let mut req = c
        .http
        .put(url)
        .header("content-type", "application/octet-stream")
        .body(bytes);
    if with_token {
        req = req.header("X-YATAI-API-TOKEN", c.token.as_deref().unwrap_or_default());
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Sends `parts` (number, bytes) of the running multipart upload `upload_id` of the version at
/// `path` to their presigned URLs, in the order given, then completes the upload with the
/// ETags they answered; returns complete's answer.
pub async fn put_parts_and_complete(
    c: &Client,
    path: &str,
    upload_id: &str,
    parts: &[(u16, &[u8])],
) -> (StatusCode, Value) {
    let mut listed = Vec::new();
    for (n, chunk) in parts {
        let etag = put_part(c, path, upload_id, *n, chunk).await;
        listed.push(json!({"part_number": n, "etag": etag}));
    }
    c.patch(
        &format!("{path}/complete_multipart_upload"),
        json!({"parts": listed, "upload_id": upload_id}),
    )
    .await
}

/// Sends part `n` of the running multipart upload `upload_id` of the version at `path` to its
/// presigned URL; returns its ETag.
pub async fn put_part(c: &Client, path: &str, upload_id: &str, n: u16, b: &[u8]) -> String {
    let (_, v) = c
        .patch(
            &format!("{path}/presign_multipart_upload_url"),
            json!({"upload_id": upload_id, "part_number": n}),
        )
        .await;
    let res = c
        .http
        .put(v["presigned_upload_url"].as_str().unwrap())
        .body(b.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "part {n}");
    res.headers()["etag"].to_str().unwrap().to_string()
}

/// `finish_upload` with status success, which must succeed; returns the version.
pub async fn finish_ok(c: &Client, path: &str) -> Value {
    let (s, v) = c
        .patch(
            &format!("{path}/finish_upload"),
            json!({"status": "success", "reason": ""}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["upload_status"], "success", "{v}");
    v
}

pub async fn download(
    c: &Client,
    kind: &str,
    repo: &str,
    version: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = c
        .http
        .get(format!(
            "{}{}/download",
            c.base,
            version_path(kind, repo, version)
        ))
        .header("X-YATAI-API-TOKEN", c.token.as_deref().unwrap_or_default());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    (
        res.status(),
        res.headers().clone(),
        res.bytes().await.unwrap().to_vec(),
    )
}

/// An admin token client after setup.
pub async fn api_client(app: &TestApp) -> Client {
    let admin = app.setup_admin().await;
    let (_, token) = admin
        .create_token("cli", &["api", "read_organization", "write_organization"])
        .await;
    app.with_token(&token)
}

pub async fn object_keys(app: &TestApp, prefix: &str) -> Vec<String> {
    app.state.objects.list_keys(Some(prefix)).await.unwrap()
}
