//! `kan bundle pack` through the binary: a toy encoder written by a PyTorch-free Python script
//! (examples/byo/make_toy_encoder.py) packs, verifies and serves a recall through the worker;
//! models that break the encoder contract are refused before anything is written.
// Test code: clippy.toml's allow-unwrap-in-tests covers #[test] functions, not their helpers.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kan_api::manifest::parse_worker_config;
use kan_api::wire::RecallRequest;
use kan_testkit::onnx::encoder_onnx;
use kan_worker::worker::{Worker, WorkerOptions};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn kan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kan"))
        .args(args)
        .output()
        .expect("kan runs")
}

fn ort() -> Option<PathBuf> {
    let path = std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from);
    if path.as_deref().is_some_and(Path::is_file) {
        return path;
    }
    eprintln!("skipping: ONNX Runtime not found (source scripts/env.sh)");
    None
}

/// The BYO venv's python (scripts/install-byo-python.sh), or None when it is not installed and
/// the run does not require it (`KAN_REQUIRE_PYTHON=1`, set by CI, makes its absence a failure).
fn byo_python() -> Option<PathBuf> {
    let tools = std::env::var_os("KAN_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/kan-tools")
        });
    let python = tools.join("byo/bin/python");
    if python.is_file() {
        return Some(python);
    }
    assert!(
        std::env::var("KAN_REQUIRE_PYTHON").as_deref() != Ok("1"),
        "{} is missing: run scripts/install-byo-python.sh",
        python.display()
    );
    eprintln!(
        "skipping: {} is missing (scripts/install-byo-python.sh)",
        python.display()
    );
    None
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_toy_encoder_from_the_python_example_packs_verifies_and_serves_a_recall() {
    let (Some(python), Some(ort)) = (byo_python(), ort()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("toy");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/byo/make_toy_encoder.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&input)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", text(&out));

    let bundle = tmp.path().join("bundle");
    let file = |name: &str| input.join(name).to_str().unwrap().to_string();
    let out = kan(&[
        "bundle",
        "pack",
        "--model",
        &file("model.onnx"),
        "--item-vectors",
        &file("item_vectors.npy"),
        "--items",
        &file("items.txt"),
        "--interactions",
        &file("interactions.csv"),
        "--history-length",
        "20",
        "--out",
        path(&bundle),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("200 items of dimension 16, history length 20, 50 users"),
        "{}",
        text(&out)
    );
    let out = kan(&["bundle", "verify", path(&bundle)]);
    assert!(out.status.success(), "{}", text(&out));
    let manifest = kan_worker::bundle::read_manifest(&bundle).unwrap();
    assert!(text(&out).contains(&format!(
        "dssm bundle version {}, 5 files verified",
        manifest.version
    )));

    let config = parse_worker_config(&format!(
        "name: byo\nspec:\n  strategy: {{type: dssm}}\n  bundle: {{uri: '{}'}}\n  index: {{type: embedded}}\n",
        path(&bundle)
    ))
    .unwrap();
    let worker = Worker::start(
        config,
        WorkerOptions {
            ort_dylib: Some(ort),
            ..WorkerOptions::default()
        },
    )
    .await
    .expect("the packed bundle loads");
    // user3 read only items of cluster 3 (item i is in cluster i % 8): the stored history goes
    // through the packed encoder, and the nearest items are that cluster's.
    let request = RecallRequest {
        user_id: "user3".into(),
        k: Some(10),
        ..RecallRequest::default()
    };
    let answer = worker.recall(&request).await.unwrap();
    assert_eq!(answer.version, manifest.version);
    assert_eq!(answer.candidates.len(), 10);
    let in_cluster = answer
        .candidates
        .iter()
        .filter(|c| {
            c.item_id
                .trim_start_matches("item")
                .parse::<usize>()
                .unwrap()
                % 8
                == 3
        })
        .count();
    assert!(in_cluster >= 9, "{:?}", answer.candidates);
}

/// A bundle's inputs around `model`: 6 items of dimension 2.
fn inputs(dir: &Path, model: &[u8]) -> Vec<String> {
    std::fs::write(dir.join("model.onnx"), model).unwrap();
    std::fs::write(dir.join("items.txt"), "a\nb\nc\nd\ne\nf\n").unwrap();
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (6, 2), }".to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    for v in table(6) {
        npy.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(dir.join("v.npy"), npy).unwrap();
    let f = |n: &str| dir.join(n).to_str().unwrap().to_string();
    vec![
        "bundle".into(),
        "pack".into(),
        "--model".into(),
        f("model.onnx"),
        "--item-vectors".into(),
        f("v.npy"),
        "--items".into(),
        f("items.txt"),
        "--out".into(),
        f("bundle"),
    ]
}

/// `n` unit vectors of dimension 2.
fn table(n: usize) -> Vec<f32> {
    (0..n)
        .flat_map(|i| {
            let a = i as f32;
            [a.cos(), a.sin()]
        })
        .collect()
}

fn pack_err(dir: &Path, model: &[u8], extra: &[&str]) -> String {
    let mut args = inputs(dir, model);
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = Command::new(env!("CARGO_BIN_EXE_kan"))
        .args(&args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(!dir.join("bundle").exists(), "nothing is written");
    text(&out)
}

#[test]
fn a_model_that_breaks_the_encoder_contract_is_refused_before_anything_is_written() {
    if ort().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let e = pack_err(
        tmp.path(),
        &encoder_onnx(&table(6), 2, 4, "user_vector"),
        &[],
    );
    assert!(
        e.contains("model.onnx has no output 'user_embedding'"),
        "{e}"
    );
    let e = pack_err(tmp.path(), b"not a model", &[]);
    assert!(e.contains("is not a loadable ONNX model"), "{e}");
}

#[test]
fn a_model_whose_item_table_is_shorter_than_the_item_list_is_refused() {
    if ort().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let e = pack_err(
        tmp.path(),
        &encoder_onnx(&table(4), 2, 4, "user_embedding"),
        &[],
    );
    assert!(
        e.contains("failed on a history holding the last listed item (index 5)")
            && e.contains("all 6 items"),
        "{e}"
    );
}

#[test]
fn a_fixed_history_length_that_differs_from_the_flag_is_refused_and_otherwise_adopted() {
    if ort().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let model = encoder_onnx(&table(6), 2, 4, "user_embedding");
    let e = pack_err(tmp.path(), &model, &["--history-length", "9"]);
    assert!(
        e.contains("takes histories of length 4, but --history-length is 9"),
        "{e}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_kan"))
        .args(inputs(tmp.path(), &model))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("history length 4, 0 users"),
        "{}",
        text(&out)
    );
}
