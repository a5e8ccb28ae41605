//! The state every handler shares.

use std::sync::Arc;
use std::time::Duration;

use yatai_domain::registry::TransmissionStrategy;
use yatai_store::{Db, ObjectStorage};

/// Server settings that handlers need (the command line builds them from flags, env and file).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The token that `POST /api/v1/setup` requires while setup is open.
    pub initialization_token: String,
    /// How long a browser session lasts.
    pub session_ttl: Duration,
    /// Whether session cookies carry the `Secure` attribute (when served over HTTPS).
    pub secure_cookies: bool,
    /// The URL users reach this server at, without trailing slash (links, presigned URLs).
    pub public_url: String,
    /// How archives travel between clients and object storage.
    pub transmission_strategy: TransmissionStrategy,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            initialization_token: String::new(),
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            secure_cookies: false,
            public_url: "http://127.0.0.1:7777".into(),
            transmission_strategy: TransmissionStrategy::Proxy,
        }
    }
}

/// Shared, cheaply cloned handles: database, object storage, settings.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub objects: ObjectStorage,
    pub settings: Arc<Settings>,
    /// The key that signs this server's own transfer URLs (local backend), loaded on first use.
    pub presign_key: Arc<tokio::sync::OnceCell<Vec<u8>>>,
}

impl AppState {
    /// Bundles the handles.
    pub fn new(db: Db, objects: ObjectStorage, settings: Settings) -> Self {
        AppState {
            db,
            objects,
            settings: Arc::new(settings),
            presign_key: Arc::default(),
        }
    }
}
