//! The runtime against a FAKE Kubernetes API (tests/support/fake_api.rs, a stateful tower-test mock: no real API
//! server runs here): the objects a deployment is written as (applied bodies snapshotted and validated offline
//! against our CRD schemas), statuses from their conditions, new revisions, terminate, remove, known, and what
//! errors of the API become.

mod support;

use std::collections::BTreeMap;

use http::Method;
use serde_json::{json, Value};
use support::fake_api::FakeApiServer;
use yatai_domain::deployments::{
    ClusterRuntime, ComponentSpec, DeploymentStatus, Desired, ResourceItem, Resources,
};
use yatai_runtime_kubernetes::{KubernetesRuntime, RuntimeOptions};

const NS: &str = "prod";
const BR: &str = "resources.yatai.ai/v1alpha1";
const BD: &str = "serving.yatai.ai/v2alpha1";
/// The BentoRequest (and Bento) name of iris_classifier:abc1, as Yatai 1.x named it.
const BR_NAME: &str = "iris-classifier--abc-1";

fn desired() -> Desired {
    Desired {
        uid: "d-uid-1".into(),
        organization: "acme".into(),
        cluster: "c1".into(),
        namespace: NS.into(),
        name: "svc".into(),
        revision_uid: "rev-1".into(),
        bento_repository: "iris_classifier".into(),
        bento_version: "abc1".into(),
        running: true,
        api_server: ComponentSpec {
            min_replicas: 1,
            max_replicas: 3,
            envs: vec![("MODE".into(), "prod".into())],
            resources: Resources {
                requests: Some(ResourceItem {
                    cpu: Some("500m".into()),
                    memory: Some("1Gi".into()),
                    gpu: None,
                }),
                limits: Some(ResourceItem {
                    cpu: Some("1".into()),
                    memory: Some("2Gi".into()),
                    gpu: Some("1".into()),
                }),
            },
        },
        runners: BTreeMap::from([(
            "iris_clf".to_string(),
            ComponentSpec {
                min_replicas: 2,
                max_replicas: 4,
                envs: vec![("THREADS".into(), "4".into())],
                resources: Resources::default(),
            },
        )]),
        config: json!({
            "enable_ingress": true,
            "deployment_strategy": "RollingUpdate",
            "bento_deployment_overrides": {
                "extraPodMetadata": {"labels": {"team": "ml"}, "annotations": {"a": "b"}},
                "extraPodSpec": {"nodeSelector": {"pool": "gpu"}, "serviceAccountName": "bento-sa"},
            },
            "runners": {"iris_clf": {"bento_deployment_overrides": {"extraPodSpec": {"nodeSelector": {"pool": "cpu"}}}}},
            "bento_request_overrides": {"dockerConfigJsonSecretName": "regcred", "imageBuildTimeout": 3600000000000i64},
        }),
    }
}

fn runtime() -> (KubernetesRuntime, FakeApiServer) {
    let (client, fake) = FakeApiServer::start();
    (
        KubernetesRuntime::new(client, RuntimeOptions::for_cluster("c1")),
        fake,
    )
}

fn applies(fake: &FakeApiServer) -> Vec<String> {
    fake.log()
        .into_iter()
        .filter(|r| r.is_apply())
        .map(|r| r.path)
        .collect()
}

fn deletes(fake: &FakeApiServer) -> Vec<String> {
    fake.requests(Method::DELETE)
        .into_iter()
        .map(|r| r.path)
        .collect()
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, generation: i64) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": generation})
}

/// Sets conditions on a stored object, as the image builder or the operator would.
fn set_conditions(
    fake: &FakeApiServer,
    api_version: &str,
    kind: &str,
    name: &str,
    conditions: Vec<Value>,
) {
    fake.edit(api_version, kind, NS, name, |o| {
        o["status"] = json!({"conditions": conditions});
    });
}

/// The generation of the stored BentoDeployment.
fn generation(fake: &FakeApiServer) -> i64 {
    fake.get(BD, "BentoDeployment", NS, "svc").unwrap()["metadata"]["generation"]
        .as_i64()
        .unwrap()
}

/// The openAPIV3Schema of one served version of our generated CRDs.
fn crd_schema(kind: &str, version: &str) -> Value {
    let crd = yatai_crds::all_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    let v = crd
        .spec
        .versions
        .into_iter()
        .find(|v| v.name == version)
        .unwrap();
    assert!(v.served, "{kind} {version} is served");
    serde_json::to_value(v.schema.unwrap().open_api_v3_schema.unwrap()).unwrap()
}

fn schema_errors(kind: &str, version: &str, body: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(&crd_schema(kind, version)).unwrap();
    validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[tokio::test]
async fn fake_api_create_applies_the_bento_request_and_the_bento_deployment() {
    let (rt, fake) = runtime();
    let observed = rt.reconcile(&desired()).await;

    // Exactly the two objects, with server-side apply as field manager `yatai`, forced.
    assert_eq!(
        applies(&fake),
        [
            format!("/apis/{BR}/namespaces/{NS}/bentorequests/{BR_NAME}"),
            format!("/apis/{BD}/namespaces/{NS}/bentodeployments/svc"),
        ]
    );
    for r in fake.log().into_iter().filter(|r| r.is_apply()) {
        assert!(r.query.contains("fieldManager=yatai"), "{}", r.query);
        assert!(r.query.contains("force=true"), "{}", r.query);
    }
    let br = fake.applied(&format!("/bentorequests/{BR_NAME}")).remove(0);
    let bd = fake.applied("/bentodeployments/svc").remove(0);
    insta::assert_yaml_snapshot!("bento_request", br);
    insta::assert_yaml_snapshot!("bento_deployment", bd);

    // What the image builder and the operator read.
    assert_eq!(br["spec"]["bentoTag"], "iris_classifier:abc1");
    assert_eq!(br["spec"]["runners"], json!([{"name": "iris_clf"}]));
    assert_eq!(bd["apiVersion"], BD);
    assert_eq!(bd["spec"]["bento"], BR_NAME);
    assert_eq!(
        bd["spec"]["autoscaling"],
        json!({"minReplicas": 1, "maxReplicas": 3})
    );
    assert_eq!(
        bd["spec"]["envs"],
        json!([{"name": "MODE", "value": "prod"}])
    );
    assert_eq!(bd["spec"]["ingress"], json!({"enabled": true}));
    assert_eq!(
        bd["spec"]["extraPodSpec"]["nodeSelector"],
        json!({"pool": "gpu"})
    );
    assert_eq!(
        bd["spec"]["runners"][0]["extraPodSpec"]["nodeSelector"],
        json!({"pool": "cpu"})
    );
    for body in [&br, &bd] {
        let labels = &body["metadata"]["labels"];
        assert_eq!(labels["yatai.ai/deployment-uid"], "d-uid-1");
        assert_eq!(labels["yatai.ai/organization"], "acme");
        assert_eq!(labels["yatai.ai/cluster"], "c1");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "yatai");
    }

    // Nothing has looked at them yet: the image is awaited.
    assert_eq!(
        observed.status,
        DeploymentStatus::ImageBuilding,
        "{observed:?}"
    );
    assert!(
        observed.reason.contains("yatai image-builder"),
        "{observed:?}"
    );
    // Ingress wanted but not there yet: the Service's URL.
    assert_eq!(
        observed.url.as_deref(),
        Some("http://svc.prod.svc.cluster.local:3000")
    );

    // Idempotent: a reconcile of the unchanged deployment reads and writes nothing.
    fake.clear_log();
    let again = rt.reconcile(&desired()).await;
    assert_eq!(again, observed);
    assert!(applies(&fake).is_empty(), "{:?}", fake.log());
    assert!(fake.requests(Method::DELETE).is_empty());
}

#[tokio::test]
async fn fake_api_applied_bodies_validate_against_the_crd_schemas() {
    let (rt, fake) = runtime();
    let mut minimal = desired();
    minimal.runners.clear();
    minimal.config = Value::Null;
    minimal.name = "minimal".into();
    minimal.uid = "d-uid-2".into();
    rt.reconcile(&desired()).await;
    rt.reconcile(&minimal).await;
    let mut checked = 0;
    for r in fake.log().into_iter().filter(|r| r.is_apply()) {
        let (kind, version) = if r.path.contains("/bentorequests/") {
            ("BentoRequest", "v1alpha1")
        } else {
            ("BentoDeployment", "v2alpha1")
        };
        let errors = schema_errors(kind, version, &r.body);
        assert!(
            errors.is_empty(),
            "{} rejected by our {kind} CRD: {errors:?}",
            r.path
        );
        // And it reads back into the typed CRD without loss.
        let back = match kind {
            "BentoRequest" => serde_json::to_value(
                serde_json::from_value::<yatai_crds::BentoRequest>(r.body.clone()).unwrap(),
            ),
            _ => serde_json::to_value(
                serde_json::from_value::<yatai_crds::BentoDeployment>(r.body.clone()).unwrap(),
            ),
        }
        .unwrap();
        assert_eq!(back, r.body);
        checked += 1;
    }
    assert_eq!(checked, 3, "two BentoDeployments, one shared BentoRequest");
}

#[test]
fn the_schema_check_does_reject_a_wrong_type() {
    // Guards the test above: the schema is really applied.
    let bad = json!({"apiVersion": BD, "kind": "BentoDeployment", "metadata": {"name": "x"},
        "spec": {"bento": "b", "autoscaling": {"minReplicas": "two", "maxReplicas": 3}}});
    let errors = schema_errors("BentoDeployment", "v2alpha1", &bad);
    assert!(
        errors.iter().any(|e| e.contains("minReplicas")),
        "{errors:?}"
    );
    let missing =
        json!({"apiVersion": BR, "kind": "BentoRequest", "metadata": {"name": "x"}, "spec": {}});
    assert!(!schema_errors("BentoRequest", "v1alpha1", &missing).is_empty());
}

#[tokio::test]
async fn fake_api_conditions_map_to_the_deployment_status() {
    let (rt, fake) = runtime();
    rt.reconcile(&desired()).await;
    let g = generation(&fake);

    // The image builder is building.
    set_conditions(
        &fake,
        BR,
        "BentoRequest",
        BR_NAME,
        vec![
            condition(
                "ImageExists",
                "False",
                "ImageMissing",
                "reg/yatai-bentos:yatai.iris_classifier.abc1",
                1,
            ),
            condition(
                "ImageBuilding",
                "True",
                "Building",
                "building reg/yatai-bentos:yatai.iris_classifier.abc1",
                1,
            ),
        ],
    );
    set_conditions(
        &fake,
        BD,
        "BentoDeployment",
        "svc",
        vec![
            condition(
                "BentoFound",
                "False",
                "BentoRequestPending",
                "Waiting for Bento",
                g,
            ),
            condition(
                "Available",
                "False",
                "BentoRequestPending",
                "Waiting for Bento",
                g,
            ),
        ],
    );
    let o = rt.reconcile(&desired()).await;
    assert_eq!(o.status, DeploymentStatus::ImageBuilding);
    assert_eq!(
        o.reason,
        "building reg/yatai-bentos:yatai.iris_classifier.abc1"
    );

    // The build failed.
    set_conditions(
        &fake,
        BR,
        "BentoRequest",
        BR_NAME,
        vec![condition(
            "ImageBuilding",
            "False",
            "BuildFailed",
            "no wheel for torch==9 on linux/amd64",
            1,
        )],
    );
    let o = rt.reconcile(&desired()).await;
    assert_eq!(o.status, DeploymentStatus::ImageBuildFailed);
    assert_eq!(o.reason, "no wheel for torch==9 on linux/amd64");

    // Built; the operator rolls out, then everything is available.
    set_conditions(
        &fake,
        BR,
        "BentoRequest",
        BR_NAME,
        vec![
            condition("ImageBuilding", "False", "Built", "reg/x", 1),
            condition(
                "BentoAvailable",
                "True",
                "BentoCreated",
                "Bento serves reg/x",
                1,
            ),
        ],
    );
    set_conditions(
        &fake,
        BD,
        "BentoDeployment",
        "svc",
        vec![
            condition("BentoFound", "True", "BentoFound", "Bento found", g),
            condition(
                "Available",
                "False",
                "DeploymentsUnavailable",
                "Waiting for ready pods of: svc",
                g,
            ),
            condition(
                "Progressing",
                "True",
                "Reconciling",
                "applied Deployment svc",
                g,
            ),
        ],
    );
    let o = rt.reconcile(&desired()).await;
    assert_eq!(o.status, DeploymentStatus::Deploying);
    assert_eq!(o.reason, "Waiting for ready pods of: svc");

    set_conditions(
        &fake,
        BD,
        "BentoDeployment",
        "svc",
        vec![
            condition("BentoFound", "True", "BentoFound", "Bento found", g),
            condition("Available", "True", "DeploymentsAvailable", "ok", g),
            condition(
                "Progressing",
                "False",
                "UpToDate",
                "Every object matches",
                g,
            ),
        ],
    );
    // The operator made the Ingress: its host is the URL.
    fake.seed(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "svc", "namespace": NS},
        "spec": {"rules": [{"host": "svc-prod.apps.example.com"}], "tls": [{"hosts": ["svc-prod.apps.example.com"], "secretName": "svc"}]}}));
    let o = rt.reconcile(&desired()).await;
    assert_eq!(o.status, DeploymentStatus::Running, "{o:?}");
    assert_eq!(o.reason, "");
    assert_eq!(o.url.as_deref(), Some("https://svc-prod.apps.example.com"));

    // Pods gone while nothing is rolling out.
    set_conditions(
        &fake,
        BD,
        "BentoDeployment",
        "svc",
        vec![
            condition("BentoFound", "True", "BentoFound", "Bento found", g),
            condition(
                "Available",
                "False",
                "DeploymentsUnavailable",
                "Waiting for ready pods of: svc-runner-0",
                g,
            ),
            condition(
                "Progressing",
                "False",
                "UpToDate",
                "Every object matches",
                g,
            ),
        ],
    );
    let o = rt.reconcile(&desired()).await;
    assert_eq!(o.status, DeploymentStatus::Unhealthy);
    assert_eq!(o.reason, "Waiting for ready pods of: svc-runner-0");

    // The operator refuses the spec.
    set_conditions(
        &fake,
        BD,
        "BentoDeployment",
        "svc",
        vec![
            condition("BentoFound", "True", "BentoFound", "Bento found", g),
            condition(
                "Available",
                "False",
                "InvalidSpec",
                "Invalid BentoDeployment: runner x is not in the bento",
                g,
            ),
        ],
    );
    let o = rt.reconcile(&desired()).await;
    assert_eq!(o.status, DeploymentStatus::Failed);
    assert!(o.reason.contains("runner x is not in the bento"), "{o:?}");
    // Status reads never write.
    assert_eq!(applies(&fake).len(), 2);
}

#[tokio::test]
async fn fake_api_a_new_revision_reapplies_with_changed_envs_and_replicas() {
    let (rt, fake) = runtime();
    rt.reconcile(&desired()).await;
    let g = generation(&fake);
    set_conditions(
        &fake,
        BR,
        "BentoRequest",
        BR_NAME,
        vec![condition("BentoAvailable", "True", "BentoCreated", "ok", 1)],
    );
    set_conditions(
        &fake,
        BD,
        "BentoDeployment",
        "svc",
        vec![
            condition("BentoFound", "True", "BentoFound", "Bento found", g),
            condition("Available", "True", "DeploymentsAvailable", "ok", g),
            condition("Progressing", "False", "UpToDate", "ok", g),
        ],
    );
    assert_eq!(
        rt.reconcile(&desired()).await.status,
        DeploymentStatus::Running
    );
    fake.clear_log();

    let mut next = desired();
    next.revision_uid = "rev-2".into();
    next.api_server.envs = vec![
        ("MODE".into(), "canary".into()),
        ("DEBUG".into(), "1".into()),
    ];
    next.api_server.min_replicas = 2;
    next.api_server.max_replicas = 5;
    let o = rt.reconcile(&next).await;

    // Only the BentoDeployment changed; the bento did not, so its BentoRequest is not touched.
    assert_eq!(
        applies(&fake),
        [format!("/apis/{BD}/namespaces/{NS}/bentodeployments/svc")]
    );
    let bd = fake.applied("/bentodeployments/svc").remove(0);
    assert_eq!(
        bd["spec"]["envs"],
        json!([{"name": "MODE", "value": "canary"}, {"name": "DEBUG", "value": "1"}])
    );
    assert_eq!(
        bd["spec"]["autoscaling"],
        json!({"minReplicas": 2, "maxReplicas": 5})
    );
    assert_eq!(
        bd["metadata"]["annotations"]["yatai.ai/revision-uid"],
        "rev-2"
    );
    // The operator has not seen the new generation: its conditions say nothing about it.
    assert!(generation(&fake) > g);
    assert_eq!(o.status, DeploymentStatus::Deploying, "{o:?}");
    assert!(o.reason.contains("yatai deployment-operator"), "{o:?}");

    // A new bento version: a new BentoRequest, the BentoDeployment points at it.
    fake.clear_log();
    let mut v2 = next.clone();
    v2.bento_version = "def2".into();
    let o = rt.reconcile(&v2).await;
    assert_eq!(
        applies(&fake),
        [
            format!("/apis/{BR}/namespaces/{NS}/bentorequests/iris-classifier--def-2"),
            format!("/apis/{BD}/namespaces/{NS}/bentodeployments/svc"),
        ]
    );
    assert_eq!(
        fake.applied("/bentodeployments/svc")[0]["spec"]["bento"],
        "iris-classifier--def-2"
    );
    assert_eq!(o.status, DeploymentStatus::ImageBuilding, "{o:?}");
}

#[tokio::test]
async fn fake_api_terminate_deletes_the_bento_deployment_and_reports_terminating_then_terminated() {
    let (rt, fake) = runtime();
    rt.reconcile(&desired()).await;
    fake.clear_log();
    let mut stop = desired();
    stop.running = false;

    let o = rt.reconcile(&stop).await;
    assert_eq!(o.status, DeploymentStatus::Terminating, "{o:?}");
    assert_eq!(
        deletes(&fake),
        [format!("/apis/{BD}/namespaces/{NS}/bentodeployments/svc")]
    );
    assert!(applies(&fake).is_empty());
    // The BentoRequest (and so the Bento and its image) stays for a fast restart.
    assert!(fake.get(BR, "BentoRequest", NS, BR_NAME).is_some());

    fake.clear_log();
    let o = rt.reconcile(&stop).await;
    assert_eq!(o.status, DeploymentStatus::Terminated, "{o:?}");
    assert!(deletes(&fake).is_empty());

    // Starting again writes the BentoDeployment back.
    let o = rt.reconcile(&desired()).await;
    assert!(fake.get(BD, "BentoDeployment", NS, "svc").is_some());
    assert_eq!(o.status, DeploymentStatus::ImageBuilding);
}

#[tokio::test]
async fn fake_api_terminate_while_kubernetes_finalizes_stays_terminating() {
    let (rt, fake) = runtime();
    rt.reconcile(&desired()).await;
    fake.edit(BD, "BentoDeployment", NS, "svc", |o| {
        o["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    });
    fake.clear_log();
    let mut stop = desired();
    stop.running = false;
    let o = rt.reconcile(&stop).await;
    assert_eq!(o.status, DeploymentStatus::Terminating);
    assert!(
        deletes(&fake).is_empty(),
        "no second delete while one is under way"
    );
}

#[tokio::test]
async fn fake_api_remove_deletes_both_objects() {
    let (rt, fake) = runtime();
    rt.reconcile(&desired()).await;
    fake.clear_log();
    rt.remove("d-uid-1").await.unwrap();
    assert_eq!(
        deletes(&fake),
        [
            format!("/apis/{BD}/namespaces/{NS}/bentodeployments/svc"),
            format!("/apis/{BR}/namespaces/{NS}/bentorequests/{BR_NAME}"),
        ]
    );
    assert!(fake.names(BD, "BentoDeployment", NS).is_empty());
    assert!(fake.names(BR, "BentoRequest", NS).is_empty());
    // Idempotent.
    rt.remove("d-uid-1").await.unwrap();
    assert_eq!(rt.known().await, Vec::<String>::new());
}

#[tokio::test]
async fn fake_api_remove_of_a_terminated_deployment_deletes_its_bento_request() {
    let (rt, fake) = runtime();
    rt.reconcile(&desired()).await;
    let mut stop = desired();
    stop.running = false;
    rt.reconcile(&stop).await;
    assert_eq!(
        rt.known().await,
        ["d-uid-1"],
        "a terminated deployment is still known"
    );
    rt.remove("d-uid-1").await.unwrap();
    assert!(fake.names(BR, "BentoRequest", NS).is_empty());
}

#[tokio::test]
async fn fake_api_remove_keeps_a_bento_request_another_deployment_uses() {
    let (rt, fake) = runtime();
    let mut other = desired();
    other.uid = "d-uid-2".into();
    other.name = "svc2".into();
    rt.reconcile(&desired()).await;
    rt.reconcile(&other).await;
    // One BentoRequest for the one bento; the second deployment does not take it over.
    assert_eq!(fake.applied(&format!("/bentorequests/{BR_NAME}")).len(), 1);
    assert_eq!(rt.known().await, ["d-uid-1", "d-uid-2"]);

    rt.remove("d-uid-1").await.unwrap();
    assert_eq!(fake.names(BD, "BentoDeployment", NS), ["svc2"]);
    assert_eq!(fake.names(BR, "BentoRequest", NS), [BR_NAME]);
    rt.remove("d-uid-2").await.unwrap();
    assert!(fake.names(BR, "BentoRequest", NS).is_empty());
}

#[tokio::test]
async fn fake_api_known_lists_the_uids_of_this_cluster_in_every_namespace() {
    let (client, fake) = FakeApiServer::start();
    let rt = KubernetesRuntime::new(client.clone(), RuntimeOptions::for_cluster("c1"));
    rt.reconcile(&desired()).await;
    let mut elsewhere = desired();
    elsewhere.uid = "d-uid-3".into();
    elsewhere.namespace = "staging".into();
    rt.reconcile(&elsewhere).await;
    // Another Yatai cluster name on the same Kubernetes cluster: not ours to remove.
    let mut foreign = desired();
    foreign.uid = "d-uid-9".into();
    foreign.cluster = "c2".into();
    foreign.name = "svc9".into();
    rt.reconcile(&foreign).await;
    // Somebody else's BentoDeployment.
    fake.seed(json!({"apiVersion": BD, "kind": "BentoDeployment", "metadata": {"name": "hand", "namespace": NS}, "spec": {"bento": "x"}}));

    assert_eq!(rt.known().await, ["d-uid-1", "d-uid-3"]);
    assert!(
        fake.log()
            .iter()
            .any(|r| r.path == format!("/apis/{BD}/bentodeployments")),
        "one cluster-wide list: {:?}",
        fake.log()
    );
    // Limited to namespaces.
    let scoped = KubernetesRuntime::new(
        client,
        RuntimeOptions {
            namespaces: vec!["staging".into()],
            ..RuntimeOptions::for_cluster("c1")
        },
    );
    assert_eq!(scoped.known().await, ["d-uid-3"]);
}

#[tokio::test]
async fn fake_api_logs_are_the_conditions() {
    let (rt, fake) = runtime();
    assert_eq!(rt.logs("d-uid-1", 10).await, None);
    rt.reconcile(&desired()).await;
    let g = generation(&fake);
    set_conditions(
        &fake,
        BD,
        "BentoDeployment",
        "svc",
        vec![condition(
            "Available",
            "False",
            "DeploymentsUnavailable",
            "Waiting for ready pods of: svc",
            g,
        )],
    );
    set_conditions(
        &fake,
        BR,
        "BentoRequest",
        BR_NAME,
        vec![condition(
            "BentoAvailable",
            "True",
            "BentoCreated",
            "Bento serves reg/x",
            1,
        )],
    );
    let lines = rt.logs("d-uid-1", 10).await.unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("BentoDeployment svc: Available=False (DeploymentsUnavailable) Waiting for ready pods of: svc")), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("BentoRequest iris-classifier--abc-1: BentoAvailable=True")),
        "{lines:?}"
    );
    assert_eq!(rt.logs("d-uid-1", 1).await.unwrap().len(), 1);
}

#[tokio::test]
async fn fake_api_a_missing_namespace_fails_with_what_to_do() {
    let (rt, fake) = runtime();
    fake.only_namespaces(&["default"]);
    let o = rt.reconcile(&desired()).await;
    assert_eq!(o.status, DeploymentStatus::Failed);
    assert_eq!(
        o.reason,
        "namespace prod does not exist in cluster c1; create it (`kubectl create namespace prod`) or choose \
         another namespace"
    );
    // Terminating in a namespace that does not exist: nothing to stop.
    let mut stop = desired();
    stop.running = false;
    assert_eq!(
        rt.reconcile(&stop).await.status,
        DeploymentStatus::Terminated
    );
}

#[tokio::test]
async fn fake_api_forbidden_and_missing_crds_fail_with_what_to_do() {
    let (rt, fake) = runtime();
    fake.fail_with(
        Method::PATCH,
        "/bentodeployments/",
        403,
        "Forbidden",
        "bentodeployments.serving.yatai.ai \"svc\" is forbidden: User \"system:serviceaccount:yatai:yatai\" cannot patch resource \"bentodeployments\" in API group \"serving.yatai.ai\" in the namespace \"prod\"",
        1,
    );
    let o = rt.reconcile(&desired()).await;
    assert_eq!(o.status, DeploymentStatus::Failed);
    assert!(o.reason.starts_with("Yatai's credentials for cluster c1 may not apply BentoDeployment svc in namespace prod (403"), "{o:?}");
    assert!(
        o.reason
            .contains("grant its user or service account a Role"),
        "{o:?}"
    );

    // No CRDs: reads answer 404 (absent), the apply meets the missing resource.
    let (rt, fake) = runtime();
    fake.fail_with(
        Method::PATCH,
        "/bentorequests/",
        404,
        "NotFound",
        "the server could not find the requested resource",
        1,
    );
    let o = rt.reconcile(&desired()).await;
    assert_eq!(o.status, DeploymentStatus::Failed, "{o:?}");
    assert!(
        o.reason
            .contains("install the CRDs (`yatai crds | kubectl apply -f -`"),
        "{o:?}"
    );

    let (rt, fake) = runtime();
    fake.fail(Method::GET, "/bentodeployments/", 503, 1);
    let o = rt.reconcile(&desired()).await;
    assert_eq!(o.status, DeploymentStatus::Unknown);
    assert!(
        o.reason.contains("answered 503") && o.reason.contains("Yatai tries again"),
        "{o:?}"
    );
    assert_eq!(
        rt.reconcile(&desired()).await.status,
        DeploymentStatus::ImageBuilding,
        "and it does"
    );
}

#[tokio::test]
async fn fake_api_unreachable_cluster_is_unknown_and_never_panics() {
    let (mock, handle) = tower_test::mock::pair::<
        http::Request<kube::client::Body>,
        http::Response<kube::client::Body>,
    >();
    drop(handle);
    let rt = KubernetesRuntime::new(
        kube::Client::new(mock, "default"),
        RuntimeOptions::for_cluster("c1"),
    );
    let o = rt.reconcile(&desired()).await;
    assert_eq!(o.status, DeploymentStatus::Unknown);
    assert!(
        o.reason
            .starts_with("cannot reach the API server of cluster c1"),
        "{o:?}"
    );
    assert_eq!(rt.known().await, Vec::<String>::new());
    assert_eq!(rt.logs("d-uid-1", 5).await, None);
    let e = rt.remove("d-uid-1").await.unwrap_err();
    assert!(matches!(e, yatai_domain::Error::Unavailable(_)), "{e:?}");
}

#[tokio::test]
async fn fake_api_objects_not_made_by_this_deployment_are_not_overwritten() {
    let (rt, fake) = runtime();
    fake.seed(json!({"apiVersion": BD, "kind": "BentoDeployment", "metadata": {"name": "svc", "namespace": NS}, "spec": {"bento": "x"}}));
    let o = rt.reconcile(&desired()).await;
    assert_eq!(o.status, DeploymentStatus::Failed);
    assert!(
        o.reason
            .contains("already exists in namespace prod of cluster c1 and is not managed by Yatai"),
        "{o:?}"
    );
    assert!(applies(&fake).is_empty());
    let mut stop = desired();
    stop.running = false;
    assert_eq!(
        rt.reconcile(&stop).await.status,
        DeploymentStatus::Terminated
    );
    assert!(
        fake.get(BD, "BentoDeployment", NS, "svc").is_some(),
        "not ours: not deleted"
    );

    // Another Yatai deployment's.
    let (rt, fake) = runtime();
    rt.reconcile(&desired()).await;
    let mut other = desired();
    other.uid = "d-uid-2".into();
    let o = rt.reconcile(&other).await;
    assert_eq!(o.status, DeploymentStatus::Failed);
    assert!(
        o.reason
            .contains("belongs to another Yatai deployment (uid d-uid-1)"),
        "{o:?}"
    );
    assert_eq!(fake.applied("/bentodeployments/svc").len(), 1);

    // A BentoRequest made by `yatai convert` or by hand for the same bento is used as it is.
    let (rt, fake) = runtime();
    fake.seed(json!({"apiVersion": BR, "kind": "BentoRequest", "metadata": {"name": BR_NAME, "namespace": NS}, "spec": {"bentoTag": "iris_classifier:abc1"}}));
    rt.reconcile(&desired()).await;
    assert_eq!(
        applies(&fake),
        [format!("/apis/{BD}/namespaces/{NS}/bentodeployments/svc")]
    );
}

#[tokio::test]
async fn invalid_desired_states_fail_without_calling_the_api() {
    let (rt, fake) = runtime();
    let mut bad = desired();
    bad.namespace = "Prod_NS".into();
    let o = rt.reconcile(&bad).await;
    assert_eq!(o.status, DeploymentStatus::Failed);
    assert!(
        o.reason
            .contains("namespace \"Prod_NS\" is not a valid DNS-1123 label"),
        "{o:?}"
    );
    let mut bad = desired();
    bad.config["bento_deployment_overrides"]["extraPodSpec"] = json!({"nodeSelector": "not a map"});
    let o = rt.reconcile(&bad).await;
    assert_eq!(o.status, DeploymentStatus::Failed);
    assert!(
        o.reason
            .starts_with("config.bento_deployment_overrides.extraPodSpec is not valid"),
        "{o:?}"
    );
    assert!(fake.log().is_empty());
}

#[tokio::test]
async fn fake_api_a_bento_deployment_edited_by_hand_is_applied_again() {
    let (rt, fake) = runtime();
    rt.reconcile(&desired()).await;
    // Only what the API server adds (status, defaults elsewhere) is not a change.
    fake.edit(BD, "BentoDeployment", NS, "svc", |o| {
        o["metadata"]["labels"]["added-by-someone"] = json!("x");
    });
    fake.clear_log();
    rt.reconcile(&desired()).await;
    assert!(applies(&fake).is_empty());
    // `kubectl edit` of a field Yatai sets is undone.
    fake.edit(BD, "BentoDeployment", NS, "svc", |o| {
        o["spec"]["autoscaling"]["minReplicas"] = json!(7);
    });
    rt.reconcile(&desired()).await;
    assert_eq!(
        applies(&fake),
        [format!("/apis/{BD}/namespaces/{NS}/bentodeployments/svc")]
    );
    let live = fake.get(BD, "BentoDeployment", NS, "svc").unwrap();
    assert_eq!(live["spec"]["autoscaling"]["minReplicas"], 1);
}

#[tokio::test]
async fn fake_api_a_start_while_the_old_bento_deployment_is_deleted_waits() {
    let (rt, fake) = runtime();
    rt.reconcile(&desired()).await;
    fake.edit(BD, "BentoDeployment", NS, "svc", |o| {
        o["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    });
    fake.clear_log();
    let o = rt.reconcile(&desired()).await;
    assert_eq!(o.status, DeploymentStatus::Deploying);
    assert!(
        o.reason
            .contains("finish deleting the previous BentoDeployment svc"),
        "{o:?}"
    );
    assert!(applies(&fake).is_empty());
}
