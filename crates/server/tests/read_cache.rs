//! Registry reads are answered from kept answers only while nothing they show has changed:
//! every write, through the API or straight into the database (another replica, an import, a
//! restore), is seen by the next read; and a kept answer never reaches a caller who may not read
//! it, or another organization.

mod common;

use common::registry::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use yatai_server::api::registry::CACHE_HEADER;

/// GETs `path`; returns the status, the body, and whether the answer was kept (`hit`/`miss`).
async fn read(c: &Client, path: &str) -> (StatusCode, Value, String) {
    let mut req = c.http.get(format!("{}{path}", c.base));
    if let Some(t) = &c.token {
        req = req.header("X-YATAI-API-TOKEN", t);
    }
    if let Some(o) = &c.org {
        req = req.header("X-Yatai-Organization", o);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let cache = res
        .headers()
        .get(CACHE_HEADER)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, body, cache)
}

/// Reads `path` twice: the first answer is read afresh, the second is the kept one, the same.
async fn read_twice(c: &Client, path: &str) -> Value {
    let (s, first, cache) = read(c, path).await;
    assert_eq!(s, StatusCode::OK, "{path}: {first}");
    assert_eq!(
        cache, "miss",
        "{path}: the first read after a change is fresh"
    );
    let (s, second, cache) = read(c, path).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(cache, "hit", "{path}: nothing changed, the answer is kept");
    assert_eq!(first, second, "{path}: a kept answer is the answer");
    second
}

const READS: [&str; 5] = [
    "/api/v1/bentos?start=0&count=20",
    "/api/v1/bento_repositories?start=0&count=20",
    "/api/v1/bento_repositories/iris",
    "/api/v1/bento_repositories/iris/bentos?start=0&count=5",
    "/api/v1/bento_repositories/iris/bentos/v1",
];

/// Bento `iris:v1`, labelled `stage=dev`, the version the reads below look at.
async fn labelled_iris(c: &Client) -> Value {
    create_version(
        c,
        "bento",
        "iris",
        "v1",
        bento_manifest(&[]),
        json!([{"key": "stage", "value": "dev"}]),
    )
    .await
}

backend_test!(
    a_kept_answer_lasts_until_a_write_through_the_api,
    |app: TestApp| async move {
        let c = api_client(&app).await;
        labelled_iris(&c).await;
        for path in READS {
            read_twice(&c, path).await;
        }

        // Labels changed: every read shows it at once.
        let (s, b) = c
            .patch(
                &version_path("bento", "iris", "v1"),
                json!({"labels": [{"key": "stage", "value": "prod"}]}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let v = read_twice(&c, "/api/v1/bento_repositories/iris/bentos/v1").await;
        assert_eq!(v["labels"], json!([{"key": "stage", "value": "prod"}]));
        let list = read_twice(&c, "/api/v1/bentos?start=0&count=20&q=label:stage=prod").await;
        assert_eq!(list["total"], 1, "{list}");

        // A new version: the repository list counts it and names it the latest.
        create_version(&c, "bento", "iris", "v2", bento_manifest(&[]), json!([])).await;
        let repos = read_twice(&c, "/api/v1/bento_repositories?start=0&count=20").await;
        assert_eq!(repos["items"][0]["n_bentos"], 2, "{repos}");
        assert_eq!(
            repos["items"][0]["latest_bento"]["version"], "v2",
            "{repos}"
        );
        let list = read_twice(&c, "/api/v1/bentos?start=0&count=20").await;
        assert_eq!(list["total"], 2, "{list}");

        // Deleted: gone from the next read, and the kept page of it is not served.
        let (s, b) = c.delete(&version_path("bento", "iris", "v2"), None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, b, _) = read(&c, "/api/v1/bento_repositories/iris/bentos/v2").await;
        assert_error(s, &b, StatusCode::NOT_FOUND);
        let list = read_twice(&c, "/api/v1/bentos?start=0&count=20").await;
        assert_eq!(list["total"], 1, "{list}");
    }
);

backend_test!(
    a_write_straight_into_a_watched_table_is_seen,
    |app: TestApp| async move {
        let c = api_client(&app).await;
        let v = labelled_iris(&c).await;
        let uid = v["uid"].as_str().unwrap().to_string();
        // Another connection, as another replica or a restore would write.
        let other = yatai_store::Db::connect(&app.storage.database_url)
            .await
            .unwrap();
        let org: String = sqlx::query_scalar("SELECT organization_uid FROM repositories")
            .fetch_one(other.pool())
            .await
            .unwrap();
        sqlx::query("INSERT INTO image_builds (version_uid, updated_at) VALUES ($1, 0)")
            .bind(&uid)
            .execute(other.pool())
            .await
            .unwrap();
        sqlx::query("INSERT INTO bento_models (bento_uid, organization_uid, model_name, model_version) VALUES ($1, $2, 'm', '1')")
            .bind(&uid)
            .bind(&org)
            .execute(other.pool())
            .await
            .unwrap();
        // Every table the answers are made of, changed in place (a row trigger fires even
        // when the value stays).
        let path = "/api/v1/bento_repositories/iris/bentos/v1";
        read_twice(&c, path).await;
        for (table, column) in [
            ("repositories", "description"),
            ("versions", "description"),
            ("labels", "label_value"),
            ("image_builds", "reason"),
            ("bento_models", "model_version"),
            ("users", "email"),
        ] {
            sqlx::query(&format!("UPDATE {table} SET {column} = {column}"))
                .execute(other.pool())
                .await
                .unwrap();
            let (s, b, cache) = read(&c, path).await;
            assert_eq!(s, StatusCode::OK, "{b}");
            assert_eq!(
                cache, "miss",
                "{:?}: a write to {table} is seen by the next read",
                app.backend
            );
            let (_, _, cache) = read(&c, path).await;
            assert_eq!(cache, "hit", "then kept again");
        }
        read_twice(&c, "/api/v1/bentos?start=0&count=20").await;
        sqlx::query("UPDATE versions SET description = 'written elsewhere'")
            .execute(other.pool())
            .await
            .unwrap();
        let list = read_twice(&c, "/api/v1/bentos?start=0&count=20").await;
        assert_eq!(list["items"][0]["description"], "written elsewhere");
        // A write that is rolled back changes nothing a reader can see.
        let mut tx = other.begin().await.unwrap();
        sqlx::query("UPDATE versions SET description = 'never committed'")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        let (_, list, cache) = read(&c, "/api/v1/bentos?start=0&count=20").await;
        assert_eq!(cache, "hit", "a rolled-back write leaves the kept answers");
        assert_eq!(list["items"][0]["description"], "written elsewhere");
        other.close().await;
    }
);

backend_test!(
    a_kept_answer_reaches_only_callers_who_may_read_it,
    |app: TestApp| async move {
        let admin = app.setup_admin().await;
        let (token_uid, token) = admin
            .create_token("cli", &["api", "read_organization", "write_organization"])
            .await;
        let c = app.with_token(&token);
        create_version(&c, "bento", "iris", "v1", bento_manifest(&[]), json!([])).await;
        for path in READS {
            read_twice(&c, path).await;
        }
        // A token that may not read the registry is refused, though the answer is kept.
        let (_, clusters_only) = admin.create_token("deployer", &["read_cluster"]).await;
        let d = app.with_token(&clusters_only);
        for path in READS {
            let (s, b, cache) = read(&d, path).await;
            assert_error(s, &b, StatusCode::FORBIDDEN);
            assert_eq!(cache, "", "{path}: a refusal is not a kept answer");
        }
        // Another organization has its own answers.
        let (s, b) = admin
            .post("/api/v1/orgs", json!({"name": "other", "description": ""}))
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let other = admin.in_org("other");
        let (s, list, cache) = read(&other, "/api/v1/bentos?start=0&count=20").await;
        assert_eq!(s, StatusCode::OK, "{list}");
        assert_eq!(cache, "miss");
        assert_eq!(list["total"], 0, "{list}");
        let (s, b, _) = read(&other, "/api/v1/bento_repositories/iris").await;
        assert_error(s, &b, StatusCode::NOT_FOUND);
        // A revoked token is refused at once, though its answers are kept.
        let (s, list, cache) = read(&c, "/api/v1/bentos?start=0&count=20").await;
        assert_eq!((s, cache.as_str()), (StatusCode::OK, "hit"), "{list}");
        let (s, b) = admin
            .delete(&format!("/api/v1/api_tokens/{token_uid}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, b, _) = read(&c, "/api/v1/bentos?start=0&count=20").await;
        assert_error(s, &b, StatusCode::UNAUTHORIZED);
    }
);

backend_test!(
    with_no_memory_for_it_every_read_is_fresh,
    |app: TestApp| async move {
        let app = TestApp::start_with(
            app.backend,
            yatai_server::Settings {
                read_cache_bytes: 0,
                ..Default::default()
            },
        )
        .await;
        let c = api_client(&app).await;
        create_version(&c, "bento", "iris", "v1", bento_manifest(&[]), json!([])).await;
        for path in READS {
            for _ in 0..2 {
                let (s, b, cache) = read(&c, path).await;
                assert_eq!(s, StatusCode::OK, "{b}");
                assert_eq!(cache, "off", "{path}");
            }
        }
    }
);

backend_test!(
    a_generation_never_comes_back_with_other_data,
    |app: TestApp| async move {
        use yatai_store::db::generation;
        let c = api_client(&app).await;
        let pool = app.state.db.pool();
        create_version(&c, "bento", "iris", "v1", bento_manifest(&[]), json!([])).await;
        let seen = generation::current(pool).await.unwrap().unwrap();
        read_twice(&c, "/api/v1/bentos?start=0&count=20").await;
        // The database goes back (a failover to a replica that was behind, a restore under a
        // running server), then takes new writes.
        sqlx::query(&format!("UPDATE {} SET n = 1", generation::TABLE))
            .execute(pool)
            .await
            .unwrap();
        create_version(&c, "bento", "iris", "v2", bento_manifest(&[]), json!([])).await;
        let now = generation::current(pool).await.unwrap().unwrap();
        assert!(
            now > seen,
            "{:?}: the generation after the rewind ({now}) is one no reader has seen (last seen {seen})",
            app.backend
        );
        let list = read_twice(&c, "/api/v1/bentos?start=0&count=20").await;
        assert_eq!(list["total"], 2, "{list}");
    }
);

/// PostgreSQL: the generation's row is locked only at commit, so a transaction that wrote a
/// watched table and is still open does not hold up another writer (with a trigger at the
/// statement, the second writer waits for the first, and the first then waiting for a row of the
/// second is a deadlock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_writers_do_not_wait_on_each_other_for_the_generation() {
    use std::time::Duration;
    let app = TestApp::start(Backend::Production).await;
    let c = api_client(&app).await;
    let v = labelled_iris(&c).await;
    let uid = v["uid"].as_str().unwrap().to_string();
    let pool = app.state.db.pool();
    let before = yatai_store::db::generation::current(pool)
        .await
        .unwrap()
        .unwrap();
    let mut first = pool.begin().await.unwrap();
    sqlx::query("UPDATE versions SET description = 'first' WHERE uid = $1")
        .bind(&uid)
        .execute(&mut *first)
        .await
        .unwrap();
    let second = async {
        let mut second = pool.begin().await.unwrap();
        sqlx::query("UPDATE labels SET label_value = 'second' WHERE resource_uid = $1")
            .bind(&uid)
            .execute(&mut *second)
            .await
            .unwrap();
        second.commit().await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("a writer commits while another one is open");
    sqlx::query("UPDATE labels SET label_value = 'first' WHERE resource_uid = $1")
        .bind(&uid)
        .execute(&mut *first)
        .await
        .unwrap();
    first.commit().await.unwrap();
    let after = yatai_store::db::generation::current(pool)
        .await
        .unwrap()
        .unwrap();
    assert!(
        after >= before + 2,
        "each commit moved it ({before} -> {after})"
    );
    let (_, b, cache) = read(&c, "/api/v1/bento_repositories/iris/bentos/v1").await;
    assert_eq!(cache, "miss");
    assert_eq!(b["description"], "first");
    assert_eq!(b["labels"], json!([{"key": "stage", "value": "first"}]));
}

backend_test!(
    a_start_puts_back_a_missing_trigger,
    |app: TestApp| async move {
        let drop = match app.backend {
            Backend::Embedded => "DROP TRIGGER _yatai_generation_labels_update",
            Backend::Production => "DROP TRIGGER _yatai_generation_labels_change ON labels",
        };
        sqlx::query(drop)
            .execute(app.state.db.pool())
            .await
            .unwrap();
        // A table rebuilt by a migration loses its triggers the same way; the next start
        // notices and installs them again.
        let app = app.restart().await;
        let c = api_client(&app).await;
        labelled_iris(&c).await;
        let path = "/api/v1/bento_repositories/iris/bentos/v1";
        read_twice(&c, path).await;
        sqlx::query("UPDATE labels SET label_value = 'prod'")
            .execute(app.state.db.pool())
            .await
            .unwrap();
        let (_, b, cache) = read(&c, path).await;
        assert_eq!(cache, "miss", "{:?}: {b}", app.backend);
        assert_eq!(b["labels"], json!([{"key": "stage", "value": "prod"}]));
    }
);
