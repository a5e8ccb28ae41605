//! Small helpers shared by the operations: readers that hash, count and check lengths, the
//! SHA-256 of a value, the archive file (plain or gzip), and progress lines.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Receives progress lines (the CLI prints them on stderr).
pub type Progress = Arc<dyn Fn(String) + Send + Sync>;

/// A progress sink that drops everything.
pub fn quiet() -> Progress {
    Arc::new(|_| {})
}

/// Lower-case hex SHA-256 of `bytes` (the form archives, tokens and signatures are compared in).
pub fn sha256_hex(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Reads through, hashing and counting.
pub struct HashingReader<R> {
    pub inner: R,
    pub hasher: Sha256,
    pub size: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// (size, lower-case hex SHA-256) of what was read.
    pub fn finish(self) -> (u64, String) {
        (self.size, hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// Writes through, hashing and counting.
pub struct HashingWriter<W> {
    pub inner: W,
    pub hasher: Sha256,
    pub size: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Yields exactly `remaining` bytes of `inner`: fails when it ends early, and reports bytes
/// read to `tick` (for progress).
pub struct ExactReader<R, F> {
    pub inner: R,
    pub remaining: u64,
    pub tick: F,
}

impl<R: Read, F: FnMut(usize)> Read for ExactReader<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{} bytes short", self.remaining),
            ));
        }
        self.remaining -= n as u64;
        (self.tick)(n);
        Ok(n)
    }
}

/// Remembers the last 1024+ bytes that went through and how many did (to check a tar's
/// end-of-archive marker).
pub struct Tail<R> {
    pub inner: R,
    pub last: Vec<u8>,
    pub size: u64,
}

impl<R> Tail<R> {
    pub fn new(inner: R) -> Self {
        Tail {
            inner,
            last: Vec::with_capacity(4096),
            size: 0,
        }
    }

    /// Whether the stream ended with a whole tar end-of-archive marker (two zero blocks).
    pub fn ends_like_a_tar(&self) -> bool {
        self.size & 511 == 0
            && self.last.len() >= 1024
            && self.last[self.last.len() - 1024..].iter().all(|b| *b == 0)
    }
}

impl<R: Read> Read for Tail<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.size += n as u64;
        self.last.extend_from_slice(&buf[..n]);
        if self.last.len() > 4096 {
            let cut = self.last.len() - 1024;
            self.last.drain(..cut);
        }
        Ok(n)
    }
}

/// Counts the raw bytes read from the archive file (progress of a pass over it).
pub struct Counting<R> {
    pub inner: R,
    pub count: Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

/// Whether an archive written to `path` is gzip-compressed (by its name).
pub fn wants_gzip(path: &Path) -> bool {
    let name = path.to_string_lossy().to_ascii_lowercase();
    name.ends_with(".gz") || name.ends_with(".tgz")
}

/// The writer of an archive file, plain or gzip.
pub enum ArchiveWriter {
    Plain(BufWriter<File>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
}

impl ArchiveWriter {
    pub fn new(file: File, gzip: bool) -> Self {
        let w = BufWriter::with_capacity(1 << 20, file);
        if gzip {
            ArchiveWriter::Gzip(flate2::write::GzEncoder::new(
                w,
                flate2::Compression::fast(),
            ))
        } else {
            ArchiveWriter::Plain(w)
        }
    }

    /// Finishes compression, flushes and syncs the file to disk.
    pub fn finish(self) -> io::Result<()> {
        let w = match self {
            ArchiveWriter::Plain(w) => w,
            ArchiveWriter::Gzip(g) => g.finish()?,
        };
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    }
}

impl Write for ArchiveWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ArchiveWriter::Plain(w) => w.write(buf),
            ArchiveWriter::Gzip(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            ArchiveWriter::Plain(w) => w.flush(),
            ArchiveWriter::Gzip(w) => w.flush(),
        }
    }
}

/// Opens an archive for reading, decompressing gzip when its first bytes say so; `count`
/// receives the raw bytes read.
pub fn open_archive(
    path: &Path,
    count: Arc<std::sync::atomic::AtomicU64>,
) -> io::Result<Box<dyn Read + Send>> {
    let mut file = File::open(path)?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic)?;
    file.rewind()?;
    let raw = Counting {
        inner: BufReader::with_capacity(1 << 20, file),
        count,
    };
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::read::GzDecoder::new(raw),
        )))
    } else {
        Ok(Box::new(raw))
    }
}

/// Rate-limits progress lines: `due()` is true at most every `every`.
pub struct Throttle {
    last: Instant,
    every: Duration,
}

impl Throttle {
    pub fn new(every: Duration) -> Self {
        Throttle {
            last: Instant::now(),
            every,
        }
    }

    pub fn due(&mut self) -> bool {
        if self.last.elapsed() >= self.every {
            self.last = Instant::now();
            true
        } else {
            false
        }
    }
}

/// Bytes for people: `12.3 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
