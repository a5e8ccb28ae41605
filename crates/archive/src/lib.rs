//! Bento and model archives as the BentoML clients send them: a tar (optionally gzip-compressed).
//!
//! An uploaded archive is checked while it streams in: it must be whole (every entry complete,
//! the end-of-archive marker present) and safe to unpack (no member, and no link, that points
//! outside the archive's directory). Its size and SHA-256 are recorded on the way.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use yatai_domain::Error;

/// What an archive turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveFacts {
    /// Size of the stored bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the stored bytes.
    pub sha256: String,
    /// Whether the stored bytes are gzip-compressed.
    pub gzip: bool,
    /// Number of entries in the tar.
    pub entries: u64,
}

/// Name of the counter of bytes hashed with SHA-256 (archives checked, objects written with a
/// digest). Each uploaded archive is hashed once; the counter lets a test, or an operator,
/// see a second pass.
pub const SHA256_BYTES_METRIC: &str = "yatai_sha256_bytes_total";

/// SHA-256 that counts what it hashed into [`SHA256_BYTES_METRIC`] when it is finished.
pub struct Sha256Meter {
    hasher: Sha256,
    bytes: u64,
}

impl Default for Sha256Meter {
    fn default() -> Self {
        Sha256Meter {
            hasher: Sha256::new(),
            bytes: 0,
        }
    }
}

impl Sha256Meter {
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// The lower-case hex digest.
    pub fn finish_hex(self) -> String {
        metrics::counter!(SHA256_BYTES_METRIC).increment(self.bytes);
        hex::encode(self.hasher.finalize())
    }
}

/// The two magic bytes of gzip.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Size of the reads of the archive's source in [`inspect`].
const READ_SIZE: usize = 1 << 20;

/// Chunks handed from the hashing thread to the tar walk and not yet walked: a few MiB at most
/// (chunks are at most a MiB when read here, 512 KiB from the local store, smaller from a socket).
const WALK_QUEUE: usize = 8;

/// Reads a whole archive and checks it; the error says what is wrong, for the uploader.
pub fn inspect(mut reader: impl Read) -> Result<ArchiveFacts, String> {
    let chunks = std::iter::from_fn(move || {
        let mut buf = vec![0u8; READ_SIZE];
        match read_up_to(&mut reader, &mut buf) {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some(Ok(Bytes::from(buf)))
            }
            Err(e) => Some(Err(e)),
        }
    });
    inspect_chunks(chunks, Sha256Meter::default()).map_err(|e| e.to_string())?
}

/// Checks the archive whose bytes are `chunks`, in order. The SHA-256 runs on the calling
/// thread and the tar walk on a second one, fed the same chunks: each is as costly as the
/// other on a big archive, so side by side a check takes the longer of the two, not their sum
/// (a presigned upload is checked after its last byte arrived, so this is the wait at finish).
///
/// `hasher` may hold the hash of the archive's first bytes already (a presigned upload hashed as
/// its parts arrived): those bytes are walked, not hashed again.
fn inspect_chunks(
    chunks: impl Iterator<Item = io::Result<Bytes>>,
    hasher: Sha256Meter,
) -> Result<Result<ArchiveFacts, String>, Error> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(WALK_QUEUE);
    let walk_chunks = move || {
        let mut reader = ChannelReader {
            rx,
            current: Bytes::new(),
        };
        (walk(&mut reader), reader)
    };
    let hash_chunks = move |hasher: &mut Sha256Meter, walk_failed: &AtomicBool| {
        let mut skip = hasher.len();
        let mut walking = true;
        for chunk in chunks {
            let chunk = chunk?;
            let hashed = skip.min(chunk.len() as u64);
            hasher.update(&chunk[hashed as usize..]);
            skip -= hashed;
            if walking && tx.send(chunk).is_err() {
                // The walk stopped at a fault: its verdict is known. Or it ended well before
                // the bytes did (a gzip member ends the walk; bytes after it are stored, so
                // they are hashed).
                if walk_failed.load(Ordering::SeqCst) {
                    break;
                }
                walking = false;
            }
        }
        Ok(skip)
    };
    hash_beside_walk(hasher, walk_chunks, hash_chunks)
}

/// Runs `walk` on a thread of its own while `hash` hashes on this one, and gives their
/// verdict: a read error of `hash` first, then the walk's, then bytes hashed before that the
/// archive turned out not to have (`hash` returns how many it expected but did not see).
///
/// `walk` also returns what must outlive the setting of the flag that `hash` reads (the walk's
/// end of a channel: when `hash`'s send to a walk that stopped fails, the flag says why).
fn hash_beside_walk<K>(
    mut hasher: Sha256Meter,
    walk: impl FnOnce() -> (Result<(bool, u64), String>, K) + Send,
    hash: impl FnOnce(&mut Sha256Meter, &AtomicBool) -> io::Result<u64>,
) -> Result<Result<ArchiveFacts, String>, Error> {
    let walk_failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let walker = std::thread::Builder::new()
            .name("archive-walk".into())
            .spawn_scoped(scope, || {
                let (walked, keep) = walk();
                walk_failed.store(walked.is_err(), Ordering::SeqCst);
                drop(keep);
                walked
            })
            .map_err(|e| Error::Internal(format!("cannot start the archive check: {e}")))?;
        let unseen = hash(&mut hasher, &walk_failed);
        let walked = walker
            .join()
            .map_err(|_| Error::Internal("the archive check failed unexpectedly".into()))?;
        let unseen = match unseen {
            Ok(unseen) => unseen,
            Err(e) => return Ok(Err(format!("cannot read the archive: {e}"))),
        };
        let (gzip, entries) = match walked {
            Ok(walked) => walked,
            Err(reason) => return Ok(Err(reason)),
        };
        if unseen > 0 {
            return Ok(Err(
                "the archive is shorter than what was hashed of it".into()
            ));
        }
        Ok(Ok(ArchiveFacts {
            size: hasher.len(),
            sha256: hasher.finish_hex(),
            gzip,
            entries,
        }))
    })
}

/// The tar walk of [`inspect_chunks`]: whether the archive is gzip-compressed, and its entry count.
fn walk(mut reader: impl Read) -> Result<(bool, u64), String> {
    let mut head = [0u8; 2];
    let n =
        read_up_to(&mut reader, &mut head).map_err(|e| format!("cannot read the archive: {e}"))?;
    if n == 0 {
        return Err("the archive is empty".into());
    }
    let gzip = n == 2 && head == GZIP_MAGIC;
    let rest = io::Cursor::new(head[..n].to_vec()).chain(reader);
    let entries = if gzip {
        check_tar(flate2::read::GzDecoder::new(rest))
            .map_err(|e| format!("the archive is not a whole gzip-compressed tar: {e}"))?
    } else {
        check_tar(rest).map_err(|e| format!("the archive is not a whole tar: {e}"))?
    };
    Ok((gzip, entries))
}

/// The chunks sent to the tar walk, read as one stream of bytes; it ends when the sender is gone.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.recv() {
                Ok(next) => self.current = next,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Checks a stream of archive bytes on the blocking pool (see [`inspect_chunks`]); a stream
/// that fails is an archive that cannot be read.
pub async fn inspect_stream<S>(stream: S) -> Result<Result<ArchiveFacts, String>, Error>
where
    S: Stream<Item = Result<Bytes, Error>> + Send + Unpin + 'static,
{
    inspect_stream_from(None, stream).await
}

/// [`inspect_stream`] of an archive whose first `prefix.len()` bytes were hashed into `prefix`
/// already: the stream is the whole archive, walked whole, and hashed from there on.
async fn inspect_stream_from<S>(
    prefix: Option<Sha256Meter>,
    mut stream: S,
) -> Result<Result<ArchiveFacts, String>, Error>
where
    S: Stream<Item = Result<Bytes, Error>> + Send + Unpin + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let chunks = std::iter::from_fn(|| {
            runtime
                .block_on(stream.next())
                .map(|chunk| chunk.map_err(|e| io::Error::other(e.to_string())))
        });
        inspect_chunks(chunks, prefix.unwrap_or_default())
    })
    .await
    .map_err(|e| Error::Internal(format!("archive check failed: {e}")))?
}

/// Checks the archive in `file`, of `size` bytes (a local object), whose first `prefix.len()`
/// bytes were hashed already (as a presigned upload's parts arrived), on the calling thread and
/// one more.
///
/// An uncompressed tar is walked by its headers alone (the walk seeks over each member's
/// bytes, and a member that would end past the file is cut short), so the bytes already hashed
/// are not read again: only the rest is read, to be hashed. A gzip archive is read whole (its
/// walk needs every byte), as [`inspect`] reads it.
pub fn inspect_file(
    file: &std::fs::File,
    size: u64,
    prefix: Option<Sha256Meter>,
) -> Result<Result<ArchiveFacts, String>, Error> {
    use std::os::unix::fs::FileExt;
    let hasher = prefix.unwrap_or_default();
    if hasher.len() > size {
        return Ok(Err(
            "the archive is shorter than what was hashed of it".into()
        ));
    }
    let mut head = [0u8; 2];
    let gzip = size >= 2
        && file
            .read_exact_at(&mut head, 0)
            .map(|()| head == GZIP_MAGIC)
            .unwrap_or(false);
    if gzip || size == 0 {
        return inspect_chunks(file_chunks(file, 0, size), hasher);
    }
    let walk_headers = || {
        let walked = check_tar_by_headers(file, size)
            .map(|(entries, _read)| (false, entries))
            .map_err(|e| format!("the archive is not a whole tar: {e}"));
        (walked, ())
    };
    let hash_rest = |hasher: &mut Sha256Meter, walk_failed: &AtomicBool| {
        for chunk in file_chunks(file, hasher.len(), size) {
            if walk_failed.load(Ordering::SeqCst) {
                break; // its verdict is known: the rest need not be read
            }
            hasher.update(&chunk?);
        }
        Ok(0)
    };
    hash_beside_walk(hasher, walk_headers, hash_rest)
}

/// Bytes `from..to` of `file` in reads of [`READ_SIZE`]; a file that ends sooner is an error.
fn file_chunks(
    file: &std::fs::File,
    from: u64,
    to: u64,
) -> impl Iterator<Item = io::Result<Bytes>> + '_ {
    use std::os::unix::fs::FileExt;
    (from..to).step_by(READ_SIZE).map(move |at| {
        let mut buf = vec![0u8; (to - at).min(READ_SIZE as u64) as usize];
        file.read_exact_at(&mut buf, at)?;
        Ok(Bytes::from(buf))
    })
}

/// [`check_tar`] of an uncompressed tar in a file, reading its headers only; returns the entry
/// count and the bytes read by the walk.
fn check_tar_by_headers(file: &std::fs::File, size: u64) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::FileExt;
    let mut archive = tar::Archive::new(PositionedReader::new(file, size));
    let mut entries = 0;
    for entry in archive.entries_with_seek()? {
        let entry = entry?;
        check_member(&entry)?;
        let declared = entry.header().entry_size()?;
        // What the streaming walk would read of it (a PAX `size`, a sparse file's real size)
        // must be what its header declares, as there (`check_tar`'s `copied != declared`).
        if entry.size() != declared
            || entry
                .raw_file_position()
                .checked_add(declared)
                .is_none_or(|end| end > size)
        {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("entry {entries} is cut short"),
            ));
        }
        entries += 1;
    }
    if entries == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "it holds no files",
        ));
    }
    let mut last = [0u8; 1024];
    let marked = size.is_multiple_of(512)
        && size >= 1024
        && file.read_exact_at(&mut last, size - 1024).is_ok()
        && last.iter().all(|b| *b == 0);
    if !marked {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "it is truncated (no end-of-archive marker)",
        ));
    }
    Ok((entries, archive.into_inner().read + 1024))
}

/// A file read through positioned reads at a position of its own, with a small buffer that a
/// seek keeps when it lands inside it (`std::io::BufReader` drops its buffer at every seek, and
/// the tar walk seeks once per member: a bento of many small files would be read many times).
struct PositionedReader<'f> {
    file: &'f std::fs::File,
    size: u64,
    pos: u64,
    buf: Vec<u8>,
    /// Where the buffered bytes start in the file, and how many there are.
    start: u64,
    len: usize,
    /// Bytes read from the file so far.
    read: u64,
}

impl<'f> PositionedReader<'f> {
    fn new(file: &'f std::fs::File, size: u64) -> Self {
        PositionedReader {
            file,
            size,
            pos: 0,
            buf: vec![0u8; 64 << 10],
            start: 0,
            len: 0,
            read: 0,
        }
    }
}

impl Read for PositionedReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        if self.pos >= self.size {
            return Ok(0);
        }
        if !(self.start..self.start + self.len as u64).contains(&self.pos) {
            let want = (self.size - self.pos).min(self.buf.len() as u64) as usize;
            self.len = self.file.read_at(&mut self.buf[..want], self.pos)?;
            self.read += self.len as u64;
            self.start = self.pos;
            if self.len == 0 {
                return Ok(0);
            }
        }
        let from = (self.pos - self.start) as usize;
        let n = out.len().min(self.len - from);
        out[..n].copy_from_slice(&self.buf[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl io::Seek for PositionedReader<'_> {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let pos = match to {
            io::SeekFrom::Start(at) => Some(at),
            io::SeekFrom::Current(by) => self.pos.checked_add_signed(by),
            io::SeekFrom::End(by) => self.size.checked_add_signed(by),
        };
        // Past the end is an error, as skipping past the end of a stream is: the walk goes
        // from member to member by the sizes it reads, which may say more than there is.
        self.pos = pos.filter(|at| *at <= self.size).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "a member goes past the end of the archive",
            )
        })?;
        Ok(self.pos)
    }
}

/// Refuses a member that would land outside the directory it is unpacked into: an absolute
/// path, a `..` that climbs out, or a link whose target does.
fn check_member<R: Read>(entry: &tar::Entry<'_, R>) -> io::Result<()> {
    let path = entry.path()?.into_owned();
    let unsafe_member = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let Some(depth) = inside_depth(&path, 0) else {
        return Err(unsafe_member(format!(
            "the member {:?} would be unpacked outside the archive's directory",
            path.display().to_string()
        )));
    };
    if let Some(target) = entry.link_name()? {
        let kind = entry.header().entry_type();
        // A symlink resolves from the member's directory; a hard link from the archive's root.
        let start = if kind.is_symlink() {
            depth.saturating_sub(1)
        } else {
            0
        };
        if inside_depth(&target, start).is_none() {
            return Err(unsafe_member(format!(
                "the link {:?} points outside the archive's directory",
                path.display().to_string()
            )));
        }
    }
    Ok(())
}

/// How deep `path` lies below the archive's directory when it starts `depth` levels down, or
/// `None` when it is absolute or climbs out.
fn inside_depth(path: &std::path::Path, mut depth: usize) -> Option<usize> {
    use std::path::Component;
    for c in path.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => depth = depth.checked_sub(1)?,
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(depth)
}

/// Walks every tar entry to its end and checks the end-of-archive marker; returns the entry count.
fn check_tar(reader: impl Read) -> io::Result<u64> {
    let mut tail = Tail {
        inner: reader,
        last: Vec::with_capacity(2048),
        size: 0,
    };
    let mut entries = 0;
    {
        let mut archive = tar::Archive::new(&mut tail);
        for entry in archive.entries()? {
            let mut entry = entry?;
            check_member(&entry)?;
            let declared = entry.header().entry_size()?;
            let copied = io::copy(&mut entry, &mut io::sink())?;
            if copied != declared {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("entry {entries} is cut short"),
                ));
            }
            entries += 1;
        }
    }
    io::copy(&mut tail, &mut io::sink())?;
    if entries == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "it holds no files",
        ));
    }
    if tail.size % 512 != 0
        || tail.last.len() < 1024
        || tail.last[tail.last.len() - 1024..].iter().any(|b| *b != 0)
    {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "it is truncated (no end-of-archive marker)",
        ));
    }
    Ok(entries)
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Remembers the last 1024+ bytes read and the total.
struct Tail<R> {
    inner: R,
    last: Vec<u8>,
    size: u64,
}

impl<R: Read> Read for Tail<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.size += n as u64;
        self.last.extend_from_slice(&buf[..n]);
        if self.last.len() > 2048 {
            let cut = self.last.len() - 1024;
            self.last.drain(..cut);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_bytes() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let data = vec![7u8; 3000];
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, "model/weights.bin", &data[..])
            .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_cksum();
        b.append_data(&mut h, "empty", &[][..]).unwrap();
        b.into_inner().unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn whole_archives_pass() {
        let t = tar_bytes();
        let facts = inspect(&t[..]).unwrap();
        assert_eq!(
            (facts.size, facts.gzip, facts.entries),
            (t.len() as u64, false, 2)
        );
        assert_eq!(facts.sha256, hex::encode(Sha256::digest(&t)));
        let g = gzip(&t);
        let facts = inspect(&g[..]).unwrap();
        assert_eq!(
            (facts.size, facts.gzip, facts.entries),
            (g.len() as u64, true, 2)
        );
    }

    /// A tar of one member named `path` (a link to `link` when given), written raw: the tar
    /// crate's own setters refuse `..` and absolute paths.
    fn one(path: &str, link: Option<(&str, tar::EntryType)>) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        // Raw names: the tar crate's own setters refuse `..` and absolute paths.
        h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_mode(0o644);
        match link {
            Some((target, kind)) => {
                h.set_entry_type(kind);
                h.set_size(0);
                h.as_gnu_mut().unwrap().linkname[..target.len()].copy_from_slice(target.as_bytes());
                h.set_cksum();
                b.append(&h, &[][..]).unwrap();
            }
            None => {
                h.set_size(1);
                h.set_cksum();
                b.append(&h, &b"x"[..]).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn members_outside_the_directory_are_refused() {
        for bad in ["../evil.txt", "src/../../evil.txt", "/tmp/evil.txt"] {
            let err = inspect(&one(bad, None)[..]).unwrap_err();
            assert!(err.contains("outside"), "{bad}: {err}");
        }
        for ok in ["./a/b.txt", "a/../b.txt", "a/./b"] {
            assert!(inspect(&one(ok, None)[..]).is_ok(), "{ok}");
        }
        let sym = tar::EntryType::Symlink;
        assert!(inspect(&one("a/link", Some(("../b", sym)))[..]).is_ok());
        assert!(inspect(&one("a/link", Some(("../../etc/passwd", sym)))[..]).is_err());
        assert!(inspect(&one("link", Some(("/etc/passwd", sym)))[..]).is_err());
        assert!(inspect(&one("a/hard", Some(("../x", tar::EntryType::Link)))[..]).is_err());
    }

    #[test]
    fn cut_or_foreign_bytes_fail() {
        let t = tar_bytes();
        assert!(inspect(&t[..0]).unwrap_err().contains("empty"));
        for cut in [100, 600, 2000, t.len() - 512] {
            assert!(
                inspect(&t[..cut]).is_err(),
                "a tar cut at {cut} of {} must fail",
                t.len()
            );
        }
        let g = gzip(&t);
        assert!(inspect(&g[..g.len() - 9]).is_err());
        assert!(inspect(&b"hello world, not a tar at all"[..]).is_err());
        assert!(
            inspect(&vec![0u8; 10240][..]).is_err(),
            "an archive without files fails"
        );
    }

    fn chunked(data: &[u8], size: usize) -> Vec<Result<Bytes, Error>> {
        data.chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect()
    }

    #[tokio::test]
    async fn a_stream_in_uneven_chunks_gives_the_same_facts() {
        let mut t = tar_bytes();
        t.extend_from_slice(&[0u8; 5120]); // blocks of zeros after the end marker are hashed too
        let whole = inspect(&t[..]).unwrap();
        for size in [1, 7, 512, 4096, t.len()] {
            let s = futures::stream::iter(chunked(&t, size));
            assert_eq!(
                inspect_stream(s).await.unwrap().unwrap(),
                whole,
                "chunks of {size}"
            );
        }
        assert_eq!(whole.sha256, hex::encode(Sha256::digest(&t)));
        assert_eq!(whole.size, t.len() as u64);
    }

    #[tokio::test]
    async fn a_stream_that_fails_cannot_be_read() {
        let t = tar_bytes();
        let mut chunks = chunked(&t[..1024], 512);
        chunks.push(Err(Error::Internal("the disk went away".into())));
        let err = inspect_stream(futures::stream::iter(chunks))
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            err.starts_with("cannot read the archive") && err.contains("the disk went away"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn foreign_bytes_stop_the_read() {
        // An endless stream: the check ends only because the walk refuses the first header.
        let endless = futures::stream::repeat_with(|| Ok(Bytes::from_static(&[1u8; 4096])));
        let err = inspect_stream(endless).await.unwrap().unwrap_err();
        assert!(err.contains("not a whole tar"), "{err}");
    }

    #[tokio::test]
    async fn a_hashed_prefix_is_walked_but_not_hashed_again() {
        let t = tar_bytes();
        let whole = inspect(&t[..]).unwrap();
        for cut in [1, 512, 1000, t.len()] {
            let mut prefix = Sha256Meter::default();
            prefix.update(&t[..cut]);
            let s = futures::stream::iter(chunked(&t, 700));
            let facts = inspect_stream_from(Some(prefix), s).await.unwrap().unwrap();
            assert_eq!(facts, whole, "prefix of {cut}");
        }
        // A prefix of other bytes gives another digest: the prefix is trusted, not checked.
        let mut other = Sha256Meter::default();
        other.update(&[9u8; 512]);
        let s = futures::stream::iter(chunked(&t, 700));
        let facts = inspect_stream_from(Some(other), s).await.unwrap().unwrap();
        assert_ne!(facts.sha256, whole.sha256);
        // A prefix longer than the archive is refused.
        let mut long = Sha256Meter::default();
        long.update(&vec![0u8; t.len() + 1]);
        let s = futures::stream::iter(chunked(&t, 700));
        let err = inspect_stream_from(Some(long), s)
            .await
            .unwrap()
            .unwrap_err();
        assert!(err.contains("shorter"), "{err}");
    }

    #[tokio::test]
    async fn bytes_after_a_gzip_member_are_hashed_and_counted() {
        // The walk ends with the first gzip member; what follows is stored, so it is hashed.
        let mut g = gzip(&tar_bytes());
        g.extend_from_slice(&vec![5u8; 3 << 20]);
        let facts = inspect_stream(futures::stream::iter(chunked(&g, 64 << 10)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(facts.size, g.len() as u64);
        assert_eq!(facts.sha256, hex::encode(Sha256::digest(&g)));
        assert_eq!(inspect(&g[..]).unwrap(), facts);
    }

    /// A PAX header whose `size` record is `pax_size`, then a member `a.txt` whose header
    /// declares (and whose data has) `len` bytes, then the end marker.
    fn with_pax_size(pax_size: &[u8], len: usize) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("size", pax_size)]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(len as u64);
        h.set_cksum();
        b.append_data(&mut h, "a.txt", &vec![1u8; len][..]).unwrap();
        b.into_inner().unwrap()
    }

    /// A GNU sparse member of `stored` bytes on disk and `real` bytes unpacked, one data region
    /// at 0 (`stored` long), with an (empty) extension block if `extended`, followed by
    /// `written` bytes of data (fewer than `stored`: cut) and the end marker.
    fn sparse(stored: u64, real: u64, extended: bool, written: usize) -> Vec<u8> {
        let octal = |field: &mut [u8], v: u64| {
            let text = format!("{v:0width$o}", width = field.len() - 1);
            field[..text.len()].copy_from_slice(text.as_bytes());
            field[text.len()..].fill(0);
        };
        let mut h = tar::Header::new_gnu();
        h.set_path("holes.bin").unwrap();
        h.set_entry_type(tar::EntryType::GNUSparse);
        h.set_mode(0o644);
        h.set_size(stored);
        let gnu = h.as_gnu_mut().unwrap();
        octal(&mut gnu.sparse[0].offset, 0);
        octal(&mut gnu.sparse[0].numbytes, stored);
        octal(&mut gnu.realsize, real);
        gnu.isextended[0] = u8::from(extended);
        h.set_cksum();
        let mut out = h.as_bytes().to_vec();
        if extended {
            out.extend_from_slice(&[0u8; 512]);
        }
        out.extend_from_slice(&vec![2u8; written]);
        out.resize(out.len().next_multiple_of(512), 0);
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    /// `bytes` in a file of their own.
    fn in_a_file(bytes: &[u8]) -> std::fs::File {
        use std::io::Write;
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    #[test]
    fn a_file_gives_the_verdicts_of_a_stream() {
        let t = tar_bytes();
        let mut zeros_after = t.clone();
        zeros_after.extend_from_slice(&[0u8; 5120]);
        let mut cases: Vec<(String, Vec<u8>)> = vec![
            ("tar".into(), t.clone()),
            ("zeros after".into(), zeros_after),
            ("gzip".into(), gzip(&t)),
            ("gzip cut".into(), gzip(&t)[..40].to_vec()),
            ("empty".into(), Vec::new()),
            ("foreign".into(), b"hello world, not a tar at all".to_vec()),
            ("no files".into(), vec![0u8; 10240]),
            ("escapes".into(), one("../evil.txt", None)),
            (
                "link escapes".into(),
                one(
                    "a/link",
                    Some(("../../etc/passwd", tar::EntryType::Symlink)),
                ),
            ),
            ("inside".into(), one("a/../b.txt", None)),
        ];
        for cut in [
            100,
            600,
            1000,
            2000,
            3584,
            t.len() - 1024,
            t.len() - 512,
            t.len() - 1,
        ] {
            cases.push((format!("cut at {cut}"), t[..cut].to_vec()));
        }
        cases.push(("pax size past the end".into(), with_pax_size(b"1000000", 0)));
        cases.push(("pax size smaller".into(), with_pax_size(b"0", 1024)));
        cases.push(("pax size agreeing".into(), with_pax_size(b"1024", 1024)));
        cases.push(("sparse with a hole".into(), sparse(512, 4608, false, 512)));
        cases.push((
            "sparse, extension block, cut".into(),
            sparse(1024, 1024, true, 512),
        ));
        cases.push((
            "sparse, extension block".into(),
            sparse(1024, 1024, true, 1024),
        ));
        let mut not_marked = t.clone();
        let at = not_marked.len() - 10;
        not_marked[at] = 1;
        cases.push(("garbage in the end marker".into(), not_marked));
        for (name, bytes) in cases {
            let file = in_a_file(&bytes);
            let by_file = inspect_file(&file, bytes.len() as u64, None).unwrap();
            match inspect(&bytes[..]) {
                Ok(facts) => assert_eq!(by_file, Ok(facts), "{name}"),
                Err(reason) => assert!(by_file.is_err(), "{name}: {reason}, but {by_file:?}"),
            }
        }
    }

    #[test]
    fn a_file_hashed_in_part_is_hashed_from_there_and_its_members_are_not_read() {
        // One big member: the walk reads its header and the end marker, not its bytes.
        let big = vec![3u8; 8 << 20];
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(big.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, "weights.bin", &big[..]).unwrap();
        let t = b.into_inner().unwrap();
        let file = in_a_file(&t);
        let whole = inspect(&t[..]).unwrap();
        for cut in [0, 1, 512, 4 << 20, t.len()] {
            let mut prefix = Sha256Meter::default();
            prefix.update(&t[..cut]);
            let facts = inspect_file(&file, t.len() as u64, Some(prefix)).unwrap();
            assert_eq!(facts, Ok(whole.clone()), "prefix of {cut}");
        }
        let (entries, read) = check_tar_by_headers(&file, t.len() as u64).unwrap();
        assert_eq!(entries, 1);
        assert!(
            read < 256 << 10,
            "the walk read {read} of {} bytes",
            t.len()
        );
        // A prefix longer than the archive is refused.
        let mut long = Sha256Meter::default();
        long.update(&vec![0u8; t.len() + 1]);
        let err = inspect_file(&file, t.len() as u64, Some(long))
            .unwrap()
            .unwrap_err();
        assert!(err.contains("shorter"), "{err}");
    }
}
