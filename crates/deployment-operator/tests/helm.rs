//! The Helm charts in deploy/helm: `helm lint` (Helm 4's own lint, through the helm-sdkpy wheel of the validators
//! venv: no helm binary can be installed here) with the default values and with every optional part switched on,
//! and the CRD chart holding exactly the CRDs the types generate.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::validators::run;

fn charts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/helm")
}

const CHARTS: [&str; 4] = [
    "yatai",
    "yatai-crds",
    "yatai-deployment-operator",
    "yatai-image-builder",
];

/// Helm lint's findings of severity warning or worse, as (severity, path).
fn lint(chart: &Path) -> Vec<(i64, String)> {
    let script = "import asyncio, json, sys, helm_sdkpy as h\n\
                  r = asyncio.run(h.Lint(h.Configuration(namespace='default')).run(sys.argv[1]))\n\
                  print(json.dumps(r))";
    let (ok, out) = run(
        "python",
        &[
            std::ffi::OsStr::new("-c"),
            std::ffi::OsStr::new(script),
            chart.as_os_str(),
        ],
    );
    assert!(ok, "helm lint could not run on {}:\n{out}", chart.display());
    let result: Value =
        serde_json::from_str(out.lines().last().unwrap()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(result["TotalChartsLinted"], 1, "{out}");
    result["Messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["Severity"].as_i64().unwrap(),
                m["Path"].as_str().unwrap_or_default().to_string(),
            )
        })
        .filter(|(severity, _)| *severity >= 2)
        .collect()
}

/// A copy of `chart` whose values.yaml is changed by `edit`.
fn variant(chart: &str, edit: impl Fn(&mut Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&charts_dir().join(chart), dir.path());
    let values_path = dir.path().join("values.yaml");
    let mut values: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&values_path).unwrap()).unwrap();
    edit(&mut values);
    std::fs::write(&values_path, serde_yaml_ng::to_string(&values).unwrap()).unwrap();
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn every_chart_passes_helm_lint_with_its_defaults() {
    for chart in CHARTS {
        let findings = lint(&charts_dir().join(chart));
        assert!(findings.is_empty(), "{chart}: {findings:?}");
    }
}

#[test]
fn every_chart_passes_helm_lint_with_every_option_on() {
    let on = |v: &mut Value| {
        v["serviceMonitor"]["enabled"] = true.into();
        v["serviceMonitor"]["labels"] = serde_json::json!({"release": "prometheus"});
    };
    let server = variant("yatai", |v| {
        on(v);
        v["ingress"] = serde_json::json!({"enabled": true, "className": "nginx", "host": "yatai.example.com",
            "annotations": {"a": "b"}, "tlsSecret": "tls"});
        v["postgresql"]["host"] = "db.internal".into();
        v["s3"]["endpoint"] = "s3.internal:9000".into();
        v["initializationToken"] = "choose-one".into();
        v["persistence"]["enabled"] = false.into();
    });
    let operator = variant("yatai-deployment-operator", |v| {
        on(v);
        v["ingress"]["domainSuffix"] = "apps.example.com".into();
        v["ingress"]["className"] = "nginx".into();
        v["ingress"]["annotations"] = serde_json::json!({"a": "b"});
        v["ingress"]["tlsMode"] = "static".into();
        v["ingress"]["staticTlsSecret"] = "wildcard".into();
        v["images"]["proxy"] = "registry.example.com/proxy:1".into();
        v["yatai"] = serde_json::json!({"version": "1.1.13-abc", "orgUid": "o", "clusterUid": "c", "orgName": "acme"});
        v["leaderElection"] = false.into();
    });
    let builder = variant("yatai-image-builder", |v| {
        on(v);
        v["dockerRegistry"]["existingSecret"] = "registry".into();
        v["yatai"] =
            serde_json::json!({"endpoint": "http://yatai:7777", "apiTokenSecret": "token"});
        v["buildInJob"] = serde_json::json!({"enabled": true, "registrySecret": "registry", "tokenSecret": "token"});
    });
    for dir in [&server, &operator, &builder] {
        let findings = lint(dir.path());
        assert!(
            findings.is_empty(),
            "{}: {findings:?}",
            dir.path().display()
        );
    }
}

#[test]
fn helm_lint_does_catch_a_broken_template() {
    // Guards the two tests above: lint really renders the templates.
    let dir = variant("yatai-deployment-operator", |_| {});
    std::fs::write(
        dir.path().join("templates/broken.yaml"),
        "metadata:\n  name: {{ .Values.nope.deeper }\n",
    )
    .unwrap();
    assert!(!lint(dir.path()).is_empty());
}

#[test]
fn the_crd_chart_holds_the_generated_crds() {
    let committed =
        std::fs::read_to_string(charts_dir().join("yatai-crds/crds/yatai.yaml")).unwrap();
    assert!(
        committed == yatai_crds::crds_yaml(),
        "deploy/helm/yatai-crds/crds/yatai.yaml is stale: regenerate it with `yatai crds > deploy/helm/yatai-crds/crds/yatai.yaml`"
    );
}

/// The rules of a chart's RBAC template, as (apiGroups, resources, verbs) lines (the templates use one flow list
/// per key).
fn rbac_rules(chart: &str) -> Vec<(String, String, String)> {
    let text =
        std::fs::read_to_string(charts_dir().join(chart).join("templates/rbac.yaml")).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    lines
        .windows(3)
        .filter_map(|w| {
            let groups = w[0].strip_prefix("- apiGroups: ")?;
            let resources = w[1].strip_prefix("resources: ")?;
            let verbs = w[2].strip_prefix("verbs: ")?;
            Some((groups.into(), resources.into(), verbs.into()))
        })
        .collect()
}

#[test]
fn operator_charts_grant_the_leader_lease_and_events() {
    for chart in ["yatai-deployment-operator", "yatai-image-builder"] {
        let rules = rbac_rules(chart);
        let lease = (
            "[coordination.k8s.io]".to_string(),
            "[leases]".to_string(),
            "[get, create, update]".to_string(),
        );
        assert!(rules.contains(&lease), "{chart}: {rules:#?}");
        assert!(
            rules.iter().any(|(g, r, v)| g.contains("events.k8s.io")
                && r == "[events]"
                && v.contains("create")),
            "{chart}: kube-rs writes events.k8s.io/v1 Events: {rules:#?}"
        );
    }
    // The Lease rule is a namespaced Role, only when leader election is on.
    let text =
        std::fs::read_to_string(charts_dir().join("yatai-deployment-operator/templates/rbac.yaml"))
            .unwrap();
    let role = &text[text.find("{{- if .Values.leaderElection }}").unwrap()..];
    assert!(role.contains("kind: Role\n") && role.contains("[leases]"));
}
