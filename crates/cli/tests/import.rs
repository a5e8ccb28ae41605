//! `yatai import` through the binary: --help, a dry run that writes nothing, the import, and a
//! second run that finds everything there.

mod support;

use support::{expect_failure, expect_success, yatai};
use yatai_store::ObjectStorage;
use yatai_testkit::dump::dump_database;
use yatai_testkit::install::{archive, Installation};
use yatai_testkit::yatai1::{legacy_database, legacy_key, LEGACY_TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_from_yatai_1_through_the_binary() {
    let bytes = archive(9, 50_000);
    let url = legacy_database(&[("model", "iris_clf", "v1", &bytes)]).await;
    let s3 = yatai_testkit::fresh_s3_bucket().await;
    let bucket = ObjectStorage::open(&yatai_store::ObjectStorageConfig::S3(s3.clone()))
        .await
        .unwrap();
    bucket
        .put_stream(
            &legacy_key("model", "default", "iris_clf", "v1"),
            futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(bytes.clone()))]),
        )
        .await
        .unwrap();
    let target = Installation::embedded();
    let base = |cmd: &mut std::process::Command| {
        for (k, v) in target.env() {
            cmd.env(k, v);
        }
        cmd.arg("import")
            .args(["--from-yatai-postgres", &url])
            .args(["--from-yatai-s3-endpoint", &s3.endpoint])
            .args(["--from-yatai-s3-access-key", "testing"])
            .args(["--from-yatai-s3-secret-key", "testing"])
            .args(["--from-yatai-s3-bucket-name", &s3.bucket]);
    };
    let mut cmd = yatai();
    base(&mut cmd);
    let (out, _) = expect_success(cmd.arg("--dry-run"));
    assert!(
        out.contains("dry run, would import")
            && out.contains("users 2")
            && out.contains("1 archives"),
        "{out}"
    );
    assert!(
        dump_database(&target.database_url).await.is_empty(),
        "the dry run created nothing"
    );

    let mut cmd = yatai();
    base(&mut cmd);
    let (out, _) = expect_success(&mut cmd);
    assert!(
        out.starts_with("imported") && out.contains("versions 1"),
        "{out}"
    );
    let server = target.serve(yatai_server::app_of).await;
    assert_eq!(
        server
            .download(LEGACY_TOKEN, "model", "iris_clf", "v1")
            .await,
        Some(bytes)
    );
    server.stop().await;

    let mut cmd = yatai();
    base(&mut cmd);
    let (out, _) = expect_success(&mut cmd);
    assert!(out.contains("nothing new"), "{out}");

    let (err, _) = expect_failure(yatai().args([
        "import",
        "--from-yatai-postgres",
        "postgres://postgres:secret@127.0.0.1:1/yatai",
    ]));
    assert!(
        err.contains("Yatai 1.x database") && !err.contains("secret"),
        "{err}"
    );
}

#[test]
fn help_describes_import() {
    let (out, _) = expect_success(yatai().args(["import", "--help"]));
    for word in [
        "--from-yatai-postgres",
        "--from-yatai-s3-endpoint",
        "--from-yatai-s3-bucket-name",
        "--dry-run",
        "API tokens",
        "again",
    ] {
        assert!(out.contains(word), "{word} missing:\n{out}");
    }
}
