//! Running the `yatai` binary in tests.
#![allow(dead_code)]

use std::process::{Command, Output};

/// The `yatai` binary with the machine's Yatai settings removed from its environment.
pub fn yatai() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_yatai"));
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

/// Runs a command that must succeed; returns its stdout and stderr.
pub fn expect_success(cmd: &mut Command) -> (String, String) {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "expected success, got {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs a command that must fail with exit code 1 and exactly one `error:` line; returns that
/// line and stdout.
pub fn expect_failure(cmd: &mut Command) -> (String, String) {
    let out = run(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit code 1\nstdout: {stdout}\nstderr: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {stderr}");
    (lines[0].to_string(), stdout)
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run yatai")
}
