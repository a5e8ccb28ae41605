//! The local backend's files, read and written directly rather than through `object_store`:
//! downloads in large positioned reads with read-ahead, writes in batches without 8 MiB part
//! buffers, and multipart uploads whose parts land where they belong in the object, so that
//! completing one is a rename rather than a copy.
//!
//! A local multipart upload lives in `.uploads/ID/`:
//!
//! | file | what |
//! |---|---|
//! | `data` | the parts written in place, part `n` at `(n - 1) * part size` |
//! | `part-size` | the part size, fixed by the first part that declared its length |
//! | `NNNNN` | part `n` in a file of its own, when it does not fit `data`'s layout |
//! | `NNNNN.part` | part `n`'s record, written after its bytes: `data` or `file`, length, ETag |
//! | `completed` | the upload was completed: no part may be written any more |
//! | `writer.MARK` | one empty file per process that wrote into `data` (see `follow.rs`) |
//!
//! Clients cut an upload into parts of one size and a shorter last part (BentoML, boto3, the AWS
//! CLI), so every part fits `data`; a part of another size, or one sent without a length, is
//! kept apart and copied in at completion.

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use yatai_archive::Sha256Meter;
use yatai_domain::Error;

use super::{follow, storage_error, ObjectReader, LOCAL_READ_SIZE, LOCAL_UPLOADS};

/// Chunks of a download read ahead of the one being sent.
const READ_AHEAD: usize = 2;

/// The largest part S3 takes, and so the largest this backend takes.
const MAX_PART_SIZE: u64 = 5 << 30;

/// Bytes gathered before a write goes to the blocking pool.
const WRITE_BATCH: usize = 1024 * 1024;

/// Opens a file for reading, in reads of [`LOCAL_READ_SIZE`]: the same answers as
/// `object_store`'s local `get` (a missing object is "not found", a range is cut at the end of
/// the object, an empty one or one that starts past the end is refused), and a file that turns
/// out shorter than its size ends the stream with an error rather than with fewer bytes.
pub(super) async fn get(
    fs: &LocalFileSystem,
    key: &str,
    range: Option<std::ops::Range<u64>>,
) -> Result<ObjectReader, Error> {
    let (file, meta) = open_file(fs, key).await?;
    let total_size = meta.len();
    let range = match range {
        None => 0..total_size,
        Some(r) if r.start >= r.end || r.start >= total_size => {
            return Err(Error::Internal(format!(
                "object storage error: range {}..{} of {key} ({total_size} bytes) is not satisfiable",
                r.start, r.end
            )))
        }
        Some(r) => r.start..r.end.min(total_size),
    };
    // Positioned reads of a shared file on the blocking pool, READ_AHEAD of them in flight:
    // the next chunk is read while the socket sends this one (a read at a time, as
    // `object_store` and `tokio::fs` do, leaves the disk and the socket waiting on each other).
    let file = Arc::new(file.into_std().await);
    let end = range.end;
    let owned_key: Arc<str> = key.into();
    let stream = futures::stream::iter((range.start..end).step_by(LOCAL_READ_SIZE))
        .map(move |offset| {
            let (file, key) = (file.clone(), owned_key.clone());
            let want = (end - offset).min(LOCAL_READ_SIZE as u64) as usize;
            async move {
                tokio::task::spawn_blocking(move || read_chunk(&file, offset, want, &key))
                    .await
                    .map_err(|e| Error::Internal(format!("object storage error: {e}")))?
            }
        })
        .buffered(READ_AHEAD)
        .boxed();
    Ok(ObjectReader {
        total_size,
        range,
        stream,
    })
}

/// The hash of the first bytes of the object `key` that its upload kept, if that was kept for
/// the very file now under `key` (see `follow.rs`); it is given once.
pub(super) async fn kept_hash(
    fs: &LocalFileSystem,
    key: &str,
) -> Result<Option<Sha256Meter>, Error> {
    let (_, meta) = open_file(fs, key).await?;
    Ok(follow::take_prefix(key, &meta))
}

/// Checks the archive `key` (see `yatai_archive::inspect_file`), from the hash of its first
/// bytes that its upload kept for this very file, if any: an uncompressed tar is then read
/// only past those bytes, and walked by its headers.
pub(super) async fn inspect(
    fs: &LocalFileSystem,
    key: &str,
) -> Result<Result<yatai_archive::ArchiveFacts, String>, Error> {
    let (file, meta) = open_file(fs, key).await?;
    let prefix = follow::take_prefix(key, &meta);
    let file = file.into_std().await;
    tokio::task::spawn_blocking(move || yatai_archive::inspect_file(&file, meta.len(), prefix))
        .await
        .map_err(|e| Error::Internal(format!("archive check failed: {e}")))?
}

/// Opens the object `key` (a file), with its metadata.
async fn open_file(
    fs: &LocalFileSystem,
    key: &str,
) -> Result<(tokio::fs::File, std::fs::Metadata), Error> {
    let path = fs
        .path_to_filesystem(&Path::from(key))
        .map_err(storage_error)?;
    let missing = || {
        tracing::warn!(key, "object not found in storage");
        Error::NotFound("the archive is missing from object storage".into())
    };
    let read_error =
        |e: std::io::Error| Error::Internal(format!("object storage error: reading {key}: {e}"));
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => return Err(read_error(e)),
    };
    let meta = file.metadata().await.map_err(read_error)?;
    if !meta.is_file() {
        return Err(missing());
    }
    Ok((file, meta))
}

/// Reads `want` bytes at `offset`; a file that ends sooner is an error (it shrank under us).
fn read_chunk(file: &std::fs::File, offset: u64, want: usize, key: &str) -> Result<Bytes, Error> {
    let mut chunk = ReadBuffer::take();
    let buf = &mut chunk.buf[..want];
    let mut filled = 0;
    while filled < want {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => {
                return Err(Error::Internal(format!(
                    "object storage error: {key} ended {} bytes before its size",
                    want - filled
                )))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::Internal(format!(
                    "object storage error: reading {key}: {e}"
                )))
            }
        }
    }
    chunk.len = want;
    Ok(Bytes::from_owner(chunk))
}

/// Read buffers of downloads, kept for the next chunk when the socket is done with them. A
/// fresh 512 KiB allocation costs 128 page faults (the allocator hands big blocks back to the
/// kernel when they are freed); without reuse they took a sixth of a download's CPU.
static READ_BUFFERS: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

/// How many idle read buffers are kept (the rest are freed): 16 MiB at most.
const IDLE_READ_BUFFERS: usize = (16 << 20) / LOCAL_READ_SIZE;

/// A [`LOCAL_READ_SIZE`] buffer that goes back to [`READ_BUFFERS`] when dropped; `len` bytes of
/// it are the chunk.
struct ReadBuffer {
    buf: Vec<u8>,
    len: usize,
}

impl ReadBuffer {
    fn take() -> ReadBuffer {
        let reused = READ_BUFFERS.lock().ok().and_then(|mut idle| idle.pop());
        ReadBuffer {
            buf: reused.unwrap_or_else(|| vec![0u8; LOCAL_READ_SIZE]),
            len: 0,
        }
    }
}

impl AsRef<[u8]> for ReadBuffer {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for ReadBuffer {
    fn drop(&mut self) {
        if let Ok(mut idle) = READ_BUFFERS.lock() {
            if idle.len() < IDLE_READ_BUFFERS {
                idle.push(std::mem::take(&mut self.buf));
            }
        }
    }
}

/// Streams `body` into the object `key`: a staging file (`NAME#N`, swept after a crash)
/// renamed to its key when whole, removed on any error. Returns the size and which file it is.
/// With `hash`, the bytes are hashed into it as they are written (on the blocking pool).
/// `gate` is awaited once every byte is written, before the file is put in place: an error
/// leaves nothing, and what it returns is held until the file is in place.
pub(super) async fn write<S, E, G, F>(
    fs: &LocalFileSystem,
    key: &str,
    body: S,
    hash: Option<Arc<std::sync::Mutex<Sha256Meter>>>,
    seen: impl FnMut(&[u8]),
    gate: impl FnOnce() -> F,
) -> Result<(u64, follow::FileId), Error>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
    F: std::future::Future<Output = Result<G, Error>>,
{
    let target = fs
        .path_to_filesystem(&Path::from(key))
        .map_err(storage_error)?;
    let staging = staging_of(&target);
    let file = {
        let (target, staging) = (target.clone(), staging.clone());
        blocking(key, move || {
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&staging)
        })
        .await?
    };
    let duties = BatchDuties { part: None, hash };
    let written = match stream_to_file(file, 0, None, duties, key, body, seen).await {
        Ok(size) => match gate().await {
            Ok(held) => {
                let (staging, target) = (staging.clone(), target.clone());
                let placed = blocking(key, move || {
                    // Read before the rename: once in place, the file may be replaced by another.
                    let id = follow::FileId::of(&std::fs::metadata(&staging)?);
                    std::fs::rename(staging, target)?;
                    Ok((size, id))
                })
                .await;
                drop(held);
                placed
            }
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    if written.is_err() {
        let _ = tokio::fs::remove_file(&staging).await;
    }
    written
}

/// What the write of a batch also does once it landed: tell a part's progress to the follower
/// of the upload's hash (and hold the part's claim meanwhile), hash the bytes in order.
#[derive(Clone)]
struct BatchDuties {
    part: Option<Arc<PartWrite>>,
    hash: Option<Arc<std::sync::Mutex<Sha256Meter>>>,
}

/// Writes `body` into `file` from `offset` on, one batch of [`WRITE_BATCH`] on the blocking
/// pool while the next arrives: an upload holds about 2 MiB (`object_store`'s multipart writer
/// buffers 8 MiB parts, two in flight, for each upload). Returns the bytes written.
///
/// Each batch's write holds `duties.part` (the part's claim) until it has landed, also when
/// the caller is dropped midway (a client that hangs up): a part sent again cannot start
/// writing its bytes while a batch of the abandoned request may still land on them. Each batch
/// that landed is reported to the follower of the upload's hash (`follow.rs`).
async fn stream_to_file<S, E>(
    file: std::fs::File,
    offset: u64,
    limit: Option<u64>,
    duties: BatchDuties,
    key: &str,
    mut body: S,
    mut seen: impl FnMut(&[u8]),
) -> Result<u64, Error>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let file = Arc::new(file);
    let write_batch = |at: u64, batch: Vec<Bytes>| {
        let file = file.clone();
        let key = key.to_string();
        let BatchDuties { part, hash } = duties.clone();
        async move {
            let end = blocking(&key, move || {
                let mut at = at;
                // Batches are written one after the other, so the hash sees them in order,
                // here, while the next batch is being received.
                let mut hash = hash
                    .as_ref()
                    .map(|h| h.lock().unwrap_or_else(|e| e.into_inner()));
                for chunk in &batch {
                    file.write_all_at(chunk, at)?;
                    if let Some(h) = hash.as_mut() {
                        h.update(chunk);
                    }
                    at += chunk.len() as u64;
                }
                Ok(at)
            })
            .await?;
            if let Some(p) = part {
                p.wrote(end);
            }
            Ok(())
        }
    };
    let mut in_flight: Option<tokio::task::JoinHandle<Result<(), Error>>> = None;
    let (mut batch, mut batched, mut size) = (Vec::new(), 0usize, 0u64);
    let mut batch_start = offset;
    let streamed: Result<(), Error> = async {
        loop {
            let chunk = body.next().await;
            let last = chunk.is_none();
            if let Some(chunk) = chunk {
                let chunk = chunk
                    .map_err(|e| Error::invalid(format!("the upload was interrupted: {e}")))?;
                if limit.is_some_and(|limit| size + chunk.len() as u64 > limit) {
                    // Past its end a part would write into the next part's bytes.
                    return Err(Error::invalid(format!(
                        "the body is longer than the {} bytes it declared",
                        limit.unwrap_or_default()
                    )));
                }
                seen(&chunk);
                size += chunk.len() as u64;
                batched += chunk.len();
                batch.push(chunk);
            }
            if batched >= WRITE_BATCH || (last && !batch.is_empty()) {
                if let Some(writing) = in_flight.take() {
                    joined(writing.await)?;
                }
                let at = batch_start;
                batch_start += batched as u64;
                in_flight = Some(tokio::spawn(write_batch(at, std::mem::take(&mut batch))));
                batched = 0;
            }
            if last {
                return Ok(());
            }
        }
    }
    .await;
    // Also after an error: no write of this stream may land after it returned (a part sent
    // again writes the same bytes of `data`).
    if let Some(writing) = in_flight.take() {
        let written = joined(writing.await);
        if streamed.is_ok() {
            written?;
        }
    }
    streamed.map(|()| size)
}

/// Stores part `n` of the multipart upload `upload_id`: in place in `data` when its declared
/// length fits the upload's part size, else in a file of its own. Returns its ETag, a CRC-32
/// and the size (not a digest: the archive is hashed once, when it is checked at finish).
///
/// A part written in place holds a shared lock on `data` while it writes; completing takes it
/// exclusively and marks the upload completed, so that no part write reaches `data` once it
/// may have become the served archive.
pub(super) async fn put_part<S, E>(
    fs: &LocalFileSystem,
    upload_id: &str,
    n: u16,
    declared: Option<u64>,
    body: S,
) -> Result<String, Error>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    if n == 0 {
        return Err(Error::invalid("part numbers start at 1"));
    }
    if declared.is_some_and(|len| len > MAX_PART_SIZE) {
        return Err(Error::invalid(format!(
            "part {n} declares more than {MAX_PART_SIZE} bytes: a part is at most 5 GiB, as on S3"
        )));
    }
    let dir = upload_dir(fs, upload_id)?;
    let key = format!("{LOCAL_UPLOADS}/{upload_id}/{n:05}");
    // Two requests writing one part in place would mix their bytes in `data`. The claim lasts
    // until the part's record is written, and past it while a batch of a dropped request may
    // still land.
    let claim = Arc::new(PartGuard::claim(upload_id, n)?);
    enum Place {
        /// `data`, the part's offset in it, the upload's part size.
        InData(std::fs::File, u64, u64),
        Apart,
    }
    let place = {
        let dir = dir.clone();
        blocking(&key, move || {
            std::fs::create_dir_all(&dir)?;
            if dir.join(COMPLETED).exists() {
                return Ok(None);
            }
            // Whatever an earlier upload of this part left is no longer it.
            remove_if_there(&marker_of(&dir, n))?;
            remove_if_there(&dir.join(format!("{n:05}")))?;
            let Some(len) = declared else {
                return Ok(Some(Place::Apart));
            };
            let part_size = fix_part_size(&dir, len)?;
            let offset = (u64::from(n) - 1).checked_mul(part_size);
            let Some(offset) = offset.filter(|_| len <= part_size) else {
                return Ok(Some(Place::Apart));
            };
            let data = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(dir.join("data"))?;
            data.lock_shared()?;
            // Completed while we opened it: what we opened may be the served archive by now
            // (renamed away from `data`, whose records may already be gone).
            let still_data = match (std::fs::metadata(dir.join("data")), data.metadata()) {
                (Ok(named), Ok(open)) => named.ino() == open.ino() && named.dev() == open.dev(),
                _ => false,
            };
            if !still_data || dir.join(COMPLETED).exists() {
                return Ok(None);
            }
            follow::mark_writer(&dir)?;
            Ok(Some(Place::InData(data, offset, part_size)))
        })
        .await?
    };
    let Some(place) = place else {
        return Err(Error::Conflict(
            "this multipart upload was completed: it takes no more parts".into(),
        ));
    };
    // Before the first byte lands (in `data` or apart): a hash of the part's earlier bytes no
    // longer counts.
    let part_size = match &place {
        Place::InData(_, _, part_size) => Some(*part_size),
        _ => None,
    };
    let generation = follow::begin(upload_id, &dir, n, part_size);
    if generation.is_some() && part_size.is_some() {
        // Far ahead of the upload's hash: wait for it to come closer (see `follow::pace`).
        follow::pace(upload_id, n).await;
    }
    let mut crc = crc32fast::Hasher::new();
    let (size, kind) = match place {
        Place::InData(data, offset, _) => {
            let writing = Arc::new(PartWrite {
                _claim: claim.clone(),
                upload_id: upload_id.to_string(),
                n,
                generation,
                start: offset,
            });
            (
                stream_to_file(
                    data,
                    offset,
                    declared,
                    BatchDuties {
                        part: Some(writing),
                        hash: None,
                    },
                    &key,
                    body,
                    |c| crc.update(c),
                )
                .await?,
                "data",
            )
        }
        Place::Apart => (
            write(fs, &key, body, None, |c| crc.update(c), || async { Ok(()) })
                .await?
                .0,
            "file",
        ),
    };
    if declared.is_some_and(|d| d != size) {
        if kind == "file" {
            let _ = tokio::fs::remove_file(dir.join(format!("{n:05}"))).await;
        }
        return Err(Error::invalid(format!(
            "part {n} has {size} bytes, not the {} its Content-Length declared",
            declared.unwrap_or_default()
        )));
    }
    let etag = etag(crc, size);
    let marker = marker_of(&dir, n);
    let record = format!("{kind} {size} {etag}");
    blocking(&key, move || write_atomically(&marker, &record)).await?;
    if let Some(generation) = generation.filter(|_| kind == "data") {
        follow::done(upload_id, n, generation);
    }
    drop(claim);
    Ok(etag)
}

/// The ETag of a part or object this backend stored: its CRC-32 and size, quoted as S3 quotes
/// its ETags (not a digest: an uploaded archive is hashed once, when it is checked).
pub(super) fn etag(crc: crc32fast::Hasher, size: u64) -> String {
    format!("\"{:08x}{size:016x}\"", crc.finalize())
}

/// A write of a part into `data`: its claim, held until the last batch landed, and its
/// generation for the follower of the upload's hash.
struct PartWrite {
    _claim: Arc<PartGuard>,
    upload_id: String,
    n: u16,
    generation: Option<u64>,
    /// Where the part starts in `data`.
    start: u64,
}

impl PartWrite {
    /// The part's bytes up to `end` (in `data`) have landed.
    fn wrote(&self, end: u64) {
        if let Some(generation) = self.generation {
            follow::wrote(&self.upload_id, self.n, generation, end - self.start);
        }
    }
}

/// The parts being written by this process, `(upload id, part number)`.
static PARTS_IN_FLIGHT: std::sync::Mutex<Vec<(String, u16)>> = std::sync::Mutex::new(Vec::new());

/// A claim on one part of an upload while a request writes it; released when dropped (by the
/// request and by each of its writes still in flight).
struct PartGuard(String, u16);

impl PartGuard {
    fn claim(upload_id: &str, n: u16) -> Result<PartGuard, Error> {
        let mut busy = PARTS_IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
        if busy.iter().any(|(id, m)| id == upload_id && *m == n) {
            return Err(Error::Conflict(format!(
                "part {n} of this upload is being uploaded by another request: wait for it to end, then send the part again if it failed"
            )));
        }
        busy.push((upload_id.to_string(), n));
        Ok(PartGuard(upload_id.to_string(), n))
    }
}

impl Drop for PartGuard {
    fn drop(&mut self) {
        let mut busy = PARTS_IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
        busy.retain(|(id, m)| !(id == &self.0 && *m == self.1));
    }
}

/// Makes the object `key` of the parts `(number, etag)` (sorted, distinct) of a multipart
/// upload: a rename of `data` when the parts are 1..=K in place, each of the part size but the
/// last; otherwise a copy of each part, in order, into a staging file (by the kernel:
/// `std::io::copy` between files is `copy_file_range` on Linux). Each part must be listed with
/// the ETag its upload answered. The parts stay until the upload is aborted.
pub(super) async fn complete(
    fs: &LocalFileSystem,
    key: &str,
    upload_id: &str,
    parts: &[(u16, String)],
) -> Result<(), Error> {
    let dir = upload_dir(fs, upload_id)?;
    let target = fs
        .path_to_filesystem(&Path::from(key))
        .map_err(storage_error)?;
    let listed = parts.to_vec();
    let (upload_id, object_key) = (upload_id.to_string(), key.to_string());
    blocking(key, move || {
        let already = || {
            Error::Conflict(
                "this multipart upload was completed already: its archive is in place".into(),
            )
        };
        // The object of an upload is made once: a completion never replaces it (the archive
        // that finish checks, or checked, is the one served).
        if target.exists() {
            return Ok(Err(already()));
        }
        // No part write may run while `data` becomes (or is copied into) the object.
        let data_path = dir.join("data");
        let data = match std::fs::OpenOptions::new().write(true).open(&data_path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        if let Some(data) = &data {
            if data.try_lock().is_err() {
                return Ok(Err(Error::Conflict(
                    "a part of this upload is still being sent: complete it when every part has been uploaded"
                        .into(),
                )));
            }
        }
        let part_size = read_number(&dir.join("part-size")).unwrap_or(0);
        let mut located = Vec::with_capacity(listed.len());
        for (n, etag) in &listed {
            let Some((kind, len, recorded)) = read_marker(&marker_of(&dir, *n)) else {
                return Ok(Err(Error::invalid(format!("part {n} was never uploaded"))));
            };
            if recorded.trim_matches('"') != etag.trim().trim_matches('"') {
                return Ok(Err(Error::invalid(format!(
                    "part {n} is listed with the ETag {etag:?}, but its upload answered {recorded}: list each part with the ETag its last upload answered"
                ))));
            }
            located.push((*n, kind == "data", len));
        }
        let count = located.len();
        let in_place = data.is_some()
            && located.iter().enumerate().all(|(i, (n, in_data, len))| {
                *in_data && usize::from(*n) == i + 1 && (i + 1 == count || *len == part_size)
            });
        std::fs::write(dir.join(COMPLETED), b"")?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        follow::discard_ready(&object_key);
        if in_place {
            let last = located.last().map(|(_, _, len)| *len).unwrap_or(0);
            let size = (count as u64 - 1) * part_size + last;
            let data = data.as_ref().expect("in place means data exists");
            data.set_len(size)?;
            let meta = data.metadata()?;
            let lengths: Vec<(u16, u64)> = located.iter().map(|(n, _, len)| (*n, *len)).collect();
            follow::take_at_complete(
                &upload_id,
                &dir,
                &object_key,
                &lengths,
                part_size,
                &meta,
                size,
            );
            if !place_new(&data_path, &target)? {
                follow::discard_ready(&object_key);
                return Ok(Err(already()));
            }
            return Ok(Ok(()));
        }
        follow::forget(&upload_id);
        let staging = staging_of(&target);
        let copied = (|| {
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&staging)?;
            for (n, in_data, len) in &located {
                let (mut from, start) = if *in_data {
                    (std::fs::File::open(&data_path)?, (u64::from(*n) - 1) * part_size)
                } else {
                    (std::fs::File::open(dir.join(format!("{n:05}")))?, 0)
                };
                from.seek(SeekFrom::Start(start))?;
                let copied = std::io::copy(&mut std::io::Read::take(from, *len), &mut out)?;
                if copied != *len {
                    return Err(std::io::Error::other(format!("part {n} is cut short")));
                }
            }
            out.flush()?;
            place_new(&staging, &target)
        })();
        match copied {
            Ok(true) => Ok(Ok(())),
            Ok(false) => {
                let _ = std::fs::remove_file(&staging);
                Ok(Err(already()))
            }
            Err(e) => {
                let _ = std::fs::remove_file(&staging);
                let _ = std::fs::remove_file(dir.join(COMPLETED));
                Err(e)
            }
        }
    })
    .await?
}

/// Moves `from` to `target` unless something is there already (then `false`, and `from` stays):
/// a hard link, which fails when the name is taken, then the old name removed. Where the file
/// system has no hard links, a check and a rename.
fn place_new(from: &FsPath, target: &FsPath) -> std::io::Result<bool> {
    match std::fs::hard_link(from, target) {
        Ok(()) => {
            std::fs::remove_file(from)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(_) if target.exists() => Ok(false),
        Err(_) => std::fs::rename(from, target).map(|()| true),
    }
}

/// A part's record: where it is (`data` or its own `file`), its length and its ETag.
fn read_marker(path: &FsPath) -> Option<(String, u64, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut words = text.split_whitespace();
    let kind = words.next()?.to_string();
    let len = words.next()?.parse().ok()?;
    let etag = words.next()?.to_string();
    Some((kind, len, etag))
}

/// The part size of an upload: the one on record, else `len`, recorded now. Two parts that
/// arrive together agree on one: the record is linked into place, which fails if it is there.
fn fix_part_size(dir: &FsPath, len: u64) -> std::io::Result<u64> {
    let record = dir.join("part-size");
    if let Some(size) = read_number(&record) {
        return Ok(size);
    }
    let mine = dir.join(format!("part-size.{}", rand::random::<u32>()));
    std::fs::write(&mine, len.to_string())?;
    let linked = std::fs::hard_link(&mine, &record);
    let _ = std::fs::remove_file(&mine);
    match linked {
        Ok(()) => Ok(len),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_number(&record)
            .ok_or_else(|| std::io::Error::other("the part size record is unreadable")),
        Err(e) => Err(e),
    }
}

fn read_number(path: &FsPath) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn write_atomically(path: &FsPath, text: &str) -> std::io::Result<()> {
    let tmp = PathBuf::from(format!("{}.{}", path.display(), rand::random::<u32>()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

fn remove_if_there(path: &FsPath) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn marker_of(dir: &FsPath, n: u16) -> PathBuf {
    dir.join(format!("{n:05}.part"))
}

/// Written (under the exclusive lock of `data`) when an upload is completed.
const COMPLETED: &str = "completed";

fn upload_dir(fs: &LocalFileSystem, upload_id: &str) -> Result<PathBuf, Error> {
    fs.path_to_filesystem(&Path::from(format!("{LOCAL_UPLOADS}/{upload_id}")))
        .map_err(storage_error)
}

/// `NAME#N`: the staging name the janitor sweeps when a crash leaves one behind.
fn staging_of(target: &FsPath) -> PathBuf {
    PathBuf::from(format!("{}#{}", target.display(), rand::random::<u32>()))
}

/// Runs file work on the blocking pool; an I/O error names the object.
async fn blocking<T: Send + 'static>(
    key: &str,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, Error> {
    let io_error =
        |e: std::io::Error| Error::Internal(format!("object storage error: writing {key}: {e}"));
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("object storage error: {e}")))?
        .map_err(io_error)
}

fn joined(r: Result<Result<(), Error>, tokio::task::JoinError>) -> Result<(), Error> {
    r.map_err(|e| Error::Internal(format!("object storage error: {e}")))?
}
