//! Leader election through a `coordination.k8s.io/v1` Lease, so that several replicas can run and only one
//! reconciles (used by `yatai deployment-operator` and `yatai image-builder`).
//!
//! The protocol is client-go's: the lease is taken when it is free or expired (`renewTime + leaseDurationSeconds`
//! is past), renewed every [`LeaseSettings::renew_every`], and every write is a replace carrying the
//! `resourceVersion` read just before, so two candidates racing for the same lease cannot both win (the loser gets
//! 409 Conflict). The leader steps down — its work is dropped at once — when another holder is seen in the lease,
//! or when it could not renew for [`LeaseSettings::renew_deadline`] (before the lease expires for the others).
//!
//! (`kube-lease-manager` 0.13 fits kube 5 and was tried first, but its watch loop keeps reporting "leader" while
//! renewals fail with API errors; stepping down on a failed renewal is the point here.)

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::Client;

/// Name of the deployment operator's Lease.
pub const DEPLOYMENT_OPERATOR_LEASE: &str = "yatai-deployment-operator";
/// Name of the image-builder controller's Lease.
pub const IMAGE_BUILDER_LEASE: &str = "yatai-image-builder";

/// Which Lease, who we are, and the timing.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    /// `holderIdentity` written by this replica (the pod name, or host name plus a random suffix).
    pub identity: String,
    /// `leaseDurationSeconds`: how long others wait after the last renewal before taking over.
    pub duration: Duration,
    /// How often the leader renews.
    pub renew_every: Duration,
    /// The leader steps down when it could not renew for this long (less than `duration`).
    pub renew_deadline: Duration,
    /// How often a follower looks at the lease again.
    pub retry_every: Duration,
}

impl LeaseSettings {
    /// client-go's defaults: 15 s lease, renewed every 2 s, given up after 10 s without a renewal.
    pub fn new(name: &str, namespace: &str, identity: &str) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(2),
            renew_deadline: Duration::from_secs(10),
            retry_every: Duration::from_secs(2),
        }
    }
}

/// A holder identity for this process: `POD_NAME`, else the host name plus a random suffix (two processes on one
/// host must not share an identity).
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME") {
        if !pod.is_empty() {
            return pod;
        }
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "yatai".into());
    let random = std::collections::hash_map::RandomState::new();
    let suffix = std::hash::BuildHasher::hash_one(&random, std::process::id()) & 0xff_ffff;
    format!("{host}-{suffix:06x}")
}

/// Whether we run inside a Kubernetes pod (leader election is on by default there).
pub fn in_cluster() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
}

/// The namespace of the pod we run in, when we run in one.
pub fn pod_namespace() -> Option<String> {
    std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                .ok()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
        })
}

/// How [`LeaderElector::lead`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<T> {
    /// The work finished by itself (e.g. on a shutdown signal); the lease was released.
    Finished(T),
    /// The lease was lost; the work was stopped.
    Lost { reason: String },
}

/// One candidate for one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    settings: LeaseSettings,
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn expired(spec: &LeaseSpec, at: Timestamp) -> bool {
    let Some(renew) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let duration = SignedDuration::from_secs(spec.lease_duration_seconds.unwrap_or(0).into());
    renew.0 + duration < at
}

impl LeaderElector {
    pub fn new(client: Client, settings: LeaseSettings) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
        }
    }

    pub fn settings(&self) -> &LeaseSettings {
        &self.settings
    }

    fn duration_secs(&self) -> i32 {
        self.settings.duration.as_secs().max(1) as i32
    }

    /// One attempt to take or renew the lease. `Ok(true)`: we hold it now; `Ok(false)`: someone else holds it
    /// (or won a race for it); `Err`: the API could not tell.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let id = &self.settings.identity;
        let at = now();
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.settings.name.clone()),
                    namespace: Some(self.settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(id.clone()),
                    acquire_time: Some(MicroTime(at)),
                    renew_time: Some(MicroTime(at)),
                    lease_duration_seconds: Some(self.duration_secs()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        if holder.as_deref() == Some(id.as_str()) {
            spec.renew_time = Some(MicroTime(at));
            spec.lease_duration_seconds = Some(self.duration_secs());
        } else if holder.is_none() || expired(&spec, at) {
            if let Some(previous) = &holder {
                tracing::info!(lease = %self.settings.name, previous = %previous, "taking over an expired lease");
            }
            spec.holder_identity = Some(id.clone());
            spec.acquire_time = Some(MicroTime(at));
            spec.renew_time = Some(MicroTime(at));
            spec.lease_duration_seconds = Some(self.duration_secs());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        } else {
            return Ok(false);
        }
        lease.spec = Some(spec);
        // The resourceVersion we read travels with the replace: a concurrent writer makes it a 409.
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up (when the work ended by itself), so that another replica takes over at once.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(now()));
        lease.spec = Some(spec);
        self.api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await?;
        Ok(())
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self) {
        let mut waiting_logged = false;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(lease = %self.settings.name, namespace = %self.settings.namespace,
                        identity = %self.settings.identity, "became the leader");
                    return;
                }
                Ok(false) if !waiting_logged => {
                    tracing::info!(lease = %self.settings.name, namespace = %self.settings.namespace,
                        identity = %self.settings.identity, "another replica leads; waiting for the lease");
                    waiting_logged = true;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(lease = %self.settings.name, error = %e, "cannot read the leader lease")
                }
            }
            tokio::time::sleep(self.settings.retry_every).await;
        }
    }

    /// Renews until the lease is lost; returns why.
    async fn keep(&self) -> String {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.settings.renew_every).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => return "another replica holds the lease".into(),
                Err(e) => {
                    tracing::warn!(lease = %self.settings.name, error = %e, "could not renew the leader lease");
                    if last_renewal.elapsed() >= self.settings.renew_deadline {
                        return format!(
                            "could not renew the lease for {:?}: {e}",
                            self.settings.renew_deadline
                        );
                    }
                }
            }
        }
    }

    /// Waits for the lease, then runs `work` while holding it. The work is dropped (it stops at its next await
    /// point) as soon as the lease is lost; when the work ends by itself the lease is released.
    pub async fn lead<F: Future>(&self, work: F) -> Outcome<F::Output> {
        self.acquire().await;
        tokio::select! {
            output = work => {
                if let Err(e) = self.release().await {
                    tracing::warn!(error = %e, "could not release the leader lease");
                }
                Outcome::Finished(output)
            }
            reason = self.keep() => {
                tracing::error!(lease = %self.settings.name, identity = %self.settings.identity, %reason,
                    "lost the leader lease; stopping");
                Outcome::Lost { reason }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(renewed_ago_s: i64, duration_s: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some("other".into()),
            renew_time: Some(MicroTime(now() - SignedDuration::from_secs(renewed_ago_s))),
            lease_duration_seconds: Some(duration_s),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_expires_when_renew_time_plus_duration_is_past() {
        assert!(!expired(&spec(5, 15), now()));
        assert!(expired(&spec(16, 15), now()));
        assert!(
            expired(&LeaseSpec::default(), now()),
            "never renewed: free to take"
        );
    }

    #[test]
    fn client_go_timing_by_default() {
        let s = LeaseSettings::new("l", "ns", "me");
        assert!(s.renew_every < s.renew_deadline && s.renew_deadline < s.duration);
    }
}
