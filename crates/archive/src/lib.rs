//! Bento and model archives as the BentoML clients send them: a tar (optionally gzip-compressed).
//!
//! An uploaded archive is checked while it streams in: it must be whole (every entry complete,
//! the end-of-archive marker present) and safe to unpack (no member, and no link, that points
//! outside the archive's directory). Its size and SHA-256 are recorded on the way.

use std::io::{self, Read};

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
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

/// Reads a whole archive and checks it; the error says what is wrong, for the uploader.
pub fn inspect(reader: impl Read) -> Result<ArchiveFacts, String> {
    let mut raw = Hashing {
        inner: reader,
        hasher: Sha256Meter::default(),
    };
    // The tar reader asks for 512 bytes and 8 KiB at a time; reading the source a MiB at a
    // time keeps the hash in long runs and the calls into an async source few.
    let mut buffered = io::BufReader::with_capacity(READ_SIZE, &mut raw);
    let mut head = [0u8; 2];
    let n = read_up_to(&mut buffered, &mut head)
        .map_err(|e| format!("cannot read the archive: {e}"))?;
    if n == 0 {
        return Err("the archive is empty".into());
    }
    let gzip = n == 2 && head == GZIP_MAGIC;
    let rest = io::Cursor::new(head[..n].to_vec()).chain(buffered);
    let entries = if gzip {
        check_tar(flate2::read::GzDecoder::new(rest))
            .map_err(|e| format!("the archive is not a whole gzip-compressed tar: {e}"))?
    } else {
        check_tar(rest).map_err(|e| format!("the archive is not a whole tar: {e}"))?
    };
    io::copy(&mut raw, &mut io::sink()).map_err(|e| format!("cannot read the archive: {e}"))?;
    Ok(ArchiveFacts {
        size: raw.hasher.len(),
        sha256: raw.hasher.finish_hex(),
        gzip,
        entries,
    })
}

/// Checks a stream of archive bytes on a blocking thread.
pub async fn inspect_stream<S>(stream: S) -> Result<Result<ArchiveFacts, String>, Error>
where
    S: Stream<Item = Result<Bytes, Error>> + Send + Unpin + 'static,
{
    let reader =
        tokio_util::io::StreamReader::new(stream.map_err(|e| io::Error::other(e.to_string())));
    let bridge = tokio_util::io::SyncIoBridge::new(reader);
    tokio::task::spawn_blocking(move || inspect(bridge))
        .await
        .map_err(|e| Error::Internal(format!("archive check failed: {e}")))
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

struct Hashing<R> {
    inner: R,
    hasher: Sha256Meter,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
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

    #[test]
    fn members_outside_the_directory_are_refused() {
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
                    h.as_gnu_mut().unwrap().linkname[..target.len()]
                        .copy_from_slice(target.as_bytes());
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
}
