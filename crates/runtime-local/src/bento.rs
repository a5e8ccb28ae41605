//! Bento files on disk: `<data_dir>/bentos/<repo>/<version>`, extracted once from the archive
//! the server's storage gives, with the models the bento uses under `models/NAME/VERSION`
//! (where `bentoml serve <bento_dir>` looks for them, as in the image builder's bento layer).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use yatai_client::Kind;
use yatai_domain::manifest::BentoManifest;
use yatai_image_builder::{bento, BuildError, Fetch};

/// Whether `s` is usable as one path component (names, versions, uids are; `..`, `a/b` not).
pub fn is_safe_component(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn fetch_error(e: BuildError, what: &str) -> String {
    match e {
        BuildError::NotFound(m) => format!(
            "{what} cannot be fetched: {m}; push it to this Yatai again, or deploy another version"
        ),
        BuildError::NotUploaded(m) => {
            format!("{what} is not uploaded completely ({m}); push it again, then deploy again")
        }
        other => format!("{what} cannot be fetched: {other}"),
    }
}

/// Makes sure the bento `repo:version` is extracted (with its models) and returns its
/// directory and manifest. Extracts into a temporary sibling and renames it into place, so a
/// directory under the final name is always complete.
pub async fn ensure(
    data_dir: &Path,
    fetch: &Arc<dyn Fetch>,
    repo: &str,
    version: &str,
) -> Result<(PathBuf, BentoManifest), String> {
    let what = format!("bento {repo}:{version}");
    if !is_safe_component(repo) || !is_safe_component(version) {
        return Err(format!(
            "{what} has a name that cannot be used as a directory name; use letters, digits, \
             '-', '_' and '.'"
        ));
    }
    let root = data_dir.join("bentos");
    let dest = root.join(repo).join(version);
    if dest.join("bento.yaml").is_file() {
        let d = dest.clone();
        let w = what.clone();
        let manifest = tokio::task::spawn_blocking(move || bento::read_manifest(&d, &w))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        return Ok((dest, manifest));
    }
    std::fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = root.join(format!(".tmp-{repo}-{version}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let _scratch = crate::env::Scratch(tmp.clone());
    let result = fill(&tmp, fetch, repo, version, &what).await;
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let bento_tmp = tmp.join("bento");
    std::fs::create_dir_all(dest.parent().unwrap_or(&root))
        .map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let renamed = std::fs::rename(&bento_tmp, &dest);
    let _ = std::fs::remove_dir_all(&tmp);
    match renamed {
        Ok(()) => Ok((dest, manifest)),
        // Extracted meanwhile by someone else: theirs is as good.
        Err(_) if dest.join("bento.yaml").is_file() => Ok((dest, manifest)),
        Err(e) => Err(format!("cannot move {what} into {}: {e}", dest.display())),
    }
}

async fn fill(
    tmp: &Path,
    fetch: &Arc<dyn Fetch>,
    repo: &str,
    version: &str,
    what: &str,
) -> Result<BentoManifest, String> {
    let bento_dir = tmp.join("bento");
    std::fs::create_dir_all(&bento_dir)
        .map_err(|e| format!("cannot create {}: {e}", bento_dir.display()))?;
    let archive = tmp.join("bento.archive");
    fetch
        .fetch(Kind::Bento, repo, version, &archive)
        .await
        .map_err(|e| fetch_error(e, what))?;
    let manifest = {
        let (a, d, w) = (archive.clone(), bento_dir.clone(), what.to_string());
        tokio::task::spawn_blocking(move || {
            bento::extract(&a, &d, &w)?;
            bento::read_manifest(&d, &w)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?
    };
    let _ = std::fs::remove_file(&archive);
    for tag in manifest.model_tags() {
        let Some((model, mversion)) = tag.split_once(':') else {
            continue;
        };
        let mwhat = format!("model {tag} (used by {what})");
        if !is_safe_component(model) || !is_safe_component(mversion) {
            return Err(format!(
                "{mwhat} has a name that cannot be used as a directory name"
            ));
        }
        let dir = bento_dir.join("models").join(model).join(mversion);
        if dir.join("model.yaml").exists() {
            continue;
        }
        let marchive = tmp.join(format!("model-{model}-{mversion}.archive"));
        fetch
            .fetch(Kind::Model, model, mversion, &marchive)
            .await
            .map_err(|e| fetch_error(e, &mwhat))?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let (a, d, w) = (marchive.clone(), dir.clone(), mwhat.clone());
        tokio::task::spawn_blocking(move || bento::extract(&a, &d, &w))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        // bentoml resolves `name:latest` through this file, as in the image builder.
        let latest = bento_dir.join("models").join(model).join("latest");
        if !latest.exists() {
            std::fs::write(&latest, mversion)
                .map_err(|e| format!("cannot write {}: {e}", latest.display()))?;
        }
        let _ = std::fs::remove_file(&marchive);
    }
    Ok(manifest)
}
