//! Whole installations for tests: storage of either backend pair, a server running on it in
//! this process, and data put in through the API the way clients do.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use yatai_service::{Services, Settings};

use crate::app::AppRouter;
pub use crate::{ADMIN_PASSWORD, INIT_TOKEN};
use yatai_store::{Db, ObjectStorage, ObjectStorageConfig};

/// The storage of one installation.
#[derive(Debug, Clone)]
pub struct Installation {
    pub database_url: String,
    pub objects: ObjectStorageConfig,
    /// Its data directory (embedded) or a scratch directory (production).
    pub dir: Arc<tempfile::TempDir>,
}

impl Installation {
    /// SQLite + a local object directory, in a temporary directory.
    pub fn embedded() -> Installation {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        Installation {
            database_url: format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("yatai.db").display()
            ),
            objects: ObjectStorageConfig::Local {
                root: dir.path().join("objects"),
            },
            dir,
        }
    }

    /// A fresh PostgreSQL database + a fresh S3 bucket.
    pub async fn production() -> Installation {
        Installation {
            database_url: crate::fresh_postgres_database().await,
            objects: ObjectStorageConfig::S3(crate::fresh_s3_bucket().await),
            dir: Arc::new(tempfile::tempdir().expect("temp dir")),
        }
    }

    /// Either pair by name: `embedded` or `production`.
    pub async fn of(pair: Pair) -> Installation {
        match pair {
            Pair::Embedded => Self::embedded(),
            Pair::Production => Self::production().await,
        }
    }

    /// Connects to its database (no migration).
    pub async fn db(&self) -> Db {
        Db::connect(&self.database_url).await.expect("connect")
    }

    /// Opens its object storage.
    pub async fn storage(&self) -> ObjectStorage {
        ObjectStorage::open(&self.objects)
            .await
            .expect("open storage")
    }

    /// The environment of the `yatai` binary for this storage.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![("YATAI_DATABASE_URL".to_string(), self.database_url.clone())];
        match &self.objects {
            ObjectStorageConfig::Local { root } => env.push((
                "YATAI_DATA_DIR".into(),
                root.parent().unwrap().display().to_string(),
            )),
            ObjectStorageConfig::S3(s3) => {
                env.push(("S3_ENDPOINT".into(), s3.endpoint.clone()));
                env.push(("S3_ACCESS_KEY".into(), s3.access_key.clone()));
                env.push(("S3_SECRET_KEY".into(), s3.secret_key.clone()));
                env.push(("S3_BUCKET_NAME".into(), s3.bucket.clone()));
                env.push(("S3_REGION".into(), s3.region.clone()));
                env.push(("S3_SECURE".into(), s3.secure.to_string()));
                env.push((
                    "YATAI_DATA_DIR".into(),
                    self.dir.path().display().to_string(),
                ));
            }
        }
        env
    }

    /// Starts a server built by `router` on it (migrating the schema first).
    pub async fn serve(&self, router: AppRouter) -> Server {
        let db = self.db().await;
        db.migrate().await.expect("migrate");
        let objects = self.storage().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let settings = Settings {
            initialization_token: INIT_TOKEN.into(),
            public_url: base.clone(),
            ..Settings::default()
        };
        let state = Services::new(db, objects, settings);
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await;
        });
        Server { base, state, task }
    }
}

/// A backend pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pair {
    /// SQLite + local directory.
    Embedded,
    /// PostgreSQL + S3.
    Production,
}

/// A server running in this process.
pub struct Server {
    pub base: String,
    pub state: Services,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Stops it and closes its database connections.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        self.state.db.close().await;
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A JSON request with an API token; panics unless it succeeds.
    pub async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let mut req = reqwest::Client::new()
            .request(method.clone(), self.url(path))
            .header("X-YATAI-API-TOKEN", token)
            .timeout(Duration::from_secs(60));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }

    /// Runs setup, logs in and creates an API token; returns the token.
    pub async fn setup_admin(&self) -> String {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap();
        let r = http
            .post(self.url("/api/v1/setup"))
            .json(&json!({"token": INIT_TOKEN, "name": "admin", "email": "admin@example.com", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "setup: {}",
            r.text().await.unwrap()
        );
        let r = http
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"name_or_email": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "login");
        let r = http
            .post(self.url("/api/v1/api_tokens"))
            .json(&json!({"name": "cli", "scopes": ["api", "read_organization", "write_organization"], "expired_at": null}))
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        body["token"].as_str().expect("token").to_string()
    }

    /// Creates a repository (if needed) and a version, and uploads its archive through the
    /// server; returns the version's JSON.
    pub async fn push(
        &self,
        token: &str,
        kind: &str,
        repo: &str,
        version: &str,
        archive: &[u8],
        labels: Value,
    ) -> Value {
        let res = reqwest::Client::new()
            .post(self.url(&format!("/api/v1/{kind}_repositories")))
            .header("X-YATAI-API-TOKEN", token)
            .json(&json!({"name": repo, "description": format!("{repo} — ünïcode")}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success() || res.status() == reqwest::StatusCode::CONFLICT);
        let manifest = if kind == "bento" {
            json!({"service": "service:svc", "bentoml_version": "1.4.40", "size_bytes": archive.len(), "apis": {}, "models": ["clf:v1"], "runners": [], "schema": {}})
        } else {
            json!({"module": "bentoml.sklearn", "api_version": "v1", "bentoml_version": "1.4.40", "size_bytes": archive.len(), "metadata": {"ä": "ö"}, "context": {}, "options": {}})
        };
        self.call(token, reqwest::Method::POST, &format!("/api/v1/{kind}_repositories/{repo}/{kind}s"),
            Some(json!({"version": version, "description": "a \"quoted\"\nmulti-line description", "manifest": manifest, "build_at": "2026-11-25 12:30:34.554117", "labels": labels}))).await;
        let path = format!("/api/v1/{kind}_repositories/{repo}/{kind}s/{version}");
        self.call(
            token,
            reqwest::Method::PATCH,
            &format!("{path}/start_upload"),
            Some(json!({})),
        )
        .await;
        let res = reqwest::Client::new()
            .put(self.url(&format!("{path}/upload")))
            .header("X-YATAI-API-TOKEN", token)
            .header("content-type", "application/octet-stream")
            .body(archive.to_vec())
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_success(),
            "upload: {}",
            res.text().await.unwrap()
        );
        self.call(token, reqwest::Method::GET, &path, None).await
    }

    /// Downloads a version's archive; `None` when the server refuses.
    pub async fn download(
        &self,
        token: &str,
        kind: &str,
        repo: &str,
        version: &str,
    ) -> Option<Vec<u8>> {
        let res = reqwest::Client::new()
            .get(self.url(&format!(
                "/api/v1/{kind}_repositories/{repo}/{kind}s/{version}/download"
            )))
            .header("X-YATAI-API-TOKEN", token)
            .send()
            .await
            .unwrap();
        if !res.status().is_success() {
            return None;
        }
        Some(res.bytes().await.unwrap().to_vec())
    }
}

/// A tar archive of `size` pseudo-random bytes in one file (deterministic per `seed`).
pub fn archive(seed: u64, size: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(size);
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    while data.len() < size {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(size);
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "weights.bin", &data[..]).unwrap();
    b.into_inner().unwrap()
}

/// What [`seed`] put in.
pub struct Seeded {
    pub token: String,
    /// (kind, repository, version, archive bytes) of every uploaded version.
    pub pushed: Vec<(String, String, String, Vec<u8>)>,
}

/// Puts a small registry in: models and bentos with labels, archives from a few bytes to a
/// few MiB, a version whose upload never happened, and the events all that leaves.
pub async fn seed(server: &Server) -> Seeded {
    let token = server.setup_admin().await;
    let mut pushed = Vec::new();
    let items: [(&str, &str, &str, usize); 5] = [
        ("model", "clf", "v1", 3 * 1024 * 1024 + 17),
        ("model", "clf", "v2", 10),
        ("model", "tokenizer", "t1", 200 * 1024),
        ("bento", "svc", "b1", 64 * 1024),
        ("bento", "svc", "b2", 1),
    ];
    for (i, (kind, repo, version, size)) in items.into_iter().enumerate() {
        let bytes = archive(i as u64 + 1, size);
        server
            .push(
                &token,
                kind,
                repo,
                version,
                &bytes,
                json!([{"key": "stage", "value": if i % 2 == 0 {"prod"} else {"dev"}}]),
            )
            .await;
        pushed.push((
            kind.to_string(),
            repo.to_string(),
            version.to_string(),
            bytes,
        ));
    }
    // A version created but never uploaded: a row without an object.
    server
        .call(&token, reqwest::Method::POST, "/api/v1/model_repositories/clf/models",
            Some(json!({"version": "never-uploaded", "description": "", "manifest": {}, "build_at": "2026-11-25 12:30:34.554117", "labels": []})))
        .await;
    Seeded { token, pushed }
}
