//! The reconcile of the image-builder controller, against a FAKE Kubernetes API: an in-memory
//! API server (a `tower` service standing in for the cluster) that stores the objects the
//! controller writes, applies merge and apply patches, records events, and logs every request.
//! No real API server can run here; the builder is a scripted stand-in too (the real one is
//! tested end to end in tests/e2e/test_image_build.py).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use kube::runtime::controller::Action;
use kube::Client;
use serde_json::{json, Value};
use yatai_crds::{BentoRequest, BentoRequestSpec};
use yatai_image_builder_controller::{error_policy, reconcile, Context, ImageBuilder};

const REQUESTS: &str = "/apis/resources.yatai.ai/v1alpha1/namespaces/ml/bentorequests";
const BENTOS: &str = "/apis/resources.yatai.ai/v1alpha1/namespaces/ml/bentoes";

/// The fake API server's state.
#[derive(Default)]
struct FakeKubeApi {
    objects: Mutex<BTreeMap<String, Value>>,
    events: Mutex<Vec<Value>>,
    log: Mutex<Vec<String>>,
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

impl FakeKubeApi {
    fn handle(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> (StatusCode, Value) {
        self.log.lock().unwrap().push(format!("{method} {path}"));
        if method == "POST" && path.ends_with("/events") {
            let ev: Value = serde_json::from_slice(body).unwrap_or_default();
            self.events.lock().unwrap().push(ev.clone());
            let name = ev["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            self.objects
                .lock()
                .unwrap()
                .insert(format!("{path}/{name}"), ev.clone());
            return (StatusCode::CREATED, ev);
        }
        let object_path = path.strip_suffix("/status").unwrap_or(path).to_string();
        let mut objects = self.objects.lock().unwrap();
        match method {
            "GET" => match objects.get(&object_path) {
                Some(o) => (StatusCode::OK, o.clone()),
                None => not_found(),
            },
            "PATCH" => {
                let patch: Value = serde_json::from_slice(body).unwrap_or_default();
                let apply = content_type.starts_with("application/apply-patch");
                match objects.get_mut(&object_path) {
                    Some(o) => {
                        merge(o, &patch);
                        (StatusCode::OK, o.clone())
                    }
                    None if apply => {
                        let mut o = patch;
                        o["metadata"]["uid"] = json!(format!("uid-{}", objects.len() + 1));
                        o["metadata"]["resourceVersion"] = json!("1");
                        objects.insert(object_path, o.clone());
                        (StatusCode::CREATED, o)
                    }
                    None => not_found(),
                }
            }
            _ => not_found(),
        }
    }

    fn object(&self, path: &str) -> Option<Value> {
        self.objects.lock().unwrap().get(path).cloned()
    }
}

fn not_found() -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

fn client_of(api: Arc<FakeKubeApi>) -> Client {
    let service = tower::service_fn(move |req: Request<kube::client::Body>| {
        let api = api.clone();
        async move {
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let ct = req
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let (status, value) = api.handle(&method, &path, &ct, &body);
            let resp = Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(serde_json::to_vec(&value).unwrap())))
                .unwrap();
            Ok::<_, Infallible>(resp)
        }
    });
    Client::new(service, "default")
}

/// A scripted image builder: says whether the image exists, fails the first `fail` builds.
struct ScriptedBuilder {
    exists: bool,
    fail: AtomicU32,
    builds: AtomicU32,
    checks: AtomicU32,
}

impl ScriptedBuilder {
    fn new(exists: bool, fail: u32) -> Arc<Self> {
        Arc::new(ScriptedBuilder {
            exists,
            fail: AtomicU32::new(fail),
            builds: AtomicU32::new(0),
            checks: AtomicU32::new(0),
        })
    }
}

impl ImageBuilder for ScriptedBuilder {
    fn image_for(&self, r: &BentoRequest) -> String {
        r.spec.image.clone().unwrap_or_else(|| {
            format!(
                "registry.test/yatai-bentos:yatai.{}",
                r.spec.bento_tag.replace(':', ".")
            )
        })
    }
    fn image_exists<'a>(&'a self, _image: &'a str) -> BoxFuture<'a, Result<bool, String>> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move { Ok(self.exists) })
    }
    fn build<'a>(&'a self, r: &'a BentoRequest) -> BoxFuture<'a, Result<String, String>> {
        self.builds.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if self.fail.load(Ordering::SeqCst) > 0 {
                self.fail.fetch_sub(1, Ordering::SeqCst);
                return Err("cannot install requirement nosuchpkg==1: no wheel".into());
            }
            Ok(self.image_for(r))
        })
    }
}

fn seed(api: &FakeKubeApi, spec: BentoRequestSpec) -> Arc<BentoRequest> {
    let mut r = BentoRequest::new("iris", spec);
    r.metadata.namespace = Some("ml".into());
    r.metadata.uid = Some("req-uid".into());
    r.metadata.generation = Some(1);
    api.objects.lock().unwrap().insert(
        format!("{REQUESTS}/iris"),
        serde_json::to_value(&r).unwrap(),
    );
    Arc::new(r)
}

fn conditions(api: &FakeKubeApi) -> BTreeMap<String, (String, String)> {
    let r = api.object(&format!("{REQUESTS}/iris")).unwrap();
    r["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().to_string(),
                (
                    c["status"].as_str().unwrap().to_string(),
                    c["reason"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

fn cond(status: &str, reason: &str) -> (String, String) {
    (status.to_string(), reason.to_string())
}

fn spec(tag: &str) -> BentoRequestSpec {
    BentoRequestSpec {
        bento_tag: tag.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn request_is_checked_built_and_answered_by_a_bento_against_a_fake_kubernetes_api() {
    let api = Arc::new(FakeKubeApi::default());
    let request = seed(&api, spec("iris:v1"));
    let builder = ScriptedBuilder::new(false, 0);
    let ctx = Arc::new(Context::new(client_of(api.clone()), builder.clone()));
    let action = reconcile(request, ctx).await.unwrap();
    assert_eq!(action, Action::await_change());
    assert_eq!(builder.checks.load(Ordering::SeqCst), 1);
    assert_eq!(builder.builds.load(Ordering::SeqCst), 1);

    let bento = api
        .object(&format!("{BENTOS}/iris"))
        .expect("the Bento is created");
    assert_eq!(bento["spec"]["tag"], "iris:v1");
    assert_eq!(
        bento["spec"]["image"],
        "registry.test/yatai-bentos:yatai.iris.v1"
    );
    assert_eq!(bento["metadata"]["ownerReferences"][0]["uid"], "req-uid");
    assert_eq!(
        bento["metadata"]["ownerReferences"][0]["kind"],
        "BentoRequest"
    );
    assert_eq!(bento["status"]["ready"], true);

    let c = conditions(&api);
    assert_eq!(c["ImageExistsChecked"], cond("True", "Checked"));
    assert_eq!(c["ImageExists"], cond("True", "ImageBuilt"));
    assert_eq!(c["ImageBuilding"], cond("False", "Built"));
    assert_eq!(c["BentoAvailable"], cond("True", "BentoCreated"));

    let reasons: Vec<String> = api
        .events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        reasons,
        vec!["ImageBuilding", "ImageBuilt", "BentoAvailable"]
    );
    let log = api.log.lock().unwrap().clone();
    assert!(
        log.iter()
            .any(|l| l.starts_with("PATCH") && l.ends_with("/bentoes/iris")),
        "{log:?}"
    );
}

#[tokio::test]
async fn an_existing_image_means_no_build_against_a_fake_kubernetes_api() {
    let api = Arc::new(FakeKubeApi::default());
    let request = seed(&api, spec("iris:v2"));
    let builder = ScriptedBuilder::new(true, 0);
    let ctx = Arc::new(Context::new(client_of(api.clone()), builder.clone()));
    reconcile(request, ctx).await.unwrap();
    assert_eq!(
        builder.builds.load(Ordering::SeqCst),
        0,
        "no build for an image that exists"
    );
    let c = conditions(&api);
    assert_eq!(c["ImageExists"], cond("True", "ImageFound"));
    assert!(!c.contains_key("ImageBuilding"));
    assert_eq!(
        api.object(&format!("{BENTOS}/iris")).unwrap()["spec"]["image"],
        "registry.test/yatai-bentos:yatai.iris.v2"
    );
}

#[tokio::test]
async fn a_given_image_is_used_as_is_against_a_fake_kubernetes_api() {
    let api = Arc::new(FakeKubeApi::default());
    let request = seed(
        &api,
        BentoRequestSpec {
            image: Some("my/own:image".into()),
            ..spec("iris:v3")
        },
    );
    let builder = ScriptedBuilder::new(false, 0);
    let ctx = Arc::new(Context::new(client_of(api.clone()), builder.clone()));
    reconcile(request, ctx).await.unwrap();
    assert_eq!(builder.checks.load(Ordering::SeqCst), 0);
    assert_eq!(builder.builds.load(Ordering::SeqCst), 0);
    assert_eq!(
        conditions(&api)["ImageExistsChecked"],
        cond("True", "ImageGiven")
    );
    assert_eq!(
        api.object(&format!("{BENTOS}/iris")).unwrap()["spec"]["image"],
        "my/own:image"
    );
}

#[tokio::test]
async fn failed_builds_back_off_and_recover_against_a_fake_kubernetes_api() {
    let api = Arc::new(FakeKubeApi::default());
    let request = seed(&api, spec("iris:v4"));
    let builder = ScriptedBuilder::new(false, 3);
    let ctx = Arc::new(Context::new(client_of(api.clone()), builder.clone()));
    let mut delays = Vec::new();
    for _ in 0..3 {
        let err = reconcile(request.clone(), ctx.clone()).await.unwrap_err();
        assert!(err.to_string().contains("nosuchpkg"), "{err}");
        delays.push(error_policy(request.clone(), &err, ctx.clone()));
        assert!(
            api.object(&format!("{BENTOS}/iris")).is_none(),
            "no Bento for a failed build"
        );
        assert_eq!(
            conditions(&api)["ImageBuilding"],
            cond("False", "BuildFailed")
        );
    }
    use std::time::Duration;
    assert_eq!(
        delays,
        vec![
            Action::requeue(Duration::from_secs(5)),
            Action::requeue(Duration::from_secs(10)),
            Action::requeue(Duration::from_secs(20))
        ],
        "each failure waits longer: no hot loop"
    );
    // One Warning event, repeated as a series (as Kubernetes' event recorders do).
    let warnings: Vec<Value> = api
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "Warning")
        .cloned()
        .collect();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0]["reason"], "BuildFailed");
    let name = warnings[0]["metadata"]["name"].as_str().unwrap();
    let stored = api
        .object(&format!(
            "/apis/events.k8s.io/v1/namespaces/ml/events/{name}"
        ))
        .unwrap();
    assert_eq!(stored["series"]["count"], 3, "{stored}");
    // The fourth try succeeds, and the back-off starts over.
    reconcile(request.clone(), ctx.clone()).await.unwrap();
    assert_eq!(ctx.failures_of("ml/iris"), 0);
    assert_eq!(
        conditions(&api)["BentoAvailable"],
        cond("True", "BentoCreated")
    );
    assert_eq!(builder.builds.load(Ordering::SeqCst), 4);
}
