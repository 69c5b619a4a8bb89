//! `POST /v1/items`: items published after training, recalled without a new bundle.
// Test code: clippy.toml's allow-unwrap-in-tests covers #[test] functions, not their helpers.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use axum::http::StatusCode;
use common::*;
use kan_api::crd::StrategyType;
use kan_worker::{Worker, WorkerOptions};
use serde_json::{Value, json};

async fn attribute_worker(bundle: &Path, state: &Path) -> Worker {
    let options = WorkerOptions {
        state_dir: Some(state.to_path_buf()),
        ..options()
    };
    Worker::load(
        config(StrategyType::Attribute, Some(bundle), json!({})),
        options,
    )
    .await
    .expect("worker loads")
}

/// Items recalled for a user whose history is item i0 (tag news).
async fn news_reader(worker: &Worker) -> Vec<String> {
    recall(
        worker,
        json!({"user_id": "reader", "history": ["i0"], "k": 20}),
    )
    .await
}

async fn post(worker: &Worker, body: Value) -> (StatusCode, Value) {
    call(worker, "POST", "/v1/items", Some(body)).await
}

#[tokio::test]
async fn a_new_item_posted_to_a_running_worker_is_recalled_by_the_next_request() {
    let (bundle, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_bundle(bundle.path(), StrategyType::Attribute);
    let worker = attribute_worker(bundle.path(), state.path()).await;
    let before = news_reader(&worker).await;
    assert_eq!(
        before[..3],
        ["i4", "i8", "i12"],
        "news items, best prior first"
    );
    assert!(!before.contains(&"fresh".to_string()));

    let (status, body) = post(
        &worker,
        json!({"items": [{"id": "fresh", "tags": ["news"]}, {"id": "other", "tags": ["film"]}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["added_items"].as_u64()),
        (Some(2), Some(2))
    );

    let after = news_reader(&worker).await;
    assert!(after.contains(&"fresh".to_string()), "{after:?}");
    assert!(
        !after.contains(&"other".to_string()),
        "a film item is not news"
    );
    // The new item counts as history too: its tag selects the news items.
    let from_new = recall(&worker, json!({"user_id": "r2", "history": ["fresh"]})).await;
    assert_eq!(from_new[..2], ["i0", "i4"]);
}

#[tokio::test]
async fn bad_catalogue_input_is_refused_with_the_field_and_changes_nothing() {
    let (bundle, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_bundle(bundle.path(), StrategyType::Attribute);
    let worker = attribute_worker(bundle.path(), state.path()).await;
    let before = news_reader(&worker).await;
    for (body, field) in [
        (
            json!({"items": [{"id": "ok", "tags": ["news"]}, {"id": "bad", "tags": ["news", "opera"]}]}),
            "items[1].tags[1]",
        ),
        (
            json!({"items": [{"id": "i3", "tags": ["news"]}]}),
            "items[0].id",
        ),
        (
            json!({"items": [{"id": "v", "tags": ["news"], "vector": [0.1, 0.2]}]}),
            "items[0].vector",
        ),
        (
            json!({"items": [{"id": "n", "tags": "news"}]}),
            "items[0].tags",
        ),
        (
            json!({"items": [{"id": "ok", "tags": ["news"]}, {"id": "untagged"}]}),
            "items[1].tags",
        ),
        (json!({"things": []}), "things"),
    ] {
        let (status, answer) = post(&worker, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error"]["code"], "invalid_argument");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    assert_eq!(news_reader(&worker).await, before, "nothing was applied");
    assert!(
        !state.path().join(kan_worker::added::FILE).exists(),
        "nothing was persisted"
    );
}

#[tokio::test]
async fn added_items_are_served_again_after_a_restart() {
    let (bundle, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_bundle(bundle.path(), StrategyType::Attribute);
    {
        let worker = attribute_worker(bundle.path(), state.path()).await;
        let (status, body) = post(
            &worker,
            json!({"items": [{"id": "fresh", "tags": ["news"]}]}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // Posting the same id again replaces it rather than adding a second one.
        let (status, body) = post(
            &worker,
            json!({"items": [{"id": "fresh", "tags": ["news", "sport"]}]}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["added_items"], 1);
    }
    let restarted = attribute_worker(bundle.path(), state.path()).await;
    assert!(news_reader(&restarted).await.contains(&"fresh".to_string()));
    let stored = kan_worker::added::read(state.path()).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].tags, ["news", "sport"]);
}

#[tokio::test]
async fn a_queue_that_recalls_only_trained_items_refuses_new_ones() {
    let bundle = tempfile::tempdir().unwrap();
    write_bundle(bundle.path(), StrategyType::Itemcf);
    let worker = worker(config(StrategyType::Itemcf, Some(bundle.path()), json!({}))).await;
    let (status, body) = post(&worker, json!({"items": [{"id": "n", "tags": ["news"]}]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "items");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("attribute"),
        "{body}"
    );
}

#[tokio::test]
async fn a_stored_catalogue_skips_items_the_new_bundle_has_or_cannot_tag() {
    let (bundle, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_bundle(bundle.path(), StrategyType::Attribute);
    let item = |id: &str, tag: &str| kan_api::wire::NewItem {
        id: id.into(),
        tags: vec![tag.into()],
        vector: None,
    };
    // Written by an earlier worker: i3 has since been trained into the bundle, and the bundle
    // no longer knows the tag "opera".
    kan_worker::added::write(
        state.path(),
        &[
            item("i3", "news"),
            item("aria", "opera"),
            item("fresh", "news"),
        ],
    )
    .unwrap();
    let worker = attribute_worker(bundle.path(), state.path()).await;
    let served = news_reader(&worker).await;
    assert!(served.contains(&"fresh".to_string()), "{served:?}");
    assert!(!served.contains(&"aria".to_string()));
    let (status, body) = post(
        &worker,
        json!({"items": [{"id": "more", "tags": ["film"]}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["added_items"], 2,
        "fresh and more; i3 and aria are not served"
    );
}

#[tokio::test]
async fn an_exploratory_queue_samples_a_posted_item_outside_the_users_dominant_categories() {
    let (bundle, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_bundle(bundle.path(), StrategyType::Exploratory);
    let options = WorkerOptions {
        state_dir: Some(state.path().to_path_buf()),
        ..options()
    };
    let config = config(StrategyType::Exploratory, Some(bundle.path()), json!({}));
    let worker = Worker::load(config.clone(), options.clone())
        .await
        .expect("worker loads");
    // History in news, sport and music: those are dominant, only film items (j % 4 == 3) are
    // explored — ten of them, all returned at k = 20.
    let explorer = json!({"user_id": "explorer", "history": ["i0", "i1", "i2"], "k": 20});
    let before = recall(&worker, explorer.clone()).await;
    assert_eq!(before.len(), 10, "{before:?}");

    let (status, body) = post(
        &worker,
        json!({"items": [{"id": "new-film", "tags": ["film", "unknown-tag"]}, {"id": "new-news", "tags": ["news"]}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = recall(&worker, explorer.clone()).await;
    assert_eq!(after.len(), 11, "{after:?}");
    assert!(after.contains(&"new-film".to_string()), "{after:?}");
    assert!(
        !after.contains(&"new-news".to_string()),
        "news is a dominant interest"
    );

    // Persisted: a restarted worker samples it too.
    drop(worker);
    let restarted = Worker::load(config, options).await.expect("restarts");
    assert_eq!(recall(&restarted, explorer).await, after);
}

#[tokio::test]
async fn an_exploratory_queue_refuses_an_item_without_a_known_category_naming_the_field() {
    let bundle = tempfile::tempdir().unwrap();
    write_bundle(bundle.path(), StrategyType::Exploratory);
    let worker = worker(config(
        StrategyType::Exploratory,
        Some(bundle.path()),
        json!({}),
    ))
    .await;
    for (body, field) in [
        (
            json!({"items": [{"id": "ok", "tags": ["film"]}, {"id": "x", "tags": ["opera"]}]}),
            "items[1].tags",
        ),
        (
            json!({"items": [{"id": "i3", "tags": ["film"]}]}),
            "items[0].id",
        ),
        (
            json!({"items": [{"id": "v", "tags": ["film"], "vector": [0.5]}]}),
            "items[0].vector",
        ),
    ] {
        let (status, answer) = post(&worker, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    let all = recall(&worker, json!({"user_id": "u", "k": 20})).await;
    assert!(!all.contains(&"ok".to_string()), "nothing was applied");
}

// Popular queues: posted items join the catalogue; `newItems` puts the newest first.

async fn popular_worker(
    bundle: &Path,
    state: &Path,
    settings: Value,
    signals: Option<std::sync::Arc<dyn kan_signals::SignalStore>>,
) -> Worker {
    let config = config(
        StrategyType::Popular,
        Some(bundle),
        json!({"strategy": {"popular": settings}}),
    );
    let options = WorkerOptions {
        state_dir: Some(state.to_path_buf()),
        signals,
        ..options()
    };
    Worker::load(config, options).await.expect("worker loads")
}

fn click(id: &str, user: &str, item: &str) -> kan_api::events::Event {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    kan_api::events::Event {
        id: id.into(),
        user_id: user.into(),
        action: kan_api::events::Action::Click,
        item_id: Some(item.into()),
        target: None,
        ts,
        weight: None,
        context: Default::default(),
    }
}

#[tokio::test]
async fn a_popular_queue_leads_with_the_newest_posted_items_the_user_may_get() {
    let (bundle, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_bundle(bundle.path(), StrategyType::Popular);
    let settings = json!({"newItems": 2});
    let worker = popular_worker(bundle.path(), state.path(), settings.clone(), None).await;
    let ask = |extra: Value| {
        let mut body = json!({"user_id": "newcomer", "k": 4});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    assert_eq!(
        recall(&worker, ask(json!({}))).await,
        ["i0", "i1", "i2", "i3"]
    );

    // Any tags, or none: popular has no tag vocabulary.
    let (status, body) = post(
        &worker,
        json!({"items": [{"id": "a", "tags": ["anything"]}, {"id": "b"}, {"id": "c", "tags": []}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["added_items"], 3);
    assert_eq!(
        recall(&worker, ask(json!({}))).await,
        ["c", "b", "i0", "i1"],
        "the two newest first, the bundle's list after them"
    );
    // What the user engaged with or excludes gives its place to the next newest.
    assert_eq!(
        recall(&worker, ask(json!({"history": ["c"]}))).await,
        ["b", "a", "i0", "i1"]
    );
    assert_eq!(
        recall(&worker, ask(json!({"exclude": ["b"]}))).await,
        ["c", "a", "i0", "i1"]
    );

    drop(worker);
    let restarted = popular_worker(bundle.path(), state.path(), settings, None).await;
    assert_eq!(
        recall(&restarted, ask(json!({}))).await,
        ["c", "b", "i0", "i1"],
        "the stored catalogue is served again"
    );
}

#[tokio::test]
async fn a_posted_item_enters_a_popular_queues_trending_list_as_users_engage_with_it() {
    let (bundle, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_bundle(bundle.path(), StrategyType::Popular);
    let store: std::sync::Arc<dyn kan_signals::SignalStore> =
        std::sync::Arc::new(kan_signals::MemoryStore::new());
    let worker = popular_worker(
        bundle.path(),
        state.path(),
        json!({"trending": {}}),
        Some(store.clone()),
    )
    .await;
    let newcomer = json!({"user_id": "newcomer", "k": 3});
    let burst: Vec<_> = (0..5)
        .map(|n| click(&format!("e{n}"), &format!("fan{n}"), "scoop"))
        .collect();
    store.append(&burst).await.expect("acknowledged");
    assert_eq!(
        recall(&worker, newcomer.clone()).await,
        ["i0", "i1", "i2"],
        "an id the queue does not know is skipped"
    );

    let (status, body) = post(&worker, json!({"items": [{"id": "scoop"}]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        recall(&worker, newcomer).await,
        ["scoop", "i0", "i1"],
        "the burst on the posted item leads"
    );
}

#[tokio::test]
async fn fresh_arrivals_skip_what_the_signal_store_says_a_user_engaged_with() {
    let (bundle, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_bundle(bundle.path(), StrategyType::Popular);
    let store: std::sync::Arc<dyn kan_signals::SignalStore> =
        std::sync::Arc::new(kan_signals::MemoryStore::new());
    let worker = popular_worker(
        bundle.path(),
        state.path(),
        json!({"newItems": 1}),
        Some(store.clone()),
    )
    .await;
    let (status, body) = post(&worker, json!({"items": [{"id": "a"}, {"id": "b"}]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    store
        .append(&[click("e1", "reader", "b")])
        .await
        .expect("acknowledged");
    assert_eq!(
        recall(&worker, json!({"user_id": "reader", "k": 2})).await,
        ["a", "i0"]
    );
    assert_eq!(
        recall(&worker, json!({"user_id": "other", "k": 2})).await,
        ["b", "i0"]
    );
}

#[tokio::test]
async fn a_popular_queue_refuses_a_vector_or_a_trained_id_naming_the_field() {
    let (bundle, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_bundle(bundle.path(), StrategyType::Popular);
    let worker = popular_worker(bundle.path(), state.path(), json!({"newItems": 5}), None).await;
    for (body, field) in [
        (
            json!({"items": [{"id": "ok"}, {"id": "v", "vector": [0.5, 0.5]}]}),
            "items[1].vector",
        ),
        (json!({"items": [{"id": "i7"}]}), "items[0].id"),
    ] {
        let (status, answer) = post(&worker, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    assert_eq!(
        recall(&worker, json!({"user_id": "u", "k": 2})).await,
        ["i0", "i1"],
        "nothing was applied"
    );
    assert!(!state.path().join(kan_worker::added::FILE).exists());
}

// Vector queues: a posted item's content vector is searched beside the bundle's index.

/// Item `i`'s fixture vector.
fn vector_of(i: usize) -> Vec<f32> {
    vectors()[i * DIM..(i + 1) * DIM].to_vec()
}

async fn vector_worker(
    strategy: StrategyType,
    bundle: &Path,
    state: &Path,
    exact_max_items: usize,
) -> Worker {
    let options = WorkerOptions {
        state_dir: Some(state.to_path_buf()),
        exact_max_items,
        ..options()
    };
    Worker::load(config(strategy, Some(bundle), json!({})), options)
        .await
        .expect("worker loads")
}

/// Posts `new` with item i0's direction (scaled: the worker normalises it) and checks that a
/// reader of i0 gets it first, a reader of `new` gets i0 first, and a restart serves it again.
async fn a_vector_queue_recalls_a_posted_item_by_its_content_vector(
    strategy: StrategyType,
    exact_max_items: usize,
) {
    let (bundle, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_bundle(bundle.path(), strategy);
    let worker = vector_worker(strategy, bundle.path(), state.path(), exact_max_items).await;
    let ready = call(&worker, "GET", "/readyz", None).await.1;
    let index = if exact_max_items == 0 {
        "hnsw"
    } else {
        "exact"
    };
    assert_eq!(ready["index"], index, "{ready}");
    let reader = json!({"user_id": "reader", "history": ["i0"], "k": 5});
    let before = recall(&worker, reader.clone()).await;
    assert!(!before.contains(&"new".to_string()));

    let scaled: Vec<f32> = vector_of(0).iter().map(|x| 3.0 * x).collect();
    let (status, body) = post(
        &worker,
        json!({"items": [{"id": "new", "tags": ["any"], "vector": scaled}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, answer) = call(&worker, "POST", "/v1/recall", Some(reader.clone())).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["candidates"][0]["item_id"], "new", "{answer}");
    let score = answer["candidates"][0]["score"].as_f64().unwrap();
    assert!(
        (score - 1.0).abs() < 1e-4,
        "normalised: cosine 1, got {score}"
    );
    assert_eq!(
        recall(&worker, reader.clone()).await[1..],
        before[..4],
        "the bundle's items follow"
    );
    if strategy == StrategyType::Item2vec {
        // Its vector is the user's when it is the history.
        let from_new = recall(&worker, json!({"user_id": "r2", "history": ["new"]})).await;
        assert_eq!(from_new[0], "i0");
    }

    drop(worker);
    let restarted = vector_worker(strategy, bundle.path(), state.path(), exact_max_items).await;
    assert_eq!(recall(&restarted, reader).await[0], "new");
}

#[tokio::test]
async fn an_item2vec_queue_on_an_exact_scan_recalls_a_posted_item_by_its_vector() {
    a_vector_queue_recalls_a_posted_item_by_its_content_vector(StrategyType::Item2vec, 1000).await;
}

#[tokio::test]
async fn an_item2vec_queue_on_an_hnsw_graph_recalls_a_posted_item_by_its_vector() {
    a_vector_queue_recalls_a_posted_item_by_its_content_vector(StrategyType::Item2vec, 0).await;
}

#[tokio::test]
async fn a_dssm_queue_recalls_a_posted_item_by_its_vector() {
    if ort_dylib().is_none() {
        return;
    }
    a_vector_queue_recalls_a_posted_item_by_its_content_vector(StrategyType::Dssm, 1000).await;
}

#[tokio::test]
async fn a_dssm_queue_encodes_only_the_trained_items_of_a_history() {
    if ort_dylib().is_none() {
        return;
    }
    let (bundle, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_bundle(bundle.path(), StrategyType::Dssm);
    let worker = vector_worker(StrategyType::Dssm, bundle.path(), state.path(), 1000).await;
    let (status, body) = post(
        &worker,
        json!({"items": [{"id": "new", "vector": vector_of(0)}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let only_trained = recall(&worker, json!({"user_id": "r", "history": ["i0"], "k": 6})).await;
    assert_eq!(only_trained[0], "new");
    let mixed = recall(
        &worker,
        json!({"user_id": "r", "history": ["new", "i0"], "k": 5}),
    )
    .await;
    assert_eq!(
        mixed,
        only_trained[1..],
        "the new item shapes nothing and is not recalled again"
    );
    assert!(
        recall(&worker, json!({"user_id": "r", "history": ["new"]}))
            .await
            .is_empty(),
        "a history of new items only is a cold start for the encoder"
    );
}

#[tokio::test]
async fn a_vector_queue_refuses_items_it_cannot_search_naming_the_field_and_changes_nothing() {
    let (bundle, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_bundle(bundle.path(), StrategyType::Item2vec);
    let worker = vector_worker(StrategyType::Item2vec, bundle.path(), state.path(), 1000).await;
    let reader = json!({"user_id": "reader", "history": ["i0"], "k": 5});
    let before = recall(&worker, reader.clone()).await;
    let good = json!({"id": "ok", "vector": vector_of(0)});
    for (body, field) in [
        (
            json!({"items": [good.clone(), {"id": "n", "tags": ["x"]}]}),
            "items[1].vector",
        ),
        (
            json!({"items": [good.clone(), {"id": "short", "vector": [1.0, 0.0]}]}),
            "items[1].vector",
        ),
        (
            json!({"items": [{"id": "zero", "vector": vec![0.0; DIM]}, good.clone()]}),
            "items[0].vector",
        ),
        (
            json!({"items": [{"id": "inf", "vector": [1e39, 0, 0, 0, 0, 0, 0, 0]}]}),
            "items[0].vector[0]",
        ),
        (
            json!({"items": [{"id": "i3", "vector": vector_of(3)}]}),
            "items[0].id",
        ),
    ] {
        let (status, answer) = post(&worker, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    assert_eq!(recall(&worker, reader).await, before, "nothing was applied");
    assert!(!state.path().join(kan_worker::added::FILE).exists());
}

#[tokio::test]
async fn a_vector_queue_scans_at_most_its_limit_of_added_items_then_asks_for_a_retrain() {
    let (bundle, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_bundle(bundle.path(), StrategyType::Item2vec);
    let worker = vector_worker(StrategyType::Item2vec, bundle.path(), state.path(), 1000).await;
    let limit = kan_worker::index::added::MAX_ADDED_VECTORS;
    let batch = |from: usize| {
        let items: Vec<Value> = (from..from + 1000)
            .map(|n| json!({"id": format!("n{n}"), "vector": vector_of(n % ITEMS)}))
            .collect();
        json!({ "items": items })
    };
    for from in (0..limit).step_by(1000) {
        let (status, body) = post(&worker, batch(from)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = post(&worker, batch(limit)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "items");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("retrain"),
        "{body}"
    );
    assert_eq!(kan_worker::added::read(state.path()).unwrap().len(), limit);
}

#[tokio::test]
async fn a_stored_vector_of_another_dimension_is_skipped_when_a_vector_queue_starts() {
    let (bundle, state) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    write_bundle(bundle.path(), StrategyType::Item2vec);
    let item = |id: &str, vector: Vec<f32>| kan_api::wire::NewItem {
        id: id.into(),
        tags: Vec::new(),
        vector: Some(vector),
    };
    // Written against an earlier bundle of 4 dimensions.
    kan_worker::added::write(
        state.path(),
        &[item("old", vec![1.0; 4]), item("new", vector_of(0))],
    )
    .unwrap();
    let worker = vector_worker(StrategyType::Item2vec, bundle.path(), state.path(), 1000).await;
    let served = recall(&worker, json!({"user_id": "r", "history": ["i0"], "k": 40})).await;
    assert_eq!(served[0], "new");
    assert!(!served.contains(&"old".to_string()));
    let (status, body) = post(
        &worker,
        json!({"items": [{"id": "more", "vector": vector_of(1)}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["added_items"], 2, "new and more; old is not served");
}
