//! What a crash leaves in object storage, found so that it can be removed: on the local backend
//! the staging files of interrupted writes and the parts of abandoned multipart uploads, on S3
//! the multipart uploads that were never completed or aborted.

use std::path::{Path as FsPath, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use yatai_domain::Error;

use super::S3Config;

/// An incomplete S3 multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompleteUpload {
    pub key: String,
    pub upload_id: String,
    /// When it was started, in seconds since the epoch (0 when S3 did not say).
    pub initiated_secs: i64,
}

/// Staging files of the local backend older than `older_than`: `object_store` writes an object
/// to `NAME#N` and renames it when complete, so a write cut by a crash leaves `NAME#N` behind.
pub(super) fn local_staging_files(root: &FsPath, older_than: Duration) -> Vec<PathBuf> {
    let cutoff = SystemTime::now()
        .checked_sub(older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                dirs.push(path);
                continue;
            }
            let staging = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.rsplit_once('#'))
                .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            let old = meta.modified().is_ok_and(|m| m < cutoff);
            if staging && old {
                found.push(path);
            }
        }
    }
    found
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListMultipartUploadsResult {
    #[serde(default)]
    upload: Vec<UploadEntry>,
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_key_marker: Option<String>,
    #[serde(default)]
    next_upload_id_marker: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UploadEntry {
    key: String,
    upload_id: String,
    #[serde(default)]
    initiated: Option<String>,
}

/// Lists the incomplete multipart uploads of the bucket (S3's ListMultipartUploads, which
/// `object_store` does not offer, presigned by `rusty-s3` and parsed with `quick-xml`).
pub(super) async fn s3_incomplete_uploads(
    config: &S3Config,
    bucket: &rusty_s3::Bucket,
    credentials: &rusty_s3::Credentials,
) -> Result<Vec<IncompleteUpload>, Error> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| Error::Internal(format!("HTTP client: {e}")))?;
    let mut out = Vec::new();
    let (mut key_marker, mut id_marker) = (String::new(), String::new());
    loop {
        // Query parameters signed in name order, as rusty-s3 requires.
        let mut query: Vec<(&str, &str)> = Vec::new();
        if !key_marker.is_empty() {
            query.push(("key-marker", &key_marker));
        }
        if !id_marker.is_empty() {
            query.push(("upload-id-marker", &id_marker));
        }
        query.push(("uploads", ""));
        let url = rusty_s3::signing::sign(
            &jiff::Timestamp::now(),
            rusty_s3::Method::Get,
            bucket.base_url().clone(),
            credentials.key(),
            credentials.secret(),
            credentials.token(),
            bucket.region(),
            60,
            query.iter().copied(),
            std::iter::empty(),
        );
        let answer = http.get(url).send().await.map_err(|e| {
            Error::Unavailable(format!(
                "object storage is not reachable to list incomplete uploads: {e}"
            ))
        })?;
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(Error::Internal(format!(
                "listing the incomplete uploads of bucket {:?} failed with HTTP {status}",
                config.bucket
            )));
        }
        let page: ListMultipartUploadsResult = quick_xml::de::from_str(&body)
            .map_err(|e| Error::Internal(format!("unreadable ListMultipartUploads answer: {e}")))?;
        for u in page.upload {
            let initiated_secs = u
                .initiated
                .as_deref()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map(|t| t.as_second())
                .unwrap_or(0);
            out.push(IncompleteUpload {
                key: u.key,
                upload_id: u.upload_id,
                initiated_secs,
            });
        }
        match (
            page.is_truncated,
            page.next_key_marker,
            page.next_upload_id_marker,
        ) {
            (true, Some(k), Some(i)) if k != key_marker || i != id_marker => {
                key_marker = k;
                id_marker = i;
            }
            _ => break,
        }
    }
    Ok(out)
}
