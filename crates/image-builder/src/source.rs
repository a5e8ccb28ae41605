//! Where a bento archive comes from: our server (through the typed client), a download URL
//! (http, https, or `s3://bucket/key` with the `S3_*` / `AWS_*` settings), or a local file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;
use yatai_client::{Client, ClientError, Kind, Progress};

use crate::{BuildError, Reporter};

/// Where to get the bento (and the models it does not carry).
#[derive(Debug, Clone)]
pub enum Source {
    /// A Yatai server.
    Server(Client),
    /// An `http(s)://` or `s3://` URL, or a `file://` URL or plain path.
    Url(String),
    /// Archives fetched by the embedding program: the Yatai server building in-process reads
    /// them straight from its own storage.
    Fetcher(Arc<dyn Fetch>),
}

/// Writes the archive of a bento or model version to a file (see [`Source::Fetcher`]).
pub trait Fetch: Send + Sync + std::fmt::Debug {
    fn fetch<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
        version: &'a str,
        dest: &'a Path,
    ) -> futures::future::BoxFuture<'a, Result<(), BuildError>>;
}

impl Source {
    /// The server, when the source is one (the build status is reported there).
    pub fn server(&self) -> Option<&Client> {
        match self {
            Source::Server(c) => Some(c),
            Source::Url(_) | Source::Fetcher(_) => None,
        }
    }

    /// Whether models the bento does not carry can be fetched from this source.
    pub fn has_models(&self) -> bool {
        !matches!(self, Source::Url(_))
    }

    /// Writes the archive of `kind` `name:version` to `dest`, when the source holds models and
    /// bentos by name (a server or a fetcher; not a URL).
    pub async fn fetch_named(
        &self,
        kind: Kind,
        name: &str,
        version: &str,
        dest: &Path,
        report: Arc<Reporter>,
    ) -> Result<(), BuildError> {
        match self {
            Source::Server(c) => from_server(c, kind, name, version, dest, report).await,
            Source::Fetcher(f) => {
                report(&format!(
                    "reading {} {name}:{version} from storage",
                    if kind == Kind::Bento {
                        "bento"
                    } else {
                        "model"
                    }
                ));
                f.fetch(kind, name, version, dest).await
            }
            Source::Url(u) => Err(BuildError::Config(format!(
                "{u} holds one archive, not {name}:{version}"
            ))),
        }
    }
}

fn progress_printer(report: Arc<Reporter>, what: String) -> impl FnMut(Progress) {
    let mut last_step = u64::MAX;
    move |p: Progress| {
        let step = match p.total {
            Some(t) if t > 0 => p.done * 10 / t,
            _ => p.done >> 26,
        };
        if step != last_step {
            last_step = step;
            let msg = match p.total {
                Some(t) => format!(
                    "downloading {what}: {} of {} ({}%)",
                    mib(p.done),
                    mib(t),
                    p.done * 100 / t.max(1)
                ),
                None => format!("downloading {what}: {}", mib(p.done)),
            };
            report(&msg);
        }
    }
}

fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / 1048576.0)
}

fn from_client(e: ClientError, what: &str) -> BuildError {
    match e {
        ClientError::NotFound { message } => BuildError::NotFound(message),
        ClientError::Api {
            status: 409,
            message,
        } => BuildError::NotUploaded(message),
        ClientError::Unauthorized { .. } => BuildError::Source(format!("{what}: {e}")),
        other => BuildError::Source(format!("{what}: {other}")),
    }
}

/// Downloads a bento or model archive from the server into `dest`.
pub async fn from_server(
    client: &Client,
    kind: Kind,
    name: &str,
    version: &str,
    dest: &Path,
    report: Arc<Reporter>,
) -> Result<(), BuildError> {
    let what = format!(
        "{} {name}:{version}",
        if kind == Kind::Bento {
            "bento"
        } else {
            "model"
        }
    );
    client
        .download(
            kind,
            name,
            version,
            dest,
            progress_printer(report, what.clone()),
        )
        .await
        .map(|_| ())
        .map_err(|e| from_client(e, &what))
}

/// Fetches `url` into `dest` (or returns the local path it names).
pub async fn from_url(
    url: &str,
    dest: &Path,
    report: Arc<Reporter>,
) -> Result<PathBuf, BuildError> {
    if let Some(path) =
        url.strip_prefix("file://")
            .or(if url.contains("://") { None } else { Some(url) })
    {
        let p = PathBuf::from(path);
        if !p.is_file() {
            return Err(BuildError::Source(format!("{} is not a file", p.display())));
        }
        return Ok(p);
    }
    let http_url = if let Some(rest) = url.strip_prefix("s3://") {
        presign_s3(rest)?
    } else if url.starts_with("http://") || url.starts_with("https://") {
        url.to_string()
    } else {
        return Err(BuildError::Source(format!(
            "cannot download {url:?}: give an http(s)://, s3:// or file:// URL"
        )));
    };
    crate::install_crypto_provider();
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| BuildError::Source(e.to_string()))?;
    let shown = url.split('?').next().unwrap_or(url).to_string();
    let response = http
        .get(&http_url)
        .send()
        .await
        .map_err(|e| BuildError::Source(format!("cannot download {shown}: {e}")))?;
    let status = response.status();
    if status.as_u16() == 404 {
        return Err(BuildError::NotFound(format!(
            "{shown} answered 404 Not Found"
        )));
    }
    if !status.is_success() {
        return Err(BuildError::Source(format!(
            "downloading {shown} answered {status}"
        )));
    }
    let total = response.content_length();
    let mut progress = progress_printer(report, shown.clone());
    let mut file = tokio::fs::File::create(dest)
        .await
        .map_err(|e| BuildError::Io(format!("{}: {e}", dest.display())))?;
    let mut done = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            BuildError::Source(format!(
                "download of {shown} broke off after {done} bytes: {e}"
            ))
        })?;
        file.write_all(&chunk)
            .await
            .map_err(|e| BuildError::Io(e.to_string()))?;
        done += chunk.len() as u64;
        progress(Progress { done, total });
    }
    file.flush()
        .await
        .map_err(|e| BuildError::Io(e.to_string()))?;
    Ok(dest.to_path_buf())
}

/// A presigned GET for `bucket/key`, signed with `S3_ACCESS_KEY`/`S3_SECRET_KEY` (or
/// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`) at `S3_ENDPOINT` (or `AWS_ENDPOINT_URL`).
fn presign_s3(bucket_and_key: &str) -> Result<String, BuildError> {
    use rusty_s3::S3Action;
    let env = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
    };
    let (bucket, key) = bucket_and_key
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or_else(|| {
            BuildError::Source(format!(
                "s3://{bucket_and_key} must name a bucket and a key"
            ))
        })?;
    let endpoint = env(&["S3_ENDPOINT", "AWS_ENDPOINT_URL"])
        .unwrap_or_else(|| "https://s3.amazonaws.com".into());
    let endpoint = if endpoint.contains("://") {
        endpoint
    } else {
        let secure = env(&["S3_SECURE"])
            .and_then(|v| crate::naming::parse_bool(&v))
            .unwrap_or(true);
        format!("{}://{endpoint}", if secure { "https" } else { "http" })
    };
    let region = env(&["S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"])
        .unwrap_or_else(|| "us-east-1".into());
    let url = endpoint
        .parse()
        .map_err(|e| BuildError::Source(format!("S3 endpoint {endpoint:?}: {e}")))?;
    let b = rusty_s3::Bucket::new(url, rusty_s3::UrlStyle::Path, bucket.to_string(), region)
        .map_err(|e| BuildError::Source(format!("S3 bucket {bucket:?}: {e}")))?;
    let creds = match (
        env(&["S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID"]),
        env(&["S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"]),
    ) {
        (Some(k), Some(s)) => Some(rusty_s3::Credentials::new(k, s)),
        _ => None,
    };
    Ok(b.get_object(creds.as_ref(), key)
        .sign(Duration::from_secs(3600))
        .to_string())
}
