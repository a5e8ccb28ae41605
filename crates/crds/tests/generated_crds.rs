//! The CRDs generated from the Rust types: names, versions, columns, and the same fields as the originals.

mod support;

use serde_json::Value;
use support::*;

fn generated() -> Vec<Value> {
    yatai_crds::all_crds()
        .into_iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect()
}

fn crd<'a>(crds: &'a [Value], kind: &str) -> &'a Value {
    crds.iter()
        .find(|c| c["spec"]["names"]["kind"] == kind)
        .unwrap()
}

#[test]
fn names_scope_and_versions_match_the_originals() {
    let crds = generated();
    assert_eq!(crds.len(), 3);
    for (kind, plural, group, versions, storage) in [
        (
            "Bento",
            "bentoes",
            "resources.yatai.ai",
            vec!["v1alpha1"],
            "v1alpha1",
        ),
        (
            "BentoRequest",
            "bentorequests",
            "resources.yatai.ai",
            vec!["v1alpha1"],
            "v1alpha1",
        ),
        (
            "BentoDeployment",
            "bentodeployments",
            "serving.yatai.ai",
            vec!["v1alpha1", "v1alpha2", "v1alpha3", "v2alpha1"],
            "v2alpha1",
        ),
    ] {
        let c = crd(&crds, kind);
        assert_eq!(c["metadata"]["name"], format!("{plural}.{group}"));
        assert_eq!(c["spec"]["scope"], "Namespaced");
        let mut names: Vec<&str> = c["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, versions, "{kind}");
        for v in c["spec"]["versions"].as_array().unwrap() {
            assert_eq!(
                v["storage"] == true,
                v["name"] == storage,
                "{kind} {}",
                v["name"]
            );
            // Only the stored version is served: the older ones need `yatai convert` (no conversion webhook).
            assert_eq!(
                v["served"] == true,
                v["name"] == storage,
                "{kind} {}",
                v["name"]
            );
            assert!(
                v["subresources"]["status"].is_object(),
                "{kind} has a status subresource"
            );
        }
    }
}

#[test]
fn kubectl_get_prints_the_original_columns() {
    let crds = generated();
    let reference: Vec<(String, String, Value)> = original_versions();
    for (kind, version, _) in reference {
        let c = crd(&crds, &kind);
        let ours = c["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == version.as_str())
            .unwrap();
        let file = match kind.as_str() {
            "Bento" => "resources.yatai.ai_bentoes.yaml",
            "BentoRequest" => "resources.yatai.ai_bentorequests.yaml",
            _ => "serving.yatai.ai_bentodeployments.yaml",
        };
        let original =
            &yaml_documents(&std::fs::read_to_string(reference_dir().join(file)).unwrap())[0];
        let theirs = original["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == version.as_str())
            .unwrap();
        assert_eq!(
            ours["additionalPrinterColumns"], theirs["additionalPrinterColumns"],
            "{kind} {version}"
        );
    }
}

/// Every property path of a schema (`spec.runners[].name`, ...).
fn paths(schema: &Value, prefix: String, out: &mut Vec<String>) {
    if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
        for (k, v) in props {
            let p = format!("{prefix}.{k}");
            out.push(p.clone());
            paths(v, p, out);
        }
    }
    if let Some(items) = schema.get("items") {
        paths(items, format!("{prefix}[]"), out);
    }
    if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        paths(additional, format!("{prefix}{{}}"), out);
    }
}

#[test]
fn generated_schemas_describe_every_original_field() {
    let crds = generated();
    for (kind, version, theirs) in original_versions() {
        let c = crd(&crds, &kind);
        let ours = &c["spec"]["versions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == version.as_str())
            .unwrap()["schema"]["openAPIV3Schema"];
        let (mut a, mut b) = (Vec::new(), Vec::new());
        paths(&theirs, String::new(), &mut a);
        paths(ours, String::new(), &mut b);
        // apiVersion, kind and metadata are the API server's own; kube leaves them out of the schema.
        let missing: Vec<&String> = a
            .iter()
            .filter(|p| !b.contains(p))
            .filter(|p| !matches!(p.as_str(), ".apiVersion" | ".kind" | ".metadata"))
            .collect();
        assert!(
            missing.is_empty(),
            "{kind} {version}: our schema lacks {missing:#?}"
        );
    }
}

#[test]
fn the_yaml_stream_parses_back() {
    let docs = yaml_documents(&yatai_crds::crds_yaml());
    assert_eq!(docs, generated());
}
