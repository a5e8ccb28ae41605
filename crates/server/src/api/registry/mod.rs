//! The registry: bento and model repositories, their versions, and the transfer of archives.
//!
//! Bentos and models follow one life cycle, so every handler is written once, generic over the
//! kind ([`Bentos`] or [`Models`]), and mounted at both URL trees by one route table.

pub mod image_build;
mod present;
mod repositories;
mod transfer;
mod versions;

use axum::http::{HeaderMap, Method};
use axum::routing::MethodRouter;
use axum::Router;
use serde::Deserialize;
use yatai_domain::registry::{ClientGeneration, Kind, UploadStatus};
use yatai_domain::{Action, Error};
use yatai_store::db::repositories::{self as repos, Repository, RepositoryOrder};
use yatai_store::db::versions::{self as version_rows, Version, VersionFilter, VersionOrder};

use crate::auth::Caller;
use crate::AppState;

pub use present::Presenter;

/// A kind of registry item, with its URL names.
pub trait RegistryKind: Send + Sync + 'static {
    const KIND: Kind;
    /// `bento_repositories` / `model_repositories`.
    const REPOSITORIES: &'static str;
    /// `bentos` / `models`.
    const VERSIONS: &'static str;
}

/// Bentos: `/api/v1/bento_repositories/{name}/bentos/{version}`.
pub struct Bentos;
/// Models: `/api/v1/model_repositories/{name}/models/{version}`.
pub struct Models;

impl RegistryKind for Bentos {
    const KIND: Kind = Kind::Bento;
    const REPOSITORIES: &'static str = "bento_repositories";
    const VERSIONS: &'static str = "bentos";
}

impl RegistryKind for Models {
    const KIND: Kind = Kind::Model;
    const REPOSITORIES: &'static str = "model_repositories";
    const VERSIONS: &'static str = "models";
}

/// One route of the registry: method, path, summary (for the OpenAPI document) and handler.
pub struct RegistryRoute {
    pub method: Method,
    pub path: String,
    pub summary: &'static str,
    pub tag: &'static str,
    pub handler: MethodRouter<AppState>,
}

fn route(
    method: Method,
    path: String,
    summary: &'static str,
    tag: &'static str,
    handler: MethodRouter<AppState>,
) -> RegistryRoute {
    RegistryRoute {
        method,
        path,
        summary,
        tag,
        handler,
    }
}

fn kind_routes<K: RegistryKind>() -> Vec<RegistryRoute> {
    let (r, v) = (K::REPOSITORIES, K::VERSIONS);
    let repo = format!("/api/v1/{r}/{{name}}");
    let version = format!("{repo}/{v}/{{version}}");
    let tag = K::VERSIONS;
    use axum::routing::{delete, get, patch, post, put};
    vec![
        route(
            Method::GET,
            format!("/api/v1/{r}"),
            "List repositories (start, count, search, q with label:K=V and sort:FIELD-asc|desc)",
            tag,
            get(repositories::list::<K>),
        ),
        route(
            Method::POST,
            format!("/api/v1/{r}"),
            "Create a repository (returns the existing one if the name is taken)",
            tag,
            post(repositories::create::<K>),
        ),
        route(
            Method::GET,
            repo.clone(),
            "Get a repository with its latest version",
            tag,
            get(repositories::get::<K>),
        ),
        route(
            Method::PATCH,
            repo.clone(),
            "Change a repository's description",
            tag,
            patch(repositories::update::<K>),
        ),
        route(
            Method::DELETE,
            repo.clone(),
            "Delete an empty repository",
            tag,
            delete(repositories::delete::<K>),
        ),
        route(
            Method::GET,
            format!("{repo}/{v}"),
            "List the versions of a repository, newest first",
            tag,
            get(versions::list_in_repository::<K>),
        ),
        route(
            Method::POST,
            format!("{repo}/{v}"),
            "Create a version with its manifest and labels (upload status pending)",
            tag,
            post(versions::create::<K>),
        ),
        route(
            Method::GET,
            version.clone(),
            "Get a version",
            tag,
            get(versions::get::<K>),
        ),
        route(
            Method::PATCH,
            version.clone(),
            "Change a version's description, manifest or labels",
            tag,
            patch(versions::update::<K>),
        ),
        route(
            Method::DELETE,
            version.clone(),
            "Delete a version and its archive",
            tag,
            delete(versions::delete::<K>),
        ),
        route(
            Method::PATCH,
            format!("{version}/start_upload"),
            "Mark the upload as started",
            tag,
            patch(transfer::start_upload::<K>),
        ),
        route(
            Method::PUT,
            format!("{version}/upload"),
            "Proxy upload: the body is the archive, streamed to storage",
            tag,
            put(transfer::upload::<K>),
        ),
        route(
            Method::PATCH,
            format!("{version}/presign_upload_url"),
            "Get a presigned URL for one PUT of the archive",
            tag,
            patch(transfer::presign_upload_url::<K>),
        ),
        route(
            Method::PATCH,
            format!("{version}/start_multipart_upload"),
            "Start a presigned multipart upload (returns upload_id)",
            tag,
            patch(transfer::start_multipart_upload::<K>),
        ),
        route(
            Method::PATCH,
            format!("{version}/presign_multipart_upload_url"),
            "Get a presigned URL for one part",
            tag,
            patch(transfer::presign_multipart_upload_url::<K>),
        ),
        route(
            Method::PATCH,
            format!("{version}/complete_multipart_upload"),
            "Assemble the uploaded parts",
            tag,
            patch(transfer::complete_multipart_upload::<K>),
        ),
        route(
            Method::PATCH,
            format!("{version}/finish_upload"),
            "Finish an upload: success (checked) or failed with a reason",
            tag,
            patch(transfer::finish_upload::<K>),
        ),
        route(
            Method::GET,
            format!("{version}/download"),
            "Proxy download of the archive (supports Range)",
            tag,
            get(transfer::download::<K>),
        ),
        route(
            Method::PATCH,
            format!("{version}/presign_download_url"),
            "Get a presigned URL to download the archive",
            tag,
            patch(transfer::presign_download_url::<K>),
        ),
        route(
            Method::GET,
            format!("/api/v1/{v}"),
            "List the versions of every repository of the organization",
            tag,
            get(versions::list_all::<K>),
        ),
    ]
}

/// Every registry route, for both kinds, plus the relations between bentos and models.
pub fn routes() -> Vec<RegistryRoute> {
    let mut all = kind_routes::<Bentos>();
    all.extend(kind_routes::<Models>());
    all.push(route(
        Method::GET,
        "/api/v1/bento_repositories/{name}/bentos/{version}/models".into(),
        "The models a bento uses (those pushed)",
        "bentos",
        axum::routing::get(versions::models_of_bento),
    ));
    all.push(route(
        Method::PATCH,
        "/api/v1/bento_repositories/{name}/bentos/{version}/update_image_build_status".into(),
        "Set the image build status (pending, building, success with image_reference, failed with reason)",
        "bentos",
        axum::routing::patch(image_build::update_image_build_status),
    ));
    all.push(route(
        Method::GET,
        "/api/v1/model_repositories/{name}/models/{version}/bentos".into(),
        "The bentos that use a model",
        "models",
        axum::routing::get(versions::bentos_of_model),
    ));
    all
}

/// Mounts registry routes on a router.
pub fn mount(mut router: Router<AppState>, routes: Vec<RegistryRoute>) -> Router<AppState> {
    for r in routes {
        router = router.route(&r.path, r.handler);
    }
    router
}

/// Which BentoML client generation sent the request.
pub fn client_generation(headers: &HeaderMap) -> ClientGeneration {
    ClientGeneration::from_header(
        headers
            .get("x-bentoml-version")
            .and_then(|v| v.to_str().ok()),
    )
}

/// Finds a repository of the caller's organization or fails with 404.
pub async fn load_repository<K: RegistryKind>(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> Result<Repository, Error> {
    caller.authorize(Action::ReadRegistry)?;
    repos::find(state.db.pool(), &caller.organization.uid, K::KIND, name)
        .await?
        .ok_or_else(|| Error::not_found(K::KIND.repository_type().replace('_', " ").as_str(), name))
}

/// Finds a version of a repository of the caller's organization or fails with 404.
pub async fn load_version<K: RegistryKind>(
    state: &AppState,
    caller: &Caller,
    name: &str,
    version: &str,
) -> Result<(Repository, Version), Error> {
    let repo = load_repository::<K>(state, caller, name).await?;
    let v = version_rows::find(state.db.pool(), &repo.uid, version)
        .await?
        .ok_or_else(|| Error::not_found(K::KIND.as_str(), format!("{name}:{version}")))?;
    Ok((repo, v))
}

/// Query of list endpoints: paging, a search text, and Yatai's `q` mini-language
/// (`label:KEY=VALUE`, `sort:FIELD-asc|desc`, `status:success`, other words search).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    pub start: Option<i64>,
    pub count: Option<i64>,
    pub search: Option<String>,
    pub q: Option<String>,
}

/// The parsed form of a [`ListQuery`].
#[derive(Debug, Default, PartialEq)]
pub struct ListSpec {
    pub start: i64,
    pub count: i64,
    pub search: String,
    pub labels: Vec<(String, String)>,
    pub sort: Option<(String, bool)>,
    pub status: Option<UploadStatus>,
}

/// The most items one page holds.
pub const MAX_PAGE: i64 = 1000;

impl ListQuery {
    /// Parses and checks the query.
    pub fn parse(&self) -> Result<ListSpec, Error> {
        let start = self.start.unwrap_or(0);
        let count = self.count.unwrap_or(20);
        if start < 0 || !(0..=MAX_PAGE).contains(&count) {
            return Err(Error::invalid(format!(
                "start must be >= 0 and count between 0 and {MAX_PAGE}"
            )));
        }
        let mut spec = ListSpec {
            start,
            count,
            ..Default::default()
        };
        let mut words: Vec<String> = self
            .search
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().to_string())
            .collect();
        for token in self.q.as_deref().unwrap_or("").split_whitespace() {
            if let Some(label) = token.strip_prefix("label:") {
                let (k, v) = label.split_once('=').ok_or_else(|| {
                    Error::invalid(format!(
                        "label filter {token:?} must look like label:KEY=VALUE"
                    ))
                })?;
                spec.labels.push((k.to_string(), v.to_string()));
            } else if let Some(sort) = token.strip_prefix("sort:") {
                let (field, desc) = match sort.rsplit_once('-') {
                    Some((f, "desc")) => (f, true),
                    Some((f, "asc")) => (f, false),
                    _ => (sort, false),
                };
                spec.sort = Some((field.to_string(), desc));
            } else if let Some(status) = token.strip_prefix("status:") {
                spec.status = Some(UploadStatus::parse(status)?);
            } else {
                words.push(token.to_string());
            }
        }
        spec.search = words.join(" ");
        Ok(spec)
    }
}

impl ListSpec {
    /// The store filter of a version list, within one repository when `repository_uid` is given.
    pub fn version_filter(&self, repository_uid: Option<String>) -> Result<VersionFilter, Error> {
        Ok(VersionFilter {
            repository_uid,
            search: self.search.clone(),
            labels: self.labels.clone(),
            upload_status: self.status,
            order: self.version_order()?,
        })
    }

    /// The version order asked for (default newest first).
    pub fn version_order(&self) -> Result<VersionOrder, Error> {
        match self.sort.as_ref().map(|(f, d)| (f.as_str(), *d)) {
            None | Some(("created_at" | "build_at" | "updated_at", true)) => {
                Ok(VersionOrder::NewestFirst)
            }
            Some(("created_at" | "build_at" | "updated_at", false)) => {
                Ok(VersionOrder::OldestFirst)
            }
            Some(("name", _)) => Ok(VersionOrder::Name),
            Some((other, _)) => Err(Error::invalid(format!(
                "cannot sort by {other:?}; use created_at, build_at or name"
            ))),
        }
    }

    /// The repository order asked for (default newest first).
    pub fn repository_order(&self) -> Result<RepositoryOrder, Error> {
        match self.sort.as_ref().map(|(f, d)| (f.as_str(), *d)) {
            None | Some(("created_at" | "updated_at", true)) => Ok(RepositoryOrder::NewestFirst),
            Some(("created_at" | "updated_at", false)) => Ok(RepositoryOrder::OldestFirst),
            Some(("name", _)) => Ok(RepositoryOrder::Name),
            Some((other, _)) => Err(Error::invalid(format!(
                "cannot sort by {other:?}; use created_at or name"
            ))),
        }
    }
}

/// Parses a single `Range: bytes=...` header against an object of `size` bytes.
pub fn parse_range(value: &str, size: u64) -> Result<std::ops::Range<u64>, Error> {
    let unsatisfiable = || {
        Error::invalid(format!(
            "range {value:?} cannot be served from {size} bytes"
        ))
    };
    let spec = value
        .trim()
        .strip_prefix("bytes=")
        .ok_or_else(unsatisfiable)?;
    if spec.contains(',') {
        return Err(Error::invalid("only one range per request is supported"));
    }
    let (a, b) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let range = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| unsatisfiable())?;
            size.saturating_sub(n)..size
        }
        (a, "") => a.parse().map_err(|_| unsatisfiable())?..size,
        (a, b) => {
            let (a, b): (u64, u64) = (
                a.parse().map_err(|_| unsatisfiable())?,
                b.parse().map_err(|_| unsatisfiable())?,
            );
            a..(b + 1).min(size)
        }
    };
    if range.start >= range.end {
        return Err(unsatisfiable());
    }
    Ok(range)
}

/// Streams a stored object as a response: 200 with Content-Length, or 206 for a `Range`.
pub async fn stream_object(
    state: &AppState,
    key: &str,
    headers: &HeaderMap,
) -> Result<axum::response::Response, Error> {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) => {
            let size = state
                .objects
                .size(key)
                .await?
                .ok_or_else(|| Error::NotFound("the archive is missing from storage".into()))?;
            match parse_range(r, size) {
                Ok(range) => Some(range),
                Err(_) => {
                    return Ok((
                        StatusCode::RANGE_NOT_SATISFIABLE,
                        [(header::CONTENT_RANGE, format!("bytes */{size}"))],
                    )
                        .into_response());
                }
            }
        }
        None => None,
    };
    let partial = range.is_some();
    let reader = state.objects.get(key, range).await?;
    let len = reader.range.end - reader.range.start;
    let mut response = (
        if partial {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        },
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (header::ACCEPT_RANGES, "bytes".to_string()),
        ],
        axum::body::Body::from_stream(reader.stream),
    )
        .into_response();
    if partial {
        let value = format!(
            "bytes {}-{}/{}",
            reader.range.start,
            reader.range.end - 1,
            reader.total_size
        );
        response.headers_mut().insert(
            header::CONTENT_RANGE,
            value
                .parse()
                .map_err(|_| Error::Internal("bad Content-Range".into()))?,
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_queries_parse_yatai_q() {
        let q = ListQuery {
            start: Some(5),
            count: Some(10),
            search: Some("iris".into()),
            q: Some("label:team=ml sort:name-asc status:success v2".into()),
        };
        let spec = q.parse().unwrap();
        assert_eq!(spec.start, 5);
        assert_eq!(spec.search, "iris v2");
        assert_eq!(spec.labels, vec![("team".to_string(), "ml".to_string())]);
        assert_eq!(spec.sort, Some(("name".to_string(), false)));
        assert_eq!(spec.status, Some(UploadStatus::Success));
        assert_eq!(spec.version_order().unwrap(), VersionOrder::Name);
        assert!(ListQuery {
            count: Some(5000),
            ..Default::default()
        }
        .parse()
        .is_err());
        assert!(ListQuery {
            q: Some("label:novalue".into()),
            ..Default::default()
        }
        .parse()
        .is_err());
        assert!(ListQuery {
            q: Some("sort:size".into()),
            ..Default::default()
        }
        .parse()
        .unwrap()
        .version_order()
        .is_err());
    }
}
