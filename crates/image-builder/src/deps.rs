//! The dependency layer: the bento's locked requirements installed for the base image's Python
//! and platform, without running anything inside the image. Wheels only (`--only-binary`), for
//! the base's Python version, glibc and architecture; the result is laid out as the virtual
//! environment BentoML's own images use (`/app/.venv`), plus the `bentoml` user.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use yatai_domain::manifest::{BentoManifest, Generation};

use crate::layer::{self, Content, Entry};
use crate::BuildError;

/// Where the environment lives in the image (as in BentoML's generated Dockerfile).
pub const VENV: &str = "/app/.venv";
/// The uid and gid of the `bentoml` user of BentoML's images.
pub const BENTO_UID: u64 = 1034;
/// Bumped whenever the layout of the dependency layer changes, so old cache entries are not used.
const LAYOUT_VERSION: &str = "yatai-deps-v1";

/// What the builder needs to know about the base image, read from its layers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaseFacts {
    /// The Python interpreter, e.g. `/usr/bin/python3.11`.
    pub python: Option<String>,
    /// Its `major.minor`.
    pub python_version: Option<String>,
    /// `/etc/passwd` and `/etc/group` as the base has them.
    pub passwd: Option<Vec<u8>>,
    pub group: Option<Vec<u8>>,
    /// glibc `(major, minor)`.
    pub glibc: Option<(u32, u32)>,
    /// Whether the C library is musl (Alpine).
    pub musl: bool,
}

/// The platform wheels are chosen for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// The OCI architecture (`amd64`, `arm64`).
    pub arch: String,
    /// glibc `(major, minor)`.
    pub glibc: (u32, u32),
}

impl Platform {
    /// The machine name in wheel tags (`x86_64`, `aarch64`).
    pub fn machine(&self) -> Result<&'static str, BuildError> {
        match self.arch.as_str() {
            "amd64" | "x86_64" => Ok("x86_64"),
            "arm64" | "aarch64" => Ok("aarch64"),
            "ppc64le" => Ok("ppc64le"),
            "s390x" => Ok("s390x"),
            other => Err(BuildError::Base(format!(
                "the base image is for architecture {other:?}, for which no manylinux wheels exist"
            ))),
        }
    }

    /// Every manylinux platform tag the base can run, newest glibc first.
    pub fn wheel_platforms(&self) -> Result<Vec<String>, BuildError> {
        let m = self.machine()?;
        let (major, minor) = self.glibc;
        let mut out: Vec<String> = (5..=minor.max(5))
            .rev()
            .map(|n| format!("manylinux_{major}_{n}_{m}"))
            .collect();
        // The legacy aliases of glibc 2.17, 2.12 and 2.5.
        for (alias, need) in [
            ("manylinux2014", 17),
            ("manylinux2010", 12),
            ("manylinux1", 5),
        ] {
            if minor >= need && (m == "x86_64" || alias == "manylinux2014") {
                out.push(format!("{alias}_{m}"));
            }
        }
        Ok(out)
    }

    /// A short stable description (`linux/amd64 glibc 2.36`), also part of the cache key.
    pub fn describe(&self) -> String {
        format!(
            "linux/{} glibc {}.{}",
            self.arch, self.glibc.0, self.glibc.1
        )
    }
}

/// Reads the facts the builder needs from the base's layers (bottom first; gzip tars).
pub fn scan_base(layers: &[PathBuf]) -> Result<BaseFacts, BuildError> {
    let mut facts = BaseFacts::default();
    let mut pythons: BTreeMap<String, ()> = BTreeMap::new();
    for path in layers {
        let file = File::open(path).map_err(|e| BuildError::Io(format!("base layer: {e}")))?;
        let mut tar =
            tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
        let entries = tar.entries().map_err(|e| {
            BuildError::Base(format!("a layer of the base image is not a gzip tar: {e}"))
        })?;
        for entry in entries {
            let mut entry = entry.map_err(|e| {
                BuildError::Base(format!("a layer of the base image cannot be read: {e}"))
            })?;
            let name = entry
                .path()
                .map(|p| p.to_string_lossy().trim_start_matches("./").to_string())
                .unwrap_or_default();
            let file_name = name.rsplit('/').next().unwrap_or_default().to_string();
            if name == "etc/passwd" || name == "etc/group" {
                let mut data = Vec::new();
                entry
                    .read_to_end(&mut data)
                    .map_err(|e| BuildError::Base(e.to_string()))?;
                if name == "etc/passwd" {
                    facts.passwd = Some(data);
                } else {
                    facts.group = Some(data);
                }
            } else if let Some(rest) = name
                .strip_prefix("usr/local/bin/python3.")
                .or_else(|| name.strip_prefix("usr/bin/python3."))
            {
                if !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()) {
                    pythons.insert(name.clone(), ());
                }
            } else if file_name.starts_with("ld-musl-") {
                facts.musl = true;
            } else if file_name == "libc.so.6"
                || (file_name.starts_with("libc-2.") && file_name.ends_with(".so"))
            {
                if let Some(v) = glibc_from_name(&file_name) {
                    facts.glibc = Some(v);
                } else if entry.header().entry_type() == tar::EntryType::Symlink {
                    if let Ok(Some(target)) = entry.link_name() {
                        if let Some(v) = glibc_from_name(&target.to_string_lossy()) {
                            facts.glibc = Some(v);
                        }
                    }
                } else {
                    let mut data = Vec::new();
                    entry
                        .read_to_end(&mut data)
                        .map_err(|e| BuildError::Base(e.to_string()))?;
                    if let Some(v) = glibc_from_binary(&data) {
                        facts.glibc = Some(v);
                    }
                }
            }
        }
    }
    // Prefer /usr/local (official python images) and the newest minor version.
    let best = pythons.keys().max_by_key(|p| {
        let minor: u32 = p
            .rsplit('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        (p.starts_with("usr/local/"), minor)
    });
    if let Some(p) = best {
        facts.python_version = p
            .rsplit('/')
            .next()
            .map(|n| n.trim_start_matches("python").to_string());
        facts.python = Some(format!("/{p}"));
    }
    Ok(facts)
}

fn glibc_from_name(name: &str) -> Option<(u32, u32)> {
    let v = name
        .rsplit('/')
        .next()?
        .strip_prefix("libc-")?
        .strip_suffix(".so")?;
    parse_version(v)
}

fn glibc_from_binary(data: &[u8]) -> Option<(u32, u32)> {
    let needle = b"release version ";
    let pos = data.windows(needle.len()).position(|w| w == needle)?;
    let rest = &data[pos + needle.len()..];
    let end = rest
        .iter()
        .position(|b| !(b.is_ascii_digit() || *b == b'.'))?;
    parse_version(std::str::from_utf8(&rest[..end]).ok()?)
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut it = v.trim_end_matches('.').split('.');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The requirements to install for a bento: its locked list (wherever its generation writes
/// it), plus `bentoml` itself at the bento's version when the list does not pin it, as
/// BentoML's own install script does.
pub fn requirements(
    manifest: &BentoManifest,
    bento_dir: &Path,
) -> Result<(String, String), BuildError> {
    let mut text = String::new();
    let mut source = "none".to_string();
    for rel in manifest.requirements_files() {
        if let Ok(t) = std::fs::read_to_string(bento_dir.join(rel)) {
            text = t;
            source = rel.to_string();
            break;
        }
    }
    // Local wheel directories of the machine that built the bento (bentoml 1.0 writes
    // `--find-links /opt/wheels`) do not exist here; the bento's own wheels do.
    let mut kept: Vec<String> = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        let link = t
            .strip_prefix("--find-links")
            .or_else(|| t.strip_prefix("-f "))
            .map(|r| r.trim_start_matches('=').trim());
        match link {
            Some(path) if path.starts_with('/') && !Path::new(path).exists() => {}
            _ => kept.push(line.to_string()),
        }
    }
    let wheels = bento_dir.join("env/python/wheels");
    if wheels.is_dir() {
        kept.push(format!("--find-links {}", wheels.display()));
    }
    text = kept.join("\n");
    if !text.ends_with('\n') && !text.is_empty() {
        text.push('\n');
    }
    let names: Vec<String> = text
        .lines()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('-'))
        .map(requirement_name)
        .collect();
    if !names.iter().any(|n| n == "bentoml") {
        let version = manifest.bentoml_version().ok_or_else(|| {
            BuildError::BadArchive(
                "bento.yaml names no bentoml_version, and the requirements do not pin bentoml"
                    .into(),
            )
        })?;
        text.push_str(&format!("bentoml=={version}\n"));
    }
    // bentoml 1.0 / 1.1 (through pyfilesystem2) import pkg_resources, which the python images
    // they were built on shipped with setuptools; a plain Debian python has none.
    if manifest.generation() == Generation::Runners && !names.iter().any(|n| n == "setuptools") {
        text.push_str("setuptools<70\n");
    }
    Ok((text, source))
}

/// The normalized project name of a requirement line (`Foo_Bar[x]>=1` → `foo-bar`).
pub fn requirement_name(line: &str) -> String {
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .unwrap_or(line.len());
    line[..end].to_ascii_lowercase().replace(['_', '.'], "-")
}

/// The cache key of a dependency layer: the requirements, the base by digest (which fixes its
/// Python and C library), the platform chosen from it, the Python version asked for, and the
/// installer.
pub fn cache_key(
    requirements: &str,
    base_digest: &str,
    platform: &str,
    python: &str,
    installer: Installer,
) -> String {
    let mut h = Sha256::new();
    for part in [
        LAYOUT_VERSION,
        base_digest,
        platform,
        python,
        installer.name(),
        requirements,
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

/// The program that installs wheels into a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installer {
    /// `uv pip install --target`.
    Uv,
    /// `python3 -m pip install --target`.
    Pip,
}

impl Installer {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Installer::Uv => "uv",
            Installer::Pip => "pip",
        }
    }

    /// `uv` when it is on PATH, else pip.
    pub fn detect() -> Self {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join("uv").is_file()))
            .unwrap_or(false);
        if found {
            Installer::Uv
        } else {
            Installer::Pip
        }
    }
}

/// Installs `requirements` into `target` for `python` (`3.11`) on `platform`, wheels only.
pub async fn install(
    installer: Installer,
    requirements_file: &Path,
    target: &Path,
    python: &str,
    platform: &Platform,
) -> Result<(), BuildError> {
    let platforms = platform.wheel_platforms()?;
    let mut cmd = match installer {
        Installer::Pip => {
            let py = std::env::var("YATAI_BUILDER_PYTHON").unwrap_or_else(|_| "python3".into());
            let mut c = tokio::process::Command::new(py);
            c.args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args([
                "--no-compile",
                "--no-warn-script-location",
                "--only-binary=:all:",
            ])
            .args(["--implementation", "cp", "--python-version", python])
            .arg("--abi")
            .arg(format!("cp{}", python.replace('.', "")));
            for p in &platforms {
                c.arg("--platform").arg(p);
            }
            c.arg("--target").arg(target);
            c
        }
        Installer::Uv => {
            let mut c = tokio::process::Command::new("uv");
            let (major, minor) = platform.glibc;
            c.args([
                "pip",
                "install",
                "--no-config",
                "--only-binary",
                ":all:",
                "--no-progress",
            ])
            .args(["--python-version", python])
            .arg("--python-platform")
            .arg(format!("{}-manylinux_{major}_{minor}", platform.machine()?))
            .arg("--target")
            .arg(target);
            // The machine's CA bundle (a proxy's CA may only be there).
            if std::env::var_os("UV_NATIVE_TLS").is_none() {
                c.env("UV_NATIVE_TLS", "true");
            }
            c
        }
    };
    cmd.arg("-r")
        .arg(requirements_file)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        BuildError::Install(format!(
            "cannot run {}: {e}; install it (pip: python3-pip, uv: `pip install uv`) or choose \
             the other with --installer",
            installer.name()
        ))
    })?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let (mut out, mut err) = (String::new(), String::new());
    let (a, b, status) = tokio::join!(
        stdout.read_to_string(&mut out),
        stderr.read_to_string(&mut err),
        child.wait()
    );
    let _ = (a, b);
    let status = status.map_err(|e| BuildError::Install(e.to_string()))?;
    if status.success() {
        return Ok(());
    }
    Err(install_error(
        installer,
        &format!("{out}\n{err}"),
        python,
        platform,
    ))
}

/// Turns the installer's output into one clear error, naming the package when it can.
fn install_error(
    installer: Installer,
    output: &str,
    python: &str,
    platform: &Platform,
) -> BuildError {
    let where_ = format!("Python {python} on {}", platform.describe());
    let package = output.lines().find_map(|l| {
        let l = l.trim();
        if let Some(rest) = l.split("No matching distribution found for ").nth(1) {
            return Some(rest.trim().to_string());
        }
        // uv: "Because foo was not found in the package registry" / "Because only foo<1 ..."
        if let Some(rest) = l.split("Because ").nth(1) {
            let rest = rest
                .trim_start_matches("only ")
                .trim_start_matches("there is no version of ");
            let word = rest.split_whitespace().next().unwrap_or_default();
            if !word.is_empty() {
                return Some(word.trim_end_matches(',').to_string());
            }
        }
        None
    });
    let tail: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = tail[tail.len().saturating_sub(6)..].join("\n  ");
    match package {
        Some(p) => BuildError::MissingWheel {
            package: p,
            detail: format!(
                "no wheel of it can be installed for {where_} (it does not exist, the version \
                 cannot be resolved, or only a source distribution is published); {} said:\n  {tail}",
                installer.name()
            ),
        },
        None => BuildError::Install(format!(
            "{} could not install the requirements for {where_}:\n  {tail}",
            installer.name()
        )),
    }
}

/// The entries of the dependency layer: the installed packages laid out as a virtual
/// environment at [`VENV`] for the base's interpreter, and the `bentoml` user.
pub fn venv_entries(target: &Path, facts: &BaseFacts) -> Result<Vec<Entry>, BuildError> {
    let python = facts.python.as_deref().ok_or_else(|| {
        BuildError::Base("the base image has no python3.X in /usr/local/bin or /usr/bin".into())
    })?;
    let version = facts.python_version.as_deref().unwrap_or("3");
    let home = Path::new(python)
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let venv = VENV.trim_start_matches('/');
    let site = format!("{venv}/lib/python{version}/site-packages");
    let io = |e: std::io::Error| BuildError::Io(format!("dependency layer: {e}"));
    let mut entries = vec![
        Entry::dir("app", 0o755, 0),
        Entry::dir(venv, 0o755, BENTO_UID),
        Entry::dir(format!("{venv}/bin"), 0o755, BENTO_UID),
        Entry::dir(format!("{venv}/lib"), 0o755, BENTO_UID),
        Entry::dir(format!("{venv}/lib/python{version}"), 0o755, BENTO_UID),
        Entry::dir(site.clone(), 0o755, BENTO_UID),
        Entry::dir("home", 0o755, 0),
        Entry::dir("home/bentoml", 0o755, BENTO_UID),
        Entry::bytes(
            format!("{venv}/pyvenv.cfg"),
            format!("home = {home}\ninclude-system-site-packages = false\nversion = {version}\n")
                .into_bytes(),
            0o644,
            BENTO_UID,
        ),
        Entry::bytes(
            format!("{venv}/bin/activate"),
            format!(
                "# Sourced by BentoML's entrypoint; the image's environment already points here.\n\
                 export VIRTUAL_ENV={VENV}\ncase \":$PATH:\" in *\":{VENV}/bin:\"*) ;; \
                 *) export PATH=\"{VENV}/bin:$PATH\" ;; esac\ndeactivate() {{ :; }}\n"
            )
            .into_bytes(),
            0o644,
            BENTO_UID,
        ),
    ];
    for (name, to) in [
        ("python", python.to_string()),
        ("python3", "python".into()),
        (&format!("python{version}")[..], "python".into()),
    ] {
        entries.push(Entry {
            path: format!("{venv}/bin/{name}"),
            content: Content::Symlink(to),
            mode: 0o777,
            uid: BENTO_UID,
            gid: BENTO_UID,
        });
    }
    for mut e in layer::tree(target, &site, BENTO_UID).map_err(io)? {
        // Scripts go to the venv's bin, their interpreter line pointing at the venv's python
        // (pip wrote the builder's own).
        if let Some(script) = e.path.strip_prefix(&format!("{site}/bin/")) {
            let script = script.to_string();
            if let Content::File(src) = &e.content {
                let data = std::fs::read(src).map_err(io)?;
                let data = if data.starts_with(b"#!") {
                    let rest = data
                        .iter()
                        .position(|b| *b == b'\n')
                        .map(|i| &data[i..])
                        .unwrap_or(b"\n");
                    let mut v = format!("#!{VENV}/bin/python").into_bytes();
                    v.extend_from_slice(rest);
                    v
                } else {
                    data
                };
                entries.push(Entry::bytes(
                    format!("{venv}/bin/{script}"),
                    data,
                    0o755,
                    BENTO_UID,
                ));
            }
            continue;
        }
        if e.path == format!("{site}/bin") {
            continue;
        }
        e.uid = BENTO_UID;
        e.gid = BENTO_UID;
        entries.push(e);
    }
    entries.extend(user_entries(facts));
    Ok(entries)
}

/// `/etc/passwd` and `/etc/group` of the base with the `bentoml` user and group added.
fn user_entries(facts: &BaseFacts) -> Vec<Entry> {
    fn with_line(base: &Option<Vec<u8>>, default: &str, line: String) -> Vec<u8> {
        let mut data = base.clone().unwrap_or_else(|| default.as_bytes().to_vec());
        let present = String::from_utf8_lossy(&data)
            .lines()
            .any(|l| l.split(':').next() == Some("bentoml"));
        if !present {
            if !data.is_empty() && !data.ends_with(b"\n") {
                data.push(b'\n');
            }
            data.extend_from_slice(line.as_bytes());
        }
        data
    }
    let passwd = with_line(
        &facts.passwd,
        "root:x:0:0:root:/root:/bin/sh\n",
        format!("bentoml:x:{BENTO_UID}:{BENTO_UID}::/home/bentoml:/bin/sh\n"),
    );
    let group = with_line(
        &facts.group,
        "root:x:0:\n",
        format!("bentoml:x:{BENTO_UID}:\n"),
    );
    vec![
        Entry::dir("etc", 0o755, 0),
        Entry::bytes("etc/passwd", passwd, 0o644, 0),
        Entry::bytes("etc/group", group, 0o644, 0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheel_platforms_cover_every_older_glibc() {
        let p = Platform {
            arch: "amd64".into(),
            glibc: (2, 36),
        };
        let tags = p.wheel_platforms().unwrap();
        assert_eq!(tags[0], "manylinux_2_36_x86_64");
        assert!(tags.contains(&"manylinux_2_17_x86_64".to_string()));
        assert!(tags.contains(&"manylinux2014_x86_64".to_string()));
        assert!(tags.contains(&"manylinux1_x86_64".to_string()));
        assert!(!tags.iter().any(|t| t.contains("2_37")));
        let arm = Platform {
            arch: "arm64".into(),
            glibc: (2, 31),
        };
        assert!(arm
            .wheel_platforms()
            .unwrap()
            .contains(&"manylinux2014_aarch64".to_string()));
        assert!(Platform {
            arch: "riscv64".into(),
            glibc: (2, 36)
        }
        .wheel_platforms()
        .is_err());
    }

    #[test]
    fn glibc_versions_are_read() {
        assert_eq!(glibc_from_name("libc-2.31.so"), Some((2, 31)));
        let bin =
            b"\0\0GNU C Library (Debian GLIBC 2.36-9+deb12u4) stable release version 2.36.\n\0";
        assert_eq!(glibc_from_binary(bin), Some((2, 36)));
    }

    #[test]
    fn requirement_names_are_normalized() {
        assert_eq!(requirement_name("Foo_Bar[x]>=1"), "foo-bar");
        assert_eq!(requirement_name("bentoml==1.4.40"), "bentoml");
        assert_eq!(requirement_name("zope.interface==6"), "zope-interface");
    }

    #[test]
    fn bentoml_is_added_when_the_lock_lacks_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("env/python")).unwrap();
        std::fs::write(
            dir.path().join("env/python/requirements.lock.txt"),
            "--find-links /opt/no-such-wheels\n\nattrs==23.1.0\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("env/python/requirements.txt"), "attrs\n").unwrap();
        let m = crate::bento::parse_manifest(
            "name: a\nversion: b\nbentoml_version: 1.0.20\nservice: s:svc\n",
        )
        .unwrap();
        let (text, source) = requirements(&m, dir.path()).unwrap();
        assert_eq!(source, "env/python/requirements.lock.txt");
        assert_eq!(text, "\nattrs==23.1.0\nbentoml==1.0.20\nsetuptools<70\n");

        let m = crate::bento::parse_manifest(
            "name: a\nversion: b\nbentoml_version: 1.4.40\nimage: {python_version: '3.11'}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("env/python/requirements.txt"),
            "bentoml==1.4.40\nnumpy==2\n",
        )
        .unwrap();
        let (text, source) = requirements(&m, dir.path()).unwrap();
        assert_eq!(source, "env/python/requirements.txt");
        assert_eq!(text, "bentoml==1.4.40\nnumpy==2\n");
    }

    #[test]
    fn cache_key_changes_with_each_input() {
        let k = cache_key("a==1\n", "sha256:1", "linux/amd64", "", Installer::Pip);
        assert_eq!(
            k,
            cache_key("a==1\n", "sha256:1", "linux/amd64", "", Installer::Pip)
        );
        assert_ne!(
            k,
            cache_key("a==2\n", "sha256:1", "linux/amd64", "", Installer::Pip)
        );
        assert_ne!(
            k,
            cache_key("a==1\n", "sha256:2", "linux/amd64", "", Installer::Pip)
        );
        assert_ne!(
            k,
            cache_key("a==1\n", "sha256:1", "linux/arm64", "", Installer::Pip)
        );
        assert_ne!(
            k,
            cache_key("a==1\n", "sha256:1", "linux/amd64", "3.12", Installer::Pip)
        );
        assert_ne!(
            k,
            cache_key("a==1\n", "sha256:1", "linux/amd64", "", Installer::Uv)
        );
    }

    #[test]
    fn missing_wheels_name_the_package() {
        let p = Platform {
            arch: "amd64".into(),
            glibc: (2, 36),
        };
        let e = install_error(
            Installer::Pip,
            "ERROR: Could not find a version that satisfies the requirement nosuchpkg==9.9 (from versions: none)\nERROR: No matching distribution found for nosuchpkg==9.9\n",
            "3.11",
            &p,
        );
        match e {
            BuildError::MissingWheel { package, .. } => assert_eq!(package, "nosuchpkg==9.9"),
            other => panic!("{other:?}"),
        }
        let e = install_error(Installer::Uv, "  × No solution found when resolving dependencies:\n  ╰─▶ Because nosuchpkg was not found in the package registry and you require nosuchpkg, we can conclude that your requirements are unsatisfiable.", "3.11", &p);
        assert!(
            matches!(e, BuildError::MissingWheel { ref package, .. } if package == "nosuchpkg"),
            "{e:?}"
        );
    }
}
