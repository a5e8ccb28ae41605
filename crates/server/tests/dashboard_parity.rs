//! Every form of the dashboard and its API twin call the same service function, so they refuse
//! the same callers: a table of actions (one or more rows per form), each sent by a set of callers
//! through the dashboard form (with a valid session and CSRF token) and through the API, must
//! come to the same outcome, with the same status when refused, and a refused request must write
//! nothing. A check below keeps the table complete: every POST form of the templates and every
//! POST route of the dashboard has a row.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{csrf_of, TestApp, ADMIN_PASSWORD, INIT_TOKEN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// The v1 deployments of the default cluster's default namespace.
const DEPLOYMENTS: &str = "/api/v1/clusters/default/namespaces/default/deployments";

// ---------------------------------------------------------------- callers

/// Who sends the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    Guest,
    Developer,
    /// An admin of the default organization who is not a site admin.
    OrgAdmin,
    /// The first admin: site admin and admin of the default organization.
    SiteAdmin,
    /// The admin of another organization, not a member of the default one.
    OtherOrgAdmin,
}

const CALLERS: [Who; 6] = [
    Who::Anonymous,
    Who::Guest,
    Who::Developer,
    Who::OrgAdmin,
    Who::SiteAdmin,
    Who::OtherOrgAdmin,
];

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::Anonymous => "nobody",
            Who::Guest => "gina",
            Who::Developer => "dan",
            Who::OrgAdmin => "olga",
            Who::SiteAdmin => "admin",
            Who::OtherOrgAdmin => "otto",
        }
    }

    fn password(self) -> &'static str {
        match self {
            Who::SiteAdmin => ADMIN_PASSWORD,
            _ => "member-password-1",
        }
    }
}

/// What a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    Refused(u16),
}
use Outcome::{Done, Refused};

/// A browser of one caller: keeps its cookies, follows no redirect.
struct Session {
    who: Who,
    base: String,
    http: reqwest::Client,
    csrf: String,
}

impl Session {
    /// Logs `who` in (through the API) and reads the CSRF token of its pages.
    async fn open(app: &TestApp, who: Who) -> Session {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut s = Session {
            who,
            base: app.base.clone(),
            http,
            csrf: String::new(),
        };
        if who != Who::Anonymous {
            let (status, body) = s
                .api(
                    Method::POST,
                    "/api/v1/auth/login",
                    Some(json!({"name_or_email": who.name(), "password": who.password()})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "login as {who:?}: {body}");
        }
        let page = if who == Who::Anonymous { "/login" } else { "/" };
        let res = s
            .http
            .get(format!("{}{page}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{page} as {who:?}");
        s.csrf = csrf_of(&res.text().await.unwrap());
        s
    }

    /// An API request with this browser's session.
    async fn api(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, String) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        (res.status(), res.text().await.unwrap())
    }

    /// A form sent from a page of this browser (with its CSRF token).
    async fn form(&self, path: &str, fields: &[(&str, String)]) -> (StatusCode, String, String) {
        let mut all: Vec<(&str, &str)> = vec![("csrf", &self.csrf)];
        all.extend(fields.iter().map(|(k, v)| (*k, v.as_str())));
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .form(&all)
            .send()
            .await
            .unwrap();
        let location = res
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string())
            .unwrap_or_default();
        (res.status(), location, res.text().await.unwrap())
    }
}

fn api_outcome(status: StatusCode) -> Outcome {
    if status.is_success() {
        Done
    } else {
        Refused(status.as_u16())
    }
}

/// A dashboard answer as an outcome: the login redirect is the API's 401.
fn form_outcome(status: StatusCode, location: &str) -> Outcome {
    if status.is_redirection() && location.starts_with("/login?") {
        Refused(401)
    } else if status.is_success() || status.is_redirection() {
        Done
    } else {
        Refused(status.as_u16())
    }
}

// ---------------------------------------------------------------- the table

/// One row of the table: a dashboard form (some forms have several rows, one per kind of
/// target or input) and its API twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Setup,
    Login,
    LoginWrongPassword,
    Logout,
    CreateToken,
    CreateTokenInvalid,
    RevokeOwnToken,
    RevokeSiteAdminsToken,
    AuthorizeCliLogin,
    AddMember,
    AddUnknownMember,
    ChangeRole,
    RemoveMember,
    CreateUser,
    CreateUserInvalid,
    ResetSiteAdminPassword,
    ResetMemberPassword,
    ResetPasswordTooShort,
    /// "Build image" on a bento's page; the test server has no docker registry configured.
    BuildImage,
    /// "Add a Kubernetes cluster" (no kubeconfig: the cluster the server runs in).
    CreateCluster,
    CreateDeployment,
    /// A name that is not a DNS-1123 label.
    CreateDeploymentInvalid,
    /// The edit form: a new revision.
    UpdateDeployment,
    RollbackDeployment,
    TerminateDeployment,
    /// Of a terminated deployment.
    DeleteDeployment,
}

const ACTIONS: [Action; 26] = [
    Action::Setup,
    Action::Login,
    Action::LoginWrongPassword,
    Action::Logout,
    Action::CreateToken,
    Action::CreateTokenInvalid,
    Action::RevokeOwnToken,
    Action::RevokeSiteAdminsToken,
    Action::AuthorizeCliLogin,
    Action::AddMember,
    Action::AddUnknownMember,
    Action::ChangeRole,
    Action::RemoveMember,
    Action::CreateUser,
    Action::CreateUserInvalid,
    Action::ResetSiteAdminPassword,
    Action::ResetMemberPassword,
    Action::ResetPasswordTooShort,
    Action::BuildImage,
    Action::CreateCluster,
    Action::CreateDeployment,
    Action::CreateDeploymentInvalid,
    Action::UpdateDeployment,
    Action::RollbackDeployment,
    Action::TerminateDeployment,
    Action::DeleteDeployment,
];

impl Action {
    /// The dashboard route of the form (`{}` for a path parameter).
    fn form_route(self) -> &'static str {
        match self {
            Action::Setup => "/setup",
            Action::Login | Action::LoginWrongPassword => "/login",
            Action::Logout => "/logout",
            Action::CreateToken | Action::CreateTokenInvalid => "/api_tokens",
            Action::RevokeOwnToken | Action::RevokeSiteAdminsToken => "/api_tokens/{}/revoke",
            Action::AuthorizeCliLogin => "/api_tokens/authorize_cli",
            Action::AddMember | Action::AddUnknownMember => "/members",
            Action::ChangeRole => "/members/role",
            Action::RemoveMember => "/members/remove",
            Action::CreateUser | Action::CreateUserInvalid => "/users",
            Action::ResetSiteAdminPassword
            | Action::ResetMemberPassword
            | Action::ResetPasswordTooShort => "/users/{}/reset_password",
            Action::BuildImage => "/bentos/{}/{}/build_image",
            Action::CreateCluster => "/clusters",
            Action::CreateDeployment | Action::CreateDeploymentInvalid => "/deployments",
            Action::UpdateDeployment => "/clusters/{}/namespaces/{}/deployments/{}/edit",
            Action::RollbackDeployment => "/clusters/{}/namespaces/{}/deployments/{}/rollback",
            Action::TerminateDeployment => "/clusters/{}/namespaces/{}/deployments/{}/terminate",
            Action::DeleteDeployment => "/clusters/{}/namespaces/{}/deployments/{}/delete",
        }
    }

    /// What each caller must come to, on both paths.
    fn expected(self, who: Who) -> Outcome {
        use Who::*;
        let forbidden = Refused(403);
        let member = who != Anonymous;
        let admin = matches!(who, OrgAdmin | SiteAdmin | OtherOrgAdmin);
        if !member && !matches!(self, Action::Setup | Action::Logout | Action::Login) {
            return Refused(401);
        }
        match self {
            // Setup is closed for good once it ran.
            Action::Setup => Refused(409),
            Action::Login if member => Done,
            Action::Login | Action::LoginWrongPassword => Refused(401),
            Action::Logout => Done,
            Action::CreateToken | Action::RevokeOwnToken | Action::AuthorizeCliLogin => Done,
            Action::CreateTokenInvalid => Refused(400),
            // Another user's token is not found.
            Action::RevokeSiteAdminsToken if who == SiteAdmin => Done,
            Action::RevokeSiteAdminsToken => Refused(404),
            // The other organization's admin acts in their own organization, where the rule
            // lets them add a user by name, or create one.
            Action::AddMember | Action::ChangeRole | Action::CreateUser if admin => Done,
            Action::AddUnknownMember if admin => Refused(404),
            Action::CreateUserInvalid if admin => Refused(400),
            // The member is not one of the other organization (the site admin is: they created it).
            Action::RemoveMember | Action::ResetMemberPassword | Action::ResetPasswordTooShort
                if who == OtherOrgAdmin =>
            {
                Refused(404)
            }
            Action::RemoveMember | Action::ResetMemberPassword if admin => Done,
            Action::ResetPasswordTooShort if admin => Refused(400),
            // Only a site admin may set a site admin's password (the hole of issue 10).
            Action::ResetSiteAdminPassword if who == SiteAdmin => Done,
            // The bento is not the other organization's; who may build is told how to enable
            // builds (this server has no registry).
            Action::BuildImage if who == OtherOrgAdmin => Refused(404),
            Action::BuildImage if who != Guest => Refused(409),
            // Clusters are registered by admins, each in their own organization.
            Action::CreateCluster if admin => Done,
            // The bento is not one of the other organization.
            Action::CreateDeployment if who == OtherOrgAdmin => Refused(404),
            Action::CreateDeploymentInvalid if who != Guest => Refused(400),
            // The deployment is not one of the other organization's default cluster.
            Action::UpdateDeployment
            | Action::RollbackDeployment
            | Action::TerminateDeployment
            | Action::DeleteDeployment
                if who == OtherOrgAdmin =>
            {
                Refused(404)
            }
            // Developers and admins deploy.
            Action::CreateDeployment
            | Action::UpdateDeployment
            | Action::RollbackDeployment
            | Action::TerminateDeployment
            | Action::DeleteDeployment
                if who != Guest =>
            {
                Done
            }
            _ => forbidden,
        }
    }
}

/// The state every attempt starts from, and a supply of fresh targets.
struct Bench {
    app: TestApp,
    /// Site admin tokens with every scope: in the default and in the other organization.
    admin_default: common::Client,
    admin_other: common::Client,
    sessions: Vec<Session>,
    counter: usize,
}

/// One attempt, ready to send through both paths.
struct Attempt {
    api: (Method, String, Option<Value>),
    form: (String, Vec<(&'static str, String)>),
    /// Sent from this browser instead of the caller's own (login and logout need their own).
    browser: Option<(Session, Session)>,
}

const SCOPES: [&str; 5] = [
    "api",
    "read_organization",
    "write_organization",
    "read_cluster",
    "write_cluster",
];

impl Bench {
    async fn new(app: TestApp) -> Bench {
        let site_admin = app.setup_admin().await;
        let (s, body) = site_admin
            .post("/api/v1/orgs", json!({"name": "other"}))
            .await;
        assert_eq!(s, StatusCode::OK, "create the other organization: {body}");
        let (_, secret) = site_admin.create_token("bench", &SCOPES).await;
        let admin_default = app.with_token(&secret);
        let (_, secret) = site_admin
            .in_org("other")
            .create_token("bench", &SCOPES)
            .await;
        let admin_other = app.with_token(&secret);
        for (who, role, client) in [
            (Who::Guest, "guest", &admin_default),
            (Who::Developer, "developer", &admin_default),
            (Who::OrgAdmin, "admin", &admin_default),
            (Who::OtherOrgAdmin, "admin", &admin_other),
        ] {
            client
                .create_user(who.name(), who.password(), Some(role))
                .await;
        }
        // Deployments are handed to a scripted runtime (driven by `reconcile_once`).
        common::runtime::install(&app);
        let mut sessions = Vec::new();
        for who in CALLERS {
            sessions.push(Session::open(&app, who).await);
        }
        Bench {
            app,
            admin_default,
            admin_other,
            sessions,
            counter: 0,
        }
    }

    fn session(&self, who: Who) -> &Session {
        self.sessions.iter().find(|s| s.who == who).unwrap()
    }

    /// Sets up what `action` acts on, fresh for each attempt (an attempt that succeeds consumes it).
    async fn prepare(&mut self, action: Action, who: Who) -> Attempt {
        self.counter += 1;
        let n = self.counter;
        let plain = |api: (Method, String, Option<Value>),
                     form: (&str, Vec<(&'static str, String)>)| Attempt {
            api,
            form: (form.0.to_string(), form.1),
            browser: None,
        };
        match action {
            Action::Setup => plain(
                (
                    Method::POST,
                    "/api/v1/setup".into(),
                    Some(
                        json!({"token": INIT_TOKEN, "name": format!("late{n}"), "email": format!("late{n}@example.com"), "password": "late-password-1"}),
                    ),
                ),
                (
                    "/setup",
                    vec![
                        ("token", INIT_TOKEN.into()),
                        ("name", format!("late{n}")),
                        ("email", format!("late{n}@example.com")),
                        ("password", "late-password-1".into()),
                    ],
                ),
            ),
            Action::Login | Action::LoginWrongPassword => {
                let password = match action {
                    Action::Login => who.password(),
                    _ => "wrong-password-1",
                };
                let mut a = plain(
                    (
                        Method::POST,
                        "/api/v1/auth/login".into(),
                        Some(json!({"name_or_email": who.name(), "password": password})),
                    ),
                    (
                        "/login",
                        vec![
                            ("next", "/".into()),
                            ("name_or_email", who.name().into()),
                            ("password", password.into()),
                        ],
                    ),
                );
                // Logging in starts from a browser without a session.
                a.browser = Some((
                    Session::open(&self.app, Who::Anonymous).await,
                    Session::open(&self.app, Who::Anonymous).await,
                ));
                a
            }
            Action::Logout => {
                let mut a = plain(
                    (Method::POST, "/api/v1/auth/logout".into(), None),
                    ("/logout", vec![]),
                );
                // Each path ends a session of its own, not the caller's.
                a.browser = Some((
                    Session::open(&self.app, who).await,
                    Session::open(&self.app, who).await,
                ));
                a
            }
            Action::CreateToken | Action::CreateTokenInvalid => {
                let name = |side: &str| match action {
                    Action::CreateToken => format!("token{n}{side}"),
                    _ => format!("bad name {n}{side}"),
                };
                plain(
                    (
                        Method::POST,
                        "/api/v1/api_tokens".into(),
                        Some(json!({"name": name("a"), "scopes": ["api"], "expired_at": null})),
                    ),
                    (
                        "/api_tokens",
                        vec![("name", name("f")), ("scopes", "api".into())],
                    ),
                )
            }
            Action::RevokeOwnToken | Action::RevokeSiteAdminsToken => {
                let (api_uid, form_uid) =
                    if action == Action::RevokeOwnToken && who != Who::Anonymous {
                        let s = self.session(who);
                        (own_token(s, n, "a").await, own_token(s, n, "f").await)
                    } else {
                        let c = &self.admin_default;
                        (
                            c.create_token(&format!("t{n}a"), &["api"]).await.0,
                            c.create_token(&format!("t{n}f"), &["api"]).await.0,
                        )
                    };
                plain(
                    (
                        Method::DELETE,
                        format!("/api/v1/api_tokens/{api_uid}"),
                        None,
                    ),
                    (&format!("/api_tokens/{form_uid}/revoke"), vec![]),
                )
            }
            Action::AuthorizeCliLogin => {
                // The API has no route that confirms a CLI login code: its twin is the token
                // creation that `tokens::authorize_cli_login` runs (every scope), which holds
                // the rules the confirmation has to follow.
                let (s, code) = self.admin_default.get("/api/v1/auth/code").await;
                assert_eq!(s, StatusCode::OK);
                plain(
                    (
                        Method::POST,
                        "/api/v1/api_tokens".into(),
                        Some(json!({"name": format!("cli{n}"), "scopes": SCOPES})),
                    ),
                    (
                        "/api_tokens/authorize_cli",
                        vec![("code", code["code"].as_str().unwrap().into())],
                    ),
                )
            }
            Action::AddMember | Action::AddUnknownMember => {
                let (api_user, form_user) = (format!("new{n}a"), format!("new{n}f"));
                if action == Action::AddMember {
                    // Users of the other organization, not yet members of the default one.
                    self.admin_other
                        .create_user(&api_user, "member-password-1", Some("guest"))
                        .await;
                    self.admin_other
                        .create_user(&form_user, "member-password-1", Some("guest"))
                        .await;
                }
                plain(
                    (
                        Method::POST,
                        "/api/v1/members".into(),
                        Some(json!({"usernames": [api_user], "role": "developer"})),
                    ),
                    (
                        "/members",
                        vec![("username", form_user), ("role", "developer".into())],
                    ),
                )
            }
            Action::ChangeRole | Action::RemoveMember => {
                let (api_user, form_user) = self.two_members(n).await;
                match action {
                    Action::ChangeRole => plain(
                        (
                            Method::POST,
                            "/api/v1/members".into(),
                            Some(json!({"usernames": [api_user], "role": "admin"})),
                        ),
                        (
                            "/members/role",
                            vec![("username", form_user), ("role", "admin".into())],
                        ),
                    ),
                    _ => plain(
                        (
                            Method::DELETE,
                            "/api/v1/members".into(),
                            Some(json!({"username": api_user})),
                        ),
                        ("/members/remove", vec![("username", form_user)]),
                    ),
                }
            }
            Action::CreateUser | Action::CreateUserInvalid => {
                let email = |side: &str| match action {
                    Action::CreateUser => format!("user{n}{side}@example.com"),
                    _ => format!("user{n}{side}-not-an-email"),
                };
                plain(
                    (
                        Method::POST,
                        "/api/v1/users".into(),
                        Some(
                            json!({"name": format!("user{n}a"), "email": email("a"), "password": "user-password-1", "role": "developer"}),
                        ),
                    ),
                    (
                        "/users",
                        vec![
                            ("name", format!("user{n}f")),
                            ("email", email("f")),
                            ("password", "user-password-1".into()),
                            ("role", "developer".into()),
                        ],
                    ),
                )
            }
            Action::ResetSiteAdminPassword => plain(
                // The same password again, so that the site admin can log in afterwards.
                (
                    Method::POST,
                    "/api/v1/users/admin/reset_password".into(),
                    Some(json!({"new_password": ADMIN_PASSWORD})),
                ),
                (
                    "/users/admin/reset_password",
                    vec![("new_password", ADMIN_PASSWORD.into())],
                ),
            ),
            Action::BuildImage => {
                let name = self.uploaded_bento(n).await;
                plain(
                    (
                        Method::POST,
                        format!("/api/v1/bento_repositories/{name}/bentos/v1/build_image"),
                        None,
                    ),
                    (&format!("/bentos/{name}/v1/build_image"), vec![]),
                )
            }
            Action::CreateCluster => {
                // With a kubeconfig: the cluster the server runs in (none) is a site admin's.
                let kube = "apiVersion: v1\nclusters:\n- name: c\n  cluster: {server: 'https://k8s.example:6443'}\n";
                plain(
                    (
                        Method::POST,
                        "/api/v1/clusters".into(),
                        Some(
                            json!({"name": format!("k{n}a"), "kind": "kubernetes", "kube_config": kube}),
                        ),
                    ),
                    (
                        "/clusters",
                        vec![
                            ("name", format!("k{n}f")),
                            ("kube_config", kube.to_string()),
                        ],
                    ),
                )
            }
            Action::CreateDeployment | Action::CreateDeploymentInvalid => {
                let bento = self.deployable_bento(n).await;
                let name = |side: &str| match action {
                    Action::CreateDeployment => format!("d{n}{side}"),
                    _ => format!("Bad_{n}{side}"),
                };
                plain(
                    (
                        Method::POST,
                        "/api/v1/clusters/default/deployments".into(),
                        Some(
                            json!({"name": name("a"), "targets": [{"bento_repository": bento, "bento": "v1", "config": {}}]}),
                        ),
                    ),
                    (
                        "/deployments",
                        vec![
                            ("bento", format!("{bento}:v1")),
                            ("cluster", "default".into()),
                            ("name", name("f")),
                        ],
                    ),
                )
            }
            Action::UpdateDeployment
            | Action::RollbackDeployment
            | Action::TerminateDeployment
            | Action::DeleteDeployment => {
                let bento = self.deployable_bento(n).await;
                let (a, f) = (format!("d{n}a"), format!("d{n}f"));
                let mut first_revision = Vec::new();
                for name in [&a, &f] {
                    let (s, b) = self.admin_default.post("/api/v1/clusters/default/deployments", json!({"name": name, "targets": [{"bento_repository": bento, "bento": "v1", "config": {}}]})).await;
                    assert_eq!(s, StatusCode::OK, "{b}");
                    first_revision.push(b["latest_revision"]["uid"].as_str().unwrap().to_string());
                    if action == Action::DeleteDeployment {
                        let (s, b) = self
                            .admin_default
                            .post(&format!("{DEPLOYMENTS}/{name}/terminate"), json!({}))
                            .await;
                        assert_eq!(s, StatusCode::OK, "{b}");
                    }
                }
                if action == Action::DeleteDeployment {
                    yatai_service::deployments::reconcile_once(&self.app.state)
                        .await
                        .unwrap();
                }
                let target = json!([{"bento_repository": bento, "bento": "v1", "config": {"hpa_conf": {"max_replicas": 2}}}]);
                match action {
                    Action::UpdateDeployment => plain(
                        (
                            Method::PATCH,
                            format!("{DEPLOYMENTS}/{a}"),
                            Some(json!({"targets": target})),
                        ),
                        (
                            &format!("/clusters/default/namespaces/default/deployments/{f}/edit"),
                            vec![
                                ("bento", format!("{bento}:v1")),
                                ("max_replicas", "2".into()),
                            ],
                        ),
                    ),
                    Action::RollbackDeployment => plain(
                        (
                            Method::POST,
                            format!("{DEPLOYMENTS}/{a}/rollback"),
                            Some(json!({"revision_uid": first_revision[0]})),
                        ),
                        (
                            &format!(
                                "/clusters/default/namespaces/default/deployments/{f}/rollback"
                            ),
                            vec![("revision_uid", first_revision[1].clone())],
                        ),
                    ),
                    Action::TerminateDeployment => plain(
                        (Method::POST, format!("{DEPLOYMENTS}/{a}/terminate"), None),
                        (
                            &format!(
                                "/clusters/default/namespaces/default/deployments/{f}/terminate"
                            ),
                            vec![],
                        ),
                    ),
                    _ => plain(
                        (Method::DELETE, format!("{DEPLOYMENTS}/{a}"), None),
                        (
                            &format!("/clusters/default/namespaces/default/deployments/{f}/delete"),
                            vec![],
                        ),
                    ),
                }
            }
            Action::ResetMemberPassword | Action::ResetPasswordTooShort => {
                let (api_user, form_user) = self.two_members(n).await;
                let password = match action {
                    Action::ResetMemberPassword => "new-password-1",
                    _ => "short",
                };
                plain(
                    (
                        Method::POST,
                        format!("/api/v1/users/{api_user}/reset_password"),
                        Some(json!({"new_password": password})),
                    ),
                    (
                        &format!("/users/{form_user}/reset_password"),
                        vec![("new_password", password.into())],
                    ),
                )
            }
        }
    }

    /// A password reset (even to the same password) ends the user's sessions: the site admin
    /// logs in again.
    async fn after(&mut self, action: Action, outcome: Outcome) {
        if action == Action::ResetSiteAdminPassword && outcome == Done {
            let fresh = Session::open(&self.app, Who::SiteAdmin).await;
            let i = self
                .sessions
                .iter()
                .position(|s| s.who == Who::SiteAdmin)
                .unwrap();
            self.sessions[i] = fresh;
        }
    }

    /// A fresh bento `NAME:v1` of the default organization, uploaded.
    async fn uploaded_bento(&self, n: usize) -> String {
        let c = &self.admin_default;
        let name = format!("bento{n}");
        let (s, b) = c
            .post(
                "/api/v1/bento_repositories",
                json!({"name": name, "description": ""}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let path = format!("/api/v1/bento_repositories/{name}/bentos");
        let (s, b) = c
            .post(
                &path,
                json!({"version": "v1", "manifest": {"size_bytes": 1}, "labels": []}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, b) = c.patch(&format!("{path}/v1/start_upload"), json!({})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let res = c
            .http
            .put(format!("{}{path}/v1/upload", c.base))
            .header("X-YATAI-API-TOKEN", c.token.as_deref().unwrap())
            .body(common::registry::tar_archive(&[(
                "bento.yaml",
                b"name: x\n",
            )]))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        name
    }

    /// A fresh bento `NAME:v1` of the default organization that can be deployed (its upload
    /// finished).
    async fn deployable_bento(&self, n: usize) -> String {
        let name = self.uploaded_bento(n).await;
        let (s, b) = self
            .admin_default
            .patch(
                &format!("/api/v1/bento_repositories/{name}/bentos/v1/finish_upload"),
                json!({"status": "success", "reason": ""}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        name
    }

    /// Two fresh developers of the default organization: one for each path.
    async fn two_members(&self, n: usize) -> (String, String) {
        let (a, f) = (format!("member{n}a"), format!("member{n}f"));
        self.admin_default
            .create_user(&a, "member-password-1", Some("developer"))
            .await;
        self.admin_default
            .create_user(&f, "member-password-1", Some("developer"))
            .await;
        (a, f)
    }

    /// Every row and every object, to see that a refused request wrote nothing.
    async fn snapshot(&self) -> String {
        let tables = yatai_testkit::dump::dump_database(&self.app.storage.database_url).await;
        let objects = yatai_testkit::dump::dump_objects(&self.app.state.objects).await;
        format!("{tables:?}\n{objects:?}")
    }
}

async fn own_token(s: &Session, n: usize, side: &str) -> String {
    let (status, body) = s
        .api(
            Method::POST,
            "/api/v1/api_tokens",
            Some(json!({"name": format!("own{n}{side}"), "scopes": ["api"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["uid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Sends one attempt through one path; returns the outcome, and a complaint when a refused
/// request wrote something.
async fn send(bench: &Bench, attempt: &Attempt, who: Who, through_api: bool) -> (Outcome, String) {
    let own = bench.session(who);
    let browser = match &attempt.browser {
        Some((api, form)) => {
            if through_api {
                api
            } else {
                form
            }
        }
        None => own,
    };
    let before = bench.snapshot().await;
    let (outcome, answer) = if through_api {
        let (method, path, body) = attempt.api.clone();
        let (status, text) = browser.api(method, &path, body).await;
        (api_outcome(status), text)
    } else {
        let (path, fields) = &attempt.form;
        let (status, location, html) = browser.form(path, fields).await;
        let title = html
            .split_once("<title>")
            .and_then(|(_, t)| t.split_once("</title>"))
            .map_or("", |(t, _)| t);
        (
            form_outcome(status, &location),
            format!("{status} {location} {title}"),
        )
    };
    let mut complaint = String::new();
    if let Refused(_) = outcome {
        if bench.snapshot().await != before {
            complaint = format!("refused, yet it wrote to the database or storage: {answer:.200}");
        }
    }
    (outcome, complaint)
}

async fn forms_and_api_refuse_the_same_callers(app: TestApp) {
    let mut bench = Bench::new(app).await;
    let mut wrong = Vec::new();
    let mut table = String::new();
    for action in ACTIONS {
        table.push_str(&format!("{action:?}:"));
        for who in CALLERS {
            let expected = action.expected(who);
            let attempt = bench.prepare(action, who).await;
            let (api, api_complaint) = send(&bench, &attempt, who, true).await;
            bench.after(action, api).await;
            let (form, form_complaint) = send(&bench, &attempt, who, false).await;
            bench.after(action, form).await;
            table.push_str(&format!(" {who:?}={form:?}"));
            if api != expected || form != expected {
                wrong.push(format!(
                    "{action:?} by {who:?}: API {api:?}, dashboard {form:?}, expected {expected:?}"
                ));
            }
            for c in [api_complaint, form_complaint] {
                if !c.is_empty() {
                    wrong.push(format!("{action:?} by {who:?}: {c}"));
                }
            }
        }
        table.push('\n');
    }
    assert!(
        wrong.is_empty(),
        "{}\n\noutcomes:\n{table}",
        wrong.join("\n")
    );
}

backend_test!(
    every_form_refuses_the_callers_its_api_twin_refuses,
    forms_and_api_refuse_the_same_callers
);

// ---------------------------------------------------------------- setup, before and after

async fn setup_form_and_api_agree(app: TestApp) {
    let anonymous = Session::open_before_setup(&app).await;
    let snapshot = || async {
        format!(
            "{:?}",
            yatai_testkit::dump::dump_database(&app.storage.database_url).await
        )
    };
    let empty = snapshot().await;
    let account = |token: &str, email: &str| {
        (
            json!({"token": token, "name": "first", "email": email, "password": "first-password-1"}),
            vec![
                ("token", token.to_string()),
                ("name", "first".to_string()),
                ("email", email.to_string()),
                ("password", "first-password-1".to_string()),
            ],
        )
    };
    for (token, email, expected) in [
        ("wrong-token", "first@example.com", Refused(403)),
        (INIT_TOKEN, "not-an-email", Refused(400)),
    ] {
        let (body, fields) = account(token, email);
        let (s, text) = anonymous
            .api(Method::POST, "/api/v1/setup", Some(body))
            .await;
        assert_eq!(api_outcome(s), expected, "API setup: {text}");
        let (s, location, html) = anonymous.form("/setup", &fields).await;
        assert_eq!(form_outcome(s, &location), expected, "setup form: {html}");
        if expected == Refused(400) {
            assert_eq!(
                serde_json::from_str::<Value>(&text).unwrap()["field"],
                "email"
            );
            let error_at = html.find("class=\"field-error\"").expect("a field error");
            let email_at = html.find("id=\"email\"").unwrap();
            let password_at = html.find("id=\"password\"").unwrap();
            assert!(
                email_at < error_at && error_at < password_at,
                "the error is shown next to the e-mail input: {html}"
            );
        }
        assert_eq!(snapshot().await, empty, "a refused setup wrote something");
    }
    let (_, fields) = account(INIT_TOKEN, "first@example.com");
    let (s, location, html) = anonymous.form("/setup", &fields).await;
    assert_eq!(
        (s, location.as_str()),
        (StatusCode::SEE_OTHER, "/"),
        "{html}"
    );
    let (body, fields) = account(INIT_TOKEN, "second@example.com");
    let after = snapshot().await;
    let (s, _) = anonymous
        .api(Method::POST, "/api/v1/setup", Some(body))
        .await;
    assert_eq!(api_outcome(s), Refused(409));
    let (s, location, _) = anonymous.form("/setup", &fields).await;
    assert_eq!(form_outcome(s, &location), Refused(409));
    assert_eq!(snapshot().await, after, "a refused setup wrote something");
}

impl Session {
    /// A browser on the setup page, before setup.
    async fn open_before_setup(app: &TestApp) -> Session {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let res = http
            .get(format!("{}/setup?token={INIT_TOKEN}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let csrf = csrf_of(&res.text().await.unwrap());
        Session {
            who: Who::Anonymous,
            base: app.base.clone(),
            http,
            csrf,
        }
    }
}

backend_test!(
    the_setup_form_refuses_what_the_api_refuses,
    setup_form_and_api_agree
);

// ---------------------------------------------------------------- the table is complete

/// `{}` for each `{{ expression }}` or `{name}` in a route.
fn route_shape(route: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in route.chars() {
        match c {
            '{' => {
                if depth == 0 {
                    out.push_str("{}");
                }
                depth += 1;
            }
            '}' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The value of `name="..."` in an HTML tag.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
    Some(&tag[at..at + tag[at..].find('"')?])
}

#[test]
fn every_post_form_and_route_of_the_dashboard_has_a_row() {
    let covered: BTreeSet<String> = ACTIONS.iter().map(|a| a.form_route().to_string()).collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(root.join("templates")).unwrap() {
        let html = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for tag in html.split("<form").skip(1) {
            let tag = &tag[..tag.find('>').unwrap()];
            if attribute(tag, "method") == Some("post") {
                found.insert(route_shape(attribute(tag, "action").unwrap()));
            }
        }
    }
    for entry in std::fs::read_dir(root.join("src/dashboard/pages")).unwrap() {
        let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for route in source.split(".route(").skip(1) {
            // rustfmt puts the path of a long route on a line of its own.
            let Some(route) = route.trim_start().strip_prefix('"') else {
                continue;
            };
            let (path, rest) = route.split_once('"').unwrap();
            // The handlers: the rest of the `.route(...)` call.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(rest.len(), |(i, _)| i);
            let handlers = &rest[..end];
            if handlers.contains("post(") {
                found.insert(route_shape(path));
            }
        }
    }
    assert!(found.len() >= 10, "forms and routes not found: {found:?}");
    let missing: Vec<&String> = found.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "POST forms or routes of the dashboard without a row in the parity table: {missing:?}"
    );
}
