use std::collections::BTreeMap;

use kan_api::bundle::{
    BUNDLE_FORMAT_VERSION, BundleManifest, DatasetInfo, content_version, sha256_hex,
};
use kan_api::crd::{Arm, BucketRange, QueueRoute, StrategyType};
use kan_api::routing::{ExperimentRoute, RoutingConfig};
use kan_api::validate;

fn routing() -> RoutingConfig {
    serde_saphyr::from_str(
        "gateway: feed\nendpoints: {a: 'http://a:8080', b: 'http://b:8080'}\nqueues: [{name: a}, {name: b}]\nfallback: b\n",
    )
    .expect("routing parses")
}

fn experiment(name: &str, salt: &str, start: i32, end: i32) -> ExperimentRoute {
    ExperimentRoute {
        name: name.into(),
        layer: "recall".into(),
        salt: salt.into(),
        buckets: BucketRange { start, end },
        arms: vec![Arm {
            name: "control".into(),
            weight: 100,
            queues: None,
            merge: None,
            fallback: None,
        }],
        paused: false,
    }
}

#[test]
fn a_hand_written_routing_config_is_valid() {
    let r = routing();
    assert!(validate::routing_config(&r).is_ok());
    assert_eq!(r.referenced_queues(), ["a", "b"]);
}

#[test]
fn routing_endpoints_must_be_http_urls() {
    let mut r = routing();
    r.endpoints.insert("a".into(), "a:8080".into());
    let err = validate::routing_config(&r).expect_err("bad url");
    assert!(err.has_field("endpoints.a"), "{err}");
}

#[test]
fn overlapping_experiments_are_rejected_in_routing() {
    let mut r = routing();
    r.experiments = vec![
        experiment("x", "s", 0, 5000),
        experiment("y", "s", 4000, 6000),
    ];
    let err = validate::routing_config(&r).expect_err("overlap");
    assert!(
        err.to_string().contains("overlap in layer 'recall'"),
        "{err}"
    );
    r.experiments[1].paused = true;
    assert!(
        validate::routing_config(&r).is_ok(),
        "a paused experiment owns no users"
    );
}

#[test]
fn routing_experiment_arms_are_validated_with_a_path() {
    let mut r = routing();
    let mut e = experiment("x", "s", 0, 100);
    e.arms[0].weight = 90;
    e.arms.push(Arm {
        name: "t".into(),
        weight: 5,
        queues: Some(vec![QueueRoute::named("a")]),
        merge: None,
        fallback: None,
    });
    r.experiments = vec![e];
    let err = validate::routing_config(&r).expect_err("weights");
    assert!(err.has_field("experiments[0].arms"), "{err}");
}

#[test]
fn routing_hash_is_stable_and_changes_with_content() {
    let r = routing();
    assert_eq!(r.content_hash(), routing().content_hash());
    let mut changed = routing();
    changed.queues[0].weight = 2.0;
    assert_ne!(r.content_hash(), changed.content_hash());
}

fn manifest() -> BundleManifest {
    let mut files = BTreeMap::new();
    files.insert(
        "item_vectors.safetensors".to_string(),
        sha256_hex(b"vectors"),
    );
    BundleManifest {
        format_version: BUNDLE_FORMAT_VERSION,
        strategy: StrategyType::Item2vec,
        version: content_version(&files),
        dataset: DatasetInfo {
            name: "tiny".into(),
            fingerprint: sha256_hex(b"data"),
            users: 1,
            items: 1,
            interactions: 1,
        },
        params: serde_json::json!({"dim": 8}),
        metrics: BTreeMap::new(),
        dim: Some(8),
        created_at: "2026-11-28T00:00:00Z".into(),
        files,
    }
}

#[test]
fn a_consistent_manifest_is_valid_and_round_trips() {
    let m = manifest();
    assert!(validate::bundle_manifest(&m).is_ok());
    let json = serde_json::to_string(&m).expect("json");
    assert_eq!(
        serde_json::from_str::<BundleManifest>(&json).expect("back"),
        m
    );
}

#[test]
fn manifest_rules_each_have_a_test() {
    let field_of = |m: BundleManifest| validate::bundle_manifest(&m).expect_err("invalid");
    let mut m = manifest();
    m.format_version = 99;
    assert!(field_of(m).has_field("format_version"));
    let mut m = manifest();
    m.version = "0000".into();
    assert!(field_of(m).has_field("version"));
    let mut m = manifest();
    m.dim = None;
    assert!(field_of(m).has_field("dim"));
    let mut m = manifest();
    m.files.insert("../escape".into(), sha256_hex(b"x"));
    m.version = content_version(&m.files);
    assert!(field_of(m).has_field("files.../escape"));
    let mut m = manifest();
    m.files.insert("x".into(), "nothex".into());
    m.version = content_version(&m.files);
    assert!(field_of(m).has_field("files.x"));
}

mod render {
    use std::collections::BTreeMap;

    use kan_api::crd::{RecallExperimentSpec, RecallGatewaySpec};
    use kan_api::routing::RoutingConfig;

    fn gateway() -> RecallGatewaySpec {
        serde_saphyr::from_str("queues: [{name: a}, {name: b}]\nfallback: pop\n").expect("gateway")
    }

    fn exp(gateway: &str, start: i32, traffic: i32) -> RecallExperimentSpec {
        serde_saphyr::from_str(&format!(
            "gateway: {gateway}\ntraffic: {traffic}\nbucketStart: {start}\narms: [{{name: c, weight: 50}}, {{name: t, weight: 50, queues: [{{name: x}}]}}]\n"
        ))
        .expect("experiment")
    }

    #[test]
    fn only_ready_referenced_queues_get_endpoints() {
        let ready: BTreeMap<String, String> = [
            ("a", "http://a:8080"),
            ("pop", "http://pop:8080"),
            ("unrelated", "http://u:8080"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let rendered = RoutingConfig::render("feed", &gateway(), &ready, []);
        assert_eq!(
            rendered.config.endpoints.keys().collect::<Vec<_>>(),
            ["a", "pop"]
        );
        assert!(kan_api::validate::routing_config(&rendered.config).is_ok());
    }

    #[test]
    fn experiments_of_other_gateways_are_ignored_and_conflicts_excluded_in_order() {
        let (first, second, other) = (
            exp("feed", 0, 50),
            exp("feed", 4000, 20),
            exp("other", 0, 100),
        );
        let rendered = RoutingConfig::render(
            "feed",
            &gateway(),
            &BTreeMap::new(),
            [("first", &first), ("second", &second), ("other", &other)],
        );
        let routed: Vec<&str> = rendered
            .config
            .experiments
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(routed, ["first"]);
        assert_eq!(rendered.excluded.len(), 1);
        assert_eq!(rendered.excluded[0].name, "second");
        assert!(
            rendered.excluded[0].reason.contains("overlap"),
            "{}",
            rendered.excluded[0].reason
        );
        assert!(
            rendered
                .config
                .referenced_queues()
                .contains(&"x".to_string())
        );
    }
}
