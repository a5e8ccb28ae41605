//! Object storage for bento and model archives: a local directory (embedded default) or an
//! S3-compatible bucket (production), behind one interface built on the `object_store` crate.
//!
//! Writes are streamed in parts and become visible atomically when complete: the local backend
//! writes a staging file and renames it, S3 completes a multipart upload. Both backends answer
//! "presign" (S3 with SigV4, the local one with the server's own signed URLs), and both can list
//! what a crash left behind (see [`sweep`]).

mod follow;
mod keys;
mod local;
mod presign;
mod sweep;

pub use keys::{checked_copies, new_checked_copy, ArchiveKey};

pub use presign::{LocalPresigned, PresignOp, LOCAL_PATH as LOCAL_PRESIGN_PATH};
pub use sweep::IncompleteUpload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, RetryConfig, WriteMultipart};
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
    s3_config: Option<Arc<S3Config>>,
    presigner: Option<Arc<presign::S3Presigner>>,
    local_root: Option<PathBuf>,
    /// The local backend's file system, read directly for downloads (see [`LOCAL_READ_SIZE`]).
    local_fs: Option<Arc<LocalFileSystem>>,
    local_signer: Option<Arc<presign::LocalSigner>>,
    description: String,
}

/// Where the parts of a multipart upload wait on the local backend.
const LOCAL_UPLOADS: &str = ".uploads";

/// The largest object S3 takes in one PUT.
const S3_SINGLE_PUT_MAX: u64 = 5 << 30;

/// How long the server's own PUT URL of a streamed write is valid (an upload of 5 GiB at
/// 2 MiB/s still fits).
const S3_PUT_URL_TTL: Duration = Duration::from_secs(3 * 3600);

/// How long a streamed PUT may wait for S3 to take the next bytes, and for its answer.
const S3_STALL: Duration = Duration::from_secs(60);
const S3_ANSWER: Duration = Duration::from_secs(300);

/// Size of the parts of a streamed write (S3's minimum part size is 5 MiB).
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Size of the reads of a download on the local backend. `object_store`'s local reader reads
/// 8 KiB at a time, each read a trip to the blocking thread pool; 512 KiB reads, two ahead of
/// the one being sent, keep a download at the speed of the socket with 1.5 MiB per download.
pub const LOCAL_READ_SIZE: usize = 512 * 1024;

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
                let fs = Arc::new(fs);
                ObjectStorage {
                    store: fs.clone(),
                    s3: None,
                    s3_config: None,
                    presigner: None,
                    local_root: Some(root.clone()),
                    local_fs: Some(fs),
                    local_signer: None,
                    description: format!("directory {}", root.display()),
                }
            }
            ObjectStorageConfig::S3(s3) => {
                let s3_store = Arc::new(build_s3(s3)?);
                let endpoint = s3
                    .endpoint_url()
                    .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", s3.region));
                let endpoint = endpoint.parse().map_err(|e| {
                    Error::invalid(format!("invalid S3_ENDPOINT {endpoint:?}: {e}"))
                })?;
                let bucket = rusty_s3::Bucket::new(
                    endpoint,
                    rusty_s3::UrlStyle::Path,
                    s3.bucket.clone(),
                    // The region object_store signs with when none is set.
                    if s3.region.is_empty() {
                        "us-east-1".to_string()
                    } else {
                        s3.region.clone()
                    },
                )
                .map_err(|e| Error::invalid(format!("invalid S3 settings: {e}")))?;
                let presigner = presign::S3Presigner {
                    bucket,
                    credentials: rusty_s3::Credentials::new(
                        s3.access_key.clone(),
                        s3.secret_key.clone(),
                    ),
                };
                ObjectStorage {
                    store: s3_store.clone(),
                    s3: Some(s3_store),
                    s3_config: Some(Arc::new(s3.clone())),
                    presigner: Some(Arc::new(presigner)),
                    local_root: None,
                    local_fs: None,
                    local_signer: None,
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
        if let Some(root) = &self.local_root {
            // A listing of a missing or replaced directory may still succeed: ask the file system.
            if !tokio::fs::metadata(root).await.is_ok_and(|m| m.is_dir()) {
                return Err(Error::Unavailable(format!(
                    "object storage ({}) is not usable: it is not a directory",
                    self.description
                )));
            }
        }
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
        let mut hasher = yatai_archive::Sha256Meter::default();
        let size = self
            .write_observed(key, body, |chunk| hasher.update(chunk))
            .await?;
        Ok(StoredObject {
            size,
            sha256: hasher.finish_hex(),
        })
    }

    /// Streams `body` into the object `key` without hashing it (the caller checks the bytes
    /// itself, e.g. while inspecting the archive); returns its size. Visible only when whole.
    /// With its length `declared`, S3 gets one streamed PUT rather than a multipart upload.
    pub async fn write_stream<S, E>(
        &self,
        key: &str,
        declared: Option<u64>,
        body: S,
    ) -> Result<u64, Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        match (declared, &self.presigner) {
            (Some(len), Some(presigner)) if len <= S3_SINGLE_PUT_MAX => {
                let url = presigner.url(key, &PresignOp::Put, S3_PUT_URL_TTL);
                put_s3_streamed(&url, len, body).await
            }
            _ => self.write_observed(key, body, |_| {}).await,
        }
    }

    /// Streams `body` into `key`, showing every chunk to `seen` on the way.
    async fn write_observed<S, E>(
        &self,
        key: &str,
        body: S,
        mut seen: impl FnMut(&[u8]),
    ) -> Result<u64, Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        if let Some(fs) = &self.local_fs {
            return Ok(local::write(fs, key, body, None, seen, || async { Ok(()) })
                .await?
                .0);
        }
        let path = Path::from(key);
        let upload = self.store.put_multipart(&path).await.map_err(write_error)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut size = 0u64;
        let mut body = body;
        let result: Result<(), Error> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk
                    .map_err(|e| Error::invalid(format!("the upload was interrupted: {e}")))?;
                seen(&chunk);
                size += chunk.len() as u64;
                writer.wait_for_capacity(2).await.map_err(write_error)?;
                writer.put(chunk);
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.finish().await.map_err(write_error)?;
        Ok(size)
    }

    /// Opens an object for reading, optionally a byte range of it.
    pub async fn get(
        &self,
        key: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<ObjectReader, Error> {
        if let Some(fs) = &self.local_fs {
            return local::get(fs, key, range).await;
        }
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

    /// Whether objects live in a local directory (the server then signs its own transfer URLs).
    pub fn is_local(&self) -> bool {
        self.s3.is_none()
    }

    /// Lets the local backend sign URLs to this server at `base_url` (its public URL), with a
    /// key kept in `db` so that every replica accepts every other's URLs. S3 ignores it.
    pub fn with_local_presigning(mut self, db: crate::Db, base_url: &str) -> Self {
        if self.is_local() {
            self.local_signer = Some(presign::LocalSigner::new(db, base_url.to_string()));
        }
        self
    }

    /// A URL that allows `op` on `key` for `ttl`, to hand to a client.
    pub async fn presign(&self, key: &str, op: &PresignOp, ttl: Duration) -> Result<String, Error> {
        if let Some(p) = &self.presigner {
            return Ok(p.url(key, op, ttl));
        }
        match &self.local_signer {
            Some(signer) => signer.url(key, op, ttl).await,
            None => Err(Error::Internal(
                "presigned URLs of the local backend need with_local_presigning".into(),
            )),
        }
    }

    /// Checks a local presigned URL (its signature and expiry) for the operation named `op`.
    pub async fn verify_local_presigned(&self, op: &str, p: &LocalPresigned) -> Result<(), Error> {
        match &self.local_signer {
            Some(signer) => signer.verify(op, p).await,
            // No URL of this server is valid then: refused like a forged one.
            None => Err(Error::Forbidden(
                "this URL was not signed by this server: its archives are in S3, and transfer URLs point there".into(),
            )),
        }
    }

    /// Moves an object to a new key (a rename on the local backend, a copy and a delete on S3).
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), Error> {
        self.store
            .rename(&Path::from(from), &Path::from(to))
            .await
            .map_err(storage_error)?;
        if self.local_fs.is_some() {
            // The file is the same (a rename keeps its inode and time): so is its kept hash.
            follow::rename_ready(from, to);
        }
        Ok(())
    }

    /// Staging files of interrupted local writes, older than `older_than` (keys relative to the
    /// root); none on S3.
    pub fn stale_staging_files(&self, older_than: Duration) -> Vec<PathBuf> {
        match &self.local_root {
            Some(root) => sweep::local_staging_files(root, older_than),
            None => Vec::new(),
        }
    }

    /// The incomplete multipart uploads of the bucket; none on the local backend (its parts are
    /// listed with [`Self::local_multipart_ids`]).
    pub async fn incomplete_multipart_uploads(&self) -> Result<Vec<IncompleteUpload>, Error> {
        match (&self.s3_config, &self.presigner) {
            (Some(config), Some(p)) => {
                sweep::s3_incomplete_uploads(config, &p.bucket, &p.credentials).await
            }
            _ => Ok(Vec::new()),
        }
    }

    /// The ids of the local multipart uploads that have parts waiting.
    pub async fn local_multipart_ids(&self) -> Result<Vec<String>, Error> {
        if !self.is_local() {
            return Ok(Vec::new());
        }
        let mut ids: Vec<String> = self
            .list_keys(Some(LOCAL_UPLOADS))
            .await?
            .into_iter()
            .filter_map(|k| k.split('/').nth(1).map(str::to_string))
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Starts a multipart upload to `key`; returns its id.
    pub async fn create_multipart(&self, key: &str) -> Result<String, Error> {
        use object_store::multipart::MultipartStore;
        match &self.s3 {
            Some(s3) => s3
                .create_multipart(&Path::from(key))
                .await
                .map_err(storage_error),
            None => Ok(crate::new_uid()),
        }
    }

    /// Stores one part of a local multipart upload, of `declared` bytes when the client said;
    /// returns its ETag (see `local::put_part`).
    pub async fn put_local_part<S, E>(
        &self,
        upload_id: &str,
        part_number: u16,
        declared: Option<u64>,
        body: S,
    ) -> Result<String, Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let fs = self.local_fs.as_ref().ok_or_else(|| {
            Error::Internal("parts are stored by the server only on the local backend".into())
        })?;
        local::put_part(fs, upload_id, part_number, declared, body).await
    }

    /// Streams `body` into `key` and returns an ETag for it, quoted as S3 does. The ETag is a
    /// CRC-32 and the size, not a digest: an uploaded archive is hashed once, when it is checked.
    ///
    /// On the local backend (the server's own presigned PUT URL) the bytes are also hashed with
    /// SHA-256 as they are written, and the hash is kept for the archive's check at finish (see
    /// [`Self::inspect_archive`]), which then only walks the archive's headers.
    ///
    /// `gate` is awaited when every byte is written, before the object is put in place (an
    /// error leaves nothing, what it returns is held until the object is in place): the caller
    /// checks there that the upload may still change the object.
    pub async fn put_with_etag<S, E, G, F>(
        &self,
        key: &str,
        body: S,
        gate: impl FnOnce() -> F,
    ) -> Result<String, Error>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
        F: std::future::Future<Output = Result<G, Error>>,
    {
        let mut crc = crc32fast::Hasher::new();
        let Some(fs) = &self.local_fs else {
            return Err(Error::Internal(
                "the server takes PUTs of objects only on the local backend".into(),
            ));
        };
        // Hashed by the batch writes, in order, on the blocking pool (no thread is held
        // between batches).
        let hash = Arc::new(std::sync::Mutex::new(yatai_archive::Sha256Meter::default()));
        let (size, file) =
            local::write(fs, key, body, Some(hash.clone()), |c| crc.update(c), gate).await?;
        if let Ok(hash) = Arc::try_unwrap(hash) {
            follow::keep_whole(
                key,
                hash.into_inner().unwrap_or_else(|e| e.into_inner()),
                file,
                size,
            );
        }
        Ok(local::etag(crc, size))
    }

    /// Completes a multipart upload from its parts `(part_number, etag)`; the object appears at
    /// `key` only now. Parts are put in part-number order.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        mut parts: Vec<(u16, String)>,
    ) -> Result<(), Error> {
        use object_store::multipart::{MultipartStore, PartId};
        parts.sort_by_key(|(n, _)| *n);
        if parts.is_empty() {
            return Err(Error::invalid(
                "complete_multipart_upload needs at least one part",
            ));
        }
        if parts.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(Error::invalid("a part number appears twice"));
        }
        match &self.s3 {
            Some(s3) => {
                let ids = parts
                    .into_iter()
                    .map(|(_, etag)| PartId { content_id: etag })
                    .collect();
                s3.complete_multipart(&Path::from(key), &upload_id.to_string(), ids)
                    .await
                    .map_err(|e| {
                        // S3's answers about the parts themselves are the client's mistakes.
                        let text = one_line(&e);
                        match ["InvalidPartOrder", "InvalidPart", "NoSuchUpload", "EntityTooSmall"]
                            .iter()
                            .find(|code| text.contains(*code))
                        {
                            Some(code) => Error::invalid(format!(
                                "the parts do not make up this upload (S3 says {code}): upload every part, then list each part number with the ETag its upload answered"
                            )),
                            None => storage_error(e),
                        }
                    })?;
            }
            None => {
                let fs = self.local_fs.as_ref().ok_or_else(|| {
                    Error::Internal("a local multipart upload needs the local backend".into())
                })?;
                local::complete(fs, key, upload_id, &parts).await?;
                self.abort_multipart(key, upload_id).await?;
            }
        }
        Ok(())
    }

    /// Checks the archive stored under `key`: its size, SHA-256 and tar walk (see
    /// `yatai_archive`). On the local backend, the bytes its upload hashed as they arrived are
    /// not hashed again, and an uncompressed tar's members are not read by the walk (only
    /// what was not hashed yet is read); on S3, the object is read once, as a stream.
    pub async fn inspect_archive(
        &self,
        key: &str,
    ) -> Result<Result<yatai_archive::ArchiveFacts, String>, Error> {
        match &self.local_fs {
            Some(fs) => local::inspect(fs, key).await,
            None => yatai_archive::inspect_stream(self.get(key, None).await?.stream).await,
        }
    }

    /// The SHA-256 of the first bytes of the object `key`, when they were hashed while its
    /// upload arrived on the local backend and are certainly this object's (see `follow.rs`);
    /// given once. [`Self::inspect_archive`] starts from it; this shows it (for tests and
    /// diagnostics).
    pub async fn kept_hash(&self, key: &str) -> Result<Option<yatai_archive::Sha256Meter>, Error> {
        match &self.local_fs {
            Some(fs) => local::kept_hash(fs, key).await,
            None => Ok(None),
        }
    }

    /// Bytes of the local multipart upload `upload_id` hashed so far as its parts arrive (see
    /// [`Self::kept_hash`]); `None` when it is not followed or what was hashed no longer
    /// counts (a part sent again). For tests and diagnostics.
    pub fn hashed_so_far(&self, upload_id: &str) -> Option<u64> {
        follow::hashed_so_far(upload_id)
    }

    /// Abandons a multipart upload and its parts (`key` is not needed on the local backend).
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), Error> {
        use object_store::multipart::MultipartStore;
        match &self.s3 {
            Some(s3) => match s3
                .abort_multipart(&Path::from(key), &upload_id.to_string())
                .await
            {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(storage_error(e)),
            },
            None => {
                // A hash of its parts still running stops when it next looks (it is not waited for).
                follow::forget(upload_id);
                for part in self
                    .list_keys(Some(&format!("{LOCAL_UPLOADS}/{upload_id}")))
                    .await?
                {
                    self.delete(&part).await?;
                }
                Ok(())
            }
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

/// Streams `body`, of `len` bytes, to S3 in one PUT of a URL the server signed for itself: no
/// part is buffered (a multipart write holds 8 MiB parts, two in flight), and S3 makes the
/// object visible only when the whole body arrived. A body that breaks off, or is longer or
/// shorter than `len`, aborts the request, and nothing is stored.
async fn put_s3_streamed<S, E>(url: &str, len: u64, mut body: S) -> Result<u64, Error>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let request = s3_http()
        .put(url)
        .header(reqwest::header::CONTENT_LENGTH, len)
        .body(reqwest::Body::wrap_stream(rx))
        .send();
    let sending = tokio::spawn(request);
    let mut size = 0u64;
    let fed: Result<(), Error> = async {
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| Error::invalid(format!("the upload was interrupted: {e}")))?;
            size += chunk.len() as u64;
            if size > len {
                return Err(Error::invalid(format!(
                    "the upload is longer than the {len} bytes it declared"
                )));
            }
            match tokio::time::timeout(S3_STALL, futures::SinkExt::send(&mut tx, Ok(chunk))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Ok(()), // the request ended early: its answer says why
                Err(_) => {
                    return Err(Error::Unavailable(format!(
                        "object storage took no bytes for {} s",
                        S3_STALL.as_secs()
                    )))
                }
            }
        }
        if size < len {
            return Err(Error::invalid(format!(
                "the upload ended after {size} of the {len} bytes it declared"
            )));
        }
        Ok(())
    }
    .await;
    if let Err(e) = fed {
        // An error in the body aborts the PUT (the connection closes before the body's end):
        // S3 stores nothing of it.
        let _ = tx.try_send(Err(std::io::Error::other("aborted")));
        drop(tx);
        sending.abort();
        return Err(e);
    }
    drop(tx);
    let answer = match tokio::time::timeout(S3_ANSWER, sending).await {
        Err(_) => {
            return Err(Error::Unavailable(format!(
                "object storage did not answer a PUT within {} s",
                S3_ANSWER.as_secs()
            )))
        }
        Ok(joined) => joined.map_err(|e| Error::Internal(format!("object storage error: {e}")))?,
    }
    // No answer at all (refused, reset, cut off): the storage is unreachable, worth a retry.
    // The URL is left out: it is a signed one.
    .map_err(|e| {
        Error::Unavailable(format!(
            "object storage is unreachable: {}",
            one_line(&e.without_url())
        ))
    })?;
    if !answer.status().is_success() {
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        return Err(Error::Internal(format!(
            "object storage error: PUT answered {status}: {}",
            one_line(&text.chars().take(300).collect::<String>())
        )));
    }
    Ok(size)
}

/// The HTTP client of the server's own S3 requests (streamed PUTs), shared by every upload.
fn s3_http() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default()
    })
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
                // An endpoint written with http:// is plain HTTP whatever S3_SECURE says
                // (S3_SECURE only picks the scheme of an endpoint given without one).
                .with_allow_http(s3.endpoint_url().is_some_and(|u| u.starts_with("http://"))),
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

/// Maps an object store error to the domain error (the HTTP layer logs the detail of a 500 and
/// shows the client a short message).
pub fn storage_error(e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { path, .. } => {
            tracing::warn!(key = %path, "object not found in storage");
            Error::NotFound("the archive is missing from object storage".into())
        }
        other => fault(other),
    }
}

/// Maps an error of a write: "not found" there means the bucket or directory is gone, a fault of
/// the storage rather than a missing archive.
fn write_error(e: object_store::Error) -> Error {
    fault(e)
}

/// A fault of object storage: unreachable (503, worth a retry) or anything else (500).
fn fault(e: object_store::Error) -> Error {
    if is_unreachable(&e) {
        return Error::Unavailable(format!("object storage is unreachable: {}", one_line(&e)));
    }
    Error::Internal(format!("object storage error: {}", one_line(&e)))
}

/// Whether an error comes from not reaching the storage at all (refused or reset connections,
/// timeouts), rather than from an answer.
fn is_unreachable(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cause {
        if let Some(r) = err.downcast_ref::<reqwest::Error>() {
            if r.is_connect() || r.is_timeout() {
                return true;
            }
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            if matches!(
                io.kind(),
                K::ConnectionRefused
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::TimedOut
                    | K::BrokenPipe
                    | K::UnexpectedEof
            ) {
                return true;
            }
        }
        cause = err.source();
    }
    false
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().replace('\n', " ")
}
