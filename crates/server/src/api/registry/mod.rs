//! The registry: bento and model repositories, their versions, and the transfer of archives.
//!
//! Bentos and models follow one life cycle, so every handler is written once, generic over the
//! kind ([`Bentos`] or [`Models`]), and mounted at both URL trees by one route table.

mod cached;
pub mod image_build;
pub mod present;
mod repositories;
mod transfer;
mod versions;

use axum::http::{HeaderMap, Method};
use axum::routing::MethodRouter;
use axum::Router;
pub use yatai_api_types::ListQuery;
use yatai_domain::registry::{ClientGeneration, Kind};
use yatai_domain::Error;
use yatai_store::db::repositories::Repository;
use yatai_store::db::versions::Version;

use crate::auth::Caller;
use crate::AppState;

pub use cached::CACHE_HEADER;
pub use present::Presenter;
pub use yatai_service::registry::query::ListSpec;

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

/// The schemas a route's document needs besides its own, collected while it is built.
pub type SchemaDeps = Vec<(
    String,
    utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
)>;

/// What a registry route reads or answers, for the OpenAPI document.
#[derive(Clone, Copy)]
pub enum Payload {
    /// No body (requests) or an empty JSON object (answers).
    Nothing,
    /// JSON of a schema: registers the schema's parts and returns its reference or inline form.
    Json(fn(&mut SchemaDeps) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>),
    /// An archive, `application/octet-stream` (upload bodies, downloads with Range).
    Archive,
}

/// A JSON payload of a named schema (referenced).
pub fn json<T: utoipa::ToSchema>() -> Payload {
    Payload::Json(|deps| {
        T::schemas(deps);
        deps.push((T::name().into_owned(), T::schema()));
        utoipa::openapi::Ref::from_schema_name(T::name()).into()
    })
}

/// A JSON payload of a generic schema (inlined: its name alone would not tell its parameter).
pub fn json_inline<T: utoipa::ToSchema>() -> Payload {
    Payload::Json(|deps| {
        T::schemas(deps);
        T::schema()
    })
}

/// One route of the registry: method, path, summary, what it reads and answers (for the OpenAPI
/// document), and its handler.
pub struct RegistryRoute {
    pub method: Method,
    pub path: String,
    pub summary: &'static str,
    pub tag: &'static str,
    pub handler: MethodRouter<AppState>,
    /// The request body.
    pub body: Payload,
    /// The answer.
    pub answer: Payload,
    /// Whether it takes the list query (`start`, `count`, `search`, `q`).
    pub lists: bool,
}

impl RegistryRoute {
    fn body(mut self, body: Payload) -> Self {
        self.body = body;
        self
    }

    fn answers(mut self, answer: Payload) -> Self {
        self.answer = answer;
        self
    }

    fn lists(mut self) -> Self {
        self.lists = true;
        self
    }
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
        body: Payload::Nothing,
        answer: Payload::Nothing,
        lists: false,
    }
}

fn kind_routes<K: RegistryKind>() -> Vec<RegistryRoute> {
    use yatai_api_types::{
        CompleteMultipart, CreateRepository, CreateVersion, FinishUpload, ListSchema, PresignPart,
        RepositorySchema, UpdateRepository, UpdateVersion, VersionSchema,
    };
    let (r, v) = (K::REPOSITORIES, K::VERSIONS);
    let repo = format!("/api/v1/{r}/{{name}}");
    let version = format!("{repo}/{v}/{{version}}");
    let tag = K::VERSIONS;
    let one_version = json::<VersionSchema>();
    let one_repo = json::<RepositorySchema>();
    use axum::routing::{delete, get, patch, post, put};
    vec![
        route(
            Method::GET,
            format!("/api/v1/{r}"),
            "List repositories (start, count, search, q with label:K=V and sort:FIELD-asc|desc)",
            tag,
            get(repositories::list::<K>),
        )
        .lists()
        .answers(json_inline::<ListSchema<RepositorySchema>>()),
        route(
            Method::POST,
            format!("/api/v1/{r}"),
            "Create a repository (returns the existing one if the name is taken)",
            tag,
            post(repositories::create::<K>),
        )
        .body(json::<CreateRepository>())
        .answers(one_repo),
        route(
            Method::GET,
            repo.clone(),
            "Get a repository with its latest version",
            tag,
            get(repositories::get::<K>),
        )
        .answers(one_repo),
        route(
            Method::PATCH,
            repo.clone(),
            "Change a repository's description",
            tag,
            patch(repositories::update::<K>),
        )
        .body(json::<UpdateRepository>())
        .answers(one_repo),
        route(
            Method::DELETE,
            repo.clone(),
            "Delete an empty repository",
            tag,
            delete(repositories::delete::<K>),
        )
        .answers(one_repo),
        route(
            Method::GET,
            format!("{repo}/{v}"),
            "List the versions of a repository, newest first",
            tag,
            get(versions::list_in_repository::<K>),
        )
        .lists()
        .answers(json_inline::<ListSchema<VersionSchema>>()),
        route(
            Method::POST,
            format!("{repo}/{v}"),
            "Create a version with its manifest and labels (upload status pending)",
            tag,
            post(versions::create::<K>),
        )
        .body(json::<CreateVersion>())
        .answers(one_version),
        route(
            Method::GET,
            version.clone(),
            "Get a version",
            tag,
            get(versions::get::<K>),
        )
        .answers(one_version),
        route(
            Method::PATCH,
            version.clone(),
            "Change a version's description, manifest or labels",
            tag,
            patch(versions::update::<K>),
        )
        .body(json::<UpdateVersion>())
        .answers(one_version),
        route(
            Method::DELETE,
            version.clone(),
            "Delete a version and its archive",
            tag,
            delete(versions::delete::<K>),
        )
        .answers(one_version),
        route(
            Method::PATCH,
            format!("{version}/start_upload"),
            "Mark the upload as started",
            tag,
            patch(transfer::start_upload::<K>),
        )
        .answers(one_version),
        route(
            Method::PUT,
            format!("{version}/upload"),
            "Proxy upload: the body is the archive, streamed to storage",
            tag,
            put(transfer::upload::<K>),
        )
        .body(Payload::Archive)
        .answers(one_version),
        route(
            Method::PATCH,
            format!("{version}/presign_upload_url"),
            "Get a presigned URL for one PUT of the archive",
            tag,
            patch(transfer::presign_upload_url::<K>),
        )
        .answers(one_version),
        route(
            Method::PATCH,
            format!("{version}/start_multipart_upload"),
            "Start a presigned multipart upload (returns upload_id)",
            tag,
            patch(transfer::start_multipart_upload::<K>),
        )
        .answers(one_version),
        route(
            Method::PATCH,
            format!("{version}/presign_multipart_upload_url"),
            "Get a presigned URL for one part",
            tag,
            patch(transfer::presign_multipart_upload_url::<K>),
        )
        .body(json::<PresignPart>())
        .answers(one_version),
        route(
            Method::PATCH,
            format!("{version}/complete_multipart_upload"),
            "Assemble the uploaded parts",
            tag,
            patch(transfer::complete_multipart_upload::<K>),
        )
        .body(json::<CompleteMultipart>())
        .answers(one_version),
        route(
            Method::PATCH,
            format!("{version}/finish_upload"),
            "Finish an upload: success (checked) or failed with a reason",
            tag,
            patch(transfer::finish_upload::<K>),
        )
        .body(json::<FinishUpload>())
        .answers(one_version),
        route(
            Method::GET,
            format!("{version}/download"),
            "Proxy download of the archive (supports Range)",
            tag,
            get(transfer::download::<K>),
        )
        .answers(Payload::Archive),
        route(
            Method::PATCH,
            format!("{version}/presign_download_url"),
            "Get a presigned URL to download the archive",
            tag,
            patch(transfer::presign_download_url::<K>),
        )
        .answers(one_version),
        route(
            Method::GET,
            format!("/api/v1/{v}"),
            "List the versions of every repository of the organization",
            tag,
            get(versions::list_all::<K>),
        )
        .lists()
        .answers(json_inline::<ListSchema<VersionSchema>>()),
    ]
}

/// Every registry route, for both kinds, plus the relations between bentos and models.
pub fn routes() -> Vec<RegistryRoute> {
    let many_versions = json_inline::<Vec<yatai_api_types::VersionSchema>>();
    let mut all = kind_routes::<Bentos>();
    all.extend(kind_routes::<Models>());
    all.push(
        route(
            Method::GET,
            "/api/v1/bento_repositories/{name}/bentos/{version}/models".into(),
            "The models a bento uses (those pushed)",
            "bentos",
            axum::routing::get(versions::models_of_bento),
        )
        .answers(many_versions),
    );
    all.push(
        route(
            Method::PATCH,
            "/api/v1/bento_repositories/{name}/bentos/{version}/update_image_build_status".into(),
            "Set the image build status (pending, building, success with image_reference, failed with reason)",
            "bentos",
            axum::routing::patch(image_build::update_image_build_status),
        )
        .body(json::<yatai_api_types::UpdateImageBuildStatusSchema>())
        .answers(json::<yatai_api_types::VersionSchema>()),
    );
    all.push(
        route(
            Method::POST,
            "/api/v1/bento_repositories/{name}/bentos/{version}/build_image".into(),
            "Build the bento's image in the server (not in Yatai 1.x): the status becomes pending, then building, then success with image_reference or failed with reason. Admins and developers; 409 when the bento is not uploaded, when a build of it is pending or building, or when the server has no docker registry configured (DOCKER_REGISTRY_*)",
            "bentos",
            axum::routing::post(image_build::build_image),
        )
        .answers(json::<yatai_api_types::VersionSchema>()),
    );
    all.push(
        route(
            Method::GET,
            "/api/v1/model_repositories/{name}/models/{version}/bentos".into(),
            "The bentos that use a model",
            "models",
            axum::routing::get(versions::bentos_of_model),
        )
        .answers(many_versions),
    );
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
    yatai_service::registry::load_repository(state, caller, K::KIND, name).await
}

/// Finds a version of a repository of the caller's organization or fails with 404.
pub async fn load_version<K: RegistryKind>(
    state: &AppState,
    caller: &Caller,
    name: &str,
    version: &str,
) -> Result<Version, Error> {
    yatai_service::registry::load_version(state, caller, K::KIND, name, version).await
}

/// Parses and checks a list query (the service's rule).
pub fn parse_list(q: &ListQuery) -> Result<ListSpec, Error> {
    ListSpec::parse(q.start, q.count, q.search.as_deref(), q.q.as_deref())
}
