//! The offline Python validators (kubernetes-validate, check-jsonschema, helm-sdkpy) in the venv that
//! `scripts/validators-venv.sh` makes. A missing venv fails the test with the command that makes it.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

pub fn venv() -> PathBuf {
    let hint = "run `eval \"$(scripts/validators-venv.sh)\"` from the repository root (./scripts/test does it), \
                which creates the validators venv under ~/.cache/yatai/venvs and sets YATAI_VALIDATORS_VENV";
    let dir = std::env::var_os("YATAI_VALIDATORS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("YATAI_VALIDATORS_VENV is not set: {hint}"));
    assert!(
        dir.join("bin/python").exists(),
        "{} is not a venv: {hint}",
        dir.display()
    );
    dir
}

/// Runs a tool of the venv; returns (success, stdout + stderr).
pub fn run(tool: &str, args: &[&std::ffi::OsStr]) -> (bool, String) {
    let path = venv().join("bin").join(tool);
    let out = Command::new(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
