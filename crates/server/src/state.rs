//! The state every handler shares: the service handles (database, object storage, settings).

use std::ops::Deref;

use yatai_store::{Db, ObjectStorage};

pub use yatai_service::{Services, Settings, UploadTimings};

/// Shared, cheaply cloned handles. Handlers pass it to the service functions, which take
/// `&Services` (this dereferences to it).
#[derive(Clone)]
pub struct AppState {
    pub svc: Services,
}

impl AppState {
    /// Bundles the handles.
    pub fn new(db: Db, objects: ObjectStorage, settings: Settings) -> Self {
        AppState {
            svc: Services::new(db, objects, settings),
        }
    }
}

impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.svc
    }
}
