//! `yatai s3 check`: walks the way from this machine to the bucket one step at a time (DNS, TCP,
//! TLS/HTTP, clock, credentials, bucket, then put / get / presigned GET and PUT / delete of a probe
//! object through the same object storage code the server uses) and stops at the first step that
//! fails with a diagnosis naming the setting to fix.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use futures::TryStreamExt;
use rand::RngCore;
use yatai_store::objects::PresignOp;
use yatai_store::objects::S3Config;
use yatai_store::{ObjectStorage, ObjectStorageConfig};

use crate::sigv4;
use crate::util::sha256_hex;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// S3 refuses signed requests whose time differs from its own by more than this.
const MAX_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(15);
/// Size of the probe objects.
const PROBE_SIZE: usize = 256 * 1024;
/// Where the probe objects are written (removed again at the end).
pub const PROBE_PREFIX: &str = ".yatai-s3-check";

/// What `check` may do beyond looking.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Create the bucket when it does not exist.
    pub create_bucket: bool,
}

/// An S3 answer to a raw request.
struct Answer {
    status: reqwest::StatusCode,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn code(&self) -> Option<String> {
        xml_tag(&self.body, "Code")
    }

    /// "HTTP 403 SignatureDoesNotMatch: The request signature ..." for messages.
    fn describe(&self) -> String {
        match (self.code(), xml_tag(&self.body, "Message")) {
            (Some(c), Some(m)) => format!("HTTP {} {c}: {m}", self.status.as_u16()),
            (Some(c), None) => format!("HTTP {} {c}", self.status.as_u16()),
            _ if self.body.trim().is_empty() => format!("HTTP {}", self.status),
            _ => format!(
                "HTTP {}: {}",
                self.status,
                one_line(&self.body.chars().take(200).collect::<String>())
            ),
        }
    }
}

/// Runs every step; `out` receives one line per step that passed. The error is the diagnosis.
pub async fn check(
    s3: &S3Config,
    options: &CheckOptions,
    out: &mut dyn FnMut(String),
) -> anyhow::Result<()> {
    let endpoint = s3
        .endpoint_url()
        .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", region(s3)));
    let url =
        url::Url::parse(&endpoint).map_err(|e| anyhow!("invalid S3_ENDPOINT {endpoint:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("invalid S3_ENDPOINT {endpoint:?}: the scheme must be http or https");
    }
    let host = url
        .host_str()
        .ok_or_else(|| anyhow!("invalid S3_ENDPOINT {endpoint:?}: it names no host"))?
        .to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    if s3.bucket.is_empty() {
        bail!("S3_BUCKET_NAME is empty: name the bucket that holds the archives");
    }
    if s3.access_key.is_empty() || s3.secret_key.is_empty() {
        bail!("S3_ACCESS_KEY and S3_SECRET_KEY are not set: the check needs the credentials the server will use");
    }
    out(format!(
        "settings: endpoint {endpoint}, bucket {:?}, region {}, access key {:?}",
        s3.bucket,
        region(s3),
        s3.access_key
    ));

    // DNS
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = if let Ok(ip) = bare_host.parse::<std::net::IpAddr>() {
        vec![SocketAddr::new(ip, port)]
    } else {
        let found = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::lookup_host((bare_host, port)))
            .await
            .map_err(|_| anyhow!("DNS: resolving the S3 endpoint host {bare_host:?} took more than {} s: check the DNS settings of this machine", CONNECT_TIMEOUT.as_secs()))?
            .map_err(|e| anyhow!("DNS: cannot resolve the S3 endpoint host {bare_host:?} ({e}): check S3_ENDPOINT"))?
            .collect::<Vec<_>>();
        if found.is_empty() {
            bail!(
                "DNS: the S3 endpoint host {bare_host:?} resolves to no address: check S3_ENDPOINT"
            );
        }
        out(format!(
            "ok   DNS: {bare_host} resolves to {}",
            found
                .iter()
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        found
    };

    // TCP
    let mut last_error = None;
    let mut connected = None;
    for addr in &addrs {
        let started = Instant::now();
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => {
                connected = Some((*addr, started.elapsed()));
                break;
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last_error = Some(format!("nothing listens on {addr} (connection refused): check the port in S3_ENDPOINT and that the S3 server runs"));
            }
            Ok(Err(e)) => last_error = Some(format!("cannot connect to {addr}: {e}")),
            Err(_) => {
                last_error = Some(format!(
                    "no answer from {addr} within {} s: a firewall drops the connection, or the address is wrong",
                    CONNECT_TIMEOUT.as_secs()
                ))
            }
        }
    }
    let Some((addr, took)) = connected else {
        bail!(
            "TCP: the S3 endpoint {host}:{port} is unreachable: {}",
            last_error.unwrap_or_default()
        );
    };
    out(format!(
        "ok   TCP: connected to {addr} in {} ms",
        took.as_millis()
    ));

    // TLS and HTTP
    let http = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(Duration::from_secs(60))
        .build()
        .context("cannot build an HTTP client")?;
    let answer = http
        .get(url.as_str())
        .send()
        .await
        .map_err(|e| http_diagnosis(&e, &url, s3))?;
    let server = answer
        .headers()
        .get("server")
        .and_then(|v| v.to_str().ok())
        .map(|s| format!(", server {s:?}"))
        .unwrap_or_default();
    out(format!(
        "ok   {}: {endpoint} answers (HTTP {}{server})",
        if url.scheme() == "https" {
            "TLS + HTTP"
        } else {
            "HTTP"
        },
        answer.status().as_u16()
    ));
    if let Some(date) = answer
        .headers()
        .get("date")
        .and_then(|v| v.to_str().ok())
        .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok())
    {
        let skew = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
        if skew.abs() > MAX_SKEW {
            bail!(
                "clock skew: this machine's clock is {} the S3 server's by {}; S3 refuses signed requests beyond 15 minutes: fix the clock (NTP)",
                if skew > chrono::TimeDelta::zero() { "behind" } else { "ahead of" },
                human_duration(skew.abs())
            );
        }
        if skew.abs() > chrono::TimeDelta::minutes(1) {
            out(format!(
                "warn clock: this machine's clock differs from the S3 server's by {} (S3 refuses beyond 15 minutes)",
                human_duration(skew.abs())
            ));
        } else {
            out("ok   clock: in step with the S3 server".into());
        }
    }

    // Credentials
    let answer = signed(&http, s3, &url, "GET", "/", &[], b"").await?;
    if answer.status.is_success() {
        out(format!(
            "ok   credentials: access key {:?} accepted",
            s3.access_key
        ));
    } else {
        match answer.code().as_deref() {
            Some("AccessDenied") => out(format!(
                "ok   credentials: access key {:?} accepted (it may not list buckets, which Yatai does not need)",
                s3.access_key
            )),
            _ => return Err(auth_diagnosis(&answer, s3, "listing the buckets")),
        }
    }

    // Bucket
    let bucket_path = format!("/{}", s3.bucket);
    let answer = signed(
        &http,
        s3,
        &url,
        "GET",
        &bucket_path,
        &[("list-type", "2"), ("max-keys", "1")],
        b"",
    )
    .await?;
    if answer.status.is_success() {
        out(format!(
            "ok   bucket: {:?} exists and can be listed",
            s3.bucket
        ));
    } else if answer.code().as_deref() == Some("NoSuchBucket")
        || (answer.status == reqwest::StatusCode::NOT_FOUND && answer.code().is_none())
    {
        if !options.create_bucket {
            bail!(
                "bucket: {:?} does not exist at {endpoint}: create it, or run `yatai s3 check --create-bucket`",
                s3.bucket
            );
        }
        let body = if region(s3) == "us-east-1" {
            String::new()
        } else {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                region(s3)
            )
        };
        let created = signed(&http, s3, &url, "PUT", &bucket_path, &[], body.as_bytes()).await?;
        if !created.status.is_success() {
            return Err(match created.code().as_deref() {
                Some("BucketAlreadyExists") => anyhow!(
                    "bucket: the name {:?} is taken by another account: choose another S3_BUCKET_NAME",
                    s3.bucket
                ),
                Some("AccessDenied") => anyhow!(
                    "bucket: the credentials may not create bucket {:?} ({}): create it with an administrator's credentials",
                    s3.bucket,
                    created.describe()
                ),
                _ => auth_diagnosis(&created, s3, "creating the bucket"),
            });
        }
        out(format!("ok   bucket: created {:?}", s3.bucket));
    } else {
        return Err(match answer.code().as_deref() {
            Some("AccessDenied") => anyhow!(
                "bucket: the credentials may not list bucket {:?} ({}): grant s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on it",
                s3.bucket,
                answer.describe()
            ),
            Some("PermanentRedirect") | Some("AuthorizationHeaderMalformed") | Some("IllegalLocationConstraintException") => {
                let actual = answer
                    .headers
                    .get("x-amz-bucket-region")
                    .and_then(|v| v.to_str().ok())
                    .map(|r| format!(" (the server says it is in {r})"))
                    .or_else(|| xml_tag(&answer.body, "Region").map(|r| format!(" (the server expects {r})")))
                    .unwrap_or_default();
                anyhow!(
                    "region: bucket {:?} is not in region {}{actual}: set S3_REGION ({})",
                    s3.bucket,
                    region(s3),
                    answer.describe()
                )
            }
            _ => auth_diagnosis(&answer, s3, "listing the bucket"),
        });
    }

    // Objects, through the server's own object storage code.
    let storage = ObjectStorage::open(&ObjectStorageConfig::S3(s3.clone()))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let key = format!("{PROBE_PREFIX}/{}", yatai_store::new_uid());
    let presigned_key = format!("{key}-presigned");
    let result = probe_objects(&storage, &http, &key, &presigned_key, out).await;
    if result.is_err() {
        let _ = storage.delete(&key).await;
        let _ = storage.delete(&presigned_key).await;
    }
    result?;
    out(format!(
        "S3 check of bucket {:?} at {endpoint} completed successfully",
        s3.bucket
    ));
    Ok(())
}

async fn probe_objects(
    storage: &ObjectStorage,
    http: &reqwest::Client,
    key: &str,
    presigned_key: &str,
    out: &mut dyn FnMut(String),
) -> anyhow::Result<()> {
    let mut data = vec![0u8; PROBE_SIZE];
    rand::thread_rng().fill_bytes(&mut data);
    let sha = sha256_hex(&data);
    let stored = storage
        .put_stream(
            key,
            futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(data.clone()))]),
        )
        .await
        .map_err(|e| anyhow!("put: writing the probe object {key:?} failed: {e}"))?;
    if stored.sha256 != sha {
        bail!("put: the probe object was stored with other bytes than sent");
    }
    out(format!(
        "ok   put: wrote the probe object {key:?} ({PROBE_SIZE} bytes)"
    ));

    let reader = storage
        .get(key, None)
        .await
        .map_err(|e| anyhow!("get: reading the probe object back failed: {e}"))?;
    let read: Vec<Bytes> = reader
        .stream
        .try_collect()
        .await
        .map_err(|e| anyhow!("get: reading the probe object back failed: {e}"))?;
    if read.concat() != data {
        bail!("get: the probe object read back differs from what was written");
    }
    out("ok   get: read it back, bytes identical".into());

    let url = storage
        .presign(key, &PresignOp::Get, Duration::from_secs(300))
        .await
        .map_err(|e| anyhow!("presign: {e}"))?;
    let res = http.get(&url).send().await.map_err(|e| {
        anyhow!(
            "presigned GET: fetching {} failed: {}: clients must reach S3_ENDPOINT as configured",
            redact_query(&url),
            error_chain(&e)
        )
    })?;
    let status = res.status();
    let body = res.bytes().await.map_err(|e| {
        anyhow!(
            "presigned GET: reading the answer failed: {}",
            error_chain(&e)
        )
    })?;
    if !status.is_success() {
        let answer = Answer {
            status,
            headers: Default::default(),
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        bail!(
            "presigned GET: the S3 server refused the presigned URL ({})",
            answer.describe()
        );
    }
    if body[..] != data[..] {
        bail!("presigned GET: the bytes fetched differ from the probe object");
    }
    out(
        "ok   presigned GET: fetched the probe object with a plain HTTP client, bytes identical"
            .into(),
    );

    let url = storage
        .presign(presigned_key, &PresignOp::Put, Duration::from_secs(300))
        .await
        .map_err(|e| anyhow!("presign: {e}"))?;
    let res = http
        .put(&url)
        .body(data.clone())
        .send()
        .await
        .map_err(|e| anyhow!("presigned PUT: failed: {}", error_chain(&e)))?;
    if !res.status().is_success() {
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        let answer = Answer {
            status,
            headers: Default::default(),
            body,
        };
        bail!(
            "presigned PUT: the S3 server refused the presigned URL ({})",
            answer.describe()
        );
    }
    match storage.size(presigned_key).await {
        Ok(Some(n)) if n == PROBE_SIZE as u64 => {}
        other => {
            bail!("presigned PUT: the object uploaded with it is not there as sent ({other:?})")
        }
    }
    out("ok   presigned PUT: uploaded a probe object with a plain HTTP client".into());

    for k in [key, presigned_key] {
        storage
            .delete(k)
            .await
            .map_err(|e| anyhow!("delete: removing the probe object {k:?} failed: {e}"))?;
        if storage
            .size(k)
            .await
            .map_err(|e| anyhow!("delete: {e}"))?
            .is_some()
        {
            bail!("delete: the probe object {k:?} is still there after deleting it");
        }
    }
    out("ok   delete: removed the probe objects".into());
    Ok(())
}

/// Sends a header-signed request.
async fn signed(
    http: &reqwest::Client,
    s3: &S3Config,
    base: &url::Url,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<Answer> {
    let host = match base.port() {
        Some(p) => format!("{}:{p}", base.host_str().unwrap_or_default()),
        None => base.host_str().unwrap_or_default().to_string(),
    };
    let base_path = base.path().trim_end_matches('/');
    let full_path = format!("{base_path}{path}");
    let signature = sigv4::sign(
        method,
        &host,
        &full_path,
        query,
        body,
        &s3.access_key,
        &s3.secret_key,
        region(s3),
        chrono::Utc::now(),
    );
    let encoded_path = full_path
        .split('/')
        .map(sigv4::uri_encode)
        .collect::<Vec<_>>()
        .join("/");
    let mut target = format!("{}://{host}{encoded_path}", base.scheme());
    if !query.is_empty() {
        target.push('?');
        target.push_str(
            &query
                .iter()
                .map(|(k, v)| format!("{}={}", sigv4::uri_encode(k), sigv4::uri_encode(v)))
                .collect::<Vec<_>>()
                .join("&"),
        );
    }
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a valid method");
    let res = http
        .request(method, &target)
        .header("authorization", signature.authorization)
        .header("x-amz-date", signature.amz_date)
        .header("x-amz-content-sha256", signature.content_sha256)
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| anyhow!("the S3 endpoint stopped answering: {}", error_chain(&e)))?;
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.text().await.unwrap_or_default();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// Names the cause of an authentication failure.
fn auth_diagnosis(answer: &Answer, s3: &S3Config, doing: &str) -> anyhow::Error {
    match answer.code().as_deref() {
        Some("InvalidAccessKeyId") => anyhow!(
            "credentials: the S3 server does not know the access key {:?} (InvalidAccessKeyId): check S3_ACCESS_KEY",
            s3.access_key
        ),
        Some("SignatureDoesNotMatch") => anyhow!(
            "credentials: the secret key is wrong for access key {:?} (SignatureDoesNotMatch): check S3_SECRET_KEY",
            s3.access_key
        ),
        Some("InvalidToken") | Some("ExpiredToken") | Some("TokenRefreshRequired") => anyhow!(
            "credentials: the S3 server refused the credentials ({}): check S3_ACCESS_KEY and S3_SECRET_KEY",
            answer.describe()
        ),
        Some("RequestTimeTooSkewed") => {
            let server = xml_tag(&answer.body, "ServerTime")
                .map(|t| format!(" (server time {t}, this machine {})", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")))
                .unwrap_or_default();
            anyhow!(
                "clock skew: the S3 server refuses the request because this machine's clock is off{server} (RequestTimeTooSkewed): fix the clock (NTP)"
            )
        }
        Some("AuthorizationHeaderMalformed") => anyhow!(
            "region: the S3 server refused the region {:?} ({}): set S3_REGION",
            region(s3),
            answer.describe()
        ),
        _ => anyhow!("the S3 server refused {doing} ({})", answer.describe()),
    }
}

/// Turns a transport error into a diagnosis (TLS, or an endpoint that is not HTTP).
fn http_diagnosis(e: &reqwest::Error, url: &url::Url, s3: &S3Config) -> anyhow::Error {
    let chain = error_chain(e);
    let lower = chain.to_lowercase();
    let hostport = format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(0)
    );
    if url.scheme() == "https" {
        if lower.contains("certificate")
            || lower.contains("unknownissuer")
            || lower.contains("notvalidforname")
        {
            return anyhow!(
                "TLS: the certificate of {hostport} is not trusted: {chain}: install its CA in the system trust store, or use the host name the certificate names"
            );
        }
        if lower.contains("corrupt message")
            || lower.contains("invalidcontenttype")
            || lower.contains("wrong version")
            || lower.contains("invalid message")
            || lower.contains("handshake")
            || lower.contains("tls")
        {
            let hint = if s3.endpoint.starts_with("https://") {
                "use an http:// endpoint"
            } else {
                "set S3_SECURE=false"
            };
            return anyhow!(
                "TLS: the handshake with {hostport} failed: {chain}: if the server speaks plain HTTP, {hint}"
            );
        }
    }
    if e.is_timeout() {
        return anyhow!(
            "HTTP: {hostport} accepted the connection but did not answer in time: {chain}"
        );
    }
    let hint = if url.scheme() == "http" {
        " (if the server expects TLS, set S3_SECURE=true or use an https:// endpoint)"
    } else {
        ""
    };
    anyhow!("HTTP: {hostport} does not answer HTTP: {chain}{hint}")
}

fn region(s3: &S3Config) -> &str {
    if s3.region.is_empty() {
        "us-east-1"
    } else {
        &s3.region
    }
}

/// The text of the first `<tag>` element of an XML document.
fn xml_tag(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(body[start..end].trim().to_string())
}

/// An error and its causes on one line.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    one_line(&parts.join(": "))
}

fn redact_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

fn human_duration(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_s3_error_codes() {
        let body = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error>";
        assert_eq!(
            xml_tag(body, "Code").as_deref(),
            Some("SignatureDoesNotMatch")
        );
        let a = Answer {
            status: reqwest::StatusCode::FORBIDDEN,
            headers: Default::default(),
            body: body.into(),
        };
        let s3 = S3Config {
            endpoint: "x".into(),
            access_key: "ak".into(),
            secret_key: "sk".into(),
            region: String::new(),
            secure: false,
            bucket: "b".into(),
        };
        assert!(auth_diagnosis(&a, &s3, "x")
            .to_string()
            .contains("S3_SECRET_KEY"));
        let skew = Answer {
            status: reqwest::StatusCode::FORBIDDEN,
            headers: Default::default(),
            body: "<Error><Code>RequestTimeTooSkewed</Code><ServerTime>2030-01-01T00:00:00Z</ServerTime></Error>".into(),
        };
        let msg = auth_diagnosis(&skew, &s3, "x").to_string();
        assert!(
            msg.contains("clock skew") && msg.contains("2030-01-01"),
            "{msg}"
        );
        assert_eq!(human_duration(chrono::TimeDelta::seconds(3725)), "1h02m");
    }
}
