//! A trained `sequence` bundle served by the worker through `POST /v1/recall`: the exported
//! causal encoder, the worker's padding and the item index together rank what the trainer
//! learned. Skips when ONNX Runtime is not installed (ORT_DYLIB_PATH).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::Request;
use kan_api::crd::StrategyType;
use kan_api::manifest::parse_worker_config;
use kan_train::data::Format;
use kan_train::split::SplitSpec;
use kan_train::strategies::HyperParams;
use kan_train::{TrainOptions, TrainRequest};
use kan_worker::worker::{Worker, WorkerOptions};
use tower::ServiceExt;

const ITEMS: usize = 12;

fn ort() -> Option<PathBuf> {
    let path = std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from);
    if path.as_deref().is_some_and(Path::is_file) {
        return path;
    }
    eprintln!("skipping: ORT_DYLIB_PATH is not set or missing");
    None
}

/// Users walk a ring of items in time order: after item k comes item k + 1.
fn write_ring(dir: &Path) {
    let mut csv = String::from("user_id,item_id,timestamp\n");
    for u in 0..40 {
        let start = (u * 5) % ITEMS;
        for t in 0..10 {
            csv.push_str(&format!("u{u},i{},{}\n", (start + t) % ITEMS, 1000 + t));
        }
    }
    std::fs::write(dir.join("interactions.csv"), csv).unwrap();
}

async fn post(router: axum::Router, body: serde_json::Value) -> Vec<String> {
    let request = Request::post("/v1/recall")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    answer["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["item_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trained_sequence_bundle_serves_the_next_item_through_post_v1_recall() {
    let Some(ort) = ort() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (data, bundle) = (tmp.path().join("data"), tmp.path().join("sequence"));
    std::fs::create_dir_all(&data).unwrap();
    write_ring(&data);
    kan_train::train(&TrainRequest {
        strategy: StrategyType::Sequence,
        data: data.clone(),
        format: Format::Csv,
        // Everything trains and nothing is held out (no early stopping): with 12 items every
        // validation R@20 would be 1 and the first epoch would be kept.
        split: Some(SplitSpec::Random {
            train: 1.0,
            valid: 0.0,
        }),
        out: bundle.clone(),
        opts: TrainOptions {
            epochs: Some(40),
            dim: 16,
            seed: 1,
            history_length: 5,
            progress: false,
            params: HyperParams::parse(&["learning_rate=0.01", "dropout=0", "batch=16"]).unwrap(),
        },
    })
    .unwrap();
    let config = parse_worker_config(&format!(
        "name: seq\nspec:\n  strategy: {{type: sequence}}\n  bundle: {{uri: '{}'}}\n  index: {{type: embedded}}\n",
        bundle.to_str().unwrap()
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
    .expect("the sequence bundle loads");
    // The request's history is most recent first; the answer's first item must be the one that
    // follows the most recent.
    let mut right = 0;
    for k in 0..ITEMS {
        let history: Vec<String> = (0..3)
            .map(|j| format!("i{}", (k + ITEMS - j) % ITEMS))
            .collect();
        let got = post(
            worker.router(None),
            serde_json::json!({"user_id": "nobody", "k": 3, "history": history}),
        )
        .await;
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(!got.iter().any(|g| history.contains(g)), "history excluded");
        if got[0] == format!("i{}", (k + 1) % ITEMS) {
            right += 1;
        }
    }
    assert!(
        right >= 11,
        "the next item came first for {right} of {ITEMS}"
    );
}
