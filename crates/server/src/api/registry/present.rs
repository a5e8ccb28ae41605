//! Turns stored repositories and versions into the JSON the clients read.

use std::collections::HashMap;

use yatai_domain::registry::{announced_strategy, ClientGeneration};
use yatai_domain::time::to_rfc3339;
use yatai_domain::Error;
use yatai_service::registry::repositories;
use yatai_store::db::repositories::Repository;
use yatai_store::db::versions::Version;
use yatai_store::db::{image_builds, labels, repositories as repository_rows, users};

use crate::api::schemas::{self, LabelItem, RepositorySchema, UserSchema, VersionSchema};
use crate::AppState;

/// Builds response shapes, looking up creators and labels once per batch.
pub struct Presenter<'a> {
    state: &'a AppState,
    client: ClientGeneration,
    users: HashMap<String, Option<UserSchema>>,
}

impl<'a> Presenter<'a> {
    /// A presenter for one request.
    pub fn new(state: &'a AppState, client: ClientGeneration) -> Self {
        Presenter {
            state,
            client,
            users: HashMap::new(),
        }
    }

    /// Looks up the users not seen yet in one query.
    async fn load_users(&mut self, uids: impl Iterator<Item = String>) -> Result<(), Error> {
        let mut missing: Vec<String> = uids.filter(|u| !self.users.contains_key(u)).collect();
        missing.sort();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let found = users::find_many(self.state.db.pool(), &missing).await?;
        for uid in missing {
            let user = found.iter().find(|u| u.uid == uid).map(schemas::user);
            self.users.insert(uid, user);
        }
        Ok(())
    }

    async fn user(&mut self, uid: Option<&String>) -> Result<Option<UserSchema>, Error> {
        let Some(uid) = uid else { return Ok(None) };
        if !self.users.contains_key(uid) {
            let user = users::find_by_uid(self.state.db.pool(), uid).await?;
            self.users
                .insert(uid.clone(), user.as_ref().map(schemas::user));
        }
        Ok(self.users[uid].clone())
    }

    /// Versions as the clients read them; `is_get` marks a plain read (see [`announced_strategy`]);
    /// `with_repository` embeds each version's repository.
    pub async fn versions(
        &mut self,
        list: &[Version],
        is_get: bool,
        with_repository: bool,
    ) -> Result<Vec<VersionSchema>, Error> {
        let repos = if with_repository {
            let mut repo_uids: Vec<String> =
                list.iter().map(|v| v.repository_uid.clone()).collect();
            repo_uids.sort();
            repo_uids.dedup();
            repository_rows::find_many(self.state.db.pool(), &repo_uids).await?
        } else {
            Vec::new()
        };
        self.versions_in(list, is_get, &repos).await
    }

    /// [`Self::versions`] of versions whose repositories were read already (`repos`, each
    /// embedded in its versions; a version whose repository is not given embeds none).
    pub async fn versions_in(
        &mut self,
        list: &[Version],
        is_get: bool,
        repos: &[Repository],
    ) -> Result<Vec<VersionSchema>, Error> {
        let uids: Vec<String> = list.iter().map(|v| v.uid.clone()).collect();
        let mut label_map = labels::of(self.state.db.pool(), &uids).await?;
        let builds = image_builds::of(self.state.db.pool(), &uids).await?;
        self.load_users(
            list.iter()
                .filter_map(|v| v.creator_uid.clone())
                .chain(repos.iter().filter_map(|r| r.creator_uid.clone())),
        )
        .await?;
        let mut out = Vec::with_capacity(list.len());
        for v in list {
            let mut schema = self
                .version_schema(v, label_map.remove(&v.uid).unwrap_or_default(), is_get)
                .await?;
            if let Some(b) = builds.get(&v.uid) {
                schema.image_reference = Some(b.image_reference.clone()).filter(|r| !r.is_empty());
                schema.image_build_reason = Some(b.reason.clone()).filter(|r| !r.is_empty());
            }
            if let Some(repo) = repos.iter().find(|r| r.uid == v.repository_uid) {
                let repo_schema = self.repository_shell(repo).await?;
                schema.repository = Some(Box::new(
                    serde_json::to_value(repo_schema)
                        .map_err(|e| Error::Internal(e.to_string()))?,
                ));
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

    async fn version_schema(
        &mut self,
        v: &Version,
        label_list: Vec<(String, String)>,
        is_get: bool,
    ) -> Result<VersionSchema, Error> {
        let kind = v.kind;
        let manifest: serde_json::Value =
            serde_json::from_str(&v.manifest).unwrap_or(serde_json::Value::Null);
        // The transfer path follows the size of the push in progress (its proposed manifest), if any.
        let manifest_size = match &v.push_manifest {
            Some(m) => serde_json::from_str::<serde_json::Value>(m).unwrap_or_default(),
            None => manifest.clone(),
        }
        .get("size_bytes")
        .and_then(|s| s.as_u64())
        .unwrap_or(0);
        let mut resource = schemas::resource(
            kind.as_str(),
            &v.uid,
            &v.version,
            v.created_at,
            v.updated_at,
        );
        resource.labels = label_list
            .into_iter()
            .map(|(key, value)| LabelItem { key, value })
            .collect();
        Ok(VersionSchema {
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
            creator: self.user(v.creator_uid.as_ref()).await?,
            repository: None,
            models: None,
        })
    }

    /// A repository without its latest version (to embed in versions).
    async fn repository_shell(&mut self, r: &Repository) -> Result<RepositorySchema, Error> {
        let kind = r.kind;
        Ok(RepositorySchema {
            resource: schemas::resource(
                kind.repository_type(),
                &r.uid,
                &r.name,
                r.created_at,
                r.updated_at,
            ),
            description: r.description.clone(),
            creator: self.user(r.creator_uid.as_ref()).await?,
            organization: None,
            kind_fields: serde_json::Map::new(),
        })
    }

    /// Repositories with their latest version and number of versions.
    pub async fn repositories(
        &mut self,
        list: &[Repository],
    ) -> Result<Vec<RepositorySchema>, Error> {
        let latest = repositories::latest_versions(self.state, list).await?;
        let newest: Vec<Version> = latest.iter().filter_map(|(v, _)| v.clone()).collect();
        let mut newest_schemas = self.versions(&newest, true, false).await?.into_iter();
        self.load_users(list.iter().filter_map(|r| r.creator_uid.clone()))
            .await?;
        let mut out = Vec::with_capacity(list.len());
        for (r, (v, n)) in list.iter().zip(latest) {
            let kind = r.kind;
            let mut schema = self.repository_shell(r).await?;
            let latest = v.and_then(|_| newest_schemas.next());
            let value = serde_json::to_value(latest).map_err(|e| Error::Internal(e.to_string()))?;
            schema
                .kind_fields
                .insert(format!("latest_{}", kind.as_str()), value);
            schema
                .kind_fields
                .insert(format!("n_{}s", kind.as_str()), n.into());
            out.push(schema);
        }
        Ok(out)
    }

    /// One repository.
    pub async fn repository(&mut self, r: &Repository) -> Result<RepositorySchema, Error> {
        Ok(self.repositories(std::slice::from_ref(r)).await?.remove(0))
    }
}
