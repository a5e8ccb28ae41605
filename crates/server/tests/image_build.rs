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

// ------------------------------------------------------------ builds run by the server itself

/// An image builder standing in for the real one: it reads the bento archive through the
/// server's storage (as the real one does), then waits until the test lets it finish, with an
/// image or with a failure.
#[derive(Debug)]
struct FakeState {
    gate: tokio::sync::Semaphore,
    fail: std::sync::atomic::AtomicBool,
    archives: Mutex<Vec<Vec<u8>>>,
}

#[derive(Debug, Clone)]
struct FakeBuilder(Arc<FakeState>);

impl Default for FakeBuilder {
    fn default() -> Self {
        FakeBuilder(Arc::new(FakeState {
            gate: tokio::sync::Semaphore::new(0),
            fail: Default::default(),
            archives: Default::default(),
        }))
    }
}

impl std::ops::Deref for FakeBuilder {
    type Target = FakeState;
    fn deref(&self) -> &FakeState {
        &self.0
    }
}

impl yatai_service::registry::images::ImageBuilder for FakeBuilder {
    fn build(
        &self,
        job: yatai_service::registry::images::BuildJob,
    ) -> futures::future::BoxFuture<'static, Result<String, String>> {
        let me = self.clone();
        Box::pin(async move {
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("bento.archive");
            job.archives
                .fetch(
                    yatai_domain::registry::Kind::Bento,
                    &job.name,
                    &job.version,
                    &dest,
                )
                .await
                .map_err(|e| e.to_string())?;
            me.archives
                .lock()
                .unwrap()
                .push(std::fs::read(&dest).unwrap());
            me.gate.acquire().await.unwrap().forget();
            if me.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err("cannot install requirement nosuchpkg".into());
            }
            Ok(format!(
                "reg.example/yatai-bentos:yatai.{}.{}",
                job.name, job.version
            ))
        })
    }
}

/// A member of the default organization with a browser session and an API token.
async fn member(app: &TestApp, admin: &Client, name: &str, role: &str) -> (Client, Client) {
    let (s, b) = admin
        .post(
            "/api/v1/users",
            json!({"name": name, "email": format!("{name}@example.com"), "password": "member-password-1", "role": role}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let browser = app.browser();
    browser.login(name, "member-password-1").await;
    let (_, token) = browser
        .create_token(&format!("{name}-token"), &["api", "read_organization"])
        .await;
    (browser, app.with_token(&token))
}

async fn status_of(c: &Client, version: &str) -> Value {
    let (s, b) = c
        .get(&format!("/api/v1/bento_repositories/echo/bentos/{version}"))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

/// Waits until the bento's image build status is `want`.
async fn wait_for(c: &Client, version: &str, want: &str) -> Value {
    for _ in 0..200 {
        let v = status_of(c, version).await;
        if v["image_build_status"] == want {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "the image build status of echo:{version} never became {want}: {}",
        status_of(c, version).await
    );
}

use serde_json::Value;

async fn builds_in_the_server(backend: common::Backend) {
    use common::Start;
    let fake = FakeBuilder::default();
    let app = TestApp::start_with(
        backend,
        yatai_server::Settings {
            image_builder: Some(Arc::new(fake.clone())),
            ..Default::default()
        },
    )
    .await;
    let admin = app.setup_admin().await;
    let (_, token) = admin
        .create_token(
            "pusher",
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
    let (guest_browser, guest) = member(&app, &admin, "gina", "guest").await;
    let (dev_browser, dev) = member(&app, &admin, "dan", "developer").await;
    let build = |v: &str| format!("/api/v1/bento_repositories/echo/bentos/{v}/build_image");

    // Guests may not build; a bento that is not uploaded cannot be; an unknown one is not found.
    let (s, b) = guest.post(&build("v1"), json!({})).await;
    common::assert_error(s, &b, StatusCode::FORBIDDEN);
    let (s, b) = dev.post(&build("v2"), json!({})).await;
    common::assert_error(s, &b, StatusCode::CONFLICT);
    assert!(
        b["message"].as_str().unwrap().contains("not uploaded"),
        "{b}"
    );
    let (s, b) = dev.post(&build("nope"), json!({})).await;
    common::assert_error(s, &b, StatusCode::NOT_FOUND);
    assert_eq!(status_of(&c, "v1").await["image_build_status"], "pending");
    assert_eq!(
        app.count_rows("image_builds").await,
        0,
        "refusals wrote nothing"
    );

    // The dashboard shows the button to developers and admins, not to guests.
    let page_path = "/bentos/echo/v1";
    let (_, html) = common::page(&guest_browser, page_path).await;
    assert!(
        !html.contains("id=\"build-image\""),
        "guests see no build button"
    );
    let (_, html) = common::page(&dev_browser, page_path).await;
    assert!(html.contains("id=\"build-image\""), "{html}");

    // A developer asks (through the API): pending at once, then building in the background,
    // from the archive in the server's own storage.
    let (s, b) = dev.post(&build("v1"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["image_build_status"], "pending", "{b}");
    wait_for(&c, "v1", "building").await;
    for _ in 0..200 {
        if !fake.archives.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        fake.archives.lock().unwrap().as_slice() == [archive.clone()],
        "the builder read the pushed archive from storage"
    );
    // A second request while it builds: refused, through the API and the dashboard alike.
    let (s, b) = dev.post(&build("v1"), json!({})).await;
    common::assert_error(s, &b, StatusCode::CONFLICT);
    assert!(
        b["message"].as_str().unwrap().contains("already building"),
        "{b}"
    );
    let csrf = common::csrf_of(&html);
    let (s, html) = common::post_form(
        &dev_browser,
        "/bentos/echo/v1/build_image",
        &[("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{html}");
    fake.gate.add_permits(1);
    let v = wait_for(&c, "v1", "success").await;
    assert_eq!(
        v["image_reference"], "reg.example/yatai-bentos:yatai.echo.v1",
        "{v}"
    );
    // A list reads the image builds with its page: the same as the version read alone.
    let (_, list) = c.get("/api/v1/bentos?start=0&count=20").await;
    let listed = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["version"] == "v1")
        .expect("v1 is listed");
    assert_eq!(listed["image_reference"], v["image_reference"], "{list}");
    assert_eq!(listed["image_build_status"], "success", "{list}");

    // Again, from the dashboard's button (an admin's session), and this time it fails.
    fake.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let (_, html) = common::page(&admin, page_path).await;
    let csrf = common::csrf_of(&html);
    let (s, html) = common::post_form(
        &admin,
        "/bentos/echo/v1/build_image",
        &[("csrf", csrf.as_str())],
    )
    .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "redirected back to the bento's page: {html}"
    );
    assert!(html.contains("id=\"image-build-status\""), "{html}");
    wait_for(&c, "v1", "building").await;
    fake.gate.add_permits(1);
    let v = wait_for(&c, "v1", "failed").await;
    assert_eq!(
        v["image_build_reason"], "cannot install requirement nosuchpkg",
        "{v}"
    );
    assert_eq!(
        v["image_reference"], "reg.example/yatai-bentos:yatai.echo.v1",
        "the last good image is kept"
    );
}

mod builds_run_by_the_server {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_and_local_directory() {
        builds_in_the_server(common::Backend::Embedded).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_and_s3() {
        builds_in_the_server(common::Backend::Production).await;
    }
}

backend_test!(
    a_server_without_a_registry_says_how_to_enable_builds,
    |app: TestApp| async move {
        let admin = app.setup_admin().await;
        let (_, token) = admin
            .create_token(
                "pusher",
                &["api", "read_organization", "write_organization"],
            )
            .await;
        let c = app.with_token(&token);
        let archive = tar_archive(&[("bento.yaml", b"name: echo\nversion: v1\n")]);
        push_bento(&c, "echo", "v1", archive).await;
        let (s, b) = c
            .post(
                "/api/v1/bento_repositories/echo/bentos/v1/build_image",
                json!({}),
            )
            .await;
        common::assert_error(s, &b, StatusCode::CONFLICT);
        let message = b["message"].as_str().unwrap();
        assert!(message.contains("DOCKER_REGISTRY_SERVER"), "{message}");
        assert_eq!(status_of(&c, "v1").await["image_build_status"], "pending");
        assert_eq!(app.count_rows("image_builds").await, 0);
        let (_, html) = common::page(&admin, "/bentos/echo/v1").await;
        assert!(
            !html.contains("id=\"build-image\""),
            "no button without builds"
        );
    }
);
