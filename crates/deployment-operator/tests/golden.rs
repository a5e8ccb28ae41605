//! Golden snapshots of the desired objects (`yatai deployment-operator render`) for each case of issue 13, and
//! checks that every object reads back into the Kubernetes types.

use std::path::{Path, PathBuf};

use yatai_deployment_operator::config::{Config, IngressConfig};
use yatai_deployment_operator::render;

pub fn config() -> Config {
    Config {
        ingress: IngressConfig {
            domain_suffix: Some("apps.example.com".into()),
            class_name: Some("nginx".into()),
            ..IngressConfig::default()
        },
        ..Config::default()
    }
}

fn case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cases")
        .join(format!("{name}.yaml"))
}

fn rendered(name: &str) -> Vec<serde_json::Value> {
    let yaml = std::fs::read_to_string(case(name)).unwrap();
    render::render(&yaml, &config()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every rendered object deserialises into its `k8s-openapi` type and serialises back to the same JSON.
fn assert_typed(name: &str, docs: &[serde_json::Value]) {
    use k8s_openapi::api::{
        apps::v1::Deployment, autoscaling::v2::HorizontalPodAutoscaler, core::v1::*,
        networking::v1::Ingress,
    };
    fn rt<T: serde::de::DeserializeOwned + serde::Serialize>(
        v: &serde_json::Value,
    ) -> serde_json::Value {
        let typed: T = serde_json::from_value(v.clone()).expect("deserialises");
        serde_json::to_value(typed).unwrap()
    }
    for d in docs {
        let back = match d["kind"].as_str().unwrap() {
            "Deployment" => rt::<Deployment>(d),
            "Service" => rt::<Service>(d),
            "HorizontalPodAutoscaler" => rt::<HorizontalPodAutoscaler>(d),
            "Ingress" => rt::<Ingress>(d),
            "ConfigMap" => rt::<ConfigMap>(d),
            other => panic!("{name}: unexpected kind {other}"),
        };
        assert_eq!(&back, d, "{name}: {} {}", d["kind"], d["metadata"]["name"]);
    }
}

macro_rules! golden {
    ($test:ident, $case:literal) => {
        #[test]
        fn $test() {
            let docs = rendered($case);
            assert_typed($case, &docs);
            insta::assert_yaml_snapshot!($case, docs);
        }
    };
}

golden!(api_server_only, "api-server-only");
golden!(two_runners, "two-runners");
golden!(ingress_with_tls, "ingress-tls");
golden!(hpa_metrics, "hpa-metrics");
golden!(extra_pod_spec, "extra-pod-spec");
golden!(env_from_a_secret, "env-from-secret");
golden!(converted_v1alpha1, "v1alpha1");
golden!(converted_v1alpha2, "v1alpha2");
golden!(converted_v1alpha3, "v1alpha3");

#[test]
fn the_cases_cover_every_kind_of_object() {
    let kinds: Vec<String> = ["two-runners", "ingress-tls"]
        .iter()
        .flat_map(|c| rendered(c))
        .map(|d| d["kind"].as_str().unwrap().to_string())
        .collect();
    for kind in [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "Ingress",
        "ConfigMap",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind}");
    }
    // Two runners: three Deployments, HPAs and Services.
    let two = rendered("two-runners");
    assert_eq!(two.iter().filter(|d| d["kind"] == "Deployment").count(), 3);
}
