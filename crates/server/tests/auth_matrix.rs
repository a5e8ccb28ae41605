//! The auth matrix: every route of the API against every kind of caller, each with the status
//! it must get, on both backend pairs.
//!
//! The routes come from the server itself: the OpenAPI document (`api::openapi()`) and the
//! registry route table (`api::registry::routes()`). A route without a row in [`variants`] fails
//! the test, so a new route cannot be forgotten; so does a row for a route that no longer
//! exists. A second test checks the other way round: every `/api/...` route the running router
//! answers (probed at every path written in the server's sources) is in that list, and every
//! listed route is answered.
//!
//! Callers (columns): no credentials; an expired and a revoked token of an organization admin;
//! a token of that admin whose scopes do not allow the route (the scope set depends on the
//! route); an admin of another organization (all scopes); API tokens (all scopes) of a guest, a
//! developer and an admin of the organization; the site admin's token; and browser sessions of
//! the guest, the developer and the admin.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TestApp, ADMIN_PASSWORD, INIT_TOKEN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    NoAuth,
    Expired,
    Revoked,
    WrongScope,
    OtherOrg,
    Guest,
    Developer,
    Admin,
    SiteAdmin,
    GuestSession,
    DeveloperSession,
    AdminSession,
}

const WHO: [Who; 12] = [
    Who::NoAuth,
    Who::Expired,
    Who::Revoked,
    Who::WrongScope,
    Who::OtherOrg,
    Who::Guest,
    Who::Developer,
    Who::Admin,
    Who::SiteAdmin,
    Who::GuestSession,
    Who::DeveloperSession,
    Who::AdminSession,
];

impl Who {
    fn label(self) -> &'static str {
        match self {
            Who::NoAuth => "no auth",
            Who::Expired => "expired token",
            Who::Revoked => "revoked token",
            Who::WrongScope => "wrong scope",
            Who::OtherOrg => "other org",
            Who::Guest => "guest",
            Who::Developer => "developer",
            Who::Admin => "admin",
            Who::SiteAdmin => "site admin",
            Who::GuestSession => "guest (session)",
            Who::DeveloperSession => "developer (session)",
            Who::AdminSession => "admin (session)",
        }
    }

    fn is_session(self) -> bool {
        matches!(
            self,
            Who::GuestSession | Who::DeveloperSession | Who::AdminSession
        )
    }
}

/// Expected statuses, one per caller in the order of [`WHO`]:
/// no auth, expired, revoked, wrong scope, other org, guest, developer, admin, site admin,
/// guest session, developer session, admin session.
type Row = [u16; 12];
/// Anyone: the route needs no credentials.
const PUBLIC: Row = [200; 12];
/// Any authenticated caller, whatever the token's scopes.
const IDENTITY: Row = [401, 401, 401, 200, 200, 200, 200, 200, 200, 200, 200, 200];
/// Reads of the caller's own organization (another organization's admin reads their own).
const READ_OWN_ORG: Row = [401, 401, 401, 403, 200, 200, 200, 200, 200, 200, 200, 200];
/// Reads of one resource of the organization (another organization cannot see it: 404).
const READ_RESOURCE: Row = [401, 401, 401, 403, 404, 200, 200, 200, 200, 200, 200, 200];
/// Creating bentos and models in the caller's organization (developers and up).
const WRITE_REGISTRY_OWN_ORG: Row = [401, 401, 401, 403, 200, 403, 200, 200, 200, 403, 200, 200];
/// Changing one bento or model resource of the organization (developers and up).
const WRITE_REGISTRY_RESOURCE: Row = [401, 401, 401, 403, 404, 403, 200, 200, 200, 403, 200, 200];
/// Administering the caller's own organization (admins).
const ADMIN_OWN_ORG: Row = [401, 401, 401, 403, 200, 403, 403, 200, 200, 403, 403, 200];
/// Administering one resource of the organization (its admins; another organization: 404).
const ADMIN_RESOURCE: Row = [401, 401, 401, 403, 404, 403, 403, 200, 200, 403, 403, 200];
/// One API token of the organization admin: only its owner sees it; everyone else gets 404.
const ADMINS_OWN_TOKEN: Row = [401, 401, 401, 403, 404, 404, 404, 200, 404, 404, 404, 200];
/// The site admin's password, reset through the organization API: only the site admin.
/// (The site admin is a member of the other organization too, which it created.)
const SITE_ADMINS_PASSWORD: Row = [401, 401, 401, 403, 403, 403, 403, 403, 200, 403, 403, 403];
/// Creating organizations: a site admin's browser session only (not in this list of callers;
/// tests/hardening.rs covers it), never a token, not even the site admin's.
const SITE_ADMIN_SESSION: Row = [401, 401, 401, 403, 403, 403, 403, 403, 403, 403, 403, 403];
/// Only from a logged-in browser session, never with an API token.
const SESSION_ONLY: Row = [401, 401, 401, 403, 403, 403, 403, 403, 403, 200, 200, 200];

/// The scopes of the "wrong scope" token for a route: what the route's action does NOT accept.
#[derive(Debug, Clone, Copy)]
enum Wrong {
    /// `read_cluster`: no registry or organization access at all.
    ReadCluster,
    /// `read_organization`: reads but never writes the registry.
    ReadOrganization,
    /// `api`: the registry only, no organization resources.
    Api,
    /// `api` + `read_organization`: no organization writes, members or tokens.
    ApiRead,
}

impl Wrong {
    fn scopes(self) -> &'static [&'static str] {
        match self {
            Wrong::ReadCluster => &["read_cluster"],
            Wrong::ReadOrganization => &["read_organization"],
            Wrong::Api => &["api"],
            Wrong::ApiRead => &["api", "read_organization"],
        }
    }
    const ALL: [Wrong; 4] = [
        Wrong::ReadCluster,
        Wrong::ReadOrganization,
        Wrong::Api,
        Wrong::ApiRead,
    ];
}

/// What must exist before one call: made fresh for every call unless said otherwise.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Setup {
    Nothing,
    /// The published version of a kind (shared, never changed by the calls).
    Published(&'static str),
    /// An empty repository.
    Repository(&'static str),
    /// A repository with a pending version.
    Version(&'static str),
    /// A version whose upload was started.
    Uploading(&'static str),
    /// A version with a multipart upload started (upload id).
    Multipart(&'static str),
    /// A version with a multipart upload started and its part 1 stored (upload id, ETag).
    MultipartPart(&'static str),
    /// A developer of the organization.
    Member,
    /// An API token of the organization admin.
    AdminsToken,
    /// The site admin.
    TheSiteAdmin,
    /// A deployment of the published bento on the default cluster (`uid`: its revision).
    Deployment,
    /// The same, terminated.
    TerminatedDeployment,
}

/// The concrete values a call uses.
#[derive(Debug, Default, Clone)]
struct Fix {
    name: String,
    version: String,
    uid: String,
    upload_id: String,
    etag: String,
}

enum Body {
    None,
    Json(Value),
    Bytes(Vec<u8>),
}

/// One way of calling a route, with the statuses it must get.
struct Variant {
    method: Method,
    route: String,
    what: &'static str,
    setup: Setup,
    wrong: Wrong,
    expect: Row,
    /// The call ends the caller's sessions (they log in again before the next call).
    ends_sessions: bool,
    body: fn(&World, &Fix, Who) -> Body,
}

fn no_body(_: &World, _: &Fix, _: Who) -> Body {
    Body::None
}

fn v(method: Method, route: impl Into<String>, setup: Setup, wrong: Wrong, expect: Row) -> Variant {
    Variant {
        method,
        route: route.into(),
        what: "",
        setup,
        wrong,
        expect,
        ends_sessions: false,
        body: no_body,
    }
}

impl Variant {
    fn body(mut self, f: fn(&World, &Fix, Who) -> Body) -> Self {
        self.body = f;
        self
    }
    fn what(mut self, what: &'static str) -> Self {
        self.what = what;
        self
    }
    fn ends_sessions(mut self) -> Self {
        self.ends_sessions = true;
        self
    }
}

/// Every row of the matrix.
fn variants() -> Vec<Variant> {
    use Method as M;
    use Setup as S;
    use Wrong as W;
    let mut all = vec![
        v(M::GET, "/api/v1/version", S::Nothing, W::ReadCluster, PUBLIC),
        v(M::GET, "/api/v1/info", S::Nothing, W::ReadCluster, PUBLIC),
        v(M::GET, "/healthz", S::Nothing, W::ReadCluster, PUBLIC),
        v(M::GET, "/readyz", S::Nothing, W::ReadCluster, PUBLIC),
        v(M::GET, "/metrics", S::Nothing, W::ReadCluster, PUBLIC),
        v(M::POST, "/api/v1/setup", S::Nothing, W::ReadCluster, [409; 12])
            .what("setup is closed for everyone once done")
            .body(|_, _, _| {
                Body::Json(json!({"token": INIT_TOKEN, "name": "late", "email": "late@example.com", "password": "late-password-1"}))
            }),
        v(M::POST, "/api/v1/auth/login", S::Nothing, W::ReadCluster, PUBLIC)
            .what("right password of another user")
            .body(|w, _, _| Body::Json(json!({"name_or_email": w.login_user, "password": LOGIN_PASSWORD}))),
        v(M::POST, "/api/v1/auth/logout", S::Nothing, W::ReadCluster, PUBLIC).ends_sessions(),
        v(M::GET, "/api/v1/auth/current", S::Nothing, W::ReadCluster, IDENTITY),
        v(M::PATCH, "/api/v1/auth/reset_password", S::Nothing, W::ApiRead, SESSION_ONLY)
            .what("own password, right current password")
            .ends_sessions()
            .body(|w, _, who| {
                let pw = w.password(who);
                Body::Json(json!({"current_password": pw, "new_password": pw}))
            }),
        v(M::GET, "/api/v1/auth/code", S::Nothing, W::ReadCluster, PUBLIC),
        v(M::GET, "/api/v1/auth/token?code=no-such-code", S::Nothing, W::ReadCluster, [404; 12])
            .what("a code nobody authorized"),
        v(M::GET, "/api/v1/users", S::Nothing, W::Api, READ_OWN_ORG),
        v(M::POST, "/api/v1/users", S::Nothing, W::ApiRead, ADMIN_OWN_ORG).body(|w, _, _| {
            let name = w.neutral("made");
            Body::Json(json!({"name": name, "email": format!("{name}@example.com"), "password": "made-password-1", "role": "developer"}))
        }),
        v(M::GET, "/api/v1/users/{name}", S::Member, W::Api, READ_RESOURCE),
        v(M::POST, "/api/v1/users/{name}/reset_password", S::Member, W::ApiRead, ADMIN_RESOURCE)
            .what("a developer's password")
            .body(|_, _, _| Body::Json(json!({"new_password": "reset-password-1"}))),
        v(M::POST, "/api/v1/users/{name}/reset_password", S::TheSiteAdmin, W::ApiRead, SITE_ADMINS_PASSWORD)
            .what("the site admin's password")
            .body(|_, _, _| Body::Json(json!({"new_password": ADMIN_PASSWORD}))),
        v(M::GET, "/api/v1/orgs", S::Nothing, W::Api, READ_OWN_ORG),
        v(M::POST, "/api/v1/orgs", S::Nothing, W::ApiRead, SITE_ADMIN_SESSION)
            .body(|w, _, _| Body::Json(json!({"name": w.neutral("org"), "description": ""}))),
        v(M::GET, "/api/v1/orgs/{name}", S::Nothing, W::Api, READ_RESOURCE),
        v(M::PATCH, "/api/v1/orgs/{name}", S::Nothing, W::ApiRead, ADMIN_RESOURCE)
            .body(|_, _, _| Body::Json(json!({"description": "changed by the auth matrix"}))),
        v(M::GET, "/api/v1/current_org", S::Nothing, W::ReadCluster, READ_OWN_ORG),
        v(M::PATCH, "/api/v1/current_org", S::Nothing, W::ApiRead, ADMIN_OWN_ORG)
            .body(|_, _, _| Body::Json(json!({"description": "changed by the auth matrix"}))),
        v(M::GET, "/api/v1/current_org/events", S::Nothing, W::Api, READ_OWN_ORG),
        v(M::GET, "/api/v1/current_org/event_operation_names", S::Nothing, W::Api, READ_OWN_ORG),
        v(M::GET, "/api/v1/members", S::Nothing, W::Api, READ_OWN_ORG),
        v(M::POST, "/api/v1/members", S::Member, W::ApiRead, ADMIN_OWN_ORG)
            .what("add an existing user as developer")
            .body(|_, f, _| Body::Json(json!({"usernames": [f.name], "role": "developer"}))),
        v(M::DELETE, "/api/v1/members", S::Member, W::ApiRead, ADMIN_RESOURCE)
            .what("remove a member of the organization")
            .body(|_, f, _| Body::Json(json!({"username": f.name}))),
        v(M::GET, "/api/v1/api_tokens", S::Nothing, W::ApiRead, READ_OWN_ORG),
        v(M::POST, "/api/v1/api_tokens", S::Nothing, W::ApiRead, READ_OWN_ORG)
            .what("a token of one's own")
            .body(|w, _, _| Body::Json(json!({"name": w.neutral("tok"), "scopes": ["api"]}))),
        v(M::GET, "/api/v1/api_tokens/{uid}", S::AdminsToken, W::ApiRead, ADMINS_OWN_TOKEN),
        v(M::PATCH, "/api/v1/api_tokens/{uid}", S::AdminsToken, W::ApiRead, ADMINS_OWN_TOKEN)
            .body(|_, _, _| Body::Json(json!({"description": "changed"}))),
        v(M::DELETE, "/api/v1/api_tokens/{uid}", S::AdminsToken, W::ApiRead, ADMINS_OWN_TOKEN),
        v(M::GET, "/api/v1/presigned/get?key=x&expires=99999999999&signature=00", S::Nothing, W::ReadCluster, [403; 12])
            .what("a forged signature: credentials grant nothing here"),
        v(M::PUT, "/api/v1/presigned/put?key=x&expires=99999999999&signature=00", S::Nothing, W::ReadCluster, [403; 12])
            .what("a forged signature: credentials grant nothing here")
            .body(|_, _, _| Body::Bytes(b"forged".to_vec())),
        v(M::PUT, "/api/v1/presigned/part?key=x&upload_id=u&part_number=1&expires=99999999999&signature=00", S::Nothing, W::ReadCluster, [403; 12])
            .what("a forged signature: credentials grant nothing here")
            .body(|_, _, _| Body::Bytes(b"forged".to_vec())),
    ];
    for (kind, r, vs) in [
        ("bento", "bento_repositories", "bentos"),
        ("model", "model_repositories", "models"),
    ] {
        let repo = format!("/api/v1/{r}/{{name}}");
        let version = format!("{repo}/{vs}/{{version}}");
        all.extend([
            v(M::GET, format!("/api/v1/{r}"), S::Nothing, W::ReadCluster, READ_OWN_ORG),
            v(M::POST, format!("/api/v1/{r}"), S::Nothing, W::ReadOrganization, WRITE_REGISTRY_OWN_ORG)
                .body(|w, _, _| Body::Json(json!({"name": w.neutral("repo"), "description": ""}))),
            v(M::GET, repo.clone(), S::Published(kind), W::ReadCluster, READ_RESOURCE),
            v(M::PATCH, repo.clone(), S::Repository(kind), W::ReadOrganization, WRITE_REGISTRY_RESOURCE)
                .body(|_, _, _| Body::Json(json!({"description": "changed"}))),
            v(M::DELETE, repo.clone(), S::Repository(kind), W::ReadOrganization, WRITE_REGISTRY_RESOURCE),
            v(M::GET, format!("{repo}/{vs}"), S::Published(kind), W::ReadCluster, READ_RESOURCE),
            v(M::POST, format!("{repo}/{vs}"), S::Repository(kind), W::ReadOrganization, WRITE_REGISTRY_RESOURCE)
                .body(|w, _, _| Body::Json(json!({"version": w.neutral("v"), "description": "", "manifest": {"size_bytes": 10}, "labels": []}))),
            v(M::GET, version.clone(), S::Published(kind), W::ReadCluster, READ_RESOURCE),
            v(M::PATCH, version.clone(), S::Version(kind), W::ReadOrganization, WRITE_REGISTRY_RESOURCE)
                .body(|_, _, _| Body::Json(json!({"description": "changed"}))),
            v(M::DELETE, version.clone(), S::Version(kind), W::ReadOrganization, WRITE_REGISTRY_RESOURCE),
            v(M::PATCH, format!("{version}/start_upload"), S::Version(kind), W::ReadOrganization, WRITE_REGISTRY_RESOURCE),
            v(M::PUT, format!("{version}/upload"), S::Version(kind), W::ReadOrganization, WRITE_REGISTRY_RESOURCE)
                .body(|_, _, _| Body::Bytes(archive(b"uploaded by the auth matrix"))),
            v(M::PATCH, format!("{version}/presign_upload_url"), S::Version(kind), W::ReadOrganization, WRITE_REGISTRY_RESOURCE),
            v(M::PATCH, format!("{version}/start_multipart_upload"), S::Version(kind), W::ReadOrganization, WRITE_REGISTRY_RESOURCE),
            v(M::PATCH, format!("{version}/presign_multipart_upload_url"), S::Multipart(kind), W::ReadOrganization, WRITE_REGISTRY_RESOURCE)
                .body(|_, f, _| Body::Json(json!({"upload_id": f.upload_id, "part_number": 1}))),
            v(M::PATCH, format!("{version}/complete_multipart_upload"), S::MultipartPart(kind), W::ReadOrganization, WRITE_REGISTRY_RESOURCE)
                .body(|_, f, _| Body::Json(json!({"upload_id": f.upload_id, "parts": [{"part_number": 1, "etag": f.etag}]}))),
            v(M::PATCH, format!("{version}/finish_upload"), S::Uploading(kind), W::ReadOrganization, WRITE_REGISTRY_RESOURCE)
                .what("status failed")
                .body(|_, _, _| Body::Json(json!({"status": "failed", "reason": "auth matrix"}))),
            v(M::GET, format!("{version}/download"), S::Published(kind), W::ReadCluster, READ_RESOURCE),
            v(M::PATCH, format!("{version}/presign_download_url"), S::Published(kind), W::ReadCluster, READ_RESOURCE),
            v(M::GET, format!("/api/v1/{vs}"), S::Nothing, W::ReadCluster, READ_OWN_ORG),
        ]);
    }
    all.push(v(
        M::GET,
        "/api/v1/bento_repositories/{name}/bentos/{version}/models",
        S::Published("bento"),
        W::ReadCluster,
        READ_RESOURCE,
    ));
    all.push(
        v(
            M::PATCH,
            "/api/v1/bento_repositories/{name}/bentos/{version}/update_image_build_status",
            S::Published("bento"),
            W::ReadOrganization,
            WRITE_REGISTRY_RESOURCE,
        )
        .what("an image builder reports it is building")
        .body(|_, _, _| Body::Json(json!({"image_build_status": "building"}))),
    );
    all.push(
        v(
            M::POST,
            "/api/v1/bento_repositories/{name}/bentos/{version}/build_image",
            S::Published("bento"),
            W::ReadOrganization,
            // The test server builds no images: whoever may ask is told how to enable builds.
            [401, 401, 401, 403, 404, 403, 409, 409, 409, 403, 409, 409],
        )
        .what("a server without a docker registry: 409 after the permission check"),
    );
    // Clusters and deployments. Deploying is a developer's work, registering a cluster an
    // admin's; the other organization has a `default` cluster of its own (so reading or
    // changing "default" answers 200 there), but not the bento nor the deployment (404).
    const DEPLOY_OWN_ORG: Row = [401, 401, 401, 403, 404, 403, 200, 200, 200, 403, 200, 200];
    let dep = "/api/v1/clusters/{cluster}/namespaces/{namespace}/deployments/{name}";
    all.extend([
        v(M::GET, "/api/v1/clusters", S::Nothing, W::Api, READ_OWN_ORG),
        v(M::POST, "/api/v1/clusters", S::Nothing, W::ReadCluster, ADMIN_OWN_ORG)
            .what("a kubernetes cluster with a kubeconfig")
            .body(|w, _, _| {
                Body::Json(json!({"name": w.neutral("cl"), "kind": "kubernetes",
                    "kube_config": "apiVersion: v1\nclusters:\n- name: c\n  cluster: {server: 'https://k8s.example:6443'}\n"}))
            }),
        v(M::GET, "/api/v1/clusters/{cluster}", S::Nothing, W::Api, READ_OWN_ORG),
        v(M::PATCH, "/api/v1/clusters/{cluster}", S::Nothing, W::ReadCluster, ADMIN_OWN_ORG)
            .body(|_, _, _| Body::Json(json!({"description": "changed by the auth matrix"}))),
        v(M::GET, "/api/v1/instance_types", S::Nothing, W::Api, READ_OWN_ORG),
        v(M::GET, "/api/v1/deployments", S::Nothing, W::Api, READ_OWN_ORG),
        v(M::GET, "/api/v1/clusters/{cluster}/deployments", S::Nothing, W::Api, READ_OWN_ORG),
        v(M::POST, "/api/v1/clusters/{cluster}/deployments", S::Published("bento"), W::ReadCluster, DEPLOY_OWN_ORG)
            .what("a deployment of the published bento")
            .body(|w, f, _| {
                Body::Json(json!({"name": w.fresh("dep"), "targets": [{"bento_repository": f.name, "bento": f.version}]}))
            }),
        v(M::GET, dep, S::Deployment, W::Api, READ_RESOURCE),
        v(M::PATCH, dep, S::Deployment, W::ReadCluster, WRITE_REGISTRY_RESOURCE)
            .body(|w, _, _| {
                let (name, version) = &w.published["bento"];
                Body::Json(json!({"targets": [{"bento_repository": name, "bento": version}]}))
            }),
        v(M::DELETE, dep, S::TerminatedDeployment, W::ReadCluster, WRITE_REGISTRY_RESOURCE),
        v(M::POST, format!("{dep}/terminate"), S::Deployment, W::ReadCluster, WRITE_REGISTRY_RESOURCE),
        v(M::POST, format!("{dep}/rollback"), S::Deployment, W::ReadCluster, WRITE_REGISTRY_RESOURCE)
            .body(|_, f, _| Body::Json(json!({"revision_uid": f.uid}))),
        v(M::GET, format!("{dep}/revisions"), S::Deployment, W::Api, READ_RESOURCE),
        v(M::GET, format!("{dep}/revisions/{{uid}}"), S::Deployment, W::Api, READ_RESOURCE),
        v(M::GET, format!("{dep}/logs"), S::Deployment, W::Api, [401, 401, 401, 403, 404, 503, 503, 503, 503, 503, 503, 503])
            .what("a server that runs no deployments: 503 after the permission check"),
        v(M::GET, "/api/v2/deployments", S::Nothing, W::Api, READ_OWN_ORG),
        v(M::POST, "/api/v2/deployments", S::Published("bento"), W::ReadCluster, DEPLOY_OWN_ORG)
            .what("a deployment of the published bento")
            .body(|w, f, _| {
                Body::Json(json!({"name": w.fresh("dep"), "bento": format!("{}:{}", f.name, f.version), "services": {}}))
            }),
        v(M::GET, "/api/v2/deployments/{name}", S::Deployment, W::Api, READ_RESOURCE),
        v(M::PUT, "/api/v2/deployments/{name}", S::Deployment, W::ReadCluster, WRITE_REGISTRY_RESOURCE)
            .body(|w, _, _| {
                let (name, version) = &w.published["bento"];
                Body::Json(json!({"bento": format!("{name}:{version}"), "services": {}}))
            }),
        v(M::PATCH, "/api/v2/deployments/{name}", S::Deployment, W::ReadCluster, WRITE_REGISTRY_RESOURCE)
            .body(|w, _, _| {
                let (name, version) = &w.published["bento"];
                Body::Json(json!({"bento": format!("{name}:{version}"), "services": {}}))
            }),
        v(M::DELETE, "/api/v2/deployments/{name}", S::TerminatedDeployment, W::ReadCluster, WRITE_REGISTRY_RESOURCE),
        v(M::POST, "/api/v2/deployments/{name}/terminate", S::Deployment, W::ReadCluster, WRITE_REGISTRY_RESOURCE),
        v(M::PUT, "/api/v2/deployments/{name}/void_update", S::Deployment, W::ReadCluster, WRITE_REGISTRY_RESOURCE),
        v(M::GET, "/api/v2/deployments/{name}/files", S::Nothing, W::Api, [401, 401, 401, 400, 400, 400, 400, 400, 400, 400, 400, 400])
            .what("codespaces are not supported: 400 for whoever asks"),
        v(M::POST, "/api/v2/deployments/{name}/files", S::Nothing, W::Api, [401, 401, 401, 400, 400, 400, 400, 400, 400, 400, 400, 400])
            .what("codespaces are not supported: 400 for whoever asks"),
    ]);
    all.push(v(
        M::GET,
        "/api/v1/model_repositories/{name}/models/{version}/bentos",
        S::Published("model"),
        W::ReadCluster,
        READ_RESOURCE,
    ));
    all
}

/// The password of the user whose login the matrix tries.
const LOGIN_PASSWORD: &str = "login-password-1";
/// The password of every caller the matrix creates.
const PASSWORD: &str = "matrix-password-1";
/// Every name the organization under test owns starts with this: another organization's
/// answers must never contain it.
const OURS: &str = "mainorg-";

fn archive(content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "matrix.txt", content).unwrap();
    b.into_inner().unwrap()
}

/// The installation the matrix runs against, with every caller's credentials.
struct World {
    base: String,
    http: reqwest::Client,
    site_token: String,
    org: String,
    login_user: String,
    tokens: BTreeMap<Who, String>,
    wrong: Vec<(String, String)>,
    sessions: BTreeMap<Who, String>,
    users: BTreeMap<Who, String>,
    admin_token: String,
    published: BTreeMap<&'static str, (String, String)>,
    counter: AtomicUsize,
    db: yatai_store::Db,
}

/// What came back.
struct Answer {
    status: StatusCode,
    text: String,
}

impl World {
    /// A new name for something the organization under test owns.
    fn fresh(&self, prefix: &str) -> String {
        format!("{OURS}{}", self.neutral(prefix))
    }

    /// A new name for something a caller makes in its own organization, or that may become
    /// visible to the other organization legitimately (a user it adds as a member).
    fn neutral(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.counter.fetch_add(1, Ordering::Relaxed))
    }

    fn password(&self, who: Who) -> &'static str {
        if who == Who::SiteAdmin {
            ADMIN_PASSWORD
        } else {
            PASSWORD
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Body,
        token: Option<&str>,
        session: Option<&str>,
    ) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(std::time::Duration::from_secs(60));
        if let Some(t) = token {
            req = req.header("X-YATAI-API-TOKEN", t);
        }
        if let Some(s) = session {
            req = req.header("Cookie", format!("yatai_session={s}"));
        }
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Bytes(b) => req
                .header("Content-Type", "application/octet-stream")
                .body(b),
        };
        let res = req.send().await.expect("request");
        Answer {
            status: res.status(),
            text: res.text().await.unwrap_or_default(),
        }
    }

    /// A call with the site admin's token that must answer 200.
    async fn site(&self, method: Method, path: &str, body: Body) -> Value {
        let a = self
            .send(method.clone(), path, body, Some(&self.site_token), None)
            .await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "setting up the matrix: {method} {path}: {}",
            a.text
        );
        serde_json::from_str(&a.text).unwrap_or(Value::Null)
    }

    /// Logs in with a password; returns the session cookie's value.
    async fn login(&self, name: &str, password: &str) -> String {
        let res = self
            .http
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({"name_or_email": name, "password": password}))
            .send()
            .await
            .expect("login");
        assert_eq!(res.status(), StatusCode::OK, "login as {name}");
        res.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("yatai_session="))
            .and_then(|v| v.split(';').next())
            .expect("a session cookie")
            .to_string()
    }

    /// A token with `scopes` for the holder of `session` (in its organization).
    async fn token_for(&self, session: &str, scopes: &[&str]) -> (String, String) {
        let a = self
            .send(
                Method::POST,
                "/api/v1/api_tokens",
                Body::Json(json!({"name": self.neutral("t"), "scopes": scopes})),
                None,
                Some(session),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "create token: {}", a.text);
        let v: Value = serde_json::from_str(&a.text).unwrap();
        (
            v["uid"].as_str().unwrap().into(),
            v["token"].as_str().unwrap().into(),
        )
    }

    async fn build(app: &TestApp) -> World {
        const ALL: [&str; 5] = [
            "api",
            "read_organization",
            "write_organization",
            "read_cluster",
            "write_cluster",
        ];
        let site = app.setup_admin().await;
        let (_, site_token) = site.create_token("matrix-site", &ALL).await;
        let (_, org) = app.with_token(&site_token).get("/api/v1/current_org").await;
        let mut w = World {
            db: app.state.db.clone(),
            base: app.base.clone(),
            http: reqwest::Client::new(),
            site_token,
            org: org["name"].as_str().unwrap().to_string(),
            login_user: String::new(),
            tokens: BTreeMap::new(),
            wrong: Vec::new(),
            sessions: BTreeMap::new(),
            users: BTreeMap::new(),
            admin_token: String::new(),
            published: BTreeMap::new(),
            counter: AtomicUsize::new(0),
        };
        w.users.insert(Who::SiteAdmin, "admin".into());
        // Public: whoever logs in sees this user, so its name is not ours only.
        w.login_user = w
            .make_user(w.neutral("login"), "guest", LOGIN_PASSWORD)
            .await;
        for (who, session, role) in [
            (Who::Guest, Who::GuestSession, "guest"),
            (Who::Developer, Who::DeveloperSession, "developer"),
            (Who::Admin, Who::AdminSession, "admin"),
        ] {
            let name = w.make_user(w.fresh(role), role, PASSWORD).await;
            let s = w.login(&name, PASSWORD).await;
            let (_, token) = w.token_for(&s, &ALL).await;
            w.tokens.insert(who, token);
            w.users.insert(who, name.clone());
            w.users.insert(session, name.clone());
            w.sessions.insert(session, w.login(&name, PASSWORD).await);
            if who == Who::Admin {
                for wrong in Wrong::ALL {
                    let (_, t) = w.token_for(&s, wrong.scopes()).await;
                    w.wrong.push((format!("{wrong:?}"), t));
                }
                let (_, t) = w.token_for(&s, &ALL).await;
                w.admin_token = t;
                let (uid, t) = w.token_for(&s, &ALL).await;
                sqlx::query("UPDATE api_tokens SET expired_at = $1 WHERE uid = $2")
                    .bind(1_000_000i64)
                    .bind(&uid)
                    .execute(app.state.db.pool())
                    .await
                    .expect("expire a token");
                w.tokens.insert(Who::Expired, t);
                let (uid, t) = w.token_for(&s, &ALL).await;
                let a = w
                    .send(
                        Method::DELETE,
                        &format!("/api/v1/api_tokens/{uid}"),
                        Body::None,
                        None,
                        Some(&s),
                    )
                    .await;
                assert_eq!(a.status, StatusCode::OK, "revoke: {}", a.text);
                w.tokens.insert(Who::Revoked, t);
            }
        }
        w.tokens.insert(Who::SiteAdmin, w.site_token.clone());

        // Another organization, administered by someone who is not a member of ours.
        let elsewhere = format!("elsewhere-{}", yatai_testkit::unique());
        // Organizations are created from a site admin's session (a token could not use one).
        let (s, b) = site
            .post(
                "/api/v1/orgs",
                json!({"name": elsewhere, "description": ""}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "create the other organization: {b}");
        let outsider = format!("outsider-{}", yatai_testkit::unique());
        let (s, b) = site
            .in_org(&elsewhere)
            .post("/api/v1/users", json!({"name": outsider, "email": format!("{outsider}@example.com"), "password": PASSWORD, "role": "admin"}))
            .await;
        assert_eq!(s, StatusCode::OK, "create the outsider: {b}");
        let s = w.login(&outsider, PASSWORD).await;
        let (_, token) = w.token_for(&s, &ALL).await;
        w.tokens.insert(Who::OtherOrg, token);
        w.users.insert(Who::OtherOrg, outsider);

        // One published version of each kind; the bento uses the model.
        for kind in ["model", "bento"] {
            let repo = format!("{OURS}published-{kind}");
            w.site(
                Method::POST,
                &format!("/api/v1/{kind}_repositories"),
                Body::Json(json!({"name": repo, "description": ""})),
            )
            .await;
            let manifest = if kind == "bento" {
                json!({"size_bytes": 1, "models": [format!("{OURS}published-model:v1")]})
            } else {
                json!({"size_bytes": 1})
            };
            w.site(
                Method::POST,
                &format!("/api/v1/{kind}_repositories/{repo}/{kind}s"),
                Body::Json(
                    json!({"version": "v1", "description": "", "manifest": manifest, "labels": []}),
                ),
            )
            .await;
            let path = format!("/api/v1/{kind}_repositories/{repo}/{kind}s/v1");
            w.site(Method::PATCH, &format!("{path}/start_upload"), Body::None)
                .await;
            w.site(
                Method::PUT,
                &format!("{path}/upload"),
                Body::Bytes(archive(b"published")),
            )
            .await;
            w.published.insert(kind, (repo, "v1".into()));
        }
        w
    }

    async fn make_user(&self, name: String, role: &str, password: &str) -> String {
        self.site(
            Method::POST,
            "/api/v1/users",
            Body::Json(json!({"name": name, "email": format!("{name}@example.com"), "password": password, "role": role})),
        )
        .await;
        name
    }

    async fn prepare(&self, setup: Setup) -> Fix {
        let mut f = Fix {
            name: self.org.clone(),
            ..Default::default()
        };
        let kind = match setup {
            Setup::Nothing => return f,
            Setup::Member => {
                // Not ours only: the other organization's admin may add them as a member.
                f.name = self
                    .make_user(self.neutral("member"), "developer", PASSWORD)
                    .await;
                return f;
            }
            Setup::TheSiteAdmin => {
                f.name = "admin".into();
                return f;
            }
            Setup::AdminsToken => {
                let a = self
                    .send(
                        Method::POST,
                        "/api/v1/api_tokens",
                        Body::Json(json!({"name": self.fresh("victim"), "scopes": ["api"]})),
                        Some(&self.admin_token),
                        None,
                    )
                    .await;
                assert_eq!(a.status, StatusCode::OK, "admin's token: {}", a.text);
                f.uid = serde_json::from_str::<Value>(&a.text).unwrap()["uid"]
                    .as_str()
                    .unwrap()
                    .into();
                return f;
            }
            Setup::Published(kind) => {
                let (name, version) = &self.published[kind];
                f.name = name.clone();
                f.version = version.clone();
                return f;
            }
            Setup::Deployment | Setup::TerminatedDeployment => {
                let (bento, version) = &self.published["bento"];
                f.name = self.fresh("dep");
                let d = self
                    .site(
                        Method::POST,
                        "/api/v1/clusters/default/deployments",
                        Body::Json(json!({"name": f.name, "targets": [{"bento_repository": bento, "bento": version}]})),
                    )
                    .await;
                f.uid = d["latest_revision"]["uid"].as_str().unwrap().into();
                if setup == Setup::TerminatedDeployment {
                    let path = format!(
                        "/api/v1/clusters/default/namespaces/default/deployments/{}",
                        f.name
                    );
                    self.site(Method::POST, &format!("{path}/terminate"), Body::None)
                        .await;
                    // No runtime runs in this test: say what a runtime would have reported.
                    sqlx::query("UPDATE deployments SET status = 'terminated' WHERE name = $1")
                        .bind(&f.name)
                        .execute(self.db.pool())
                        .await
                        .expect("mark terminated");
                }
                return f;
            }
            Setup::Repository(k)
            | Setup::Version(k)
            | Setup::Uploading(k)
            | Setup::Multipart(k)
            | Setup::MultipartPart(k) => k,
        };
        f.name = self.fresh(kind);
        self.site(
            Method::POST,
            &format!("/api/v1/{kind}_repositories"),
            Body::Json(json!({"name": f.name, "description": ""})),
        )
        .await;
        if let Setup::Repository(_) = setup {
            return f;
        }
        f.version = "v1".into();
        self.site(
            Method::POST,
            &format!("/api/v1/{kind}_repositories/{}/{kind}s", f.name),
            Body::Json(json!({"version": "v1", "description": "", "manifest": {"size_bytes": 1}, "labels": []})),
        )
        .await;
        let path = format!("/api/v1/{kind}_repositories/{}/{kind}s/v1", f.name);
        match setup {
            Setup::Uploading(_) => {
                self.site(Method::PATCH, &format!("{path}/start_upload"), Body::None)
                    .await;
            }
            Setup::Multipart(_) | Setup::MultipartPart(_) => {
                let v = self
                    .site(
                        Method::PATCH,
                        &format!("{path}/start_multipart_upload"),
                        Body::None,
                    )
                    .await;
                f.upload_id = v["upload_id"].as_str().unwrap().into();
                if let Setup::MultipartPart(_) = setup {
                    let v = self
                        .site(
                            Method::PATCH,
                            &format!("{path}/presign_multipart_upload_url"),
                            Body::Json(json!({"upload_id": f.upload_id, "part_number": 1})),
                        )
                        .await;
                    let res = self
                        .http
                        .put(v["presigned_upload_url"].as_str().unwrap())
                        .body(archive(b"a part"))
                        .send()
                        .await
                        .expect("PUT part");
                    assert_eq!(res.status(), StatusCode::OK, "PUT part");
                    f.etag = res.headers()["etag"].to_str().unwrap().into();
                }
            }
            _ => {}
        }
        // The site admin's creation (and start) of the version claimed it for the site admin's
        // push: other credentials would be told that they lost the push (409), which is the
        // push rule's business, tested in hardening.rs. The matrix asks who may act on a
        // version nobody is pushing.
        sqlx::query("UPDATE versions SET push_claimed_at = NULL, push_claim_holder = NULL")
            .execute(self.db.pool())
            .await
            .expect("release the fixture's push claim");
        f
    }

    /// Calls as `who`.
    async fn call(&self, who: Who, variant: &Variant, path: &str, fix: &Fix) -> Answer {
        let body = (variant.body)(self, fix, who);
        let method = variant.method.clone();
        match who {
            Who::NoAuth => self.send(method, path, body, None, None).await,
            Who::WrongScope => {
                let name = format!("{:?}", variant.wrong);
                let token = &self.wrong.iter().find(|(n, _)| *n == name).unwrap().1;
                self.send(method, path, body, Some(token), None).await
            }
            s if s.is_session() => {
                self.send(method, path, body, None, Some(&self.sessions[&s]))
                    .await
            }
            t => {
                self.send(method, path, body, Some(&self.tokens[&t]), None)
                    .await
            }
        }
    }
}

fn fill(route: &str, f: &Fix) -> String {
    route
        .replace("{name}", &f.name)
        .replace("{version}", &f.version)
        .replace("{uid}", &f.uid)
        .replace("{cluster}", "default")
        .replace("{namespace}", "default")
}

/// Every (METHOD, path) the server lists: the OpenAPI document and the registry route table.
fn listed_routes() -> BTreeSet<(String, String)> {
    let doc = yatai_server::api::openapi();
    let mut out = BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        for (method, op) in [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
            ("HEAD", &item.head),
            ("OPTIONS", &item.options),
            ("TRACE", &item.trace),
        ] {
            if op.is_some() {
                out.insert((method.to_string(), path.clone()));
            }
        }
    }
    for r in yatai_server::api::registry::routes() {
        out.insert((r.method.to_string(), r.path));
    }
    out
}

fn route_of(variant: &Variant) -> (String, String) {
    let path = variant.route.split('?').next().unwrap().to_string();
    (variant.method.to_string(), path)
}

async fn auth_matrix(app: TestApp) {
    let listed = listed_routes();
    let table = variants();
    let covered: BTreeSet<_> = table.iter().map(route_of).collect();
    let forgotten: Vec<_> = listed.difference(&covered).collect();
    let stale: Vec<_> = covered.difference(&listed).collect();
    assert!(
        forgotten.is_empty() && stale.is_empty(),
        "the auth matrix and the server's routes differ.\n  routes without a row in variants() \
         (add one with the statuses each caller must get): {forgotten:?}\n  rows for routes the \
         server no longer lists: {stale:?}"
    );

    let mut world = World::build(&app).await;
    let mut wrong = Vec::new();
    let mut lines = Vec::new();
    for variant in &table {
        let mut cells = Vec::new();
        for (i, who) in WHO.iter().enumerate() {
            let fix = world.prepare(variant.setup).await;
            let path = fill(&variant.route, &fix);
            let answer = world.call(*who, variant, &path, &fix).await;
            let want = variant.expect[i];
            let got = answer.status.as_u16();
            let leak = *who == Who::OtherOrg && got == 200 && answer.text.contains(OURS);
            if got != want || leak {
                let why = if leak {
                    format!("200 but the answer shows the other organization's {OURS}* names")
                } else {
                    format!("expected {want}, got {got}")
                };
                wrong.push(format!(
                    "{} {}{} as {}: {why}: {}",
                    variant.method,
                    variant.route,
                    if variant.what.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", variant.what)
                    },
                    who.label(),
                    answer.text.chars().take(240).collect::<String>()
                ));
                cells.push(format!("{got}!={want}"));
            } else {
                cells.push(got.to_string());
            }
            if variant.ends_sessions && who.is_session() {
                let name = world.users[who].clone();
                let s = world.login(&name, world.password(*who)).await;
                world.sessions.insert(*who, s);
            }
        }
        lines.push(format!(
            "{:<7} {:<75} {}",
            variant.method.as_str(),
            format!(
                "{}{}",
                variant.route.split('?').next().unwrap(),
                if variant.what.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", variant.what)
                }
            ),
            cells.join(" ")
        ));
    }
    println!(
        "auth matrix ({:?}); columns: {}\n{}",
        app.backend,
        WHO.map(Who::label).join(" | "),
        lines.join("\n")
    );
    assert!(
        wrong.is_empty(),
        "{} of {} calls got the wrong answer ({:?}):\n{}",
        wrong.len(),
        table.len() * WHO.len(),
        app.backend,
        wrong.join("\n")
    );
}

backend_test!(every_route_against_every_caller, auth_matrix);

/// Every string in the server's sources that looks like an `/api/...` path (route tables,
/// `#[utoipa::path]`, `format!` patterns), with `{...}` parameters.
fn paths_in_sources() -> BTreeSet<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut found = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for piece in text.split('"').skip(1).step_by(2) {
            if piece.starts_with("/api/") && !piece.contains(char::is_whitespace) {
                found.insert(piece.replace("{{", "{").replace("}}", "}"));
            }
        }
    }
    found
}

/// Whether `path` (concrete) matches the route pattern `pattern` segment by segment.
fn matches(pattern: &str, path: &str) -> bool {
    let (a, b): (Vec<_>, Vec<_>) = (pattern.split('/').collect(), path.split('/').collect());
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(p, s)| (p.starts_with('{') && p.ends_with('}')) || p == s)
}

/// Routes the router serves on purpose without listing them, and why.
const UNLISTED_BY_DESIGN: &[(&str, &str, &str)] =
    &[("GET", "/api/v1/openapi.json", "the OpenAPI document itself")];

async fn router_serves_only_listed_routes(app: TestApp) {
    let listed = listed_routes();
    let http = reqwest::Client::new();
    let fallback = |status: StatusCode, body: &str| {
        (status == StatusCode::NOT_FOUND && body.contains("no such route"))
            || (status == StatusCode::METHOD_NOT_ALLOWED && body.contains("method_not_allowed"))
    };
    let concrete = |p: &str| {
        p.split('/')
            .map(|s| if s.starts_with('{') { "probe" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    };
    let mut problems = Vec::new();
    // Everything listed is served.
    for (method, path) in &listed {
        let res = http
            .request(
                method.parse().unwrap(),
                format!("{}{}", app.base, concrete(path)),
            )
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        if fallback(status, &body) {
            problems.push(format!(
                "{method} {path} is listed but the router does not serve it ({status})"
            ));
        }
    }
    // Everything served under /api is listed.
    let mut candidates = paths_in_sources();
    candidates.extend(listed.iter().map(|(_, p)| p.clone()));
    for path in &candidates {
        let probe = concrete(path.split('?').next().unwrap());
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let res = http
                .request(method.parse().unwrap(), format!("{}{probe}", app.base))
                .send()
                .await
                .unwrap();
            let status = res.status();
            let body = res.text().await.unwrap_or_default();
            if fallback(status, &body) {
                continue;
            }
            let known = listed
                .iter()
                .any(|(m, p)| m == method && matches(p, &probe))
                || UNLISTED_BY_DESIGN
                    .iter()
                    .any(|(m, p, _)| *m == method && *p == probe);
            if !known {
                problems.push(format!(
                    "{method} {probe} is served ({status}) but is neither in the OpenAPI document nor \
                     in the registry route table: document it, or it escapes the auth matrix"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "router and route list differ ({} candidate paths probed):\n{}",
        candidates.len(),
        problems.join("\n")
    );
}

backend_test!(
    the_router_serves_exactly_the_listed_routes,
    router_serves_only_listed_routes
);
