//! How many statements a fresh list sends to the database: one for its page, its total and what
//! it shows beside each row (repositories, labels, image builds, creators), whatever the size of
//! the page (no N+1, and no query per relation). Counted from sqlx's own log of each statement
//! (`sqlx::query` events), in a test binary of its own so that nothing else is counted.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use common::registry::*;
use common::*;
use serde_json::json;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

static STATEMENTS: AtomicUsize = AtomicUsize::new(0);

/// Counts each statement sqlx logs.
struct CountStatements;

impl<S: tracing::Subscriber> Layer<S> for CountStatements {
    fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        STATEMENTS.fetch_add(1, Ordering::SeqCst);
    }
}

/// The two backend pairs run one at a time: the count is global.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn count_statements() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let only_statements = Targets::new().with_target("sqlx::query", tracing::Level::TRACE);
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(CountStatements.with_filter(only_statements)),
        )
        .expect("no other subscriber in this test binary");
    });
}

/// The fewest statements one GET of `path` sent in three tries (a background task of the server
/// may add some to one of them), after checking it answers 200.
async fn statements_of(c: &Client, path: &str) -> usize {
    let mut fewest = usize::MAX;
    for _ in 0..3 {
        let before = STATEMENTS.load(Ordering::SeqCst);
        let (s, b) = c.get(path).await;
        assert_eq!(s, reqwest::StatusCode::OK, "{path}: {b}");
        fewest = fewest.min(STATEMENTS.load(Ordering::SeqCst) - before);
    }
    fewest
}

async fn check(backend: Backend) {
    let _one = ONE_AT_A_TIME.lock().await;
    count_statements();
    let settings = yatai_server::Settings {
        // Every read runs its statements (nothing is answered from kept answers).
        read_cache_bytes: 0,
        ..Default::default()
    };
    let app = TestApp::start_with(backend, settings).await;
    let c = api_client(&app).await;
    for repo in ["iris", "fraud", "wine"] {
        for n in 0..8 {
            create_version(
                &c,
                "bento",
                repo,
                &format!("v{n}"),
                bento_manifest(&[]),
                json!([{"key": "stage", "value": "dev"}, {"key": "team", "value": repo}]),
            )
            .await;
        }
    }
    // What every request costs (the caller's credentials), with no list.
    let caller = statements_of(&c, "/api/v1/auth/current").await;
    for list in [
        "/api/v1/bentos?start=0&count={n}",
        "/api/v1/bentos?start=0&count={n}&q=label:stage=dev%20sort:name-asc",
        "/api/v1/bento_repositories/iris/bentos?start=0&count={n}",
        "/api/v1/bento_repositories?start=0&count={n}",
    ] {
        let one = statements_of(&c, &list.replace("{n}", "1")).await;
        let twenty = statements_of(&c, &list.replace("{n}", "20")).await;
        assert_eq!(
            one, twenty,
            "{list}: a page of 20 sends as many statements as a page of 1"
        );
        // A list in one repository reads the repository first (its name is in the path).
        let repository = usize::from(list.contains("/iris/"));
        eprintln!("{list}: caller {caller}, page of 1: {one}, page of 20: {twenty}");
        assert_eq!(
            twenty,
            caller + 1 + repository,
            "{list}: the caller's {caller} statements, then one for the page"
        );
    }
    // One version: the version by its tag (repository and version in one statement), what is
    // shown beside it, and the models the bento uses (none here).
    let get = statements_of(&c, "/api/v1/bento_repositories/iris/bentos/v3").await;
    assert_eq!(get, caller + 3, "a bento read alone");
    // Bentos that use models: the models (read by a bento without any too), then what they
    // show, a statement each, however many.
    for m in ["m1", "m2", "m3"] {
        create_version(&c, "model", m, "v1", model_manifest(10), json!([])).await;
    }
    let mut with_models = Vec::new();
    for (version, models) in [
        ("one-model", vec!["m1:v1"]),
        ("three-models", vec!["m1:v1", "m2:v1", "m3:v1"]),
    ] {
        create_version(
            &c,
            "bento",
            "iris",
            version,
            bento_manifest(&models),
            json!([]),
        )
        .await;
        let path = format!("/api/v1/bento_repositories/iris/bentos/{version}");
        let (_, bento) = c.get(&path).await;
        assert_eq!(
            bento["models"].as_array().map(Vec::len),
            Some(models.len()),
            "{bento}"
        );
        with_models.push(statements_of(&c, &path).await);
    }
    assert_eq!(
        with_models,
        [get + 1, get + 1],
        "a bento with one model and with three: what the models show, one statement more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_local_directory() {
    check(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_s3() {
    check(Backend::Production).await;
}
