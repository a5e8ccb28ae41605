//! Configuration of the `yatai` binary. Each setting comes from, in order of precedence:
//! a command-line flag, its environment variable, the TOML config file (`--config`), then the default.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use serde::Deserialize;
use yatai_store::db::postgres_url;
use yatai_store::objects::S3Config;
use yatai_store::Db;
use yatai_store::ObjectStorageConfig;

/// Default TCP port (the original Yatai's).
pub const DEFAULT_PORT: u16 = 7777;
/// Default bind address.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Default data directory (SQLite database and object directory of the embedded default).
pub const DEFAULT_DATA_DIR: &str = "./yatai-data";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Where metadata and archives are stored.
#[derive(Debug, Clone, Args, Default)]
pub struct StorageArgs {
    /// TOML file with any of the settings below (keys as the long flags, with `_` for `-`).
    #[arg(long, env = "YATAI_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the embedded default: SQLite file `yatai.db` and archives in `objects/` [default: ./yatai-data]
    #[arg(long, env = "YATAI_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Metadata database URL, `sqlite://PATH` or `postgres://USER:PASS@HOST:PORT/DB`; overrides PG_* [default: SQLite in the data directory]
    #[arg(long, env = "YATAI_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Most connections to the metadata database at once [default: PostgreSQL one more than
    /// the CPUs (3 to 16), SQLite two per CPU (4 to 8)]; a PostgreSQL on another machine may want
    /// more
    #[arg(long, env = "YATAI_DB_MAX_CONNECTIONS", value_name = "N")]
    pub db_max_connections: Option<u32>,
    /// PostgreSQL host; setting it selects PostgreSQL
    #[arg(long, env = "PG_HOST")]
    pub pg_host: Option<String>,
    /// PostgreSQL port [default: 5432]
    #[arg(long, env = "PG_PORT")]
    pub pg_port: Option<u16>,
    /// PostgreSQL user [default: postgres]
    #[arg(long, env = "PG_USER")]
    pub pg_user: Option<String>,
    /// PostgreSQL password [default: none]
    #[arg(long, env = "PG_PASSWORD", hide_env_values = true)]
    pub pg_password: Option<String>,
    /// PostgreSQL database [default: yatai]
    #[arg(long, env = "PG_DATABASE")]
    pub pg_database: Option<String>,
    /// PostgreSQL sslmode: disable, prefer, require, verify-ca, verify-full [default: prefer]
    #[arg(long, env = "PG_SSLMODE")]
    pub pg_sslmode: Option<String>,
    /// S3 endpoint, `host:port` or URL; setting it or the bucket selects S3 [default: local directory]
    #[arg(long, env = "S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 access key
    #[arg(long, env = "S3_ACCESS_KEY")]
    pub s3_access_key: Option<String>,
    /// S3 secret key
    #[arg(long, env = "S3_SECRET_KEY", hide_env_values = true)]
    pub s3_secret_key: Option<String>,
    /// S3 region [default: us-east-1]
    #[arg(long, env = "S3_REGION")]
    pub s3_region: Option<String>,
    /// Use https for an endpoint given without scheme [default: true]
    #[arg(long, env = "S3_SECURE", value_parser = clap::builder::BoolishValueParser::new())]
    pub s3_secure: Option<bool>,
    /// S3 bucket holding the archives [default: yatai]
    #[arg(long, env = "S3_BUCKET_NAME")]
    pub s3_bucket_name: Option<String>,
}

/// The config file: every setting optional, same names as the long flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub db_max_connections: Option<u32>,
    pub pg_host: Option<String>,
    pub pg_port: Option<u16>,
    pub pg_user: Option<String>,
    pub pg_password: Option<String>,
    pub pg_database: Option<String>,
    pub pg_sslmode: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_access_key: Option<String>,
    pub s3_secret_key: Option<String>,
    pub s3_region: Option<String>,
    pub s3_secure: Option<bool>,
    pub s3_bucket_name: Option<String>,
    pub initialization_token: Option<String>,
    pub transmission_strategy: Option<String>,
    pub public_url: Option<String>,
    pub upload_stale_after: Option<u64>,
    pub presigned_upload_stale_after: Option<u64>,
    pub janitor_interval: Option<u64>,
    pub read_cache_mb: Option<u64>,
    pub log_format: Option<LogFormat>,
}

impl ConfigFile {
    /// Reads the config file, or an empty one when none is given.
    pub fn load(path: Option<&Path>) -> anyhow::Result<ConfigFile> {
        let Some(path) = path else {
            return Ok(ConfigFile::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "invalid config file {}: {}",
                path.display(),
                e.to_string().replace('\n', " ")
            )
        })
    }
}

/// The most database connections `--db-max-connections` may ask for.
const MAX_DB_CONNECTIONS: u32 = 1000;

/// The resolved storage: database URL and object storage.
#[derive(Debug, Clone)]
pub struct Storage {
    #[allow(dead_code)] // kept for messages
    pub data_dir: PathBuf,
    pub database_url: String,
    /// The pool's size when set (see [`Storage::connect`]).
    pub db_max_connections: Option<NonZeroU32>,
    pub objects: ObjectStorageConfig,
}

impl Storage {
    /// Connects to the metadata database, with the pool's size when set.
    pub async fn connect(&self) -> anyhow::Result<Db> {
        Ok(Db::connect_with_pool(&self.database_url, self.db_max_connections).await?)
    }
}

impl StorageArgs {
    /// Merges flags/env with the config file and defaults, and picks the backends.
    pub fn resolve(&self, file: &ConfigFile) -> anyhow::Result<Storage> {
        let data_dir = self
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        let pick = |flag: &Option<String>, from_file: &Option<String>| {
            flag.clone()
                .or_else(|| from_file.clone())
                .filter(|s| !s.is_empty())
        };
        let database_url = if let Some(url) = pick(&self.database_url, &file.database_url) {
            url
        } else if let Some(host) = pick(&self.pg_host, &file.pg_host) {
            postgres_url(
                &host,
                self.pg_port.or(file.pg_port).unwrap_or(5432),
                &pick(&self.pg_user, &file.pg_user).unwrap_or_else(|| "postgres".into()),
                pick(&self.pg_password, &file.pg_password).as_deref(),
                &pick(&self.pg_database, &file.pg_database).unwrap_or_else(|| "yatai".into()),
                pick(&self.pg_sslmode, &file.pg_sslmode).as_deref(),
            )
        } else {
            std::fs::create_dir_all(&data_dir).with_context(|| {
                format!("cannot create the data directory {}", data_dir.display())
            })?;
            format!("sqlite://{}?mode=rwc", data_dir.join("yatai.db").display())
        };
        let objects = match self.resolve_s3(file)? {
            Some(s3) => ObjectStorageConfig::S3(s3),
            None => ObjectStorageConfig::Local {
                root: data_dir.join("objects"),
            },
        };
        // One check for the flag, its env and the file.
        let db_max_connections = match self.db_max_connections.or(file.db_max_connections) {
            None => None,
            Some(n @ 1..=MAX_DB_CONNECTIONS) => NonZeroU32::new(n),
            Some(n) => bail!(
                "--db-max-connections (YATAI_DB_MAX_CONNECTIONS, db_max_connections in the config file) \
                 must be at least 1 and at most {MAX_DB_CONNECTIONS}, got {n}"
            ),
        };
        Ok(Storage {
            data_dir,
            database_url,
            db_max_connections,
            objects,
        })
    }
}

impl StorageArgs {
    /// The S3 settings, when S3 is selected (an endpoint or a bucket is given).
    pub fn resolve_s3(&self, file: &ConfigFile) -> anyhow::Result<Option<S3Config>> {
        let pick = |flag: &Option<String>, from_file: &Option<String>| {
            flag.clone()
                .or_else(|| from_file.clone())
                .filter(|s| !s.is_empty())
        };
        let endpoint = pick(&self.s3_endpoint, &file.s3_endpoint);
        let bucket = pick(&self.s3_bucket_name, &file.s3_bucket_name);
        if endpoint.is_none() && bucket.is_none() {
            return Ok(None);
        }
        let access_key = pick(&self.s3_access_key, &file.s3_access_key).unwrap_or_default();
        let secret_key = pick(&self.s3_secret_key, &file.s3_secret_key).unwrap_or_default();
        if access_key.is_empty() != secret_key.is_empty() {
            bail!("S3_ACCESS_KEY and S3_SECRET_KEY must be given together");
        }
        Ok(Some(S3Config {
            endpoint: endpoint.unwrap_or_default(),
            access_key,
            secret_key,
            region: pick(&self.s3_region, &file.s3_region).unwrap_or_else(|| "us-east-1".into()),
            secure: self.s3_secure.or(file.s3_secure).unwrap_or(true),
            bucket: bucket.unwrap_or_else(|| "yatai".into()),
        }))
    }
}

/// Settings of `yatai serve` beyond storage.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Address to listen on [default: 127.0.0.1]
    #[arg(long, env = "YATAI_HOST")]
    pub host: Option<String>,
    /// Port to listen on [default: 7777]
    #[arg(long, env = "YATAI_PORT")]
    pub port: Option<u16>,
    /// Token that opens first-run setup [default: a random one, printed at start]
    #[arg(long, env = "YATAI_INITIALIZATION_TOKEN", hide_env_values = true)]
    pub initialization_token: Option<String>,
    /// How archives travel: proxy (through the server) or presigned_url (straight to storage) [default: proxy]
    #[arg(long, env = "TRANSMISSION_STRATEGY")]
    pub transmission_strategy: Option<String>,
    /// URL users reach this server at, for links and presigned URLs [default: http://HOST:PORT]
    #[arg(long, env = "YATAI_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Seconds without a sign of life after which a proxy upload counts as abandoned (its server
    /// process died) and is cleaned up [default: 120]
    #[arg(long, env = "YATAI_UPLOAD_STALE_AFTER", value_name = "SECS")]
    pub upload_stale_after: Option<u64>,
    /// Seconds without a sign of life (a part presigned or received) after which a presigned
    /// upload counts as abandoned (its client gave up) and is cleaned up [default: 3600]
    #[arg(long, env = "YATAI_PRESIGNED_UPLOAD_STALE_AFTER", value_name = "SECS")]
    pub presigned_upload_stale_after: Option<u64>,
    /// Seconds between two sweeps for abandoned uploads and their leftovers [default: 60]
    #[arg(long, env = "YATAI_JANITOR_INTERVAL", value_name = "SECS")]
    pub janitor_interval: Option<u64>,
    /// Memory for registry read answers kept while nothing changed (lists and pages of bentos
    /// and models; every write, from any replica, makes the next read fresh); 0 turns it off
    /// [default: 8]
    #[arg(long, env = "YATAI_READ_CACHE_MB", value_name = "MIB")]
    pub read_cache_mb: Option<u64>,
    /// With a registry (DOCKER_REGISTRY_SERVER), the server builds bento images itself (the
    /// "build image" action of the API and the dashboard), as `yatai image build` does
    #[command(flatten)]
    pub registry: crate::image::RegistryArgs,
    /// The Python base image of the images the server builds [default: the bento's base image, else python:X.Y-slim]
    #[arg(long, env = "YATAI_IMAGE_BUILDER_BASE_IMAGE", value_name = "REF")]
    pub image_builder_base_image: Option<String>,
    /// Run the deployments of `local` clusters (the `default` one) as processes on this machine
    /// [default: true]
    #[arg(long, env = "YATAI_LOCAL_DEPLOYMENTS", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub local_deployments: Option<bool>,
    /// Where local deployments keep their bentos, state and logs [default: DATA_DIR/deployments]
    #[arg(long, env = "YATAI_DEPLOYMENTS_DIR", value_name = "DIR")]
    pub deployments_dir: Option<PathBuf>,
    /// Where the Python environments of local deployments are prepared, one per (Python version,
    /// locked requirements); may be shared between installations [default: DEPLOYMENTS_DIR/envs]
    #[arg(long, env = "YATAI_DEPLOYMENTS_ENVS_DIR", value_name = "DIR")]
    pub deployments_envs_dir: Option<PathBuf>,
    /// The address local deployments listen on (0.0.0.0 to serve other machines) [default: 127.0.0.1]
    #[arg(long, env = "YATAI_DEPLOYMENTS_HOST", value_name = "HOST")]
    pub deployments_host: Option<String>,
    /// The host name in the URLs of local deployments [default: the listening address, or
    /// 127.0.0.1 when it is 0.0.0.0]
    #[arg(long, env = "YATAI_DEPLOYMENTS_PUBLIC_HOST", value_name = "HOST")]
    pub deployments_public_host: Option<String>,
}

/// The resolved settings of `yatai serve`.
#[derive(Debug, Clone)]
pub struct Serve {
    pub storage: Storage,
    pub host: String,
    pub port: u16,
    pub initialization_token: Option<String>,
    pub transmission_strategy: Option<String>,
    pub public_url: Option<String>,
    pub upload_stale_after: Option<u64>,
    pub presigned_upload_stale_after: Option<u64>,
    pub janitor_interval: Option<u64>,
    pub read_cache_mb: Option<u64>,
    /// The registry the server pushes the images it builds to, when builds are enabled.
    pub registry: Option<yatai_image_builder::RegistryConfig>,
    pub image_builder_base_image: Option<String>,
    /// Local deployments: where they live, where they listen; `None`: not run here.
    pub local_deployments: Option<LocalDeployments>,
}

/// Where and how `local` clusters run their deployments.
#[derive(Debug, Clone)]
pub struct LocalDeployments {
    pub dir: PathBuf,
    pub envs_dir: PathBuf,
    pub bind_host: String,
    pub public_host: String,
}

impl ServeArgs {
    /// Merges flags/env with the config file and defaults.
    pub fn resolve(&self, file: &ConfigFile) -> anyhow::Result<Serve> {
        Ok(Serve {
            storage: self.storage.resolve(file)?,
            host: self
                .host
                .clone()
                .or_else(|| file.host.clone())
                .unwrap_or_else(|| DEFAULT_HOST.into()),
            port: self.port.or(file.port).unwrap_or(DEFAULT_PORT),
            initialization_token: self
                .initialization_token
                .clone()
                .or_else(|| file.initialization_token.clone())
                .filter(|t| !t.is_empty()),
            transmission_strategy: self
                .transmission_strategy
                .clone()
                .or_else(|| file.transmission_strategy.clone()),
            public_url: self
                .public_url
                .clone()
                .or_else(|| file.public_url.clone())
                .map(|u| u.trim_end_matches('/').to_string()),
            upload_stale_after: self.upload_stale_after.or(file.upload_stale_after),
            presigned_upload_stale_after: self
                .presigned_upload_stale_after
                .or(file.presigned_upload_stale_after),
            janitor_interval: self.janitor_interval.or(file.janitor_interval),
            read_cache_mb: self.read_cache_mb.or(file.read_cache_mb),
            registry: self.registry.resolve_if_set()?,
            image_builder_base_image: self
                .image_builder_base_image
                .clone()
                .filter(|b| !b.trim().is_empty()),
            local_deployments: self.resolve_local(&self.storage.resolve(file)?.data_dir),
        })
    }

    fn resolve_local(&self, data_dir: &std::path::Path) -> Option<LocalDeployments> {
        if self.local_deployments == Some(false) {
            return None;
        }
        let dir = self
            .deployments_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("deployments"));
        let bind_host = self
            .deployments_host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "127.0.0.1".into());
        let public_host = self
            .deployments_public_host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| match bind_host.as_str() {
                "0.0.0.0" | "::" => "127.0.0.1".into(),
                h => h.to_string(),
            });
        Some(LocalDeployments {
            envs_dir: self
                .deployments_envs_dir
                .clone()
                .unwrap_or_else(|| dir.join("envs")),
            dir,
            bind_host,
            public_host,
        })
    }
}
