//! The supervisor and the proxy with real processes: a stand-in Python HTTP server instead of
//! bentoml (see common::STAND_IN), so that these run in seconds.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use yatai_domain::deployments::{ClusterRuntime, DeploymentStatus};
use yatai_runtime_local::{process, LocalConfig, LocalRuntime};

fn config(data: &std::path::Path) -> LocalConfig {
    let mut cfg = LocalConfig::new(data);
    cfg.health_interval = Duration::from_millis(100);
    cfg.stop_grace = Duration::from_secs(3);
    cfg.restart_backoff_initial = Duration::from_millis(300);
    cfg.restart_backoff_max = Duration::from_secs(2);
    cfg
}

fn runtime(data: &std::path::Path, scripts: &std::path::Path) -> LocalRuntime {
    LocalRuntime::with_launcher(
        config(data),
        Arc::new(FileFetch {
            dir: scripts.to_path_buf(),
        }),
        Arc::new(StandIn::new(scripts)),
    )
    .unwrap()
}

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_balance_crash_roll_out_restart_terminate_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let rt = runtime(&data, tmp.path());
    let uid = "d1";
    let d = desired(
        uid,
        "rev1",
        2,
        &[("GREETING", "hello"), ("READY_AFTER", "1")],
    );

    // Deploying: the URL is there at once, answering 503 with a reason until a replica is ready.
    let first = rt.reconcile(&d).await;
    assert_eq!(first.status, DeploymentStatus::Deploying, "{first:?}");
    let url = first.url.clone().expect("a URL from the first reconcile");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let (code, body) = get(&url, "/x").await.unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("dep-d1 has no ready replica"), "{body}");

    let o = wait_status(&rt, &d, DeploymentStatus::Running, T).await;
    assert_eq!(o.url.as_deref(), Some(url.as_str()));
    assert_eq!(o.reason, "");

    // Round-robin over both replicas.
    let mut pids = Vec::new();
    for _ in 0..6 {
        let (code, body) = get(&url, "/greet").await.unwrap();
        assert_eq!(code, 200, "{body}");
        let (greeting, pid) = body.split_once(' ').unwrap();
        assert_eq!(greeting, "hello");
        pids.push(pid.parse::<u32>().unwrap());
    }
    let distinct: BTreeSet<u32> = pids.iter().copied().collect();
    assert_eq!(distinct.len(), 2, "{pids:?}");
    assert!(
        pids.windows(2).all(|w| w[0] != w[1]),
        "not alternating: {pids:?}"
    );
    let recorded = recorded_pids(&data, uid);
    assert_eq!(
        recorded.iter().map(|r| r.1).collect::<BTreeSet<_>>(),
        distinct,
        "{recorded:?}"
    );

    // kill -9 of a replica: unhealthy (naming it, its exit and its last lines), restarted,
    // running again; the other replica keeps answering meanwhile.
    let (victim_name, victim) = recorded[1].clone();
    unsafe { libc_kill(victim, 9) };
    let o = wait_for(&rt, &d, T, "unhealthy", |o| {
        o.status == DeploymentStatus::Unhealthy
    })
    .await;
    assert!(
        o.reason.contains(&format!("replica {victim_name}")),
        "{o:?}"
    );
    assert!(o.reason.contains("signal 9 (SIGKILL)"), "{o:?}");
    assert!(o.reason.contains("stand-in listening on"), "{o:?}");
    let (code, body) = get(&url, "/greet").await.unwrap();
    assert_eq!(code, 200, "the other replica answers: {body}");
    wait_status(&rt, &d, DeploymentStatus::Running, T).await;
    let after = recorded_pids(&data, uid);
    assert_eq!(after.len(), 2);
    assert!(!after.iter().any(|r| r.1 == victim), "{after:?}");

    // New revision with a changed env: the proxy answers the new value; the old replicas end.
    let before: Vec<u32> = after.iter().map(|r| r.1).collect();
    let d2 = desired(uid, "rev2", 2, &[("GREETING", "bonjour")]);
    let o = rt.reconcile(&d2).await;
    assert_ne!(
        o.status,
        DeploymentStatus::Running,
        "a rollout is not instant: {o:?}"
    );
    let o = wait_status(&rt, &d2, DeploymentStatus::Running, T).await;
    assert_eq!(
        o.url.as_deref(),
        Some(url.as_str()),
        "the URL survives rollouts"
    );
    for _ in 0..4 {
        let (code, body) = get(&url, "/greet").await.unwrap();
        assert_eq!(code, 200);
        assert!(body.starts_with("bonjour "), "{body}");
    }
    for pid in &before {
        assert!(!alive(*pid), "old replica {pid} still runs");
    }
    // Idempotent and quick when nothing changed.
    let started = std::time::Instant::now();
    for _ in 0..20 {
        assert_eq!(rt.reconcile(&d2).await.status, DeploymentStatus::Running);
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    let pids_rev2: Vec<u32> = recorded_pids(&data, uid).iter().map(|r| r.1).collect();

    // Restart of the server: drop kills the replicas, a new runtime brings back the same URL.
    drop(rt);
    for pid in &pids_rev2 {
        for _ in 0..50 {
            if !alive(*pid) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(!alive(*pid), "replica {pid} outlived the runtime");
    }
    let rt = runtime(&data, tmp.path());
    let o = rt.reconcile(&d2).await;
    assert_eq!(
        o.url.as_deref(),
        Some(url.as_str()),
        "same URL after a restart"
    );
    wait_status(&rt, &d2, DeploymentStatus::Running, T).await;
    let (code, body) = get(&url, "/greet").await.unwrap();
    assert_eq!((code, body.starts_with("bonjour ")), (200, true), "{body}");

    // Logs: every replica's lines, prefixed with its name.
    let logs = rt.logs(uid, 200).await.expect("logs of a known deployment");
    assert!(
        logs.iter()
            .any(|l| l.starts_with("[api-server-0] ") && l.contains("stand-in listening on")),
        "{logs:#?}"
    );
    assert!(
        logs.iter().any(|l| l.starts_with("[api-server-1] ")),
        "{logs:#?}"
    );
    assert_eq!(rt.logs(uid, 3).await.unwrap().len(), 3);
    assert_eq!(rt.logs("nobody", 3).await, None);

    // Terminate: terminating, then terminated; the port is closed and no process is left.
    let last: Vec<u32> = recorded_pids(&data, uid).iter().map(|r| r.1).collect();
    assert_eq!(last.len(), 2);
    let mut stop = d2.clone();
    stop.running = false;
    let o = rt.reconcile(&stop).await;
    assert!(
        matches!(
            o.status,
            DeploymentStatus::Terminating | DeploymentStatus::Terminated
        ),
        "{o:?}"
    );
    let o = wait_status(&rt, &stop, DeploymentStatus::Terminated, T).await;
    assert_eq!(o.url, None);
    assert!(get(&url, "/greet").await.is_err(), "the port still answers");
    for pid in &last {
        assert!(!alive(*pid), "replica {pid} survived terminate");
    }
    assert!(recorded_pids(&data, uid).is_empty());
    let ours: Vec<u32> = children_of(std::process::id())
        .into_iter()
        .filter(|p| last.contains(p))
        .collect();
    assert!(ours.is_empty(), "{ours:?}");
    assert_eq!(
        rt.reconcile(&stop).await.status,
        DeploymentStatus::Terminated
    );

    // Remove: its directory goes, and the runtime forgets it.
    assert!(rt.known().await.contains(&uid.to_string()));
    rt.remove(uid).await.unwrap();
    assert!(!data.join("deployments").join(uid).exists());
    assert!(!rt.known().await.contains(&uid.to_string()));
}

unsafe fn libc_kill(pid: u32, sig: i32) {
    process::signal_group(pid, sig);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_keeps_crashing_is_unhealthy_with_its_last_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let rt = runtime(&data, tmp.path());
    // READY_AFTER is not a number: the stand-in dies at start with a Python traceback.
    let d = desired("crashy", "r1", 1, &[("READY_AFTER", "soon")]);
    let o = wait_status(&rt, &d, DeploymentStatus::Unhealthy, T).await;
    assert!(
        o.reason
            .contains("replica api-server-0 exited with exit code 1"),
        "{o:?}"
    );
    assert!(o.reason.contains("ValueError"), "{o:?}");
    assert!(o.reason.contains("restarted in"), "{o:?}");
    let url = o.url.unwrap();
    let (code, body) = get(&url, "/").await.unwrap();
    assert_eq!(code, 503);
    assert!(body.contains("status unhealthy"), "{body}");
    assert!(
        !body.contains("ValueError"),
        "the public 503 body never quotes the replica's log: {body}"
    );
    // Fixing the env rolls out and recovers.
    let d = desired("crashy", "r2", 1, &[("READY_AFTER", "0")]);
    wait_status(&rt, &d, DeploymentStatus::Running, T).await;
    rt.shutdown().await;
    assert!(recorded_pids(&data, "crashy").is_empty());
}

#[tokio::test]
async fn leftovers_of_a_previous_run_are_killed_on_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let pids = data.join("deployments/old/pids");
    std::fs::create_dir_all(&pids).unwrap();
    let log = process::LogSink::open(&tmp.path().join("x.log")).unwrap();
    let mut child = process::spawn(
        &process::CommandSpec {
            program: "sleep".into(),
            args: vec!["120".into()],
            ..Default::default()
        },
        &log,
    )
    .unwrap();
    let pid = child.id().unwrap();
    process::write_pid_file(&pids.join("api-server-0.pid"), pid).unwrap();
    let rt = runtime(&data, tmp.path());
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("the leftover was not killed")
        .unwrap();
    assert!(!status.success());
    assert!(!pids.join("api-server-0.pid").exists());
    assert_eq!(rt.known().await, vec!["old".to_string()]);
}

#[tokio::test]
async fn bad_input_is_a_failed_status_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let rt = runtime(&tmp.path().join("data"), tmp.path());
    let o = rt.reconcile(&desired("../x", "r", 1, &[])).await;
    assert_eq!(o.status, DeploymentStatus::Failed);
    assert!(o.reason.contains("directory name"), "{o:?}");
    let o = wait_status(
        &rt,
        &desired("many", "r", 1000, &[]),
        DeploymentStatus::Failed,
        T,
    )
    .await;
    assert!(
        o.reason.contains("1000 replicas") && o.reason.contains("at most 16"),
        "{o:?}"
    );
    assert!(rt.remove("../x").await.is_err());
    rt.remove("never-deployed").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_and_public_hosts_are_configurable() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(&tmp.path().join("data"));
    cfg.bind_host = "localhost".into();
    cfg.public_host = "models.example.test".into();
    let rt = LocalRuntime::with_launcher(
        cfg,
        Arc::new(FileFetch {
            dir: tmp.path().to_path_buf(),
        }),
        Arc::new(StandIn::new(tmp.path())),
    )
    .unwrap();
    let d = desired("hosts", "r1", 1, &[("GREETING", "hi")]);
    let o = wait_status(&rt, &d, DeploymentStatus::Running, T).await;
    let url = o.url.unwrap();
    let port = url
        .strip_prefix("http://models.example.test:")
        .unwrap_or_else(|| panic!("{url}"));
    let (code, body) = get(&format!("http://127.0.0.1:{port}"), "/").await.unwrap();
    assert_eq!((code, body.starts_with("hi ")), (200, true), "{body}");

    // Upgrades (WebSocket) pass through: after 101 the bytes flow both ways.
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let s = tokio::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap()))
        .await
        .unwrap();
    let mut s = tokio::io::BufReader::new(s);
    s.get_mut()
        .write_all(
            b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: shout\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = String::new();
    loop {
        let mut line = String::new();
        s.read_line(&mut line).await.unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.get_mut().write_all(b"hello upgrade\n").await.unwrap();
    let mut echoed = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_line(&mut echoed))
        .await
        .expect("no echo through the upgraded connection")
        .unwrap();
    assert_eq!(echoed, "HELLO UPGRADE\n");

    // A bind host that does not resolve: a failed status saying what to use.
    let mut cfg = config(&tmp.path().join("data2"));
    cfg.bind_host = "no such host".into();
    let rt2 = LocalRuntime::with_launcher(
        cfg,
        Arc::new(FileFetch {
            dir: tmp.path().to_path_buf(),
        }),
        Arc::new(StandIn::new(tmp.path())),
    )
    .unwrap();
    let o = rt2.reconcile(&desired("hosts2", "r1", 1, &[])).await;
    assert_eq!(o.status, DeploymentStatus::Failed);
    assert!(
        o.reason.contains("bind host") && o.reason.contains("0.0.0.0"),
        "{o:?}"
    );
}
