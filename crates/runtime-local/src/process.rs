//! Child processes: spawned in their own process group and tied to the server's life, stopped
//! with SIGTERM then SIGKILL, recorded in pid files so that a restarted server can end what a
//! previous run left behind, and their output written to timestamped log files.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// A program to run, as a [`crate::Launcher`] describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandSpec {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Set on top of the server's own environment, in order (later wins).
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
}

/// Log files bigger than this are moved to `NAME.log.1` when a process (re)starts.
const MAX_LOG_BYTES: u64 = 8 << 20;
/// Lines kept in memory per process, for the reason of an unhealthy deployment.
const TAIL_LINES: usize = 20;

/// The output of one process (or of an environment install): a log file with one
/// `RFC3339-timestamp line` per line, and the last lines in memory.
#[derive(Debug, Clone)]
pub struct LogSink {
    path: Arc<PathBuf>,
    /// The open file and how many bytes it holds.
    file: Arc<Mutex<(Option<std::fs::File>, u64)>>,
    tail: Arc<Mutex<VecDeque<String>>>,
}

/// Moves `path` to `path.1` (replacing an older one).
fn rotate(path: &Path) {
    let mut old = path.as_os_str().to_owned();
    old.push(".1");
    let _ = std::fs::rename(path, old);
}

fn open_append(path: &Path) -> std::io::Result<(std::fs::File, u64)> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok((file, len))
}

impl LogSink {
    /// Opens `path` for appending (rotating it first when it is too big).
    pub fn open(path: &Path) -> std::io::Result<LogSink> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if std::fs::metadata(path)
            .map(|m| m.len() > MAX_LOG_BYTES)
            .unwrap_or(false)
        {
            rotate(path);
        }
        let (file, len) = open_append(path)?;
        Ok(LogSink {
            path: Arc::new(path.to_path_buf()),
            file: Arc::new(Mutex::new((Some(file), len))),
            tail: Arc::new(Mutex::new(VecDeque::new())),
        })
    }

    /// Appends one line (rotating the file once it exceeds 8 MiB, so that a chatty replica
    /// cannot fill the disk; one older file is kept).
    pub fn line(&self, line: &str) {
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        if let Ok(mut f) = self.file.lock() {
            if f.1 > MAX_LOG_BYTES {
                rotate(&self.path);
                *f = match open_append(&self.path) {
                    Ok((file, len)) => (Some(file), len),
                    Err(_) => (None, 0),
                };
            }
            let text = format!("{now} {line}\n");
            if let Some(file) = f.0.as_mut() {
                // A full disk must not stop the process whose output this is.
                if file.write_all(text.as_bytes()).is_ok() {
                    f.1 += text.len() as u64;
                }
            }
        }
        if let Ok(mut t) = self.tail.lock() {
            if t.len() == TAIL_LINES {
                t.pop_front();
            }
            t.push_back(line.to_string());
        }
    }

    /// The last `n` lines written through this sink.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let t = self.tail.lock().map(|t| t.clone()).unwrap_or_default();
        let skip = t.len().saturating_sub(n);
        t.into_iter().skip(skip).collect()
    }

    /// Copies `reader` into the sink line by line until it ends.
    pub fn pump(
        &self,
        reader: impl AsyncRead + Unpin + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let sink = self.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(reader);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match lines.read_until(b'\n', &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&buf);
                        sink.line(text.trim_end_matches(['\n', '\r']));
                    }
                }
            }
        })
    }
}

/// Spawns `spec` in a new process group, with stdout and stderr piped into `log`.
///
/// Why both a process group and PR_SET_PDEATHSIG: `bentoml serve` forks workers (and runners),
/// which must all end with the replica, so signals go to the whole group; and if the server
/// dies without stopping anything (kill -9, a crash), the kernel sends SIGKILL to the direct
/// child, whose workers then see their arbiter go. PR_SET_PDEATHSIG fires when the *thread*
/// that forked exits, so spawning must happen on a long-lived runtime thread (tokio worker
/// threads live as long as the runtime), never inside `spawn_blocking`.
pub fn spawn(spec: &CommandSpec, log: &LogSink) -> std::io::Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // A bento is a tenant's code: it must not inherit the server's environment (database URL,
    // S3 keys, the initialization token). Only what a Python program needs to run and reach a
    // package index goes through; the launcher and the deployment add the rest.
    cmd.env_clear();
    for (k, v) in std::env::vars_os() {
        if let Some(name) = k.to_str() {
            if PASSED_ENV.contains(&name) || name.starts_with("LC_") {
                cmd.env(&k, v);
            }
        }
    }
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (setpgid, prctl, getppid, _exit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The server may have died between fork and prctl: then nobody would kill us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    if let Some(out) = child.stdout.take() {
        log.pump(out);
    }
    if let Some(err) = child.stderr.take() {
        log.pump(err);
    }
    Ok(child)
}

/// Sends `signal` to the process group led by `pid` (and to `pid` itself, should it have left
/// the group).
pub fn signal_group(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if pid <= 1 {
        return;
    }
    // SAFETY: plain syscalls on a pid we spawned.
    unsafe {
        libc::kill(-pid, signal);
        libc::kill(pid, signal);
    }
}

/// The server's variables a replica gets (everything else is cleared).
pub const PASSED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

/// The variable every process of a replica carries (inherited by whatever it forks), holding
/// the replica's home directory. Why: `bentoml serve`'s workers (circus) run in sessions of
/// their own, so neither the replica's process group nor PR_SET_PDEATHSIG reaches them once
/// their arbiter is gone; the environment is the one mark they cannot drop.
pub const REPLICA_MARK: &str = "YATAI_LOCAL_REPLICA";

/// SIGKILLs every process whose [`REPLICA_MARK`] is `home`, or lies under `home` when
/// `prefix` (a whole data directory); returns how many. Reads `/proc/*/environ` (the
/// processes of the server's own user).
pub fn kill_marked(home: &Path, prefix: bool) -> usize {
    let mark = format!("{REPLICA_MARK}={}", home.display());
    let own = std::process::id();
    let mut killed = 0;
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own || pid <= 1 {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let hit = environ.split(|b| *b == 0).any(|var| {
            let Ok(var) = std::str::from_utf8(var) else {
                return false;
            };
            if prefix {
                var.starts_with(&mark) && var[mark.len()..].chars().next().is_none_or(|c| c == '/')
            } else {
                var == mark
            }
        });
        if hit {
            // SAFETY: a plain kill of a process carrying our mark.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
            killed += 1;
        }
    }
    killed
}

/// Whether any process of the group led by `pid` is still alive.
pub fn group_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(-pid, 0) == 0 }
}

/// Stops a child: SIGTERM to its group, SIGKILL after `grace`, and waits for it.
pub async fn stop(child: &mut tokio::process::Child, grace: Duration) {
    let Some(pid) = child.id() else {
        return;
    };
    signal_group(pid, libc::SIGTERM);
    if tokio::time::timeout(grace, child.wait()).await.is_err() {
        signal_group(pid, libc::SIGKILL);
        let _ = child.wait().await;
    }
    // Workers that ignored SIGTERM outlive their arbiter: end the group for good.
    let deadline = tokio::time::Instant::now() + grace;
    while group_alive(pid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if group_alive(pid) {
        signal_group(pid, libc::SIGKILL);
    }
}

/// Describes how a process ended (`exit code 1`, `signal 9 (SIGKILL)`).
pub fn describe_exit(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    if let Some(sig) = status.signal() {
        let name = match sig {
            libc::SIGKILL => " (SIGKILL)",
            libc::SIGTERM => " (SIGTERM)",
            libc::SIGSEGV => " (SIGSEGV)",
            libc::SIGABRT => " (SIGABRT)",
            libc::SIGINT => " (SIGINT)",
            _ => "",
        };
        return format!("signal {sig}{name}");
    }
    "an unknown status".into()
}

/// The start time of `pid` in clock ticks since boot (`/proc/PID/stat` field 22), so that a
/// pid recorded by a previous run is not confused with an unrelated process that reuses it.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Records a running child: `PID START_TIME`.
pub fn write_pid_file(path: &Path, pid: u32) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let start = start_time(pid).unwrap_or(0);
    std::fs::write(path, format!("{pid} {start}\n"))
}

/// Ends the process group a pid file names, if that very process still runs, and removes the
/// file. Returns whether something was killed.
pub fn kill_recorded(path: &Path) -> bool {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let _ = std::fs::remove_file(path);
    let mut it = text.split_whitespace();
    let (Some(pid), Some(start)) = (
        it.next().and_then(|p| p.parse::<u32>().ok()),
        it.next().and_then(|s| s.parse::<u64>().ok()),
    ) else {
        return false;
    };
    if pid <= 1 {
        return false;
    }
    match start_time(pid) {
        Some(s) if s == start => {}
        // The pid now belongs to another process: spare it (and its group).
        Some(_) => return false,
        // The leader is gone (a server killed with -9 takes `bentoml serve` with it through
        // PDEATHSIG, but not its workers): whatever is left in its group is ours, since Linux
        // does not hand out a pid that is still in use as a process group id.
        None if group_alive(pid) => {}
        None => return false,
    }
    signal_group(pid, libc::SIGTERM);
    for _ in 0..40 {
        if !group_alive(pid) && start_time(pid).is_none() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal_group(pid, libc::SIGKILL);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn recorded_leftovers_are_killed_and_reused_pids_spared() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogSink::open(&dir.path().join("x.log")).unwrap();
        let spec = CommandSpec {
            program: "sleep".into(),
            args: vec!["60".into()],
            ..Default::default()
        };
        let mut child = spawn(&spec, &log).unwrap();
        let pid = child.id().unwrap();
        let file = dir.path().join("x.pid");
        write_pid_file(&file, pid).unwrap();
        assert!(kill_recorded(&file));
        let status = child.wait().await.unwrap();
        assert!(!status.success());
        assert!(!file.exists());

        // Same pid, other start time: an unrelated process, left alone.
        let mut child = spawn(&spec, &log).unwrap();
        let pid = child.id().unwrap();
        std::fs::write(&file, format!("{pid} 1\n")).unwrap();
        assert!(!kill_recorded(&file));
        assert!(start_time(pid).is_some());
        stop(&mut child, Duration::from_secs(2)).await;
        assert!(start_time(pid).is_none() || !group_alive(pid));
    }

    #[tokio::test]
    async fn orphaned_workers_of_a_dead_leader_are_killed() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogSink::open(&dir.path().join("x.log")).unwrap();
        // The leader leaves a "worker" behind in its group, as `bentoml serve` killed by
        // PDEATHSIG does.
        let spec = CommandSpec {
            program: "sh".into(),
            args: vec!["-c".into(), "sleep 120 & sleep 0.5".into()],
            ..Default::default()
        };
        let mut child = spawn(&spec, &log).unwrap();
        let pid = child.id().unwrap();
        let file = dir.path().join("x.pid");
        write_pid_file(&file, pid).unwrap();
        child.wait().await.unwrap();
        assert!(group_alive(pid), "the worker should outlive its leader");
        assert!(kill_recorded(&file));
        for _ in 0..50 {
            if !group_alive(pid) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!group_alive(pid), "the orphaned worker survived");
    }

    #[test]
    fn big_logs_are_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.log");
        let log = LogSink::open(&path).unwrap();
        let line = "x".repeat(64 * 1024);
        for _ in 0..(MAX_LOG_BYTES / line.len() as u64 + 2) {
            log.line(&line);
        }
        let old = dir.path().join("r.log.1");
        assert!(std::fs::metadata(&old).unwrap().len() > MAX_LOG_BYTES);
        assert!(std::fs::metadata(&path).unwrap().len() < MAX_LOG_BYTES);
    }

    #[tokio::test]
    async fn output_is_logged_with_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/a.log");
        let log = LogSink::open(&path).unwrap();
        let spec = CommandSpec {
            program: "sh".into(),
            args: vec!["-c".into(), "echo one; echo two >&2; exit 3".into()],
            ..Default::default()
        };
        let mut child = spawn(&spec, &log).unwrap();
        let status = child.wait().await.unwrap();
        assert_eq!(describe_exit(&status), "exit code 3");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut tail = log.tail(5);
        tail.sort();
        assert_eq!(tail, vec!["one", "two"]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.lines()
                .all(|l| l.starts_with("20") && l.contains("Z ")),
            "{text}"
        );
    }
}
