//! The runtimes of `yatai serve`'s clusters: `local` clusters run their deployments as
//! processes of this machine (`yatai-runtime-local`, one runtime per organization, so that the
//! archives it reads are that organization's), `kubernetes` clusters write BentoRequests and
//! BentoDeployments (`yatai-runtime-kubernetes`, one client per cluster and kubeconfig).

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use yatai_domain::deployments::{BoxFuture, ClusterKind, ClusterRuntime};
use yatai_domain::Error;
use yatai_runtime_kubernetes::{KubernetesRuntime, RuntimeOptions};
use yatai_runtime_local::{LocalConfig, LocalRuntime};
use yatai_service::deployments::{OrganizationArchives, Runtimes};
use yatai_service::Services;
use yatai_store::db::clusters::Cluster;

use crate::config::LocalDeployments;
use crate::image::StorageFetch;

/// The runtimes of every cluster this server serves.
pub struct ServerRuntimes {
    svc: Services,
    local: Option<LocalDeployments>,
    /// Local runtimes by organization uid.
    locals: Mutex<HashMap<String, Arc<LocalRuntime>>>,
    /// Kubernetes runtimes by cluster uid, with the hash of the kubeconfig they were made from.
    kubes: Mutex<HashMap<String, (String, Arc<KubernetesRuntime>)>>,
}

impl ServerRuntimes {
    pub fn new(svc: Services, local: Option<LocalDeployments>) -> Self {
        ServerRuntimes {
            svc,
            local,
            locals: Mutex::default(),
            kubes: Mutex::default(),
        }
    }

    /// Stops every local deployment's processes (a graceful shutdown; the reconciler starts
    /// them again on the next start).
    pub async fn shutdown(&self) {
        let locals: Vec<Arc<LocalRuntime>> = self.locals.lock().await.values().cloned().collect();
        for rt in locals {
            rt.shutdown().await;
        }
    }

    async fn local(&self, cluster: &Cluster) -> Result<Arc<LocalRuntime>, Error> {
        let Some(cfg) = &self.local else {
            return Err(Error::Unavailable(
                "this server does not run local deployments (started with --local-deployments=false)"
                    .into(),
            ));
        };
        let mut locals = self.locals.lock().await;
        if let Some(rt) = locals.get(&cluster.organization_uid) {
            return Ok(rt.clone());
        }
        let mut config = LocalConfig::new(cfg.dir.join(&cluster.organization_uid));
        config.envs_dir = cfg.envs_dir.clone();
        config.bind_host = cfg.bind_host.clone();
        config.public_host = cfg.public_host.clone();
        let archives = Arc::new(OrganizationArchives::new(
            self.svc.clone(),
            &cluster.organization_uid,
        ));
        let rt = LocalRuntime::new(config, Arc::new(StorageFetch(archives))).map_err(|e| {
            Error::Internal(format!(
                "cannot prepare local deployments in {}: {e}",
                cfg.dir.display()
            ))
        })?;
        let rt = Arc::new(rt);
        locals.insert(cluster.organization_uid.clone(), rt.clone());
        Ok(rt)
    }

    async fn kubernetes(&self, cluster: &Cluster) -> Result<Arc<KubernetesRuntime>, Error> {
        let hash = hex::encode(Sha256::digest(cluster.kube_config.as_bytes()));
        let mut kubes = self.kubes.lock().await;
        if let Some((h, rt)) = kubes.get(&cluster.uid) {
            if *h == hash {
                return Ok(rt.clone());
            }
        }
        let opts = RuntimeOptions::for_cluster(cluster.name.clone());
        let rt = if cluster.kube_config.trim().is_empty() {
            KubernetesRuntime::in_cluster(opts).await
        } else {
            KubernetesRuntime::from_kubeconfig(&cluster.kube_config, opts).await
        }
        .map_err(|e| Error::Unavailable(e.to_string()))?;
        let rt = Arc::new(rt);
        kubes.insert(cluster.uid.clone(), (hash, rt.clone()));
        Ok(rt)
    }
}

impl Runtimes for ServerRuntimes {
    fn runtime<'a>(
        &'a self,
        cluster: &'a Cluster,
    ) -> BoxFuture<'a, Result<Arc<dyn ClusterRuntime>, Error>> {
        Box::pin(async move {
            match cluster.kind.parse::<ClusterKind>()? {
                ClusterKind::Local => Ok(self.local(cluster).await? as Arc<dyn ClusterRuntime>),
                ClusterKind::Kubernetes => {
                    Ok(self.kubernetes(cluster).await? as Arc<dyn ClusterRuntime>)
                }
            }
        })
    }

    fn check_kube_config(&self, kube_config: &str) -> Result<(), Error> {
        yatai_runtime_kubernetes::validate_kubeconfig(kube_config).map_err(Error::InvalidArgument)
    }

    fn redact_kube_config(&self, kube_config: &str) -> String {
        yatai_runtime_kubernetes::redact_kubeconfig(kube_config)
            .unwrap_or_else(|_| "(a kubeconfig that does not parse; credentials hidden)".into())
    }
}
