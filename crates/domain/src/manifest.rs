//! The typed bento manifest: `bento.yaml` in an archive, and the JSON manifest the clients send.
//!
//! Three client generations write it:
//! - bentoml 1.0 / 1.1: a `bentoml.Service` with runners; `models` are `{tag, module, ...}`,
//!   `apis` a list, the Python version in `docker.python_version`, the requirements in
//!   `python` and the files `env/python/requirements(.lock).txt`;
//! - bentoml 1.2 / 1.3 (`spec: 1`): `services` (each with its models) next to the above;
//! - bentoml 1.4+ (`spec: 2`): `services`, `entry_service`, `schema`, and an `image` section
//!   holding the Python version and the locked requirements (`env/python/requirements.txt`).
//!
//! The JSON manifest the clients push (`BentoManifestSchema`) has `apis` as a map and `models`
//! as plain tags; both forms are accepted. Every key this type does not know lands in an
//! `extra` map, and a key known here but given as `null` stays `null`, so that reading and
//! writing a manifest gives back the same document.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::{Error, Result};

/// Keeps "present but null" apart from "absent": `None` absent, `Some(None)` null.
type Nullable<T> = Option<Option<T>>;

fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Nullable<T>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn get<T>(v: &Nullable<T>) -> Option<&T> {
    v.as_ref().and_then(|v| v.as_ref())
}

/// A bento manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BentoManifest {
    /// The import string of the service, e.g. `service:svc` or `service:Echo`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub service: Nullable<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Nullable<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub version: Nullable<String>,
    /// The bentoml version that built the bento.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub bentoml_version: Nullable<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub creation_time: Nullable<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub labels: Nullable<BTreeMap<String, Value>>,
    /// Models of the bento (1.0 / 1.1 style, or plain tags in the JSON manifest).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub models: Nullable<Vec<ModelRef>>,
    /// Runners (bentoml 1.0 / 1.1).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub runners: Nullable<Vec<Runner>>,
    /// APIs: a list in `bento.yaml`, a map by name in the JSON manifest.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub apis: Nullable<Apis>,
    /// Services (bentoml 1.2+).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub services: Nullable<Vec<Service>>,
    /// The name of the service that serves (bentoml 1.2+).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub entry_service: Nullable<String>,
    /// Size of the bento's files (JSON manifest).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub size_bytes: Nullable<u64>,
    /// `docker` options (bentoml < 1.4): distro, Python version, base image, ...
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub docker: Nullable<DockerOptions>,
    /// `python` options (bentoml < 1.4): requirements file, packages, lock.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub python: Nullable<PythonOptions>,
    /// `image` (bentoml 1.4+): base image, Python version, locked requirements.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub image: Nullable<ImageSpec>,
    /// Every other key, kept as it was.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A model a bento uses: a tag, or an object with the tag and more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelRef {
    Tag(String),
    Info(ModelInfo),
}

impl ModelRef {
    /// The model's tag `name:version`.
    pub fn tag(&self) -> &str {
        match self {
            ModelRef::Tag(t) => t,
            ModelRef::Info(i) => &i.tag,
        }
    }
}

/// A model entry with details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub tag: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub module: Nullable<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub creation_time: Nullable<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A runner (bentoml 1.0 / 1.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Runner {
    pub name: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub runnable_type: Nullable<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub embedded: Nullable<bool>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub models: Nullable<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_config: Nullable<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The APIs of a bento, in either form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Apis {
    List(Vec<Api>),
    Map(BTreeMap<String, Api>),
}

impl Apis {
    /// `(name, api)` pairs, in the document's order.
    pub fn iter(&self) -> Vec<(&str, &Api)> {
        match self {
            Apis::List(l) => l
                .iter()
                .map(|a| (get(&a.name).map(String::as_str).unwrap_or(""), a))
                .collect(),
            Apis::Map(m) => m.iter().map(|(k, a)| (k.as_str(), a)).collect(),
        }
    }
}

/// An API of a 1.0-style service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Api {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Nullable<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub input_type: Nullable<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub output_type: Nullable<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A service of a 1.2+ bento.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub service: Nullable<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub models: Nullable<Vec<ModelRef>>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub dependencies: Nullable<Vec<Value>>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub config: Nullable<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `docker` options of bentoml < 1.4.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DockerOptions {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub distro: Nullable<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub python_version: Nullable<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub base_image: Nullable<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `python` options of bentoml < 1.4.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PythonOptions {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub requirements_txt: Nullable<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub packages: Nullable<Vec<String>>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub lock_packages: Nullable<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `image` of bentoml 1.4+.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageSpec {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub base_image: Nullable<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub python_version: Nullable<String>,
    /// The locked requirements, as written to `env/python/requirements.txt`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub python_requirements: Nullable<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Which generation of client wrote a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// bentoml 1.0 / 1.1: `bentoml.Service` with runners.
    Runners,
    /// bentoml 1.2 / 1.3: services, `docker` and `python` sections.
    Services,
    /// bentoml 1.4+: services and an `image` section.
    Image,
}

impl BentoManifest {
    /// Reads a manifest from JSON (the stored form, or `bento.yaml` converted to JSON).
    pub fn from_value(value: Value) -> Result<Self> {
        if !value.is_object() {
            return Err(Error::invalid("a bento manifest must be a mapping of keys"));
        }
        serde_json::from_value(value)
            .map_err(|e| Error::invalid(format!("the bento manifest is not valid: {e}")))
    }

    /// The manifest as JSON, with every key it was read with.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// `name:version`, when both are given.
    pub fn tag(&self) -> Option<String> {
        Some(format!("{}:{}", get(&self.name)?, get(&self.version)?))
    }

    /// The client generation that wrote it.
    pub fn generation(&self) -> Generation {
        if get(&self.image).is_some() {
            Generation::Image
        } else if get(&self.services).is_some_and(|s| !s.is_empty())
            || get(&self.entry_service).is_some()
        {
            Generation::Services
        } else {
            Generation::Runners
        }
    }

    /// The bentoml version that built it.
    pub fn bentoml_version(&self) -> Option<&str> {
        get(&self.bentoml_version).map(String::as_str)
    }

    /// The service import string.
    pub fn service(&self) -> Option<&str> {
        get(&self.service).map(String::as_str)
    }

    /// The Python `major.minor` the bento was built for, when it says.
    pub fn python_version(&self) -> Option<&str> {
        get(&self.image)
            .and_then(|i| get(&i.python_version))
            .or_else(|| get(&self.docker).and_then(|d| get(&d.python_version)))
            .map(String::as_str)
    }

    /// The base image the bento asks for, when it names one.
    pub fn base_image(&self) -> Option<&str> {
        get(&self.image)
            .and_then(|i| get(&i.base_image))
            .or_else(|| get(&self.docker).and_then(|d| get(&d.base_image)))
            .map(String::as_str)
    }

    /// Paths inside the bento holding its Python requirements, best first: the locked list
    /// where the generation writes one, then the plain list.
    pub fn requirements_files(&self) -> Vec<&'static str> {
        match self.generation() {
            // 1.4 locks into requirements.txt itself (`image.python_requirements`).
            Generation::Image => vec!["env/python/requirements.txt"],
            _ => vec![
                "env/python/requirements.lock.txt",
                "env/python/requirements.txt",
            ],
        }
    }

    /// The runners (empty for service bentos).
    pub fn runners(&self) -> &[Runner] {
        get(&self.runners).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The services (empty for 1.0-style bentos).
    pub fn services(&self) -> &[Service] {
        get(&self.services).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The APIs of a 1.0-style bento, `(name, api)`.
    pub fn apis(&self) -> Vec<(&str, &Api)> {
        get(&self.apis).map(Apis::iter).unwrap_or_default()
    }

    /// Every model tag the bento uses (top-level, runners', services'), without duplicates.
    pub fn model_tags(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |t: &str| {
            if t.contains(':') && !out.iter().any(|o| o == t) {
                out.push(t.to_string());
            }
        };
        for m in get(&self.models).map(Vec::as_slice).unwrap_or(&[]) {
            add(m.tag());
        }
        for r in self.runners() {
            for m in get(&r.models).map(Vec::as_slice).unwrap_or(&[]) {
                add(m);
            }
        }
        for s in self.services() {
            for m in get(&s.models).map(Vec::as_slice).unwrap_or(&[]) {
                add(m.tag());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(v: Value) -> BentoManifest {
        let m = BentoManifest::from_value(v.clone()).unwrap();
        assert_eq!(m.to_value(), v, "the manifest must come back unchanged");
        m
    }

    #[test]
    fn bentoml_1_0_runners_bento_yaml() {
        let m = round_trip(json!({
            "service": "service:svc", "name": "echo10", "version": "abc",
            "bentoml_version": "1.0.20", "creation_time": "2024-01-01T00:00:00+00:00",
            "labels": {"team": "ml"},
            "models": [{"tag": "echo_model10:m1", "module": "bentoml.picklable_model",
                        "creation_time": "2024-01-01T00:00:00+00:00"}],
            "runners": [{"name": "echo_model10", "runnable_type": "PicklableModelRunnable",
                         "embedded": false, "models": ["echo_model10:m1"], "resource_config": null}],
            "apis": [{"name": "echo", "input_type": "Text", "output_type": "Text"}],
            "docker": {"distro": "debian", "python_version": "3.11", "cuda_version": null,
                       "env": null, "base_image": null},
            "python": {"requirements_txt": null, "packages": ["attrs==23.1.0"],
                       "lock_packages": true, "index_url": null},
            "conda": {"environment_yml": null}
        }));
        assert_eq!(m.generation(), Generation::Runners);
        assert_eq!(m.tag().as_deref(), Some("echo10:abc"));
        assert_eq!(m.python_version(), Some("3.11"));
        assert_eq!(m.bentoml_version(), Some("1.0.20"));
        assert_eq!(m.model_tags(), vec!["echo_model10:m1"]);
        assert_eq!(m.runners()[0].name, "echo_model10");
        assert_eq!(m.apis()[0].0, "echo");
        assert_eq!(
            m.requirements_files()[0],
            "env/python/requirements.lock.txt"
        );
        assert_eq!(m.base_image(), None);
    }

    #[test]
    fn bentoml_1_4_image_bento_yaml() {
        let m = round_trip(json!({
            "service": "service:Echo", "name": "echo", "version": "v1",
            "bentoml_version": "1.4.40", "labels": {}, "models": [],
            "entry_service": "echo",
            "services": [{"name": "echo", "service": "", "dependencies": [], "config": {},
                          "models": [{"tag": "echo_model:m2", "module": "",
                                      "creation_time": "2024-01-01T00:00:00+00:00",
                                      "registry": "bentoml"}]}],
            "envs": [], "schema": {"name": "echo", "routes": []}, "args": {}, "spec": 2,
            "image": {"base_image": "python:3.11-slim", "python_version": "3.11",
                      "commands": [], "python_requirements": "bentoml==1.4.40\n",
                      "post_commands": []}
        }));
        assert_eq!(m.generation(), Generation::Image);
        assert_eq!(m.python_version(), Some("3.11"));
        assert_eq!(m.base_image(), Some("python:3.11-slim"));
        assert_eq!(m.model_tags(), vec!["echo_model:m2"]);
        assert_eq!(m.requirements_files(), vec!["env/python/requirements.txt"]);
        assert_eq!(m.services()[0].extra, Map::new());
    }

    #[test]
    fn bentoml_1_2_services_with_docker_section() {
        let m = round_trip(json!({
            "service": "service:Svc", "name": "svc", "version": "v", "bentoml_version": "1.2.20",
            "entry_service": "Svc", "services": [{"name": "Svc", "service": "", "models": []}],
            "docker": {"python_version": "3.10"}, "python": {"lock_packages": false}, "spec": 1
        }));
        assert_eq!(m.generation(), Generation::Services);
        assert_eq!(m.python_version(), Some("3.10"));
    }

    #[test]
    fn json_manifest_from_the_clients_with_unknown_keys() {
        // What `bentoml push` sends: apis as a map, models as tags, plus keys we do not know.
        let m = round_trip(json!({
            "service": "service:svc", "bentoml_version": "1.1.11", "size_bytes": 1234,
            "apis": {"predict": {"route": "/predict", "input_type": "NumpyNdarray",
                                  "output_type": "NumpyNdarray", "docs": null}},
            "models": ["iris:v1", "iris:v1"], "runners": [{"name": "r", "models": ["iris:v1"],
                                                            "future_runner_key": 7}],
            "brand_new_top_level": {"nested": [1, 2, {"x": null}]},
            "dev": false
        }));
        assert_eq!(m.model_tags(), vec!["iris:v1"]);
        assert_eq!(m.apis()[0].0, "predict");
        assert_eq!(
            m.extra["brand_new_top_level"]["nested"][2],
            json!({"x": null})
        );
        assert_eq!(m.runners()[0].extra["future_runner_key"], json!(7));
    }

    #[test]
    fn bad_manifests_get_a_clear_error() {
        let e = BentoManifest::from_value(json!([1, 2])).unwrap_err();
        assert!(e.to_string().contains("mapping"), "{e}");
        let e = BentoManifest::from_value(json!({"runners": "not a list"})).unwrap_err();
        assert!(e.to_string().contains("not valid"), "{e}");
    }
}
