//! The `yatai` binary: help, configuration precedence, start-up and its failures.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn yatai() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_yatai"));
    // Start from a clean environment so the machine's settings do not leak into the test.
    for (key, _) in std::env::vars() {
        if key.starts_with("PG_")
            || key.starts_with("S3_")
            || key.starts_with("YATAI_")
            || key == "TRANSMISSION_STRATEGY"
        {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn s3_endpoint() -> String {
    std::env::var("YATAI_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:5055".into())
}

/// Runs a command that must fail; returns its stderr.
fn expect_failure(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run yatai");
    assert!(
        !out.status.success(),
        "expected failure, got success; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    lines[0].to_string()
}

/// A running server, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `yatai serve` and waits for its "listening" line; returns the server and stdout lines so far.
fn start(cmd: &mut Command) -> (Server, Vec<String>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn yatai");
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let mut lines = Vec::new();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            let done = line.contains("Setup is open")
                || (line.contains("listening")
                    && lines.iter().any(|l: &String| l.contains("listening")));
            lines.push(line);
            if done || lines.len() >= 2 {
                return (server, lines);
            }
        } else if lines.iter().any(|l| l.contains("listening")) {
            return (server, lines);
        }
    }
    panic!("yatai serve did not start: {lines:?}");
}

#[test]
fn help_lists_commands_flags_and_env_names() {
    let out = yatai().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for word in ["serve", "migrate", "--log-format"] {
        assert!(
            text.contains(word),
            "{word} missing from yatai --help:\n{text}"
        );
    }
    let out = yatai().args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--host",
        "--port",
        "--data-dir",
        "--config",
        "--database-url",
        "YATAI_DB_MAX_CONNECTIONS",
        "PG_HOST",
        "PG_PORT",
        "PG_USER",
        "PG_PASSWORD",
        "PG_DATABASE",
        "PG_SSLMODE",
        "S3_ENDPOINT",
        "S3_ACCESS_KEY",
        "S3_SECRET_KEY",
        "S3_REGION",
        "S3_SECURE",
        "S3_BUCKET_NAME",
        "YATAI_INITIALIZATION_TOKEN",
        "TRANSMISSION_STRATEGY",
        "7777",
    ] {
        assert!(
            text.contains(word),
            "{word} missing from yatai serve --help:\n{text}"
        );
    }
}

#[test]
fn serve_prints_setup_url_with_the_initialization_token() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (_server, lines) = start(
        yatai()
            .args(["serve", "--port", &port.to_string(), "--data-dir"])
            .arg(dir.path())
            .env("YATAI_INITIALIZATION_TOKEN", "tok-123"),
    );
    let text = lines.join("\n");
    assert!(
        text.contains(&format!("http://127.0.0.1:{port}/setup?token=tok-123")),
        "{text}"
    );
    assert!(
        dir.path().join("yatai.db").exists(),
        "the embedded database lives in the data directory"
    );
    assert!(
        dir.path().join("objects").is_dir(),
        "the embedded objects live in the data directory"
    );
}

#[test]
fn flags_beat_env_which_beats_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("from-file");
    let (p_file, p_env, p_flag) = (free_port(), free_port(), free_port());
    let config = dir.path().join("yatai.toml");
    std::fs::write(
        &config,
        format!(
            "port = {p_file}\ndata_dir = {:?}\ninitialization_token = \"from-file\"\n",
            data.display().to_string()
        ),
    )
    .unwrap();

    let (server, lines) = start(yatai().args(["serve", "--config"]).arg(&config));
    let text = lines.join("\n");
    assert!(
        text.contains(&format!("127.0.0.1:{p_file}/setup?token=from-file")),
        "config file applies: {text}"
    );
    assert!(
        data.join("yatai.db").exists(),
        "data_dir from the config file applies"
    );
    drop(server);

    let (server, lines) = start(
        yatai()
            .args(["serve", "--config"])
            .arg(&config)
            .env("YATAI_PORT", p_env.to_string()),
    );
    assert!(
        lines.join("\n").contains(&format!("127.0.0.1:{p_env}/")),
        "env beats the file: {lines:?}"
    );
    drop(server);

    let (_server, lines) = start(
        yatai()
            .args(["serve", "--port", &p_flag.to_string(), "--config"])
            .arg(&config)
            .env("YATAI_PORT", p_env.to_string()),
    );
    assert!(
        lines.join("\n").contains(&format!("127.0.0.1:{p_flag}/")),
        "the flag beats env: {lines:?}"
    );

    std::fs::write(&config, "prot = 1\n").unwrap();
    let err = expect_failure(yatai().args(["serve", "--config"]).arg(&config));
    assert!(
        err.contains("invalid config file") && err.contains("prot"),
        "{err}"
    );
}

#[test]
fn the_database_pool_size_is_a_setting_of_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    let err = expect_failure(
        yatai()
            .args(["serve", "--db-max-connections", "0", "--data-dir"])
            .arg(dir.path()),
    );
    assert!(err.contains("--db-max-connections"), "{err}");
    let config = dir.path().join("yatai.toml");
    std::fs::write(&config, "db_max_connections = 0\n").unwrap();
    let err = expect_failure(yatai().args(["serve", "--config"]).arg(&config));
    assert!(
        err.contains("db_max_connections") && err.contains("at least 1"),
        "{err}"
    );

    // One connection is enough for a server to start (migrations, setup) and answer.
    let port = free_port();
    let (_server, _) = start(
        yatai()
            .args(["serve", "--port", &port.to_string(), "--data-dir"])
            .arg(dir.path())
            .env("YATAI_DB_MAX_CONNECTIONS", "1"),
    );
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read, Write};
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn refuses_to_start_without_its_database() {
    let dir = tempfile::tempdir().unwrap();
    let err = expect_failure(yatai().args(["serve", "--data-dir"]).arg(dir.path()).args([
        "--database-url",
        "postgres://postgres:secret@127.0.0.1:1/yatai",
    ]));
    assert!(err.contains("cannot connect to the database"), "{err}");
    assert!(
        !err.contains("secret"),
        "the password is not printed: {err}"
    );
    let err = expect_failure(
        yatai()
            .args(["serve", "--data-dir"])
            .arg(dir.path())
            .args(["--database-url", "mysql://x"]),
    );
    assert!(err.contains("sqlite:// or postgres://"), "{err}");
    let err = expect_failure(yatai().args([
        "migrate",
        "--database-url",
        "postgres://postgres@127.0.0.1:5432/db_that_does_not_exist_x",
    ]));
    assert!(err.contains("db_that_does_not_exist_x"), "{err}");
}

#[test]
fn refuses_to_start_without_its_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let base = |cmd: &mut Command| {
        cmd.args(["serve", "--data-dir"])
            .arg(dir.path())
            .env("S3_ACCESS_KEY", "testing")
            .env("S3_SECRET_KEY", "testing")
            .env("S3_SECURE", "false");
    };
    let mut cmd = yatai();
    base(&mut cmd);
    let err = expect_failure(
        cmd.env("S3_ENDPOINT", s3_endpoint())
            .env("S3_BUCKET_NAME", "no-such-bucket-here"),
    );
    assert!(
        err.contains("object storage") && err.contains("no-such-bucket-here"),
        "{err}"
    );
    let mut cmd = yatai();
    base(&mut cmd);
    let err = expect_failure(
        cmd.env("S3_ENDPOINT", "127.0.0.1:1")
            .env("S3_BUCKET_NAME", "b"),
    );
    assert!(err.contains("object storage"), "{err}");
    let mut cmd = yatai();
    base(&mut cmd);
    let err = expect_failure(
        cmd.env("S3_ENDPOINT", s3_endpoint())
            .env("S3_BUCKET_NAME", "b")
            .env("TRANSMISSION_STRATEGY", "carrier-pigeon"),
    );
    assert!(err.contains("carrier-pigeon"), "{err}");
}

#[test]
fn migrate_prepares_an_empty_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = yatai()
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("database is up to date"));
    assert!(dir.path().join("yatai.db").exists());
}
