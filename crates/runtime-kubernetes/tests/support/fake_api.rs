//! The fake Kubernetes API server of the shared test kit (`yatai_testkit::fake_kube`).

#[allow(unused_imports)] // not every test binary uses it
pub use yatai_testkit::fake_kube::*;
