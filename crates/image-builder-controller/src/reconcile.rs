//! One reconcile of a `BentoRequest`, its error policy, and the controller loop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use yatai_crds::bento_request::condition;
use yatai_crds::{Bento, BentoRequest};

use crate::desired::{self, set_condition};
use crate::job::{self, JobSettings, JobState};
use crate::ImageBuilder;

/// How often a running build Job is looked at (its changes wake the controller too).
pub const JOB_POLL: std::time::Duration = std::time::Duration::from_secs(15);

/// The field manager of everything the controller writes.
pub const MANAGER: &str = "yatai-image-builder";

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("checking whether {image} exists: {message}")]
    Check { image: String, message: String },
    #[error("building the image of {tag}: {message}")]
    Build { tag: String, message: String },
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub builder: Arc<dyn ImageBuilder>,
    pub recorder: Recorder,
    /// Job mode: builds run as `batch/v1` Jobs instead of in this process.
    pub job: Option<JobSettings>,
    /// Failures in a row per request (`namespace/name`), for the back-off.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(client: Client, builder: Arc<dyn ImageBuilder>) -> Self {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            builder,
            job: None,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Builds in Jobs (`--build-in-job`) instead of in this process.
    pub fn with_job(mut self, settings: Option<JobSettings>) -> Self {
        self.job = settings;
        self
    }

    /// Failures in a row of one request.
    pub fn failures_of(&self, key: &str) -> u32 {
        self.failures
            .lock()
            .map(|m| m.get(key).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

fn key(r: &BentoRequest) -> String {
    format!("{}/{}", r.namespace().unwrap_or_default(), r.name_any())
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

struct Step<'a> {
    ctx: &'a Context,
    request: &'a BentoRequest,
    api: Api<BentoRequest>,
    conditions: Vec<Condition>,
}

impl Step<'_> {
    /// Sets a condition and writes the status when it changed.
    async fn condition(
        &mut self,
        type_: &str,
        status: bool,
        reason: &str,
        message: &str,
    ) -> Result<(), Error> {
        if set_condition(
            &mut self.conditions,
            type_,
            status,
            reason,
            message,
            self.request.metadata.generation,
            now(),
        ) {
            // The CRD requires imageBuilderPodStatus; an in-process build has no pod: empty.
            let patch = serde_json::json!({"status": {"conditions": self.conditions, "imageBuilderPodStatus": {}}});
            self.api
                .patch_status(
                    &self.request.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
        }
        Ok(())
    }

    async fn event(&self, type_: EventType, reason: &str, note: String) {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        // An event that cannot be written must not fail the reconcile.
        if let Err(e) = self
            .ctx
            .recorder
            .publish(&ev, &self.request.object_ref(&()))
            .await
        {
            tracing::warn!(error = %e, "could not write a Kubernetes event");
        }
    }
}

/// Makes the world match one `BentoRequest`: image checked (or given), built when missing,
/// `Bento` written, conditions and events set.
pub async fn reconcile(request: Arc<BentoRequest>, ctx: Arc<Context>) -> Result<Action, Error> {
    if request.meta().deletion_timestamp.is_some() {
        // The Bento is owned by the request: Kubernetes' garbage collector removes it.
        return Ok(Action::await_change());
    }
    let ns = request.namespace().unwrap_or_else(|| "default".into());
    let mut step = Step {
        ctx: &ctx,
        request: &request,
        api: Api::namespaced(ctx.client.clone(), &ns),
        conditions: request
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default(),
    };
    let tag = request.spec.bento_tag.clone();
    let image = ctx.builder.image_for(&request);
    let given = request.spec.image.as_ref().is_some_and(|i| !i.is_empty());

    let exists = if given {
        step.condition(
            condition::IMAGE_EXISTS_CHECKED,
            true,
            "ImageGiven",
            "spec.image is used as is",
        )
        .await?;
        true
    } else {
        let exists = match ctx.builder.image_exists(&image).await {
            Ok(e) => e,
            Err(message) => {
                step.condition(
                    condition::IMAGE_EXISTS_CHECKED,
                    false,
                    "CheckFailed",
                    &message,
                )
                .await?;
                step.event(
                    EventType::Warning,
                    "CheckFailed",
                    format!("cannot check {image}: {message}"),
                )
                .await;
                return Err(Error::Check { image, message });
            }
        };
        step.condition(
            condition::IMAGE_EXISTS_CHECKED,
            true,
            "Checked",
            &format!("looked for {image}"),
        )
        .await?;
        exists
    };
    step.condition(
        condition::IMAGE_EXISTS,
        exists,
        if exists { "ImageFound" } else { "ImageMissing" },
        &image,
    )
    .await?;

    let image = if exists {
        image
    } else if let Some(settings) = &ctx.job {
        match build_in_job(&mut step, settings, &ns).await? {
            Some(built) => built,
            None => return Ok(Action::requeue(JOB_POLL)),
        }
    } else {
        step.condition(
            condition::IMAGE_BUILDING,
            true,
            "Building",
            &format!("building {image}"),
        )
        .await?;
        step.event(
            EventType::Normal,
            "ImageBuilding",
            format!("building the image of {tag}"),
        )
        .await;
        match ctx.builder.build(&request).await {
            Ok(built) => {
                step.condition(condition::IMAGE_BUILDING, false, "Built", &built)
                    .await?;
                step.condition(condition::IMAGE_EXISTS, true, "ImageBuilt", &built)
                    .await?;
                step.event(EventType::Normal, "ImageBuilt", format!("built {built}"))
                    .await;
                built
            }
            Err(message) => {
                step.condition(condition::IMAGE_BUILDING, false, "BuildFailed", &message)
                    .await?;
                step.event(EventType::Warning, "BuildFailed", message.clone())
                    .await;
                return Err(Error::Build { tag, message });
            }
        }
    };

    let bento = desired::bento(&request, &image);
    let bentos: Api<Bento> = Api::namespaced(ctx.client.clone(), &ns);
    bentos
        .patch(
            &request.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&bento),
        )
        .await?;
    bentos
        .patch_status(
            &request.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"status": {"ready": true}})),
        )
        .await?;
    step.condition(
        condition::BENTO_AVAILABLE,
        true,
        "BentoCreated",
        &format!("Bento {} serves {image}", request.name_any()),
    )
    .await?;
    step.event(
        EventType::Normal,
        "BentoAvailable",
        format!("Bento {} uses {image}", request.name_any()),
    )
    .await;
    if let Ok(mut f) = ctx.failures.lock() {
        f.remove(&key(&request));
    }
    Ok(Action::await_change())
}

/// Job mode: makes sure the build Job of the request exists (an existing one is reused, never
/// recreated) and reads its state: `Some(image)` when it succeeded, `None` while it runs, an
/// error (hence the back-off) when it failed.
async fn build_in_job(
    step: &mut Step<'_>,
    settings: &JobSettings,
    ns: &str,
) -> Result<Option<String>, Error> {
    let request = step.request;
    let tag = request.spec.bento_tag.clone();
    let name = job::job_name(request);
    let jobs: Api<Job> = Api::namespaced(step.ctx.client.clone(), ns);
    let existing = jobs.get_opt(&name).await?;
    let job = match existing {
        Some(j) => j,
        None => {
            let desired = job::build_job(request, settings);
            let created = jobs
                .patch(&name, &PatchParams::apply(MANAGER), &Patch::Apply(&desired))
                .await?;
            step.event(
                EventType::Normal,
                "ImageBuilding",
                format!("building the image of {tag} in Job {name}"),
            )
            .await;
            created
        }
    };
    match job::job_state(&job) {
        JobState::Running => {
            step.condition(
                condition::IMAGE_BUILDING,
                true,
                "BuildingInJob",
                &format!("Job {name} is building the image of {tag}"),
            )
            .await?;
            Ok(None)
        }
        JobState::Succeeded => {
            let built = job::built_image(request, settings);
            step.condition(condition::IMAGE_BUILDING, false, "Built", &built)
                .await?;
            step.condition(condition::IMAGE_EXISTS, true, "ImageBuilt", &built)
                .await?;
            step.event(
                EventType::Normal,
                "ImageBuilt",
                format!("Job {name} built {built}"),
            )
            .await;
            Ok(Some(built))
        }
        JobState::Failed(why) => {
            let message = format!("Job {name} failed: {why}");
            step.condition(condition::IMAGE_BUILDING, false, "BuildFailed", &message)
                .await?;
            step.event(EventType::Warning, "BuildFailed", message.clone())
                .await;
            Err(Error::Build { tag, message })
        }
    }
}

/// After a failure: retry later, later each time (5 s doubling up to 5 minutes), so that a
/// failing build never loops hot.
pub fn error_policy(request: Arc<BentoRequest>, error: &Error, ctx: Arc<Context>) -> Action {
    let n = match ctx.failures.lock() {
        Ok(mut f) => {
            let n = f.entry(key(&request)).or_insert(0);
            *n += 1;
            *n
        }
        Err(_) => 1,
    };
    let delay = desired::backoff(n);
    tracing::warn!(request = %key(&request), failures = n, retry_in = ?delay, "{error}");
    Action::requeue(delay)
}

/// Runs the controller until a termination signal: every `BentoRequest` of the cluster (or of
/// `namespace`), and the `Bento`s they own.
///
/// With `job` set, builds run as Jobs, which the controller watches too.
pub async fn run(
    client: Client,
    builder: Arc<dyn ImageBuilder>,
    namespace: Option<String>,
    job: Option<JobSettings>,
) {
    let (requests, bentos, jobs): (Api<BentoRequest>, Api<Bento>, Api<Job>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
        ),
    };
    let in_job = job.is_some();
    let ctx = Arc::new(Context::new(client, builder).with_job(job));
    let mut controller = Controller::new(requests, watcher::Config::default())
        .owns(bentos, watcher::Config::default());
    if in_job {
        controller = controller.owns(jobs, watcher::Config::default().labels(job::REQUEST_LABEL));
    }
    controller
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::info!(request = %obj.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile failed"),
            }
        })
        .await;
}
