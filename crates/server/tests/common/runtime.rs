//! A scripted cluster runtime for tests of deployments: it records what the reconciler asks,
//! answers the status the test sets (a terminated deployment reports `terminated`), and keeps
//! three log lines.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use yatai_domain::deployments::{BoxFuture, ClusterRuntime, DeploymentStatus, Desired, Observed};
use yatai_domain::Error;
use yatai_service::deployments::Runtimes;
use yatai_store::db::clusters::Cluster;

use super::TestApp;

#[derive(Default)]
pub struct ScriptedRuntime {
    pub seen: Mutex<Vec<Desired>>,
    answer: Mutex<Option<(DeploymentStatus, String)>>,
    /// The uids `remove` was called for.
    pub removed: Mutex<Vec<String>>,
}

impl ScriptedRuntime {
    /// What the runtime reports from now on (with a URL).
    pub fn answer(&self, status: DeploymentStatus) {
        *self.answer.lock().unwrap() = Some((status, "http://127.0.0.1:9/".into()));
    }

    /// The last desired state the reconciler handed over.
    pub fn last(&self) -> Desired {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the runtime was asked")
    }
}

impl ClusterRuntime for ScriptedRuntime {
    fn reconcile<'a>(&'a self, desired: &'a Desired) -> BoxFuture<'a, Observed> {
        Box::pin(async move {
            self.seen.lock().unwrap().push(desired.clone());
            let (status, url) = self
                .answer
                .lock()
                .unwrap()
                .clone()
                .unwrap_or((DeploymentStatus::Deploying, String::new()));
            let status = if desired.running {
                status
            } else {
                DeploymentStatus::Terminated
            };
            Observed {
                status,
                reason: String::new(),
                url: Some(url).filter(|u| !u.is_empty()),
            }
        })
    }
    fn remove<'a>(&'a self, uid: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            self.removed.lock().unwrap().push(uid.to_string());
            Ok(())
        })
    }
    fn logs<'a>(&'a self, _uid: &'a str, lines: usize) -> BoxFuture<'a, Option<Vec<String>>> {
        Box::pin(async move { Some((0..lines.min(3)).map(|i| format!("line {i}")).collect()) })
    }
    fn known<'a>(&'a self) -> BoxFuture<'a, Vec<String>> {
        Box::pin(async move { Vec::new() })
    }
}

/// One scripted runtime per cluster name.
#[derive(Default)]
pub struct ScriptedRuntimes {
    by_cluster: Mutex<HashMap<String, Arc<ScriptedRuntime>>>,
}

impl ScriptedRuntimes {
    pub fn of(&self, cluster: &str) -> Arc<ScriptedRuntime> {
        self.by_cluster
            .lock()
            .unwrap()
            .entry(cluster.to_string())
            .or_default()
            .clone()
    }
}

impl Runtimes for ScriptedRuntimes {
    fn runtime<'a>(
        &'a self,
        cluster: &'a Cluster,
    ) -> BoxFuture<'a, Result<Arc<dyn ClusterRuntime>, Error>> {
        Box::pin(async move { Ok(self.of(&cluster.name) as Arc<dyn ClusterRuntime>) })
    }
    fn check_kube_config(&self, kube_config: &str) -> Result<(), Error> {
        if kube_config.contains("clusters:") {
            Ok(())
        } else {
            Err(Error::invalid(
                "this is not a kubeconfig: it has no clusters",
            ))
        }
    }
    fn redact_kube_config(&self, _kube_config: &str) -> String {
        "(redacted)".into()
    }
}

/// Installs scripted runtimes into the app's services.
pub fn install(app: &TestApp) -> Arc<ScriptedRuntimes> {
    let rt = Arc::new(ScriptedRuntimes::default());
    app.state.runtimes.set(rt.clone());
    rt
}
