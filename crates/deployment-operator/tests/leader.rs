//! Leader election against a FAKE Kubernetes API (tests/support/fake_api.rs, which answers create and replace of
//! a Lease, with 409 on a stale resourceVersion). The work run under the lease is the real reconcile of a
//! BentoDeployment, looped: what it applies shows whether this replica reconciles.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use support::fake_api::FakeApiServer;
use yatai_crds::BentoDeployment;
use yatai_deployment_operator::config::Config;
use yatai_deployment_operator::controller::{self, Context};
use yatai_deployment_operator::leader::{LeaderElector, LeaseSettings, Outcome};

const NS: &str = "prod";
const LEASE_NS: &str = "yatai-system";
const LEASE: &str = "yatai-deployment-operator";

fn settings(identity: &str) -> LeaseSettings {
    LeaseSettings {
        duration: Duration::from_secs(3),
        renew_every: Duration::from_millis(150),
        renew_deadline: Duration::from_millis(900),
        retry_every: Duration::from_millis(150),
        ..LeaseSettings::new(LEASE, LEASE_NS, identity)
    }
}

fn micro_time(ago: Duration) -> Value {
    let at = Timestamp::now() - SignedDuration::try_from(ago).unwrap();
    serde_json::to_value(MicroTime(at)).unwrap()
}

fn seed_lease(fake: &FakeApiServer, holder: &str, renewed_ago: Duration, duration_s: i64) {
    fake.seed(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": LEASE, "namespace": LEASE_NS},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration_s,
                 "acquireTime": micro_time(renewed_ago), "renewTime": micro_time(renewed_ago),
                 "leaseTransitions": 4},
    }));
}

fn lease(fake: &FakeApiServer) -> Value {
    fake.get("coordination.k8s.io/v1", "Lease", LEASE_NS, LEASE)
        .expect("the lease exists")
}

fn seed_bento_deployment(fake: &FakeApiServer) {
    fake.seed(json!({
        "apiVersion": "resources.yatai.ai/v1alpha1", "kind": "Bento",
        "metadata": {"name": "iris", "namespace": NS},
        "spec": {"tag": "iris:v1", "image": "registry.example.com/iris:v1", "runners": []},
    }));
    fake.seed(json!({
        "apiVersion": "serving.yatai.ai/v2alpha1", "kind": "BentoDeployment",
        "metadata": {"name": "svc", "namespace": NS, "uid": "bd-uid-1", "generation": 1},
        "spec": {"bento": "iris"},
    }));
}

/// The work under the lease: reconcile the BentoDeployment again and again (as the controller would on events),
/// counting the reconciles.
async fn reconcile_forever(fake: FakeApiServer, ctx: Arc<Context>, count: Arc<AtomicUsize>) {
    loop {
        let bd: BentoDeployment = serde_json::from_value(
            fake.get("serving.yatai.ai/v2alpha1", "BentoDeployment", NS, "svc")
                .unwrap(),
        )
        .unwrap();
        let _ = controller::reconcile(Arc::new(bd), ctx.clone()).await;
        count.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn applies(fake: &FakeApiServer) -> usize {
    fake.log().iter().filter(|r| r.is_apply()).count()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Starts a candidate whose work is the reconcile loop; returns its reconcile counter and its task.
fn candidate(
    client: kube::Client,
    fake: &FakeApiServer,
    identity: &str,
) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<Outcome<()>>) {
    let count = Arc::new(AtomicUsize::new(0));
    let ctx = Context::new(client.clone(), Config::default());
    let work = reconcile_forever(fake.clone(), ctx, count.clone());
    let elector = LeaderElector::new(client, settings(identity));
    let task = tokio::spawn(async move { elector.lead(work).await });
    (count, task)
}

#[tokio::test]
async fn fake_api_a_free_lease_is_acquired_and_renewed() {
    let (client, fake) = FakeApiServer::start();
    seed_bento_deployment(&fake);
    let (count, task) = candidate(client, &fake, "replica-a");

    wait_for("the first reconcile", || count.load(Ordering::SeqCst) > 0).await;
    let first = lease(&fake);
    assert_eq!(first["spec"]["holderIdentity"], "replica-a");
    assert_eq!(first["spec"]["leaseDurationSeconds"], 3);
    assert!(
        fake.log().iter().any(
            |r| r.method == Method::POST && r.path.ends_with("/namespaces/yatai-system/leases")
        ),
        "the missing lease is created"
    );
    assert!(applies(&fake) > 0, "the leader reconciles");

    // Renewed: renewTime moves on, the holder and acquireTime stay. (Waits for two renewals
    // rather than for a fixed time, so that a loaded machine does not make it flaky.)
    let renewal_count = || {
        fake.log()
            .iter()
            .filter(|r| {
                r.method == Method::PUT && r.path.ends_with("/leases/yatai-deployment-operator")
            })
            .count()
    };
    wait_for("two renewals", || renewal_count() >= 2).await;
    let later = lease(&fake);
    assert_eq!(later["spec"]["holderIdentity"], "replica-a");
    assert_eq!(later["spec"]["acquireTime"], first["spec"]["acquireTime"]);
    assert!(
        later["spec"]["renewTime"].as_str() > first["spec"]["renewTime"].as_str(),
        "{} then {}",
        first["spec"]["renewTime"],
        later["spec"]["renewTime"]
    );
    let renewals = renewal_count();
    assert!(renewals >= 2, "renewed every 150 ms: {renewals} renewals");
    assert!(!task.is_finished());
    task.abort();
}

#[tokio::test]
async fn fake_api_a_lease_held_by_another_live_replica_is_not_taken_and_nothing_reconciles() {
    let (client, fake) = FakeApiServer::start();
    seed_bento_deployment(&fake);
    // replica-b renewed a second ago; its lease lasts 30 s.
    seed_lease(&fake, "replica-b", Duration::from_secs(1), 30);
    let before = lease(&fake);
    let (count, task) = candidate(client, &fake, "replica-a");

    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        count.load(Ordering::SeqCst),
        0,
        "the controller does not run"
    );
    assert_eq!(applies(&fake), 0, "nothing is applied by a follower");
    assert_eq!(lease(&fake), before, "the lease is left alone");
    let reads = fake
        .log()
        .iter()
        .filter(|r| {
            r.method == Method::GET && r.path.ends_with("/leases/yatai-deployment-operator")
        })
        .count();
    assert!(reads >= 3, "the follower keeps looking: {reads} reads");
    assert!(!task.is_finished());

    // replica-b steps down (releases the lease): replica-a takes over and starts reconciling.
    fake.edit("coordination.k8s.io/v1", "Lease", LEASE_NS, LEASE, |l| {
        l["spec"]["holderIdentity"] = Value::Null;
    });
    wait_for("the takeover", || count.load(Ordering::SeqCst) > 0).await;
    assert_eq!(lease(&fake)["spec"]["holderIdentity"], "replica-a");
    task.abort();
}

#[tokio::test]
async fn fake_api_an_expired_lease_is_taken_over() {
    let (client, fake) = FakeApiServer::start();
    seed_bento_deployment(&fake);
    // replica-b last renewed 60 s ago, for 15 s: it is gone.
    seed_lease(&fake, "replica-b", Duration::from_secs(60), 15);
    let (count, task) = candidate(client, &fake, "replica-a");

    wait_for("the takeover", || count.load(Ordering::SeqCst) > 0).await;
    let taken = lease(&fake);
    assert_eq!(taken["spec"]["holderIdentity"], "replica-a");
    assert_eq!(taken["spec"]["leaseTransitions"], 5, "one more transition");
    assert_eq!(taken["spec"]["leaseDurationSeconds"], 3);
    assert!(applies(&fake) > 0, "the new leader reconciles");
    task.abort();
}

#[tokio::test]
async fn fake_api_losing_the_lease_to_another_holder_stops_reconciling() {
    let (client, fake) = FakeApiServer::start();
    seed_bento_deployment(&fake);
    let (count, task) = candidate(client, &fake, "replica-a");
    wait_for("leading", || count.load(Ordering::SeqCst) > 0).await;

    // Another replica took the lease (e.g. after a long pause of ours): the next renewal sees it.
    fake.edit("coordination.k8s.io/v1", "Lease", LEASE_NS, LEASE, |l| {
        l["spec"]["holderIdentity"] = json!("replica-b");
        l["spec"]["renewTime"] = micro_time(Duration::ZERO);
    });
    let outcome = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("steps down within a renewal period")
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Lost {
            reason: "another replica holds the lease".into()
        }
    );
    let stopped_at = count.load(Ordering::SeqCst);
    fake.clear_log();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        count.load(Ordering::SeqCst),
        stopped_at,
        "no reconcile after stepping down"
    );
    assert!(
        fake.log().is_empty(),
        "no request at all: {:#?}",
        fake.log()
    );
    assert_eq!(
        lease(&fake)["spec"]["holderIdentity"],
        "replica-b",
        "the other holder keeps it"
    );
}

#[tokio::test]
async fn fake_api_failing_renewals_stop_reconciling_before_the_lease_expires() {
    let (client, fake) = FakeApiServer::start();
    seed_bento_deployment(&fake);
    let (count, task) = candidate(client, &fake, "replica-a");
    wait_for("leading", || count.load(Ordering::SeqCst) > 0).await;

    // The API server fails every renewal from now on.
    fake.fail(Method::PUT, "/leases/", 500, usize::MAX);
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("steps down")
        .unwrap();
    let Outcome::Lost { reason } = outcome else {
        panic!("{outcome:?}")
    };
    assert!(reason.contains("could not renew"), "{reason}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stepped down after the 0.9 s renew deadline, before the 3 s lease expired: {:?}",
        started.elapsed()
    );
    let stopped_at = count.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        count.load(Ordering::SeqCst),
        stopped_at,
        "no reconcile after stepping down"
    );
}

#[tokio::test]
async fn fake_api_work_that_ends_releases_the_lease() {
    let (client, fake) = FakeApiServer::start();
    let elector = LeaderElector::new(client, settings("replica-a"));
    assert_eq!(elector.lead(async { 7 }).await, Outcome::Finished(7));
    let released = lease(&fake);
    assert!(released["spec"]["holderIdentity"].is_null(), "{released}");
}
