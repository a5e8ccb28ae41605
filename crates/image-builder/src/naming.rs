//! Where images go: the registry settings (Yatai's `DOCKER_REGISTRY_*`) and the image tag scheme
//! Yatai's image builder uses, so that images built here and there share names.

use md5::{Digest, Md5};

/// The repository Yatai pushes bento images to when none is configured.
pub const DEFAULT_BENTO_REPOSITORY: &str = "yatai-bentos";

/// The longest tag the distribution spec allows.
pub const MAX_TAG_LEN: usize = 128;

/// The registry images are pushed to, as Yatai configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// `DOCKER_REGISTRY_SERVER`: `host[:port]`, optionally with a path (`ghcr.io/acme`).
    pub server: String,
    /// `DOCKER_REGISTRY_IN_CLUSTER_SERVER`: the same registry as pods reach it.
    pub in_cluster_server: Option<String>,
    /// `DOCKER_REGISTRY_USERNAME`.
    pub username: Option<String>,
    /// `DOCKER_REGISTRY_PASSWORD` (with an empty username: a bearer token).
    pub password: Option<String>,
    /// `DOCKER_REGISTRY_SECURE`: https (true) or plain http (false).
    pub secure: bool,
    /// `DOCKER_REGISTRY_BENTO_REPOSITORY_NAME` (default `yatai-bentos`).
    pub bento_repository_name: String,
}

impl RegistryConfig {
    /// A configuration for `server` with Yatai's defaults (https, `yatai-bentos`, no login).
    pub fn new(server: &str) -> Self {
        RegistryConfig {
            server: server.to_string(),
            in_cluster_server: None,
            username: None,
            password: None,
            secure: true,
            bento_repository_name: DEFAULT_BENTO_REPOSITORY.to_string(),
        }
    }

    /// Reads the `DOCKER_REGISTRY_*` variables through `get` (the environment, or flags).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let non_empty = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let server = non_empty("DOCKER_REGISTRY_SERVER").ok_or_else(|| {
            "no registry to push to: set DOCKER_REGISTRY_SERVER (e.g. registry.example.com or \
             127.0.0.1:5000), or give --docker-registry-server"
                .to_string()
        })?;
        let secure = match non_empty("DOCKER_REGISTRY_SECURE").as_deref() {
            None => !server.starts_with("http://"),
            Some(v) => parse_bool(v).ok_or_else(|| {
                format!("DOCKER_REGISTRY_SECURE must be true or false, not {v:?}")
            })?,
        };
        Ok(RegistryConfig {
            server: strip_scheme(&server),
            in_cluster_server: non_empty("DOCKER_REGISTRY_IN_CLUSTER_SERVER")
                .map(|s| strip_scheme(&s)),
            username: non_empty("DOCKER_REGISTRY_USERNAME"),
            password: get("DOCKER_REGISTRY_PASSWORD").filter(|p| !p.is_empty()),
            secure,
            bento_repository_name: non_empty("DOCKER_REGISTRY_BENTO_REPOSITORY_NAME")
                .unwrap_or_else(|| DEFAULT_BENTO_REPOSITORY.to_string()),
        })
    }

    /// The repository URI bento images go to (`server/repository`), as seen from outside the
    /// cluster, or from inside when `in_cluster` and an in-cluster server is set.
    pub fn repository_uri(&self, in_cluster: bool) -> String {
        let server = match (&self.in_cluster_server, in_cluster) {
            (Some(s), true) => s.as_str(),
            _ => self.server.as_str(),
        };
        // Docker Hub repositories live under docker.io whatever URL names the server.
        if server.contains("docker.io") {
            return format!("docker.io/{}", self.bento_repository_name);
        }
        format!(
            "{}/{}",
            server.trim_end_matches('/'),
            self.bento_repository_name
        )
    }

    /// The registry host (`host[:port]`) of the push target.
    pub fn host(&self) -> String {
        let uri = self.repository_uri(false);
        uri.split('/').next().unwrap_or_default().to_string()
    }

    /// The full image reference of a bento version.
    pub fn image_reference(
        &self,
        bento_name: &str,
        bento_version: &str,
        in_cluster: bool,
    ) -> String {
        format!(
            "{}:{}",
            self.repository_uri(in_cluster),
            image_tag(bento_name, bento_version)
        )
    }
}

fn strip_scheme(s: &str) -> String {
    s.trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

/// Reads a boolean the way the Yatai charts write them.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The tag of a bento's image: `yatai.<name>.<version>`; when that is longer than a tag may be,
/// `yatai.` followed by the MD5 of `<name>.<version>` (the scheme of Yatai's image builder).
pub fn image_tag(bento_name: &str, bento_version: &str) -> String {
    let tail = format!("{bento_name}.{bento_version}");
    let tag = format!("yatai.{tail}");
    if tag.len() <= MAX_TAG_LEN {
        return tag;
    }
    format!("yatai.{}", hex::encode(Md5::digest(tail.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn tags_follow_yatai() {
        assert_eq!(image_tag("iris", "abc123"), "yatai.iris.abc123");
        let long = "n".repeat(130);
        let tag = image_tag(&long, "v1");
        assert_eq!(tag.len(), "yatai.".len() + 32);
        assert_eq!(
            tag,
            format!(
                "yatai.{}",
                hex::encode(Md5::digest(format!("{long}.v1").as_bytes()))
            )
        );
        // Exactly at the limit: kept as is.
        let name = "a".repeat(MAX_TAG_LEN - "yatai.".len() - ".v".len());
        assert_eq!(image_tag(&name, "v").len(), MAX_TAG_LEN);
    }

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn env_names_of_the_seed() {
        let cfg = RegistryConfig::from_lookup(lookup(&[
            ("DOCKER_REGISTRY_SERVER", "https://registry.example.com/"),
            ("DOCKER_REGISTRY_IN_CLUSTER_SERVER", "registry.svc:5000"),
            ("DOCKER_REGISTRY_USERNAME", "ci"),
            ("DOCKER_REGISTRY_PASSWORD", "pw"),
            ("DOCKER_REGISTRY_SECURE", "false"),
            ("DOCKER_REGISTRY_BENTO_REPOSITORY_NAME", "bentos"),
        ]))
        .unwrap();
        assert_eq!(cfg.server, "registry.example.com");
        assert!(!cfg.secure);
        assert_eq!(cfg.username.as_deref(), Some("ci"));
        assert_eq!(
            cfg.image_reference("iris", "v1", false),
            "registry.example.com/bentos:yatai.iris.v1"
        );
        assert_eq!(
            cfg.image_reference("iris", "v1", true),
            "registry.svc:5000/bentos:yatai.iris.v1"
        );
        assert_eq!(cfg.host(), "registry.example.com");

        let hub = RegistryConfig::from_lookup(lookup(&[(
            "DOCKER_REGISTRY_SERVER",
            "https://index.docker.io/v1/",
        )]))
        .unwrap();
        assert_eq!(hub.repository_uri(false), "docker.io/yatai-bentos");
        assert!(hub.secure);

        let e = RegistryConfig::from_lookup(lookup(&[])).unwrap_err();
        assert!(e.contains("DOCKER_REGISTRY_SERVER"), "{e}");
        let e = RegistryConfig::from_lookup(lookup(&[
            ("DOCKER_REGISTRY_SERVER", "r:5000"),
            ("DOCKER_REGISTRY_SECURE", "maybe"),
        ]))
        .unwrap_err();
        assert!(e.contains("DOCKER_REGISTRY_SECURE"), "{e}");
    }
}
