//! Test support shared by the Yatai crates: fresh PostgreSQL databases and S3 buckets on the
//! test services, an S3 server of one's own that checks credentials, and an independent dump of
//! a whole installation (every row of every table, every object) to compare two installations.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use yatai_store::objects::S3Config;

pub mod app;
pub mod dump;
#[cfg(feature = "fake-kube")]
pub mod fake_kube;
pub mod install;

/// The initialization token of every test server.
pub const INIT_TOKEN: &str = "test-initialization-token";
/// The first admin's password on every test server.
pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub mod yatai1;

/// The URL of the PostgreSQL server for tests.
pub fn pg_admin_url() -> String {
    std::env::var("YATAI_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The endpoint of the S3 server for tests.
pub fn s3_endpoint() -> String {
    std::env::var("YATAI_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:5055".into())
}

/// A unique suffix for test resource names.
pub fn unique() -> String {
    yatai_store::new_uid()[..16].to_string()
}

/// Creates a fresh PostgreSQL database; returns its URL.
pub async fn fresh_postgres_database() -> String {
    use sqlx::Connection;
    let admin = pg_admin_url();
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is needed at {admin} (set YATAI_TEST_PG_URL): {e}. Start it with \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` or run ./scripts/test"
        )
    });
    let name = format!("yatai_test_{}", yatai_store::new_uid());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let mut url = url::Url::parse(&admin).expect("YATAI_TEST_PG_URL is a URL");
    url.set_path(&name);
    url.to_string()
}

/// Creates a fresh bucket on the S3 test server; returns its settings.
pub async fn fresh_s3_bucket() -> S3Config {
    let endpoint = s3_endpoint();
    let bucket = format!("yatai-test-{}", unique());
    create_bucket(&endpoint, &bucket).await;
    S3Config {
        endpoint,
        access_key: "testing".into(),
        secret_key: "testing".into(),
        region: "us-east-1".into(),
        secure: false,
        bucket,
    }
}

/// Creates a bucket with a plain unsigned `PUT /bucket` (the test server accepts it).
pub async fn create_bucket(endpoint: &str, bucket: &str) {
    let res = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("an S3 server is needed at {endpoint} (set YATAI_TEST_S3_ENDPOINT): {e}. Start one with `moto_server -H 127.0.0.1 -p 5055` (pip install 'moto[server]') or run ./scripts/test"));
    assert!(
        res.status().is_success(),
        "creating bucket {bucket} failed: {}",
        res.status()
    );
}

/// Deletes an (empty) bucket with a plain unsigned `DELETE /bucket` (the test server accepts it).
pub async fn delete_bucket(endpoint: &str, bucket: &str) {
    let res = reqwest::Client::new()
        .delete(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("the S3 server at {endpoint} does not answer: {e}"));
    assert!(
        res.status().is_success(),
        "deleting bucket {bucket} failed: {}",
        res.status()
    );
}

/// A free TCP port on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where the `moto_server` program is: `YATAI_TEST_MOTO_SERVER`, the PATH, or the venv that
/// `scripts/test` creates.
pub fn moto_server_program() -> PathBuf {
    if let Ok(p) = std::env::var("YATAI_TEST_MOTO_SERVER") {
        return p.into();
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("moto_server");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let cache = std::env::var("YATAI_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/yatai")
        });
    if let Ok(entries) = std::fs::read_dir(cache.join("venvs")) {
        for e in entries.flatten() {
            let candidate = e.path().join("bin/moto_server");
            if e.file_name().to_string_lossy().starts_with("moto-") && candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!("moto_server is needed for this test: run ./scripts/test (it installs moto), or set YATAI_TEST_MOTO_SERVER")
}

/// An S3 server of the test's own (moto on a free port) that checks signatures: moto checks
/// credentials only once IAM authentication is switched on and only for IAM users it knows, so
/// this creates a user with an access key allowed everything, then switches authentication on.
pub struct AuthS3Server {
    child: Child,
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
}

impl Drop for AuthS3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AuthS3Server {
    /// Starts the server, creates the IAM user and the bucket `bucket`, and turns auth on.
    pub async fn start(bucket: &str) -> AuthS3Server {
        let port = free_port();
        let child = Command::new(moto_server_program())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env_remove("INITIAL_NO_AUTH_ACTION_COUNT")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut server = AuthS3Server {
            child,
            endpoint: endpoint.clone(),
            access_key: String::new(),
            secret_key: String::new(),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{endpoint}/moto-api/")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not start on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Until auth is on, moto routes by the credential scope only: any signature passes.
        let iam = |form: Vec<(&'static str, String)>| {
            http.post(format!("{endpoint}/"))
                .header("authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0")
                .form(&form)
                .send()
        };
        let ok = |r: reqwest::Response| async move {
            let status = r.status();
            let text = r.text().await.unwrap();
            assert!(status.is_success(), "moto IAM call failed: {status} {text}");
            text
        };
        let v = || ("Version", "2010-05-08".to_string());
        ok(iam(vec![
            ("Action", "CreateUser".into()),
            ("UserName", "yatai".into()),
            v(),
        ])
        .await
        .unwrap())
        .await;
        let key = ok(iam(vec![
            ("Action", "CreateAccessKey".into()),
            ("UserName", "yatai".into()),
            v(),
        ])
        .await
        .unwrap())
        .await;
        let tag = |t: &str| {
            let open = format!("<{t}>");
            let s = key.find(&open).unwrap() + open.len();
            let e = key[s..].find('<').unwrap() + s;
            key[s..e].to_string()
        };
        server.access_key = tag("AccessKeyId");
        server.secret_key = tag("SecretAccessKey");
        ok(iam(vec![
            ("Action", "PutUserPolicy".into()),
            ("UserName", "yatai".into()),
            ("PolicyName", "everything".into()),
            (
                "PolicyDocument",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#.into(),
            ),
            v(),
        ])
        .await
        .unwrap())
        .await;
        create_bucket(&endpoint, bucket).await;
        let r = http
            .post(format!("{endpoint}/moto-api/reset-auth"))
            .body("0")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "switching moto auth on failed");
        server
    }
}
