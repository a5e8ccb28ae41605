//! Python environments: one virtual environment per (Python version, locked requirements),
//! shared by every deployment that needs the same, kept in `envs_dir` and installed atomically.
//!
//! Why a plain `pythonX.Y -m venv` + `pip install` and not the image builder's
//! `deps::install` (`pip install --target --platform ...`): that one resolves wheels for
//! *another* machine (the base image) without running anything; here the interpreter that will
//! run the bento is at hand, so pip resolves for it directly (its own tags, no glibc guessing),
//! console scripts and `.pth` files work, and a wheel-less package can still be built on the
//! host. The requirements text itself is the image builder's (`deps::requirements`), so both
//! install exactly the same list.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::process::{self, CommandSpec, LogSink};

/// Bumped whenever the layout of an environment changes, so that old ones are not used.
const LAYOUT_VERSION: &str = "yatai-local-env-v1";

/// A host interpreter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPython {
    /// The command found on PATH (`/usr/bin/python3.11`).
    pub path: PathBuf,
    /// Its `major.minor`.
    pub version: String,
}

/// `3.11` from `3.11`, `3.11.4` or ` 3.11 `; `None` when it is not a Python version.
pub fn major_minor(version: &str) -> Option<String> {
    let mut it = version.trim().split('.');
    let (major, minor) = (it.next()?, it.next()?);
    let digits = |s: &str| !s.is_empty() && s.len() <= 3 && s.chars().all(|c| c.is_ascii_digit());
    (digits(major) && digits(minor)).then(|| format!("{major}.{minor}"))
}

/// Runs `candidate` to learn its `major.minor`; `Err` with what it said when it does not run.
async fn version_of(candidate: &Path) -> Result<String, String> {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(candidate)
            .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| "it did not answer within 20 s".to_string())?
    .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match (out.status.success(), major_minor(&stdout)) {
        (true, Some(v)) => Ok(v),
        _ => {
            let err = String::from_utf8_lossy(&out.stderr);
            let first = err
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output");
            Err(first.trim().to_string())
        }
    }
}

/// Finds a host Python for `want` (`3.11`; `None`: any `python3`) on `path_var` (a PATH
/// value): `pythonX.Y` first, then `python3` when its version matches. The error is a sentence
/// naming the missing version and what to do.
pub async fn find_python(want: Option<&str>, path_var: &OsStr) -> Result<HostPython, String> {
    let want = match want {
        Some(w) => Some(major_minor(w).ok_or_else(|| {
            format!(
                "the bento names Python version {w:?}, which is not MAJOR.MINOR; rebuild it with \
                 a valid python_version"
            )
        })?),
        None => None,
    };
    let mut names = Vec::new();
    if let Some(w) = &want {
        names.push(format!("python{w}"));
    }
    names.push("python3".to_string());
    let mut notes: Vec<String> = Vec::new();
    for name in &names {
        for dir in std::env::split_paths(path_var) {
            let candidate = dir.join(name);
            if !candidate.is_file() {
                continue;
            }
            match version_of(&candidate).await {
                Ok(v) if want.as_deref().is_none_or(|w| w == v) => {
                    return Ok(HostPython {
                        path: candidate,
                        version: v,
                    })
                }
                Ok(v) => notes.push(format!("{} is Python {v}", candidate.display())),
                Err(e) => notes.push(format!("{} does not run ({e})", candidate.display())),
            }
        }
    }
    let seen = if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join("; "))
    };
    Err(match want {
        Some(w) => format!(
            "this bento needs Python {w}, and no python{w} was found on PATH{seen}; install \
             Python {w} on the Yatai server's machine (your distribution's python{w} package, or \
             `pyenv install {w}` with `pyenv global` listing it) so that `python{w}` runs, or \
             rebuild the bento for an installed Python version"
        ),
        None => format!(
            "no python3 was found on PATH{seen}; install Python 3 on the Yatai server's machine"
        ),
    })
}

/// The cache key of an environment: the layout, the Python `major.minor` and the exact
/// requirements text (which holds the bentoml pin).
pub fn cache_key(python_version: &str, requirements: &str) -> String {
    let mut h = Sha256::new();
    for part in [LAYOUT_VERSION, python_version, requirements] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    // 32 hex digits are plenty for a directory name and keep paths short.
    hex::encode(&h.finalize()[..16])
}

/// The environment directory for a key, and its interpreter.
pub fn env_dir(envs_dir: &Path, key: &str) -> PathBuf {
    envs_dir.join(format!("py-{key}"))
}

/// The interpreter of a prepared environment.
pub fn env_python(env: &Path) -> PathBuf {
    env.join("bin").join("python")
}

/// Whether `env` is a complete environment: the marker is written last, before the rename.
pub fn is_complete(env: &Path) -> bool {
    env.join(MARKER).is_file() && env_python(env).exists()
}

const MARKER: &str = "yatai-env.json";

/// Removes temporary directories (`.tmp-<what>-<pid>-<n>`) of installs or extractions whose
/// process is gone (a crash midway).
pub fn clean_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix(".tmp-") else {
            continue;
        };
        // `.tmp-<what>-<pid>-<n>`, where <what> may hold '-'.
        let pid = rest.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Removes a temporary directory when dropped (a no-op once it was renamed into place).
pub(crate) struct Scratch(pub(crate) PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What [`install`] needs.
#[derive(Debug, Clone)]
pub struct InstallRequest<'a> {
    pub envs_dir: &'a Path,
    pub python: &'a HostPython,
    pub requirements: &'a str,
    pub timeout: Duration,
}

/// Makes sure the environment for `req` exists and returns its directory. Installs into
/// `<envs_dir>/.tmp-<key>-<pid>-<n>` and renames it into place only when pip succeeded, so
/// that a crash never leaves a half environment under the final name. Two installs of the
/// same key may race (two servers sharing a cache): the loser keeps the winner's.
pub async fn install(req: &InstallRequest<'_>, log: &LogSink) -> Result<PathBuf, String> {
    let key = cache_key(&req.python.version, req.requirements);
    let dest = env_dir(req.envs_dir, &key);
    if is_complete(&dest) {
        return Ok(dest);
    }
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    std::fs::create_dir_all(req.envs_dir).map_err(|e| {
        io(
            &format!(
                "cannot create the environments directory {}",
                req.envs_dir.display()
            ),
            e,
        )
    })?;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = req
        .envs_dir
        .join(format!(".tmp-{key}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    // Also when this future is dropped midway (the deployment was removed or rolled out).
    let _scratch = Scratch(tmp.clone());
    let result = install_into(req, &tmp, log).await;
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match std::fs::rename(&tmp, &dest) {
        Ok(()) => Ok(dest),
        Err(_) if is_complete(&dest) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dest)
        }
        Err(e) => {
            // An incomplete leftover under the final name (from an older layout): replace it.
            let _ = std::fs::remove_dir_all(&dest);
            std::fs::rename(&tmp, &dest).map_err(|_| {
                let _ = std::fs::remove_dir_all(&tmp);
                io(
                    &format!("cannot move the environment into {}", dest.display()),
                    e,
                )
            })?;
            Ok(dest)
        }
    }
}

async fn install_into(req: &InstallRequest<'_>, tmp: &Path, log: &LogSink) -> Result<(), String> {
    let v = &req.python.version;
    log.line(&format!(
        "creating a Python {v} environment with {}",
        req.python.path.display()
    ));
    run(
        CommandSpec {
            program: req.python.path.clone(),
            args: vec!["-m".into(), "venv".into(), tmp.into()],
            ..Default::default()
        },
        log,
        Duration::from_secs(300),
    )
    .await
    .map_err(|e| {
        format!(
            "cannot create a virtual environment with {} ({e}); on Debian/Ubuntu install the \
             python{v}-venv package",
            req.python.path.display()
        )
    })?;
    let reqs = tmp.join("requirements.txt");
    std::fs::write(&reqs, req.requirements)
        .map_err(|e| format!("cannot write {}: {e}", reqs.display()))?;
    log.line("installing the bento's requirements:");
    for l in req.requirements.lines().filter(|l| !l.trim().is_empty()) {
        log.line(&format!("  {l}"));
    }
    let cache = req.envs_dir.join("pip-cache");
    run(
        CommandSpec {
            program: env_python(tmp),
            args: [
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--no-warn-script-location",
                // Wheels when there are any (fast, no compiler needed); a source distribution
                // is still built on this host when nothing else exists.
                "--prefer-binary",
                "--cache-dir",
            ]
            .into_iter()
            .map(Into::into)
            .chain([cache.into_os_string(), "-r".into(), reqs.into_os_string()])
            .collect(),
            env: vec![("PIP_ROOT_USER_ACTION".into(), "ignore".into())],
            cwd: None,
        },
        log,
        req.timeout,
    )
    .await
    .map_err(|e| {
        format!(
            "installing the bento's requirements for Python {v} failed ({e}); check that PyPI \
             (or PIP_INDEX_URL) is reachable from the Yatai server and that every requirement \
             exists for Python {v}; last lines of pip:\n  {}",
            log.tail(8).join("\n  ")
        )
    })?;
    let marker = serde_json::json!({
        "python": req.python.path,
        "python_version": v,
        "requirements_sha256": hex::encode(Sha256::digest(req.requirements.as_bytes())),
        "created": chrono::Utc::now().to_rfc3339(),
    });
    std::fs::write(tmp.join(MARKER), marker.to_string())
        .map_err(|e| format!("cannot write the environment marker: {e}"))?;
    Ok(())
}

/// Runs a command to its end with its output in `log`.
async fn run(spec: CommandSpec, log: &LogSink, timeout: Duration) -> Result<(), String> {
    let mut child = process::spawn(&spec, log)
        .map_err(|e| format!("cannot run {}: {e}", spec.program.display()))?;
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(s)) if s.success() => Ok(()),
        Ok(Ok(s)) => Err(process::describe_exit(&s)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => {
            process::stop(&mut child, Duration::from_secs(5)).await;
            Err(format!("it took longer than {} s", timeout.as_secs()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_as_major_minor() {
        assert_eq!(major_minor("3.11").as_deref(), Some("3.11"));
        assert_eq!(major_minor("3.11.4\n").as_deref(), Some("3.11"));
        for bad in ["", "3", "3.x", "a.b", "../3.1", "3.1234"] {
            assert_eq!(major_minor(bad), None, "{bad}");
        }
    }

    #[test]
    fn cache_key_is_stable_and_covers_its_inputs() {
        let k = cache_key("3.11", "bentoml==1.4.40\n");
        // A fixed value: changing this function orphans every prepared environment, so it
        // must be deliberate (bump LAYOUT_VERSION and this value together).
        assert_eq!(k, "eda49bac62d62cac8f1ccefb1c3ba800");
        assert_eq!(k, cache_key("3.11", "bentoml==1.4.40\n"));
        assert_eq!(k.len(), 32);
        assert_ne!(k, cache_key("3.12", "bentoml==1.4.40\n"));
        assert_ne!(k, cache_key("3.11", "bentoml==1.4.41\n"));
        assert_ne!(cache_key("3.1", "1bentoml"), cache_key("3.11", "bentoml"));
        assert_eq!(
            env_dir(Path::new("/e"), &k),
            PathBuf::from(format!("/e/py-{k}"))
        );
    }

    #[tokio::test]
    async fn a_missing_python_version_is_named_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        // A "python3.9" that does not run (like a pyenv shim of an uninstalled version) and a
        // python3 of another version.
        //
        // A child shell writes them: were this process to hold a script open for writing while
        // another test thread forks, the fork's copy of that descriptor would make running the
        // script fail with ETXTBSY ("Text file busy") until the fork execs, as it once did in CI.
        let fake = |name: &str, body: &str| {
            let p = dir.path().join(name);
            let status = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(r#"printf '#!/bin/sh\n%s\n' "$2" > "$1" && chmod 755 "$1""#)
                .arg("sh")
                .arg(&p)
                .arg(body)
                .status()
                .unwrap();
            assert!(status.success(), "writing {}", p.display());
        };
        fake(
            "python3.9",
            "echo 'pyenv: python3.9: command not found' >&2; exit 127",
        );
        fake("python3", "echo 3.11");
        let e = find_python(Some("3.9"), dir.path().as_os_str())
            .await
            .unwrap_err();
        assert!(
            e.starts_with("this bento needs Python 3.9, and no python3.9 was found on PATH"),
            "{e}"
        );
        assert!(
            e.contains("command not found") && e.contains("is Python 3.11"),
            "{e}"
        );
        assert!(e.contains("install"), "{e}");
        // python3 is accepted when its version matches.
        let found = find_python(Some("3.11"), dir.path().as_os_str())
            .await
            .unwrap();
        assert_eq!(found.path, dir.path().join("python3"));
        assert_eq!(found.version, "3.11");
        let e = find_python(Some("three"), dir.path().as_os_str())
            .await
            .unwrap_err();
        assert!(e.contains("not MAJOR.MINOR"), "{e}");
    }

    #[tokio::test]
    async fn the_host_python_is_found() {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let any = find_python(None, &path)
            .await
            .expect("these tests need a python3 on PATH (install python3)");
        let same = find_python(Some(&any.version), &path).await.unwrap();
        assert_eq!(same.version, any.version);
    }

    #[tokio::test]
    async fn installs_are_atomic() {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let python = find_python(None, &path)
            .await
            .expect("these tests need a python3 on PATH (install python3)");
        let envs = tempfile::tempdir().unwrap();
        let log = LogSink::open(&envs.path().join("install.log")).unwrap();
        // A requirement that cannot exist fails: nothing under the final name, no temp left.
        let bad = "--no-index\nno-such-package-yatai==0.0.1\n";
        let req = InstallRequest {
            envs_dir: envs.path(),
            python: &python,
            requirements: bad,
            timeout: Duration::from_secs(300),
        };
        let e = install(&req, &log).await.unwrap_err();
        assert!(e.contains("no-such-package-yatai"), "{e}");
        let names: Vec<String> = std::fs::read_dir(envs.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("py-") || n.starts_with(".tmp-")),
            "{names:?}"
        );
        // An empty requirement list (offline) succeeds, and the second call reuses it.
        let req = InstallRequest {
            requirements: "--no-index\n",
            ..req
        };
        let env = install(&req, &log).await.unwrap();
        assert!(is_complete(&env));
        let marker = std::fs::metadata(env.join(MARKER))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(install(&req, &log).await.unwrap(), env);
        assert_eq!(
            std::fs::metadata(env.join(MARKER))
                .unwrap()
                .modified()
                .unwrap(),
            marker
        );
        // A crashed install (a temp dir of a dead process) is cleaned up; a live one is kept.
        let stale = envs.path().join(".tmp-abc-999999999-0");
        let live = envs
            .path()
            .join(format!(".tmp-abc-{}-0", std::process::id()));
        std::fs::create_dir_all(&stale).unwrap();
        std::fs::create_dir_all(&live).unwrap();
        clean_stale(envs.path());
        assert!(!stale.exists() && live.exists());
    }
}
