//! Clusters and deployments through the v1 and v2 APIs, on both backend pairs: the shapes the
//! bentoml 1.1 and 1.4 clients read, revisions, rollback, terminate and delete, events, the
//! rules (names, scopes, roles, bentos that are not uploaded), and the desired state a
//! cluster's runtime receives from the reconciler, also after a restart.
//!
//! The cluster runtime here is a scripted test double (`common::runtime::ScriptedRuntime`): it records what the
//! reconciler asks and answers what the test says. The real runtimes have their own tests
//! (`runtime-local` with real processes, `runtime-kubernetes` against a fake Kubernetes API),
//! and the end-to-end suite drives the real CLIs against the real local runtime.

mod common;

use common::registry::{bento_manifest, create_version, proxy_upload, tar_archive, version_path};
use common::runtime::install;
use common::{Client, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use yatai_domain::deployments::DeploymentStatus;
use yatai_service::deployments::reconcile_once;

/// A client whose token has every scope, after setup.
async fn deployer(app: &TestApp) -> Client {
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
    app.with_token(&token)
}

/// Pushes a bento through the proxy (created, uploaded, finished).
async fn push_bento(c: &Client, repo: &str, version: &str) {
    create_version(c, "bento", repo, version, bento_manifest(&[]), json!([])).await;
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

/// A client with every scope, after it pushed bento echo:v1 and deployed it as `name` (v1 API).
async fn deploy_echo(app: &TestApp, name: &str) -> Client {
    let c = deployer(app).await;
    push_bento(&c, "echo", "v1").await;
    let (s, b) = c
        .post(
            "/api/v1/clusters/default/deployments",
            v1_create(name, "v1", "one"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    c
}

const V1: &str = "/api/v1/clusters/default/namespaces/default/deployments";

fn v1_create(name: &str, version: &str, env: &str) -> Value {
    // What bentoml 1.1.11's `Deployment.create` sends (cattrs unstructure, defaults omitted).
    json!({"name": name, "kube_namespace": "default", "mode": "function", "description": null,
           "targets": [{"type": "stable", "bento_repository": "echo", "bento": version,
                        "config": {"hpa_conf": {"min_replicas": 1, "max_replicas": 2},
                                   "envs": [{"key": "GREETING", "value": env}], "runners": null}}]})
}

backend_test!(
    v1_lifecycle_revisions_rollback_terminate_delete,
    |app: TestApp| async move {
        let runtimes = install(&app);
        let c = deployer(&app).await;
        push_bento(&c, "echo", "v1").await;

        // Clusters: the local `default` exists and comes first, as bentoml 1.1 takes the first.
        let (s, b) = c.get("/api/v1/clusters?count=1").await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["items"][0]["name"], "default");
        assert_eq!(b["items"][0]["kind"], "local");
        let (s, b) = c.get("/api/v1/clusters/default").await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["config"]["default_deployment_kube_namespace"], "default");
        assert_eq!(b["resource_instances"][0]["name"], "cpu.local");

        let (s, b) = c
            .post(
                "/api/v1/clusters/default/deployments",
                v1_create("hello", "v1", "one"),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["status"], "deploying");
        assert_eq!(b["kube_namespace"], "default");
        assert_eq!(b["cluster"]["name"], "default");
        let target = &b["latest_revision"]["targets"][0];
        assert_eq!(target["bento"]["name"], "v1");
        assert_eq!(target["bento"]["repository"]["name"], "echo");
        assert_eq!(
            target["config"]["envs"][0]["key"], "GREETING",
            "v1 gets its own dialect back"
        );
        assert_eq!(target["config"]["hpa_conf"]["max_replicas"], 2);
        assert!(b["urls"].as_array().unwrap().is_empty());

        // The reconciler hands the runtime the desired state, and records what it saw.
        let rt = runtimes.of("default");
        rt.answer(DeploymentStatus::Running);
        reconcile_once(&app.state).await.unwrap();
        let want = rt.last();
        assert!(want.running);
        assert_eq!(
            (want.bento_repository.as_str(), want.bento_version.as_str()),
            ("echo", "v1")
        );
        assert_eq!(
            want.api_server.envs,
            vec![("GREETING".to_string(), "one".to_string())]
        );
        assert_eq!(
            (want.api_server.min_replicas, want.api_server.max_replicas),
            (1, 2)
        );
        let first_revision = want.revision_uid.clone();
        let (s, b) = c.get(&format!("{V1}/hello")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["status"], "running");
        assert_eq!(b["urls"][0], "http://127.0.0.1:9/");

        // An update is a new revision, rolled out with the new env.
        let mut update = v1_create("hello", "v1", "two");
        update.as_object_mut().unwrap().remove("name");
        let (s, b) = c.patch(&format!("{V1}/hello"), update).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["status"], "deploying");
        reconcile_once(&app.state).await.unwrap();
        let want = rt.last();
        assert_ne!(want.revision_uid, first_revision);
        assert_eq!(want.api_server.envs[0].1, "two");

        let (s, b) = c.get(&format!("{V1}/hello/revisions")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["total"], 2);
        assert_eq!(b["items"][0]["status"], "active");
        assert_eq!(b["items"][1]["status"], "inactive");
        assert_eq!(b["items"][1]["uid"], first_revision.as_str());

        // Rollback: a third revision with the first one's env.
        let (s, b) = c
            .post(
                &format!("{V1}/hello/rollback"),
                json!({"revision_uid": first_revision}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["latest_revision"]["rollback_of"], first_revision.as_str());
        reconcile_once(&app.state).await.unwrap();
        assert_eq!(rt.last().api_server.envs[0].1, "one");
        let (_, b) = c.get(&format!("{V1}/hello/revisions")).await;
        assert_eq!(b["total"], 3);

        // Logs come from the runtime.
        let (s, b) = c.get(&format!("{V1}/hello/logs?lines=2")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["lines"], json!(["line 0", "line 1"]));

        // Delete before terminate is refused; terminate keeps the record.
        let (s, b) = c.delete(&format!("{V1}/hello"), None).await;
        common::assert_error(s, &b, StatusCode::CONFLICT);
        assert!(
            b["message"]
                .as_str()
                .unwrap()
                .contains("terminate it first"),
            "{b}"
        );
        let (s, b) = c.post(&format!("{V1}/hello/terminate"), json!({})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["status"], "terminating");
        assert!(
            b["urls"].as_array().unwrap().is_empty(),
            "a terminated deployment has no URL"
        );
        reconcile_once(&app.state).await.unwrap();
        assert!(!rt.last().running);
        let (_, b) = c.get(&format!("{V1}/hello")).await;
        assert_eq!(b["status"], "terminated");
        let (s, b) = c.delete(&format!("{V1}/hello"), None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(rt.removed.lock().unwrap().len(), 1);
        let (s, _) = c.get(&format!("{V1}/hello")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(app.count_rows("deployment_revisions").await, 0);

        // Every change wrote an event.
        let (_, b) = c.get("/api/v1/current_org/events?count=100").await;
        let ops: Vec<String> = b["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["resource_type"] == "deployment")
            .map(|e| e["operation_name"].as_str().unwrap().to_string())
            .collect();
        for op in [
            "create",
            "update",
            "rollback to revision 1",
            "terminate",
            "delete",
            "status: running",
        ] {
            assert!(ops.iter().any(|o| o == op), "no {op:?} event in {ops:?}");
        }
    }
);

backend_test!(
    v2_shapes_as_bentoml_1_4_reads_them,
    |app: TestApp| async move {
        let runtimes = install(&app);
        let c = deployer(&app).await;
        push_bento(&c, "echo", "v1").await;
        push_bento(&c, "echo", "v2").await;
        // What bentoml 1.4's `DeploymentAPI.create` sends (`bentoml deployment create echo:v1 --env ...`).
        let body = json!({"bento": "echo:v1", "name": "svc", "access_authorization": false,
        "envs": [{"name": "GREETING", "value": "hi"}],
        "services": {"svc": {"scaling": {"min_replicas": 1, "max_replicas": 1}, "instance_type": "cpu.local"}}, "dev": false});
        let (s, b) = c.post("/api/v2/deployments?cluster=", body).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["name"], "svc");
        assert_eq!(b["cluster"]["is_first"], true);
        assert_eq!(b["cluster"]["organization_name"], "default");
        let config = &b["latest_revision"]["targets"][0]["config"];
        assert_eq!(config["services"]["svc"]["instance_type"], "cpu.local");
        assert_eq!(config["envs"][0]["name"], "GREETING");

        runtimes.of("default").answer(DeploymentStatus::Running);
        reconcile_once(&app.state).await.unwrap();
        assert_eq!(
            runtimes.of("default").last().api_server.envs[0],
            ("GREETING".into(), "hi".into())
        );

        // 1.4 lists with empty values for what it does not set, and `all=true`.
        let (s, b) = c
            .get("/api/v2/deployments?cluster=&all=true&count=&q=&search=&start=")
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["total"], 1);
        let (s, b) = c.get("/api/v2/deployments/svc").await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["status"], "running");
        assert_eq!(b["urls"][0], "http://127.0.0.1:9/");

        // Update (PUT, as 1.4 sends it) to another version: a new revision.
        let body = json!({"bento": "echo:v2", "access_authorization": false, "envs": [{"name": "GREETING", "value": "hey"}],
        "services": {"svc": {"scaling": {"min_replicas": 1, "max_replicas": 1}}}});
        let res = c
            .http
            .put(format!("{}/api/v2/deployments/svc", c.base))
            .header("X-YATAI-API-TOKEN", c.token.as_deref().unwrap())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let b: Value = res.json().await.unwrap();
        assert_eq!(b["latest_revision"]["targets"][0]["bento"]["name"], "v2");

        // A v1 client reads a v2 deployment in its own dialect.
        let (s, b) = c.get(&format!("{V1}/svc")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(
            b["latest_revision"]["targets"][0]["config"]["envs"][0]["key"],
            "GREETING"
        );

        // Unsupported calls get a clear 4xx.
        let (s, b) = c.get("/api/v2/deployments/svc/files").await;
        common::assert_error(s, &b, StatusCode::BAD_REQUEST);
        assert!(
            b["message"].as_str().unwrap().contains("not supported"),
            "{b}"
        );
        let body = json!({"bento": "echo:v1", "secrets": ["s"], "services": {}});
        let (s, b) = c.post("/api/v2/deployments", body).await;
        common::assert_error(s, &b, StatusCode::BAD_REQUEST);
        assert_eq!(b["field"], "secrets");

        // Terminate, then delete.
        let (s, b) = c.post("/api/v2/deployments/svc/terminate", json!({})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        reconcile_once(&app.state).await.unwrap();
        let (s, b) = c.delete("/api/v2/deployments/svc", None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(app.count_rows("deployments").await, 0);
    }
);

backend_test!(
    bad_input_and_missing_rights_create_nothing,
    |app: TestApp| async move {
        install(&app);
        let c = deployer(&app).await;
        push_bento(&c, "echo", "v1").await;
        create_version(
            &c,
            "bento",
            "echo",
            "pending",
            bento_manifest(&[]),
            json!([]),
        )
        .await;
        let path = "/api/v1/clusters/default/deployments";

        // A bento that is not uploaded, or does not exist.
        let (s, b) = c.post(path, v1_create("a", "pending", "x")).await;
        common::assert_error(s, &b, StatusCode::CONFLICT);
        assert!(
            b["message"].as_str().unwrap().contains("not been uploaded"),
            "{b}"
        );
        let (s, b) = c.post(path, v1_create("a", "nope", "x")).await;
        common::assert_error(s, &b, StatusCode::NOT_FOUND);
        assert!(
            b["message"].as_str().unwrap().contains("push it first"),
            "{b}"
        );
        // Names that are not DNS-1123 labels.
        for bad in ["Bad_Name", "-a", &"a".repeat(64)] {
            let (s, b) = c.post(path, v1_create(bad, "v1", "x")).await;
            common::assert_error(s, &b, StatusCode::BAD_REQUEST);
            assert!(b["message"].as_str().unwrap().contains("DNS-1123"), "{b}");
            assert_eq!(b["field"], "name");
        }
        let mut bad_ns = v1_create("a", "v1", "x");
        bad_ns["kube_namespace"] = json!("Not OK");
        let (s, b) = c.post(path, bad_ns).await;
        common::assert_error(s, &b, StatusCode::BAD_REQUEST);
        // A bad replica count names its field.
        let mut bad = v1_create("a", "v1", "x");
        bad["targets"][0]["config"]["hpa_conf"] = json!({"min_replicas": 5, "max_replicas": 1});
        let (s, b) = c.post(path, bad).await;
        common::assert_error(s, &b, StatusCode::BAD_REQUEST);
        assert_eq!(b["field"], "config.hpa_conf.min_replicas");
        // An unknown cluster.
        let (s, b) = c
            .post(
                "/api/v1/clusters/nope/deployments",
                v1_create("a", "v1", "x"),
            )
            .await;
        common::assert_error(s, &b, StatusCode::NOT_FOUND);

        // A token without the cluster scopes may neither deploy nor read deployments.
        let admin = app.browser();
        admin.login("admin", common::ADMIN_PASSWORD).await;
        let (_, token) = admin.create_token("registry-only", &["api"]).await;
        let registry_only = app.with_token(&token);
        let (s, b) = registry_only.post(path, v1_create("a", "v1", "x")).await;
        common::assert_error(s, &b, StatusCode::FORBIDDEN);
        assert!(
            b["message"].as_str().unwrap().contains("write_cluster"),
            "{b}"
        );
        let (s, b) = registry_only.get(path).await;
        common::assert_error(s, &b, StatusCode::FORBIDDEN);
        // A read-only token may read but not deploy.
        let (_, token) = admin.create_token("reader", &["read_cluster"]).await;
        let reader = app.with_token(&token);
        let (s, _) = reader.get(path).await;
        assert_eq!(s, StatusCode::OK);
        let (s, b) = reader.post(path, v1_create("a", "v1", "x")).await;
        common::assert_error(s, &b, StatusCode::FORBIDDEN);
        assert_eq!(
            app.count_rows("deployments").await,
            0,
            "nothing was created"
        );
        assert_eq!(app.count_rows("deployment_revisions").await, 0);

        // Clusters: a kubernetes cluster with a kubeconfig that is not one is refused; a good one
        // is registered, and its kubeconfig is never returned.
        let (s, b) = c
            .post(
                "/api/v1/clusters",
                json!({"name": "prod", "kube_config": "hello"}),
            )
            .await;
        common::assert_error(s, &b, StatusCode::BAD_REQUEST);
        assert_eq!(b["field"], "kube_config");
        let kubeconfig = "apiVersion: v1\nclusters:\n- name: c\n  cluster: {server: 'https://k8s:6443'}\nusers:\n- name: u\n  user: {token: SECRET-TOKEN}\n";
        let (s, b) = c
            .post(
                "/api/v1/clusters",
                json!({"name": "prod", "kube_config": kubeconfig}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["kind"], "kubernetes");
        assert!(!b.to_string().contains("SECRET-TOKEN"), "{b}");
        let (_, b) = c.get("/api/v1/clusters").await;
        assert_eq!(b["items"][0]["name"], "default", "default stays first");
        assert_eq!(b["items"][1]["name"], "prod");
        assert!(!b.to_string().contains("SECRET-TOKEN"));
        let (s, b) = c.post("/api/v1/clusters", json!({"name": "Prod!"})).await;
        common::assert_error(s, &b, StatusCode::BAD_REQUEST);
    }
);

backend_test!(
    desired_state_survives_a_restart,
    |app: TestApp| async move {
        install(&app);
        let c = deploy_echo(&app, "keep").await;
        let token = c.token.clone().unwrap();
        // A new process knows nothing but the database: its reconciler asks the runtime again.
        let app = app.restart().await;
        let runtimes = install(&app);
        reconcile_once(&app.state).await.unwrap();
        let want = runtimes.of("default").last();
        assert_eq!(want.name, "keep");
        assert!(want.running);
        assert_eq!(want.api_server.envs[0].1, "one");
        let c = app.with_token(&token);
        let (s, b) = c.get(&format!("{V1}/keep")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
);

backend_test!(
    only_a_site_admin_hands_out_the_servers_own_cluster,
    |app: TestApp| async move {
        install(&app);
        let site_admin = deployer(&app).await;
        // An organization admin who is not a site admin.
        let (s, b) = site_admin
        .post("/api/v1/users", json!({"name": "orgadmin", "email": "orgadmin@example.com", "password": "orgadmin-password-1", "role": "admin"}))
        .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let org_admin = app.browser();
        org_admin.login("orgadmin", "orgadmin-password-1").await;
        // No kubeconfig means the cluster the server runs in, reached with the server's own
        // service account: refused to an organization admin, with the way out.
        let (s, b) = org_admin
            .post(
                "/api/v1/clusters",
                json!({"name": "here", "kind": "kubernetes"}),
            )
            .await;
        common::assert_error(s, &b, StatusCode::FORBIDDEN);
        assert_eq!(b["field"], "kube_config");
        assert!(
            b["message"]
                .as_str()
                .unwrap()
                .contains("site administrator"),
            "{b}"
        );
        let kubeconfig =
            "apiVersion: v1\nclusters:\n- name: c\n  cluster: {server: 'https://k8s:6443'}\n";
        let (s, b) = org_admin
            .post(
                "/api/v1/clusters",
                json!({"name": "theirs", "kube_config": kubeconfig}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        // Nor may they empty the kubeconfig of a registered one.
        let (s, b) = org_admin
            .patch("/api/v1/clusters/theirs", json!({"kube_config": ""}))
            .await;
        common::assert_error(s, &b, StatusCode::FORBIDDEN);
        let (s, b) = site_admin
            .post(
                "/api/v1/clusters",
                json!({"name": "here", "kind": "kubernetes"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        // Access authorization would be a promise nothing keeps: refused.
        push_bento(&site_admin, "echo", "v1").await;
        let (s, b) = site_admin
        .post("/api/v2/deployments", json!({"name": "open", "bento": "echo:v1", "access_authorization": true, "services": {}}))
        .await;
        common::assert_error(s, &b, StatusCode::BAD_REQUEST);
        assert_eq!(b["field"], "access_authorization");
        assert_eq!(app.count_rows("deployments").await, 0);
    }
);

// Two revisions of one deployment added at once (an update beside a rollback, or two rollbacks):
// the second waits for the first and is numbered after it. On PostgreSQL both read the same last
// number (the second was refused as a duplicate), and an update and a rollback could deadlock.
backend_test!(
    revisions_added_at_once_take_turns_and_numbers,
    |app: TestApp| async move {
        use yatai_domain::Error;
        use yatai_store::db::{db_error, deployments as rows};
        install(&app);
        deploy_echo(&app, "hello").await;
        let (uid, creator): (String, String) =
            sqlx::query_as("SELECT uid, creator_uid FROM deployments WHERE name = 'hello'")
                .fetch_one(app.state.db.pool())
                .await
                .unwrap();
        let db = app.state.db.clone();
        let mut first = db.begin().await.unwrap();
        let (one, _) = rows::add_revision(&mut first, &uid, &creator, "", &[])
            .await
            .unwrap();
        let second = common::waits_for(first, async move {
            let mut tx = db.begin().await?;
            let (two, _) = rows::add_revision(&mut tx, &uid, &creator, "", &[]).await?;
            tx.commit().await.map_err(db_error)?;
            Ok::<_, Error>(two)
        })
        .await;
        assert_eq!(second.unwrap().number, one.number + 1);
    }
);
