//! `yatai crds`, `yatai convert`, `yatai deployment-operator render` and the operator's start-up without a cluster.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn yatai(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_yatai"));
    cmd.args(args);
    // No cluster: a kubeconfig pointing nowhere, no in-cluster service account.
    cmd.env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST");
    for (key, _) in std::env::vars() {
        if key.starts_with("YATAI_") || key.starts_with("INTERNAL_IMAGES_") {
            cmd.env_remove(key);
        }
    }
    cmd.output().expect("run yatai")
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_new_command_and_flag_has_help() {
    for args in [
        vec!["crds", "--help"],
        vec!["convert", "--help"],
        vec!["deployment-operator", "--help"],
        vec!["deployment-operator", "render", "--help"],
    ] {
        let out = yatai(&args);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{args:?}: {stderr}");
        // Every flag carries a description: after its name, or on the next line (long help).
        let lines: Vec<&str> = stdout.lines().collect();
        let is_flag = |l: &str| {
            let t = l.trim_start().as_bytes();
            t.starts_with(b"--") || (t.len() > 2 && t[0] == b'-' && t[2] == b',')
        };
        for (i, line) in lines.iter().enumerate().filter(|(_, l)| is_flag(l)) {
            let inline = line
                .trim_start()
                .split_once("  ")
                .is_some_and(|(_, d)| !d.trim().is_empty());
            let next = lines
                .get(i + 1)
                .is_some_and(|n| !n.trim().is_empty() && !is_flag(n));
            assert!(inline || next, "{args:?}: undocumented flag: {line}");
        }
    }
    let (stdout, _) = text(&yatai(&["deployment-operator", "--help"]));
    for flag in [
        "--domain-suffix",
        "--ingress-tls-mode",
        "--metrics-addr",
        "--leader-elect",
    ] {
        assert!(stdout.contains(flag), "{flag} in:\n{stdout}");
    }
}

#[test]
fn crds_prints_the_three_crds() {
    let out = yatai(&["crds"]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    for name in [
        "bentoes.resources.yatai.ai",
        "bentorequests.resources.yatai.ai",
        "bentodeployments.serving.yatai.ai",
    ] {
        assert!(stdout.contains(&format!("name: {name}")), "{name}");
    }
}

#[test]
fn render_prints_the_objects_of_a_file_and_convert_rewrites_old_versions() {
    let file = fixture("deployment-operator/tests/fixtures/cases/v1alpha3.yaml");
    let out = yatai(&[
        "deployment-operator",
        "render",
        "-f",
        file.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout
            .matches("apiVersion: apps/v1\nkind: Deployment")
            .count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("name: my-bento-deployment-runner-0"));

    let old = fixture("crds/tests/fixtures/examples/yatai-readme-v1alpha2.yaml");
    let out = yatai(&["convert", "-f", old.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("apiVersion: serving.yatai.ai/v2alpha1"));
    assert!(stdout.contains("kind: BentoRequest"));
    assert!(stdout.contains("bento: iris-classifier--3-oevmqfvnkvwvuqj"));
}

#[test]
fn bad_input_gets_one_clear_error() {
    let (_, stderr) = text(&yatai(&[
        "deployment-operator",
        "render",
        "-f",
        "/nonexistent.yaml",
    ]));
    assert!(stderr.contains("cannot read /nonexistent.yaml"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bd.yaml");
    std::fs::write(&file, "apiVersion: serving.yatai.ai/v2alpha1\nkind: BentoDeployment\nmetadata: {name: a}\nspec: {bento: missing}\n").unwrap();
    let out = yatai(&[
        "deployment-operator",
        "render",
        "-f",
        file.to_str().unwrap(),
    ]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no Bento named \"missing\" in the file"),
        "{stderr}"
    );

    std::fs::write(
        &file,
        "apiVersion: serving.yatai.ai/v9\nkind: BentoDeployment\nmetadata: {name: a}\nspec: {}\n",
    )
    .unwrap();
    let (_, stderr) = text(&yatai(&["convert", "-f", file.to_str().unwrap()]));
    assert!(
        stderr.contains("serving.yatai.ai/v9 is not a BentoDeployment version"),
        "{stderr}"
    );
}

#[test]
fn the_operator_without_a_cluster_says_how_to_give_it_one() {
    let out = yatai(&[
        "deployment-operator",
        "--metrics-addr",
        "127.0.0.1:0",
        "--leader-elect",
        "false",
    ]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr
            .contains("no Kubernetes API: run in a cluster (service account) or with a kubeconfig"),
        "{stderr}"
    );
}

#[test]
fn the_image_builder_in_job_mode_needs_the_job_image() {
    let out = yatai(&["image-builder", "--build-in-job"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--build-in-job needs --job-image (YATAI_IMAGE_BUILDER_JOB_IMAGE)"),
        "{stderr}"
    );
}
