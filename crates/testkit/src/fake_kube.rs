//! A FAKE Kubernetes API server for the tests of the deployment operator and of the Kubernetes
//! cluster runtime (no real API server can run here); feature `fake-kube`.
//!
//! It serves namespaced and cluster-wide lists (`/apis/G/V/PLURAL`), records request bodies,
//! can restrict which namespaces exist (writes into another one get the API server's
//! `namespaces "x" not found`), and scripts faults with a given status, reason and message.
//!
//! Built on `tower-test`'s mock service, like controller-rs's scripted fixtures, but stateful: it keeps objects
//! by URL, answers GET (item and list with a label selector), POST (create), PUT (replace, 409 on a stale
//! resourceVersion), server-side apply PATCH (a simplified merge: maps
//! merged, associative lists merged by key, other lists replaced, a `managedFields` entry per field manager;
//! it does not remove fields a manager stops applying), merge PATCH (also for `/status`) and DELETE,
//! and records every request. Faults (an HTTP status for the next N matching requests) script failures.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{json, Value};

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub content_type: String,
    /// The request body as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

impl Recorded {
    pub fn is_apply(&self) -> bool {
        self.method == Method::PATCH && self.content_type.starts_with("application/apply-patch")
    }
}

struct Fault {
    method: Method,
    path_contains: String,
    status: u16,
    remaining: usize,
    reason_message: Option<(String, String)>,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    log: Vec<Recorded>,
    faults: Vec<Fault>,
    resource_version: u64,
    uid: u64,
    /// When set, the only namespaces that exist.
    namespaces: Option<Vec<String>>,
}

/// Handle to the fake API server's state.
#[derive(Clone, Default)]
pub struct FakeApiServer {
    state: Arc<Mutex<State>>,
}

/// `/api/v1/namespaces/NS/PLURAL` or `/apis/GROUP/VERSION/namespaces/NS/PLURAL` for an object.
pub fn collection(api_version: &str, kind: &str, ns: &str) -> String {
    let plural = match kind {
        "Bento" => "bentoes".to_string(),
        "HorizontalPodAutoscaler" => "horizontalpodautoscalers".to_string(),
        "Ingress" => "ingresses".to_string(),
        k => format!("{}s", k.to_lowercase()),
    };
    if api_version.contains('/') {
        format!("/apis/{api_version}/namespaces/{ns}/{plural}")
    } else {
        format!("/api/{api_version}/namespaces/{ns}/{plural}")
    }
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap()
}

fn ok(value: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(value).unwrap()))
        .unwrap()
}

/// RFC 7386 merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// The key of an associative list (containers, env, ports, volumes, mounts, owner references), as server-side
/// apply merges them item by item.
fn list_key(items: &[Value]) -> Option<&'static str> {
    ["name", "containerPort", "mountPath", "uid"]
        .into_iter()
        .find(|k| !items.is_empty() && items.iter().all(|i| i.get(*k).is_some()))
}

/// The fake's apply: maps merged, associative lists merged item by item (items only the live object has are
/// kept, as the fields another manager or the API server's defaults own), other values replaced.
fn apply_merge(target: &mut Value, applied: &Value) {
    if let (Some(t), Some(a)) = (target.as_array_mut(), applied.as_array()) {
        let all: Vec<Value> = t.iter().chain(a.iter()).cloned().collect();
        if let Some(key) = list_key(&all) {
            for item in a {
                match t.iter_mut().find(|x| x.get(key) == item.get(key)) {
                    Some(existing) => apply_merge(existing, item),
                    None => t.push(item.clone()),
                }
            }
            return;
        }
    }
    match (target.as_object_mut(), applied.as_object()) {
        (Some(t), Some(a)) => {
            for (k, v) in a {
                apply_merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        _ => *target = applied.clone(),
    }
}

fn labels_match(object: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        object
            .pointer("/metadata/labels")
            .and_then(|l| l.get(k))
            .and_then(Value::as_str)
            == Some(v)
    })
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

impl FakeApiServer {
    /// A client talking to a new fake API server.
    pub fn start() -> (kube::Client, FakeApiServer) {
        let (mock, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = FakeApiServer::default();
        let server = fake.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let response = server.handle(request).await;
                send.send_response(response);
            }
        });
        (kube::Client::new(mock, "default"), fake)
    }

    /// Puts an object in place (as if someone had created it), keeping its metadata as given.
    pub fn seed(&self, mut object: Value) -> Value {
        let mut s = self.state.lock().unwrap();
        let ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let key = format!(
            "{}/{}",
            collection(
                object["apiVersion"].as_str().unwrap(),
                object["kind"].as_str().unwrap(),
                &ns
            ),
            object["metadata"]["name"].as_str().unwrap()
        );
        s.resource_version += 1;
        s.uid += 1;
        let meta = object["metadata"].as_object_mut().unwrap();
        meta.insert("namespace".into(), ns.into());
        meta.entry("uid")
            .or_insert(json!(format!("seeded-{}", s.uid)));
        meta.insert(
            "resourceVersion".into(),
            json!(s.resource_version.to_string()),
        );
        meta.entry("generation").or_insert(json!(1));
        s.objects.insert(key, object.clone());
        object
    }

    pub fn get(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Option<Value> {
        let key = format!("{}/{name}", collection(api_version, kind, ns));
        self.state.lock().unwrap().objects.get(&key).cloned()
    }

    /// Names of the stored objects of a kind.
    pub fn names(&self, api_version: &str, kind: &str, ns: &str) -> Vec<String> {
        let prefix = format!("{}/", collection(api_version, kind, ns));
        self.state
            .lock()
            .unwrap()
            .objects
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
            .map(|(_, v)| v["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// The stored objects of a kind.
    pub fn list(&self, api_version: &str, kind: &str, ns: &str) -> Vec<Value> {
        self.names(api_version, kind, ns)
            .iter()
            .filter_map(|n| self.get(api_version, kind, ns, n))
            .collect()
    }

    /// Replaces a stored object by `edit`ed copy, as another client would (a new resourceVersion).
    pub fn edit(
        &self,
        api_version: &str,
        kind: &str,
        ns: &str,
        name: &str,
        edit: impl FnOnce(&mut Value),
    ) {
        let key = format!("{}/{name}", collection(api_version, kind, ns));
        let mut s = self.state.lock().unwrap();
        s.resource_version += 1;
        let rv = s.resource_version.to_string();
        let object = s.objects.get_mut(&key).expect("object to edit");
        edit(object);
        object["metadata"]["resourceVersion"] = json!(rv);
    }

    pub fn log(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    /// The next `times` requests with `method` whose path contains `path_contains` fail with `status`.
    pub fn fail(&self, method: Method, path_contains: &str, status: u16, times: usize) {
        self.state.lock().unwrap().faults.push(Fault {
            method,
            path_contains: path_contains.into(),
            status,
            remaining: times,
            reason_message: None,
        });
    }

    /// Like [`fail`](Self::fail), with the reason and message of the API server's answer.
    pub fn fail_with(
        &self,
        method: Method,
        path_contains: &str,
        status: u16,
        reason: &str,
        message: &str,
        times: usize,
    ) {
        self.state.lock().unwrap().faults.push(Fault {
            method,
            path_contains: path_contains.into(),
            status,
            remaining: times,
            reason_message: Some((reason.into(), message.into())),
        });
    }

    /// From now on only these namespaces exist: writes into another one fail as the API server's do.
    pub fn only_namespaces(&self, namespaces: &[&str]) {
        self.state.lock().unwrap().namespaces =
            Some(namespaces.iter().map(|n| n.to_string()).collect());
    }

    /// The recorded requests with a method (applies are PATCH with `application/apply-patch`).
    pub fn requests(&self, method: Method) -> Vec<Recorded> {
        self.log()
            .into_iter()
            .filter(|r| r.method == method)
            .collect()
    }

    /// The bodies applied (server-side apply) to paths ending with `suffix`.
    pub fn applied(&self, suffix: &str) -> Vec<Value> {
        self.log()
            .into_iter()
            .filter(|r| r.is_apply() && r.path.ends_with(suffix))
            .map(|r| r.body)
            .collect()
    }

    async fn handle(&self, request: Request<Body>) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().unwrap_or_default().to_string();
        let content_type = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut s = self.state.lock().unwrap();
        s.log.push(Recorded {
            method: parts.method.clone(),
            path: path.clone(),
            query: query.clone(),
            content_type: content_type.clone(),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        if let Some(f) = s.faults.iter_mut().find(|f| {
            f.remaining > 0 && f.method == parts.method && path.contains(&f.path_contains)
        }) {
            f.remaining -= 1;
            if let Some((reason, message)) = &f.reason_message {
                return status(f.status, reason, message);
            }
            let (reason, message) = match f.status {
                409 => (
                    "Conflict",
                    "the object has been modified; please apply your changes to the latest version",
                ),
                _ => (
                    "InternalError",
                    "an error on the server (\"etcdserver: request timed out\")",
                ),
            };
            return status(f.status, reason, message);
        }
        if parts.method != Method::GET && parts.method != Method::DELETE {
            if let (Some(known), Some(ns)) = (&s.namespaces, namespace_of(&path)) {
                if !known.iter().any(|k| k == ns) {
                    return status(404, "NotFound", &format!("namespaces \"{ns}\" not found"));
                }
            }
        }
        let (key, subresource) = match path.strip_suffix("/status") {
            Some(p) => (p.to_string(), true),
            None => (path.clone(), false),
        };
        match parts.method {
            Method::GET => {
                if let Some(o) = s.objects.get(&key) {
                    return ok(o);
                }
                // A list: the key is a collection.
                if looks_like_collection(&key) {
                    let prefix = format!("{key}/");
                    let selector = query_param(&query, "labelSelector").unwrap_or_default();
                    let items: Vec<Value> = s
                        .objects
                        .iter()
                        .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
                        .map(|(_, v)| v.clone())
                        .filter(|v| labels_match(v, &selector))
                        .collect();
                    let rv = s.resource_version.to_string();
                    return ok(
                        &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": rv}, "items": items}),
                    );
                }
                // A cluster-wide list: /apis/GROUP/VERSION/PLURAL.
                if let Some((prefix, plural)) = cluster_wide(&key) {
                    let selector = query_param(&query, "labelSelector").unwrap_or_default();
                    let items: Vec<Value> = s
                        .objects
                        .iter()
                        .filter(|(k, _)| {
                            let parts: Vec<&str> = k.split('/').collect();
                            k.starts_with(&prefix)
                                && parts.len() >= 3
                                && parts[parts.len() - 2] == plural
                                && parts[parts.len() - 4] == "namespaces"
                        })
                        .map(|(_, v)| v.clone())
                        .filter(|v| labels_match(v, &selector))
                        .collect();
                    let rv = s.resource_version.to_string();
                    return ok(
                        &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": rv}, "items": items}),
                    );
                }
                status(404, "NotFound", &format!("{key} not found"))
            }
            Method::PATCH => {
                let patch: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                s.resource_version += 1;
                let rv = s.resource_version.to_string();
                if content_type.starts_with("application/apply-patch") {
                    let manager = query_param(&query, "fieldManager").unwrap_or_default();
                    let created = !s.objects.contains_key(&key);
                    s.uid += 1;
                    let uid = format!("fake-uid-{}", s.uid);
                    let object = s.objects.entry(key.clone()).or_insert_with(|| json!({}));
                    let spec_before = object.get("spec").cloned();
                    apply_merge(object, &patch);
                    let meta = object["metadata"].as_object_mut().unwrap();
                    if created {
                        meta.insert("uid".into(), json!(uid));
                        meta.insert("generation".into(), json!(1));
                    } else if object.get("spec").cloned() != spec_before {
                        let g = object["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
                        object["metadata"]["generation"] = json!(g);
                    }
                    object["metadata"]["resourceVersion"] = json!(rv);
                    let entries = object["metadata"]["managedFields"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let mut entries: Vec<Value> = entries
                        .into_iter()
                        .filter(|e| e["manager"] != manager.as_str())
                        .collect();
                    entries.push(json!({"manager": manager, "operation": "Apply", "apiVersion": patch["apiVersion"], "fieldsType": "FieldsV1", "fieldsV1": {}}));
                    object["metadata"]["managedFields"] = json!(entries);
                    return ok(object);
                }
                let Some(object) = s.objects.get_mut(&key) else {
                    return status(404, "NotFound", &format!("{key} not found"));
                };
                if subresource {
                    merge_patch(object, &json!({"status": patch["status"]}));
                } else {
                    let mut p = patch.clone();
                    if let Some(m) = p.get_mut("metadata").and_then(Value::as_object_mut) {
                        // A stale resourceVersion is a conflict; a current one is not stored as a change.
                        if let Some(v) = m.remove("resourceVersion") {
                            if v != object["metadata"]["resourceVersion"] {
                                return status(409, "Conflict", "the object has been modified");
                            }
                        }
                    }
                    merge_patch(object, &p);
                }
                object["metadata"]["resourceVersion"] = json!(rv);
                ok(object)
            }
            Method::POST if looks_like_collection(&key) => {
                // Create: the name from the body (or generateName plus a counter).
                let mut object: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                s.resource_version += 1;
                s.uid += 1;
                let (rv, uid) = (s.resource_version.to_string(), s.uid);
                let meta = object["metadata"].as_object_mut().unwrap();
                let name = match meta.get("name").and_then(Value::as_str) {
                    Some(n) => n.to_string(),
                    None => format!(
                        "{}{uid}",
                        meta.get("generateName")
                            .and_then(Value::as_str)
                            .unwrap_or("object-")
                    ),
                };
                meta.insert("name".into(), json!(name));
                meta.insert("uid".into(), json!(format!("fake-uid-{uid}")));
                meta.insert("resourceVersion".into(), json!(rv));
                let item = format!("{key}/{name}");
                if s.objects.contains_key(&item) {
                    return status(409, "AlreadyExists", &format!("{item} already exists"));
                }
                s.objects.insert(item, object.clone());
                Response::builder()
                    .status(StatusCode::CREATED)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&object).unwrap()))
                    .unwrap()
            }
            Method::PUT => {
                // Replace, with optimistic concurrency: a stale resourceVersion is a conflict.
                let mut object: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let Some(live) = s.objects.get(&key) else {
                    return status(404, "NotFound", &format!("{key} not found"));
                };
                let sent = object.pointer("/metadata/resourceVersion").cloned();
                if sent.is_some() && sent.as_ref() != live.pointer("/metadata/resourceVersion") {
                    return status(409, "Conflict", "the object has been modified; please apply your changes to the latest version");
                }
                let uid = live["metadata"]["uid"].clone();
                s.resource_version += 1;
                object["metadata"]["resourceVersion"] = json!(s.resource_version.to_string());
                object["metadata"]["uid"] = uid;
                s.objects.insert(key, object.clone());
                ok(&object)
            }
            Method::DELETE => match s.objects.remove(&key) {
                Some(_) => ok(
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
                ),
                None => status(404, "NotFound", &format!("{key} not found")),
            },
            other => status(
                405,
                "MethodNotAllowed",
                &format!("the fake API does not handle {other}"),
            ),
        }
    }
}

/// The namespace of a namespaced path.
fn namespace_of(path: &str) -> Option<&str> {
    let parts: Vec<&str> = path.split('/').collect();
    parts
        .iter()
        .position(|p| *p == "namespaces")
        .and_then(|i| parts.get(i + 1).copied())
}

/// `/apis/GROUP/VERSION/PLURAL` (or `/api/v1/PLURAL`): (`/apis/GROUP/VERSION/namespaces/`, PLURAL).
fn cluster_wide(key: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = key.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["apis", group, version, plural] => Some((
            format!("/apis/{group}/{version}/namespaces/"),
            plural.to_string(),
        )),
        ["api", version, plural] => {
            Some((format!("/api/{version}/namespaces/"), plural.to_string()))
        }
        _ => None,
    }
}

fn looks_like_collection(key: &str) -> bool {
    // .../namespaces/NS/PLURAL (a collection) versus .../namespaces/NS/PLURAL/NAME (an item).
    let parts: Vec<&str> = key.split('/').collect();
    parts.len() >= 3 && parts[parts.len() - 3] == "namespaces"
}
