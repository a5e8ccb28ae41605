//! Constructors from kubeconfigs: a bad one gives a clear error that quotes none of it; a good one gives a runtime
//! without contacting the cluster.

use yatai_runtime_kubernetes::{
    redact_kubeconfig, validate_kubeconfig, KubernetesRuntime, RuntimeOptions,
};

const GOOD: &str = r#"
apiVersion: v1
kind: Config
current-context: prod
clusters:
- name: prod-cluster
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}
contexts:
- name: prod
  context: {cluster: prod-cluster, user: deployer, namespace: yatai}
users:
- name: deployer
  user: {token: SECRET-TOKEN-abc}
"#;

#[tokio::test]
async fn a_bad_kubeconfig_gives_a_clear_error_without_secrets() {
    for (yaml, expected) in [
        ("{ token: SECRET-TOKEN-abc", "the kubeconfig is not valid YAML (line"),
        (
            "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: [{name: u, user: {token: SECRET-TOKEN-abc}}]\n",
            "the kubeconfig has no current-context",
        ),
        (
            "current-context: c\ncontexts: [{name: c, context: {cluster: x, user: u}}]\nclusters: []\nusers: [{name: u, user: {token: SECRET-TOKEN-abc}}]\n",
            "the cluster \"x\" of context \"c\" is not among the kubeconfig's clusters",
        ),
    ] {
        let e = KubernetesRuntime::from_kubeconfig(yaml, RuntimeOptions::for_cluster("c1"))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(expected), "{e:?} should contain {expected:?}");
        assert!(!e.contains("SECRET"), "{e}");
        let v = validate_kubeconfig(yaml).unwrap_err();
        assert_eq!(v, e);
    }
}

#[tokio::test]
async fn a_good_kubeconfig_gives_a_runtime_without_contacting_the_cluster() {
    validate_kubeconfig(GOOD).unwrap();
    let rt = KubernetesRuntime::from_kubeconfig(GOOD, RuntimeOptions::for_cluster("c1"))
        .await
        .unwrap();
    assert_eq!(rt.options().cluster, "c1");
    assert!(!format!("{rt:?}").contains("SECRET"));
}

#[tokio::test]
async fn in_cluster_outside_a_pod_says_so() {
    // The tests do not run in a pod (no KUBERNETES_SERVICE_HOST, no service account token).
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return;
    }
    let e = KubernetesRuntime::in_cluster(RuntimeOptions::for_cluster("local"))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("not running inside a Kubernetes pod"), "{e}");
}

#[test]
fn redaction_removes_tokens_and_keys() {
    let yaml = r#"
current-context: prod
clusters: [{name: prod-cluster, cluster: {server: "https://k8s.example.com"}}]
contexts: [{name: prod, context: {cluster: prod-cluster, user: deployer}}]
users:
- name: deployer
  user: {token: SECRET-TOKEN-abc, client-key-data: SECRET-KEY, client-certificate-data: CERT-DATA}
- name: basic
  user: {username: alice, password: SECRET-PW}
"#;
    let out = redact_kubeconfig(yaml).unwrap();
    assert!(!out.contains("SECRET"), "{out}");
    assert!(!out.contains("CERT-DATA"), "{out}");
    assert!(
        out.contains("https://k8s.example.com") && out.contains("alice"),
        "{out}"
    );
    // Still a kubeconfig with the same shape.
    validate_kubeconfig(&out).unwrap();
}
