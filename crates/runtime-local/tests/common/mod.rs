//! Shared helpers of the runtime's tests: a stand-in replica (a real Python HTTP server), a
//! fetch reading archives from files, a tiny HTTP client, desired states.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use yatai_domain::deployments::{ComponentSpec, DeploymentStatus, Desired, Observed};
use yatai_image_builder::{BuildError, Fetch};
use yatai_runtime_local::{CommandSpec, Launcher, LocalRuntime, ReplicaContext};

/// Serves `/readyz` (503 for READY_AFTER seconds after start, then 200) and, on any other path,
/// `$GREETING $PID`.
pub const STAND_IN: &str = r#"
import http.server, os, sys, time
port = int(sys.argv[1])
delay = float(os.environ.get("READY_AFTER", "0"))
start = time.time()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/upgrade":
            # A protocol switch, then echo every line back upper-cased (a WebSocket stand-in).
            self.send_response(101)
            self.send_header("Upgrade", "shout")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            for line in self.rfile:
                self.wfile.write(line.upper())
                self.wfile.flush()
            self.close_connection = True
            return
        if self.path == "/readyz":
            ok = time.time() - start >= delay
            body = b"ok" if ok else b"not yet"
            self.send_response(200 if ok else 503)
        else:
            body = ("%s %d" % (os.environ.get("GREETING", ""), os.getpid())).encode()
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
print("stand-in listening on", port, flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

/// Runs [`STAND_IN`] with the host's python3 instead of bentoml.
#[derive(Debug)]
pub struct StandIn {
    pub script: PathBuf,
}

impl StandIn {
    pub fn new(dir: &Path) -> StandIn {
        let script = dir.join("stand_in.py");
        std::fs::write(&script, STAND_IN).unwrap();
        StandIn { script }
    }
}

impl Launcher for StandIn {
    fn needs_bento(&self) -> bool {
        false
    }
    fn command(&self, ctx: &ReplicaContext<'_>) -> Result<CommandSpec, String> {
        Ok(CommandSpec {
            program: "python3".into(),
            args: vec![self.script.clone().into(), ctx.port.to_string().into()],
            env: vec![],
            cwd: Some(ctx.home.to_path_buf()),
        })
    }
}

/// Archives from files: `<dir>/<kind>-<name>-<version>.tar(.gz)`.
#[derive(Debug)]
pub struct FileFetch {
    pub dir: PathBuf,
}

impl Fetch for FileFetch {
    fn fetch<'a>(
        &'a self,
        kind: yatai_client::Kind,
        name: &'a str,
        version: &'a str,
        dest: &'a Path,
    ) -> futures::future::BoxFuture<'a, Result<(), BuildError>> {
        Box::pin(async move {
            let kind = match kind {
                yatai_client::Kind::Bento => "bento",
                yatai_client::Kind::Model => "model",
            };
            let src = self.dir.join(format!("{kind}-{name}-{version}.tar"));
            if !src.exists() {
                return Err(BuildError::NotFound(format!(
                    "{kind} {name}:{version} not found"
                )));
            }
            std::fs::copy(&src, dest)
                .map(|_| ())
                .map_err(|e| BuildError::Io(e.to_string()))
        })
    }
}

pub fn desired(uid: &str, revision: &str, replicas: u32, envs: &[(&str, &str)]) -> Desired {
    Desired {
        uid: uid.into(),
        organization: "default".into(),
        cluster: "default".into(),
        namespace: "yatai".into(),
        name: format!("dep-{uid}"),
        revision_uid: revision.into(),
        bento_repository: "echo".into(),
        bento_version: "v1".into(),
        running: true,
        api_server: ComponentSpec {
            min_replicas: replicas,
            max_replicas: replicas,
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            resources: Default::default(),
        },
        runners: BTreeMap::new(),
        config: serde_json::Value::Null,
    }
}

/// Reconciles until `pred` holds (or panics after `timeout` with the last observation).
pub async fn wait_for(
    rt: &LocalRuntime,
    d: &Desired,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&Observed) -> bool,
) -> Observed {
    let start = Instant::now();
    loop {
        let o = rt.reconcile_desired(d).await;
        if pred(&o) {
            return o;
        }
        if start.elapsed() > timeout {
            let logs = rt.read_logs(&d.uid, 30).unwrap_or_default().join("\n");
            panic!("waited {timeout:?} for {what}; last observed {o:?}; logs:\n{logs}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn wait_status(
    rt: &LocalRuntime,
    d: &Desired,
    status: DeploymentStatus,
    timeout: Duration,
) -> Observed {
    wait_for(rt, d, timeout, status.as_str(), |o| o.status == status).await
}

/// `GET url+path`: (status, body); `Err` when the connection fails.
pub async fn get(url: &str, path: &str) -> std::io::Result<(u16, String)> {
    let hostport = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(hostport),
    )
    .await
    .map_err(|_| std::io::Error::other("connect timed out"))??;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("read timed out"))??;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    Ok((status, body))
}

/// Whether a process is still alive (a zombie counts as dead).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_string));
            state.as_deref() != Some("Z")
        }
        Err(_) => false,
    }
}

/// The pids recorded for a deployment's replicas.
pub fn recorded_pids(data_dir: &Path, uid: &str) -> Vec<(String, u32)> {
    let dir = data_dir.join("deployments").join(uid).join("pids");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e
            .file_name()
            .to_string_lossy()
            .trim_end_matches(".pid")
            .to_string();
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        if let Some(pid) = text.split_whitespace().next().and_then(|p| p.parse().ok()) {
            out.push((name, pid));
        }
    }
    out.sort();
    out
}

/// Every process whose parent is `pid`, from /proc.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some(i) = stat.rfind(')') else { continue };
        let ppid = stat[i + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|x| x.parse::<u32>().ok());
        if ppid == Some(pid) && alive(p) {
            out.push(p);
        }
    }
    out
}

/// `POST url+path` with a JSON body: (status, body).
pub async fn post_json(url: &str, path: &str, json: &str) -> std::io::Result<(u16, String)> {
    post(url, path, "application/json", json).await
}

/// `POST url+path` with a text body: (status, body).
pub async fn post_text(url: &str, path: &str, text: &str) -> std::io::Result<(u16, String)> {
    post(url, path, "text/plain", text).await
}

async fn post(url: &str, path: &str, ctype: &str, json: &str) -> std::io::Result<(u16, String)> {
    let hostport = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = tokio::net::TcpStream::connect(hostport).await?;
    s.write_all(
        format!(
            "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: {ctype}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{json}",
            json.len()
        )
        .as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut buf))
        .await
        .map_err(|_| std::io::Error::other("read timed out"))??;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    Ok((status, body))
}

/// Writes a plain tar of `dir`'s contents (what a push uploads) to `dest`.
pub fn tar_dir(dir: &Path, dest: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(dest).unwrap());
    b.follow_symlinks(false);
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

/// Writes a tar holding `files` (path, content) to `dest`.
pub fn tar_files(dest: &Path, files: &[(&str, &str)]) {
    let mut b = tar::Builder::new(std::fs::File::create(dest).unwrap());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data.as_bytes()).unwrap();
    }
    b.finish().unwrap();
}
