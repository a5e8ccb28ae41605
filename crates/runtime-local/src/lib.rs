//! The embedded "local" cluster: deployments run as supervised processes on the server's own
//! machine.
//!
//! For each deployment the runtime
//! - extracts the bento (and the models it uses) once into `<data_dir>/bentos/<repo>/<version>`
//!   ([`bento`]), from archives the server's storage gives through [`Fetch`];
//! - prepares its Python environment once per (Python version, locked requirements) in
//!   `envs_dir` ([`env`]), with a host `pythonX.Y` of the bento's version;
//! - runs `min_replicas` replicas of `python -m bentoml serve <bento_dir>` (what a replica runs
//!   is a [`Launcher`], injectable for tests), each on a port of its own, restarted with
//!   back-off when they exit, polled on `/readyz`;
//! - serves them behind ONE port per deployment ([`proxy`]), kept across restarts of the server
//!   in `<data_dir>/deployments/<uid>/port`;
//! - writes each replica's output to `<data_dir>/deployments/<uid>/logs/<replica>.log`.
//!
//! Runners of bentoml 1.0/1.1 bentos (and the other services of 1.2+ bentos) are started by
//! `bentoml serve` itself, which supervises them inside the replica's process group; the
//! runtime does not run `start-runner-server` processes of its own.
//!
//! A rollout (new revision, bento, envs or replica count) stops the old replicas, then starts
//! the new ones (stop-then-start: the proxy answers 503 in between).
//!
//! [`LocalRuntime::reconcile`] never waits for long work: fetching, extracting and installing
//! happen in a background task and the deployment reports `deploying` meanwhile.

pub mod bento;
pub mod env;
pub mod process;
pub mod proxy;

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use yatai_domain::deployments::{BoxFuture, ClusterRuntime, DeploymentStatus, Desired, Observed};
use yatai_image_builder::Fetch;

pub use process::CommandSpec;

/// How the local runtime works. [`LocalConfig::new`] gives the defaults for a data directory.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Bentos, deployment state (ports, pid files) and logs live under here.
    pub data_dir: PathBuf,
    /// Prepared Python environments and pip's cache. Separate from `data_dir` so that tests,
    /// CI and several installations can share one cache (an environment is only ever read
    /// once complete).
    pub envs_dir: PathBuf,
    /// The address the deployments' proxies listen on (`0.0.0.0` to serve other machines).
    pub bind_host: String,
    /// The host name put in the deployments' URLs.
    pub public_host: String,
    /// Where to look for `pythonX.Y` (a PATH value); `None`: the server's own PATH.
    pub python_search_path: Option<OsString>,
    /// How often each replica's `/readyz` is polled.
    pub health_interval: Duration,
    /// How long a process may take to stop after SIGTERM before it gets SIGKILL.
    pub stop_grace: Duration,
    /// The wait before the first restart of a crashed replica; doubled on each crash in a row.
    pub restart_backoff_initial: Duration,
    /// The longest wait between restarts; a replica that ran this long starts over at
    /// `restart_backoff_initial`.
    pub restart_backoff_max: Duration,
    /// The longest an environment install may take.
    pub install_timeout: Duration,
    /// The most replicas one deployment may ask for (each is a full `bentoml serve`).
    pub max_replicas: u32,
    /// A deployment that failed to prepare (fetch, Python, install) is tried again after this
    /// long on the next reconcile; a new revision tries again at once.
    pub retry_failed_after: Duration,
}

impl LocalConfig {
    /// The defaults: environments in `<data_dir>/envs`, listening on and announcing
    /// `127.0.0.1`, readiness polled every second, 10 s to stop, restarts after 1 s doubling
    /// to 60 s, installs of at most 30 minutes, at most 16 replicas.
    pub fn new(data_dir: impl Into<PathBuf>) -> LocalConfig {
        let data_dir = data_dir.into();
        LocalConfig {
            envs_dir: data_dir.join("envs"),
            data_dir,
            bind_host: "127.0.0.1".into(),
            public_host: "127.0.0.1".into(),
            python_search_path: None,
            health_interval: Duration::from_secs(1),
            stop_grace: Duration::from_secs(10),
            restart_backoff_initial: Duration::from_secs(1),
            restart_backoff_max: Duration::from_secs(60),
            install_timeout: Duration::from_secs(30 * 60),
            max_replicas: 16,
            retry_failed_after: Duration::from_secs(300),
        }
    }
}

/// What one replica is started with.
#[derive(Debug)]
pub struct ReplicaContext<'a> {
    pub desired: &'a Desired,
    /// `api-server-0`, `api-server-1`, ...
    pub replica: &'a str,
    /// The port it must listen on, on 127.0.0.1 (only the proxy talks to replicas).
    pub port: u16,
    /// The extracted bento, when the launcher [needs one](Launcher::needs_bento).
    pub bento_dir: Option<&'a Path>,
    /// The prepared environment's interpreter, likewise.
    pub python: Option<&'a Path>,
    /// A scratch directory of this replica (kept across restarts).
    pub home: &'a Path,
}

/// What a replica runs. The runtime adds the deployment's envs (`ComponentSpec.envs`) on top
/// of the launcher's own environment.
pub trait Launcher: Send + Sync + std::fmt::Debug {
    /// Whether the bento must be fetched and its Python environment prepared first.
    fn needs_bento(&self) -> bool {
        true
    }
    /// The command of one replica; `Err` is a sentence shown as the replica's failure.
    fn command(&self, ctx: &ReplicaContext<'_>) -> Result<CommandSpec, String>;
}

/// `python -m bentoml serve <bento_dir> --host 127.0.0.1 --port P` in the prepared environment
/// (works for bentoml 1.0 to 1.4 bentos; `bentoml serve` starts the runners itself).
#[derive(Debug, Default, Clone)]
pub struct BentomlLauncher;

impl Launcher for BentomlLauncher {
    fn command(&self, ctx: &ReplicaContext<'_>) -> Result<CommandSpec, String> {
        let (Some(bento_dir), Some(python)) = (ctx.bento_dir, ctx.python) else {
            return Err("the bento or its environment is not prepared".into());
        };
        let venv = python.parent().and_then(Path::parent).unwrap_or(python);
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![venv.join("bin")];
        dirs.extend(std::env::split_paths(&path));
        let path = std::env::join_paths(dirs)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(CommandSpec {
            program: python.to_path_buf(),
            args: vec![
                "-m".into(),
                "bentoml".into(),
                "serve".into(),
                bento_dir.into(),
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                ctx.port.to_string().into(),
            ],
            env: vec![
                // Each replica its own BentoML home: its own tmp and prometheus directories,
                // nothing written to the server user's ~/bentoml.
                ("BENTOML_HOME".into(), ctx.home.display().to_string()),
                ("BENTOML_DO_NOT_TRACK".into(), "True".into()),
                ("PYTHONUNBUFFERED".into(), "1".into()),
                ("VIRTUAL_ENV".into(), venv.display().to_string()),
                ("PATH".into(), path),
            ],
            cwd: Some(ctx.home.to_path_buf()),
        })
    }
}

/// The local cluster runtime. Dropping it kills every process it started (SIGKILL); call
/// [`LocalRuntime::shutdown`] first for a graceful stop.
pub struct LocalRuntime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRuntime")
            .field("config", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

struct Inner {
    cfg: LocalConfig,
    fetch: Arc<dyn Fetch>,
    launcher: Arc<dyn Launcher>,
    deps: Mutex<HashMap<String, Arc<Dep>>>,
    /// One install at a time per environment, one extraction per bento.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Inner {
    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(key.to_string()).or_default().clone()
    }
}

/// One deployment.
struct Dep {
    dir: PathBuf,
    status: Mutex<Status>,
    ctl: tokio::sync::Mutex<Ctl>,
}

#[derive(Default)]
struct Ctl {
    /// The spec key of the rollout in effect, `None` when stopped.
    key: Option<String>,
    cancel: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
    proxy: Option<proxy::Proxy>,
}

struct Status {
    /// Bumped by each rollout or stop; writes of older tasks are ignored.
    gen: u64,
    name: String,
    phase: Phase,
    replicas: Vec<Arc<Replica>>,
}

#[derive(Debug, Clone)]
enum Phase {
    Idle,
    Preparing(String),
    Failed(String, Instant),
    Serving,
    Stopping,
    Stopped,
}

struct Replica {
    name: String,
    log: process::LogSink,
    st: Mutex<ReplicaState>,
}

#[derive(Default)]
struct ReplicaState {
    port: u16,
    pid: Option<u32>,
    ready: bool,
    ever_ready: bool,
    /// Why it is down (exit status, last lines), until it is ready again.
    down: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Dep {
    fn set_phase(&self, gen: u64, phase: Phase) {
        let mut s = lock(&self.status);
        if s.gen == gen {
            s.phase = phase;
        }
    }

    fn next_gen(&self, phase: Phase) -> u64 {
        let mut s = lock(&self.status);
        s.gen += 1;
        s.phase = phase;
        s.gen
    }

    fn observe(&self, url: Option<String>) -> Observed {
        let s = lock(&self.status);
        let (status, reason) = match &s.phase {
            Phase::Idle => (DeploymentStatus::Deploying, "starting".to_string()),
            Phase::Preparing(m) => (DeploymentStatus::Deploying, m.clone()),
            Phase::Failed(m, _) => (DeploymentStatus::Failed, m.clone()),
            Phase::Stopping => (
                DeploymentStatus::Terminating,
                "stopping its processes".to_string(),
            ),
            Phase::Stopped => (DeploymentStatus::Terminated, String::new()),
            Phase::Serving => serving_status(&s.replicas),
        };
        let url = match status {
            DeploymentStatus::Terminated | DeploymentStatus::Terminating => None,
            _ => url,
        };
        Observed {
            status,
            reason,
            url,
        }
    }
}

fn serving_status(replicas: &[Arc<Replica>]) -> (DeploymentStatus, String) {
    let states: Vec<(String, bool, bool, Option<String>)> = replicas
        .iter()
        .map(|r| {
            let st = lock(&r.st);
            (r.name.clone(), st.ready, st.ever_ready, st.down.clone())
        })
        .collect();
    if let Some((_, _, _, Some(down))) = states.iter().find(|s| !s.1 && s.3.is_some()) {
        return (DeploymentStatus::Unhealthy, down.clone());
    }
    let total = states.len();
    let ready = states.iter().filter(|s| s.1).count();
    if ready == total {
        return (DeploymentStatus::Running, String::new());
    }
    if states.iter().all(|s| s.2) {
        let names: Vec<&str> = states
            .iter()
            .filter(|s| !s.1)
            .map(|s| s.0.as_str())
            .collect();
        return (
            DeploymentStatus::Unhealthy,
            format!("{} stopped answering /readyz", names.join(", ")),
        );
    }
    (
        DeploymentStatus::Deploying,
        format!("{ready} of {total} replicas answer /readyz; waiting for the others"),
    )
}

impl proxy::Backends for Dep {
    fn ready_ports(&self) -> Vec<u16> {
        let s = lock(&self.status);
        s.replicas
            .iter()
            .filter_map(|r| {
                let st = lock(&r.st);
                st.ready.then_some(st.port)
            })
            .collect()
    }

    fn unavailable_reason(&self) -> String {
        let name = lock(&self.status).name.clone();
        let o = self.observe(None);
        // Whoever reaches the port reads this: the status, never the reason (it quotes the
        // replica's last log lines, which the API shows to members only).
        format!(
            "deployment {name} has no ready replica (status {}); try again shortly",
            o.status.as_str()
        )
    }
}

/// What a rollout's replicas run with.
#[derive(Debug, Default)]
struct Prepared {
    bento_dir: Option<PathBuf>,
    python: Option<PathBuf>,
}

/// Everything of `desired` whose change means a new rollout.
fn spec_key(d: &Desired) -> String {
    let v = serde_json::json!([
        d.revision_uid,
        d.bento_repository,
        d.bento_version,
        d.api_server.min_replicas,
        d.api_server.envs,
        d.runners,
    ]);
    hex::encode(Sha256::digest(v.to_string().as_bytes()))
}

async fn cancelled(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

impl LocalRuntime {
    /// A runtime running bentos with [`BentomlLauncher`]. Kills what a previous run of the
    /// server left running (recorded in pid files), and removes half-made environments.
    pub fn new(cfg: LocalConfig, fetch: Arc<dyn Fetch>) -> std::io::Result<LocalRuntime> {
        Self::with_launcher(cfg, fetch, Arc::new(BentomlLauncher))
    }

    /// A runtime whose replicas run what `launcher` says.
    pub fn with_launcher(
        cfg: LocalConfig,
        fetch: Arc<dyn Fetch>,
        launcher: Arc<dyn Launcher>,
    ) -> std::io::Result<LocalRuntime> {
        let deployments = cfg.data_dir.join("deployments");
        std::fs::create_dir_all(&deployments).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot create {} for the local cluster: {e}",
                    deployments.display()
                ),
            )
        })?;
        for entry in std::fs::read_dir(&deployments)?.flatten() {
            let pids = entry.path().join("pids");
            for pid in std::fs::read_dir(&pids).into_iter().flatten().flatten() {
                if process::kill_recorded(&pid.path()) {
                    tracing::info!(
                        "killed a leftover process of a previous run ({})",
                        pid.path().display()
                    );
                }
            }
        }
        // Workers of replicas whose arbiter died with a previous run (kill -9 of the server).
        let orphans = process::kill_marked(&deployments, true);
        if orphans > 0 {
            tracing::info!("killed {orphans} leftover worker process(es) of a previous run");
        }
        env::clean_stale(&cfg.envs_dir);
        env::clean_stale(&cfg.data_dir.join("bentos"));
        Ok(LocalRuntime {
            inner: Arc::new(Inner {
                cfg,
                fetch,
                launcher,
                deps: Mutex::new(HashMap::new()),
                locks: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The configuration in effect.
    pub fn config(&self) -> &LocalConfig {
        &self.inner.cfg
    }

    fn dep(&self, uid: &str, name: &str) -> Arc<Dep> {
        let mut deps = lock(&self.inner.deps);
        let dep = deps
            .entry(uid.to_string())
            .or_insert_with(|| {
                Arc::new(Dep {
                    dir: self.inner.cfg.data_dir.join("deployments").join(uid),
                    status: Mutex::new(Status {
                        gen: 0,
                        name: name.to_string(),
                        phase: Phase::Idle,
                        replicas: Vec::new(),
                    }),
                    ctl: tokio::sync::Mutex::new(Ctl::default()),
                })
            })
            .clone();
        lock(&dep.status).name = name.to_string();
        dep
    }

    fn url(&self, port: u16) -> String {
        let h = &self.inner.cfg.public_host;
        if h.contains(':') && !h.starts_with('[') {
            format!("http://[{h}]:{port}")
        } else {
            format!("http://{h}:{port}")
        }
    }

    /// Makes `d` true; see [`ClusterRuntime::reconcile`].
    pub async fn reconcile_desired(&self, d: &Desired) -> Observed {
        if !bento::is_safe_component(&d.uid) {
            return Observed::new(
                DeploymentStatus::Failed,
                format!(
                    "the deployment uid {:?} cannot be used as a directory name (letters, digits, \
                     '-', '_', '.')",
                    d.uid.chars().take(80).collect::<String>()
                ),
            );
        }
        let dep = self.dep(&d.uid, &d.name);
        let mut ctl = dep.ctl.lock().await;
        if !d.running {
            // Closing the port first: nobody should reach replicas being stopped.
            ctl.proxy = None;
            if ctl.key.is_some() {
                if let Some(c) = ctl.cancel.take() {
                    let _ = c.send(true);
                }
                let prev = ctl.task.take();
                let gen = dep.next_gen(Phase::Stopping);
                let d2 = dep.clone();
                ctl.task = Some(tokio::spawn(async move {
                    if let Some(p) = prev {
                        let _ = p.await;
                    }
                    lock(&d2.status).replicas.clear();
                    d2.set_phase(gen, Phase::Stopped);
                }));
                ctl.key = None;
            } else if ctl.task.is_none() {
                dep.next_gen(Phase::Stopped);
            }
            return dep.observe(None);
        }
        if ctl.proxy.is_none() {
            match proxy::start(
                &self.inner.cfg.bind_host,
                &dep.dir.join("port"),
                dep.clone() as Arc<dyn proxy::Backends>,
            )
            .await
            {
                Ok(p) => ctl.proxy = Some(p),
                Err(e) => {
                    return Observed::new(
                        DeploymentStatus::Failed,
                        format!("cannot open the deployment's port: {e}"),
                    )
                }
            }
        }
        let url = ctl.proxy.as_ref().map(|p| self.url(p.port));
        let key = spec_key(d);
        let phase = lock(&dep.status).phase.clone();
        let retry = match phase {
            Phase::Failed(_, at) => at.elapsed() >= self.inner.cfg.retry_failed_after,
            _ => ctl.task.as_ref().is_some_and(|t| t.is_finished()),
        };
        if ctl.key.as_deref() != Some(key.as_str()) || retry {
            if let Some(c) = ctl.cancel.take() {
                let _ = c.send(true);
            }
            let prev = ctl.task.take();
            let gen = dep.next_gen(Phase::Preparing(if prev.is_some() {
                "stopping the previous revision".into()
            } else {
                "starting".into()
            }));
            let (tx, rx) = watch::channel(false);
            ctl.cancel = Some(tx);
            ctl.task = Some(tokio::spawn(rollout(
                self.inner.clone(),
                dep.clone(),
                gen,
                Arc::new(d.clone()),
                prev,
                rx,
            )));
            ctl.key = Some(key);
        }
        dep.observe(url)
    }

    /// Stops every deployment gracefully (SIGTERM, then SIGKILL after the grace period) and
    /// closes their ports. For the server's shutdown; the desired state is untouched, so the
    /// next start brings everything back.
    pub async fn shutdown(&self) {
        let deps: Vec<Arc<Dep>> = lock(&self.inner.deps).values().cloned().collect();
        let mut waits = Vec::new();
        for dep in deps {
            let mut ctl = dep.ctl.lock().await;
            ctl.proxy = None;
            if let Some(c) = ctl.cancel.take() {
                let _ = c.send(true);
            }
            ctl.key = None;
            if let Some(t) = ctl.task.take() {
                waits.push(t);
            }
        }
        for t in waits {
            let _ = t.await;
        }
    }

    /// Removes a deployment: stops it, closes its port, deletes its directory (state, logs).
    pub async fn remove_deployment(&self, uid: &str) -> yatai_domain::Result<()> {
        if !bento::is_safe_component(uid) {
            return Err(yatai_domain::Error::invalid(format!(
                "the deployment uid {:?} cannot be a directory name",
                uid.chars().take(80).collect::<String>()
            )));
        }
        let dep = lock(&self.inner.deps).remove(uid);
        if let Some(dep) = dep {
            let mut ctl = dep.ctl.lock().await;
            ctl.proxy = None;
            if let Some(c) = ctl.cancel.take() {
                let _ = c.send(true);
            }
            if let Some(t) = ctl.task.take() {
                let _ = t.await;
            }
        }
        let dir = self.inner.cfg.data_dir.join("deployments").join(uid);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(yatai_domain::Error::Internal(format!(
                "cannot delete {}: {e}",
                dir.display()
            ))),
        }
    }

    /// The last `n` lines of a deployment's logs (install and every replica, in time order),
    /// each as `[replica] TIMESTAMP line`; `None` when the runtime knows nothing of it.
    pub fn read_logs(&self, uid: &str, n: usize) -> Option<Vec<String>> {
        if !bento::is_safe_component(uid) {
            return None;
        }
        let dir = self
            .inner
            .cfg
            .data_dir
            .join("deployments")
            .join(uid)
            .join("logs");
        let entries = std::fs::read_dir(&dir).ok()?;
        let mut lines: Vec<(String, String)> = Vec::new();
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().to_string();
            let Some(name) = file.strip_suffix(".log") else {
                continue;
            };
            for l in tail_lines(&e.path(), n) {
                let (ts, rest) = l.split_once(' ').unwrap_or(("", l.as_str()));
                lines.push((ts.to_string(), format!("[{name}] {ts} {rest}")));
            }
        }
        // RFC 3339 UTC timestamps of one format sort as text.
        lines.sort_by(|a, b| a.0.cmp(&b.0));
        let skip = lines.len().saturating_sub(n);
        Some(lines.into_iter().skip(skip).map(|l| l.1).collect())
    }

    /// The uids with processes or state (a directory) here.
    pub fn known_uids(&self) -> Vec<String> {
        let mut out: BTreeSet<String> = lock(&self.inner.deps).keys().cloned().collect();
        if let Ok(entries) = std::fs::read_dir(self.inner.cfg.data_dir.join("deployments")) {
            for e in entries.flatten() {
                if e.path().is_dir() {
                    out.insert(e.file_name().to_string_lossy().to_string());
                }
            }
        }
        out.into_iter().collect()
    }
}

/// The last `n` lines of a file, reading only its end.
fn tail_lines(path: &Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let want = (n as u64)
        .saturating_mul(1024)
        .saturating_add(4096)
        .min(len);
    if f.seek(SeekFrom::Start(len - want)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    let _ = f.take(want).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<&str> = text.lines().collect();
    if want < len && !lines.is_empty() {
        lines.remove(0); // probably cut in the middle
    }
    let skip = lines.len().saturating_sub(n);
    lines.into_iter().skip(skip).map(str::to_string).collect()
}

impl Drop for LocalRuntime {
    fn drop(&mut self) {
        // No await here: end the tasks and SIGKILL every process group we started, so that a
        // new runtime (or a restarted server) starts from a clean slate.
        let deps: Vec<Arc<Dep>> = lock(&self.inner.deps).drain().map(|(_, d)| d).collect();
        for dep in deps {
            if let Ok(mut ctl) = dep.ctl.try_lock() {
                ctl.proxy = None;
                if let Some(t) = ctl.task.take() {
                    t.abort();
                }
                ctl.cancel = None;
            }
            let replicas = lock(&dep.status).replicas.clone();
            for r in replicas {
                let pid = lock(&r.st).pid.take();
                if let Some(pid) = pid {
                    process::signal_group(pid, libc::SIGKILL);
                    let _ =
                        std::fs::remove_file(dep.dir.join("pids").join(format!("{}.pid", r.name)));
                }
                process::kill_marked(&dep.dir.join("home").join(&r.name), false);
            }
        }
    }
}

impl ClusterRuntime for LocalRuntime {
    fn reconcile<'a>(&'a self, desired: &'a Desired) -> BoxFuture<'a, Observed> {
        Box::pin(self.reconcile_desired(desired))
    }

    fn remove<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, yatai_domain::Result<()>> {
        Box::pin(self.remove_deployment(uid))
    }

    fn logs<'a>(&'a self, uid: &'a str, lines: usize) -> BoxFuture<'a, Option<Vec<String>>> {
        Box::pin(async move { self.read_logs(uid, lines) })
    }

    fn known<'a>(&'a self) -> BoxFuture<'a, Vec<String>> {
        Box::pin(async move { self.known_uids() })
    }
}

/// One rollout: wait for the previous one to stop, prepare, run the replicas until cancelled.
async fn rollout(
    inner: Arc<Inner>,
    dep: Arc<Dep>,
    gen: u64,
    desired: Arc<Desired>,
    prev: Option<JoinHandle<()>>,
    mut cancel: watch::Receiver<bool>,
) {
    if let Some(p) = prev {
        let _ = p.await;
    }
    lock(&dep.status).replicas.clear();
    if *cancel.borrow() {
        return;
    }
    let prepared = tokio::select! {
        p = prepare(&inner, &dep, gen, &desired) => p,
        _ = cancelled(&mut cancel) => return,
    };
    let prepared = match prepared {
        Ok(p) => Arc::new(p),
        Err(e) => {
            tracing::warn!(deployment = %desired.name, "{e}");
            dep.set_phase(gen, Phase::Failed(e, Instant::now()));
            return;
        }
    };
    let n = desired.api_server.min_replicas.max(1);
    let logs = dep.dir.join("logs");
    let mut replicas = Vec::new();
    for i in 0..n {
        let name = format!("api-server-{i}");
        let log = match process::LogSink::open(&logs.join(format!("{name}.log"))) {
            Ok(l) => l,
            Err(e) => {
                dep.set_phase(
                    gen,
                    Phase::Failed(
                        format!("cannot write the logs in {}: {e}", logs.display()),
                        Instant::now(),
                    ),
                );
                return;
            }
        };
        replicas.push(Arc::new(Replica {
            name,
            log,
            st: Mutex::new(ReplicaState::default()),
        }));
    }
    {
        let mut s = lock(&dep.status);
        if s.gen != gen {
            return;
        }
        s.replicas = replicas.clone();
        s.phase = Phase::Serving;
    }
    let mut set = JoinSet::new();
    for r in replicas {
        set.spawn(supervise(
            inner.clone(),
            dep.clone(),
            desired.clone(),
            prepared.clone(),
            r,
            cancel.clone(),
        ));
    }
    while set.join_next().await.is_some() {}
}

/// Fetches the bento, finds the Python, prepares the environment.
async fn prepare(
    inner: &Arc<Inner>,
    dep: &Arc<Dep>,
    gen: u64,
    d: &Desired,
) -> Result<Prepared, String> {
    let n = d.api_server.min_replicas.max(1);
    if n > inner.cfg.max_replicas {
        return Err(format!(
            "the deployment asks for {n} replicas; the local cluster runs at most {} per \
             deployment; lower min_replicas",
            inner.cfg.max_replicas
        ));
    }
    if !inner.launcher.needs_bento() {
        return Ok(Prepared::default());
    }
    let tag = format!("{}:{}", d.bento_repository, d.bento_version);
    dep.set_phase(gen, Phase::Preparing(format!("fetching bento {tag}")));
    let (bento_dir, manifest) = {
        let l = inner.lock_for(&format!("bento {tag}"));
        let _g = l.lock().await;
        bento::ensure(
            &inner.cfg.data_dir,
            &inner.fetch,
            &d.bento_repository,
            &d.bento_version,
        )
        .await?
    };
    let path = inner
        .cfg
        .python_search_path
        .clone()
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    let python = env::find_python(manifest.python_version(), &path).await?;
    let (requirements, _) = yatai_image_builder::deps::requirements(&manifest, &bento_dir)
        .map_err(|e| format!("bento {tag}: {e}"))?;
    let key = env::cache_key(&python.version, &requirements);
    let env_dir = env::env_dir(&inner.cfg.envs_dir, &key);
    if !env::is_complete(&env_dir) {
        let count = requirements
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim().starts_with(['#', '-']))
            .count();
        dep.set_phase(
            gen,
            Phase::Preparing(format!(
                "installing the Python {} environment of bento {tag} ({count} requirements; \
                 once per set of requirements, see the deployment's logs)",
                python.version
            )),
        );
    }
    let log = process::LogSink::open(&dep.dir.join("logs").join("install.log"))
        .map_err(|e| format!("cannot write the install log: {e}"))?;
    let l = inner.lock_for(&format!("env {key}"));
    let _g = l.lock().await;
    let env_dir = env::install(
        &env::InstallRequest {
            envs_dir: &inner.cfg.envs_dir,
            python: &python,
            requirements: &requirements,
            timeout: inner.cfg.install_timeout,
        },
        &log,
    )
    .await
    .map_err(|e| format!("bento {tag}: {e}"))?;
    Ok(Prepared {
        bento_dir: Some(bento_dir),
        python: Some(env::env_python(&env_dir)),
    })
}

/// A free port on 127.0.0.1 for a replica (the kernel picks it; the replica binds it next).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Whether `GET /readyz` on the port answers 200.
async fn readyz(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let check = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        s.write_all(
            format!("GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .ok()?;
        // Read the whole (small) answer: closing with unread data resets the connection,
        // which fills the replica's log with tracebacks.
        let mut buf = Vec::new();
        s.take(64 * 1024).read_to_end(&mut buf).await.ok()?;
        Some(buf.starts_with(b"HTTP/1.1 200") || buf.starts_with(b"HTTP/1.0 200"))
    };
    tokio::time::timeout(Duration::from_secs(3), check)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Runs one replica until cancelled: start, poll `/readyz`, restart with back-off on exit.
async fn supervise(
    inner: Arc<Inner>,
    dep: Arc<Dep>,
    desired: Arc<Desired>,
    prepared: Arc<Prepared>,
    replica: Arc<Replica>,
    mut cancel: watch::Receiver<bool>,
) {
    let cfg = &inner.cfg;
    let mut backoff = cfg.restart_backoff_initial;
    let home = dep.dir.join("home").join(&replica.name);
    let pid_file = dep.dir.join("pids").join(format!("{}.pid", replica.name));
    loop {
        let started = Instant::now();
        let failure: String = 'run: {
            if let Err(e) = std::fs::create_dir_all(&home) {
                break 'run format!("cannot create {}: {e}", home.display());
            }
            let port = match free_port() {
                Ok(p) => p,
                Err(e) => break 'run format!("cannot find a free port: {e}"),
            };
            let ctx = ReplicaContext {
                desired: &desired,
                replica: &replica.name,
                port,
                bento_dir: prepared.bento_dir.as_deref(),
                python: prepared.python.as_deref(),
                home: &home,
            };
            let mut spec = match inner.launcher.command(&ctx) {
                Ok(s) => s,
                Err(e) => break 'run e,
            };
            spec.env.extend(desired.api_server.envs.iter().cloned());
            spec.env
                .push((process::REPLICA_MARK.into(), home.display().to_string()));
            replica.log.line(&format!(
                "yatai: starting {} of revision {} on port {port}",
                replica.name, desired.revision_uid
            ));
            let mut child = match process::spawn(&spec, &replica.log) {
                Ok(c) => c,
                Err(e) => break 'run format!("cannot start {}: {e}", spec.program.display()),
            };
            let pid = child.id();
            if let Some(pid) = pid {
                if let Err(e) = process::write_pid_file(&pid_file, pid) {
                    tracing::warn!("cannot record pid {pid} in {}: {e}", pid_file.display());
                }
            }
            {
                let mut st = lock(&replica.st);
                st.port = port;
                st.pid = pid;
                st.ready = false;
            }
            let mut failures = 0u32;
            let status = loop {
                tokio::select! {
                    s = child.wait() => break s,
                    _ = cancelled(&mut cancel) => {
                        lock(&replica.st).ready = false;
                        replica.log.line("yatai: stopping");
                        process::stop(&mut child, cfg.stop_grace).await;
                        process::kill_marked(&home, false);
                        lock(&replica.st).pid = None;
                        let _ = std::fs::remove_file(&pid_file);
                        return;
                    }
                    _ = tokio::time::sleep(cfg.health_interval) => {
                        let ok = readyz(port).await;
                        let mut st = lock(&replica.st);
                        if ok {
                            failures = 0;
                            st.ready = true;
                            st.ever_ready = true;
                            st.down = None;
                        } else {
                            // One slow answer (a busy worker) does not take a ready replica
                            // out of rotation; three in a row do, as Kubernetes' default
                            // failureThreshold.
                            failures += 1;
                            if failures >= 3 {
                                st.ready = false;
                            }
                        }
                    }
                }
            };
            // Workers of the replica may outlive it: end its whole group, and whatever else
            // carries its mark (workers in sessions of their own).
            if let Some(pid) = pid {
                process::signal_group(pid, libc::SIGKILL);
            }
            process::kill_marked(&home, false);
            let _ = std::fs::remove_file(&pid_file);
            match status {
                Ok(s) => format!("exited with {}", process::describe_exit(&s)),
                Err(e) => format!("could not be waited for: {e}"),
            }
        };
        if started.elapsed() >= cfg.restart_backoff_max {
            backoff = cfg.restart_backoff_initial;
        }
        // Long lines (a JSON log record, a huge traceback line) would drown the status.
        let tail: Vec<String> = replica
            .log
            .tail(6)
            .into_iter()
            .map(|l| {
                if l.chars().count() > 300 {
                    format!("{}…", l.chars().take(300).collect::<String>())
                } else {
                    l
                }
            })
            .collect();
        replica.log.line(&format!(
            "yatai: {} {failure}; restarting in {:.1} s",
            replica.name,
            backoff.as_secs_f64()
        ));
        {
            let mut st = lock(&replica.st);
            st.ready = false;
            st.pid = None;
            st.down = Some(format!(
                "replica {} {failure}; it is restarted in {:.1} s{}",
                replica.name,
                backoff.as_secs_f64(),
                if tail.is_empty() {
                    String::new()
                } else {
                    format!("; its last lines:\n{}", tail.join("\n"))
                }
            ));
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = cancelled(&mut cancel) => return,
        }
        backoff = (backoff * 2).min(cfg.restart_backoff_max);
    }
}
