//! Yatai's use cases, one function per action: each takes the caller and a typed input, enforces
//! the permission rule and the validation of the domain, works on the store, records the event,
//! and returns domain or store types. The REST API, the dashboard and the command line are
//! adapters over these functions and re-implement none of their checks.

pub mod caller;
pub mod deployments;
pub mod events;
pub mod members;
pub mod organizations;
pub mod read_cache;
pub mod registry;
pub mod secrets;
pub mod sessions;
pub mod setup;
pub mod throttle;
pub mod tokens;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use yatai_domain::registry::TransmissionStrategy;
use yatai_store::{Db, ObjectStorage};

pub use caller::{Caller, Identity};

/// Settings of the use cases (the command line builds them from flags, env and file).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The token that first-run setup requires while setup is open.
    pub initialization_token: String,
    /// How long a browser session lasts.
    pub session_ttl: Duration,
    /// Whether session cookies carry the `Secure` attribute (when served over HTTPS).
    pub secure_cookies: bool,
    /// The URL users reach this server at, without trailing slash (links, presigned URLs).
    pub public_url: String,
    /// How archives travel between clients and object storage.
    pub transmission_strategy: TransmissionStrategy,
    /// Timing of uploads: URL lifetimes and when an upload counts as abandoned.
    pub uploads: UploadTimings,
    /// Builds bento images in this process (`yatai serve` with a docker registry configured);
    /// `None`: the server does not build images (see [`registry::images::request_build`]).
    pub image_builder: Option<Arc<dyn registry::images::ImageBuilder>>,
    /// Memory for registry read answers kept while nothing changed (0: none are kept).
    pub read_cache_bytes: usize,
}

/// How long transfer URLs live, and after how long without a sign of life an upload counts as
/// abandoned and is cleaned up.
#[derive(Debug, Clone, Copy)]
pub struct UploadTimings {
    /// Lifetime of a presigned upload URL (one PUT, or one part of at most 100 MiB).
    pub upload_url_ttl: Duration,
    /// Lifetime of a presigned download URL (S3 checks it when the download starts).
    pub download_url_ttl: Duration,
    /// A proxy upload records a sign of life this often.
    pub heartbeat: Duration,
    /// A proxy upload silent for this long lost its server process.
    pub proxy_stale_after: Duration,
    /// A presigned upload silent for this long lost its client (its URLs expired meanwhile).
    pub presigned_stale_after: Duration,
    /// How often the janitor looks for abandoned uploads and leftovers.
    pub janitor_interval: Duration,
}

impl Default for UploadTimings {
    fn default() -> Self {
        UploadTimings {
            upload_url_ttl: Duration::from_secs(30 * 60),
            download_url_ttl: Duration::from_secs(15 * 60),
            heartbeat: Duration::from_secs(10),
            proxy_stale_after: Duration::from_secs(120),
            presigned_stale_after: Duration::from_secs(30 * 60 + 30 * 60),
            janitor_interval: Duration::from_secs(60),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            initialization_token: String::new(),
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            secure_cookies: false,
            public_url: "http://127.0.0.1:7777".into(),
            transmission_strategy: TransmissionStrategy::Proxy,
            uploads: UploadTimings::default(),
            image_builder: None,
            read_cache_bytes: 8 << 20,
        }
    }
}

/// The handles every use case works with: database, object storage, settings, and the
/// process-wide login throttle. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub db: Db,
    pub objects: ObjectStorage,
    pub settings: Arc<Settings>,
    /// Failed logins of this process, per account and address.
    pub login_throttle: Arc<throttle::LoginThrottle>,
    /// The image builds this process may run at once.
    pub image_build_slots: Arc<tokio::sync::Semaphore>,
    /// The runtimes of the clusters (set by the server) and the reconciler's wake-up call.
    pub runtimes: Arc<deployments::RuntimeSlot>,
    /// Registry read answers kept while nothing changed.
    pub read_cache: Arc<read_cache::ReadCache>,
}

impl Services {
    /// Bundles the handles; the local backend signs its transfer URLs to `settings.public_url`.
    pub fn new(db: Db, objects: ObjectStorage, settings: Settings) -> Self {
        let objects = objects.with_local_presigning(db.clone(), &settings.public_url);
        let read_cache = Arc::new(read_cache::ReadCache::new(settings.read_cache_bytes));
        Services {
            db,
            objects,
            settings: Arc::new(settings),
            login_throttle: Arc::default(),
            image_build_slots: Arc::new(tokio::sync::Semaphore::new(
                registry::images::BUILD_CONCURRENCY,
            )),
            runtimes: Arc::default(),
            read_cache,
        }
    }
}
