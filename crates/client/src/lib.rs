//! A typed async client for Yatai's HTTP API.
//!
//! It speaks what the server answers (the shapes of `yatai-api-types`), authenticates with an
//! API token (`X-YATAI-API-TOKEN`, as the BentoML clients and Yatai 1.x's image builder do),
//! streams downloads with progress, and reports image builds. Every failure is a [`ClientError`]
//! whose message says what to do next; the server's own message is kept.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;
use url::Url;
pub use yatai_api_types as types;
use yatai_api_types::{
    BentoSchema, ErrorBody, ImageBuildStatus, ListSchema, ModelSchema, RepositorySchema,
    UpdateImageBuildStatusSchema,
};

/// The header the API token travels in.
pub const TOKEN_HEADER: &str = "X-YATAI-API-TOKEN";

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint is not a usable base URL.
    #[error("{0}")]
    Config(String),
    /// The server could not be reached (DNS, connection, TLS, timeout).
    #[error("cannot reach the Yatai server at {endpoint}: {source}")]
    Unreachable {
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    /// The token is missing, unknown, expired or lacks a scope (401/403).
    #[error("the Yatai server refused the API token ({status}): {message}")]
    Unauthorized { status: u16, message: String },
    /// The resource does not exist (404, or Yatai's legacy "record not found").
    #[error("{message}")]
    NotFound { message: String },
    /// Any other error answer.
    #[error("the Yatai server answered {status}: {message}")]
    Api { status: u16, message: String },
    /// The answer could not be read.
    #[error("unexpected answer from the Yatai server ({what}): {detail}")]
    Decode { what: String, detail: String },
    /// Writing a download failed.
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl ClientError {
    /// Whether the error means "no such resource".
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::NotFound { .. })
    }
}

/// Result of client calls.
pub type Result<T> = std::result::Result<T, ClientError>;

/// The kind of a registry item, with its URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bento,
    Model,
}

impl Kind {
    fn repositories(self) -> &'static str {
        match self {
            Kind::Bento => "bento_repositories",
            Kind::Model => "model_repositories",
        }
    }
    fn versions(self) -> &'static str {
        match self {
            Kind::Bento => "bentos",
            Kind::Model => "models",
        }
    }
    fn title(self) -> &'static str {
        match self {
            Kind::Bento => "bento",
            Kind::Model => "model",
        }
    }
}

/// Paging and filtering of list calls (Yatai's `q` mini-language).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub start: Option<i64>,
    pub count: Option<i64>,
    pub search: Option<String>,
    pub q: Option<String>,
}

impl ListQuery {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(s) = self.start {
            out.push(("start", s.to_string()));
        }
        if let Some(c) = self.count {
            out.push(("count", c.to_string()));
        }
        if let Some(s) = &self.search {
            out.push(("search", s.clone()));
        }
        if let Some(q) = &self.q {
            out.push(("q", q.clone()));
        }
        out
    }
}

/// Progress of a download: bytes so far and the total when the server said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: Option<u64>,
}

/// A client of one Yatai server with one API token.
#[derive(Debug, Clone)]
pub struct Client {
    base: Url,
    token: Option<String>,
    http: reqwest::Client,
}

/// Splits a tag `name:version`.
pub fn split_tag(tag: &str) -> Result<(&str, &str)> {
    tag.split_once(':')
        .filter(|(n, v)| !n.is_empty() && !v.is_empty() && !v.contains(':'))
        .ok_or_else(|| {
            ClientError::Config(format!(
                "{tag:?} is not a tag: write NAME:VERSION (e.g. iris_classifier:abc123)"
            ))
        })
}

impl Client {
    /// A client of the server at `endpoint` (e.g. `http://127.0.0.1:7777`), authenticating with
    /// `token` when given.
    pub fn new(endpoint: &str, token: Option<&str>) -> Result<Self> {
        let mut base = Url::parse(endpoint.trim()).map_err(|e| {
            ClientError::Config(format!(
                "the endpoint {endpoint:?} is not a URL ({e}); give it like http://yatai.example.com"
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::Config(format!(
                "the endpoint {endpoint:?} must be an http:// or https:// URL"
            )));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        // TLS through ring (the provider the workspace builds); a no-op when one is installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .user_agent(concat!("yatai-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Config(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client {
            base,
            token: token.map(str::to_owned).filter(|t| !t.is_empty()),
            http,
        })
    }

    /// The server's base URL.
    pub fn endpoint(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str) -> Result<Url> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| ClientError::Config(format!("bad path {path:?}: {e}")))
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, url);
        if let Some(t) = &self.token {
            req = req.header(TOKEN_HEADER, t);
        }
        req
    }

    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Result<reqwest::Response> {
        let response = req
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                endpoint: self.base.to_string(),
                source,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&body)
            .map(|b| b.message)
            .unwrap_or_else(|_| body.trim().chars().take(500).collect());
        Err(error_for(status, what, message))
    }

    async fn json<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<T> {
        let response = self.send(req, what).await?;
        let bytes = response.bytes().await.map_err(|e| ClientError::Decode {
            what: what.into(),
            detail: e.to_string(),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            what: what.into(),
            detail: e.to_string(),
        })
    }

    fn version_path(kind: Kind, name: &str, version: &str) -> String {
        format!(
            "api/v1/{}/{}/{}/{}",
            kind.repositories(),
            enc(name),
            kind.versions(),
            enc(version)
        )
    }

    /// One version of a bento or model.
    pub async fn get_version(&self, kind: Kind, name: &str, version: &str) -> Result<BentoSchema> {
        let what = format!("{} {name}:{version}", kind.title());
        let url = self.url(&Self::version_path(kind, name, version))?;
        self.json(self.request(Method::GET, url), &what).await
    }

    /// One bento version.
    pub async fn get_bento(&self, name: &str, version: &str) -> Result<BentoSchema> {
        self.get_version(Kind::Bento, name, version).await
    }

    /// One model version.
    pub async fn get_model(&self, name: &str, version: &str) -> Result<ModelSchema> {
        self.get_version(Kind::Model, name, version).await
    }

    /// Versions across the organization's repositories (`/api/v1/bentos`, `/api/v1/models`).
    pub async fn list_versions(
        &self,
        kind: Kind,
        query: &ListQuery,
    ) -> Result<ListSchema<BentoSchema>> {
        let mut url = self.url(&format!("api/v1/{}", kind.versions()))?;
        url.query_pairs_mut().extend_pairs(query.pairs());
        self.json(self.request(Method::GET, url), kind.versions())
            .await
    }

    /// Bento versions across repositories.
    pub async fn list_bentos(&self, query: &ListQuery) -> Result<ListSchema<BentoSchema>> {
        self.list_versions(Kind::Bento, query).await
    }

    /// Model versions across repositories.
    pub async fn list_models(&self, query: &ListQuery) -> Result<ListSchema<ModelSchema>> {
        self.list_versions(Kind::Model, query).await
    }

    /// Repositories of one kind.
    pub async fn list_repositories(
        &self,
        kind: Kind,
        query: &ListQuery,
    ) -> Result<ListSchema<RepositorySchema>> {
        let mut url = self.url(&format!("api/v1/{}", kind.repositories()))?;
        url.query_pairs_mut().extend_pairs(query.pairs());
        self.json(self.request(Method::GET, url), kind.repositories())
            .await
    }

    /// Streams the archive of a version into `dest` (created or truncated), calling `progress`
    /// as bytes arrive. Fails with a clear message when the version is not uploaded.
    pub async fn download(
        &self,
        kind: Kind,
        name: &str,
        version: &str,
        dest: &Path,
        mut progress: impl FnMut(Progress),
    ) -> Result<u64> {
        let what = format!("{} {name}:{version}", kind.title());
        let v = self.get_version(kind, name, version).await?;
        if !v.is_uploaded() {
            return Err(ClientError::Api {
                status: 409,
                message: format!(
                    "{what} is not uploaded (upload status {:?}); push it again with `bentoml push`",
                    v.upload_status
                ),
            });
        }
        let url = self.url(&format!(
            "{}/download",
            Self::version_path(kind, name, version)
        ))?;
        let response = self.send(self.request(Method::GET, url), &what).await?;
        let total = response.content_length();
        let io = |source| ClientError::Io {
            path: dest.display().to_string(),
            source,
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut stream = response.bytes_stream();
        let mut done = 0u64;
        progress(Progress { done, total });
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ClientError::Decode {
                what: format!("download of {what}"),
                detail: format!("the transfer broke off after {done} bytes: {e}"),
            })?;
            file.write_all(&chunk).await.map_err(io)?;
            done += chunk.len() as u64;
            progress(Progress { done, total });
        }
        file.flush().await.map_err(io)?;
        if let Some(t) = total.filter(|t| *t != done) {
            return Err(ClientError::Decode {
                what: format!("download of {what}"),
                detail: format!("got {done} of {t} bytes"),
            });
        }
        Ok(done)
    }

    /// Reports where the image of a bento version stands (Yatai 1.x's
    /// `update_image_build_status`, plus the image reference and the failure reason).
    pub async fn update_image_build_status(
        &self,
        name: &str,
        version: &str,
        status: ImageBuildStatus,
        image_reference: Option<&str>,
        reason: Option<&str>,
    ) -> Result<BentoSchema> {
        let url = self.url(&format!(
            "{}/update_image_build_status",
            Self::version_path(Kind::Bento, name, version)
        ))?;
        let body = UpdateImageBuildStatusSchema {
            image_build_status: status,
            image_reference: image_reference.map(str::to_owned),
            reason: reason.map(str::to_owned),
        };
        self.json(
            self.request(Method::PATCH, url).json(&body),
            &format!("bento {name}:{version}"),
        )
        .await
    }
}

fn enc(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn error_for(status: StatusCode, what: &str, message: String) -> ClientError {
    let message = if message.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        message
    };
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ClientError::Unauthorized {
            status: status.as_u16(),
            message: format!("{message} (check the API token and its scopes)"),
        },
        StatusCode::NOT_FOUND => ClientError::NotFound {
            message: format!("{what} was not found on the Yatai server: {message}"),
        },
        // Yatai before 1.1.10 says "not found" as 400 "record not found".
        StatusCode::BAD_REQUEST if message.contains("record not found") => ClientError::NotFound {
            message: format!("{what} was not found on the Yatai server: {message}"),
        },
        _ => ClientError::Api {
            status: status.as_u16(),
            message,
        },
    }
}
