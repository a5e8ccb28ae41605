//! Reading a bento archive (tar, or gzip-compressed tar, as `bentoml export` and `push` write
//! it): safe extraction and the typed manifest from its `bento.yaml`.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

use yatai_domain::manifest::BentoManifest;

use crate::BuildError;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const XZ_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0];

/// Extracts the archive at `archive` into `dest` (which must exist and be empty). Refuses
/// anything that is not a tar, members that would land outside `dest`, and special files.
pub fn extract(archive: &Path, dest: &Path, what: &str) -> Result<(), BuildError> {
    let bad = |detail: String| BuildError::BadArchive(format!("{what}: {detail}"));
    let mut file = File::open(archive).map_err(|e| bad(format!("cannot open it: {e}")))?;
    let mut magic = [0u8; 6];
    let n = file.read(&mut magic).map_err(|e| bad(e.to_string()))?;
    drop(file);
    if n == 6 && magic == XZ_MAGIC {
        return Err(bad(
            "it is xz-compressed (what `bentoml export TAG FILE.bento` writes); export it as \
             FILE.tar.gz or FILE.tar, or build from the Yatai server it was pushed to"
                .into(),
        ));
    }
    let file = BufReader::with_capacity(
        1 << 20,
        File::open(archive).map_err(|e| bad(e.to_string()))?,
    );
    let reader: Box<dyn Read> = if n >= 2 && magic[..2] == GZIP_MAGIC {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut tar = tar::Archive::new(reader);
    let entries = tar.entries().map_err(|e| {
        bad(format!(
            "not a tar archive ({e}); a bento archive is what `bentoml export` writes"
        ))
    })?;
    let mut count = 0usize;
    for entry in entries {
        let mut entry = entry.map_err(|e| {
            bad(format!(
                "not a valid tar archive ({e}); a bento archive is what `bentoml export` writes"
            ))
        })?;
        let raw = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let Some(rel) = safe_relative(&raw) else {
            return Err(bad(format!(
                "member {:?} would be written outside the bento",
                raw.display()
            )));
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = dest.join(&rel);
        let kind = entry.header().entry_type();
        match kind {
            tar::EntryType::Directory => {
                std::fs::create_dir_all(&target).map_err(|e| bad(e.to_string()))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::Symlink => {
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| bad(e.to_string()))?;
                }
                if kind == tar::EntryType::Symlink {
                    let link = entry
                        .link_name()
                        .map_err(|e| bad(e.to_string()))?
                        .ok_or_else(|| bad(format!("symlink {:?} has no target", rel)))?;
                    if link.is_absolute()
                        || safe_relative(&rel.parent().unwrap_or(Path::new("")).join(&link))
                            .is_none()
                    {
                        return Err(bad(format!(
                            "symlink {:?} points outside the bento",
                            rel.display()
                        )));
                    }
                    std::os::unix::fs::symlink(&link, &target).map_err(|e| bad(e.to_string()))?;
                } else {
                    entry.set_preserve_mtime(false);
                    entry
                        .unpack(&target)
                        .map_err(|e| bad(format!("cannot extract {:?}: {e}", rel.display())))?;
                }
            }
            // Global/extended headers are consumed by the tar reader; anything else (devices,
            // fifos, hard links) has no place in a bento.
            other => {
                return Err(bad(format!(
                    "member {:?} is a {:?}, which a bento never holds",
                    rel.display(),
                    other
                )))
            }
        }
        count += 1;
    }
    if count == 0 {
        return Err(bad(
            "the archive is empty or not a tar archive; a bento archive is what `bentoml export` writes"
                .into(),
        ));
    }
    Ok(())
}

/// `path` without `./` and without any way out (`..`, absolute); `None` if it would escape.
fn safe_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Reads `bento.yaml` at the root of an extracted bento.
pub fn read_manifest(dir: &Path, what: &str) -> Result<BentoManifest, BuildError> {
    let path = dir.join("bento.yaml");
    let text = std::fs::read_to_string(&path).map_err(|_| {
        BuildError::BadArchive(format!(
            "{what}: no bento.yaml at the root of the archive; is it a bento (what `bentoml export` writes)?"
        ))
    })?;
    parse_manifest(&text).map_err(|e| BuildError::BadArchive(format!("{what}: bento.yaml: {e}")))
}

/// Parses the text of a `bento.yaml`.
pub fn parse_manifest(text: &str) -> Result<BentoManifest, String> {
    let value: serde_json::Value = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    BentoManifest::from_value(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // Write the name bytes directly: set_path refuses "..", which is the point here.
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn extracts_tar_and_gzip_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let plain = tar_with(&[
            ("./bento.yaml", b"name: x\nversion: y\n"),
            ("src/a.py", b"1"),
        ]);
        let p = dir.path().join("b.tar");
        std::fs::write(&p, &plain).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        extract(&p, &out, "bento x:y").unwrap();
        assert_eq!(std::fs::read(out.join("src/a.py")).unwrap(), b"1");
        let m = read_manifest(&out, "bento x:y").unwrap();
        assert_eq!(m.tag().as_deref(), Some("x:y"));

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &plain).unwrap();
        let p = dir.path().join("b.tgz");
        std::fs::write(&p, gz.finish().unwrap()).unwrap();
        let out2 = dir.path().join("out2");
        std::fs::create_dir(&out2).unwrap();
        extract(&p, &out2, "bento x:y").unwrap();
        assert!(out2.join("bento.yaml").exists());

        let evil = tar_with(&[("../evil", b"x")]);
        let p = dir.path().join("evil.tar");
        std::fs::write(&p, evil).unwrap();
        let out3 = dir.path().join("out3");
        std::fs::create_dir(&out3).unwrap();
        let e = extract(&p, &out3, "bento x:y").unwrap_err().to_string();
        assert!(e.contains("outside the bento"), "{e}");

        let p = dir.path().join("html");
        std::fs::write(&p, b"<html>not found</html>").unwrap();
        let e = extract(&p, &out3, "bento x:y").unwrap_err().to_string();
        assert!(e.contains("not a") && e.contains("bentoml export"), "{e}");

        let e = read_manifest(&out3, "bento x:y").unwrap_err().to_string();
        assert!(e.contains("no bento.yaml"), "{e}");
    }
}
