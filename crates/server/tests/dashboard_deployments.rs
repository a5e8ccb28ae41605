//! The dashboard's Deployments and Clusters pages over HTTP (no browser), on both backend
//! pairs: the pages render, a deployment is created through the form, edited (a new revision),
//! rolled back, terminated and deleted; a field error is shown next to its input and nothing is
//! written; a guest cannot create; a Kubernetes cluster is added through its form. The cluster
//! runtime is the scripted test double of `common::runtime`, driven by `reconcile_once`.

mod common;

use common::registry::{create_version, proxy_upload, tar_archive, version_path};
use common::runtime::install;
use common::{csrf_of, page, post_form, Client, TestApp};
use reqwest::StatusCode;
use serde_json::json;
use yatai_domain::deployments::DeploymentStatus;
use yatai_service::deployments::reconcile_once;

/// Pushes a bento with one runner and one API through the API (created, uploaded, finished).
async fn push_bento(c: &Client, repo: &str, version: &str) {
    let manifest = json!({"service": "service:svc", "bentoml_version": "1.1.11", "size_bytes": 100,
        "apis": {"classify": {"name": "classify", "input_type": "JSON", "output_type": "JSON"}},
        "models": [], "runners": [{"name": "clf_runner", "runnable_type": "SklearnRunnable", "models": [], "resource_config": null}]});
    create_version(c, "bento", repo, version, manifest, json!([])).await;
    let archive = tar_archive(&[("bento.yaml", b"service: service:svc\n")]);
    let (s, b) = proxy_upload(c, "bento", repo, version, archive).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = c
        .patch(
            &format!("{}/finish_upload", version_path("bento", repo, version)),
            json!({"status": "success", "reason": ""}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
}

/// An admin browser and an API client with every scope.
async fn admin_and_api(app: &TestApp) -> (Client, Client) {
    let admin = app.setup_admin().await;
    let (_, token) = admin
        .create_token(
            "cli",
            &[
                "api",
                "read_organization",
                "write_organization",
                "read_cluster",
                "write_cluster",
            ],
        )
        .await;
    let api = app.with_token(&token);
    (admin, api)
}

const HELLO: &str = "/clusters/default/namespaces/default/deployments/hello";

fn form<'a>(csrf: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![
        ("csrf", csrf),
        ("bento", "iris:v1"),
        ("cluster", "default"),
        ("name", "hello"),
        ("kube_namespace", "default"),
        ("description", ""),
        ("min_replicas", "1"),
        ("max_replicas", "2"),
        ("cpu_request", "250m"),
        ("memory_request", ""),
        ("cpu_limit", ""),
        ("memory_limit", "1Gi"),
        ("envs", "GREETING=hi there\nMODE=fast"),
        ("runner.clf_runner.min_replicas", "1"),
        ("runner.clf_runner.max_replicas", "3"),
    ];
    for (k, v) in extra {
        match f.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v,
            None => f.push((k, v)),
        }
    }
    f
}

backend_test!(
    a_deployment_lives_its_life_through_the_dashboard,
    |app: TestApp| async move {
        let runtimes = install(&app);
        let (admin, api) = admin_and_api(&app).await;
        push_bento(&api, "iris", "v1").await;
        push_bento(&api, "iris", "v2").await;

        // The pages render; the navigation links them.
        for path in [
            "/deployments",
            "/deployments/new",
            "/clusters",
            "/clusters/default",
        ] {
            let (s, html) = page(&admin, path).await;
            assert_eq!(s, StatusCode::OK, "{path}: {html}");
            assert!(html.contains("href=\"/deployments\"") && html.contains("href=\"/clusters\""));
        }
        let (_, html) = page(&admin, "/clusters").await;
        assert!(
            html.contains("data-cluster=\"default\"")
                && html.contains("processes on the server's machine")
        );
        let (_, html) = page(&admin, "/deployments/new?bento=iris:v1").await;
        assert!(
            html.contains("<option value=\"iris:v2\"")
                && html.find("iris:v2") < html.find("iris:v1"),
            "uploaded bentos, newest first: {html}"
        );
        assert!(
            html.contains("data-runner=\"clf_runner\""),
            "the bento's runners get inputs"
        );
        let csrf = csrf_of(&html);

        // A bad name: the error is next to the name input, nothing is written.
        let (s, html) = post_form(
            &admin,
            "/deployments",
            &form(&csrf, &[("name", "Bad_Name")]),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{html}");
        let error_at = html.find("class=\"field-error\"").expect("a field error");
        assert!(
            html.find("id=\"name\"").unwrap() < error_at
                && error_at < html.find("id=\"kube_namespace\"").unwrap(),
            "the error is next to the name: {html}"
        );
        assert!(
            html.contains("value=\"Bad_Name\""),
            "what was typed is kept"
        );
        // Too many replicas: the service's parser names the input.
        let (s, html) = post_form(
            &admin,
            "/deployments",
            &form(&csrf, &[("runner.clf_runner.max_replicas", "1000")]),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{html}");
        let error_at = html.find("class=\"field-error\"").expect("a field error");
        assert!(
            html.find("id=\"runner.clf_runner.max_replicas\"").unwrap() < error_at,
            "{html}"
        );
        assert_eq!(
            app.count_rows("deployments").await,
            0,
            "a refused form writes nothing"
        );

        // Create.
        let (s, html) = post_form(&admin, "/deployments", &form(&csrf, &[])).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(
            html.contains("<h1>hello</h1>") && html.contains("id=\"deployment-status\""),
            "{html}"
        );
        let desired = {
            reconcile_once(&app.state).await.unwrap();
            runtimes
                .of("default")
                .seen
                .lock()
                .unwrap()
                .last()
                .cloned()
                .unwrap()
        };
        assert_eq!(desired.bento_version, "v1");
        assert_eq!(
            (
                desired.api_server.min_replicas,
                desired.api_server.max_replicas
            ),
            (1, 2)
        );
        assert!(desired
            .api_server
            .envs
            .contains(&("GREETING".into(), "hi there".into())));
        assert_eq!(desired.runners["clf_runner"].max_replicas, 3);
        assert_eq!(
            desired
                .api_server
                .resources
                .requests
                .as_ref()
                .unwrap()
                .cpu
                .as_deref(),
            Some("250m")
        );
        // The API sees what the form made.
        let (s, b) = api.get(&format!("/api/v1{HELLO}")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(
            b["latest_revision"]["targets"][0]["config"]["runners"]["clf_runner"]["hpa_conf"]
                ["max_replicas"],
            3
        );

        runtimes.of("default").answer(DeploymentStatus::Running);
        reconcile_once(&app.state).await.unwrap();
        let (_, html) = page(&admin, "/deployments").await;
        assert!(
            html.contains("data-deployment=\"hello\"") && html.contains("href=\"/bentos/iris/v1\""),
            "{html}"
        );
        assert!(html.contains("badge running") && html.contains("http://127.0.0.1:9/"));
        let (_, html) = page(&admin, HELLO).await;
        assert!(
            html.contains("curl -X POST http://127.0.0.1:9/classify"),
            "{html}"
        );
        assert!(
            html.contains("id=\"logs\"") && html.contains("line 2"),
            "{html}"
        );
        assert!(
            html.contains("data-operation=\"create\""),
            "the deployment's events: {html}"
        );
        assert!(
            !html.contains("id=\"delete\""),
            "Delete is offered only once terminated"
        );

        // Edit: a new revision with another bento.
        let (s, html) = page(&admin, &format!("{HELLO}/edit?bento=iris:v2")).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(
            html.contains("value=\"iris:v2\"") && html.contains("value=\"2\""),
            "{html}"
        );
        let (s, html) = post_form(
            &admin,
            &format!("{HELLO}/edit"),
            &form(&csrf, &[("bento", "iris:v2"), ("max_replicas", "4")]),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(
            html.contains("data-revision=\"2\"") && html.contains("href=\"/bentos/iris/v2\""),
            "{html}"
        );
        // A field error on edit is shown in the edit form.
        let (s, html) = post_form(
            &admin,
            &format!("{HELLO}/edit"),
            &form(&csrf, &[("envs", "1BAD=x")]),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{html}");
        let error_at = html.find("class=\"field-error\"").expect("a field error");
        assert!(html.find("id=\"envs\"").unwrap() < error_at, "{html}");

        // Roll back to revision 1.
        let (_, b) = api.get(&format!("/api/v1{HELLO}/revisions")).await;
        let first = b["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "1")
            .unwrap()["uid"]
            .as_str()
            .unwrap()
            .to_string();
        let (s, html) = post_form(
            &admin,
            &format!("{HELLO}/rollback"),
            &[("csrf", &csrf), ("revision_uid", &first)],
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(
            html.contains("data-revision=\"3\"") && html.contains("rollback to #1"),
            "{html}"
        );
        reconcile_once(&app.state).await.unwrap();
        assert_eq!(
            runtimes
                .of("default")
                .seen
                .lock()
                .unwrap()
                .last()
                .unwrap()
                .bento_version,
            "v1"
        );

        // Delete before terminating is refused by the service.
        let (s, _) = post_form(&admin, &format!("{HELLO}/delete"), &[("csrf", &csrf)]).await;
        assert_eq!(s, StatusCode::CONFLICT);
        // Terminate, then delete.
        let (s, html) = post_form(&admin, &format!("{HELLO}/terminate"), &[("csrf", &csrf)]).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        reconcile_once(&app.state).await.unwrap();
        let (_, html) = page(&admin, HELLO).await;
        assert!(
            html.contains("badge terminated") && html.contains("id=\"delete\""),
            "{html}"
        );
        let (s, html) = post_form(&admin, &format!("{HELLO}/delete"), &[("csrf", &csrf)]).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(
            html.contains("<h1>Deployments</h1>") && !html.contains("data-deployment=\"hello\"")
        );
        assert_eq!(app.count_rows("deployments").await, 0);
        let (s, _) = page(&admin, HELLO).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
);

backend_test!(
    guests_see_deployments_but_cannot_create,
    |app: TestApp| async move {
        install(&app);
        let (admin, api) = admin_and_api(&app).await;
        push_bento(&api, "iris", "v1").await;
        let (_, html) = page(&admin, "/users").await;
        let (s, _) = post_form(
            &admin,
            "/users",
            &[
                ("csrf", &csrf_of(&html)),
                ("name", "gus"),
                ("email", "gus@example.com"),
                ("password", "gus-password"),
                ("role", "guest"),
            ],
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let guest = app.browser();
        guest.login("gus", "gus-password").await;
        let (s, html) = page(&guest, "/deployments").await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            !html.contains("id=\"new-deployment\""),
            "a guest has no New deployment button"
        );
        let (s, _) = page(&guest, "/deployments/new").await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (_, html) = page(&guest, "/clusters").await;
        assert!(!html.contains("id=\"add-cluster\""));
        let csrf = csrf_of(&html);
        let (s, _) = post_form(&guest, "/deployments", &form(&csrf, &[])).await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "a forged POST is refused like the API refuses it"
        );
        let (s, _) = post_form(&guest, "/clusters", &[("csrf", &csrf), ("name", "k8s")]).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_eq!(app.count_rows("deployments").await, 0);
        assert_eq!(app.count_rows("clusters").await, 1);
    }
);

backend_test!(
    a_kubernetes_cluster_is_added_through_its_form,
    |app: TestApp| async move {
        install(&app);
        let (admin, _) = admin_and_api(&app).await;
        let (s, html) = page(&admin, "/clusters/new").await;
        assert_eq!(s, StatusCode::OK);
        let csrf = csrf_of(&html);
        let (s, html) = post_form(
            &admin,
            "/clusters",
            &[
                ("csrf", &csrf),
                ("name", "prod"),
                ("default_namespace", "serving"),
                ("kube_config", "not yaml"),
            ],
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let error_at = html.find("class=\"field-error\"").expect("a field error");
        assert!(
            html.find("id=\"kube_config\"").unwrap() < error_at && html.contains("no clusters"),
            "{html}"
        );
        assert_eq!(app.count_rows("clusters").await, 1);
        let kube = "apiVersion: v1\nclusters:\n- name: k\n  cluster: {server: https://k8s.example}\nusers:\n- name: u\n  user: {token: s3cret}\n";
        let (s, html) = post_form(
            &admin,
            "/clusters",
            &[
                ("csrf", &csrf),
                ("name", "prod"),
                ("description", "the big one"),
                ("default_namespace", "serving"),
                ("kube_config", kube),
            ],
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(
            html.contains("<h1>Cluster prod</h1>")
                && html.contains("(redacted)")
                && !html.contains("s3cret"),
            "{html}"
        );
        let (_, html) = page(&admin, "/clusters").await;
        assert!(html.contains("data-cluster=\"prod\"") && html.contains("the big one"));
        let (_, html) = page(&admin, "/deployments/new?cluster=prod").await;
        assert!(
            html.contains("value=\"serving\""),
            "the namespace defaults to the cluster's: {html}"
        );
    }
);

backend_test!(
    without_runtimes_the_page_says_why_there_are_no_logs,
    |app: TestApp| async move {
        let (admin, api) = admin_and_api(&app).await;
        push_bento(&api, "iris", "v1").await;
        let (_, html) = page(&admin, "/deployments/new").await;
        let (s, html) = post_form(&admin, "/deployments", &form(&csrf_of(&html), &[])).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(
            html.contains("id=\"logs-note\"")
                && html.contains("runs no deployments")
                && html.contains("Status: deploying"),
            "{html}"
        );
        assert!(
            html.contains("curl -X POST &lt;URL&gt;/classify")
                || html.contains("curl -X POST &#60;URL&#62;/classify"),
            "{html}"
        );
    }
);
