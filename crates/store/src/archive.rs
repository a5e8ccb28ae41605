//! Checks that an uploaded archive is whole: a tar (optionally gzip-compressed) that ends with
//! its end-of-archive marker, with every entry complete. Records its size and SHA-256.

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

/// The two magic bytes of gzip.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Reads a whole archive and checks it; the error says what is wrong, for the uploader.
pub fn inspect(reader: impl Read) -> Result<ArchiveFacts, String> {
    let mut raw = Hashing {
        inner: reader,
        hasher: Sha256::new(),
        size: 0,
    };
    let mut head = [0u8; 2];
    let n = read_up_to(&mut raw, &mut head).map_err(|e| format!("cannot read the archive: {e}"))?;
    if n == 0 {
        return Err("the archive is empty".into());
    }
    let gzip = n == 2 && head == GZIP_MAGIC;
    let rest = io::Cursor::new(head[..n].to_vec()).chain(&mut raw);
    let entries = if gzip {
        check_tar(flate2::read::GzDecoder::new(rest))
            .map_err(|e| format!("the archive is not a whole gzip-compressed tar: {e}"))?
    } else {
        check_tar(rest).map_err(|e| format!("the archive is not a whole tar: {e}"))?
    };
    io::copy(&mut raw, &mut io::sink()).map_err(|e| format!("cannot read the archive: {e}"))?;
    Ok(ArchiveFacts {
        size: raw.size,
        sha256: hex::encode(raw.hasher.finalize()),
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
    hasher: Sha256,
    size: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
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
