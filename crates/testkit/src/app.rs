//! The one test harness: the real application on a real port against one of the two backend
//! pairs, SQLite + local directory or PostgreSQL + S3 server, and clients that talk to it over
//! HTTP. The router comes from the caller (the server's tests pass `yatai_server::app`), so this
//! crate does not depend on the server and the server's tests depend on it without a loop.

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use yatai_service::{Services, Settings};
use yatai_store::{Db, ObjectStorage, ObjectStorageConfig};

use crate::{fresh_postgres_database, fresh_s3_bucket};
pub use crate::{ADMIN_PASSWORD, INIT_TOKEN};

/// Builds the application served by a test server.
pub type AppRouter = fn(Services) -> axum::Router;

/// A backend pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file + local object directory (the embedded default).
    Embedded,
    /// PostgreSQL + S3-compatible server (production).
    Production,
}

/// Declares a test that runs once per backend pair, on a server built by `router`:
/// `backend_test!(name, router, |app| async move { ... })`.
#[macro_export]
macro_rules! backend_test {
    ($name:ident, $router:expr, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_and_local_directory() {
                let app = $crate::app::TestApp::launch(
                    $crate::app::Backend::Embedded,
                    Default::default(),
                    $router,
                )
                .await;
                ($body)(app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_and_s3() {
                let app = $crate::app::TestApp::launch(
                    $crate::app::Backend::Production,
                    Default::default(),
                    $router,
                )
                .await;
                ($body)(app).await;
            }
        }
    };
}

/// Where the storage of a test server lives, kept across restarts.
#[derive(Debug, Clone)]
pub struct StorageSpec {
    pub database_url: String,
    pub objects: ObjectStorageConfig,
}

/// A running test server.
pub struct TestApp {
    pub backend: Backend,
    pub addr: SocketAddr,
    pub base: String,
    pub storage: StorageSpec,
    pub state: Services,
    pub settings: Settings,
    router: AppRouter,
    server: tokio::task::JoinHandle<()>,
    _dir: std::sync::Arc<tempfile::TempDir>,
}

impl TestApp {
    /// Starts a server built by `router` on fresh storage of the given backend pair.
    pub async fn launch(backend: Backend, settings: Settings, router: AppRouter) -> TestApp {
        let dir = std::sync::Arc::new(tempfile::tempdir().expect("temp dir"));
        let storage = match backend {
            Backend::Embedded => StorageSpec {
                database_url: format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("yatai.db").display()
                ),
                objects: ObjectStorageConfig::Local {
                    root: dir.path().join("objects"),
                },
            },
            Backend::Production => StorageSpec {
                database_url: fresh_postgres_database().await,
                objects: ObjectStorageConfig::S3(fresh_s3_bucket().await),
            },
        };
        Self::launch_on(backend, storage, settings, router, dir, None).await
    }

    async fn launch_on(
        backend: Backend,
        storage: StorageSpec,
        mut settings: Settings,
        router: AppRouter,
        dir: std::sync::Arc<tempfile::TempDir>,
        addr: Option<SocketAddr>,
    ) -> TestApp {
        let db = Db::connect(&storage.database_url)
            .await
            .expect("connect database");
        db.migrate().await.expect("migrate");
        let objects = ObjectStorage::open(&storage.objects)
            .await
            .expect("open object storage");
        let listener =
            tokio::net::TcpListener::bind(addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()))
                .await
                .expect("bind");
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        settings.initialization_token = INIT_TOKEN.into();
        settings.public_url = base.clone();
        let state = Services::new(db, objects, settings.clone());
        let app = router(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("server");
        });
        TestApp {
            backend,
            addr,
            base,
            storage,
            state,
            settings,
            router,
            server,
            _dir: dir,
        }
    }

    /// Stops the server and starts a new one on the same storage and port, as after a crash.
    pub async fn restart(self) -> TestApp {
        self.server.abort();
        let _ = self.server.await;
        self.state.db.close().await;
        Self::launch_on(
            self.backend,
            self.storage.clone(),
            self.settings.clone(),
            self.router,
            self._dir.clone(),
            Some(self.addr),
        )
        .await
    }

    /// A client with a cookie store (a browser session).
    pub fn browser(&self) -> Client {
        Client {
            base: self.base.clone(),
            http: reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .unwrap(),
            token: None,
            org: None,
        }
    }

    /// A client that authenticates with an API token.
    pub fn with_token(&self, token: &str) -> Client {
        Client {
            base: self.base.clone(),
            http: reqwest::Client::new(),
            token: Some(token.to_string()),
            org: None,
        }
    }

    /// Runs setup with the default admin; returns a logged-in browser client.
    pub async fn setup_admin(&self) -> Client {
        let c = self.browser();
        let (s, body) = c.post("/api/v1/setup", json!({"token": INIT_TOKEN, "name": "admin", "email": "admin@example.com", "password": ADMIN_PASSWORD})).await;
        assert_eq!(s, StatusCode::OK, "setup: {body}");
        c.login("admin", ADMIN_PASSWORD).await;
        c
    }

    /// Counts rows of a table, straight from the database.
    pub async fn count_rows(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(self.state.db.pool())
            .await
            .expect("count")
    }
}

/// An HTTP client bound to the test server.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
    pub token: Option<String>,
    /// Organization picked with the `X-Yatai-Organization` header (browser sessions).
    pub org: Option<String>,
}

impl Client {
    /// Sends a request; returns the status and the JSON body (or the text as a JSON string).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(60));
        if let Some(t) = &self.token {
            req = req.header("X-YATAI-API-TOKEN", t);
        }
        if let Some(o) = &self.org {
            req = req.header("X-Yatai-Organization", o);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// The same session, acting in another organization.
    pub fn in_org(&self, org: &str) -> Client {
        Client {
            org: Some(org.to_string()),
            ..self.clone()
        }
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.send(Method::DELETE, path, body).await
    }

    /// Logs in with a password (the cookie store keeps the session).
    pub async fn login(&self, name: &str, password: &str) {
        let (s, body) = self
            .post(
                "/api/v1/auth/login",
                json!({"name_or_email": name, "password": password}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "login as {name}: {body}");
    }

    /// Creates the user `name` (e-mail `name@example.com`) with `role` in the client's
    /// organization, or the server's default role for `None`; asserts it is created.
    pub async fn create_user(&self, name: &str, password: &str, role: Option<&str>) {
        let mut body =
            json!({"name": name, "email": format!("{name}@example.com"), "password": password});
        if let Some(role) = role {
            body["role"] = json!(role);
        }
        let (s, answer) = self.post("/api/v1/users", body).await;
        assert_eq!(s, StatusCode::OK, "create user {name}: {answer}");
    }

    /// Creates an API token with the given scopes; returns (uid, secret).
    pub async fn create_token(&self, name: &str, scopes: &[&str]) -> (String, String) {
        let (s, body) = self
            .post(
                "/api/v1/api_tokens",
                json!({"name": name, "scopes": scopes, "expired_at": null}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "create token {name}: {body}");
        (
            body["uid"].as_str().unwrap().to_string(),
            body["token"].as_str().unwrap().to_string(),
        )
    }
}

/// Asserts a response is an error of the common shape with the given status.
pub fn assert_error(status: StatusCode, body: &Value, expected: StatusCode) {
    assert_eq!(status, expected, "unexpected status; body: {body}");
    assert!(
        body["error"].is_string() && body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error body must be {{error, message}}: {body}"
    );
}

// ---------------------------------------------------------------- the dashboard over HTTP

/// Fetches a page; returns status and HTML.
pub async fn page(c: &Client, path: &str) -> (StatusCode, String) {
    let res = c
        .http
        .get(format!("{}{path}", c.base))
        .send()
        .await
        .unwrap();
    (res.status(), res.text().await.unwrap())
}

/// The CSRF value of the forms on a page.
pub fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("the page has a form with a CSRF field")
        + 19;
    html[at..at + html[at..].find('"').unwrap()].to_string()
}

pub async fn post_form(c: &Client, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let res = c
        .http
        .post(format!("{}{path}", c.base))
        .form(form)
        .send()
        .await
        .unwrap();
    (res.status(), res.text().await.unwrap())
}

/// Makes object storage fail from now on: the local directory becomes a file, the bucket is
/// emptied and deleted.
pub async fn break_object_storage(app: &TestApp) {
    match &app.storage.objects {
        ObjectStorageConfig::Local { root } => {
            std::fs::remove_dir_all(root).unwrap();
            std::fs::write(root, b"not a directory").unwrap();
        }
        ObjectStorageConfig::S3(s3) => {
            for key in app.state.objects.list_keys(None).await.unwrap() {
                app.state.objects.delete(&key).await.unwrap();
            }
            crate::delete_bucket(&s3.endpoint_url().unwrap(), &s3.bucket).await;
        }
    }
}
