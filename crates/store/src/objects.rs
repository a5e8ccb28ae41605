//! Object storage for bento and model archives: a local directory (embedded default) or an
//! S3-compatible bucket (production), behind one interface built on the `object_store` crate.
//!
//! Writes are streamed in parts and become visible atomically when complete: the local backend
//! writes a staging file and renames it, S3 completes a multipart upload.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, RetryConfig, WriteMultipart};
use sha2::{Digest, Sha256};
use yatai_domain::Error;

/// How to reach object storage.
#[derive(Debug, Clone)]
pub enum ObjectStorageConfig {
    /// Archives live as files under this directory.
    Local { root: PathBuf },
    /// Archives live in an S3-compatible bucket.
    S3(S3Config),
}

/// The settings of an S3-compatible bucket (Yatai's `S3_*` environment names).
#[derive(Debug, Clone)]
pub struct S3Config {
    /// `S3_ENDPOINT`: host[:port] or a full URL; empty for AWS.
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    /// `S3_SECURE`: https when true.
    pub secure: bool,
    pub bucket: String,
}

impl S3Config {
    /// The endpoint as a URL, honouring `secure` when no scheme is given.
    pub fn endpoint_url(&self) -> Option<String> {
        if self.endpoint.is_empty() {
            None
        } else if self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://") {
            Some(self.endpoint.trim_end_matches('/').to_string())
        } else {
            let scheme = if self.secure { "https" } else { "http" };
            Some(format!(
                "{scheme}://{}",
                self.endpoint.trim_end_matches('/')
            ))
        }
    }
}

/// What was stored by a streamed write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub size: u64,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
}

/// A readable object: its total size and a stream of the requested bytes.
pub struct ObjectReader {
    pub total_size: u64,
    pub range: std::ops::Range<u64>,
    pub stream: futures::stream::BoxStream<'static, Result<Bytes, Error>>,
}

/// The object storage of one installation.
#[derive(Clone, Debug)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    s3: Option<Arc<AmazonS3>>,
    description: String,
}

/// Size of the parts of a streamed write (S3's minimum part size is 5 MiB).
const PART_SIZE: usize = 8 * 1024 * 1024;

impl ObjectStorage {
    /// Opens object storage and checks that it is usable: the directory can be created, or the
    /// bucket answers to a listing with these credentials.
    pub async fn open(config: &ObjectStorageConfig) -> Result<ObjectStorage, Error> {
        let storage = match config {
            ObjectStorageConfig::Local { root } => {
                std::fs::create_dir_all(root).map_err(|e| {
                    Error::Unavailable(format!(
                        "cannot create the object directory {}: {e}",
                        root.display()
                    ))
                })?;
                let fs = LocalFileSystem::new_with_prefix(root).map_err(|e| {
                    Error::Unavailable(format!(
                        "cannot use the object directory {}: {e}",
                        root.display()
                    ))
                })?;
                ObjectStorage {
                    store: Arc::new(fs),
                    s3: None,
                    description: format!("directory {}", root.display()),
                }
            }
            ObjectStorageConfig::S3(s3) => {
                let s3_store = Arc::new(build_s3(s3)?);
                ObjectStorage {
                    store: s3_store.clone(),
                    s3: Some(s3_store),
                    description: format!(
                        "bucket {:?} at {}",
                        s3.bucket,
                        s3.endpoint_url().unwrap_or_else(|| "AWS S3".into())
                    ),
                }
            }
        };
        storage.check().await?;
        Ok(storage)
    }

    /// Where the objects live, for messages.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// The S3 store, when this is the S3 backend (for presigned URLs).
    pub fn s3(&self) -> Option<&Arc<AmazonS3>> {
        self.s3.as_ref()
    }

    /// The underlying store.
    pub fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Checks that the storage answers (a listing of the root).
    pub async fn check(&self) -> Result<(), Error> {
        self.store
            .list_with_delimiter(None)
            .await
            .map(|_| ())
            .map_err(|e| {
                Error::Unavailable(format!(
                    "object storage ({}) is not usable: {}",
                    self.description,
                    one_line(&e)
                ))
            })
    }

    /// Streams `body` into the object `key`, hashing it on the way. The object becomes visible
    /// only when every byte was written; on any error nothing is left behind.
    pub async fn put_stream<S, E>(&self, key: &str, body: S) -> Result<StoredObject, Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let path = Path::from(key);
        let upload = self
            .store
            .put_multipart(&path)
            .await
            .map_err(storage_error)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut body = body;
        let result: Result<(), Error> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk
                    .map_err(|e| Error::invalid(format!("the upload was interrupted: {e}")))?;
                hasher.update(&chunk);
                size += chunk.len() as u64;
                writer.wait_for_capacity(2).await.map_err(storage_error)?;
                writer.put(chunk);
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.finish().await.map_err(storage_error)?;
        Ok(StoredObject {
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }

    /// Opens an object for reading, optionally a byte range of it.
    pub async fn get(
        &self,
        key: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<ObjectReader, Error> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let got = self
            .store
            .get_opts(&Path::from(key), options)
            .await
            .map_err(storage_error)?;
        let total_size = got.meta.size;
        let range = got.range.clone();
        let stream = got.into_stream().map_err(storage_error).boxed();
        Ok(ObjectReader {
            total_size,
            range,
            stream,
        })
    }

    /// The size of an object, or `None` when it does not exist.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, Error> {
        match self.store.head(&Path::from(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(storage_error(e)),
        }
    }

    /// Deletes an object; deleting a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_error(e)),
        }
    }

    /// Lists every object key under a prefix.
    pub async fn list_keys(&self, prefix: Option<&str>) -> Result<Vec<String>, Error> {
        let prefix = prefix.map(Path::from);
        self.store
            .list(prefix.as_ref())
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .map_err(storage_error)
    }
}

fn build_s3(s3: &S3Config) -> Result<AmazonS3, Error> {
    if s3.bucket.is_empty() {
        return Err(Error::invalid(
            "S3_BUCKET_NAME is empty: name the bucket that holds the archives",
        ));
    }
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&s3.bucket)
        .with_region(if s3.region.is_empty() {
            "us-east-1"
        } else {
            &s3.region
        })
        .with_access_key_id(&s3.access_key)
        .with_secret_access_key(&s3.secret_key)
        .with_virtual_hosted_style_request(false)
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout(Duration::from_secs(300))
                .with_allow_http(!s3.secure),
        )
        .with_retry(RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(20),
            ..Default::default()
        });
    if let Some(endpoint) = s3.endpoint_url() {
        builder = builder.with_endpoint(endpoint);
    }
    builder
        .build()
        .map_err(|e| Error::invalid(format!("invalid S3 settings: {}", one_line(&e))))
}

/// Maps an object store error to the domain error.
pub fn storage_error(e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { path, .. } => {
            Error::NotFound(format!("object {path:?} not found in storage"))
        }
        other => Error::Internal(format!("object storage error: {}", one_line(&other))),
    }
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().replace('\n', " ")
}
