//! The controller against a FAKE Kubernetes API (tests/support/fake_api.rs): create, minimal updates, pruning,
//! waiting for a Bento, back-off on API errors, and bad input.

mod support;

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use kube::runtime::controller::Action;
use serde_json::{json, Value};
use support::fake_api::FakeApiServer;
use yatai_crds::BentoDeployment;
use yatai_deployment_operator::config::{Config, IngressConfig};
use yatai_deployment_operator::controller::{self, Context};

const NS: &str = "prod";

fn config() -> Config {
    Config {
        ingress: IngressConfig {
            domain_suffix: Some("apps.example.com".into()),
            ..IngressConfig::default()
        },
        ..Config::default()
    }
}

fn bento(name: &str, runners: &[&str]) -> Value {
    json!({
        "apiVersion": "resources.yatai.ai/v1alpha1", "kind": "Bento",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "tag": format!("{name}:v1"), "image": format!("registry.example.com/{name}:v1"),
            "runners": runners.iter().map(|r| json!({"name": r})).collect::<Vec<_>>(),
        },
    })
}

fn bento_deployment(spec: Value) -> Value {
    json!({
        "apiVersion": "serving.yatai.ai/v2alpha1", "kind": "BentoDeployment",
        "metadata": {"name": "svc", "namespace": NS, "uid": "bd-uid-1", "generation": 1},
        "spec": spec,
    })
}

/// Seeds the BentoDeployment and runs one reconcile of what the fake API now holds.
async fn reconcile(fake: &FakeApiServer, ctx: &Arc<Context>) -> Result<Action, controller::Error> {
    let bd: BentoDeployment = serde_json::from_value(
        fake.get("serving.yatai.ai/v2alpha1", "BentoDeployment", NS, "svc")
            .unwrap(),
    )
    .unwrap();
    controller::reconcile(Arc::new(bd), ctx.clone()).await
}

fn applies(fake: &FakeApiServer) -> Vec<String> {
    fake.log()
        .into_iter()
        .filter(|r| r.is_apply())
        .map(|r| r.path)
        .collect()
}

fn deletes(fake: &FakeApiServer) -> Vec<String> {
    fake.log()
        .into_iter()
        .filter(|r| r.method == Method::DELETE)
        .map(|r| r.path)
        .collect()
}

fn condition<'a>(bd: &'a Value, type_: &str) -> &'a Value {
    bd["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

fn status_of(fake: &FakeApiServer) -> Value {
    fake.get("serving.yatai.ai/v2alpha1", "BentoDeployment", NS, "svc")
        .unwrap()
}

#[tokio::test]
async fn fake_api_create_applies_every_object_and_reports_conditions() {
    let (client, fake) = FakeApiServer::start();
    fake.seed(bento("iris", &["clf"]));
    fake.seed(bento_deployment(
        json!({"bento": "iris", "ingress": {"enabled": true}}),
    ));
    let ctx = Context::new(client, config());
    reconcile(&fake, &ctx).await.unwrap();

    assert_eq!(
        fake.names("apps/v1", "Deployment", NS),
        ["svc", "svc-runner-0"]
    );
    assert_eq!(
        fake.names("autoscaling/v2", "HorizontalPodAutoscaler", NS),
        ["svc", "svc-runner-0"]
    );
    assert_eq!(fake.names("v1", "Service", NS).len(), 2);
    assert_eq!(fake.names("networking.k8s.io/v1", "Ingress", NS), ["svc"]);
    assert_eq!(fake.names("v1", "ConfigMap", NS), ["svc-envoy-config"]);
    assert_eq!(applies(&fake).len(), 8, "{:#?}", applies(&fake));
    let deployment = fake.get("apps/v1", "Deployment", NS, "svc").unwrap();
    assert_eq!(
        deployment["metadata"]["ownerReferences"][0]["uid"],
        "bd-uid-1"
    );
    assert_eq!(
        deployment["metadata"]["managedFields"][0]["manager"],
        controller::FIELD_MANAGER
    );

    let bd = status_of(&fake);
    assert_eq!(condition(&bd, "BentoFound")["status"], "True");
    // No pods in a fake API: the Deployments never report Available.
    assert_eq!(condition(&bd, "Available")["status"], "False");
    assert!(condition(&bd, "Available")["message"]
        .as_str()
        .unwrap()
        .contains("svc-runner-0"));
    assert_eq!(condition(&bd, "Progressing")["status"], "True");
    assert_eq!(bd["status"]["podSelector"]["yatai.ai/selector"], "svc");
}

#[tokio::test]
async fn fake_api_update_patches_only_the_changed_objects() {
    let (client, fake) = FakeApiServer::start();
    fake.seed(bento("iris", &["clf"]));
    fake.seed(bento_deployment(json!({"bento": "iris"})));
    let ctx = Context::new(client, config());
    reconcile(&fake, &ctx).await.unwrap();
    let template_before = fake
        .get("apps/v1", "Deployment", NS, "svc-runner-0")
        .unwrap()["spec"]["template"]
        .clone();

    // Unchanged: nothing is applied (no rollout).
    fake.clear_log();
    reconcile(&fake, &ctx).await.unwrap();
    assert_eq!(applies(&fake), Vec::<String>::new());

    // One env of the API server changes: only its Deployment is patched.
    let mut bd = status_of(&fake);
    bd["spec"]["envs"] = json!([{"name": "MODE", "value": "fast"}]);
    fake.seed(bd);
    fake.clear_log();
    reconcile(&fake, &ctx).await.unwrap();
    assert_eq!(
        applies(&fake),
        ["/apis/apps/v1/namespaces/prod/deployments/svc"]
    );
    let envs = fake.get("apps/v1", "Deployment", NS, "svc").unwrap()["spec"]["template"]["spec"]
        ["containers"][0]["env"]
        .clone();
    assert!(
        envs.as_array()
            .unwrap()
            .contains(&json!({"name": "MODE", "value": "fast"})),
        "{envs}"
    );
    assert_eq!(
        fake.get("apps/v1", "Deployment", NS, "svc-runner-0")
            .unwrap()["spec"]["template"],
        template_before
    );
}

#[tokio::test]
async fn fake_api_runner_removed_and_ingress_disabled_delete_their_objects() {
    let (client, fake) = FakeApiServer::start();
    fake.seed(bento("iris", &["clf", "features"]));
    fake.seed(bento_deployment(
        json!({"bento": "iris", "ingress": {"enabled": true}}),
    ));
    let ctx = Context::new(client, config());
    reconcile(&fake, &ctx).await.unwrap();
    assert_eq!(fake.names("apps/v1", "Deployment", NS).len(), 3);
    let services_before = fake.names("v1", "Service", NS);

    // The Bento now has one runner, and the Ingress is switched off.
    fake.seed(bento("iris", &["clf"]));
    let mut bd = status_of(&fake);
    bd["spec"]["ingress"]["enabled"] = json!(false);
    fake.seed(bd);
    fake.clear_log();
    reconcile(&fake, &ctx).await.unwrap();

    assert_eq!(
        fake.names("apps/v1", "Deployment", NS),
        ["svc", "svc-runner-0"]
    );
    assert_eq!(
        fake.names("autoscaling/v2", "HorizontalPodAutoscaler", NS),
        ["svc", "svc-runner-0"]
    );
    assert_eq!(
        fake.names("networking.k8s.io/v1", "Ingress", NS),
        Vec::<String>::new()
    );
    let services_after = fake.names("v1", "Service", NS);
    assert_eq!(services_after.len(), 2);
    assert!(services_after.iter().all(|s| services_before.contains(s)));
    let deleted = deletes(&fake);
    assert_eq!(
        deleted.len(),
        4,
        "Deployment, HPA and Service of the runner, and the Ingress: {deleted:#?}"
    );
    // The API server's runner map lost the runner: its Deployment is re-applied, nothing else.
    assert_eq!(
        applies(&fake),
        ["/apis/apps/v1/namespaces/prod/deployments/svc"]
    );
}

#[tokio::test]
async fn fake_api_missing_bento_waits_with_a_condition_that_says_so() {
    let (client, fake) = FakeApiServer::start();
    fake.seed(bento_deployment(json!({"bento": "not-built-yet"})));
    let ctx = Context::new(client, config());
    let action = reconcile(&fake, &ctx).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(60)));
    let bd = status_of(&fake);
    let found = condition(&bd, "BentoFound");
    assert_eq!(found["status"], "False");
    assert_eq!(found["reason"], "BentoNotFound");
    assert!(
        found["message"]
            .as_str()
            .unwrap()
            .contains("Bento not-built-yet not found in namespace prod"),
        "{found}"
    );
    assert_eq!(applies(&fake), Vec::<String>::new());

    // With a BentoRequest of that name, the condition says the image is being built.
    fake.seed(json!({
        "apiVersion": "resources.yatai.ai/v1alpha1", "kind": "BentoRequest",
        "metadata": {"name": "not-built-yet", "namespace": NS},
        "spec": {"bentoTag": "iris:v2"},
    }));
    reconcile(&fake, &ctx).await.unwrap();
    let bd = status_of(&fake);
    assert_eq!(
        condition(&bd, "BentoFound")["reason"],
        "BentoRequestPending"
    );
    assert!(condition(&bd, "BentoFound")["message"]
        .as_str()
        .unwrap()
        .contains("iris:v2"));

    // Once the Bento exists, the objects are created.
    fake.seed(bento("not-built-yet", &[]));
    reconcile(&fake, &ctx).await.unwrap();
    assert_eq!(fake.names("apps/v1", "Deployment", NS), ["svc"]);
    assert_eq!(condition(&status_of(&fake), "BentoFound")["status"], "True");
}

#[tokio::test]
async fn fake_api_conflict_and_server_error_back_off_without_a_hot_loop() {
    for code in [409u16, 500] {
        let (client, fake) = FakeApiServer::start();
        fake.seed(bento("iris", &[]));
        fake.seed(bento_deployment(json!({"bento": "iris"})));
        let ctx = Context::new(client, config());
        fake.fail(Method::PATCH, "/deployments/svc", code, 3);
        let bd: Arc<BentoDeployment> = Arc::new(serde_json::from_value(status_of(&fake)).unwrap());
        let mut delays = Vec::new();
        for _ in 0..3 {
            fake.clear_log();
            let error = controller::reconcile(bd.clone(), ctx.clone())
                .await
                .unwrap_err();
            // One failed request ends the reconcile: no retry loop inside it.
            let patches = fake
                .log()
                .iter()
                .filter(|r| r.method == Method::PATCH && r.path.ends_with("/deployments/svc"))
                .count();
            assert_eq!(patches, 1, "{code}: {error}");
            delays.push(controller::error_policy(bd.clone(), &error, ctx.clone()));
        }
        assert_eq!(
            delays,
            [5, 10, 20].map(|s| Action::requeue(Duration::from_secs(s))),
            "{code}: the delay doubles"
        );
        // The API recovers: the next reconcile succeeds and the back-off starts over.
        controller::reconcile(bd.clone(), ctx.clone())
            .await
            .unwrap();
        let mut bd2 = status_of(&fake);
        bd2["spec"]["envs"] = json!([{"name": "X", "value": "1"}]);
        fake.seed(bd2);
        fake.fail(Method::PATCH, "/deployments/svc", code, 1);
        let error = reconcile(&fake, &ctx).await.unwrap_err();
        assert_eq!(
            controller::error_policy(bd.clone(), &error, ctx.clone()),
            Action::requeue(Duration::from_secs(5))
        );
    }
    assert_eq!(
        controller::backoff(30),
        Duration::from_secs(300),
        "capped at 5 minutes"
    );
}

async fn bad_input(spec: Value, runners: &[&str], expected: &str) {
    let (client, fake) = FakeApiServer::start();
    fake.seed(bento("iris", runners));
    fake.seed(bento_deployment(spec));
    let ctx = Context::new(client, config());
    let action = reconcile(&fake, &ctx).await.unwrap();
    assert_eq!(
        action,
        Action::await_change(),
        "waits for the user to fix it"
    );
    assert_eq!(
        applies(&fake),
        Vec::<String>::new(),
        "no object at all is applied"
    );
    let bd = status_of(&fake);
    let available = condition(&bd, "Available");
    assert_eq!(available["status"], "False");
    assert_eq!(available["reason"], "InvalidSpec");
    let message = available["message"].as_str().unwrap();
    assert!(
        message.contains(expected),
        "{message:?} should contain {expected:?}"
    );
}

#[tokio::test]
async fn fake_api_bad_input_gets_a_condition_and_no_objects() {
    bad_input(
        json!({"bento": "iris", "autoscaling": {"minReplicas": -1, "maxReplicas": 3}}),
        &[],
        "spec.autoscaling.minReplicas: is -1: replicas cannot be negative",
    )
    .await;
    bad_input(
        json!({"bento": "iris", "autoscaling": {"minReplicas": 5, "maxReplicas": 2}}),
        &[],
        "spec.autoscaling: minReplicas (5) is greater than maxReplicas (2)",
    )
    .await;
    bad_input(
        json!({"bento": "iris", "runners": [{"name": "clf"}, {"name": "typo"}]}),
        &["clf"],
        "spec.runners[1].name: the bento iris:v1 has no runner \"typo\" (its runners are clf)",
    )
    .await;
    bad_input(
        json!({"bento": "iris", "resources": {"limits": {"memory": "1Gb"}}}),
        &[],
        "spec.resources.limits.memory: \"1Gb\" is not a valid quantity",
    )
    .await;
    bad_input(
        json!({"bento": "iris", "runners": [{"name": "clf", "autoscaling": {"minReplicas": 1, "maxReplicas": -4}}]}),
        &["clf"],
        "spec.runners[0].autoscaling.maxReplicas: is -4",
    )
    .await;
}

#[tokio::test]
async fn fake_api_reconciles_are_counted_timed_and_their_errors_labelled() {
    let (client, fake) = FakeApiServer::start();
    fake.seed(bento("iris", &[]));
    fake.seed(bento_deployment(json!({"bento": "iris"})));
    let ctx = Context::new(client, config());
    reconcile(&fake, &ctx).await.unwrap();
    fake.fail(Method::GET, "/bentoes/iris", 500, 1);
    reconcile(&fake, &ctx).await.unwrap_err();
    let text = yatai_deployment_operator::metrics::handle().render();
    for line in [
        "yatai_deployment_operator_reconciles_total{result=\"ok\"}",
        "yatai_deployment_operator_reconciles_total{result=\"error\"}",
        "yatai_deployment_operator_reconcile_errors_total{kind=\"server_error\"}",
        "yatai_deployment_operator_reconcile_duration_seconds_count",
        "yatai_deployment_operator_objects_applied_total{kind=\"Deployment\"}",
    ] {
        assert!(text.contains(line), "{line} missing from /metrics:\n{text}");
    }
}

/// The Kubernetes Events posted to the fake API about the BentoDeployment, as (type, reason, note).
fn events(fake: &FakeApiServer) -> Vec<(String, String, String)> {
    fake.list("events.k8s.io/v1", "Event", NS)
        .iter()
        .map(|e| {
            assert_eq!(e["regarding"]["kind"], "BentoDeployment", "{e}");
            assert_eq!(e["regarding"]["name"], "svc", "{e}");
            assert_eq!(e["reportingController"], controller::FIELD_MANAGER, "{e}");
            (
                e["type"].as_str().unwrap_or_default().to_string(),
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["note"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Requests that wrote events (a new one is a POST, a repeated one a PATCH of its series).
fn event_writes(fake: &FakeApiServer) -> usize {
    fake.log()
        .iter()
        .filter(|r| r.path.contains("/events"))
        .count()
}

#[tokio::test]
async fn fake_api_events_applied_once_and_none_on_a_no_op_reconcile() {
    let (client, fake) = FakeApiServer::start();
    fake.seed(bento("iris", &["clf"]));
    fake.seed(bento_deployment(json!({"bento": "iris"})));
    let ctx = Context::new(client, config());
    reconcile(&fake, &ctx).await.unwrap();
    let posted = events(&fake);
    assert_eq!(posted.len(), 1, "{posted:#?}");
    let (type_, reason, note) = &posted[0];
    assert_eq!((type_.as_str(), reason.as_str()), ("Normal", "Applied"));
    for what in [
        "Deployment svc",
        "Deployment svc-runner-0",
        "Service svc",
        "HorizontalPodAutoscaler svc",
    ] {
        assert!(note.contains(what), "{note:?} should name {what}");
    }

    // Unchanged: no event at all.
    fake.clear_log();
    reconcile(&fake, &ctx).await.unwrap();
    assert_eq!(applies(&fake), Vec::<String>::new());
    assert_eq!(event_writes(&fake), 0, "{:#?}", fake.log());

    // One env changes: an event names the one object applied.
    let mut bd = status_of(&fake);
    bd["spec"]["envs"] = json!([{"name": "MODE", "value": "fast"}]);
    fake.seed(bd);
    fake.clear_log();
    reconcile(&fake, &ctx).await.unwrap();
    assert_eq!(event_writes(&fake), 1);
    let posted = events(&fake);
    assert_eq!(posted.len(), 2, "{posted:#?}");
    assert!(
        posted
            .iter()
            .any(|(t, r, n)| t == "Normal" && r == "Applied" && n == "applied Deployment svc"),
        "{posted:#?}"
    );
}

#[tokio::test]
async fn fake_api_events_warn_about_a_missing_bento_and_an_invalid_spec_with_the_condition_message()
{
    let (client, fake) = FakeApiServer::start();
    fake.seed(bento_deployment(
        json!({"bento": "iris", "autoscaling": {"minReplicas": 5, "maxReplicas": 2}}),
    ));
    let ctx = Context::new(client, config());
    reconcile(&fake, &ctx).await.unwrap();
    let message = condition(&status_of(&fake), "BentoFound")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        events(&fake),
        [("Warning".to_string(), "BentoNotFound".to_string(), message)]
    );
    // Still missing: the condition is the same, no new event.
    fake.clear_log();
    reconcile(&fake, &ctx).await.unwrap();
    assert_eq!(event_writes(&fake), 0, "{:#?}", fake.log());

    // The Bento appears, but the spec cannot be served.
    fake.seed(bento("iris", &[]));
    reconcile(&fake, &ctx).await.unwrap();
    let message = condition(&status_of(&fake), "Available")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("minReplicas (5) is greater than maxReplicas (2)"),
        "{message}"
    );
    let posted = events(&fake);
    assert!(
        posted.contains(&("Warning".to_string(), "InvalidSpec".to_string(), message)),
        "{posted:#?}"
    );
    assert_eq!(posted.len(), 2);
    fake.clear_log();
    reconcile(&fake, &ctx).await.unwrap();
    assert_eq!(event_writes(&fake), 0, "no event while nothing changes");
}

#[tokio::test]
async fn fake_api_events_warn_about_a_failed_reconcile() {
    let (client, fake) = FakeApiServer::start();
    fake.seed(bento("iris", &[]));
    fake.seed(bento_deployment(json!({"bento": "iris"})));
    let ctx = Context::new(client, config());
    fake.fail(Method::PATCH, "/deployments/svc", 500, 1);
    let error = reconcile(&fake, &ctx).await.unwrap_err();
    let posted = events(&fake);
    assert_eq!(
        posted,
        [(
            "Warning".to_string(),
            "ReconcileFailed".to_string(),
            error.to_string()
        )]
    );
    assert!(error.to_string().contains("etcdserver"), "{error}");
}
