//! Bento and model repositories, their versions, and the transfer of archives.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{LabelItem, OrganizationSchema, ResourceSchema, UserSchema};

/// Where the image of a bento version stands (`image_build_status`), as in Yatai 1.x.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ImageBuildStatus {
    /// Nothing built yet (the state of every new version).
    #[default]
    Pending,
    /// A builder is at work.
    Building,
    /// The image is in the registry (`image_reference`).
    Success,
    /// The last build failed (`image_build_reason` says why).
    Failed,
}

impl ImageBuildStatus {
    /// Every status, in life-cycle order.
    pub const ALL: [ImageBuildStatus; 4] = [
        ImageBuildStatus::Pending,
        ImageBuildStatus::Building,
        ImageBuildStatus::Success,
        ImageBuildStatus::Failed,
    ];

    /// The wire (and stored) name.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageBuildStatus::Pending => "pending",
            ImageBuildStatus::Building => "building",
            ImageBuildStatus::Success => "success",
            ImageBuildStatus::Failed => "failed",
        }
    }

    /// Parses a wire or stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for ImageBuildStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bento or model version as the clients read it. `name` is the version; for a bento the
/// `resource_type` is `bento`, for a model `model`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct VersionSchema {
    #[serde(flatten)]
    pub resource: ResourceSchema,
    pub version: String,
    #[serde(default)]
    pub description: String,
    /// `pending`, `building`, `success` or `failed` (bentos; models always `pending`).
    #[serde(default)]
    pub image_build_status: String,
    /// The image built for this bento, once `image_build_status` is `success`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_reference: Option<String>,
    /// Why the last image build failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_build_reason: Option<String>,
    /// `pending`, `uploading`, `success` or `failed`.
    pub upload_status: String,
    #[serde(default)]
    pub upload_finished_reason: String,
    #[serde(default)]
    pub upload_started_at: Option<String>,
    #[serde(default)]
    pub upload_finished_at: Option<String>,
    /// Filled only by `presign_upload_url` / `presign_multipart_upload_url`; never null.
    #[serde(default)]
    pub presigned_upload_url: String,
    /// Filled only by `presign_download_url`; never null.
    #[serde(default)]
    pub presigned_download_url: String,
    /// `proxy`, `presigned_url` (multipart) or null (ask `presign_*_url`).
    #[serde(default)]
    pub transmission_strategy: Option<String>,
    #[serde(default)]
    pub upload_id: String,
    #[schema(value_type = Object)]
    pub manifest: serde_json::Value,
    #[serde(default)]
    pub build_at: String,
    /// Size in bytes of the stored archive, once uploaded.
    #[serde(default)]
    pub archive_size: Option<i64>,
    /// SHA-256 of the stored archive, once uploaded.
    #[serde(default)]
    pub archive_sha256: Option<String>,
    #[serde(default)]
    pub creator: Option<UserSchema>,
    /// The repository, in lists that span repositories and in a version's full form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub repository: Option<Box<RepositorySchema>>,
    /// A bento's models (full form only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub models: Option<Vec<VersionSchema>>,
}

impl VersionSchema {
    /// Whether the archive is stored and can be downloaded.
    pub fn is_uploaded(&self) -> bool {
        self.upload_status == "success"
    }

    /// The parsed image build status (unknown values read as pending).
    pub fn image_status(&self) -> ImageBuildStatus {
        ImageBuildStatus::parse(&self.image_build_status).unwrap_or_default()
    }
}

/// A bento version (`resource_type` `bento`).
pub type BentoSchema = VersionSchema;
/// A model version (`resource_type` `model`).
pub type ModelSchema = VersionSchema;

/// A bento or model repository. `latest_bento` / `latest_model` and `n_bentos` / `n_models` are
/// named after the kind, so they live in `kind_fields`; [`RepositorySchema::latest`] and
/// [`RepositorySchema::n_versions`] read them for either kind.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct RepositorySchema {
    #[serde(flatten)]
    pub resource: ResourceSchema,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub creator: Option<UserSchema>,
    #[serde(default)]
    pub organization: Option<OrganizationSchema>,
    /// `latest_bento` or `latest_model`, and `n_bentos` or `n_models`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub kind_fields: KindFields,
}

/// A repository's newest version and number of versions, written `latest_bento` and `n_bentos`
/// (or `latest_model` and `n_models`) after its kind, each only when set: a repository embedded
/// in a version has neither, a deployment's bento names `latest_bento` as null.
///
/// Typed, not a JSON map: a page of 20 repositories built a map of every latest version (and its
/// manifest) only to write it out again, about a tenth of a fresh page's instructions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindFields {
    /// `bento` or `model`: what the fields are named after.
    pub kind: String,
    /// The newest version, when set; `Some(None)` is written as null.
    pub latest: Option<Option<Box<VersionSchema>>>,
    /// The number of versions, when set.
    pub n_versions: Option<u64>,
}

impl Serialize for KindFields {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        if let Some(latest) = &self.latest {
            map.serialize_entry(&format!("latest_{}", self.kind), latest)?;
        }
        if let Some(n) = self.n_versions {
            map.serialize_entry(&format!("n_{}s", self.kind), &n)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for KindFields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The fields the repository's other members leave (it is flattened into them).
        let rest = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let mut out = KindFields::default();
        for kind in ["bento", "model"] {
            if let Some(v) = rest.get(&format!("latest_{kind}")) {
                out.kind = kind.to_string();
                // A latest version this client cannot read is none, not a failed answer.
                out.latest = Some(serde_json::from_value(v.clone()).ok().map(Box::new));
            }
            if let Some(n) = rest.get(&format!("n_{kind}s")).and_then(|v| v.as_u64()) {
                out.kind = kind.to_string();
                out.n_versions = Some(n);
            }
        }
        Ok(out)
    }
}

impl RepositorySchema {
    /// The newest version (`latest_bento` or `latest_model`), when there is one.
    pub fn latest(&self) -> Option<VersionSchema> {
        self.kind_fields.latest.clone().flatten().map(|v| *v)
    }

    /// How many versions the repository holds (`n_bentos` or `n_models`).
    pub fn n_versions(&self) -> u64 {
        self.kind_fields.n_versions.unwrap_or(0)
    }
}

/// Query of list endpoints: paging, a search text, and Yatai's `q` mini-language
/// (`label:KEY=VALUE`, `sort:FIELD-asc|desc`, `status:success`, other words search).
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Index of the first item (default 0).
    pub start: Option<i64>,
    /// How many items (default 20, at most 1000).
    pub count: Option<i64>,
    /// Words to find in names and versions.
    pub search: Option<String>,
    /// `label:KEY=VALUE`, `sort:FIELD-asc|desc`, `status:STATUS` and words, separated by spaces.
    pub q: Option<String>,
}

/// The body of a repository creation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateRepository {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// The body of a repository update.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpdateRepository {
    pub description: Option<String>,
}

/// The body of a version creation, as the clients send it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateVersion {
    pub version: String,
    #[serde(default)]
    pub description: String,
    /// The manifest as the client builds it; stored and returned unchanged.
    #[schema(value_type = Object)]
    pub manifest: serde_json::Value,
    /// `%Y-%m-%d %H:%M:%S.%f` (UTC) or RFC 3339.
    #[serde(default)]
    pub build_at: Option<String>,
    #[serde(default)]
    pub labels: Option<Vec<LabelItem>>,
}

/// The body of a version update; absent fields stay.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpdateVersion {
    pub description: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub manifest: Option<serde_json::Value>,
    pub labels: Option<Vec<LabelItem>>,
}

/// The body of `presign_multipart_upload_url`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PresignPart {
    pub upload_id: String,
    pub part_number: u16,
}

/// One uploaded part.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompletedPart {
    pub part_number: u16,
    pub etag: String,
}

/// The body of `complete_multipart_upload`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CompleteMultipart {
    pub upload_id: String,
    pub parts: Vec<CompletedPart>,
}

/// The body of `finish_upload`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FinishUpload {
    pub status: String,
    #[serde(default)]
    pub reason: String,
}

/// The body of `PATCH /api/v1/bento_repositories/{name}/bentos/{version}/update_image_build_status`.
///
/// Yatai 1.x and its image builder send only `image_build_status`; `image_reference` and
/// `reason` are ours and optional, so their requests keep working.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct UpdateImageBuildStatusSchema {
    pub image_build_status: ImageBuildStatus,
    /// The image reference (`server/repository:tag` or `...@sha256:...`) of a successful build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_reference: Option<String>,
    /// Why the build failed (kept with `failed`, cleared by any other status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_build_status_round_trips_on_the_wire() {
        for s in ImageBuildStatus::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<ImageBuildStatus>(&json).unwrap(), s);
            assert_eq!(ImageBuildStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(ImageBuildStatus::parse("done"), None);
    }

    #[test]
    fn yatai1_image_builder_body_is_accepted() {
        // What bentoml/yatai-image-builder sends: the status alone.
        let body: UpdateImageBuildStatusSchema =
            serde_json::from_str(r#"{"image_build_status":"building"}"#).unwrap();
        assert_eq!(body.image_build_status, ImageBuildStatus::Building);
        assert_eq!(body.image_reference, None);
        assert!(serde_json::from_str::<UpdateImageBuildStatusSchema>(
            r#"{"image_build_status":"done"}"#
        )
        .is_err());
    }

    #[test]
    fn repository_reads_latest_and_count_for_both_kinds() {
        let version = serde_json::json!({
            "uid": "v1", "name": "1", "resource_type": "model", "labels": [],
            "created_at": "2024-01-01T00:00:00Z", "updated_at": null, "deleted_at": null,
            "version": "1", "description": "", "image_build_status": "pending",
            "upload_status": "success", "upload_finished_reason": "",
            "upload_started_at": null, "upload_finished_at": null,
            "presigned_upload_url": "", "presigned_download_url": "",
            "transmission_strategy": "proxy", "upload_id": "", "manifest": {"size_bytes": 3},
            "build_at": "2024-01-01T00:00:00Z", "archive_size": 10, "archive_sha256": "ab",
            "creator": null
        });
        let repo: RepositorySchema = serde_json::from_value(serde_json::json!({
            "uid": "r", "name": "iris", "resource_type": "model_repository", "labels": [],
            "created_at": "2024-01-01T00:00:00Z", "description": "", "creator": null,
            "organization": null, "latest_model": version, "n_models": 4
        }))
        .unwrap();
        assert_eq!(repo.n_versions(), 4);
        let latest = repo.latest().unwrap();
        assert_eq!(latest.version, "1");
        assert!(latest.is_uploaded());
        assert_eq!(latest.image_status(), ImageBuildStatus::Pending);
        // Serializing again gives the same JSON (nothing lost, nothing added).
        let again = serde_json::to_value(&latest).unwrap();
        assert_eq!(again, version);
    }
}
