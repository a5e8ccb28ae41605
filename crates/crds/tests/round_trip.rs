//! Every field of the original CRDs, and every published example, is accepted by the Rust types and comes back
//! unchanged.

mod support;

use serde_json::{json, Value};
use support::*;
use yatai_crds::bento_deployment::{v1alpha1, v1alpha2, v1alpha3, v2alpha1};
use yatai_crds::{Bento, BentoRequest};

/// Deserialises `value` as the Rust type of (kind, version) and serialises it back.
fn through_rust_types(kind: &str, version: &str, value: Value) -> Result<Value, String> {
    fn rt<T: serde::de::DeserializeOwned + serde::Serialize>(v: Value) -> Result<Value, String> {
        let typed: T = serde_json::from_value(v).map_err(|e| e.to_string())?;
        Ok(serde_json::to_value(typed).unwrap())
    }
    match (kind, version) {
        ("Bento", "v1alpha1") => rt::<Bento>(value),
        ("BentoRequest", "v1alpha1") => rt::<BentoRequest>(value),
        ("BentoDeployment", "v1alpha1") => rt::<v1alpha1::BentoDeployment>(value),
        ("BentoDeployment", "v1alpha2") => rt::<v1alpha2::BentoDeployment>(value),
        ("BentoDeployment", "v1alpha3") => rt::<v1alpha3::BentoDeployment>(value),
        ("BentoDeployment", "v2alpha1") => rt::<v2alpha1::BentoDeployment>(value),
        ("Secret", "v1") => Ok(value),
        other => Err(format!("no Rust type for {other:?}")),
    }
}

fn group(kind: &str) -> &'static str {
    if kind == "BentoDeployment" {
        "serving.yatai.ai"
    } else {
        "resources.yatai.ai"
    }
}

#[test]
fn every_field_of_the_original_crds_round_trips() {
    let versions = original_versions();
    assert_eq!(
        versions.len(),
        6,
        "Bento, BentoRequest and four BentoDeployment versions"
    );
    for (kind, version, schema) in versions {
        let mut object = maximal(&schema);
        object["apiVersion"] = json!(format!("{}/{version}", group(&kind)));
        object["kind"] = json!(kind);
        object["metadata"] = json!({"name": "every-field", "namespace": "default"});
        let back = through_rust_types(&kind, &version, object.clone())
            .unwrap_or_else(|e| panic!("{kind} {version}: the maximal object is refused: {e}"));
        let diffs = differences(&object, &back);
        assert!(
            diffs.is_empty(),
            "{kind} {version} loses or changes fields:\n{}",
            diffs.join("\n")
        );
    }
}

#[test]
fn quantities_written_as_integers_are_accepted() {
    let bento = json!({
        "apiVersion": "resources.yatai.ai/v1alpha1", "kind": "Bento",
        "metadata": {"name": "b"},
        "spec": {"tag": "a:b", "image": "i", "models": [{"tag": "m:1", "size": 1024}]},
    });
    let back = through_rust_types("Bento", "v1alpha1", bento).unwrap();
    assert_eq!(back["spec"]["models"][0]["size"], json!("1024"));
}

#[test]
fn published_examples_round_trip() {
    for (file, docs) in examples() {
        for doc in docs {
            let kind = doc["kind"].as_str().unwrap().to_string();
            let version = doc["apiVersion"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            let back = through_rust_types(&kind, &version, doc.clone())
                .unwrap_or_else(|e| panic!("{file}: {kind} {version} is refused: {e}"));
            let diffs = differences(&doc, &back);
            // The one field no schema has (see fixtures/examples/README.md) is pruned, as the API server does.
            let expected: Vec<String> = if file == "yatai-readme-v1alpha2.yaml" {
                vec![".spec.runners[0].resources.autoscaling: missing on the right".into()]
            } else {
                vec![]
            };
            assert_eq!(diffs, expected, "{file}: {kind} {version}");
        }
    }
}

#[test]
fn the_maximal_objects_reach_deep_fields() {
    // Guards the generator: a shallow object would make the round trip prove little.
    fn leaves(v: &Value) -> usize {
        match v {
            Value::Object(m) => m.values().map(leaves).sum(),
            Value::Array(a) => a.iter().map(leaves).sum(),
            _ => 1,
        }
    }
    for (kind, version, schema) in original_versions() {
        let object = maximal(&schema);
        let n = leaves(&object);
        assert!(n > 20, "{kind} {version}: only {n} leaves");
        if kind == "BentoDeployment" && version == "v2alpha1" {
            let probe = &object["spec"]["runners"][0]["extraPodSpec"]["containers"][0]
                ["livenessProbe"]["httpGet"];
            assert_eq!(probe["port"], json!("http"), "{probe}");
            assert!(n > 500, "v2alpha1 has {n} leaves");
        }
    }
}
