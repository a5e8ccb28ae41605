//! The typed client (`yatai-client`) and the server agree with the OpenAPI document: every
//! request the client makes is a documented operation, and every JSON answer it reads validates
//! against that operation's documented answer schema (JSON Schema, checked by `jsonschema`).

mod common;

use std::sync::{Mutex, OnceLock};

use common::registry::{
    api_client, bento_manifest, create_version, model_manifest, proxy_upload, tar_archive,
};
use common::{Backend, TestApp};
use serde_json::{json, Value};
use yatai_api_types::ImageBuildStatus;
use yatai_client::{Client, Kind};

/// One exchange seen by the server: method, path, status, JSON answer (if any).
type Exchange = (String, String, u16, Option<Value>);

fn seen() -> &'static Mutex<Vec<Exchange>> {
    static SEEN: OnceLock<Mutex<Vec<Exchange>>> = OnceLock::new();
    SEEN.get_or_init(Default::default)
}

/// The server under test, with a layer that records what the client sent and got.
fn recording_router(svc: yatai_service::Services) -> axum::Router {
    yatai_server::app_of(svc).layer(axum::middleware::from_fn(
        |req: axum::extract::Request, next: axum::middleware::Next| async move {
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let from_client = req
                .headers()
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.starts_with("yatai-client/"));
            let response = next.run(req).await;
            if !from_client {
                return response;
            }
            let (parts, body) = response.into_parts();
            let json = parts
                .headers
                .get("content-type")
                .is_some_and(|c| c.as_bytes().starts_with(b"application/json"));
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let answer = json.then(|| serde_json::from_slice(&bytes).ok()).flatten();
            seen()
                .lock()
                .unwrap()
                .push((method, path, parts.status.as_u16(), answer));
            axum::response::Response::from_parts(parts, axum::body::Body::from(bytes))
        },
    ))
}

/// The documented operation a concrete path and method belong to.
fn operation<'d>(doc: &'d Value, method: &str, path: &str) -> Option<(&'d str, &'d Value)> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    doc["paths"]
        .as_object()?
        .iter()
        .find_map(|(template, ops)| {
            let t: Vec<&str> = template.trim_matches('/').split('/').collect();
            let fits = t.len() == segments.len()
                && t.iter()
                    .zip(&segments)
                    .all(|(t, s)| (t.starts_with('{') && t.ends_with('}')) || t == s);
            let op = ops.get(method.to_lowercase())?;
            fits.then_some((template.as_str(), op))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_requests_and_the_servers_answers_follow_the_openapi_document() {
    let app = TestApp::launch(Backend::Embedded, Default::default(), recording_router).await;
    let api = api_client(&app).await;
    create_version(&api, "model", "clf", "m1", model_manifest(10), json!([])).await;
    assert_eq!(
        proxy_upload(
            &api,
            "model",
            "clf",
            "m1",
            tar_archive(&[("model.yaml", b"m")])
        )
        .await
        .0,
        200
    );
    create_version(
        &api,
        "bento",
        "svc",
        "b1",
        bento_manifest(&["clf:m1"]),
        json!([]),
    )
    .await;
    assert_eq!(
        proxy_upload(
            &api,
            "bento",
            "svc",
            "b1",
            tar_archive(&[("bento.yaml", b"b")])
        )
        .await
        .0,
        200
    );

    // Everything the client offers, against the real server.
    let client = Client::new(&app.base, api.token.as_deref()).unwrap();
    client.get_bento("svc", "b1").await.unwrap();
    client.get_model("clf", "m1").await.unwrap();
    client.list_bentos(&Default::default()).await.unwrap();
    client.list_models(&Default::default()).await.unwrap();
    client
        .list_repositories(Kind::Bento, &Default::default())
        .await
        .unwrap();
    client
        .list_versions(Kind::Model, &Default::default())
        .await
        .unwrap();
    let dest = tempfile::NamedTempFile::new().unwrap();
    client
        .download(Kind::Bento, "svc", "b1", dest.path(), |_| {})
        .await
        .unwrap();
    client
        .update_image_build_status(
            "svc",
            "b1",
            ImageBuildStatus::Success,
            Some("registry.example/svc:b1"),
            None,
        )
        .await
        .unwrap();
    assert!(client
        .get_bento("svc", "nope")
        .await
        .unwrap_err()
        .is_not_found());

    let doc = serde_json::to_value(yatai_server::api::openapi()).unwrap();
    let components = doc["components"].clone();
    let exchanges = seen().lock().unwrap().clone();
    assert!(
        exchanges.len() >= 10,
        "the client's requests were recorded: {exchanges:?}"
    );
    for (method, path, status, answer) in exchanges {
        let (template, op) = operation(&doc, &method, &path).unwrap_or_else(|| {
            panic!("{method} {path}: the client calls an undocumented operation")
        });
        let documented = op["responses"][status.to_string()].clone();
        assert!(
            documented.is_object(),
            "{method} {template}: status {status} is not documented"
        );
        let Some(answer) = answer else { continue };
        let schema = &documented["content"]["application/json"]["schema"];
        assert!(
            schema.is_object(),
            "{method} {template} {status}: JSON answered, none documented"
        );
        let mut root = schema.clone();
        root["components"] = components.clone();
        let validator = jsonschema::validator_for(&root).unwrap_or_else(|e| {
            panic!("{method} {template}: the documented schema does not compile: {e}")
        });
        let errors: Vec<String> = validator
            .iter_errors(&answer)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {template} {status}: the answer breaks the documented schema:\n{}",
            errors.join("\n")
        );
    }
}
