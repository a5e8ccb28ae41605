//! Turns stored repositories and versions into the JSON the clients read.

use yatai_domain::registry::{announced_strategy, ClientGeneration};
use yatai_domain::time::to_rfc3339;
use yatai_domain::Error;
use yatai_service::registry::repositories;
use yatai_store::db::related::Related;
use yatai_store::db::repositories::{Repository, RepositoryPage};
use yatai_store::db::versions::Version;

use crate::api::schemas::{
    self, KindFields, LabelItem, RepositorySchema, UserSchema, VersionSchema,
};
use crate::AppState;

/// Builds response shapes from stored rows and the [`Related`] rows read with them.
pub struct Presenter<'a> {
    state: &'a AppState,
    client: ClientGeneration,
}

/// A creator as the clients read it.
fn creator(related: &Related, uid: Option<&str>) -> Option<UserSchema> {
    uid.and_then(|u| related.user(u)).map(schemas::user)
}

impl<'a> Presenter<'a> {
    /// A presenter for one request.
    pub fn new(state: &'a AppState, client: ClientGeneration) -> Self {
        Presenter { state, client }
    }

    /// Versions as the clients read them; `is_get` marks a plain read (see [`announced_strategy`]);
    /// `with_repository` embeds each version's repository.
    pub async fn versions(
        &mut self,
        list: &[Version],
        is_get: bool,
        with_repository: bool,
    ) -> Result<Vec<VersionSchema>, Error> {
        let related = Related::of_versions(&self.state.db, list, with_repository).await?;
        self.versions_related(list, is_get, &related, with_repository)
    }

    /// [`Self::versions`] of versions whose [`Related`] rows were read with them (a page); with
    /// `with_repository`, each version embeds its repository when `related` holds it.
    pub fn versions_related(
        &self,
        list: &[Version],
        is_get: bool,
        related: &Related,
        with_repository: bool,
    ) -> Result<Vec<VersionSchema>, Error> {
        let mut out = Vec::with_capacity(list.len());
        for v in list {
            let mut schema = self.version_schema(v, related.labels(&v.uid), is_get, related);
            if let Some(b) = related.build(&v.uid) {
                schema.image_reference = Some(b.image_reference.clone()).filter(|r| !r.is_empty());
                schema.image_build_reason = Some(b.reason.clone()).filter(|r| !r.is_empty());
            }
            if let Some(repo) = related
                .repository(&v.repository_uid)
                .filter(|_| with_repository)
            {
                schema.repository = Some(Box::new(self.repository_shell(repo, related)));
            }
            out.push(schema);
        }
        Ok(out)
    }

    /// One version.
    pub async fn version(&mut self, v: &Version, is_get: bool) -> Result<VersionSchema, Error> {
        Ok(self
            .versions(std::slice::from_ref(v), is_get, false)
            .await?
            .remove(0))
    }

    fn version_schema(
        &self,
        v: &Version,
        label_list: &[(String, String)],
        is_get: bool,
        related: &Related,
    ) -> VersionSchema {
        let kind = v.kind;
        let manifest: serde_json::Value =
            serde_json::from_str(&v.manifest).unwrap_or(serde_json::Value::Null);
        // The transfer path follows the size of the push in progress (its proposed manifest), if any.
        let size = |m: &serde_json::Value| m.get("size_bytes").and_then(|s| s.as_u64());
        let manifest_size = match &v.push_manifest {
            Some(m) => size(&serde_json::from_str(m).unwrap_or_default()),
            None => size(&manifest),
        }
        .unwrap_or(0);
        let mut resource = schemas::resource(
            kind.as_str(),
            &v.uid,
            &v.version,
            v.created_at,
            v.updated_at,
        );
        resource.labels = label_list
            .iter()
            .map(|(key, value)| LabelItem {
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        VersionSchema {
            resource,
            version: v.version.clone(),
            description: v.description.clone(),
            image_build_status: v.image_build_status.to_string(),
            image_reference: None,
            image_build_reason: None,
            upload_status: v.upload_status.as_str().to_string(),
            upload_finished_reason: v.upload_finished_reason.clone(),
            upload_started_at: v.upload_started_at.map(to_rfc3339),
            upload_finished_at: v.upload_finished_at.map(to_rfc3339),
            presigned_upload_url: String::new(),
            presigned_download_url: String::new(),
            transmission_strategy: announced_strategy(
                self.state.settings.transmission_strategy,
                self.client,
                v.status(),
                manifest_size,
                is_get,
            )
            .map(str::to_string),
            upload_id: String::new(),
            manifest,
            build_at: to_rfc3339(v.build_at),
            archive_size: v.archive_size,
            archive_sha256: v.archive_sha256.clone(),
            creator: creator(related, v.creator_uid.as_deref()),
            repository: None,
            models: None,
        }
    }

    /// A repository without its latest version (to embed in versions).
    fn repository_shell(&self, r: &Repository, related: &Related) -> RepositorySchema {
        let kind = r.kind;
        RepositorySchema {
            resource: schemas::resource(
                kind.repository_type(),
                &r.uid,
                &r.name,
                r.created_at,
                r.updated_at,
            ),
            description: r.description.clone(),
            creator: creator(related, r.creator_uid.as_deref()),
            organization: None,
            kind_fields: KindFields::default(),
        }
    }

    /// A page of repositories, each with its latest version and number of versions.
    pub fn repository_page(&self, page: &RepositoryPage) -> Result<Vec<RepositorySchema>, Error> {
        let mut out = Vec::with_capacity(page.repositories.len());
        for r in &page.repositories {
            let kind = r.kind;
            let mut schema = self.repository_shell(r, &page.related);
            let latest = match page.latest.get(&r.uid) {
                Some(v) => self
                    .versions_related(std::slice::from_ref(v), true, &page.related, false)?
                    .pop(),
                None => None,
            };
            let n = page.n_versions.get(&r.uid).copied().unwrap_or(0);
            schema.kind_fields = KindFields {
                kind: kind.as_str().to_string(),
                latest: Some(latest.map(Box::new)),
                n_versions: Some(u64::try_from(n).unwrap_or(0)),
            };
            out.push(schema);
        }
        Ok(out)
    }

    /// One repository, with its latest version and number of versions.
    pub async fn repository(&self, r: &Repository) -> Result<RepositorySchema, Error> {
        let page = repositories::with_latest(self.state, r).await?;
        self.repository_page(&page)?
            .pop()
            .ok_or_else(|| Error::Internal("a page of one repository showed none".into()))
    }
}
