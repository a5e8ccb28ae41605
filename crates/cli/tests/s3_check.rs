//! `yatai s3 check` against the S3 test server and an S3 server of its own that checks
//! signatures: success, a missing bucket (and --create-bucket), wrong credentials, and
//! endpoints that cannot be reached (DNS, refused port, TLS to a plain HTTP server).

mod support;

use std::process::Command;

use support::{expect_failure, expect_success, yatai};
use yatai_store::{ObjectStorage, ObjectStorageConfig};
use yatai_testkit::{fresh_s3_bucket, s3_endpoint, unique, AuthS3Server};

fn s3_env(cmd: &mut Command, endpoint: &str, bucket: &str, key: &str, secret: &str) {
    cmd.args(["s3", "check"])
        .env("S3_ENDPOINT", endpoint)
        .env("S3_BUCKET_NAME", bucket)
        .env("S3_ACCESS_KEY", key)
        .env("S3_SECRET_KEY", secret);
}

#[tokio::test]
async fn succeeds_on_a_working_bucket_and_leaves_nothing_behind() {
    let s3 = fresh_s3_bucket().await;
    let mut cmd = yatai();
    s3_env(&mut cmd, &s3.endpoint, &s3.bucket, "testing", "testing");
    let (out, _) = expect_success(&mut cmd);
    for step in [
        "ok   TCP",
        "ok   HTTP",
        "ok   credentials",
        "ok   bucket",
        "ok   put",
        "ok   get",
        "ok   presigned GET",
        "ok   presigned PUT",
        "ok   delete",
    ] {
        assert!(out.contains(step), "{step} missing:\n{out}");
    }
    assert!(out.trim_end().ends_with("completed successfully"), "{out}");
    let storage = ObjectStorage::open(&ObjectStorageConfig::S3(s3))
        .await
        .unwrap();
    assert_eq!(
        storage.list_keys(None).await.unwrap(),
        Vec::<String>::new(),
        "the probe objects are removed"
    );
}

#[tokio::test]
async fn the_s3_settings_come_from_flags_and_the_config_file_as_for_serve() {
    let s3 = fresh_s3_bucket().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("yatai.toml");
    std::fs::write(
        &config,
        format!(
            "s3_endpoint = {:?}\ns3_access_key = \"testing\"\ns3_secret_key = \"testing\"\ns3_secure = false\n",
            s3.endpoint.trim_start_matches("http://")
        ),
    )
    .unwrap();
    let (out, _) = expect_success(
        yatai()
            .args(["s3", "check", "--config"])
            .arg(&config)
            .args(["--s3-bucket-name", &s3.bucket]),
    );
    assert!(out.contains("successfully"), "{out}");
}

#[tokio::test]
async fn a_missing_bucket_is_named_and_created_only_when_asked() {
    let bucket = format!("yatai-check-{}", unique());
    let mut cmd = yatai();
    s3_env(&mut cmd, &s3_endpoint(), &bucket, "testing", "testing");
    let (err, out) = expect_failure(&mut cmd);
    assert!(
        err.contains(&bucket) && err.contains("does not exist") && err.contains("--create-bucket"),
        "{err}"
    );
    assert!(
        out.contains("ok   credentials"),
        "the steps before are shown: {out}"
    );

    let mut cmd = yatai();
    s3_env(&mut cmd, &s3_endpoint(), &bucket, "testing", "testing");
    let (out, _) = expect_success(cmd.arg("--create-bucket"));
    assert!(
        out.contains(&format!("ok   bucket: created \"{bucket}\"")),
        "{out}"
    );
    assert!(out.contains("successfully"), "{out}");

    let mut cmd = yatai();
    s3_env(&mut cmd, &s3_endpoint(), &bucket, "testing", "testing");
    let (out, _) = expect_success(&mut cmd);
    assert!(out.contains("exists"), "the bucket is there now: {out}");
}

/// The shared test server (moto) accepts any credentials, so this starts a moto of its own,
/// creates an IAM user and switches moto's IAM authentication on: then a wrong secret and an
/// unknown access key are refused as by a real S3, and each is told apart.
#[tokio::test]
async fn wrong_secret_and_unknown_access_key_are_told_apart_by_a_server_that_checks_signatures() {
    let bucket = format!("yatai-auth-{}", unique());
    let server = AuthS3Server::start(&bucket).await;

    let mut cmd = yatai();
    s3_env(
        &mut cmd,
        &server.endpoint,
        &bucket,
        &server.access_key,
        "not-the-secret",
    );
    let (err, _) = expect_failure(&mut cmd);
    assert!(
        err.contains("secret key is wrong")
            && err.contains("SignatureDoesNotMatch")
            && err.contains("S3_SECRET_KEY"),
        "{err}"
    );

    let mut cmd = yatai();
    s3_env(
        &mut cmd,
        &server.endpoint,
        &bucket,
        "AKIAUNKNOWNKEY000000",
        "whatever",
    );
    let (err, _) = expect_failure(&mut cmd);
    assert!(
        err.contains("does not know the access key") && err.contains("S3_ACCESS_KEY"),
        "{err}"
    );

    // The right credentials pass the credential and bucket steps. (moto with authentication on
    // rejects the signature of object_store's listing request, which real S3 servers accept, so
    // the probe steps are checked against the shared server in the other tests.)
    let mut cmd = yatai();
    s3_env(
        &mut cmd,
        &server.endpoint,
        &bucket,
        &server.access_key,
        &server.secret_key,
    );
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok   credentials"), "{stdout}");
    assert!(stdout.contains("ok   bucket"), "{stdout}");
}

#[test]
fn unreachable_endpoints_are_diagnosed_by_cause() {
    let refused = format!("127.0.0.1:{}", yatai_testkit::free_port());
    let mut cmd = yatai();
    s3_env(&mut cmd, &format!("http://{refused}"), "b", "k", "s");
    let (err, _) = expect_failure(&mut cmd);
    assert!(
        err.contains("TCP") && err.contains("connection refused"),
        "{err}"
    );

    let mut cmd = yatai();
    s3_env(&mut cmd, "http://no-such-host.invalid:9000", "b", "k", "s");
    let (err, _) = expect_failure(&mut cmd);
    assert!(
        err.contains("DNS") && err.contains("no-such-host.invalid"),
        "{err}"
    );

    // S3_SECURE defaults to true: https to a plain HTTP server fails the TLS handshake.
    let plain = s3_endpoint();
    let mut cmd = yatai();
    s3_env(&mut cmd, plain.trim_start_matches("http://"), "b", "k", "s");
    let (err, _) = expect_failure(&mut cmd);
    assert!(
        err.contains("TLS") && err.contains("S3_SECURE=false"),
        "{err}"
    );
}

#[test]
fn without_s3_settings_it_says_what_to_set() {
    let (err, _) = expect_failure(yatai().args(["s3", "check"]));
    assert!(err.contains("S3_ENDPOINT"), "{err}");
    let (err, _) = expect_failure(
        yatai()
            .args(["s3", "check", "--s3-endpoint", "http://127.0.0.1:1"])
            .env("S3_ACCESS_KEY", "only-the-key"),
    );
    assert!(err.contains("S3_SECRET_KEY"), "{err}");
}

#[test]
fn help_describes_the_check_and_the_s3_settings() {
    let (out, _) = expect_success(yatai().args(["s3", "check", "--help"]));
    for word in [
        "--create-bucket",
        "S3_ENDPOINT",
        "S3_ACCESS_KEY",
        "S3_SECRET_KEY",
        "S3_REGION",
        "S3_SECURE",
        "S3_BUCKET_NAME",
        "successfully",
    ] {
        assert!(out.contains(word), "{word} missing:\n{out}");
    }
}
