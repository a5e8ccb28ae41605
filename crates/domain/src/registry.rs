//! Rules of the bento and model registry.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How archives travel between the client and object storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransmissionStrategy {
    /// Through the server (`PUT .../upload`, `GET .../download`).
    #[default]
    Proxy,
    /// Straight to storage through presigned URLs (single or multipart).
    PresignedUrl,
}

impl TransmissionStrategy {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TransmissionStrategy::Proxy => "proxy",
            TransmissionStrategy::PresignedUrl => "presigned_url",
        }
    }
}

impl std::str::FromStr for TransmissionStrategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "" | "proxy" => Ok(TransmissionStrategy::Proxy),
            "presigned_url" => Ok(TransmissionStrategy::PresignedUrl),
            other => Err(Error::invalid(format!(
                "unknown transmission strategy {other:?}; expected proxy or presigned_url"
            ))),
        }
    }
}

crate::wire_enum! {
    /// Bentos and models share one life cycle; this tells them apart.
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Kind ("kind") {
        Bento = "bento",
        Model = "model",
    }
}

crate::wire_enum! {
    /// Where the OCI image of a bento stands.
    #[derive(Serialize, Deserialize, Default)]
    #[serde(rename_all = "snake_case")]
    pub enum ImageBuildStatus ("image build status") {
        #[default]
        Pending = "pending",
        Building = "building",
        Success = "success",
        Failed = "failed",
    }
}

impl Kind {
    /// The resource type of a repository.
    pub fn repository_type(self) -> &'static str {
        match self {
            Kind::Bento => "bento_repository",
            Kind::Model => "model_repository",
        }
    }

    /// Capitalised, for messages ("Bento", "Model").
    pub fn title(self) -> &'static str {
        match self {
            Kind::Bento => "Bento",
            Kind::Model => "Model",
        }
    }

    /// The prefix of archive keys in object storage.
    pub fn object_prefix(self) -> &'static str {
        match self {
            Kind::Bento => "bentos",
            Kind::Model => "models",
        }
    }
}

crate::wire_enum! {
    /// What a version serves: nothing yet (`pending`, `uploading`, `failed` for its first push), or
    /// a whole archive (`success`, which a later failed re-push does not change).
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum UploadStatus ("upload status") {
        Pending = "pending",
        Uploading = "uploading",
        Success = "success",
        Failed = "failed",
    }
}

impl UploadStatus {
    /// Parses a stored or sent status.
    pub fn parse(s: &str) -> Result<Self> {
        s.parse()
    }
}

crate::wire_enum! {
    /// The path an upload's bytes take.
    pub enum Transfer ("transfer") {
        /// Through the server (`PUT .../upload`).
        Proxy = "proxy",
        /// One presigned PUT.
        Single = "single",
        /// Presigned parts, then an assembly.
        Multipart = "multipart",
    }
}

crate::wire_enum! {
    /// Where one upload of a version stands (the version's own status tells what it serves).
    pub enum UploadState ("upload state") {
        /// Bytes may still arrive.
        Uploading = "uploading",
        /// Its archive became the served one.
        Committed = "committed",
        /// Refused, abandoned, or beaten by a concurrent push; the reason says which.
        Failed = "failed",
    }
}

/// How long after a push wrote a version's manifest no other push may write it: the second push
/// would pair its manifest with the first one's archive. A client goes from the manifest to the
/// upload in milliseconds; this is how long a crashed client blocks the next attempt at most.
pub const PUSH_CLAIM_SECS: i64 = 30;

/// Archives at least this large (by the manifest's `size_bytes`) go in presigned multipart uploads;
/// smaller ones in one presigned PUT. The BentoML clients cut parts of 100 MiB.
pub const MULTIPART_THRESHOLD: u64 = 100 * 1024 * 1024;

/// The generation of the BentoML client, from its `X-Bentoml-Version` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientGeneration {
    /// bentoml 1.0.x: knows only "400 record not found" and pulls only gzip archives.
    Legacy,
    /// bentoml 1.1 and later, browsers, scripts.
    Current,
}

impl ClientGeneration {
    /// Reads the `X-Bentoml-Version` header value.
    pub fn from_header(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            Some(v) if v == "1.0" || v.starts_with("1.0.") || v.starts_with("0.") => {
                ClientGeneration::Legacy
            }
            _ => ClientGeneration::Current,
        }
    }
}

/// Which transfer path a version response announces (`transmission_strategy`), which decides the
/// client's path: `Some("proxy")` through the server, `Some("presigned_url")` presigned multipart,
/// `None` makes the client ask `presign_*_url` and use one presigned URL if it gets one.
///
/// A version that cannot be downloaded is announced as `None` to `GET` so that a pull asks
/// `presign_download_url`, which answers with a clear error rather than a failing stream.
pub fn announced_strategy(
    server: TransmissionStrategy,
    client: ClientGeneration,
    status: UploadStatus,
    manifest_size: u64,
    is_get: bool,
) -> Option<&'static str> {
    if is_get && status != UploadStatus::Success {
        return None;
    }
    match (server, client) {
        (TransmissionStrategy::Proxy, _) | (_, ClientGeneration::Legacy) => {
            Some(TransmissionStrategy::Proxy.as_str())
        }
        (TransmissionStrategy::PresignedUrl, ClientGeneration::Current)
            if manifest_size >= MULTIPART_THRESHOLD =>
        {
            Some(TransmissionStrategy::PresignedUrl.as_str())
        }
        (TransmissionStrategy::PresignedUrl, ClientGeneration::Current) => None,
    }
}

/// Whether `presign_upload_url` / `presign_download_url` hand out a URL (else `""`, meaning proxy).
pub fn offers_presigned_urls(server: TransmissionStrategy, client: ClientGeneration) -> bool {
    server == TransmissionStrategy::PresignedUrl && client == ClientGeneration::Current
}

/// Parses the clients' `build_at`: `%Y-%m-%d %H:%M:%S.%f` in UTC without zone, or RFC 3339.
pub fn parse_build_at(s: &str) -> Result<crate::time::Micros> {
    if let Some(t) = crate::time::parse_rfc3339(s) {
        return Ok(t);
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s.trim(), format) {
            return Ok(t.and_utc().timestamp_micros());
        }
    }
    Err(Error::invalid(format!(
        "build_at {s:?} is not a time like \"2024-01-31 12:00:00.000000\" or RFC 3339"
    )))
}

/// Splits a tag `name:version`; `None` when it has no version.
pub fn split_tag(tag: &str) -> Option<(&str, &str)> {
    tag.split_once(':')
        .filter(|(n, v)| !n.is_empty() && !v.is_empty())
}

/// The model tags a bento manifest refers to: top-level `models`, `runners[].models` and
/// `services[].models[].tag` (bentoml 1.2+), without duplicates.
pub fn bento_model_tags(manifest: &serde_json::Value) -> Vec<(String, String)> {
    // The typed manifest knows where each client generation lists models; a manifest it cannot
    // read names none.
    crate::manifest::BentoManifest::from_value(manifest.clone())
        .map(|m| {
            m.model_tags()
                .iter()
                .filter_map(|t| split_tag(t))
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategy_follows_server_client_and_size() {
        use ClientGeneration::*;
        use TransmissionStrategy::*;
        use UploadStatus::*;
        assert_eq!(
            announced_strategy(Proxy, Current, Success, 10, true),
            Some("proxy")
        );
        assert_eq!(
            announced_strategy(PresignedUrl, Current, Pending, 10, false),
            None
        );
        assert_eq!(
            announced_strategy(PresignedUrl, Current, Pending, MULTIPART_THRESHOLD, false),
            Some("presigned_url")
        );
        assert_eq!(
            announced_strategy(PresignedUrl, Legacy, Pending, MULTIPART_THRESHOLD, false),
            Some("proxy")
        );
        // A GET of a version that is not downloadable announces nothing, so a pull asks first.
        assert_eq!(announced_strategy(Proxy, Current, Failed, 10, true), None);
        assert!(offers_presigned_urls(PresignedUrl, Current));
        assert!(!offers_presigned_urls(PresignedUrl, Legacy));
        assert!(!offers_presigned_urls(Proxy, Current));
    }

    #[test]
    fn client_generations() {
        assert_eq!(
            ClientGeneration::from_header(Some("1.0.20")),
            ClientGeneration::Legacy
        );
        assert_eq!(
            ClientGeneration::from_header(Some("1.1.11")),
            ClientGeneration::Current
        );
        assert_eq!(
            ClientGeneration::from_header(Some("1.10.0")),
            ClientGeneration::Current
        );
        assert_eq!(
            ClientGeneration::from_header(None),
            ClientGeneration::Current
        );
    }

    #[test]
    fn build_at_formats() {
        let t = parse_build_at("2026-11-25 12:30:34.554117").unwrap();
        assert_eq!(crate::time::to_rfc3339(t), "2026-11-25T12:30:34.554117Z");
        assert_eq!(parse_build_at("2026-11-25T12:30:34.554117Z").unwrap(), t);
        assert!(parse_build_at("yesterday").is_err());
    }

    #[test]
    fn model_tags_from_every_manifest_generation() {
        let m = json!({
            "models": ["a:1", "b:2"],
            "runners": [{"name": "r", "models": ["a:1", "c:3"]}],
            "services": [{"name": "s", "models": [{"tag": "d:4"}, {"tag": "bad"}]}]
        });
        let tags = bento_model_tags(&m);
        let want: Vec<(String, String)> = [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(tags, want);
        assert!(bento_model_tags(&json!({})).is_empty());
    }
}
