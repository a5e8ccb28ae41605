//! `yatai deployment-operator render` and `yatai convert`: the operator's view of a YAML file, without a cluster.

use serde_json::Value;
use yatai_crds::bento_deployment::convert::{AnyBentoDeployment, Converted};
use yatai_crds::Bento;

use crate::config::Config;
use crate::desired::desired;

/// A file that cannot be rendered or converted; the message names the document and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

/// Placeholder uid of a BentoDeployment read from a file (the API server assigns the real one).
pub const PLACEHOLDER_UID: &str = "00000000-0000-0000-0000-000000000000";

/// The documents of a YAML stream (empty documents skipped).
pub fn documents(yaml: &str) -> Result<Vec<Value>, RenderError> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(yaml).enumerate() {
        let value = <Value as serde::Deserialize>::deserialize(doc)
            .map_err(|e| RenderError(format!("document {}: not valid YAML: {e}", i + 1)))?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

fn is_kind(doc: &Value, group: &str, kind: &str) -> bool {
    doc["kind"] == kind
        && doc["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with(&format!("{group}/")))
}

fn name_of(doc: &Value) -> String {
    doc.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)")
        .to_string()
}

/// Converts a document holding a BentoDeployment of any version.
fn convert_doc(doc: Value) -> Result<Converted, RenderError> {
    AnyBentoDeployment::from_value(doc)
        .and_then(|d| d.into_v2alpha1())
        .map_err(|e| RenderError(e.to_string()))
}

/// The objects the operator would apply for every BentoDeployment in `yaml` (any served version), taking the
/// `Bento` objects of the same file as present. A deployment whose Bento is not in the file is an error naming it.
pub fn render(yaml: &str, config: &Config) -> Result<Vec<Value>, RenderError> {
    let docs = documents(yaml)?;
    let bentos: Vec<Bento> = docs
        .iter()
        .filter(|d| is_kind(d, "resources.yatai.ai", "Bento"))
        .map(|d| {
            serde_json::from_value(d.clone())
                .map_err(|e| RenderError(format!("Bento {}: {e}", name_of(d))))
        })
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    let mut found = false;
    for doc in docs
        .into_iter()
        .filter(|d| is_kind(d, "serving.yatai.ai", "BentoDeployment"))
    {
        found = true;
        let converted = convert_doc(doc)?;
        let mut bd = converted.deployment;
        let name = bd.metadata.name.clone().unwrap_or_default();
        bd.metadata
            .namespace
            .get_or_insert_with(|| "default".into());
        bd.metadata
            .uid
            .get_or_insert_with(|| PLACEHOLDER_UID.into());
        let tag = converted
            .bento_request
            .as_ref()
            .map(|r| r.spec.bento_tag.clone());
        // A converted old version names its Bento by tag; the file's Bento may carry any name.
        let bento = bentos
            .iter()
            .find(|b| b.metadata.name.as_deref() == Some(bd.spec.bento.as_str()))
            .or_else(|| tag.as_ref().and_then(|t| bentos.iter().find(|b| &b.spec.tag == t)))
            .ok_or_else(|| {
                RenderError(format!(
                    "BentoDeployment {name}: no Bento named {:?}{} in the file; add the Bento (kind: Bento, \
                     apiVersion: resources.yatai.ai/v1alpha1) it will be served from",
                    bd.spec.bento,
                    tag.map(|t| format!(" or tagged {t}")).unwrap_or_default()
                ))
            })?;
        let desired = desired(&bd, bento, config)
            .map_err(|e| RenderError(format!("BentoDeployment {name}: {e}")))?;
        out.extend(desired.objects.iter().map(|o| o.to_value()));
    }
    if !found {
        return Err(RenderError(
            "the file has no BentoDeployment (apiVersion: serving.yatai.ai/...)".into(),
        ));
    }
    Ok(out)
}

/// Fields the API server writes, which must not be applied back from a file.
fn strip_server_fields(doc: &mut Value) {
    if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "managedFields",
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "selfLink",
        ] {
            meta.remove(key);
        }
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
            if a.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    if let Some(map) = doc.as_object_mut() {
        map.remove("status");
    }
}

/// `yatai convert`: every older BentoDeployment in `yaml` rewritten as `v2alpha1`, preceded by the
/// `BentoRequest` its bento tag became (unless the file already has a Bento or BentoRequest of that name). Other
/// documents are kept as they are.
pub fn convert(yaml: &str) -> Result<Vec<Value>, RenderError> {
    let docs = documents(yaml)?;
    let present: Vec<String> = docs
        .iter()
        .filter(|d| {
            is_kind(d, "resources.yatai.ai", "Bento")
                || is_kind(d, "resources.yatai.ai", "BentoRequest")
        })
        .map(name_of)
        .collect();
    let mut out = Vec::new();
    for doc in docs {
        if !is_kind(&doc, "serving.yatai.ai", "BentoDeployment")
            || doc["apiVersion"] == "serving.yatai.ai/v2alpha1"
        {
            out.push(doc);
            continue;
        }
        let converted = convert_doc(doc)?;
        if let Some(request) = converted.bento_request {
            if !present
                .iter()
                .any(|n| Some(n) == request.metadata.name.as_ref())
            {
                out.push(serde_json::to_value(&request).expect("serialises"));
            }
        }
        let mut bd = serde_json::to_value(&converted.deployment).expect("serialises");
        strip_server_fields(&mut bd);
        out.push(bd);
    }
    Ok(out)
}

/// Documents as one YAML stream.
pub fn to_yaml(docs: &[Value]) -> String {
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(d).expect("JSON serialises to YAML"));
    }
    out
}
