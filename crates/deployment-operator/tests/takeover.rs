//! Zero-downtime takeover from the original Go operator: for an unchanged BentoDeployment our desired objects match
//! the ones it wrote (tests/fixtures/takeover/original.yaml, see the README there) in every field that would roll
//! the pods, selectors exactly; and a reconcile against a FAKE Kubernetes API holding those objects adopts them
//! without touching a pod template.

mod support;

use std::path::Path;
use std::sync::Arc;

use http::Method;
use serde_json::Value;
use support::fake_api::FakeApiServer;
use yatai_crds::{Bento, BentoDeployment};
use yatai_deployment_operator::config::Config;
use yatai_deployment_operator::controller::{self, is_subset, Context, FIELD_MANAGER};
use yatai_deployment_operator::{desired, render};

fn fixture(name: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/takeover")
        .join(name);
    render::documents(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn input() -> (BentoDeployment, Bento) {
    let docs = fixture("input.yaml");
    let bento = docs.iter().find(|d| d["kind"] == "Bento").unwrap();
    let bd = docs
        .iter()
        .find(|d| d["kind"] == "BentoDeployment")
        .unwrap();
    (
        serde_json::from_value(bd.clone()).unwrap(),
        serde_json::from_value(bento.clone()).unwrap(),
    )
}

/// Removes what the API server (not the operator) filled in, where it holds the default value.
fn strip_server_defaults(v: &mut Value) {
    fn drop_if(map: &mut serde_json::Map<String, Value>, key: &str, default: Value) {
        if map.get(key) == Some(&default) {
            map.remove(key);
        }
    }
    match v {
        Value::Object(map) => {
            drop_if(map, "imagePullPolicy", "IfNotPresent".into());
            drop_if(map, "terminationMessagePath", "/dev/termination-log".into());
            drop_if(map, "terminationMessagePolicy", "File".into());
            drop_if(map, "periodSeconds", 10.into());
            drop_if(map, "successThreshold", 1.into());
            drop_if(map, "scheme", "HTTP".into());
            drop_if(map, "dnsPolicy", "ClusterFirst".into());
            drop_if(map, "restartPolicy", "Always".into());
            drop_if(map, "schedulerName", "default-scheduler".into());
            drop_if(map, "securityContext", serde_json::json!({}));
            drop_if(map, "terminationGracePeriodSeconds", 30.into());
            drop_if(map, "defaultMode", 420.into());
            if map.get("serviceAccount") == map.get("serviceAccountName") {
                map.remove("serviceAccount");
            }
            for value in map.values_mut() {
                strip_server_defaults(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_server_defaults),
        _ => {}
    }
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// Both ways: every field we set is theirs, and every field they set (less server defaults) is ours.
fn assert_same(ours: &Value, theirs: &Value, what: &str) {
    let mut theirs_stripped = theirs.clone();
    strip_server_defaults(&mut theirs_stripped);
    assert!(
        is_subset(ours, theirs),
        "{what}: we set a field differently\nours: {ours:#}\ntheirs: {theirs:#}"
    );
    assert!(
        is_subset(&theirs_stripped, ours),
        "{what}: they set a field we do not\nours: {ours:#}\ntheirs: {theirs_stripped:#}"
    );
}

#[test]
fn desired_objects_match_the_originals_in_every_rollout_triggering_field() {
    let (bd, bento) = input();
    let ours: Vec<Value> = desired(&bd, &bento, &Config::default())
        .unwrap()
        .objects
        .iter()
        .map(|o| o.to_value())
        .collect();
    let theirs = fixture("original.yaml");
    let names = |objs: &[Value]| {
        let mut n: Vec<String> = objs
            .iter()
            .map(|o| format!("{} {}", o["kind"], o["metadata"]["name"]))
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        names(&ours),
        names(&theirs),
        "the same objects, by kind and name"
    );
    for o in &ours {
        let kind = o["kind"].as_str().unwrap();
        let name = o["metadata"]["name"].as_str().unwrap();
        let t = find(&theirs, kind, name);
        let what = format!("{kind} {name}");
        assert_eq!(
            o["metadata"]["ownerReferences"], t["metadata"]["ownerReferences"],
            "{what}"
        );
        assert_eq!(
            o["metadata"]["labels"], t["metadata"]["labels"],
            "{what} labels"
        );
        match kind {
            "Deployment" => {
                // Immutable: must be identical.
                assert_eq!(
                    o["spec"]["selector"], t["spec"]["selector"],
                    "{what} selector"
                );
                // Labels, annotations, containers (env, ports, probes, resources, mounts), volumes.
                assert_same(
                    &o["spec"]["template"],
                    &t["spec"]["template"],
                    &format!("{what} pod template"),
                );
                assert_eq!(
                    o["spec"]["strategy"], t["spec"]["strategy"],
                    "{what} strategy"
                );
                assert!(
                    o["spec"].get("replicas").is_none(),
                    "{what}: replicas stay with the HPA"
                );
            }
            "Service" => {
                assert_eq!(
                    o["spec"]["selector"], t["spec"]["selector"],
                    "{what} selector"
                );
                assert_eq!(o["spec"]["ports"], t["spec"]["ports"], "{what} ports");
            }
            "HorizontalPodAutoscaler" => assert_same(&o["spec"], &t["spec"], &what),
            // The proxy's configuration: ours is our own text (a ConfigMap change restarts nothing).
            "ConfigMap" => assert!(o["data"]["envoy.yaml"]
                .as_str()
                .unwrap()
                .contains("service_production")),
            other => panic!("unexpected {other}"),
        }
    }
}

#[tokio::test]
async fn fake_api_takeover_adopts_the_originals_objects_leaving_pod_templates_untouched() {
    let (client, fake) = FakeApiServer::start();
    let inputs = fixture("input.yaml");
    for doc in &inputs {
        fake.seed(doc.clone());
    }
    let originals = fixture("original.yaml");
    for o in &originals {
        fake.seed(o.clone());
    }
    let before: Vec<Value> = originals
        .iter()
        .map(|o| {
            fake.get(
                o["apiVersion"].as_str().unwrap(),
                o["kind"].as_str().unwrap(),
                "yatai",
                o["metadata"]["name"].as_str().unwrap(),
            )
            .unwrap()
        })
        .collect();

    let ctx = Context::new(client, Config::default());
    let (bd, _) = input();
    controller::reconcile(Arc::new(bd.clone()), ctx.clone())
        .await
        .unwrap();

    assert!(
        fake.log().iter().all(|r| r.method != Method::DELETE),
        "nothing is deleted"
    );
    for old in &before {
        let (api_version, kind, name) = (
            old["apiVersion"].as_str().unwrap(),
            old["kind"].as_str().unwrap(),
            old["metadata"]["name"].as_str().unwrap(),
        );
        let now = fake
            .get(api_version, kind, "yatai", name)
            .unwrap_or_else(|| panic!("{kind} {name} is gone"));
        let what = format!("{kind} {name}");
        assert_eq!(
            now["metadata"]["uid"], old["metadata"]["uid"],
            "{what}: adopted, not recreated"
        );
        let managers: Vec<&str> = now["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert!(managers.contains(&FIELD_MANAGER), "{what}: {managers:?}");
        assert!(
            !managers.contains(&"manager"),
            "{what}: the original's field manager is dropped: {managers:?}"
        );
        if kind == "Deployment" {
            assert_eq!(
                now["spec"]["template"], old["spec"]["template"],
                "{what}: the pod template is untouched"
            );
            assert_eq!(now["spec"]["selector"], old["spec"]["selector"], "{what}");
            assert_eq!(
                now["metadata"]["generation"], old["metadata"]["generation"],
                "{what}: no new generation, no rollout"
            );
            assert_eq!(
                now["spec"]["replicas"], old["spec"]["replicas"],
                "{what}: the HPA's replicas are kept"
            );
        }
    }
    let status = fake
        .get(
            "serving.yatai.ai/v2alpha1",
            "BentoDeployment",
            "yatai",
            "test",
        )
        .unwrap()["status"]
        .clone();
    let available = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Available")
        .unwrap();
    assert_eq!(
        available["status"], "True",
        "the adopted Deployments are available: {available}"
    );

    // Adopted: the next reconcile applies nothing.
    fake.clear_log();
    controller::reconcile(Arc::new(bd), ctx).await.unwrap();
    let applies: Vec<String> = fake
        .log()
        .into_iter()
        .filter(|r| r.is_apply())
        .map(|r| r.path)
        .collect();
    assert_eq!(applies, Vec::<String>::new());
}
