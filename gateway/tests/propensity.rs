//! The propensity stage end to end over HTTP: a lift table in a bundle directory, a config that
//! declares the stage, requests whose `context` changes the merged order as declared.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{config, ids, serve};
use kan_api::bundle::{BundleManifest, DatasetInfo, MANIFEST_FILE, files, sha256_hex};
use kan_api::crd::{PropensitySpec, StrategyType};
use kan_api::routing::RoutingConfig;
use kan_api::wire::Candidate;
use kan_core::propensity::Table;
use kan_gateway::Gateway;
use kan_testkit::fake_queue::{Behaviour, FakeQueue};
use serde_json::json;

/// Items x, y, z; segments age_band=18-24 and region=9. The young under-engage with x and
/// over-engage with z; the west over-engages with y.
fn write_table(dir: &Path) {
    write_lifts(dir, &[0.5, 1.0, 1.0, 4.0, 8.0, 1.0]);
}

/// A table over x, y, z and age_band=18-24, region=9 with these lifts (row-major).
fn write_lifts(dir: &Path, lift: &[f32]) {
    let items = ["x", "y", "z"];
    let segments = ["age_band=18-24", "region=9"];
    let mut digests = BTreeMap::new();
    let mut put = |name: &str, bytes: Vec<u8>| {
        std::fs::write(dir.join(name), &bytes).expect("write");
        digests.insert(name.to_string(), sha256_hex(&bytes));
    };
    put(files::ITEMS, (items.join("\n") + "\n").into_bytes());
    put(
        files::PROPENSITY_SEGMENTS,
        (segments.join("\n") + "\n").into_bytes(),
    );
    put(
        files::PROPENSITY,
        Table::encode(3, 2, lift).expect("encode"),
    );
    let manifest = BundleManifest {
        format_version: 1,
        strategy: StrategyType::Popular,
        version: kan_api::bundle::content_version(&digests),
        dataset: DatasetInfo::default(),
        params: json!({}),
        metrics: BTreeMap::new(),
        dim: None,
        created_at: "2026-01-01T00:00:00Z".into(),
        files: digests,
    };
    std::fs::write(
        dir.join(MANIFEST_FILE),
        serde_json::to_vec(&manifest).expect("json"),
    )
    .expect("manifest");
}

fn with_stage(mut config: RoutingConfig, dir: &Path, min_lift: Option<f64>) -> RoutingConfig {
    config.filters.propensity = Some(PropensitySpec {
        table: dir.display().to_string(),
        keys: vec!["age_band".into(), "region".into()],
        boost: 1.0,
        min_lift,
    });
    config
}

fn cands(ids: &[&str]) -> Vec<Candidate> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| Candidate {
            item_id: id.to_string(),
            score: 1.0 - i as f32 * 0.1,
        })
        .collect()
}

#[tokio::test]
async fn a_request_context_reorders_the_merged_candidates_by_the_declared_lift() {
    let dir = tempfile::tempdir().expect("tmp");
    write_table(dir.path());
    let a = FakeQueue::spawn("a", cands(&["x", "y", "z", "new"]), Behaviour::instant())
        .await
        .expect("a");
    let gw = serve(with_stage(config(&[("a", &a)]), dir.path(), None)).await;

    // No context, or only keys the stage does not declare: the merged order.
    let (status, body) = gw.recall(json!({"user_id": "u1", "k": 4})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body), ["x", "y", "z", "new"]);
    let (_, body) = gw
        .recall(json!({"user_id": "u1", "k": 4, "context": {"gender": "F"}}))
        .await;
    assert_eq!(ids(&body), ["x", "y", "z", "new"]);

    // rrf scores 1/61, 1/62, 1/63, 1/64: the young lift z ×8, pull x down ×0.5.
    let (_, body) = gw
        .recall(json!({"user_id": "u1", "k": 4, "context": {"age_band": "21"}}))
        .await;
    assert_eq!(ids(&body), ["z", "y", "new", "x"], "{body}");
    // A Californian (zone 9) lifts y ×4 too; the lifts multiply.
    let (_, body) = gw
        .recall(json!({"user_id": "u1", "k": 4, "context": {"age_band": "18-24", "region": "CA"}}))
        .await;
    assert_eq!(ids(&body), ["z", "y", "new", "x"], "{body}");
    let (_, body) = gw
        .recall(json!({"user_id": "u1", "k": 4, "context": {"region": "CA"}}))
        .await;
    assert_eq!(ids(&body), ["y", "x", "z", "new"], "{body}");
    let score = body["candidates"][0]["score"].as_f64().expect("score");
    assert!((score - 4.0 / 62.0).abs() < 1e-9, "{score}");
}

#[tokio::test]
async fn min_lift_drops_what_the_audience_shuns_and_the_fallback_cannot_bring_it_back() {
    let dir = tempfile::tempdir().expect("tmp");
    write_table(dir.path());
    let a = FakeQueue::spawn("a", cands(&["x", "y"]), Behaviour::instant())
        .await
        .expect("a");
    let popular = FakeQueue::spawn("popular", cands(&["x", "z"]), Behaviour::instant())
        .await
        .expect("popular");
    let mut c = with_stage(
        config(&[("a", &a), ("popular", &popular)]),
        dir.path(),
        Some(1.0),
    );
    c.queues.retain(|q| q.name == "a");
    c.fallback = Some("popular".into());
    let gw = serve(c).await;
    let (status, body) = gw
        .recall(json!({"user_id": "u1", "k": 5, "context": {"age_band": "20"}}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ids(&body),
        ["y", "z"],
        "x (lift 0.5) is dropped, fallback included"
    );
    let (_, body) = gw.recall(json!({"user_id": "u1", "k": 5})).await;
    assert_eq!(ids(&body), ["x", "y", "z"], "no audience, nothing dropped");
}

#[tokio::test]
async fn a_config_whose_lift_table_is_missing_or_altered_is_refused_naming_the_field() {
    let a = FakeQueue::spawn("a", cands(&["x"]), Behaviour::instant())
        .await
        .expect("a");
    let dir = tempfile::tempdir().expect("tmp");
    let err = Gateway::new(with_stage(config(&[("a", &a)]), dir.path(), None))
        .err()
        .expect("no table there");
    assert_eq!(err.metric_label(), "propensity_table");
    assert!(
        err.to_string().contains("filters.propensity.table"),
        "{err}"
    );

    write_table(dir.path());
    std::fs::write(dir.path().join(files::PROPENSITY_SEGMENTS), "region=9\n").expect("tamper");
    let err = Gateway::new(with_stage(config(&[("a", &a)]), dir.path(), None))
        .err()
        .expect("digest mismatch");
    assert!(err.to_string().contains("sha256"), "{err}");

    // A running gateway keeps its config when an edit names a bad key.
    write_table(dir.path());
    let gw = Gateway::new(with_stage(config(&[("a", &a)]), dir.path(), None)).expect("valid");
    let mut bad = with_stage(config(&[("a", &a)]), dir.path(), None);
    if let Some(p) = bad.filters.propensity.as_mut() {
        p.keys = vec!["zodiac".into()];
    }
    let err = gw.handle().update(bad).expect_err("unknown key");
    assert!(
        err.to_string().contains("filters.propensity.keys[0]"),
        "{err}"
    );
    assert!(gw.handle().config().filters.propensity.is_some());
}

#[tokio::test]
async fn a_retrained_table_is_read_on_the_next_config_and_an_unchanged_one_is_not_read_again() {
    let dir = tempfile::tempdir().expect("tmp");
    write_table(dir.path());
    let a = FakeQueue::spawn("a", cands(&["x", "y", "z"]), Behaviour::instant())
        .await
        .expect("a");
    let gw = serve(with_stage(config(&[("a", &a)]), dir.path(), None)).await;
    let young = json!({"user_id": "u1", "k": 3, "context": {"age_band": "20"}});
    assert_eq!(ids(&gw.recall(young.clone()).await.1), ["z", "y", "x"]);

    // A new bundle version: the next config reads it (x is now the young's favourite).
    write_lifts(dir.path(), &[9.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
    let handle = gw.gateway.handle();
    handle
        .update(with_stage(config(&[("a", &a)]), dir.path(), None))
        .expect("valid");
    assert_eq!(ids(&gw.recall(young.clone()).await.1), ["x", "y", "z"]);

    // Same version: a config edit keeps the table it has (the files are not read again, so
    // even a damaged file beside an unchanged manifest goes unnoticed until the next version).
    std::fs::write(dir.path().join(files::PROPENSITY), b"damaged").expect("damage");
    let mut edit = with_stage(config(&[("a", &a)]), dir.path(), None);
    edit.deadline_ms = 1500;
    handle.update(edit).expect("table kept");
    assert_eq!(ids(&gw.recall(young).await.1), ["x", "y", "z"]);
}
