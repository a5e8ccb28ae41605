//! The registry API: repositories, versions, labels, every upload path, integrity, downloads,
//! deletion and events, on both backend pairs.

mod common;

use common::registry::*;
use common::Start;
use common::{assert_error, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use yatai_domain::registry::TransmissionStrategy;
use yatai_server::Settings;

backend_test!(
    repositories_versions_labels_search_sort_and_paging,
    |app: TestApp| async move {
        let c = api_client(&app).await;
        let (s, b) = c
            .post("/api/v1/bento_repositories", json!({"name": "Bad Name"}))
            .await;
        assert_error(s, &b, StatusCode::BAD_REQUEST);
        let (s, b) = c.get("/api/v1/bento_repositories/iris").await;
        assert_error(s, &b, StatusCode::NOT_FOUND);

        for (i, v) in ["v1", "v2", "v3"].iter().enumerate() {
            let labels = json!([{"key": "stage", "value": if i == 2 { "prod" } else { "dev" }}, {"key": "owner", "value": "Zoë Ærøskøbing"}]);
            let (s, b) = c
                .post(
                    "/api/v1/bento_repositories",
                    json!({"name": "iris", "description": "first"}),
                )
                .await;
            assert_eq!(
                s,
                StatusCode::OK,
                "creating an existing repository answers it: {b}"
            );
            let (s, b) = c
            .post("/api/v1/bento_repositories/iris/bentos", json!({"version": v, "manifest": bento_manifest(&[]), "build_at": format!("2026-11-2{} 10:00:00.000000", i + 1), "labels": labels}))
            .await;
            assert_eq!(s, StatusCode::OK, "{b}");
            assert_eq!(b["upload_status"], "pending");
            assert_eq!(b["resource_type"], "bento");
            assert_eq!(b["presigned_upload_url"], "");
            assert_eq!(
                b["manifest"]["schema"],
                json!({"x": 1}),
                "unknown manifest keys round-trip"
            );
        }
        create_version(&c, "bento", "fraud", "a1", bento_manifest(&[]), json!([])).await;
        let (s, b) = c
            .post(
                "/api/v1/bento_repositories/iris/bentos",
                json!({"version": "v1", "manifest": bento_manifest(&[])}),
            )
            .await;
        assert_error(s, &b, StatusCode::CONFLICT);
        for bad in [
            json!({"version": "v:9", "manifest": {}}),
            json!({"version": "v9", "manifest": []}),
            json!({"version": "v9", "manifest": {}, "build_at": "soon"}),
            json!({"version": "v9", "manifest": {}, "labels": [{"key": "bad key", "value": ""}]}),
        ] {
            let (s, b) = c.post("/api/v1/bento_repositories/iris/bentos", bad).await;
            assert_error(s, &b, StatusCode::BAD_REQUEST);
        }
        let (s, b) = c
            .post(
                "/api/v1/bento_repositories/nope/bentos",
                json!({"version": "v9", "manifest": {}}),
            )
            .await;
        assert_error(s, &b, StatusCode::NOT_FOUND);
        assert_eq!(
            app.count_rows("versions").await,
            4,
            "refused creations write nothing"
        );

        // Newest first, with paging and totals.
        let (_, list) = c
            .get("/api/v1/bento_repositories/iris/bentos?start=0&count=2")
            .await;
        assert_eq!(list["total"], 3);
        let versions: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["version"].as_str().unwrap())
            .collect();
        assert_eq!(versions, ["v3", "v2"]);
        let (_, page2) = c
            .get("/api/v1/bento_repositories/iris/bentos?start=2&count=2")
            .await;
        assert_eq!(page2["items"][0]["version"], "v1");
        assert_eq!(
            page2["items"][0]["labels"],
            json!([{"key": "owner", "value": "Zoë Ærøskøbing"}, {"key": "stage", "value": "dev"}])
        );
        let (_, oldest) = c
            .get("/api/v1/bento_repositories/iris/bentos?q=sort:created_at-asc")
            .await;
        assert_eq!(oldest["items"][0]["version"], "v1");
        // Label filter and search, org-wide.
        let (_, prod) = c.get("/api/v1/bentos?q=label:stage=prod").await;
        assert_eq!(prod["total"], 1);
        assert_eq!(prod["items"][0]["version"], "v3");
        assert_eq!(
            prod["items"][0]["repository"]["name"], "iris",
            "org-wide lists embed the repository"
        );
        let (_, found) = c.get("/api/v1/bentos?search=fra").await;
        assert_eq!(found["total"], 1);
        let (s, b) = c.get("/api/v1/bentos?count=100000").await;
        assert_error(s, &b, StatusCode::BAD_REQUEST);

        // Repositories: latest version, count, search, sort by name.
        let (_, repo) = c.get("/api/v1/bento_repositories/iris").await;
        assert_eq!(repo["latest_bento"]["version"], "v3");
        assert_eq!(repo["n_bentos"], 3);
        assert_eq!(repo["resource_type"], "bento_repository");
        let (_, repos) = c.get("/api/v1/bento_repositories?q=sort:name-asc").await;
        let names: Vec<&str> = repos["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["fraud", "iris"]);
        let (_, repos) = c.get("/api/v1/bento_repositories?search=ir").await;
        assert_eq!(repos["total"], 1);
        let (s, repo) = c
            .patch(
                "/api/v1/bento_repositories/iris",
                json!({"description": "flowers"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(repo["description"], "flowers");

        // Update a version: description, labels, manifest.
        let (s, v) = c.patch(&version_path("bento", "iris", "v1"), json!({"description": "README", "labels": [{"key": "stage", "value": "prod"}], "manifest": bento_manifest(&["m:1"])})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["description"], "README");
        assert_eq!(v["labels"], json!([{"key": "stage", "value": "prod"}]));
        let (_, prod) = c.get("/api/v1/bentos?q=label:stage=prod").await;
        assert_eq!(prod["total"], 2);

        // A repository with versions cannot be deleted; an empty one can.
        let (s, b) = c.delete("/api/v1/bento_repositories/iris", None).await;
        assert_error(s, &b, StatusCode::CONFLICT);
        c.post("/api/v1/model_repositories", json!({"name": "empty"}))
            .await;
        assert_eq!(
            c.delete("/api/v1/model_repositories/empty", None).await.0,
            StatusCode::OK
        );
    }
);

backend_test!(
    proxy_upload_and_download_with_range,
    |app: TestApp| async move {
        let c = api_client(&app).await;
        create_version(&c, "model", "echo", "m1", model_manifest(10), json!([])).await;
        let archive = tar_archive(&[
            ("./model.yaml", b"name: echo\n"),
            ("./nested/dir/weights bin ä.bin", &[7u8; 5000]),
            ("./empty", b""),
        ]);
        let (s, v) = proxy_upload(&c, "model", "echo", "m1", archive.clone()).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(
            v["upload_status"], "success",
            "a proxy upload finishes by itself"
        );
        assert_eq!(v["archive_size"], archive.len());
        let sha = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&archive))
        };
        assert_eq!(v["archive_sha256"], sha);
        assert!(v["upload_finished_at"].is_string());

        let (s, headers, body) = download(&c, "model", "echo", "m1", &[]).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            headers["content-length"],
            archive.len().to_string().as_str()
        );
        assert!(body == archive, "the archive comes back byte for byte");
        let (s, headers, body) =
            download(&c, "model", "echo", "m1", &[("range", "bytes=10-19")]).await;
        assert_eq!(s, StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            headers["content-range"],
            format!("bytes 10-19/{}", archive.len()).as_str()
        );
        assert_eq!(body, &archive[10..20]);
        let (s, _, body) = download(&c, "model", "echo", "m1", &[("range", "bytes=-5")]).await;
        assert_eq!(s, StatusCode::PARTIAL_CONTENT);
        assert_eq!(body, &archive[archive.len() - 5..]);
        let (s, _, _) = download(&c, "model", "echo", "m1", &[("range", "bytes=999999-")]).await;
        assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE);

        let (_, events) = c
            .get("/api/v1/current_org/events?resource_type=model")
            .await;
        let ops: Vec<&str> = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["operation_name"].as_str().unwrap())
            .collect();
        assert!(
            ops.contains(&"create") && ops.contains(&"push") && ops.contains(&"pull"),
            "{ops:?}"
        );
        // Pages of events cut the same list (newest first).
        let (_, second) = c
            .get("/api/v1/current_org/events?resource_type=model&start=1&count=1")
            .await;
        assert_eq!(second["total"], events["total"]);
        assert_eq!(second["items"].as_array().unwrap().len(), 1);
        assert_eq!(second["items"][0]["uid"], events["items"][1]["uid"]);
        assert!(events["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["creator_name"] == "admin" && e["api_token_name"] == "cli"));
        let (_, pushes) = c
            .get("/api/v1/current_org/events?operation_name=push")
            .await;
        assert_eq!(pushes["total"], 1);
        assert_eq!(pushes["items"][0]["resource_name"], "echo:m1");
    }
);

backend_test!(
    versions_not_uploaded_are_never_served,
    |app: TestApp| async move {
        let c = api_client(&app).await;
        create_version(&c, "bento", "svc", "b1", bento_manifest(&[]), json!([])).await;
        let path = version_path("bento", "svc", "b1");
        let (_, v) = c.get(&path).await;
        assert_eq!(
            v["transmission_strategy"],
            Value::Null,
            "a version that cannot be pulled makes the client ask first"
        );
        let (s, _, _) = download(&c, "bento", "svc", "b1", &[]).await;
        assert_eq!(s, StatusCode::CONFLICT);
        let (s, b) = c
            .patch(&format!("{path}/presign_download_url"), json!({}))
            .await;
        assert_error(s, &b, StatusCode::CONFLICT);
        assert!(
            b["message"].as_str().unwrap().contains("not been uploaded"),
            "{b}"
        );
        c.patch(&format!("{path}/start_upload"), json!({})).await;
        let (_, b) = c
            .patch(&format!("{path}/presign_download_url"), json!({}))
            .await;
        assert!(
            b["message"]
                .as_str()
                .unwrap()
                .contains("still being uploaded"),
            "{b}"
        );
        let (s, v) = c
            .patch(
                &format!("{path}/finish_upload"),
                json!({"status": "failed", "reason": "disk full"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["upload_status"], "failed");
        assert_eq!(v["upload_finished_reason"], "disk full");
        let (_, b) = c
            .patch(&format!("{path}/presign_download_url"), json!({}))
            .await;
        assert!(
            b["message"]
                .as_str()
                .unwrap()
                .contains("upload failed: disk full"),
            "{b}"
        );
        let (s, b) = c
            .patch(&format!("{path}/finish_upload"), json!({"status": "done"}))
            .await;
        assert_error(s, &b, StatusCode::BAD_REQUEST);
        let (s, b) = c
            .patch(
                &format!("{path}/finish_upload"),
                json!({"status": "success"}),
            )
            .await;
        assert_error(s, &b, StatusCode::CONFLICT);
    }
);

backend_test!(
    bad_archives_are_refused_and_leave_nothing,
    |app: TestApp| async move {
        let c = api_client(&app).await;
        create_version(&c, "model", "m", "v1", model_manifest(10), json!([])).await;
        let good = tar_archive(&[("./a.txt", &[1u8; 3000]), ("./b.txt", b"b")]);
        for (what, bytes) in [
            ("empty", Vec::new()),
            ("truncated", good[..good.len() - 1024].to_vec()),
            ("cut mid-file", good[..1200].to_vec()),
            ("not an archive", b"hello".repeat(300)),
        ] {
            let (s, b) = proxy_upload(&c, "model", "m", "v1", bytes).await;
            assert_error(s, &b, StatusCode::BAD_REQUEST);
            let (_, v) = c.get(&version_path("model", "m", "v1")).await;
            assert_eq!(v["upload_status"], "failed", "{what}");
            assert!(
                !v["upload_finished_reason"].as_str().unwrap().is_empty(),
                "{what}: the reason is recorded"
            );
            assert_eq!(
                download(&c, "model", "m", "v1", &[]).await.0,
                StatusCode::CONFLICT,
                "{what}: nothing is served"
            );
            assert!(
                object_keys(&app, "models").await.is_empty(),
                "{what}: nothing half-written stays in storage"
            );
        }
        let (s, v) = proxy_upload(&c, "model", "m", "v1", good.clone()).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(download(&c, "model", "m", "v1", &[]).await.2, good);
        assert_eq!(object_keys(&app, "models").await.len(), 1);
    }
);

async fn presigned_app(backend: common::Backend) -> TestApp {
    TestApp::start_with(
        backend,
        Settings {
            transmission_strategy: TransmissionStrategy::PresignedUrl,
            ..Settings::default()
        },
    )
    .await
}

async fn presigned_single_and_multipart(app: TestApp) {
    let c = api_client(&app).await;
    // Small: the server announces no strategy, so the client asks for one presigned URL.
    let v = create_version(&c, "model", "small", "s1", model_manifest(1000), json!([])).await;
    assert_eq!(v["transmission_strategy"], Value::Null);
    let path = version_path("model", "small", "s1");
    let (_, v) = c
        .patch(&format!("{path}/presign_upload_url"), json!({}))
        .await;
    let url = v["presigned_upload_url"].as_str().unwrap().to_string();
    assert!(url.starts_with("http"), "{v}");
    let archive = tar_archive(&[("./x.bin", &[3u8; 4096])]);
    let (s, b) = put_raw(&c, &url, archive.clone(), false).await;
    assert_eq!(s, StatusCode::OK, "presigned PUT: {b}");
    let v = finish_ok(&c, &path).await;
    assert_eq!(v["archive_size"], archive.len());
    assert_eq!(v["archive_sha256"], sha256_hex(&archive));
    let (_, v) = c
        .patch(&format!("{path}/presign_download_url"), json!({}))
        .await;
    let url = v["presigned_download_url"].as_str().unwrap();
    let got = reqwest::get(url).await.unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.bytes().await.unwrap().to_vec(), archive);
    // A tampered signature is refused (local URLs; S3 checks its own).
    if app.backend == common::Backend::Embedded {
        let forged = url.replace("signature=", "signature=0");
        assert_eq!(
            reqwest::get(&forged).await.unwrap().status(),
            StatusCode::FORBIDDEN
        );
    }

    // Big: multipart, parts sent out of order.
    let v = create_version(
        &c,
        "model",
        "big",
        "b1",
        model_manifest(300 * 1024 * 1024),
        json!([]),
    )
    .await;
    assert_eq!(v["transmission_strategy"], "presigned_url");
    let path = version_path("model", "big", "b1");
    let big: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let archive = tar_archive(&[("./weights.bin", &big)]);
    let (first, second) = archive.split_at(5 * 1024 * 1024);
    let (_, v) = c
        .patch(&format!("{path}/start_multipart_upload"), json!({}))
        .await;
    let upload_id = v["upload_id"].as_str().unwrap().to_string();
    assert!(!upload_id.is_empty());
    let (s, b) = c
        .patch(
            &format!("{path}/presign_multipart_upload_url"),
            json!({"upload_id": "wrong", "part_number": 1}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST);
    // Parts sent out of order.
    let (s, b) = put_parts_and_complete(&c, &path, &upload_id, &[(2, second), (1, first)]).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let v = finish_ok(&c, &path).await;
    assert_eq!(v["archive_size"], archive.len());
    assert_eq!(v["archive_sha256"], sha256_hex(&archive));
    let (_, v) = c
        .patch(&format!("{path}/presign_download_url"), json!({}))
        .await;
    let got = reqwest::get(v["presigned_download_url"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        got.to_vec() == archive,
        "multipart archive comes back whole"
    );

    // A presigned upload of a truncated archive is refused at finish, and removed.
    let v = create_version(&c, "model", "small", "s2", model_manifest(10), json!([])).await;
    assert_eq!(v["upload_status"], "pending");
    let path = version_path("model", "small", "s2");
    let (_, v) = c
        .patch(&format!("{path}/presign_upload_url"), json!({}))
        .await;
    let good = tar_archive(&[("./x.bin", &[3u8; 4096])]);
    put_raw(
        &c,
        v["presigned_upload_url"].as_str().unwrap(),
        good[..700].to_vec(),
        false,
    )
    .await;
    let (s, b) = c
        .patch(
            &format!("{path}/finish_upload"),
            json!({"status": "success", "reason": ""}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST);
    let (_, v) = c.get(&path).await;
    assert_eq!(v["upload_status"], "failed");
    assert_eq!(
        object_keys(&app, "models").await.len(),
        2,
        "only the two good archives remain"
    );
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// A part sent again after the server hashed it (the local backend hashes parts as they
/// arrive) is checked, hashed and served as it was sent last.
async fn a_part_sent_again_is_checked_as_sent_last(app: TestApp) {
    let c = api_client(&app).await;
    let weights: Vec<u8> = (0..6 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let archive = tar_archive(&[("./weights.bin", &weights)]);
    create_version(
        &c,
        "model",
        "resent",
        "r1",
        model_manifest(archive.len() as u64),
        json!([]),
    )
    .await;
    let path = version_path("model", "resent", "r1");
    let (first, second) = archive.split_at(5 * 1024 * 1024);
    let (_, v) = c
        .patch(&format!("{path}/start_multipart_upload"), json!({}))
        .await;
    let upload_id = v["upload_id"].as_str().unwrap().to_string();
    put_part(&c, &path, &upload_id, 1, first).await;
    let e2 = put_part(&c, &path, &upload_id, 2, second).await;
    if app.backend == common::Backend::Embedded {
        let mut waited = 0;
        while app.state.objects.hashed_so_far(&upload_id) != Some(archive.len() as u64) {
            assert!(waited < 500, "the parts were not hashed as they arrived");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            waited += 1;
        }
    }
    // Part 1 again, other weights of the same length: still a whole tar, another digest.
    let mut changed = first.to_vec();
    changed[1024..].iter_mut().for_each(|b| *b ^= 0x55);
    let e1 = put_part(&c, &path, &upload_id, 1, &changed).await;
    let parts = json!([{"part_number": 1, "etag": e1}, {"part_number": 2, "etag": e2}]);
    let (s, b) = c
        .patch(
            &format!("{path}/complete_multipart_upload"),
            json!({"parts": parts, "upload_id": upload_id}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let v = finish_ok(&c, &path).await;
    let sent = [&changed[..], second].concat();
    assert_eq!(
        v["archive_sha256"],
        sha256_hex(&sent),
        "the digest is of the bytes sent last"
    );
    let (s, _, got) = download(&c, "model", "resent", "r1", &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(got == sent, "the object is the bytes sent last");
}

mod presigned_transfers {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_part_sent_again_sqlite_and_local_directory() {
        a_part_sent_again_is_checked_as_sent_last(presigned_app(common::Backend::Embedded).await)
            .await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_part_sent_again_postgres_and_s3() {
        a_part_sent_again_is_checked_as_sent_last(presigned_app(common::Backend::Production).await)
            .await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_and_local_directory() {
        presigned_single_and_multipart(presigned_app(common::Backend::Embedded).await).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_and_s3() {
        presigned_single_and_multipart(presigned_app(common::Backend::Production).await).await;
    }
}

backend_test!(
    concurrent_pushes_leave_one_whole_version,
    |app: TestApp| async move {
        let c = api_client(&app).await;
        create_version(&c, "bento", "race", "r1", bento_manifest(&[]), json!([])).await;
        let a = tar_archive(&[("./src/a.py", &[b'a'; 2 * 1024 * 1024])]);
        let b = tar_archive(&[("./src/b.py", &[b'b'; 2 * 1024 * 1024 + 7])]);
        for _ in 0..3 {
            let (ra, rb) = tokio::join!(
                proxy_upload(&c, "bento", "race", "r1", a.clone()),
                proxy_upload(&c, "bento", "race", "r1", b.clone())
            );
            assert!(
                ra.0 == StatusCode::OK || ra.0 == StatusCode::CONFLICT,
                "{ra:?}"
            );
            assert!(
                rb.0 == StatusCode::OK || rb.0 == StatusCode::CONFLICT,
                "{rb:?}"
            );
            let (s, _, body) = download(&c, "bento", "race", "r1", &[]).await;
            assert_eq!(s, StatusCode::OK);
            assert!(
                body == a || body == b,
                "the served archive is exactly one of the two pushes"
            );
            let (_, v) = c.get(&version_path("bento", "race", "r1")).await;
            assert_eq!(
                v["archive_size"],
                body.len(),
                "metadata matches the served bytes"
            );
            assert_eq!(
                object_keys(&app, "bentos").await.len(),
                1,
                "the losing upload leaves nothing behind"
            );
        }
        let (_, list) = c.get("/api/v1/bento_repositories/race/bentos").await;
        assert_eq!(list["total"], 1);
    }
);

backend_test!(
    deletes_remove_archives_and_keep_used_models,
    |app: TestApp| async move {
        let c = api_client(&app).await;
        create_version(&c, "model", "clf", "m1", model_manifest(10), json!([])).await;
        assert_eq!(
            proxy_upload(&c, "model", "clf", "m1", tar_archive(&[("./w", b"w")]))
                .await
                .0,
            StatusCode::OK
        );
        create_version(
            &c,
            "bento",
            "svc",
            "b1",
            bento_manifest(&["clf:m1", "notpushed:x"]),
            json!([]),
        )
        .await;
        assert_eq!(
            proxy_upload(
                &c,
                "bento",
                "svc",
                "b1",
                tar_archive(&[("./bento.yaml", b"x")])
            )
            .await
            .0,
            StatusCode::OK
        );

        let (_, bento) = c.get(&version_path("bento", "svc", "b1")).await;
        let models: Vec<&str> = bento["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["version"].as_str().unwrap())
            .collect();
        assert_eq!(models, ["m1"], "the bento lists the pushed models it uses");
        assert_eq!(bento["models"][0]["repository"]["name"], "clf");
        // The bento embeds its own repository (the one its lookup read), with its creator.
        assert_eq!(bento["repository"]["name"], "svc");
        assert_eq!(bento["repository"]["creator"]["name"], "admin", "{bento}");
        let (_, used) = c
            .get(&format!("{}/models", version_path("bento", "svc", "b1")))
            .await;
        assert_eq!(used.as_array().unwrap().len(), 1);
        let (_, users) = c
            .get(&format!("{}/bentos", version_path("model", "clf", "m1")))
            .await;
        assert_eq!(users[0]["version"], "b1");

        let (s, b) = c.delete(&version_path("model", "clf", "m1"), None).await;
        assert_error(s, &b, StatusCode::CONFLICT);
        assert!(b["message"].as_str().unwrap().contains("svc:b1"), "{b}");
        assert_eq!(
            object_keys(&app, "models").await.len(),
            1,
            "a refused delete deletes nothing"
        );
        assert_eq!(
            c.delete(&version_path("bento", "svc", "b1"), None).await.0,
            StatusCode::OK
        );
        assert!(object_keys(&app, "bentos").await.is_empty());
        assert_eq!(
            c.delete(&version_path("model", "clf", "m1"), None).await.0,
            StatusCode::OK
        );
        assert!(
            object_keys(&app, "models").await.is_empty(),
            "no orphan archive"
        );
        assert_eq!(
            c.get(&version_path("model", "clf", "m1")).await.0,
            StatusCode::NOT_FOUND
        );
        let (_, deletes) = c
            .get("/api/v1/current_org/events?operation_name=delete")
            .await;
        assert_eq!(deletes["total"], 2);
    }
);

backend_test!(
    bentoml_1_0_gets_its_not_found_and_gzip,
    |app: TestApp| async move {
        let c = api_client(&app).await;
        let legacy = |path: &str| {
            c.http
                .get(format!("{}{path}", c.base))
                .header("X-YATAI-API-TOKEN", c.token.clone().unwrap())
                .header("X-Bentoml-Version", "1.0.20")
        };
        let res = legacy("/api/v1/bento_repositories/nope")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        assert!(res.text().await.unwrap().contains("record not found"));
        let res = c
            .http
            .get(format!("{}/api/v1/bento_repositories/nope", c.base))
            .header("X-YATAI-API-TOKEN", c.token.clone().unwrap())
            .header("X-Bentoml-Version", "1.4.40")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);

        create_version(&c, "model", "m", "v1", model_manifest(10), json!([])).await;
        let plain = tar_archive(&[("./model.yaml", b"name: m\n")]);
        assert_eq!(
            proxy_upload(&c, "model", "m", "v1", plain.clone()).await.0,
            StatusCode::OK
        );
        let res = legacy(&format!("{}/download", version_path("model", "m", "v1")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let gz = res.bytes().await.unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b], "1.0 clients get gzip");
        let mut unpacked = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unpacked)
            .unwrap();
        assert_eq!(unpacked, plain);
        let (_, _, body) = download(&c, "model", "m", "v1", &[]).await;
        assert_eq!(body, plain, "newer clients get the bytes as stored");
    }
);

backend_test!(
    registry_permissions_follow_scope_role_and_organization,
    |app: TestApp| async move {
        let admin = app.setup_admin().await;
        let (_, api) = admin.create_token("api", &["api"]).await;
        let (_, read) = admin.create_token("read", &["read_organization"]).await;
        let (_, cluster) = admin.create_token("cluster", &["read_cluster"]).await;
        let api = app.with_token(&api);
        create_version(&api, "bento", "svc", "b1", bento_manifest(&[]), json!([])).await;
        let read = app.with_token(&read);
        assert_eq!(
            read.get("/api/v1/bento_repositories/svc/bentos/b1").await.0,
            StatusCode::OK
        );
        let (s, b) = read
            .post("/api/v1/bento_repositories", json!({"name": "x"}))
            .await;
        assert_error(s, &b, StatusCode::FORBIDDEN);
        let (s, b) = read
            .patch(
                "/api/v1/bento_repositories/svc/bentos/b1/start_upload",
                json!({}),
            )
            .await;
        assert_error(s, &b, StatusCode::FORBIDDEN);
        let (s, b) = app.with_token(&cluster).get("/api/v1/bentos").await;
        assert_error(s, &b, StatusCode::FORBIDDEN);
        // A guest reads but cannot push, even with the api scope.
        admin.post("/api/v1/users", json!({"name": "guest", "email": "g@example.com", "password": "guest-password", "role": "guest"})).await;
        let guest = app.browser();
        guest.login("guest", "guest-password").await;
        let (_, gtoken) = guest.create_token("g", &["api"]).await;
        let guest = app.with_token(&gtoken);
        assert_eq!(guest.get("/api/v1/bentos").await.0, StatusCode::OK);
        let (s, b) = guest
            .post(
                "/api/v1/bento_repositories/svc/bentos",
                json!({"version": "g1", "manifest": {}}),
            )
            .await;
        assert_error(s, &b, StatusCode::FORBIDDEN);
        // Another organization sees none of it.
        admin.post("/api/v1/orgs", json!({"name": "other"})).await;
        let (_, other) = admin.in_org("other").create_token("o", &["api"]).await;
        let other = app.with_token(&other);
        let (s, b) = other.get("/api/v1/bento_repositories/svc").await;
        assert_error(s, &b, StatusCode::NOT_FOUND);
        assert_eq!(other.get("/api/v1/bentos").await.1["total"], 0);
        let (s, _, _) = download(&other, "bento", "svc", "b1", &[]).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
);

/// Two clients push one version through presigned URLs: while the first upload runs the second
/// is told at once that it lost; once the first finished, a re-push replaces it.
async fn concurrent_presigned_pushes(app: TestApp) {
    let c = api_client(&app).await;
    let a = tar_archive(&[("./a", &[b'a'; 4000])]);
    let b = tar_archive(&[("./b", &[b'b'; 5000])]);
    create_version(&c, "bento", "race", "v1", bento_manifest(&[]), json!([])).await;
    let path = version_path("bento", "race", "v1");
    let (s, v) = c
        .patch(&format!("{path}/presign_upload_url"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let url_a = v["presigned_upload_url"].as_str().unwrap().to_string();
    let (s, v) = c
        .patch(&format!("{path}/presign_upload_url"), json!({}))
        .await;
    assert_error(s, &v, StatusCode::CONFLICT);
    assert!(v["message"].as_str().unwrap().contains("lost"), "{v}");
    assert_eq!(
        put_raw(&c, &url_a, a.clone(), false).await.0,
        StatusCode::OK
    );
    let finish = json!({"status": "success", "reason": ""});
    let (s, v) = c
        .patch(&format!("{path}/finish_upload"), finish.clone())
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = c
        .patch(&format!("{path}/finish_upload"), finish.clone())
        .await;
    assert_eq!(s, StatusCode::OK, "finishing twice is harmless: {v}");
    assert_eq!(download(&c, "bento", "race", "v1", &[]).await.2, a);

    // A re-push after the first one finished replaces its archive.
    let (s, v) = c
        .patch(&format!("{path}/presign_upload_url"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let url_b = v["presigned_upload_url"].as_str().unwrap().to_string();
    assert_ne!(url_a, url_b, "each upload gets its own object");
    assert_eq!(
        put_raw(&c, &url_b, b.clone(), false).await.0,
        StatusCode::OK
    );
    let (s, v) = c.patch(&format!("{path}/finish_upload"), finish).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["upload_status"], "success");
    assert_eq!(download(&c, "bento", "race", "v1", &[]).await.2, b);
    yatai_service::registry::janitor::sweep(&app.state)
        .await
        .unwrap();
    let keys = object_keys(&app, "bentos").await;
    assert_eq!(keys.len(), 1, "the replaced archive is removed: {keys:?}");
}

mod concurrent_presigned {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_and_local_directory() {
        concurrent_presigned_pushes(presigned_app(common::Backend::Embedded).await).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_and_s3() {
        concurrent_presigned_pushes(presigned_app(common::Backend::Production).await).await;
    }
}

backend_test!(
    repository_lists_carry_each_repositorys_own_latest_version,
    |app: TestApp| async move {
        let c = api_client(&app).await;
        // (repository, version, build_at, labels), in the order they are created: the newest
        // build is not always the last created, and beta's two versions share one build time
        // (the later created is the newer).
        let versions = [
            (
                "alpha",
                "a1",
                "2026-11-20 10:00:00.000000",
                json!([{"key": "stage", "value": "prod"}, {"key": "team", "value": "x"}]),
            ),
            ("alpha", "a2", "2026-11-22 10:00:00.000000", json!([])),
            (
                "alpha",
                "a3",
                "2026-11-21 10:00:00.000000",
                json!([{"key": "team", "value": "y"}]),
            ),
            ("beta", "b1", "2026-11-19 10:00:00.000000", json!([])),
            ("beta", "b2", "2026-11-19 10:00:00.000000", json!([])),
            (
                "gamma",
                "g1",
                "2026-11-18 10:00:00.000000",
                json!([{"key": "stage", "value": "prod"}, {"key": "team", "value": "y"}]),
            ),
        ];
        for name in ["alpha", "beta", "gamma", "empty"] {
            let (s, b) = c
                .post("/api/v1/bento_repositories", json!({"name": name}))
                .await;
            assert_eq!(s, StatusCode::OK, "{b}");
        }
        for (repo, version, build_at, labels) in &versions {
            let (s, b) = c
                .post(
                    &format!("/api/v1/bento_repositories/{repo}/bentos"),
                    json!({"version": version, "manifest": bento_manifest(&[]), "build_at": build_at, "labels": labels}),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{b}");
        }
        let latest = |list: &Value| -> Vec<(String, Value, Value)> {
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["name"].as_str().unwrap().to_string(),
                        r["latest_bento"]["version"].clone(),
                        r["n_bentos"].clone(),
                    )
                })
                .collect()
        };
        let (s, list) = c.get("/api/v1/bento_repositories?q=sort:name-asc").await;
        assert_eq!(s, StatusCode::OK, "{list}");
        assert_eq!(list["total"], 4);
        assert_eq!(
            latest(&list),
            [
                ("alpha".to_string(), json!("a2"), json!(3)),
                ("beta".to_string(), json!("b2"), json!(2)),
                ("empty".to_string(), Value::Null, json!(0)),
                ("gamma".to_string(), json!("g1"), json!(1)),
            ]
        );
        assert_eq!(list["items"][0]["latest_bento"]["labels"], json!([]));
        assert_eq!(list["items"][3]["latest_bento"]["creator"]["name"], "admin");
        // A page in the middle has the same latest versions.
        let (_, page) = c
            .get("/api/v1/bento_repositories?q=sort:name-asc&start=1&count=2")
            .await;
        assert_eq!(page["total"], 4);
        assert_eq!(
            latest(&page),
            [
                ("beta".to_string(), json!("b2"), json!(2)),
                ("empty".to_string(), Value::Null, json!(0)),
            ]
        );
        // One repository read alone agrees with the list.
        let (_, one) = c.get("/api/v1/bento_repositories/alpha").await;
        assert_eq!(one["latest_bento"]["version"], "a2");
        assert_eq!(one["n_bentos"], 3);

        // Label filters on repositories: some version carries every label. alpha has
        // stage=prod (a1) and team=y (a3), but on two versions.
        let names = |list: &Value| -> Vec<String> {
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap().to_string())
                .collect()
        };
        let (_, prod) = c
            .get("/api/v1/bento_repositories?q=label:stage=prod%20sort:name-asc")
            .await;
        assert_eq!(prod["total"], 2);
        assert_eq!(names(&prod), ["alpha", "gamma"]);
        let (_, both) = c
            .get("/api/v1/bento_repositories?q=label:stage=prod%20label:team=y")
            .await;
        assert_eq!(both["total"], 1);
        assert_eq!(names(&both), ["gamma"]);
        assert_eq!(both["items"][0]["latest_bento"]["version"], "g1");

        // Organization-wide version lists in each order, and filtered by labels.
        let order = |list: &Value| -> Vec<String> {
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["version"].as_str().unwrap().to_string())
                .collect()
        };
        let (_, newest) = c.get("/api/v1/bentos").await;
        assert_eq!(newest["total"], 6);
        assert_eq!(order(&newest), ["a2", "a3", "a1", "b2", "b1", "g1"]);
        let (_, oldest) = c.get("/api/v1/bentos?q=sort:created_at-asc").await;
        assert_eq!(order(&oldest), ["g1", "b1", "b2", "a1", "a3", "a2"]);
        let (_, by_name) = c.get("/api/v1/bentos?q=sort:name-asc").await;
        assert_eq!(order(&by_name), ["a2", "a3", "a1", "b2", "b1", "g1"]);
        let (_, second_page) = c.get("/api/v1/bentos?start=2&count=3").await;
        assert_eq!(second_page["total"], 6);
        assert_eq!(order(&second_page), ["a1", "b2", "b1"]);
        let (_, labelled) = c.get("/api/v1/bentos?q=label:stage=prod").await;
        assert_eq!(labelled["total"], 2);
        assert_eq!(order(&labelled), ["a1", "g1"]);
        // A label's page is read from the index of labelled versions, in either order and cut
        // like the whole list.
        let (_, labelled_oldest) = c
            .get("/api/v1/bentos?q=label:stage=prod%20sort:created_at-asc")
            .await;
        assert_eq!(order(&labelled_oldest), ["g1", "a1"]);
        for (start, expected) in [(0, "a1"), (1, "g1")] {
            let (_, one) = c
                .get(&format!(
                    "/api/v1/bentos?q=label:stage=prod&start={start}&count=1"
                ))
                .await;
            assert_eq!(one["total"], 2, "{one}");
            assert_eq!(order(&one), [expected], "{one}");
        }
        let (_, labelled_by_name) = c
            .get("/api/v1/bentos?q=label:stage=prod%20sort:name-asc")
            .await;
        assert_eq!(order(&labelled_by_name), ["a1", "g1"]);
        let (_, two_labels) = c
            .get("/api/v1/bentos?q=label:stage=prod%20label:team=y")
            .await;
        assert_eq!(two_labels["total"], 1);
        assert_eq!(order(&two_labels), ["g1"]);
        let (_, in_repo) = c
            .get("/api/v1/bento_repositories/alpha/bentos?q=label:team=y")
            .await;
        assert_eq!(in_repo["total"], 1);
        assert_eq!(order(&in_repo), ["a3"]);
        let (_, searched) = c.get("/api/v1/bentos?search=et").await;
        assert_eq!(searched["total"], 2, "beta's two versions match by name");
        assert_eq!(order(&searched), ["b2", "b1"]);
        let (_, by_version) = c.get("/api/v1/bentos?search=2").await;
        assert_eq!(by_version["total"], 2, "two versions match by version");
        assert_eq!(order(&by_version), ["a2", "b2"]);
        // A search is a substring: its `%` and `_` are taken literally (as a pattern, each would
        // match every version and every repository).
        for needle in ["%25", "_"] {
            for list in ["bentos", "bento_repositories"] {
                let (_, none) = c.get(&format!("/api/v1/{list}?search={needle}")).await;
                assert_eq!(none["total"], 0, "{list}, search {needle:?}: {none}");
            }
        }
    }
);

// Pages are cut in the database's order (its collation), and each page lists its rows in that
// same order: on PostgreSQL the names are given an ICU collation, under which `_`, `-`, `.` and
// digits sort otherwise than by bytes; on SQLite they sort by bytes. Read page by page, the list
// is the whole list, in the order the database itself gives.
backend_test!(
    pages_follow_the_order_of_the_database,
    |app: TestApp| async move {
        let c = api_client(&app).await;
        let pool = app.state.db.pool();
        if app.backend == common::Backend::Production {
            sqlx::query(
                "ALTER TABLE repositories ALTER COLUMN name TYPE TEXT COLLATE \"und-x-icu\"",
            )
            .execute(pool)
            .await
            .expect("an ICU collation (PostgreSQL built with ICU, as Debian's is)");
            sqlx::query(
                "ALTER TABLE labels ALTER COLUMN label_key TYPE TEXT COLLATE \"und-x-icu\"",
            )
            .execute(pool)
            .await
            .expect("an ICU collation");
        }
        let names = ["iris_clf", "iris-svc", "iris.v2", "iris1", "Iris2"];
        for name in names {
            create_version(
                &c,
                "bento",
                &name.to_lowercase(),
                "v1",
                bento_manifest(&[]),
                json!([{"key": "team", "value": "a"}, {"key": "Stage", "value": "b"}, {"key": "app", "value": "c"}]),
            )
            .await;
        }
        let expected: Vec<String> =
            sqlx::query_scalar("SELECT name FROM repositories ORDER BY name")
                .fetch_all(pool)
                .await
                .unwrap();
        let expected_keys: Vec<String> = sqlx::query_scalar(
            "SELECT label_key FROM labels WHERE resource_uid = (SELECT MIN(resource_uid) FROM labels) ORDER BY label_key",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        for list in [
            "/api/v1/bento_repositories?q=sort:name-asc",
            "/api/v1/bentos?q=sort:name-asc",
        ] {
            let mut paged = Vec::new();
            for start in (0..names.len()).step_by(2) {
                let (s, page) = c.get(&format!("{list}&start={start}&count=2")).await;
                assert_eq!(s, StatusCode::OK, "{page}");
                for item in page["items"].as_array().unwrap() {
                    let name = item["repository"]["name"]
                        .as_str()
                        .or(item["name"].as_str())
                        .unwrap();
                    paged.push(name.to_string());
                    // A repository shows its newest version's labels.
                    let labels = match item.get("latest_bento") {
                        Some(latest) => &latest["labels"],
                        None => &item["labels"],
                    };
                    let keys: Vec<&str> = labels
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|l| l["key"].as_str().unwrap())
                        .collect();
                    assert_eq!(
                        keys, expected_keys,
                        "{list}: labels in the database's order"
                    );
                }
            }
            assert_eq!(
                paged, expected,
                "{list}: page by page, in the database's order"
            );
        }
        // Past the end: no rows, the total still counted.
        let (_, past) = c.get("/api/v1/bentos?start=1000&count=2").await;
        assert_eq!(past["total"], names.len());
        assert_eq!(past["items"], json!([]));
    }
);

/// The counts of versions per repository (`yatai_store::db::version_counts`), compared with the
/// versions themselves, and the label counts with the labels: every repository with versions
/// has its numbers, and no row is off. Returns how many label counts there are.
async fn counts_match(app: &TestApp, after: &str) -> usize {
    let pool = app.state.db.pool();
    let kept: Vec<(String, i64)> = sqlx::query_as(&format!(
        "SELECT repository_uid, n FROM {} WHERE n <> 0 ORDER BY repository_uid",
        yatai_store::db::counts::VERSIONS
    ))
    .fetch_all(pool)
    .await
    .unwrap();
    let counted: Vec<(String, i64)> = sqlx::query_as(
        "SELECT repository_uid, COUNT(*) FROM versions GROUP BY repository_uid ORDER BY repository_uid",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(kept, counted, "version counts after {after}");
    let kept: Vec<(String, String, String, i64)> = sqlx::query_as(&format!(
        "SELECT repository_uid, label_key, label_value, n FROM {} WHERE n <> 0 ORDER BY 1, 2, 3",
        yatai_store::db::counts::LABELS
    ))
    .fetch_all(pool)
    .await
    .unwrap();
    let counted: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT v.repository_uid, l.label_key, l.label_value, COUNT(*) FROM labels l \
         JOIN versions v ON v.uid = l.resource_uid GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(kept, counted, "label counts after {after}");
    let n = counted.len();
    type Labelled = (String, String, String, String, i64, i64, String);
    let kept: Vec<Labelled> = sqlx::query_as(&format!(
        "SELECT organization_uid, kind, label_key, label_value, build_at, created_at, version_uid FROM {} \
         ORDER BY version_uid, label_key",
        yatai_store::db::counts::LABELLED
    ))
    .fetch_all(pool)
    .await
    .unwrap();
    let labelled: Vec<Labelled> = sqlx::query_as(
        "SELECT r.organization_uid, r.kind, l.label_key, l.label_value, v.build_at, v.created_at, v.uid \
         FROM labels l JOIN versions v ON v.uid = l.resource_uid JOIN repositories r ON r.uid = v.repository_uid \
         ORDER BY v.uid, l.label_key",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(kept, labelled, "labelled versions after {after}");
    // The trigrams of each version string, cut here.
    let versions: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT r.organization_uid, r.kind, v.version, v.uid FROM versions v JOIN repositories r ON r.uid = v.repository_uid",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut expected = std::collections::BTreeSet::new();
    for (org, kind, version, uid) in versions {
        let chars: Vec<char> = version.to_lowercase().chars().collect();
        for w in chars.windows(3).take(256) {
            expected.insert((
                org.clone(),
                kind.clone(),
                w.iter().collect::<String>(),
                uid.clone(),
            ));
        }
        if chars.len() > 256 {
            expected.insert((org.clone(), kind.clone(), String::new(), uid.clone()));
        }
    }
    let kept: Vec<(String, String, String, String)> = sqlx::query_as(&format!(
        "SELECT organization_uid, kind, trigram, version_uid FROM {}",
        yatai_store::db::counts::TRIGRAMS
    ))
    .fetch_all(pool)
    .await
    .unwrap();
    let kept: std::collections::BTreeSet<_> = kept.into_iter().collect();
    assert_eq!(kept, expected, "trigrams after {after}");
    n
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().unwrap()
}

/// Runs a statement straight on the database.
async fn run(pool: &sqlx::AnyPool, sql: &str) {
    sqlx::query(sql).execute(pool).await.unwrap();
}

backend_test!(
    version_counts_follow_every_write,
    |app: TestApp| async move {
        let c = api_client(&app).await;
        for (repo, n) in [("iris", 3), ("fraud", 2)] {
            for i in 0..n {
                let stage = if i == 0 { "prod" } else { "dev" };
                let labels =
                    json!([{"key": "stage", "value": stage}, {"key": "team", "value": repo}]);
                create_version(
                    &c,
                    "bento",
                    repo,
                    &format!("v{i}"),
                    bento_manifest(&[]),
                    labels,
                )
                .await;
            }
        }
        create_version(
            &c,
            "model",
            "clf",
            "m1",
            model_manifest(10),
            json!([{"key": "stage", "value": "prod"}]),
        )
        .await;
        assert_eq!(
            counts_match(&app, "pushes").await,
            7,
            "per bento repository stage=prod, stage=dev and team; the model's stage"
        );
        let (_, prod) = c
            .get("/api/v1/bentos?start=0&count=1&q=label:stage=prod")
            .await;
        assert_eq!(prod["total"], 2, "one label: the sum of its counts: {prod}");
        let (_, both) = c
            .get("/api/v1/bentos?start=0&count=1&q=label:stage=prod%20label:team=iris")
            .await;
        assert_eq!(both["total"], 1, "two labels: counted: {both}");
        // The page of a label holds the versions of the list's kind only (the model carries it
        // too), each once.
        let (_, prod) = c.get("/api/v1/bentos?q=label:stage=prod").await;
        let versions: Vec<(&Value, &Value)> = items(&prod)
            .iter()
            .map(|v| (&v["repository"]["name"], &v["version"]))
            .collect();
        assert_eq!(
            versions,
            [
                (&json!("fraud"), &json!("v0")),
                (&json!("iris"), &json!("v0"))
            ],
            "{prod}"
        );
        let (_, models) = c.get("/api/v1/models?q=label:stage=prod").await;
        assert_eq!(models["total"], 1, "{models}");
        assert_eq!(items(&models)[0]["version"], "m1", "{models}");
        let (_, repos) = c.get("/api/v1/bento_repositories?q=label:team=fraud").await;
        assert_eq!(repos["total"], 1, "{repos}");
        assert_eq!(repos["items"][0]["name"], "fraud", "{repos}");

        // A label changed through the API: the old pair is no longer counted.
        let (s, b) = c
            .patch(
                &version_path("bento", "iris", "v1"),
                json!({"labels": [{"key": "stage", "value": "prod"}]}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        counts_match(&app, "a change of labels").await;
        let (_, prod) = c
            .get("/api/v1/bentos?start=0&count=1&q=label:stage=prod")
            .await;
        assert_eq!(prod["total"], 3, "{prod}");
        let (_, list) = c.get("/api/v1/bentos?start=0&count=1").await;
        assert_eq!(
            list["total"], 5,
            "the total is the sum of the counts: {list}"
        );
        let (_, one) = c
            .get("/api/v1/bento_repositories/iris/bentos?start=0&count=1")
            .await;
        assert_eq!(one["total"], 3, "{one}");
        let (_, repos) = c.get("/api/v1/bento_repositories?q=sort:name-asc").await;
        let n: Vec<&Value> = items(&repos).iter().map(|r| &r["n_bentos"]).collect();
        assert_eq!(n, [&json!(2), &json!(3)], "{repos}");

        let (s, b) = c.delete(&version_path("bento", "iris", "v0"), None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        counts_match(&app, "a version's deletion").await;
        let (_, list) = c.get("/api/v1/bentos?start=0&count=1").await;
        assert_eq!(list["total"], 4, "{list}");

        // Writes the server never makes, an operator or a restore may: statements of many
        // rows in several repositories (PostgreSQL counts them per statement), a version moved,
        // a repository deleted with its versions.
        let pool = app.state.db.pool();
        let fraud: String = sqlx::query_scalar("SELECT uid FROM repositories WHERE name = 'fraud'")
            .fetch_one(pool)
            .await
            .unwrap();
        run(pool, "CREATE TABLE kept_versions AS SELECT * FROM versions").await;
        run(pool, "DELETE FROM versions").await;
        counts_match(&app, "deleting every version in one statement").await;
        run(pool, "INSERT INTO versions SELECT * FROM kept_versions").await;
        counts_match(&app, "inserting them again in one statement").await;
        sqlx::query("UPDATE versions SET repository_uid = $1 WHERE version = 'v2'")
            .bind(&fraud)
            .execute(pool)
            .await
            .unwrap();
        counts_match(&app, "moving a version").await;
        run(
            pool,
            "UPDATE labels SET label_value = 'qa' WHERE label_value = 'dev'",
        )
        .await;
        counts_match(&app, "labels changed in one statement").await;
        run(pool, "DELETE FROM labels WHERE label_key = 'team'").await;
        counts_match(&app, "labels deleted in one statement").await;
        let (_, repos) = c.get("/api/v1/bento_repositories?q=sort:name-asc").await;
        let n: Vec<&Value> = items(&repos).iter().map(|r| &r["n_bentos"]).collect();
        assert_eq!(n, [&json!(3), &json!(1)], "{repos}");
        sqlx::query("DELETE FROM repositories WHERE uid = $1")
            .bind(&fraud)
            .execute(pool)
            .await
            .unwrap();
        counts_match(&app, "a repository's deletion with its versions").await;
        let (_, list) = c.get("/api/v1/bentos?start=0&count=1").await;
        assert_eq!(list["total"], 1, "{list}");

        // Counts gone wrong with a trigger missing (written by something that had none) are
        // made again at the next start.
        let drop = match app.backend {
            common::Backend::Embedded => "DROP TRIGGER _yatai_counts_version_insert",
            common::Backend::Production => "DROP TRIGGER _yatai_counts_version_insert ON versions",
        };
        run(pool, drop).await;
        run(
            pool,
            "INSERT INTO versions SELECT * FROM kept_versions WHERE version = 'v2'",
        )
        .await;
        run(
            pool,
            &format!("UPDATE {} SET n = 99", yatai_store::db::counts::VERSIONS),
        )
        .await;
        let app = app.restart().await;
        counts_match(&app, "a start with a trigger missing").await;
        let (_, list) = c.get("/api/v1/bentos?start=0&count=1").await;
        assert_eq!(list["total"], 2, "{list}");
    }
);

// A search's total is made from the counts (repositories whose name matches) and from the
// trigrams of version strings (versions of the other repositories), not by reading every
// version. Compared here, for searches of every kind, with the plain statement that reads every
// version (the engine's own LIKE, case-sensitive on both), and page by page with the same
// statement's order.
backend_test!(
    search_totals_agree_with_reading_every_version,
    |app: TestApp| async move {
        let c = api_client(&app).await;
        let versions = [
            ("alpha", "build-100"),
            ("alpha", "build-200"),
            ("alpha", "Rc1-aaaaa"),
            ("builder", "x1"),
            ("builder", "build-300"),
            ("gamma", "v1"),
            ("gamma", "r_2.x"),
            ("rebuild", "p1"),
            ("rebuild", "p2"),
        ];
        for (repo, version) in versions {
            create_version(&c, "bento", repo, version, bento_manifest(&[]), json!([])).await;
        }
        // A model named like a bento's version: never counted in the bento lists.
        create_version(
            &c,
            "model",
            "build",
            "build-100",
            model_manifest(1),
            json!([]),
        )
        .await;
        let pool = app.state.db.pool();
        // A version string an import could bring, longer than what its trigrams are kept for.
        let long = format!("{}needle", "z".repeat(300));
        sqlx::query("UPDATE versions SET version = $1 WHERE version = 'v1' AND kind = 'bento'")
            .bind(&long)
            .execute(pool)
            .await
            .unwrap();
        let naive = |needle: &str| {
            let pattern = format!("%{}%", yatai_store::db::query::escape_like(needle));
            async move {
                let rows: Vec<(String,)> = sqlx::query_as(
                    "SELECT v.version FROM versions v JOIN repositories r ON r.uid = v.repository_uid \
                     WHERE r.kind = 'bento' AND (r.name LIKE $1 ESCAPE '\\' OR v.version LIKE $1 ESCAPE '\\') \
                     ORDER BY v.build_at DESC, v.created_at DESC, v.uid DESC",
                )
                .bind(pattern)
                .fetch_all(pool)
                .await
                .unwrap();
                rows.into_iter().map(|(v,)| v).collect::<Vec<String>>()
            }
        };
        let mut matched = 0;
        for needle in [
            "build",
            "uild-2",
            "BUILD",
            "rc1",
            "aaa",
            "ui",
            "1",
            "ld-",
            "%",
            "_2.",
            "r%2",
            "eta",
            "amm",
            "zzz",
            "needle",
            "zneed",
            "x",
            "build-100",
            "no-such-thing",
        ] {
            let expected = naive(needle).await;
            matched += expected.len();
            // Pages of one: a page is gathered from the matches or read in order depending on
            // matches^2 against 2 x (start + count) x all, so "build" (6 of 9 bentos) reads
            // its first page in order and the next ones gathered.
            search_page_by_page(&c, needle, &expected, 1).await;
        }
        assert!(matched > 20, "the searches match something: {matched}");
        // Case counts, on both engines alike (as in Yatai 1.x; SQLite's LIKE ignored it).
        for (list, needle, total) in [
            ("bentos", "Rc1", 1),
            ("bentos", "rc1", 0),
            ("bentos", "BUILD", 0),
            ("bento_repositories", "alpha", 1),
            ("bento_repositories", "ALPHA", 0),
        ] {
            let (_, found) = c.get(&format!("/api/v1/{list}?search={needle}")).await;
            assert_eq!(found["total"], total, "{list}, search {needle:?}: {found}");
        }
        // A start far past the total reads nothing and overflows nothing.
        let (s, far) = c
            .get("/api/v1/bentos?search=build&start=4611686018427387904&count=1")
            .await;
        assert_eq!(s, StatusCode::OK, "{far}");
        assert_eq!(far["total"], 6, "{far}");
        assert_eq!(far["items"], json!([]), "{far}");
        // 512 versions whose strings share common trigrams (each carried by more than the 500 a
        // search counts to): a needle of those only is counted by reading every version, one
        // with a rarer trigram still from the trigrams. Pages of 100 of each, and a far one.
        let gamma: String = sqlx::query_scalar("SELECT uid FROM repositories WHERE name = 'gamma'")
            .fetch_one(pool)
            .await
            .unwrap();
        for side in ["a", "b"] {
            sqlx::query(&format!(
                "INSERT INTO versions (uid, repository_uid, kind, version, manifest, build_at, upload_status, created_at) \
                 SELECT 'bulk-{side}' || p.i, $1, 'bento', 'common-{side}' || p.i, '{{}}', p.i, 'pending', p.i \
                 FROM {} p",
                yatai_store::db::counts::POSITIONS
            ))
            .bind(&gamma)
            .execute(pool)
            .await
            .unwrap();
        }
        let mut matched = 0;
        for needle in ["common-", "ommon-b25", "mon-a1", "MMON-A2", "on-"] {
            let expected = naive(needle).await;
            matched += expected.len();
            search_page_by_page(&c, needle, &expected, 100).await;
        }
        assert!(matched > 1000, "the searches match the bulk: {matched}");
        counts_match(&app, "versions written in bulk").await;
        sqlx::query("DELETE FROM versions WHERE uid LIKE 'bulk-%'")
            .execute(pool)
            .await
            .unwrap();
        // The trigrams follow a version renamed, moved and deleted.
        sqlx::query("UPDATE versions SET version = 'moved-9' WHERE version = 'build-200'")
            .execute(pool)
            .await
            .unwrap();
        let (_, renamed) = c.get("/api/v1/bentos?search=ved-9").await;
        assert_eq!(renamed["total"], 1, "{renamed}");
        let (_, gone) = c.get("/api/v1/bentos?search=ild-20").await;
        assert_eq!(gone["total"], 0, "{gone}");
        counts_match(&app, "a version renamed").await;
        let (s, b) = c
            .delete(&version_path("bento", "alpha", "moved-9"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (_, deleted) = c.get("/api/v1/bentos?search=ved-9").await;
        assert_eq!(deleted["total"], 0, "{deleted}");
        counts_match(&app, "a version deleted").await;
    }
);

// A search's page read in list order walks the versions of every organization (on PostgreSQL
// each is checked against the organization's repositories, not joined to its own) and keeps
// its organization's only, whichever way the page is read.
backend_test!(
    a_search_shows_only_its_own_organization,
    |app: TestApp| async move {
        let admin = app.setup_admin().await;
        let scopes = ["api", "read_organization", "write_organization"];
        let (_, mine) = admin.create_token("mine", &scopes).await;
        let (s, b) = admin.post("/api/v1/orgs", json!({"name": "other"})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (_, theirs) = admin.in_org("other").create_token("theirs", &scopes).await;
        let (mine, theirs) = (app.with_token(&mine), app.with_token(&theirs));
        // Written in turns, so that each organization's versions lie between the other's.
        for i in 0..4 {
            for (c, repo, version) in [
                (&theirs, "build-svc", format!("build-t{i}")),
                (&mine, "svc", format!("build-m{i}")),
                (&theirs, "other-svc", format!("build-u{i}")),
            ] {
                create_version(c, "bento", repo, &version, bento_manifest(&[]), json!([])).await;
            }
        }
        // A model of the same name and version string: never in a bento list.
        create_version(
            &mine,
            "model",
            "svc",
            "build-m9",
            model_manifest(1),
            json!([]),
        )
        .await;
        let newest_first = |prefix: &str| -> Vec<String> {
            (0..4).rev().map(|i| format!("{prefix}{i}")).collect()
        };
        let both: Vec<String> = (0..4)
            .rev()
            .flat_map(|i| [format!("build-u{i}"), format!("build-t{i}")])
            .collect();
        // Pages of one are read in order (4 matches of 4 against 2 x 1 x 4), larger ones
        // gathered: both ways.
        for count in [1, 2, 10] {
            search_page_by_page(&mine, "build", &newest_first("build-m"), count).await;
            search_page_by_page(&mine, "svc", &newest_first("build-m"), count).await;
            search_page_by_page(&theirs, "build", &both, count).await;
            search_page_by_page(&theirs, "svc", &both, count).await;
            search_page_by_page(&theirs, "build-m", &[], count).await;
        }
        // Oldest first, a page of one read in order and a page of ten gathered.
        for (count, expected) in [
            (1, &["build-m0"][..]),
            (10, &["build-m0", "build-m1", "build-m2", "build-m3"][..]),
        ] {
            let (s, page) = mine
                .get(&format!(
                    "/api/v1/bentos?search=build&q=sort:created_at-asc&start=0&count={count}"
                ))
                .await;
            assert_eq!(s, StatusCode::OK, "{page}");
            assert_eq!(page["total"], 4, "{page}");
            let versions: Vec<&str> = items(&page)
                .iter()
                .map(|v| v["version"].as_str().unwrap())
                .collect();
            assert_eq!(versions, expected, "oldest first, pages of {count}");
        }
    }
);

/// Reads the bento list searched for `needle` in pages of `count`, and checks each page's total
/// and the pages, end to end, against `expected` (the versions, in list order).
async fn search_page_by_page(c: &common::Client, needle: &str, expected: &[String], count: usize) {
    let q = urlencoding(needle);
    let mut paged = Vec::new();
    for start in (0..expected.len().max(1)).step_by(count) {
        let (s, page) = c
            .get(&format!(
                "/api/v1/bentos?search={q}&start={start}&count={count}"
            ))
            .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert_eq!(page["total"], expected.len(), "search {needle:?}: {page}");
        for item in items(&page) {
            paged.push(item["version"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(paged, expected, "search {needle:?}, page by page");
}

/// `needle` for a query string.
fn urlencoding(needle: &str) -> String {
    needle
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// A listed version is what its own read shows, field for field: PostgreSQL sends a page's
// versions as rows after a head row (its total and related rows), SQLite as one JSON array,
// and a manifest's every character (quotes, backslashes, line breaks, other scripts) comes
// back as written either way. An empty list and a page past the end have their total.
backend_test!(
    a_listed_version_is_what_its_own_read_shows,
    |app: TestApp| async move {
        let admin = app.setup_admin().await;
        for path in [
            "/api/v1/bentos?start=0&count=20",
            "/api/v1/bento_repositories?start=0&count=20",
        ] {
            let (s, empty) = admin.get(path).await;
            assert_eq!(s, StatusCode::OK, "{empty}");
            assert_eq!(
                (&empty["total"], items(&empty).len()),
                (&json!(0), 0),
                "{path}: {empty}"
            );
        }
        let mut manifest = bento_manifest(&[]);
        manifest["odd"] = json!("\"quoted\" back\\slash \u{1F600} ünïcödé\nnew line\ttab \u{0001}");
        manifest["nested"] = json!({"a": [1, 2.5, null, true, {"b": "c"}], "": ""});
        for (repo, version) in [("svc-a", "v1"), ("svc-b", "v2"), ("svc-a", "v3")] {
            let labels = json!([{"key": "stage", "value": format!("s-{version}")}]);
            create_version(&admin, "bento", repo, version, manifest.clone(), labels).await;
        }
        // One uploaded, so that its archive's columns are set (they are null on the others).
        let archive = tar_archive(&[("bento.yaml", b"name: svc\n")]);
        let (s, b) = proxy_upload(&admin, "bento", "svc-a", "v3", archive).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, page) = admin.get("/api/v1/bentos?start=0&count=20").await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert_eq!(page["total"], 3, "{page}");
        let listed: Vec<&str> = items(&page)
            .iter()
            .map(|v| v["version"].as_str().unwrap())
            .collect();
        assert_eq!(listed, ["v3", "v2", "v1"], "newest first");
        assert_eq!(items(&page)[0]["upload_status"], "success", "{page}");
        assert!(items(&page)[0]["archive_sha256"].is_string(), "{page}");
        for item in items(&page) {
            let repo = item["repository"]["name"].as_str().unwrap();
            let version = item["version"].as_str().unwrap();
            let (s, one) = admin.get(&version_path("bento", repo, version)).await;
            assert_eq!(s, StatusCode::OK, "{one}");
            assert_eq!(
                item["manifest"], manifest,
                "{version}: the manifest as written"
            );
            assert_eq!(item["labels"][0]["value"], format!("s-{version}"), "{item}");
            // Field for field as its own read, but what a get adds (the transfer it offers, the
            // models) and the repository (embedded whole in a get, as a shell in a list).
            let (mut listed, mut read) = (item.clone(), one.clone());
            for v in [&mut listed, &mut read] {
                let fields = v.as_object_mut().unwrap();
                for field in ["transmission_strategy", "models", "repository"] {
                    fields.remove(field);
                }
            }
            assert_eq!(listed, read, "{version}: listed and read");
            assert_eq!(
                item["repository"]["name"], one["repository"]["name"],
                "{version}"
            );
        }
        // The repositories' newest versions, read beside them the same way.
        let (s, repos) = admin
            .get("/api/v1/bento_repositories?start=0&count=20")
            .await;
        assert_eq!(s, StatusCode::OK, "{repos}");
        assert_eq!(repos["total"], 2, "{repos}");
        for (repo, newest, n) in [("svc-a", "v3", 2), ("svc-b", "v2", 1)] {
            let r = items(&repos).iter().find(|r| r["name"] == repo).unwrap();
            assert_eq!(r["latest_bento"]["version"], newest, "{r}");
            assert_eq!(
                r["latest_bento"]["manifest"], manifest,
                "{repo}: the newest version's manifest"
            );
            assert_eq!(r["n_bentos"], n, "{r}");
        }
        // A page past the end: no rows, the total still read.
        for path in [
            "/api/v1/bentos?start=10&count=20",
            "/api/v1/bento_repositories?start=10&count=20",
        ] {
            let (s, past) = admin.get(path).await;
            assert_eq!(s, StatusCode::OK, "{past}");
            assert!(items(&past).is_empty(), "{path}: {past}");
        }
        let (_, past) = admin.get("/api/v1/bentos?start=10&count=20").await;
        assert_eq!(past["total"], 3, "{past}");
        let (_, past) = admin
            .get("/api/v1/bento_repositories?start=10&count=20")
            .await;
        assert_eq!(past["total"], 2, "{past}");
    }
);

// A version is read by its tag in one statement; when it is not there, the answer still says
// whether the repository or only the version is missing (and a bento's repository is not a
// model's).
backend_test!(
    a_missing_version_and_a_missing_repository_are_told_apart,
    |app: TestApp| async move {
        let c = api_client(&app).await;
        create_version(&c, "bento", "iris", "v1", bento_manifest(&[]), json!([])).await;
        let message = |b: &serde_json::Value| b["message"].as_str().unwrap().to_string();
        let (s, b) = c.get(&version_path("bento", "iris", "v1")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, b) = c.get(&version_path("bento", "iris", "nope")).await;
        assert_error(s, &b, StatusCode::NOT_FOUND);
        assert_eq!(message(&b), "bento \"iris:nope\" not found");
        let (s, b) = c.get(&version_path("bento", "lily", "v1")).await;
        assert_error(s, &b, StatusCode::NOT_FOUND);
        assert_eq!(message(&b), "bento repository \"lily\" not found");
        let (s, b) = c.get(&version_path("model", "iris", "v1")).await;
        assert_error(s, &b, StatusCode::NOT_FOUND);
        assert_eq!(message(&b), "model repository \"iris\" not found");
    }
);
