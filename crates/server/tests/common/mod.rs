//! Test support: runs the real application on a real port against one of the two backend
//! pairs, SQLite + local directory or PostgreSQL + S3 server, and talks to it over HTTP.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use yatai_server::{AppState, Settings};
use yatai_store::{Db, ObjectStorage, ObjectStorageConfig};

/// The initialization token every test server uses.
pub const INIT_TOKEN: &str = "test-initialization-token";
/// The first admin's password.
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// A backend pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file + local object directory (the embedded default).
    Embedded,
    /// PostgreSQL + S3-compatible server (production).
    Production,
}

/// Declares a test that runs once per backend pair: `backend_test!(name, |app| async move { ... })`.
#[macro_export]
macro_rules! backend_test {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_and_local_directory() {
                let app = $crate::common::TestApp::start($crate::common::Backend::Embedded).await;
                ($body)(app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_and_s3() {
                let app = $crate::common::TestApp::start($crate::common::Backend::Production).await;
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
    pub state: AppState,
    pub settings: Settings,
    server: tokio::task::JoinHandle<()>,
    _dir: std::sync::Arc<tempfile::TempDir>,
}

pub use yatai_testkit::{fresh_postgres_database, fresh_s3_bucket};

impl TestApp {
    /// Starts a server on fresh storage of the given backend pair.
    pub async fn start(backend: Backend) -> TestApp {
        Self::start_with(backend, Settings::default()).await
    }

    /// Starts a server on fresh storage with custom settings.
    pub async fn start_with(backend: Backend, settings: Settings) -> TestApp {
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
        Self::launch(backend, storage, settings, dir, None).await
    }

    async fn launch(
        backend: Backend,
        storage: StorageSpec,
        mut settings: Settings,
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
        let state = AppState::new(db, objects, settings.clone());
        let app = yatai_server::app(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("server");
        });
        TestApp {
            backend,
            addr,
            base,
            storage,
            state,
            settings,
            server,
            _dir: dir,
        }
    }

    /// Stops the server and starts a new one on the same storage and port, as after a crash.
    pub async fn restart(self) -> TestApp {
        self.server.abort();
        let _ = self.server.await;
        self.state.db.close().await;
        Self::launch(
            self.backend,
            self.storage.clone(),
            self.settings.clone(),
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

/// A tar archive holding the given files (as the clients build them).
pub fn tar_archive(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}
