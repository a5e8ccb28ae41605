//! The canonical spec of a deployment target, stored as JSON with each revision, and the two
//! client dialects it is read from and written back to: v1 (bentoml 1.1: `resources`,
//! `hpa_conf`, `envs` of `{key, value}`, `runners`) and v2 (bentoml 1.4: `services`, `envs` of
//! `{name, value}`, `secrets`, `access_authorization`). Pure functions, no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use yatai_domain::deployments::{ComponentSpec, ResourceItem, Resources};
use yatai_domain::Error;

/// The most replicas one component may ask for (a guard against typos like 1000).
pub const MAX_REPLICAS: u32 = 64;

/// How one component (the API server / entry service, a runner / another service) runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub min_replicas: u32,
    pub max_replicas: u32,
    #[serde(default)]
    pub envs: Vec<(String, String)>,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
}

/// Everything about how a target runs, whichever API wrote it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// The name of the entry component (`apiserver` for v1, the entry service for v2).
    pub main_name: String,
    pub main: ServiceSpec,
    /// Runners (v1) or the other services (v2), by name.
    #[serde(default)]
    pub others: BTreeMap<String, ServiceSpec>,
    /// Deployment-wide environment (v2 `envs`), applied to every component.
    #[serde(default)]
    pub envs: Vec<(String, String)>,
    #[serde(default)]
    pub secrets: Vec<String>,
    #[serde(default)]
    pub access_authorization: bool,
    #[serde(default)]
    pub enable_ingress: Option<bool>,
    /// The v1 config exactly as a v1 client sent it, given back to v1 clients (their update
    /// merges into what get returned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v1: Option<Value>,
    /// The same for the v2 config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v2: Option<Value>,
}

/// The name v1 gives the API server component.
pub const V1_MAIN: &str = "apiserver";

fn field_err(field: &str, msg: impl Into<String>) -> Error {
    Error::field(field, Error::invalid(msg.into()))
}

fn object<'a>(field: &str, v: &'a Value) -> Result<Option<&'a Map<String, Value>>, Error> {
    match v {
        Value::Null => Ok(None),
        Value::Object(m) => Ok(Some(m)),
        _ => Err(field_err(field, format!("{field} must be an object"))),
    }
}

fn replicas(field: &str, v: Option<&Value>) -> Result<Option<u32>, Error> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) if n <= MAX_REPLICAS as u64 => Ok(Some(n as u32)),
            _ => Err(field_err(
                field,
                format!("{field} must be a whole number from 0 to {MAX_REPLICAS}, got {n}"),
            )),
        },
        Some(other) => Err(field_err(
            field,
            format!("{field} must be a number, got {other}"),
        )),
    }
}

/// Reads `{min_replicas, max_replicas}` (v1 `hpa_conf`, v2 `scaling`); both default to 1.
fn scaling(field: &str, v: Option<&Value>) -> Result<(u32, u32), Error> {
    let Some(m) = v.map(|v| object(field, v)).transpose()?.flatten() else {
        return Ok((1, 1));
    };
    let min = replicas(&format!("{field}.min_replicas"), m.get("min_replicas"))?;
    let max = replicas(&format!("{field}.max_replicas"), m.get("max_replicas"))?;
    let (min, max) = match (min, max) {
        (None, None) => (1, 1),
        (Some(min), None) => (min, min.max(1)),
        (None, Some(max)) => (1.min(max), max),
        (Some(min), Some(max)) => (min, max),
    };
    if max == 0 {
        return Err(field_err(
            &format!("{field}.max_replicas"),
            "max_replicas must be at least 1",
        ));
    }
    if min > max {
        return Err(field_err(
            &format!("{field}.min_replicas"),
            format!("min_replicas ({min}) must not exceed max_replicas ({max})"),
        ));
    }
    Ok((min, max))
}

/// Reads a list of environment variables whose name is under `name_key` (`key` in v1,
/// `name` in v2). Names must be valid environment variable names.
fn envs(field: &str, v: Option<&Value>, name_key: &str) -> Result<Vec<(String, String)>, Error> {
    let list = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(field_err(field, format!("{field} must be a list"))),
    };
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        if item.is_null() {
            continue;
        }
        let name = item
            .get(name_key)
            .or_else(|| item.get(if name_key == "key" { "name" } else { "key" }))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                field_err(
                    field,
                    format!("{field}[{i}] needs a \"{name_key}\" and a \"value\""),
                )
            })?;
        let value = match item.get("value") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        let ok = !name.is_empty()
            && name.len() <= 256
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(field_err(
                field,
                format!(
                    "{field}[{i}]: {:?} is not a valid environment variable name (letters, digits \
                     and '_', not starting with a digit)",
                    name.chars().take(80).collect::<String>()
                ),
            ));
        }
        if value.len() > 64 * 1024 {
            return Err(field_err(
                field,
                format!("{field}[{i}]: the value of {name} is longer than 64 KiB"),
            ));
        }
        out.push((name.to_string(), value));
    }
    Ok(out)
}

fn resource_item(field: &str, v: Option<&Value>) -> Result<Option<ResourceItem>, Error> {
    let Some(m) = v.map(|v| object(field, v)).transpose()?.flatten() else {
        return Ok(None);
    };
    let get = |k: &str| -> Result<Option<String>, Error> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.len() <= 64 => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(field_err(
                &format!("{field}.{k}"),
                format!("{field}.{k} must be a quantity such as \"500m\" or \"1Gi\""),
            )),
        }
    };
    Ok(Some(ResourceItem {
        cpu: get("cpu")?,
        memory: get("memory")?,
        gpu: get("gpu")?,
    }))
}

fn resources(field: &str, v: Option<&Value>) -> Result<Resources, Error> {
    let Some(m) = v.map(|v| object(field, v)).transpose()?.flatten() else {
        return Ok(Resources::default());
    };
    Ok(Resources {
        requests: resource_item(&format!("{field}.requests"), m.get("requests"))?,
        limits: resource_item(&format!("{field}.limits"), m.get("limits"))?,
    })
}

fn instance_type(field: &str, v: Option<&Value>) -> Result<Option<String>, Error> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(field_err(field, format!("{field} must be a string"))),
    }
}

/// Reads a v1 target config (`None`: every default).
pub fn from_v1(config: Option<&Value>) -> Result<Spec, Error> {
    let empty = Value::Object(Map::new());
    let config = config.unwrap_or(&empty);
    let m = object("config", config)?.cloned().unwrap_or_default();
    let (min, max) = scaling("config.hpa_conf", m.get("hpa_conf"))?;
    let main = ServiceSpec {
        min_replicas: min,
        max_replicas: max,
        envs: envs("config.envs", m.get("envs"), "key")?,
        resources: resources("config.resources", m.get("resources"))?,
        instance_type: instance_type("config.resource_instance", m.get("resource_instance"))?,
    };
    let mut others = BTreeMap::new();
    if let Some(runners) = m
        .get("runners")
        .map(|v| object("config.runners", v))
        .transpose()?
        .flatten()
    {
        for (name, r) in runners {
            let f = format!("config.runners.{name}");
            let r = object(&f, r)?.cloned().unwrap_or_default();
            let (min, max) = scaling(&format!("{f}.hpa_conf"), r.get("hpa_conf"))?;
            others.insert(
                name.clone(),
                ServiceSpec {
                    min_replicas: min,
                    max_replicas: max,
                    envs: envs(&format!("{f}.envs"), r.get("envs"), "key")?,
                    resources: resources(&format!("{f}.resources"), r.get("resources"))?,
                    instance_type: instance_type(
                        &format!("{f}.resource_instance"),
                        r.get("resource_instance"),
                    )?,
                },
            );
        }
    }
    let enable_ingress = match m.get("enable_ingress") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(field_err(
                "config.enable_ingress",
                "config.enable_ingress must be true or false",
            ))
        }
    };
    Ok(Spec {
        main_name: V1_MAIN.into(),
        main,
        others,
        enable_ingress,
        v1: Some(Value::Object(m)),
        ..Spec::default()
    })
}

/// What a v2 body carries besides the bento.
#[derive(Debug, Clone)]
pub struct V2Config<'a> {
    pub access_authorization: bool,
    pub envs: Option<&'a Value>,
    pub secrets: &'a [String],
    pub services: &'a BTreeMap<String, Value>,
}

/// Reads a v2 config; `entry` is the bento's entry service (the main component).
pub fn from_v2(c: &V2Config<'_>, entry: &str) -> Result<Spec, Error> {
    if c.access_authorization {
        // Accepting it would tell the client its endpoint is protected when nothing checks.
        return Err(field_err(
            "access_authorization",
            "access authorization is not supported by this server: the URL of a deployment is \
             open to whoever reaches it; leave --access-authorization off",
        ));
    }
    let mut others = BTreeMap::new();
    let mut main = None;
    let main_name = if c.services.contains_key(entry) || c.services.is_empty() {
        entry.to_string()
    } else {
        // A bento whose entry service is unknown (built before 1.2): the one named service.
        c.services
            .keys()
            .next()
            .cloned()
            .unwrap_or_else(|| entry.to_string())
    };
    for (name, s) in c.services {
        let f = format!("services.{name}");
        let m = object(&f, s)?.cloned().unwrap_or_default();
        let (min, max) = scaling(&format!("{f}.scaling"), m.get("scaling"))?;
        let spec = ServiceSpec {
            min_replicas: min,
            max_replicas: max,
            envs: envs(&format!("{f}.envs"), m.get("envs"), "name")?,
            resources: Resources::default(),
            instance_type: instance_type(&format!("{f}.instance_type"), m.get("instance_type"))?,
        };
        if *name == main_name {
            main = Some(spec);
        } else {
            others.insert(name.clone(), spec);
        }
    }
    let main = main.unwrap_or(ServiceSpec {
        min_replicas: 1,
        max_replicas: 1,
        ..ServiceSpec::default()
    });
    let envs = envs("envs", c.envs, "name")?;
    let mut v2 = Map::new();
    v2.insert("access_authorization".into(), json!(c.access_authorization));
    if let Some(e) = c.envs.filter(|e| !e.is_null()) {
        v2.insert("envs".into(), e.clone());
    }
    if !c.secrets.is_empty() {
        v2.insert("secrets".into(), json!(c.secrets));
    }
    v2.insert(
        "services".into(),
        Value::Object(
            c.services
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
    );
    Ok(Spec {
        main_name,
        main,
        others,
        envs,
        secrets: c.secrets.to_vec(),
        access_authorization: c.access_authorization,
        enable_ingress: None,
        v1: None,
        v2: Some(Value::Object(v2)),
    })
}

fn resources_json(r: &Resources) -> Option<Value> {
    (r != &Resources::default()).then(|| serde_json::to_value(r).unwrap_or(Value::Null))
}

/// The v1 config of a spec: what a v1 client sent, or the same made from a v2 spec.
pub fn to_v1(spec: &Spec) -> Value {
    if let Some(v1) = &spec.v1 {
        return v1.clone();
    }
    let component = |s: &ServiceSpec, extra_envs: &[(String, String)]| {
        let mut m = Map::new();
        if let Some(r) = resources_json(&s.resources) {
            m.insert("resources".into(), r);
        }
        m.insert(
            "hpa_conf".into(),
            json!({"min_replicas": s.min_replicas, "max_replicas": s.max_replicas}),
        );
        let envs: Vec<Value> = extra_envs
            .iter()
            .chain(s.envs.iter())
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        m.insert("envs".into(), Value::Array(envs));
        if let Some(t) = &s.instance_type {
            m.insert("resource_instance".into(), json!(t));
        }
        m
    };
    let mut m = component(&spec.main, &spec.envs);
    if !spec.others.is_empty() {
        let runners: Map<String, Value> = spec
            .others
            .iter()
            .map(|(k, s)| (k.clone(), Value::Object(component(s, &spec.envs))))
            .collect();
        m.insert("runners".into(), Value::Object(runners));
    }
    if let Some(b) = spec.enable_ingress {
        m.insert("enable_ingress".into(), json!(b));
    }
    Value::Object(m)
}

/// The v2 config of a spec: what a v2 client sent, or the same made from a v1 spec.
pub fn to_v2(spec: &Spec) -> Value {
    if let Some(v2) = &spec.v2 {
        return v2.clone();
    }
    let component = |s: &ServiceSpec| {
        let mut m = Map::new();
        if let Some(t) = &s.instance_type {
            m.insert("instance_type".into(), json!(t));
        }
        m.insert(
            "scaling".into(),
            json!({"min_replicas": s.min_replicas, "max_replicas": s.max_replicas}),
        );
        if !s.envs.is_empty() {
            let envs: Vec<Value> = s
                .envs
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect();
            m.insert("envs".into(), Value::Array(envs));
        }
        Value::Object(m)
    };
    let mut services = Map::new();
    services.insert(spec.main_name.clone(), component(&spec.main));
    for (k, s) in &spec.others {
        services.insert(k.clone(), component(s));
    }
    json!({
        "access_authorization": spec.access_authorization,
        "envs": spec.envs.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
        "services": services,
    })
}

/// A spec written in the v1 dialect (bentoml 1.1, the dashboard's form) over the current one.
/// A deployment a v2 client made keeps its entry service's name, its other services (unless
/// the new spec names them), secrets and access setting: a v1 writer knows none of these. The
/// deployment-wide envs come back as the main component's (v1 shows them together), and the
/// client's original config of either dialect is dropped, both being made from the spec now.
pub fn over(current: &Spec, mut new: Spec) -> Spec {
    if current.v2.is_none() || new.v1.is_none() {
        return new;
    }
    new.main_name = current.main_name.clone();
    if new.main.instance_type.is_none() {
        new.main.instance_type = current.main.instance_type.clone();
    }
    let mut others = current.others.clone();
    others.extend(std::mem::take(&mut new.others));
    new.others = others;
    new.secrets = current.secrets.clone();
    new.access_authorization = current.access_authorization;
    new.envs = Vec::new();
    new.v1 = None;
    new.v2 = None;
    new
}

/// The component specs a runtime receives: deployment-wide envs first, then the component's
/// own (a later one wins).
pub fn components(spec: &Spec) -> (ComponentSpec, BTreeMap<String, ComponentSpec>) {
    let one = |s: &ServiceSpec| ComponentSpec {
        min_replicas: s.min_replicas,
        max_replicas: s.max_replicas,
        envs: spec.envs.iter().chain(s.envs.iter()).cloned().collect(),
        resources: s.resources.clone(),
    };
    (
        one(&spec.main),
        spec.others
            .iter()
            .map(|(k, s)| (k.clone(), one(s)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_defaults_and_round_trip() {
        let s = from_v1(None).unwrap();
        assert_eq!((s.main.min_replicas, s.main.max_replicas), (1, 1));
        let cfg = json!({"hpa_conf": {"min_replicas": 2, "max_replicas": 3}, "envs": [{"key": "A", "value": "1"}],
            "runners": {"r": {"hpa_conf": {"min_replicas": 1}}}, "kubeResourceUid": ""});
        let s = from_v1(Some(&cfg)).unwrap();
        assert_eq!((s.main.min_replicas, s.main.max_replicas), (2, 3));
        assert_eq!(s.main.envs, vec![("A".into(), "1".into())]);
        assert_eq!(s.others["r"].max_replicas, 1);
        assert_eq!(to_v1(&s), cfg, "a v1 client gets back what it sent");
        let v2 = to_v2(&s);
        assert_eq!(v2["services"]["apiserver"]["scaling"]["min_replicas"], 2);
    }

    #[test]
    fn v2_services_and_conversion() {
        let services: BTreeMap<String, Value> = [(
            "Echo".to_string(),
            json!({"scaling": {"min_replicas": 1, "max_replicas": 2}, "instance_type": "cpu.small", "envs": [{"name": "B", "value": "x"}]}),
        )]
        .into();
        let envs = json!([{"name": "A", "value": "1"}]);
        let s = from_v2(
            &V2Config {
                access_authorization: false,
                envs: Some(&envs),
                secrets: &[],
                services: &services,
            },
            "Echo",
        )
        .unwrap();
        assert_eq!(s.main_name, "Echo");
        assert_eq!(s.main.instance_type.as_deref(), Some("cpu.small"));
        let (api, _) = components(&s);
        assert_eq!(
            api.envs,
            vec![("A".into(), "1".into()), ("B".into(), "x".into())]
        );
        let v1 = to_v1(&s);
        assert_eq!(v1["hpa_conf"]["max_replicas"], 2);
        assert_eq!(v1["envs"][0]["key"], "A");
    }

    #[test]
    fn a_v1_edit_of_a_v2_deployment_keeps_its_services() {
        let services: BTreeMap<String, Value> = [
            ("Echo".to_string(), json!({"scaling": {"min_replicas": 1, "max_replicas": 1}, "instance_type": "cpu.local"})),
            ("Model".to_string(), json!({"scaling": {"min_replicas": 2, "max_replicas": 3}})),
        ]
        .into();
        let envs = json!([{"name": "A", "value": "1"}]);
        let current = from_v2(
            &V2Config {
                access_authorization: false,
                envs: Some(&envs),
                secrets: &[],
                services: &services,
            },
            "Echo",
        )
        .unwrap();
        let edit = from_v1(Some(&json!({"hpa_conf": {"min_replicas": 2, "max_replicas": 2}, "envs": [{"key": "A", "value": "2"}]}))).unwrap();
        let s = over(&current, edit);
        assert_eq!(s.main_name, "Echo");
        assert_eq!(s.main.min_replicas, 2);
        assert_eq!(s.main.instance_type.as_deref(), Some("cpu.local"));
        assert_eq!(
            s.others["Model"].max_replicas, 3,
            "the other service is kept"
        );
        let (api, _) = components(&s);
        assert_eq!(
            api.envs,
            vec![("A".to_string(), "2".to_string())],
            "no stale deployment-wide env"
        );
        let v2 = to_v2(&s);
        assert!(v2["services"]["Echo"].is_object() && v2["services"]["Model"].is_object());
        assert!(v2["services"].get("apiserver").is_none());
        // A v1 deployment edited in v1 stays exactly what was sent.
        let v1 = from_v1(Some(&json!({"envs": []}))).unwrap();
        assert_eq!(over(&from_v1(None).unwrap(), v1.clone()), v1);
    }

    #[test]
    fn bad_input_is_named() {
        for (cfg, field) in [
            (
                json!({"hpa_conf": {"min_replicas": 3, "max_replicas": 2}}),
                "config.hpa_conf.min_replicas",
            ),
            (
                json!({"hpa_conf": {"max_replicas": 0}}),
                "config.hpa_conf.max_replicas",
            ),
            (
                json!({"hpa_conf": {"min_replicas": 1000}}),
                "config.hpa_conf.min_replicas",
            ),
            (
                json!({"envs": [{"key": "1BAD", "value": ""}]}),
                "config.envs",
            ),
            (json!({"envs": "A=1"}), "config.envs"),
            (json!({"enable_ingress": "yes"}), "config.enable_ingress"),
            (json!("nope"), "config"),
        ] {
            let e = from_v1(Some(&cfg)).unwrap_err();
            assert_eq!(e.field_name(), Some(field), "{cfg}: {e}");
        }
    }
}
