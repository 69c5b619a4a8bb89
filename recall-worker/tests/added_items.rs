//! `POST /v1/items`: items published after training, recalled without a new bundle.

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
