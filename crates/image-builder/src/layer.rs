//! Deterministic layers: the same entries give the same bytes, whatever the machine, the clock,
//! the umask or the order files were written in. Entries are sorted by path, every mtime is
//! [`LAYER_MTIME`], owners are numeric, and the gzip header carries no name or time.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

/// The mtime of every entry (the epoch, as `SOURCE_DATE_EPOCH=0` builds do).
pub const LAYER_MTIME: u64 = 0;

/// The OCI media type of our layers.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// What an entry holds.
#[derive(Debug, Clone)]
pub enum Content {
    Dir,
    /// A regular file copied from disk.
    File(PathBuf),
    /// A regular file given in memory.
    Bytes(Vec<u8>),
    Symlink(String),
}

/// One entry of a layer: a path relative to `/` (no leading slash, no trailing slash).
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub content: Content,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

impl Entry {
    /// A directory.
    pub fn dir(path: impl Into<String>, mode: u32, owner: u64) -> Self {
        Entry {
            path: path.into(),
            content: Content::Dir,
            mode,
            uid: owner,
            gid: owner,
        }
    }

    /// A file held in memory.
    pub fn bytes(path: impl Into<String>, data: Vec<u8>, mode: u32, owner: u64) -> Self {
        Entry {
            path: path.into(),
            content: Content::Bytes(data),
            mode,
            uid: owner,
            gid: owner,
        }
    }
}

/// A written layer: the compressed file, its digest and size, and the digest of the
/// uncompressed tar (the config's `diff_id`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layer {
    pub path: PathBuf,
    pub digest: String,
    pub diff_id: String,
    pub size: u64,
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn sha256_hex(hasher: Sha256) -> String {
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// Writes `entries` as a gzip-compressed tar at `out`. Parent directories must be listed by
/// the caller (they are not invented, so that their owner and mode are chosen on purpose).
pub fn write(mut entries: Vec<Entry>, out: &Path) -> io::Result<Layer> {
    entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    entries.dedup_by(|a, b| a.path == b.path);
    let file = BufWriter::with_capacity(1 << 20, File::create(out)?);
    let compressed = HashingWriter {
        inner: file,
        hasher: Sha256::new(),
        count: 0,
    };
    // Level 3: within a few percent of the default's size at about twice its speed.
    let gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(compressed, Compression::new(3));
    let plain = HashingWriter {
        inner: gz,
        hasher: Sha256::new(),
        count: 0,
    };
    let mut tar = tar::Builder::new(plain);
    tar.mode(tar::HeaderMode::Deterministic);
    for e in &entries {
        let mut h = tar::Header::new_ustar();
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(LAYER_MTIME);
        match &e.content {
            Content::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                tar.append_data(&mut h, format!("{}/", e.path), io::empty())?;
            }
            Content::Bytes(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                tar.append_data(&mut h, &e.path, data.as_slice())?;
            }
            Content::File(src) => {
                let f = File::open(src)?;
                let len = f.metadata()?.len();
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(len);
                tar.append_data(&mut h, &e.path, f.take(len))?;
            }
            Content::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                tar.append_link(&mut h, &e.path, target)?;
            }
        }
    }
    let plain = tar.into_inner()?;
    let diff_id = sha256_hex(plain.hasher);
    let compressed = plain.inner.finish()?;
    let digest = sha256_hex(compressed.hasher);
    let size = compressed.count;
    compressed
        .inner
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    Ok(Layer {
        path: out.to_path_buf(),
        digest,
        diff_id,
        size,
    })
}

/// The entries of a directory tree on disk, placed under `prefix`, owned by `owner`: files keep
/// their content and executable bit (0755 / 0644), directories are 0755, symlinks are kept.
pub fn tree(root: &Path, prefix: &str, owner: u64) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    walk(root, root, prefix, owner, &mut out)?;
    Ok(out)
}

fn walk(root: &Path, dir: &Path, prefix: &str, owner: u64, out: &mut Vec<Entry>) -> io::Result<()> {
    for item in std::fs::read_dir(dir)? {
        let item = item?;
        let path = item.path();
        let rel = path
            .strip_prefix(root)
            .map_err(io::Error::other)?
            .to_str()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not UTF-8", path.display()),
                )
            })?
            .to_string();
        let name = if prefix.is_empty() {
            rel
        } else {
            format!("{prefix}/{rel}")
        };
        let meta = std::fs::symlink_metadata(&path)?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = std::fs::read_link(&path)?;
            out.push(Entry {
                path: name,
                content: Content::Symlink(target.to_string_lossy().into_owned()),
                mode: 0o777,
                uid: owner,
                gid: owner,
            });
        } else if ft.is_dir() {
            out.push(Entry::dir(name, 0o755, owner));
            walk(root, &path, prefix, owner, out)?;
        } else if ft.is_file() {
            use std::os::unix::fs::PermissionsExt;
            let exec = meta.permissions().mode() & 0o111 != 0;
            out.push(Entry {
                path: name,
                content: Content::File(path),
                mode: if exec { 0o755 } else { 0o644 },
                uid: owner,
                gid: owner,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_entries_same_digest_whatever_the_order() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("b")).unwrap();
        std::fs::write(src.join("b/x.txt"), b"x").unwrap();
        std::fs::write(src.join("a.txt"), b"a").unwrap();
        let mut entries = tree(&src, "home/bentoml/bento", 1034).unwrap();
        entries.push(Entry::bytes("etc/motd", b"hi".to_vec(), 0o644, 0));
        let one = write(entries.clone(), &dir.path().join("1.tgz")).unwrap();
        entries.reverse();
        // Touch the files: mtimes must not matter.
        std::fs::write(src.join("a.txt"), b"a").unwrap();
        let two = write(entries, &dir.path().join("2.tgz")).unwrap();
        assert_eq!(one.digest, two.digest);
        assert_eq!(one.diff_id, two.diff_id);
        assert_eq!(
            std::fs::read(&one.path).unwrap(),
            std::fs::read(&two.path).unwrap()
        );

        // Read back: sorted, owned by 1034, epoch mtimes.
        let gz = flate2::read::GzDecoder::new(File::open(&one.path).unwrap());
        let mut ar = tar::Archive::new(gz);
        let mut names = Vec::new();
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!(h.mtime().unwrap(), 0);
            names.push((
                e.path().unwrap().to_string_lossy().into_owned(),
                h.uid().unwrap(),
            ));
        }
        assert_eq!(
            names,
            vec![
                ("etc/motd".to_string(), 0),
                ("home/bentoml/bento/a.txt".to_string(), 1034),
                ("home/bentoml/bento/b/".to_string(), 1034),
                ("home/bentoml/bento/b/x.txt".to_string(), 1034),
            ]
        );
    }
}
