//! The reconcile: read the BentoDeployment and its Bento, compute [`desired`](crate::desired::desired), apply
//! what differs with server-side apply, delete what is no longer desired, and report conditions.
//!
//! Kubernetes Events on the BentoDeployment tell what happened: `Applied` (Normal) when objects were applied or
//! deleted, and a Warning when the input cannot be served (`BentoNotFound`, `InvalidSpec`, with the condition's
//! message, once per change of the condition) or a reconcile failed (`ReconcileFailed`). A reconcile that changes
//! nothing posts no event.
//!
//! Taking over from the original (Go) operator: its objects already match what [`desired`] computes, so they are
//! left as they are; the first reconcile that must change one applies it (taking ownership of every field) and
//! removes the original's field-manager entry, so that a field later removed from the BentoDeployment is removed
//! from the object too. Pod templates are never touched for an unchanged BentoDeployment.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use yatai_crds::bento_deployment::condition;
use yatai_crds::{Bento, BentoDeployment, BentoRequest};

use crate::config::Config;
use crate::desired::{desired, Object};
use crate::metrics;
use crate::names;

/// Our field manager in `managedFields`.
pub const FIELD_MANAGER: &str = "yatai-deployment-operator";
/// The original operator's field manager (its binary is `/manager`).
pub const LEGACY_FIELD_MANAGERS: &[&str] = &["manager"];
/// How often a healthy deployment is looked at again without any event.
const RESYNC: Duration = Duration::from_secs(600);
/// How soon a deployment waiting for its Bento looks again (a Bento appearing also wakes it).
const BENTO_WAIT: Duration = Duration::from_secs(60);

/// Why a reconcile failed (a BentoDeployment that cannot be served is not an error: it gets a condition).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0} has no {1}")]
    MissingField(String, &'static str),
    #[error("cannot read {0}: {1}")]
    Decode(String, serde_json::Error),
}

impl Error {
    /// A short label for the error metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(s)) if s.code >= 500 => "server_error",
            Error::Kube(kube::Error::Api(_)) => "api_error",
            Error::Kube(_) => "connection",
            Error::MissingField(..) => "missing_field",
            Error::Decode(..) => "decode",
        }
    }
}

/// Shared state of the reconciles.
pub struct Context {
    pub client: Client,
    pub config: Config,
    /// Who writes our Kubernetes Events.
    pub reporter: Reporter,
    /// Consecutive failures per BentoDeployment, for the back-off.
    failures: Mutex<HashMap<ObjectRef<BentoDeployment>, u32>>,
}

impl Context {
    pub fn new(client: Client, config: Config) -> Arc<Self> {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Arc::new(Self {
            reporter,
            client,
            config,
            failures: Mutex::new(HashMap::new()),
        })
    }
}

/// Longest note of an event (the API server refuses longer ones).
const EVENT_NOTE_MAX: usize = 1024;

/// Posts an event about `bd`; a failure to post is logged, never fails the reconcile.
async fn event(ctx: &Context, bd: &BentoDeployment, type_: EventType, reason: &str, note: &str) {
    let mut note = note.to_string();
    if note.len() > EVENT_NOTE_MAX {
        let mut end = EVENT_NOTE_MAX - 3;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    // A recorder per event: kube's Recorder folds events of the same reason and object into one series that keeps
    // the first note, and "Applied" must say what this reconcile applied.
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    if let Err(e) = recorder.publish(&ev, &bd.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "could not write a Kubernetes event");
    }
}

/// Back-off after a failed reconcile of one BentoDeployment: 5 s, doubling per consecutive failure, at most 5 min.
pub fn backoff(failures: u32) -> Duration {
    let secs = 5u64.saturating_mul(1u64 << failures.saturating_sub(1).min(6));
    Duration::from_secs(secs.min(300))
}

/// The controller's error policy: requeue with [`backoff`], never at once (no hot loop).
pub fn error_policy(bd: Arc<BentoDeployment>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = ObjectRef::from_obj(bd.as_ref());
    let n = {
        let mut failures = ctx.failures.lock().expect("not poisoned");
        let n = failures.entry(key).or_insert(0);
        *n += 1;
        *n
    };
    let delay = backoff(n);
    tracing::warn!(
        bento_deployment = %bd.name_any(), namespace = bd.namespace().unwrap_or_default(),
        error = %error, failures = n, retry_in_s = delay.as_secs(), "reconcile failed"
    );
    Action::requeue(delay)
}

/// One reconcile of one BentoDeployment.
pub async fn reconcile(bd: Arc<BentoDeployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(&bd, &ctx).await;
    metrics::reconciled(started.elapsed(), result.as_ref().err().map(Error::kind));
    if let Err(e) = &result {
        event(
            &ctx,
            &bd,
            EventType::Warning,
            "ReconcileFailed",
            &e.to_string(),
        )
        .await;
    }
    if result.is_ok() {
        ctx.failures
            .lock()
            .expect("not poisoned")
            .remove(&ObjectRef::from_obj(bd.as_ref()));
    }
    result
}

async fn reconcile_inner(bd: &BentoDeployment, ctx: &Context) -> Result<Action, Error> {
    let name = bd.name_any();
    let ns = bd
        .namespace()
        .ok_or_else(|| Error::MissingField(format!("BentoDeployment {name}"), "namespace"))?;
    if bd.meta().deletion_timestamp.is_some() {
        // Owner references delete every object; nothing to clean up besides.
        return Ok(Action::await_change());
    }
    let span = tracing::info_span!("reconcile", bento_deployment = %name, namespace = %ns);
    let _enter = span.enter();
    let client = &ctx.client;
    let bd_api: Api<BentoDeployment> = Api::namespaced(client.clone(), &ns);

    // The Bento, or a BentoRequest whose Bento is awaited.
    let bento = Api::<Bento>::namespaced(client.clone(), &ns)
        .get_opt(&bd.spec.bento)
        .await?;
    let Some(bento) = bento else {
        let request = Api::<BentoRequest>::namespaced(client.clone(), &ns)
            .get_opt(&bd.spec.bento)
            .await?;
        let message = match &request {
            Some(r) => format!(
                "Waiting for Bento {0}: BentoRequest {0} (bento {1}) exists, its image is not built yet",
                bd.spec.bento, r.spec.bento_tag
            ),
            None => format!(
                "Bento {0} not found in namespace {ns}: create a Bento or BentoRequest named {0}, or set spec.bento to an existing one",
                bd.spec.bento
            ),
        };
        tracing::info!(bento = %bd.spec.bento, "{message}");
        let reason = if request.is_some() {
            "BentoRequestPending"
        } else {
            "BentoNotFound"
        };
        let changed = set_status(
            &bd_api,
            bd,
            &[
                (condition::BENTO_FOUND, "False", reason, message.as_str()),
                (condition::AVAILABLE, "False", reason, message.as_str()),
                (condition::PROGRESSING, "False", reason, message.as_str()),
            ],
            None,
        )
        .await?;
        if changed {
            // A missing Bento is a mistake to fix; an image being built is only a wait.
            let type_ = if request.is_some() {
                EventType::Normal
            } else {
                EventType::Warning
            };
            event(ctx, bd, type_, reason, &message).await;
        }
        return Ok(Action::requeue(BENTO_WAIT));
    };

    let found = format!("Bento {} found", bd.spec.bento);
    let mut config = ctx.config.clone();
    config.default_service_account = default_service_account(client, &ns).await?;
    let desired = match desired(bd, &bento, &config) {
        Ok(d) => d,
        Err(e) => {
            // Nothing is applied for an input that cannot be served; the condition says what to fix.
            let message = format!("Invalid BentoDeployment: {e}");
            tracing::warn!("{message}");
            let changed = set_status(
                &bd_api,
                bd,
                &[
                    (condition::BENTO_FOUND, "True", "BentoFound", &found),
                    (condition::AVAILABLE, "False", "InvalidSpec", &message),
                    (condition::PROGRESSING, "False", "InvalidSpec", &message),
                ],
                None,
            )
            .await?;
            if changed {
                event(ctx, bd, EventType::Warning, "InvalidSpec", &message).await;
            }
            return Ok(Action::await_change());
        }
    };

    let mut applied = Vec::new();
    for object in &desired.objects {
        if apply(client, &ns, object).await? {
            applied.push(format!("{} {}", object.kind(), object.name()));
        }
    }
    let deleted = prune(client, &ns, bd, &desired.objects).await?;
    if !applied.is_empty() || !deleted.is_empty() {
        tracing::info!(applied = ?applied, deleted = ?deleted, "objects updated");
        let mut parts = Vec::new();
        if !applied.is_empty() {
            parts.push(format!("applied {}", applied.join(", ")));
        }
        if !deleted.is_empty() {
            parts.push(format!("deleted {}", deleted.join(", ")));
        }
        event(ctx, bd, EventType::Normal, "Applied", &parts.join("; ")).await;
    }

    // Availability from the Deployments' own conditions.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let mut unavailable = Vec::new();
    let mut rolling = Vec::new();
    for object in &desired.objects {
        let Object::Deployment(d) = object else {
            continue;
        };
        let live = deployments
            .get_opt(d.metadata.name.as_deref().unwrap_or_default())
            .await?;
        let (available, settled) = deployment_state(live.as_ref());
        if !available {
            unavailable.push(d.metadata.name.clone().unwrap_or_default());
        }
        if !settled {
            rolling.push(d.metadata.name.clone().unwrap_or_default());
        }
    }
    let (available, available_reason, available_message) = if unavailable.is_empty() {
        (
            "True",
            "DeploymentsAvailable",
            "Every component has its minimum of ready pods".to_string(),
        )
    } else {
        (
            "False",
            "DeploymentsUnavailable",
            format!(
                "Waiting for ready pods of: {} (see `kubectl describe deployment`)",
                unavailable.join(", ")
            ),
        )
    };
    let (progressing, progressing_reason, progressing_message) =
        if !applied.is_empty() || !deleted.is_empty() || !rolling.is_empty() {
            let mut parts = Vec::new();
            if !applied.is_empty() {
                parts.push(format!("applied {}", applied.join(", ")));
            }
            if !deleted.is_empty() {
                parts.push(format!("deleted {}", deleted.join(", ")));
            }
            if !rolling.is_empty() {
                parts.push(format!("rolling out {}", rolling.join(", ")));
            }
            ("True", "Reconciling", parts.join("; "))
        } else {
            (
                "False",
                "UpToDate",
                "Every object matches the BentoDeployment".to_string(),
            )
        };
    set_status(
        &bd_api,
        bd,
        &[
            (condition::BENTO_FOUND, "True", "BentoFound", &found),
            (
                condition::AVAILABLE,
                available,
                available_reason,
                &available_message,
            ),
            (
                condition::PROGRESSING,
                progressing,
                progressing_reason,
                &progressing_message,
            ),
        ],
        Some(&desired.pod_selector),
    )
    .await?;
    Ok(Action::requeue(RESYNC))
}

/// (available, settled) of a live Deployment: `Available=True`, and its rollout finished.
fn deployment_state(d: Option<&Deployment>) -> (bool, bool) {
    let Some(d) = d else { return (false, false) };
    let conditions = d.status.as_ref().and_then(|s| s.conditions.as_ref());
    let cond =
        |t: &str| conditions.and_then(|cs| cs.iter().find(|c| c.type_.as_deref() == Some(t)));
    let available = cond("Available").is_some_and(|c| c.status.as_deref() == Some("True"));
    let observed = d.status.as_ref().and_then(|s| s.observed_generation) >= d.metadata.generation;
    let settled = observed
        && cond("Progressing")
            .is_none_or(|c| c.reason.as_deref() == Some("NewReplicaSetAvailable"));
    (available, settled)
}

/// The service account of pods whose BentoDeployment names none: the first labelled
/// `yatai.ai/bento-deployment-pod=true`, else `default` (as the original chose it).
async fn default_service_account(client: &Client, ns: &str) -> Result<String, Error> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(&format!("{}=true", names::LABEL_BENTO_DEPLOYMENT_POD)))
        .await?;
    let mut found: Vec<String> = list.items.iter().map(|s| s.name_any()).collect();
    found.sort();
    Ok(found.into_iter().next().unwrap_or_else(|| "default".into()))
}

/// Whether every field of `desired` has the same value in `live` (fields only the API server or others set are
/// ignored). Lists must match item for item.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, v)| match l.get(k) {
            Some(lv) => is_subset(v, lv),
            None => {
                v.is_null()
                    || v.as_object().is_some_and(|o| o.is_empty())
                    || v.as_array().is_some_and(|a| a.is_empty())
            }
        }),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(a, b)| is_subset(a, b))
        }
        _ => desired == live,
    }
}

fn legacy_entries(live: &Value) -> bool {
    live.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_some_and(|entries| {
            entries.iter().any(|e| {
                e["manager"]
                    .as_str()
                    .is_some_and(|m| LEGACY_FIELD_MANAGERS.contains(&m))
            })
        })
}

async fn apply_typed<K>(client: &Client, ns: &str, object: &Object) -> Result<bool, Error>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned
        + serde::Serialize,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let name = object.name().to_string();
    let wanted = object.to_value();
    let live = api.get_opt(&name).await?;
    let live_value = live
        .as_ref()
        .map(|l| serde_json::to_value(l).expect("serialises"));
    let legacy = live_value.as_ref().is_some_and(legacy_entries);
    let unchanged = live_value.as_ref().is_some_and(|l| is_subset(&wanted, l));
    if unchanged && !legacy {
        return Ok(false);
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let result = api.patch(&name, &params, &Patch::Apply(&wanted)).await?;
    if legacy {
        // Adoption: every field we set is now ours; drop the original operator's claim on them, so that a field
        // later removed from the BentoDeployment is removed from the object too.
        let after = serde_json::to_value(&result).expect("serialises");
        let remaining: Vec<Value> = after
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter(|e| {
                        !e["manager"]
                            .as_str()
                            .is_some_and(|m| LEGACY_FIELD_MANAGERS.contains(&m))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let patch = json!({"metadata": {"managedFields": remaining, "resourceVersion": after["metadata"]["resourceVersion"]}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        tracing::info!(kind = object.kind(), name = %name, "adopted from the original operator");
    }
    if !unchanged {
        metrics::applied(object.kind());
    }
    Ok(!unchanged)
}

/// Applies one object when it differs from the live one; returns whether it changed.
async fn apply(client: &Client, ns: &str, object: &Object) -> Result<bool, Error> {
    match object {
        Object::Deployment(_) => apply_typed::<Deployment>(client, ns, object).await,
        Object::Service(_) => apply_typed::<Service>(client, ns, object).await,
        Object::HorizontalPodAutoscaler(_) => {
            apply_typed::<HorizontalPodAutoscaler>(client, ns, object).await
        }
        Object::Ingress(_) => apply_typed::<Ingress>(client, ns, object).await,
        Object::ConfigMap(_) => apply_typed::<ConfigMap>(client, ns, object).await,
    }
}

async fn prune_kind<K>(
    client: &Client,
    ns: &str,
    bd: &BentoDeployment,
    keep: &[String],
    kind: &'static str,
) -> Result<Vec<String>, Error>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let selector = format!("{}={}", names::LABEL_BENTO_DEPLOYMENT, bd.name_any());
    let uid = bd.uid().unwrap_or_default();
    let mut deleted = Vec::new();
    for item in api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
    {
        let owned = item
            .owner_references()
            .iter()
            .any(|o| o.uid == uid && o.controller == Some(true));
        let name = item.name_any();
        if owned && !keep.contains(&name) {
            api.delete(&name, &DeleteParams::background()).await?;
            metrics::deleted(kind);
            deleted.push(format!("{kind} {name}"));
        }
    }
    Ok(deleted)
}

/// Deletes the objects this BentoDeployment owns that are no longer desired (a removed runner, a disabled Ingress).
async fn prune(
    client: &Client,
    ns: &str,
    bd: &BentoDeployment,
    objects: &[Object],
) -> Result<Vec<String>, Error> {
    let keep = |kind: &str| -> Vec<String> {
        objects
            .iter()
            .filter(|o| o.kind() == kind)
            .map(|o| o.name().to_string())
            .collect()
    };
    let mut deleted =
        prune_kind::<Deployment>(client, ns, bd, &keep("Deployment"), "Deployment").await?;
    deleted.extend(
        prune_kind::<HorizontalPodAutoscaler>(
            client,
            ns,
            bd,
            &keep("HorizontalPodAutoscaler"),
            "HorizontalPodAutoscaler",
        )
        .await?,
    );
    deleted.extend(prune_kind::<Service>(client, ns, bd, &keep("Service"), "Service").await?);
    deleted.extend(prune_kind::<Ingress>(client, ns, bd, &keep("Ingress"), "Ingress").await?);
    Ok(deleted)
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// Writes the conditions (keeping the transition time of those whose status did not change) when they differ
/// from the current ones; returns whether they did.
async fn set_status(
    api: &Api<BentoDeployment>,
    bd: &BentoDeployment,
    wanted: &[(&str, &str, &str, &str)],
    pod_selector: Option<&BTreeMap<String, String>>,
) -> Result<bool, Error> {
    let current = bd
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut conditions = current.clone();
    for (type_, status, reason, message) in wanted {
        let existing = conditions.iter().position(|c| c.type_ == *type_);
        let transition = match existing.map(|i| &conditions[i]) {
            Some(c) if c.status == *status => c.last_transition_time.clone(),
            _ => now(),
        };
        let c = Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            last_transition_time: transition,
            observed_generation: bd.metadata.generation,
        };
        match existing {
            Some(i) => conditions[i] = c,
            None => conditions.push(c),
        }
    }
    let selector = pod_selector
        .cloned()
        .or_else(|| bd.status.as_ref().and_then(|s| s.pod_selector.clone()));
    let same = conditions == current
        && selector == bd.status.as_ref().and_then(|s| s.pod_selector.clone());
    if same {
        return Ok(false);
    }
    let patch = json!({"status": {"conditions": conditions, "podSelector": selector}});
    api.patch_status(
        &bd.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await?;
    Ok(true)
}

/// Runs the controller until the process is asked to stop: watches BentoDeployments, the objects they own and the
/// Bentos they name.
pub async fn run(client: Client, config: Config, ready: Arc<std::sync::atomic::AtomicBool>) {
    let ctx = Context::new(client.clone(), config);
    let bds: Api<BentoDeployment> = Api::all(client.clone());
    let wc = watcher::Config::default();
    let store_ctx = ctx.clone();
    let controller = Controller::new(bds, wc.clone());
    let store = controller.store();
    ready.store(true, std::sync::atomic::Ordering::Relaxed);
    controller
        .owns(Api::<Deployment>::all(client.clone()), wc.clone())
        .owns(Api::<Service>::all(client.clone()), wc.clone())
        .owns(
            Api::<HorizontalPodAutoscaler>::all(client.clone()),
            wc.clone(),
        )
        .owns(Api::<Ingress>::all(client.clone()), wc.clone())
        .watches(Api::<Bento>::all(client.clone()), wc, move |bento| {
            // A Bento wakes every BentoDeployment of its namespace that names it.
            let ns = bento.namespace();
            let name = bento.name_any();
            store
                .state()
                .into_iter()
                .filter(|bd| bd.namespace() == ns && bd.spec.bento == name)
                .map(|bd| ObjectRef::from_obj(bd.as_ref()))
                .collect::<Vec<_>>()
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, store_ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
}
