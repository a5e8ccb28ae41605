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

// ---- Job mode (`--build-in-job`): the build runs in a batch/v1 Job. ----

const JOBS: &str = "/apis/batch/v1/namespaces/ml/jobs";

fn job_settings() -> yatai_image_builder_controller::JobSettings {
    let mut registry = yatai_image_builder::RegistryConfig::new("registry.test");
    registry.in_cluster_server = Some("registry.cluster.local:5000".into());
    registry.username = Some("pusher".into());
    yatai_image_builder_controller::JobSettings {
        image: "ghcr.io/acme/yatai:1.0".into(),
        registry,
        registry_secret: Some("registry-creds".into()),
        endpoint: Some("http://yatai.yatai-system".into()),
        token_secret: Some("yatai-token".into()),
        base_image: None,
        insecure_registries: vec![],
        default_timeout_secs: 3600,
    }
}

fn job_ctx(api: &Arc<FakeKubeApi>, builder: Arc<ScriptedBuilder>) -> Arc<Context> {
    Arc::new(Context::new(client_of(api.clone()), builder).with_job(Some(job_settings())))
}

fn only_job(api: &FakeKubeApi) -> (String, Value) {
    let objects = api.objects.lock().unwrap();
    let jobs: Vec<(String, Value)> = objects
        .iter()
        .filter(|(k, _)| k.starts_with(JOBS))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        jobs.len(),
        1,
        "exactly one Job: {:?}",
        jobs.iter().map(|j| &j.0).collect::<Vec<_>>()
    );
    jobs.into_iter().next().unwrap()
}

fn set_job_status(api: &FakeKubeApi, path: &str, status: Value) {
    api.objects.lock().unwrap().get_mut(path).unwrap()["status"] = status;
}

fn job_spec() -> BentoRequestSpec {
    BentoRequestSpec {
        image_build_timeout: Some(600_000_000_000),
        image_builder_extra_pod_spec: Some(yatai_crds::bento_request::ImageBuilderExtraPodSpec {
            node_selector: Some(BTreeMap::from([("pool".to_string(), "build".to_string())])),
            service_account_name: Some("builder-sa".into()),
            ..Default::default()
        }),
        image_builder_extra_pod_metadata: Some(yatai_crds::common::ExtraPodMetadata {
            labels: Some(BTreeMap::from([("team".to_string(), "ml".to_string())])),
            annotations: None,
        }),
        image_builder_extra_container_env: Some(vec![k8s_openapi::api::core::v1::EnvVar {
            name: "PIP_INDEX_URL".into(),
            value: Some("http://pypi.local/simple".into()),
            value_from: None,
        }]),
        ..spec("iris:v1")
    }
}

#[tokio::test]
async fn job_mode_creates_the_build_job_and_waits_against_a_fake_kubernetes_api() {
    let api = Arc::new(FakeKubeApi::default());
    let request = seed(&api, job_spec());
    let builder = ScriptedBuilder::new(false, 0);
    let ctx = job_ctx(&api, builder.clone());
    let action = reconcile(request.clone(), ctx.clone()).await.unwrap();
    assert_eq!(
        action,
        Action::requeue(yatai_image_builder_controller::reconcile::JOB_POLL)
    );
    assert_eq!(
        builder.builds.load(Ordering::SeqCst),
        0,
        "no in-process build"
    );
    assert!(
        api.object(&format!("{BENTOS}/iris")).is_none(),
        "no Bento yet"
    );

    let (path, job) = only_job(&api);
    let name = yatai_image_builder_controller::job::job_name(&request);
    assert_eq!(path, format!("{JOBS}/{name}"));
    assert!(name.starts_with("iris-build-") && name.len() <= 63);
    // It is a valid batch/v1 Job.
    let typed: k8s_openapi::api::batch::v1::Job = serde_json::from_value(job.clone()).unwrap();
    let spec = typed.spec.unwrap();
    assert_eq!(spec.backoff_limit, Some(0));
    assert_eq!(spec.active_deadline_seconds, Some(600));
    let owner = &typed.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("BentoRequest", "req-uid", Some(true))
    );
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.service_account_name.as_deref(), Some("builder-sa"));
    assert_eq!(pod.node_selector.unwrap()["pool"], "build");
    assert_eq!(
        spec.template.metadata.unwrap().labels.unwrap()["team"],
        "ml"
    );
    assert_eq!(pod.containers.len(), 1);
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("ghcr.io/acme/yatai:1.0"));
    let args = c.args.clone().unwrap();
    assert_eq!(&args[..3], &["image", "build", "iris:v1"]);
    assert!(
        args.windows(2).any(|w| w == ["--timeout", "600"]),
        "{args:?}"
    );
    let env: BTreeMap<String, (Option<String>, Option<String>)> = c
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| {
            let secret = e
                .value_from
                .and_then(|f| f.secret_key_ref)
                .map(|s| format!("{}/{}", s.name, s.key));
            (e.name, (e.value, secret))
        })
        .collect();
    assert_eq!(
        env["YATAI_ENDPOINT"].0.as_deref(),
        Some("http://yatai.yatai-system")
    );
    assert_eq!(
        env["YATAI_API_TOKEN"].1.as_deref(),
        Some("yatai-token/YATAI_API_TOKEN")
    );
    assert_eq!(
        env["DOCKER_REGISTRY_SERVER"].0.as_deref(),
        Some("registry.test")
    );
    assert_eq!(
        env["DOCKER_REGISTRY_IN_CLUSTER_SERVER"].0.as_deref(),
        Some("registry.cluster.local:5000")
    );
    assert_eq!(env["DOCKER_REGISTRY_USERNAME"].0.as_deref(), Some("pusher"));
    assert_eq!(
        env["DOCKER_REGISTRY_PASSWORD"],
        (None, Some("registry-creds/DOCKER_REGISTRY_PASSWORD".into()))
    );
    assert_eq!(
        env["PIP_INDEX_URL"].0.as_deref(),
        Some("http://pypi.local/simple")
    );

    let c = conditions(&api);
    assert_eq!(c["ImageExists"], cond("False", "ImageMissing"));
    assert_eq!(c["ImageBuilding"], cond("True", "BuildingInJob"));
    let r = api.object(&format!("{REQUESTS}/iris")).unwrap();
    let msg = r["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "ImageBuilding")
        .unwrap()["message"]
        .clone();
    assert!(
        msg.as_str().unwrap().contains(&name),
        "the condition names the Job: {msg}"
    );

    // Still running on the next reconcile: the Job is reused (no second one), no Bento.
    set_job_status(&api, &path, json!({"active": 1}));
    let action = reconcile(request, ctx).await.unwrap();
    assert_eq!(
        action,
        Action::requeue(yatai_image_builder_controller::reconcile::JOB_POLL)
    );
    only_job(&api);
    assert!(api.object(&format!("{BENTOS}/iris")).is_none());
    let applies = api
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("PATCH") && l.contains("/jobs/"))
        .count();
    assert_eq!(applies, 1, "the Job is written once");
}

#[tokio::test]
async fn job_mode_succeeded_job_gives_the_bento_against_a_fake_kubernetes_api() {
    let api = Arc::new(FakeKubeApi::default());
    let request = seed(&api, job_spec());
    let ctx = job_ctx(&api, ScriptedBuilder::new(false, 0));
    reconcile(request.clone(), ctx.clone()).await.unwrap();
    let (path, _) = only_job(&api);
    set_job_status(
        &api,
        &path,
        json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}),
    );
    let action = reconcile(request, ctx).await.unwrap();
    assert_eq!(action, Action::await_change());
    let expected = job_settings().registry.image_reference("iris", "v1", true);
    assert_eq!(
        expected,
        "registry.cluster.local:5000/yatai-bentos:yatai.iris.v1"
    );
    let bento = api
        .object(&format!("{BENTOS}/iris"))
        .expect("the Bento is created");
    assert_eq!(bento["spec"]["image"], expected.as_str());
    assert_eq!(bento["status"]["ready"], true);
    let c = conditions(&api);
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
}

#[tokio::test]
async fn job_mode_failed_job_backs_off_and_is_not_recreated_against_a_fake_kubernetes_api() {
    let api = Arc::new(FakeKubeApi::default());
    let request = seed(&api, job_spec());
    let ctx = job_ctx(&api, ScriptedBuilder::new(false, 0));
    reconcile(request.clone(), ctx.clone()).await.unwrap();
    let (path, _) = only_job(&api);
    set_job_status(
        &api,
        &path,
        json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}]}),
    );
    let mut delays = Vec::new();
    for _ in 0..2 {
        let err = reconcile(request.clone(), ctx.clone()).await.unwrap_err();
        assert!(err.to_string().contains("DeadlineExceeded"), "{err}");
        delays.push(error_policy(request.clone(), &err, ctx.clone()));
        assert_eq!(
            conditions(&api)["ImageBuilding"],
            cond("False", "BuildFailed")
        );
        assert!(api.object(&format!("{BENTOS}/iris")).is_none());
        only_job(&api);
    }
    use std::time::Duration;
    assert_eq!(
        delays,
        vec![
            Action::requeue(Duration::from_secs(5)),
            Action::requeue(Duration::from_secs(10))
        ]
    );
    let applies = api
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("PATCH") && l.contains("/jobs/"))
        .count();
    assert_eq!(applies, 1, "no new Job after a failure");
    let r = api.object(&format!("{REQUESTS}/iris")).unwrap();
    let msg = r["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "ImageBuilding")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("active longer than specified deadline"),
        "{msg}"
    );
}

#[tokio::test]
async fn job_mode_existing_image_needs_no_job_against_a_fake_kubernetes_api() {
    let api = Arc::new(FakeKubeApi::default());
    let request = seed(&api, job_spec());
    let ctx = job_ctx(&api, ScriptedBuilder::new(true, 0));
    assert_eq!(
        reconcile(request, ctx).await.unwrap(),
        Action::await_change()
    );
    assert!(
        !api.objects
            .lock()
            .unwrap()
            .keys()
            .any(|k| k.starts_with(JOBS)),
        "no Job"
    );
    assert!(
        !api.log.lock().unwrap().iter().any(|l| l.contains("/jobs")),
        "the Jobs API is not even asked"
    );
    assert!(api.object(&format!("{BENTOS}/iris")).is_some());
}
