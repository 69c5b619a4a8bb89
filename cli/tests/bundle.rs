//! `kan bundle verify` and `kan bundle push` through the binary, against a moto S3 server.

#[path = "../../recall-worker/tests/common/moto.rs"]
mod moto;

use std::path::Path;
use std::process::{Command, Output};

use kan_api::bundle::{BundleManifest, files};
use kan_api::crd::StrategyType;
use kan_testkit::bundle::{BundleWriter, TensorData};
use moto::Moto;

fn popular_bundle(dir: &Path) -> BundleManifest {
    let mut w = BundleWriter::new(dir).expect("bundle dir");
    w.ids(
        files::ITEMS,
        &(0..8).map(|i| format!("i{i}")).collect::<Vec<_>>(),
    )
    .expect("item ids");
    w.tensors(
        files::POPULAR,
        vec![
            ("global/items", TensorData::I64(vec![3], vec![2, 0, 1])),
            (
                "global/scores",
                TensorData::F32(vec![3], vec![3.0, 2.0, 1.0]),
            ),
        ],
    )
    .expect("popular lists");
    w.finish(StrategyType::Popular, None, serde_json::json!({}))
        .expect("manifest")
}

/// Runs `kan bundle ARGS` with the moto key (and `secret`) in the environment, as a pod would.
fn kan_bundle(moto: &Moto, secret: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kan"))
        .arg("bundle")
        .args(args)
        .args(["--endpoint", &moto.endpoint])
        .env("AWS_ACCESS_KEY_ID", &moto.key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("kan runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_pushed_bundle_verifies_from_s3_with_its_version() {
    let moto = Moto::start(true, &["kan"]);
    let dir = tempfile::tempdir().unwrap();
    let manifest = popular_bundle(dir.path());
    let local = dir.path().to_str().unwrap();
    let out = kan_bundle(&moto, &moto.secret, &["verify", local]);
    assert!(out.status.success(), "{}", text(&out));
    let out = kan_bundle(&moto, &moto.secret, &["push", local, "s3://kan/popular/v1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!(
        "pushed popular bundle version {}",
        manifest.version
    )));
    let out = kan_bundle(&moto, &moto.secret, &["verify", "s3://kan/popular/v1/"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "ok: popular bundle version {}, 2 files verified",
            manifest.version
        )),
        "{}",
        text(&out)
    );
}

#[test]
fn verify_refuses_a_tampered_file_locally_and_in_s3() {
    let moto = Moto::start(true, &["kan"]);
    let dir = tempfile::tempdir().unwrap();
    popular_bundle(dir.path());
    let local = dir.path().to_str().unwrap();
    let out = kan_bundle(&moto, &moto.secret, &["push", local, "s3://kan/b"]);
    assert!(out.status.success(), "{}", text(&out));
    std::fs::write(dir.path().join(files::ITEMS), "i0\n").unwrap();
    let out = kan_bundle(&moto, &moto.secret, &["verify", local]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("checksum mismatch for bundle file items.txt"),
        "{}",
        text(&out)
    );
    // push verifies before it uploads anything.
    let out = kan_bundle(&moto, &moto.secret, &["push", local, "s3://kan/b"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("checksum mismatch"), "{}", text(&out));
}

#[test]
fn verify_with_wrong_credentials_says_access_is_denied() {
    let moto = Moto::start(true, &["kan"]);
    let dir = tempfile::tempdir().unwrap();
    popular_bundle(dir.path());
    let out = kan_bundle(
        &moto,
        &moto.secret,
        &["push", dir.path().to_str().unwrap(), "s3://kan/b"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = kan_bundle(&moto, "wrong", &["verify", "s3://kan/b"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("access denied: check the credentials"),
        "{}",
        text(&out)
    );
}

#[test]
fn push_to_a_local_path_or_http_is_refused_with_what_is_supported() {
    let moto = Moto::start(false, &["kan"]);
    let dir = tempfile::tempdir().unwrap();
    popular_bundle(dir.path());
    let out = kan_bundle(
        &moto,
        &moto.secret,
        &[
            "push",
            dir.path().to_str().unwrap(),
            "https://example.invalid/b",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("uploading needs an object store URI"),
        "{}",
        text(&out)
    );
}
