//! The names of archives in object storage: one format, for the server and the import.

use yatai_domain::registry::Kind;

/// The key of one archive of a version: `<bentos|models>/<organization uid>/<repository>/
/// <version>/<unique>`. Every upload writes its own key (`unique` is fresh), so a failed or
/// concurrent upload never touches the archive being served.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArchiveKey(String);

impl ArchiveKey {
    /// The key of an archive of `version`, told apart from its other archives by `unique`.
    pub fn new(
        kind: Kind,
        organization_uid: &str,
        repository: &str,
        version: &str,
        unique: &str,
    ) -> Self {
        ArchiveKey(format!(
            "{}/{organization_uid}/{repository}/{version}/{unique}",
            kind.object_prefix()
        ))
    }

    /// A key for a new upload of `version` (a fresh unique part).
    pub fn fresh(kind: Kind, organization_uid: &str, repository: &str, version: &str) -> Self {
        Self::new(
            kind,
            organization_uid,
            repository,
            version,
            &crate::new_uid(),
        )
    }

    /// The key as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as stored, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Where the archives of a presigned single PUT to `upload_key` are checked, and then served:
/// each finish moves the uploaded object to a new key in this folder, which no URL is ever
/// made for and nothing writes again. The PUT URL stays valid until it expires, so what is
/// checked must be out of its reach, and a copy that another finish could replace would not
/// be. The folder is named after the upload's key, so that a finish interrupted after the move
/// (a crash, a failed commit) finds the archive again, and what a failed or abandoned upload
/// left is found with the upload.
pub fn checked_copies(upload_key: &str) -> String {
    format!("{upload_key}.checked")
}

/// A new key in [`checked_copies`] of `upload_key`.
pub fn new_checked_copy(upload_key: &str) -> String {
    format!("{}/{}", checked_copies(upload_key), crate::new_uid())
}

impl std::fmt::Display for ArchiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_kind_organization_repository_version() {
        let k = ArchiveKey::new(Kind::Model, "org1", "iris", "v2", "u");
        assert_eq!(k.as_str(), "models/org1/iris/v2/u");
        let a = ArchiveKey::fresh(Kind::Bento, "o", "r", "v");
        assert!(a.as_str().starts_with("bentos/o/r/v/"));
        assert_ne!(a, ArchiveKey::fresh(Kind::Bento, "o", "r", "v"));
    }
}
