//! Preparing real bentos: fetch and extraction (with models), the Python lookup, the
//! environment, and one real bentoml 1.4 bento served through the proxy.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use yatai_domain::deployments::{ClusterRuntime, DeploymentStatus, Desired};
use yatai_runtime_local::{LocalConfig, LocalRuntime};

fn runtime(cfg: LocalConfig, archives: &Path) -> LocalRuntime {
    LocalRuntime::new(
        cfg,
        Arc::new(FileFetch {
            dir: archives.to_path_buf(),
        }),
    )
    .unwrap()
}

#[tokio::test]
async fn a_bento_that_cannot_be_fetched_fails_the_deployment() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime(LocalConfig::new(tmp.path().join("data")), tmp.path());
    let d = desired("nofetch", "r1", 1, &[]);
    let o = wait_status(&rt, &d, DeploymentStatus::Failed, Duration::from_secs(20)).await;
    assert!(
        o.reason.contains("bento echo:v1 cannot be fetched") && o.reason.contains("not found"),
        "{o:?}"
    );
    assert!(!tmp.path().join("data/bentos/echo/v1").exists());
    // Failed stays failed (no fetch storm) until a new revision or the retry interval.
    assert_eq!(rt.reconcile(&d).await.status, DeploymentStatus::Failed);
}

#[tokio::test]
async fn a_missing_python_version_fails_the_deployment_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    tar_files(
        &tmp.path().join("bento-echo-v1.tar"),
        &[
            (
                "bento.yaml",
                "name: echo\nversion: v1\nbentoml_version: 1.4.40\nservice: service:Echo\n\
                 image: {python_version: '3.9'}\n\
                 services: [{name: echo, service: '', models: [{tag: 'm:1'}]}]\n",
            ),
            ("src/service.py", "print('hi')\n"),
        ],
    );
    tar_files(
        &tmp.path().join("model-m-1.tar"),
        &[
            ("model.yaml", "name: m\nversion: '1'\n"),
            ("saved.bin", "x"),
        ],
    );
    let mut cfg = LocalConfig::new(tmp.path().join("data"));
    // A PATH without any python.
    let empty = tmp.path().join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    cfg.python_search_path = Some(empty.into_os_string());
    let rt = runtime(cfg, tmp.path());
    let d = desired("nopython", "r1", 1, &[]);
    let o = wait_status(&rt, &d, DeploymentStatus::Failed, Duration::from_secs(20)).await;
    assert!(
        o.reason
            .starts_with("this bento needs Python 3.9, and no python3.9 was found on PATH"),
        "{o:?}"
    );
    // The bento was extracted in place, with its model where `bentoml serve` finds it.
    let bento = tmp.path().join("data/bentos/echo/v1");
    assert!(bento.join("bento.yaml").is_file());
    assert!(bento.join("src/service.py").is_file());
    assert!(bento.join("models/m/1/model.yaml").is_file());
    assert_eq!(
        std::fs::read_to_string(bento.join("models/m/latest")).unwrap(),
        "1"
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path().join("data/bentos"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// `$BENTOML14` / `$BENTOML11`, made by the repository's scripts/venvs.sh when not set.
fn client_venv(var: &str) -> PathBuf {
    if let Some(v) = std::env::var_os(var) {
        return v.into();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/venvs.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let found = stdout.lines().find_map(|l| {
        l.trim_start_matches("export ")
            .strip_prefix(&format!("{var}="))
            .map(|v| v.trim_matches(['"', '\'']).to_string())
    });
    match found {
        Some(v) if out.status.success() => v.into(),
        _ => panic!(
            "this test builds a bento with the real bentoml client: run `eval \"$(scripts/venvs.sh)\"` \
             (needs python3.11 and PyPI) so that ${var} is set; scripts/venvs.sh said:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn run(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn only_version(dir: &Path) -> String {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .find(|n| n != "latest")
        .unwrap()
}

/// Serves a built bento (`home/bentos/<name>`, models in `home/models`) through a runtime
/// whose environments are cached in `~/.cache/yatai/local-envs`, checks `/echo` answers
/// `expect` for `{"text":"hi"}` (1.4) or `hi` (1.1), then terminates it.
async fn serve_built_bento(
    tmp: &Path,
    home: &Path,
    name: &str,
    model: &str,
    json: bool,
    expect: &str,
) {
    let archives = tmp.join("archives");
    std::fs::create_dir_all(&archives).unwrap();
    let bver = only_version(&home.join("bentos").join(name));
    let mver = only_version(&home.join("models").join(model));
    tar_dir(
        &home.join("bentos").join(name).join(&bver),
        &archives.join(format!("bento-{name}-{bver}.tar")),
    );
    tar_dir(
        &home.join("models").join(model).join(&mver),
        &archives.join(format!("model-{model}-{mver}.tar")),
    );
    let mut cfg = LocalConfig::new(tmp.join("data"));
    cfg.envs_dir = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(".cache/yatai/local-envs");
    cfg.stop_grace = Duration::from_secs(5);
    let rt = runtime(cfg, &archives);
    let uid = format!("real-{name}");
    let d = Desired {
        bento_repository: name.into(),
        bento_version: bver.clone(),
        ..desired(&uid, "r1", 1, &[("SUFFIX", "!")])
    };
    let o = rt.reconcile(&d).await;
    assert_eq!(o.status, DeploymentStatus::Deploying, "{o:?}");
    let url = o.url.clone().unwrap();
    let o = wait_for(&rt, &d, Duration::from_secs(1200), "running", |o| {
        o.status == DeploymentStatus::Running || o.status == DeploymentStatus::Failed
    })
    .await;
    assert_eq!(o.status, DeploymentStatus::Running, "{o:?}");
    let bento_dir = tmp.join("data/bentos").join(name).join(&bver);
    assert!(bento_dir
        .join("models")
        .join(model)
        .join(&mver)
        .join("model.yaml")
        .is_file());
    let (code, body) = if json {
        post_json(&url, "/echo", r#"{"text":"hi"}"#).await.unwrap()
    } else {
        post_text(&url, "/echo", "hi").await.unwrap()
    };
    assert_eq!(code, 200, "{body}");
    assert!(body.contains(expect), "{body}");
    let logs = rt.logs(&uid, 500).await.unwrap();
    assert!(
        logs.iter().any(|l| l.starts_with("[api-server-0]")),
        "{logs:#?}"
    );

    let mut stop = d.clone();
    stop.running = false;
    rt.reconcile(&stop).await;
    wait_status(
        &rt,
        &stop,
        DeploymentStatus::Terminated,
        Duration::from_secs(60),
    )
    .await;
    assert!(get(&url, "/readyz").await.is_err());
}

/// Not under a hidden directory (`.tmpXXX`): bentoml refuses to build or serve from one.
fn visible_tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("yatai-runtime-local-")
        .tempdir()
        .unwrap()
}

/// A real bentoml 1.4 bento with a model it references: built with the real CLI, fetched as
/// an archive, its environment installed from PyPI (into `~/.cache/yatai/local-envs`, kept
/// between runs), served by `bentoml serve` behind the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_bentoml_1_4_bento_answers_through_the_proxy() {
    let venv = client_venv("BENTOML14");
    let tmp = visible_tempdir();
    let home = tmp.path().join("bentoml-home");
    let project = tmp.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("service.py"),
        "import os\nimport bentoml\n\n\n@bentoml.service(name=\"rtecho\")\nclass Echo:\n    \
         model = bentoml.models.BentoModel(\"rtmodel:latest\")\n\n    @bentoml.api\n    \
         def echo(self, text: str) -> str:\n        \
         with open(self.model.path_of(\"greeting.txt\")) as f:\n            \
         greeting = f.read()\n        \
         return greeting + text + os.environ.get(\"SUFFIX\", \"\")\n",
    )
    .unwrap();
    make_model(&venv, tmp.path(), &home, "rtmodel", "modern");
    build(&venv, &project, &home, "service:Echo");
    serve_built_bento(
        tmp.path(),
        &home,
        "rtecho",
        "rtmodel",
        true,
        "model says: hi!",
    )
    .await;
}

/// A real bentoml 1.1 bento with a runner (started by `bentoml serve` itself) and its model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_bentoml_1_1_bento_with_a_runner_answers_through_the_proxy() {
    let venv = client_venv("BENTOML11");
    let tmp = visible_tempdir();
    let home = tmp.path().join("bentoml-home");
    let project = tmp.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let tag = make_model(&venv, tmp.path(), &home, "rt11model", "legacy");
    std::fs::write(
        project.join("service.py"),
        format!(
            "import os\nimport bentoml\nfrom bentoml.io import Text\n\n\
             runner = bentoml.picklable_model.get(\"{tag}\").to_runner()\n\
             svc = bentoml.Service(\"rt11echo\", runners=[runner])\n\n\n\
             @svc.api(input=Text(), output=Text())\n\
             def echo(text: str) -> str:\n    \
             return \"runner says: \" + text + os.environ.get(\"SUFFIX\", \"\")\n"
        ),
    )
    .unwrap();
    build(&venv, &project, &home, "service:svc");
    serve_built_bento(
        tmp.path(),
        &home,
        "rt11echo",
        "rt11model",
        false,
        "runner says: hi!",
    )
    .await;
}

/// Saves a model with the repository's e2e helper; returns its tag.
fn make_model(venv: &Path, tmp: &Path, home: &Path, name: &str, style: &str) -> String {
    let payload = tmp.join("payload");
    std::fs::create_dir_all(&payload).unwrap();
    std::fs::write(payload.join("greeting.txt"), "model says: ").unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/projects/make_model.py");
    let spec = format!(
        r#"{{"name":"{name}","style":"{style}","payload":"{}"}}"#,
        payload.display()
    );
    let out = run(std::process::Command::new(venv.join("bin/python"))
        .arg(&script)
        .arg(spec)
        .env("BENTOML_HOME", home)
        .env("BENTOML_DO_NOT_TRACK", "True"));
    out.lines()
        .find_map(|l| l.strip_prefix("MODEL_TAG="))
        .unwrap_or_else(|| panic!("make_model.py printed no MODEL_TAG: {out}"))
        .to_string()
}

fn build(venv: &Path, project: &Path, home: &Path, service: &str) {
    std::fs::write(
        project.join("bentofile.yaml"),
        format!("service: \"{service}\"\ninclude: [\"service.py\"]\n"),
    )
    .unwrap();
    run(std::process::Command::new(venv.join("bin/bentoml"))
        .arg("build")
        .current_dir(project)
        .env("BENTOML_HOME", home)
        .env("BENTOML_DO_NOT_TRACK", "True"));
}

/// Writes half an archive, then never finishes.
#[derive(Debug)]
struct HangingFetch;

impl yatai_image_builder::Fetch for HangingFetch {
    fn fetch<'a>(
        &'a self,
        _kind: yatai_client::Kind,
        _name: &'a str,
        _version: &'a str,
        dest: &'a Path,
    ) -> futures::future::BoxFuture<'a, Result<(), yatai_image_builder::BuildError>> {
        Box::pin(async move {
            std::fs::write(dest, b"half").unwrap();
            futures::future::pending::<()>().await;
            Ok(())
        })
    }
}

#[tokio::test]
async fn removing_a_deployment_mid_fetch_leaves_no_half_bento() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let rt = LocalRuntime::new(LocalConfig::new(&data), Arc::new(HangingFetch)).unwrap();
    let d = desired("hang", "r1", 1, &[]);
    let o = wait_for(&rt, &d, Duration::from_secs(10), "fetching", |o| {
        o.reason.contains("fetching bento echo:v1")
    })
    .await;
    assert_eq!(o.status, DeploymentStatus::Deploying);
    // The reconcile answered at once although the fetch never ends.
    let started = std::time::Instant::now();
    rt.reconcile(&d).await;
    assert!(started.elapsed() < Duration::from_millis(500));
    let bentos = data.join("bentos");
    assert_eq!(
        std::fs::read_dir(&bentos).unwrap().count(),
        1,
        "a temp dir while fetching"
    );
    rt.remove("hang").await.unwrap();
    let left: Vec<_> = std::fs::read_dir(&bentos).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(!data.join("deployments/hang").exists());
}
