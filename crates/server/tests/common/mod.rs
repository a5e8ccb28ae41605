//! The server's tests run on the one harness of `yatai-testkit` (`TestApp`, clients, both
//! backend pairs), serving this crate's router.
#![allow(dead_code, unused_imports)]

pub mod registry;
pub mod runtime;

pub use yatai_testkit::app::*;
pub use yatai_testkit::{fresh_postgres_database, fresh_s3_bucket, ADMIN_PASSWORD, INIT_TOKEN};

/// The router under test.
pub fn router(svc: yatai_service::Services) -> axum::Router {
    yatai_server::app_of(svc)
}

/// Starts this crate's server on fresh storage: `TestApp::start(backend)`.
#[allow(async_fn_in_trait)]
pub trait Start {
    async fn start(backend: Backend) -> TestApp;
    async fn start_with(backend: Backend, settings: yatai_server::Settings) -> TestApp;
}

impl Start for TestApp {
    async fn start(backend: Backend) -> TestApp {
        TestApp::launch(backend, Default::default(), router).await
    }

    async fn start_with(backend: Backend, settings: yatai_server::Settings) -> TestApp {
        TestApp::launch(backend, settings, router).await
    }
}

/// Declares a test that runs once per backend pair on this crate's server:
/// `backend_test!(name, |app| async move { ... })`.
#[macro_export]
macro_rules! backend_test {
    ($name:ident, $body:expr) => {
        yatai_testkit::backend_test!($name, $crate::common::router, $body);
    };
}

/// Runs `second` while the transaction `first` is open, and returns what `second` gave once
/// `first` has committed. Asserts that `second` waited: it must not finish while `first` is
/// open. For checks that two writers take turns (on PostgreSQL, a check made without a lock does
/// not see rows another transaction has not yet committed, and lets the second writer through
/// at once; the two seconds are an upper bound on that, not a measurement).
pub async fn waits_for<T: Send + std::fmt::Debug + 'static>(
    first: yatai_store::db::Tx,
    second: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    let mut second = tokio::spawn(second);
    let early = tokio::time::timeout(std::time::Duration::from_secs(2), &mut second).await;
    assert!(
        early.is_err(),
        "the second writer did not wait for the first: {early:?}"
    );
    first.commit().await.unwrap();
    second.await.unwrap()
}
