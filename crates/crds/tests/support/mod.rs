//! Test support: the original CRDs, maximal objects generated from their schemas, and the example files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

/// `../shared/reference/crds` beside the clone.
pub fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/crds")
}

/// Every document of a YAML file, as JSON values.
pub fn yaml_documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| <Value as serde::Deserialize>::deserialize(doc).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// The original CRDs: (kind, version, openAPIV3Schema) for every version.
pub fn original_versions() -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    let dir = reference_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the original CRDs live in ../shared/reference/crds)",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in files {
        for crd in yaml_documents(&std::fs::read_to_string(&file).unwrap()) {
            let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
            for v in crd["spec"]["versions"].as_array().unwrap() {
                out.push((
                    kind.clone(),
                    v["name"].as_str().unwrap().to_string(),
                    v["schema"]["openAPIV3Schema"].clone(),
                ));
            }
        }
    }
    out
}

/// An object that sets every field the schema describes (one item per list, one key per map).
pub fn maximal(schema: &Value) -> Value {
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        // A quantity where the schema has the quantity pattern, a port name otherwise.
        return if schema.get("pattern").is_some() {
            json!("1536Mi")
        } else {
            json!("http")
        };
    }
    if let Some(values) = schema.get("enum").and_then(|e| e.as_array()) {
        return values[0].clone();
    }
    match schema.get("type").and_then(|t| t.as_str()) {
        Some("string") => match schema.get("format").and_then(|f| f.as_str()) {
            Some("date-time") => json!("2024-05-06T07:08:09Z"),
            Some("byte") => json!("aGVsbG8="),
            _ => json!("some-value"),
        },
        Some("integer") => json!(3),
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        Some("array") => json!([maximal(&schema["items"])]),
        Some("object") | None => {
            let mut out = Map::new();
            if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
                for (k, v) in props {
                    out.insert(k.clone(), maximal(v));
                }
            } else if let Some(additional) =
                schema.get("additionalProperties").filter(|a| a.is_object())
            {
                out.insert("some-key".into(), maximal(additional));
            }
            Value::Object(out)
        }
        Some(other) => panic!("schema type {other} not handled"),
    }
}

/// Paths of the leaves where two JSON values differ (empty when equal).
pub fn differences(left: &Value, right: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff(left, right, String::new(), &mut out);
    out
}

fn diff(l: &Value, r: &Value, path: String, out: &mut Vec<String>) {
    match (l, r) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    Some(w) => diff(v, w, format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k}: missing on the right")),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("{path}.{k}: missing on the left"));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                diff(v, w, format!("{path}[{i}]"), out);
            }
        }
        _ if l == r => {}
        _ => out.push(format!("{path}: {l} != {r}")),
    }
}

/// The example files (published by the original projects), with their names.
pub fn examples() -> Vec<(String, Vec<Value>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 7,
        "example fixtures missing in {}",
        dir.display()
    );
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, yaml_documents(&std::fs::read_to_string(&p).unwrap()))
        })
        .collect()
}
