//! The image build status of bento versions, through the typed client (`yatai-client`) as the
//! image builder uses it, on both backend pairs: Yatai 1.x's body, our image reference and
//! reason, the rules, and the client's reads and streamed download.

mod common;

use std::sync::{Arc, Mutex};

use common::registry::tar_archive;
use common::{Client, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use yatai_client::types::ImageBuildStatus;
use yatai_client::{ClientError, Kind, ListQuery};

async fn push_bento(c: &Client, repo: &str, version: &str, archive: Vec<u8>) {
    let (s, b) = c
        .post(
            "/api/v1/bento_repositories",
            json!({"name": repo, "description": ""}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let manifest = json!({"service": "service:svc", "bentoml_version": "1.4.40", "size_bytes": archive.len(), "apis": {}, "models": []});
    let (s, b) = c
        .post(
            &format!("/api/v1/bento_repositories/{repo}/bentos"),
            json!({"version": version, "manifest": manifest, "labels": []}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    if archive.is_empty() {
        return;
    }
    let path = format!("/api/v1/bento_repositories/{repo}/bentos/{version}");
    let (s, b) = c.patch(&format!("{path}/start_upload"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let res = c
        .http
        .put(format!("{}{path}/upload", c.base))
        .header("X-YATAI-API-TOKEN", c.token.as_deref().unwrap())
        .body(archive)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (s, b) = c
        .patch(
            &format!("{path}/finish_upload"),
            json!({"status": "success", "reason": ""}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

backend_test!(
    image_build_status_through_the_typed_client,
    |app: TestApp| async move {
        let admin = app.setup_admin().await;
        let (_, token) = admin
            .create_token(
                "builder",
                &["api", "read_organization", "write_organization"],
            )
            .await;
        let c = app.with_token(&token);
        let archive = tar_archive(&[
            ("bento.yaml", b"name: echo\nversion: v1\n"),
            ("src/service.py", b"x = 1\n"),
        ]);
        push_bento(&c, "echo", "v1", archive.clone()).await;
        push_bento(&c, "echo", "v2", Vec::new()).await;

        let client = yatai_client::Client::new(&app.base, Some(&token)).unwrap();
        let v = client.get_bento("echo", "v1").await.unwrap();
        assert_eq!(v.image_status(), ImageBuildStatus::Pending);
        assert!(v.is_uploaded());
        let list = client
            .list_bentos(&ListQuery {
                q: Some("echo".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(list.total, 2);
        let repos = client
            .list_repositories(Kind::Bento, &ListQuery::default())
            .await
            .unwrap();
        assert_eq!(repos.items[0].n_versions(), 2);

        // A streamed download with progress, byte for byte.
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("echo.tar");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let n = client
            .download(Kind::Bento, "echo", "v1", &dest, move |p| {
                s2.lock().unwrap().push(p.done)
            })
            .await
            .unwrap();
        assert_eq!(n, archive.len() as u64);
        assert_eq!(std::fs::read(&dest).unwrap(), archive);
        assert_eq!(
            seen.lock().unwrap().last().copied(),
            Some(archive.len() as u64)
        );
        let e = client
            .download(Kind::Bento, "echo", "v2", &dest, |_| {})
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not uploaded"), "{e}");
        let e = client.get_bento("echo", "nope").await.unwrap_err();
        assert!(e.is_not_found(), "{e}");

        // Yatai 1.x's image builder sends the status alone.
        let path = "/api/v1/bento_repositories/echo/bentos/v1/update_image_build_status";
        let (s, b) = c
            .patch(path, json!({"image_build_status": "building"}))
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["image_build_status"], "building");
        let done = client
            .update_image_build_status(
                "echo",
                "v1",
                ImageBuildStatus::Success,
                Some("reg.example/yatai-bentos:yatai.echo.v1"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(done.image_status(), ImageBuildStatus::Success);
        assert_eq!(
            done.image_reference.as_deref(),
            Some("reg.example/yatai-bentos:yatai.echo.v1")
        );
        // A later failure keeps the last good image and says why.
        let failed = client
            .update_image_build_status(
                "echo",
                "v1",
                ImageBuildStatus::Failed,
                None,
                Some("cannot install requirement nosuchpkg"),
            )
            .await
            .unwrap();
        assert_eq!(
            failed.image_build_reason.as_deref(),
            Some("cannot install requirement nosuchpkg")
        );
        assert_eq!(
            failed.image_reference.as_deref(),
            Some("reg.example/yatai-bentos:yatai.echo.v1")
        );
        let got = client.get_bento("echo", "v1").await.unwrap();
        assert_eq!(got.image_status(), ImageBuildStatus::Failed);

        // Rules: a bad status, a reference without success, building a bento not uploaded.
        let (s, b) = c.patch(path, json!({"image_build_status": "done"})).await;
        common::assert_error(s, &b, StatusCode::BAD_REQUEST);
        let (s, b) = c
            .patch(
                path,
                json!({"image_build_status": "building", "image_reference": "x/y:z"}),
            )
            .await;
        common::assert_error(s, &b, StatusCode::BAD_REQUEST);
        let e = client
            .update_image_build_status("echo", "v2", ImageBuildStatus::Building, None, None)
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Api { status: 409, .. }), "{e}");
        let e = client
            .update_image_build_status("nope", "v1", ImageBuildStatus::Building, None, None)
            .await
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");

        // Only callers who may write the registry.
        let (_, ro) = admin.create_token("reader", &["read_organization"]).await;
        let reader = yatai_client::Client::new(&app.base, Some(&ro)).unwrap();
        let e = reader
            .update_image_build_status("echo", "v1", ImageBuildStatus::Building, None, None)
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Unauthorized { .. }), "{e}");
        let anonymous = yatai_client::Client::new(&app.base, None).unwrap();
        assert!(matches!(
            anonymous.get_bento("echo", "v1").await.unwrap_err(),
            ClientError::Unauthorized { .. }
        ));

        // Deleting the version removes its image record with it.
        let (s, b) = c
            .delete("/api/v1/bento_repositories/echo/bentos/v1", None)
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(app.count_rows("image_builds").await, 0);
    }
);
