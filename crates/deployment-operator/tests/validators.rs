//! Offline validation with maintained third-party validators (Python, see scripts/validators-venv.sh):
//! - every object the operator generates passes `kubernetes-validate --strict` for Kubernetes 1.37;
//! - the generated CRDs pass it too;
//! - every published example, and an object setting every field of the original CRDs, validates against the CRD
//!   schemas we generate (`check-jsonschema`).

#[path = "../../crds/tests/support/mod.rs"]
mod crd_support;
mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::validators::run;
use yatai_deployment_operator::config::{Config, IngressConfig, TlsMode};
use yatai_deployment_operator::render;

fn write_all(dir: &Path, docs: &[(String, Value)]) -> Vec<PathBuf> {
    docs.iter()
        .map(|(name, doc)| {
            let path = dir.join(format!("{name}.json"));
            std::fs::write(&path, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
            path
        })
        .collect()
}

fn kubernetes_validate(files: &[PathBuf]) {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("--strict"),
        OsStr::new("-k"),
        OsStr::new("1.37.0"),
    ];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let (ok, out) = run("kubernetes-validate", &args);
    assert!(ok, "kubernetes-validate rejects generated objects:\n{out}");
    let passed = out
        .lines()
        .filter(|l| l.starts_with("INFO") && l.contains("passed"))
        .count();
    assert_eq!(
        passed,
        files.len(),
        "every file is reported as passed:\n{out}"
    );
}

#[test]
fn generated_objects_pass_kubernetes_validate() {
    let dir = tempfile::tempdir().unwrap();
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cases");
    let configs = [
        Config {
            ingress: IngressConfig {
                domain_suffix: Some("apps.example.com".into()),
                ..Default::default()
            },
            ..Config::default()
        },
        // The other branches: static TLS, a class, restricted security context, Yatai identity.
        Config {
            ingress: IngressConfig {
                domain_suffix: Some("apps.example.com".into()),
                class_name: Some("nginx".into()),
                tls_mode: TlsMode::Static,
                static_tls_secret: Some("wildcard".into()),
                ..Default::default()
            },
            restricted_security_context: true,
            yatai: Some(Default::default()),
            ..Config::default()
        },
    ];
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&cases).unwrap() {
        let path = entry.unwrap().path();
        let yaml = std::fs::read_to_string(&path).unwrap();
        for (c, config) in configs.iter().enumerate() {
            for (i, doc) in render::render(&yaml, config)
                .unwrap()
                .into_iter()
                .enumerate()
            {
                let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
                docs.push((format!("{stem}-{c}-{i}"), doc));
            }
        }
    }
    assert!(docs.len() > 80, "{} objects", docs.len());
    kubernetes_validate(&write_all(dir.path(), &docs));
}

#[test]
fn generated_crds_pass_kubernetes_validate() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<(String, Value)> = yatai_crds::all_crds()
        .into_iter()
        .map(|c| {
            (
                c.metadata.name.clone().unwrap(),
                serde_json::to_value(c).unwrap(),
            )
        })
        .collect();
    kubernetes_validate(&write_all(dir.path(), &docs));
}

/// Our generated schema of (kind, version).
fn our_schema(kind: &str, version: &str) -> Value {
    let crd = yatai_crds::all_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    let v = crd
        .spec
        .versions
        .into_iter()
        .find(|v| v.name == version)
        .unwrap();
    serde_json::to_value(v.schema.unwrap().open_api_v3_schema.unwrap()).unwrap()
}

fn check_jsonschema(dir: &Path, label: &str, schema: &Value, instances: &[(String, Value)]) {
    let schema_file = dir.join(format!("{label}.schema.json"));
    // JSON Schema draft 4-ish with Kubernetes extensions (x-kubernetes-*), which validators ignore.
    std::fs::write(&schema_file, serde_json::to_vec(schema).unwrap()).unwrap();
    let files = write_all(dir, instances);
    let mut args: Vec<&OsStr> = vec![OsStr::new("--schemafile"), schema_file.as_os_str()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let (ok, out) = run("check-jsonschema", &args);
    assert!(ok, "{label}: check-jsonschema rejects:\n{out}");
    assert!(out.contains("ok -- validation done"), "{out}");
}

#[test]
fn every_original_field_and_published_example_validates_against_our_crds() {
    let dir = tempfile::tempdir().unwrap();
    // An object setting every field of each original CRD version.
    for (kind, version, schema) in crd_support::original_versions() {
        let mut object = crd_support::maximal(&schema);
        object["metadata"] = json!({"name": "every-field"});
        check_jsonschema(
            dir.path(),
            &format!("{kind}-{version}-maximal"),
            &our_schema(&kind, &version),
            &[(format!("{kind}-{version}-maximal"), object)],
        );
    }
    // The examples published by the original projects, unchanged.
    let mut checked = 0;
    for (file, docs) in crd_support::examples() {
        for (i, doc) in docs.into_iter().enumerate() {
            let kind = doc["kind"].as_str().unwrap().to_string();
            if !["Bento", "BentoRequest", "BentoDeployment"].contains(&kind.as_str()) {
                continue;
            }
            let version = crd_support::version_of(&doc);
            let label = format!("{}-{i}", file.trim_end_matches(".yaml"));
            check_jsonschema(
                dir.path(),
                &label,
                &our_schema(&kind, &version),
                &[(label.clone(), doc)],
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} examples");
}

#[test]
fn check_jsonschema_does_reject_a_wrong_type() {
    // Guards the test above: the schema is really applied.
    let dir = tempfile::tempdir().unwrap();
    let schema = our_schema("BentoDeployment", "v2alpha1");
    let bad = json!({"apiVersion": "serving.yatai.ai/v2alpha1", "kind": "BentoDeployment", "metadata": {"name": "x"},
        "spec": {"bento": "b", "autoscaling": {"minReplicas": "two", "maxReplicas": 3}}});
    let schema_file = dir.path().join("s.json");
    std::fs::write(&schema_file, serde_json::to_vec(&schema).unwrap()).unwrap();
    let files = write_all(dir.path(), &[("bad".into(), bad)]);
    let (ok, out) = run(
        "check-jsonschema",
        &[
            OsStr::new("--schemafile"),
            schema_file.as_os_str(),
            files[0].as_os_str(),
        ],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("minReplicas"), "{out}");
}
