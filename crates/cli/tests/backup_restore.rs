//! `yatai backup` and `yatai restore` through the binary: the storage settings of `serve`,
//! progress on stderr, a summary on stdout, and one `error:` line with exit code 1 on refusal.

mod support;

use std::process::Command;

use support::{expect_failure, expect_success, yatai};
use yatai_testkit::dump::{dump_database, dump_objects};
use yatai_testkit::install::{seed, Installation};

fn with_env(cmd: &mut Command, inst: &Installation) {
    for (k, v) in inst.env() {
        cmd.env(k, v);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_of_sqlite_and_directory_restores_into_postgres_and_s3() {
    let source = Installation::embedded();
    let server = source.serve(yatai_server::app_of).await;
    let seeded = seed(&server).await;
    server.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("yatai-backup.tar.gz");

    let mut cmd = yatai();
    with_env(&mut cmd, &source);
    let (out, err) = expect_success(cmd.arg("backup").arg("--output").arg(&file));
    assert!(
        out.contains("backup written to") && out.contains("5 objects"),
        "{out}"
    );
    assert!(err.contains("objects 5/5"), "progress on stderr: {err}");
    assert!(err.contains("snapshot:"), "{err}");

    let target = Installation::production().await;
    let mut cmd = yatai();
    with_env(&mut cmd, &target);
    let (out, err) = expect_success(cmd.arg("restore").arg("-i").arg(&file));
    assert!(
        out.contains("restored") && out.contains("5 objects"),
        "{out}"
    );
    assert!(err.contains("archive verified"), "{err}");
    assert!(!out.contains("testing"), "no secret in the summary: {out}");

    assert_eq!(
        dump_database(&source.database_url).await,
        dump_database(&target.database_url).await
    );
    assert_eq!(
        dump_objects(&source.storage().await).await,
        dump_objects(&target.storage().await).await
    );
    let server = target.serve(yatai_server::app_of).await;
    for (kind, repo, version, bytes) in &seeded.pushed {
        assert_eq!(
            server
                .download(&seeded.token, kind, repo, version)
                .await
                .as_ref(),
            Some(bytes)
        );
    }
    server.stop().await;

    // A second restore into the now populated target is refused, then forced.
    let mut cmd = yatai();
    with_env(&mut cmd, &target);
    let (err, _) = expect_failure(cmd.arg("restore").arg("--input").arg(&file));
    assert!(
        err.contains("not empty") && err.contains("--force"),
        "{err}"
    );
    let mut cmd = yatai();
    with_env(&mut cmd, &target);
    let (out, _) = expect_success(cmd.arg("restore").arg("--force").arg("--input").arg(&file));
    assert!(out.contains("replaced"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_one_error_line_with_exit_code_1() {
    let source = Installation::embedded();
    let server = source.serve(yatai_server::app_of).await;
    seed(&server).await;
    server.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.tar");
    let mut cmd = yatai();
    with_env(&mut cmd, &source);
    expect_success(cmd.arg("backup").arg("--output").arg(&file));

    let mut cmd = yatai();
    with_env(&mut cmd, &source);
    let (err, _) = expect_failure(cmd.arg("backup").arg("--output").arg(&file));
    assert!(err.contains("exists already"), "{err}");

    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    let bad = dir.path().join("bad.tar");
    std::fs::write(&bad, &bytes).unwrap();
    let target = Installation::embedded();
    let mut cmd = yatai();
    with_env(&mut cmd, &target);
    let (err, _) = expect_failure(cmd.arg("restore").arg("--input").arg(&bad));
    assert!(
        err.contains("corrupted") && err.contains("nothing was restored"),
        "{err}"
    );

    std::fs::write(&bad, &std::fs::read(&file).unwrap()[..middle]).unwrap();
    let mut cmd = yatai();
    with_env(&mut cmd, &target);
    let (err, _) = expect_failure(cmd.arg("restore").arg("--input").arg(&bad));
    assert!(err.contains("truncated"), "{err}");
    assert!(
        dump_database(&target.database_url).await.is_empty(),
        "target untouched"
    );

    let mut cmd = yatai();
    with_env(&mut cmd, &target);
    let (err, _) = expect_failure(
        cmd.arg("restore")
            .arg("--input")
            .arg(dir.path().join("nope.tar")),
    );
    assert!(err.contains("nope.tar"), "{err}");
}

#[test]
fn help_describes_backup_and_restore() {
    let (out, _) = expect_success(yatai().arg("--help"));
    for word in ["backup", "restore", "s3"] {
        assert!(out.contains(word), "{word} missing:\n{out}");
    }
    let (out, _) = expect_success(yatai().args(["backup", "--help"]));
    for word in [
        "--output",
        "snapshot",
        "--data-dir",
        "PG_HOST",
        "S3_ENDPOINT",
        "SHA-256",
    ] {
        assert!(out.contains(word), "{word} missing:\n{out}");
    }
    let (out, _) = expect_success(yatai().args(["restore", "--help"]));
    for word in [
        "--input",
        "--force",
        "corrupted",
        "truncated",
        "PG_HOST",
        "S3_BUCKET_NAME",
    ] {
        assert!(out.contains(word), "{word} missing:\n{out}");
    }
}
