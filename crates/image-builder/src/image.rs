//! The image config and manifest: the base's, with the dependency and bento layers on top and
//! the environment, user, entrypoint and labels of BentoML's own images.

use serde_json::{json, Map, Value};

use crate::deps::VENV;
use crate::layer::{Layer, LAYER_MEDIA_TYPE};

/// Where the bento lives in the image.
pub const BENTO_PATH: &str = "/home/bentoml/bento";
/// The port `bentoml serve` listens on.
pub const PORT: u16 = 3000;
/// Media types.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// The digest of no bytes (probing a repository costs one HEAD).
pub const EMPTY_DIGEST: &str =
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Labels naming the bento.
pub const LABEL_TAG: &str = "ai.yatai.bento.tag";
pub const LABEL_NAME: &str = "ai.yatai.bento.name";
pub const LABEL_VERSION: &str = "ai.yatai.bento.version";

/// A blob of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    pub fn of(layer: &Layer) -> Self {
        Descriptor {
            media_type: LAYER_MEDIA_TYPE.into(),
            digest: layer.digest.clone(),
            size: layer.size,
        }
    }

    fn json(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// The base's layer media types, in OCI terms (Docker's gzip layers are the same bytes).
pub fn oci_layer_type(media_type: &str) -> String {
    match media_type {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => LAYER_MEDIA_TYPE.into(),
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip".into()
        }
        other => other.into(),
    }
}

/// What goes into the config besides the base.
pub struct ConfigInput<'a> {
    pub base_config: &'a [u8],
    pub bento_name: &'a str,
    pub bento_version: &'a str,
    /// RFC 3339 time the image says it was made (the bento's creation time: deterministic).
    pub created: &'a str,
    pub deps: &'a Layer,
    pub bento: &'a Layer,
    pub deps_note: &'a str,
    pub extra_labels: &'a [(String, String)],
}

fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    env.retain(|e| e.split('=').next() != Some(key));
    env.push(format!("{key}={value}"));
}

/// The image config JSON (serialized with sorted keys: same input, same bytes).
pub fn config(input: &ConfigInput) -> Result<Vec<u8>, String> {
    let mut cfg: Map<String, Value> = serde_json::from_slice(input.base_config)
        .map_err(|e| format!("the base image's config is not JSON: {e}"))?;
    let mut inner = cfg
        .get("config")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut env: Vec<String> = inner
        .get("Env")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let base_path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .to_string();
    for (k, v) in [
        ("LANG", "C.UTF-8"),
        ("LC_ALL", "C.UTF-8"),
        ("PYTHONIOENCODING", "UTF-8"),
        ("PYTHONUNBUFFERED", "1"),
        ("BENTO_PATH", BENTO_PATH),
        ("BENTOML_HOME", "/home/bentoml/"),
        ("BENTOML_HF_CACHE_DIR", "/home/bentoml/bento/hf-models"),
        ("BENTOML_CONTAINERIZED", "true"),
        ("VIRTUAL_ENV", VENV),
    ] {
        set_env(&mut env, k, v);
    }
    set_env(&mut env, "PATH", &format!("{VENV}/bin:{base_path}"));
    inner.insert("Env".into(), json!(env));
    inner.insert("User".into(), json!("bentoml"));
    inner.insert("WorkingDir".into(), json!(BENTO_PATH));
    inner.insert(
        "Entrypoint".into(),
        json!([format!("{BENTO_PATH}/env/docker/entrypoint.sh")]),
    );
    // The base's command (often `python3`) would become arguments of the entrypoint.
    inner.remove("Cmd");
    inner.insert(
        "ExposedPorts".into(),
        json!({format!("{PORT}/tcp"): {}, "3001/tcp": {}}),
    );
    let mut labels = inner
        .get("Labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let tag = format!("{}:{}", input.bento_name, input.bento_version);
    for (k, v) in [
        (LABEL_TAG, tag.as_str()),
        (LABEL_NAME, input.bento_name),
        (LABEL_VERSION, input.bento_version),
        ("org.opencontainers.image.title", input.bento_name),
        ("org.opencontainers.image.version", input.bento_version),
    ] {
        labels.insert(k.into(), json!(v));
    }
    for (k, v) in input.extra_labels {
        labels.insert(k.clone(), json!(v));
    }
    inner.insert("Labels".into(), Value::Object(labels));
    cfg.insert("config".into(), Value::Object(inner));
    cfg.insert("created".into(), json!(input.created));
    // Docker-only leftovers of the base's own build say nothing true about this image.
    for k in ["container", "container_config", "docker_version"] {
        cfg.remove(k);
    }
    let rootfs = cfg
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    let diff_ids = rootfs
        .get_mut("diff_ids")
        .and_then(Value::as_array_mut)
        .ok_or("the base image's config has no rootfs.diff_ids")?;
    diff_ids.push(json!(input.deps.diff_id));
    diff_ids.push(json!(input.bento.diff_id));
    let history = cfg
        .entry("history")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .ok_or("the base image's config history is not a list")?;
    history.push(json!({
        "created": input.created,
        "created_by": format!("yatai image build: Python dependencies ({})", input.deps_note),
        "comment": "yatai-image-builder",
    }));
    history.push(json!({
        "created": input.created,
        "created_by": format!("yatai image build: bento {tag} at {BENTO_PATH}"),
        "comment": "yatai-image-builder",
    }));
    serde_json::to_vec(&Value::Object(cfg)).map_err(|e| e.to_string())
}

/// The image manifest JSON.
pub fn manifest(
    config: &Descriptor,
    layers: &[Descriptor],
    annotations: &[(&str, &str)],
) -> Vec<u8> {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config.json(),
        "layers": layers.iter().map(Descriptor::json).collect::<Vec<_>>(),
    });
    if !annotations.is_empty() {
        let a: Map<String, Value> = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        m["annotations"] = Value::Object(a);
    }
    serde_json::to_vec(&m).expect("a manifest serializes")
}

/// `sha256:<hex>` of `data`.
pub fn digest(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn layer(n: &str) -> Layer {
        Layer {
            path: PathBuf::new(),
            digest: format!("sha256:{n}c"),
            diff_id: format!("sha256:{n}u"),
            size: 1,
        }
    }

    #[test]
    fn config_serves_the_bento_as_bentoml_images_do() {
        let base = br#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin:/bin","LANG=C"],"Cmd":["python3"],"Labels":{"base":"1"}},"rootfs":{"type":"layers","diff_ids":["sha256:b"]},"history":[{"created_by":"debootstrap"}],"container_config":{}}"#;
        let (deps, bento) = (layer("d"), layer("e"));
        let input = ConfigInput {
            base_config: base,
            bento_name: "echo",
            bento_version: "v1",
            created: "2024-01-01T00:00:00Z",
            deps: &deps,
            bento: &bento,
            deps_note: "key",
            extra_labels: &[],
        };
        let bytes = config(&input).unwrap();
        assert_eq!(bytes, config(&input).unwrap(), "deterministic");
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        let c = &v["config"];
        assert_eq!(c["User"], "bentoml");
        assert_eq!(c["WorkingDir"], BENTO_PATH);
        assert_eq!(
            c["Entrypoint"][0],
            "/home/bentoml/bento/env/docker/entrypoint.sh"
        );
        assert!(c.get("Cmd").is_none());
        let env: Vec<&str> = c["Env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert!(env.contains(&"PATH=/app/.venv/bin:/usr/bin:/bin"));
        assert!(env.contains(&"BENTOML_HOME=/home/bentoml/"));
        assert!(env.contains(&"LANG=C.UTF-8"));
        assert!(!env.contains(&"LANG=C"));
        assert_eq!(c["Labels"][LABEL_TAG], "echo:v1");
        assert_eq!(c["Labels"]["base"], "1");
        assert_eq!(
            v["rootfs"]["diff_ids"],
            json!(["sha256:b", "sha256:du", "sha256:eu"])
        );
        assert_eq!(v["history"].as_array().unwrap().len(), 3);
        assert!(v.get("container_config").is_none());
        assert!(c["ExposedPorts"].get("3000/tcp").is_some());
    }
}
