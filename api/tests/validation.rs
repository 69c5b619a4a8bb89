//! Every validation rule, valid and invalid, through the public `validate` functions; CEL rules
//! are also evaluated client-side through `validate::object`, so Rust and CRD rules agree.

use kan_api::crd::*;
use kan_api::manifest::{KanObject, parse_manifests};
use kan_api::validate;
use kan_api::wire::RecallRequest;
use kube::CustomResourceExt;

fn one(yaml: &str) -> KanObject {
    let mut objects = parse_manifests(yaml).expect("parses");
    assert_eq!(objects.len(), 1);
    objects.remove(0)
}

fn queue(spec: &str) -> KanObject {
    one(&format!(
        "apiVersion: kan.dev/v1alpha1\nkind: RecallQueue\nmetadata: {{name: q}}\nspec:\n{spec}"
    ))
}

fn gateway(spec: &str) -> KanObject {
    one(&format!(
        "apiVersion: kan.dev/v1alpha1\nkind: RecallGateway\nmetadata: {{name: g}}\nspec:\n{spec}"
    ))
}

fn experiment(spec: &str) -> KanObject {
    one(&format!(
        "apiVersion: kan.dev/v1alpha1\nkind: RecallExperiment\nmetadata: {{name: e}}\nspec:\n{spec}"
    ))
}

/// Asserts the object is rejected and some message contains `needle`.
fn rejected(object: &KanObject, needle: &str) {
    match validate::object(object) {
        Ok(()) => panic!("expected rejection mentioning '{needle}'"),
        Err(e) => assert!(
            e.to_string().contains(needle),
            "'{e}' should mention '{needle}'"
        ),
    }
}

fn accepted(object: &KanObject) {
    if let Err(e) = validate::object(object) {
        panic!("expected valid, got: {e}");
    }
}

const DSSM: &str = "  strategy: {type: dssm}\n  bundle: {uri: /b}\n";

#[test]
fn a_minimal_queue_is_valid_and_gets_defaults() {
    let object = queue(DSSM);
    accepted(&object);
    let KanObject::Queue(q) = object else {
        unreachable!()
    };
    assert_eq!(q.spec.candidates, DEFAULT_CANDIDATES);
    assert_eq!(q.spec.timeout_ms, DEFAULT_QUEUE_TIMEOUT_MS);
    assert_eq!(
        q.spec.strategy,
        Strategy::Dssm {
            dssm: EncoderSettings::default()
        }
    );
}

#[test]
fn replicas_and_autoscaling_are_exclusive() {
    rejected(
        &queue(&format!(
            "{DSSM}  replicas: 2\n  autoscaling: {{maxReplicas: 3}}\n"
        )),
        "either replicas or autoscaling",
    );
    accepted(&queue(&format!(
        "{DSSM}  autoscaling: {{maxReplicas: 3}}\n  resources: {{requests: {{cpu: 500m}}}}\n"
    )));
}

#[test]
fn autoscaling_without_a_cpu_request_is_rejected() {
    rejected(
        &queue(&format!("{DSSM}  autoscaling: {{maxReplicas: 3}}\n")),
        "needs a CPU request",
    );
}

#[test]
fn autoscaling_min_must_not_exceed_max() {
    rejected(
        &queue(&format!(
            "{DSSM}  autoscaling: {{minReplicas: 5, maxReplicas: 3}}\n"
        )),
        "minReplicas must not exceed",
    );
}

#[test]
fn timeouts_and_candidates_are_range_checked() {
    rejected(&queue(&format!("{DSSM}  timeoutMs: 0\n")), "timeoutMs");
    rejected(&queue(&format!("{DSSM}  timeoutMs: 10001\n")), "timeoutMs");
    rejected(
        &queue(&format!("{DSSM}  candidates: 2000\n")),
        "must not exceed maxCandidates",
    );
    accepted(&queue(&format!(
        "{DSSM}  candidates: 2000\n  maxCandidates: 5000\n"
    )));
}

#[test]
fn settings_must_match_the_strategy_type() {
    // serde refuses a settings block of another strategy; the CEL rules do the same on the API server.
    let text = "apiVersion: kan.dev/v1alpha1\nkind: RecallQueue\nmetadata: {name: q}\nspec:\n  strategy: {type: dssm, gat: {historyLength: 3}}\n  bundle: {uri: /b}\n";
    let err = parse_manifests(text).expect_err("mismatched settings");
    assert!(err.to_string().contains("gat"), "{err}");
    let cel = RecallQueue::crd();
    let json = serde_json::to_string(&cel).expect("json");
    assert!(json.contains("strategy.gat is only allowed when strategy.type is gat"));
}

#[test]
fn an_itemcf_queue_without_settings_gets_the_defaults_chosen_on_validation_and_the_crd_states_them()
{
    // BENCHMARKS.md, "item-CF serving defaults": historyLength 200, recencyDecay 0.99.
    for strategy in ["{type: itemcf}", "{type: itemcf, itemcf: {}}"] {
        let KanObject::Queue(q) =
            queue(&format!("  strategy: {strategy}\n  bundle: {{uri: /b}}\n"))
        else {
            panic!("not a queue");
        };
        let Strategy::Itemcf { itemcf } = q.spec.strategy else {
            panic!("{:?}", q.spec.strategy);
        };
        assert_eq!((itemcf.history_length, itemcf.recency_decay), (200, 0.99));
        assert_eq!(itemcf, ItemCfSettings::default());
    }
    let crd = serde_json::to_value(RecallQueue::crd()).expect("json");
    let itemcf = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["strategy"]["properties"]["itemcf"]["properties"];
    assert_eq!(itemcf["historyLength"]["default"], 200);
    assert_eq!(itemcf["recencyDecay"]["default"], 0.99);
}

#[test]
fn operational_needs_items_and_no_bundle() {
    accepted(&queue(
        "  strategy: {type: operational, operational: {items: [{itemId: a}]}}\n",
    ));
    let text = "apiVersion: kan.dev/v1alpha1\nkind: RecallQueue\nmetadata: {name: q}\nspec:\n  strategy: {type: operational}\n";
    assert!(parse_manifests(text).is_err(), "operational without items");
    rejected(
        &queue("  strategy: {type: operational, operational: {items: []}}\n"),
        "items",
    );
}

#[test]
fn every_other_strategy_needs_a_bundle() {
    rejected(
        &queue("  strategy: {type: popular}\n"),
        "set spec.bundle.uri",
    );
}

#[test]
fn object_storage_bundle_uris_are_accepted_and_unknown_schemes_refused() {
    for uri in [
        "s3://kan-bundles/ml-100k/dssm/",
        "gs://b/x",
        "az://c/x",
        "https://h/x",
    ] {
        accepted(&queue(&format!(
            "  strategy: {{type: dssm}}\n  bundle: {{uri: '{uri}'}}\n"
        )));
    }
    rejected(
        &queue("  strategy: {type: dssm}\n  bundle: {uri: 'ftp://h/x'}\n"),
        "bundle.uri: unsupported scheme 'ftp'",
    );
    rejected(
        &queue("  strategy: {type: dssm}\n  bundle: {uri: 's3:///x'}\n"),
        "without a bucket",
    );
}

#[test]
fn a_bundle_endpoint_is_an_http_url_for_s3_uris_only() {
    accepted(&queue(
        "  strategy: {type: dssm}\n  bundle: {uri: 's3://b/x', endpoint: 'http://minio:9000', credentialsSecretRef: {name: s3}}\n",
    ));
    rejected(
        &queue("  strategy: {type: dssm}\n  bundle: {uri: 's3://b/x', endpoint: 'minio:9000'}\n"),
        "must be an http:// or https:// URL",
    );
    rejected(
        &queue("  strategy: {type: dssm}\n  bundle: {uri: 'gs://b/x', endpoint: 'https://m'}\n"),
        "only used with s3:// URIs",
    );
}

#[test]
fn pinned_item_windows_must_be_ordered_rfc3339_times() {
    let window = |s: &str, e: &str| {
        queue(&format!(
            "  strategy: {{type: operational, operational: {{items: [{{itemId: a, start: '{s}', end: '{e}'}}]}}}}\n"
        ))
    };
    accepted(&window("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"));
    rejected(
        &window("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"),
        "start must be before its end",
    );
    rejected(
        &window("yesterday", "2026-01-01T00:00:00Z"),
        "not an RFC 3339 time",
    );
}

#[test]
fn qdrant_index_needs_its_connection() {
    rejected(
        &queue(&format!("{DSSM}  index: {{type: qdrant}}\n")),
        "needs index.qdrant",
    );
    rejected(
        &queue(&format!(
            "{DSSM}  index: {{type: embedded, qdrant: {{url: 'http://q:6334', collection: c}}}}\n"
        )),
        "only allowed when index.type is qdrant",
    );
    accepted(&queue(&format!(
        "{DSSM}  index: {{type: qdrant, qdrant: {{url: 'http://q:6334', collection: c}}}}\n"
    )));
}

#[test]
fn the_qdrant_collection_lifecycle_settings_are_range_checked() {
    let with = |collections: &str| {
        queue(&format!(
            "{DSSM}  index: {{type: qdrant, qdrant: {{url: 'http://q:6334', collection: c, collections: {collections}}}}}\n"
        ))
    };
    accepted(&with("{load: false}"));
    accepted(&with("{keepVersions: 5, leaseSeconds: 30}"));
    rejected(
        &with("{keepVersions: 0}"),
        "index.qdrant.collections.keepVersions",
    );
    rejected(
        &with("{leaseSeconds: 0}"),
        "index.qdrant.collections.leaseSeconds",
    );
}

#[test]
fn hnsw_parameters_are_range_checked_and_only_for_the_embedded_index() {
    accepted(&queue(&format!(
        "{DSSM}  index: {{type: embedded, hnsw: {{m: 32, efConstruction: 200, efSearch: 512}}}}\n"
    )));
    rejected(
        &queue(&format!(
            "{DSSM}  index: {{type: embedded, hnsw: {{m: 2}}}}\n"
        )),
        "index.hnsw.m",
    );
    rejected(
        &queue(&format!(
            "{DSSM}  index: {{type: embedded, hnsw: {{efSearch: 0}}}}\n"
        )),
        "index.hnsw.efSearch",
    );
    rejected(
        &queue(&format!(
            "{DSSM}  index: {{type: qdrant, qdrant: {{url: 'http://q:6334', collection: c}}, hnsw: {{m: 16}}}}\n"
        )),
        "index.hnsw is only allowed when index.type is embedded",
    );
}

#[test]
fn strategy_settings_are_range_checked() {
    rejected(
        &queue(
            "  strategy: {type: item2vec, item2vec: {recencyDecay: 1.5}}\n  bundle: {uri: /b}\n",
        ),
        "recencyDecay",
    );
    rejected(
        &queue("  strategy: {type: gat, gat: {historyLength: 0}}\n  bundle: {uri: /b}\n"),
        "historyLength",
    );
    rejected(
        &queue("  strategy: {type: social, social: {maxFriends: 0}}\n  bundle: {uri: /b}\n"),
        "maxFriends",
    );
}

const QUEUES: &str = "  queues: [{name: a, quota: 10}, {name: b, quota: 20}]\n";

#[test]
fn a_gateway_with_defaults_is_valid() {
    let object = gateway(QUEUES);
    accepted(&object);
    let KanObject::Gateway(g) = object else {
        unreachable!()
    };
    assert_eq!(g.spec.merge.policy, MergePolicy::Rrf);
    assert_eq!(g.spec.deadline_ms, DEFAULT_DEADLINE_MS);
}

#[test]
fn quota_policy_needs_a_quota_on_every_queue() {
    rejected(
        &gateway("  queues: [{name: a}]\n  merge: {policy: quota}\n"),
        "quota on every queue",
    );
    accepted(&gateway(&format!("{QUEUES}  merge: {{policy: quota}}\n")));
}

#[test]
fn queue_timeouts_must_fit_the_deadline() {
    rejected(
        &gateway("  queues: [{name: a, timeoutMs: 200}]\n  deadlineMs: 100\n"),
        "must not exceed the gateway's deadlineMs",
    );
}

#[test]
fn gateway_queue_names_are_unique() {
    rejected(
        &gateway("  queues: [{name: a}, {name: a}]\n"),
        "listed twice",
    );
}

#[test]
fn gateway_needs_a_queue() {
    rejected(&gateway("  queues: []\n"), "needs between 1 and 64 entries");
}

const ARMS: &str = "  arms: [{name: control, weight: 50}, {name: treatment, weight: 50}]\n";

#[test]
fn an_experiment_with_weights_summing_to_100_is_valid() {
    let object = experiment(&format!("  gateway: g\n  traffic: 10\n{ARMS}"));
    accepted(&object);
    let KanObject::Experiment(e) = object else {
        unreachable!()
    };
    assert_eq!(e.spec.layer, "recall");
    assert_eq!(e.spec.effective_salt(), "recall");
    assert_eq!(
        e.spec.bucket_range(),
        BucketRange {
            start: 0,
            end: 1000
        }
    );
}

#[test]
fn arm_weights_must_sum_to_100() {
    rejected(
        &experiment(
            "  gateway: g\n  traffic: 10\n  arms: [{name: a, weight: 50}, {name: b, weight: 40}]\n",
        ),
        "arm weights must sum to 100",
    );
}

#[test]
fn traffic_is_a_percentage() {
    rejected(
        &experiment(&format!("  gateway: g\n  traffic: 101\n{ARMS}")),
        "traffic",
    );
    rejected(
        &experiment(&format!("  gateway: g\n  traffic: -1\n{ARMS}")),
        "traffic",
    );
    accepted(&experiment(&format!("  gateway: g\n  traffic: 0\n{ARMS}")));
    accepted(&experiment(&format!(
        "  gateway: g\n  traffic: 100\n{ARMS}"
    )));
}

#[test]
fn the_bucket_range_must_fit_in_the_layer() {
    rejected(
        &experiment(&format!(
            "  gateway: g\n  traffic: 50\n  bucketStart: 6000\n{ARMS}"
        )),
        "must not exceed 10000 buckets",
    );
    accepted(&experiment(&format!(
        "  gateway: g\n  traffic: 50\n  bucketStart: 5000\n{ARMS}"
    )));
}

#[test]
fn arm_queue_overrides_follow_the_gateway_rules() {
    rejected(
        &experiment(
            "  gateway: g\n  traffic: 10\n  arms: [{name: a, weight: 100, queues: [{name: x}], merge: {policy: quota}}]\n",
        ),
        "quota on every queue",
    );
}

#[test]
fn unknown_fields_are_rejected_with_their_name() {
    let err = parse_manifests("apiVersion: kan.dev/v1alpha1\nkind: RecallQueue\nmetadata: {name: q}\nspec:\n  strategy: {type: dssm}\n  bundle: {uri: /b}\n  replica: 3\n")
        .expect_err("typo");
    assert!(err.to_string().contains("replica"), "{err}");
}

#[test]
fn wrong_api_version_and_kind_are_named() {
    let err = parse_manifests("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
        .expect_err("foreign");
    assert!(
        err.to_string()
            .contains("apiVersion must be kan.dev/v1alpha1"),
        "{err}"
    );
    let err =
        parse_manifests("apiVersion: kan.dev/v1alpha1\nkind: RecallThing\nmetadata: {name: x}\n")
            .expect_err("kind");
    assert!(
        err.to_string().contains("unknown kind 'RecallThing'"),
        "{err}"
    );
}

#[test]
fn requests_are_checked_field_by_field() {
    let ok = RecallRequest {
        user_id: "u1".into(),
        k: Some(10),
        ..Default::default()
    };
    assert!(validate::recall_request(&ok).is_ok());
    let field = |r: RecallRequest| validate::recall_request(&r).expect_err("invalid").field;
    assert_eq!(
        field(RecallRequest {
            user_id: String::new(),
            ..ok.clone()
        }),
        "user_id"
    );
    assert_eq!(
        field(RecallRequest {
            k: Some(0),
            ..ok.clone()
        }),
        "k"
    );
    assert_eq!(
        field(RecallRequest {
            k: Some(10_001),
            ..ok.clone()
        }),
        "k"
    );
    assert_eq!(
        field(RecallRequest {
            history: Some(vec!["x".into(); 1001]),
            ..ok.clone()
        }),
        "history"
    );
    assert_eq!(
        field(RecallRequest {
            history: Some(vec![String::new()]),
            ..ok.clone()
        }),
        "history"
    );
    assert_eq!(
        field(RecallRequest {
            exclude: vec!["x".into(); 10_001],
            ..ok.clone()
        }),
        "exclude"
    );
}

#[test]
fn requests_reject_unknown_fields() {
    let err =
        serde_json::from_str::<RecallRequest>(r#"{"user_id":"u","kk":3}"#).expect_err("unknown");
    assert!(err.to_string().contains("kk"));
}

#[test]
fn rfc3339_parsing_handles_offsets_and_fractions() {
    assert_eq!(validate::parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        validate::parse_rfc3339("1970-01-01T01:00:00+01:00"),
        Some(0)
    );
    assert_eq!(
        validate::parse_rfc3339("2000-03-01T00:00:00.5Z"),
        Some(951_868_800)
    );
    assert_eq!(validate::parse_rfc3339("2000-13-01T00:00:00Z"), None);
}

#[test]
fn a_signal_store_needs_a_url_without_credentials_or_a_secret() {
    let social = "  strategy: {type: social}\n  bundle: {uri: /b}\n";
    accepted(&queue(&format!(
        "{social}  signals: {{redis: {{url: redis://redis:6379/0}}}}\n"
    )));
    accepted(&queue(&format!(
        "{social}  signals: {{redis: {{secretRef: {{name: kan-redis}}}}}}\n"
    )));
    rejected(
        &queue(&format!("{social}  signals: {{redis: {{}}}}\n")),
        "needs a url, or a secretRef",
    );
    rejected(
        &queue(&format!(
            "{social}  signals: {{redis: {{url: 'redis://:hunter2@redis:6379'}}}}\n"
        )),
        "without credentials",
    );
    rejected(
        &queue(&format!(
            "{social}  signals: {{redis: {{url: 'http://redis:6379'}}}}\n"
        )),
        "redis:// or rediss://",
    );
    let popular = "  strategy: {type: popular, popular: {trending: {windowMinutes: 0}}}\n  bundle: {uri: /b}\n";
    rejected(&queue(popular), "windowMinutes");
}

#[test]
fn a_popular_queues_fresh_arrivals_slot_is_bounded() {
    let popular = |n: i64| {
        queue(&format!(
            "  strategy: {{type: popular, popular: {{newItems: {n}}}}}\n  bundle: {{uri: /b}}\n"
        ))
    };
    accepted(&popular(0));
    accepted(&popular(1000));
    rejected(&popular(1001), "strategy.popular.newItems");
    rejected(&popular(-1), "strategy.popular.newItems");
}

#[test]
fn a_gateways_signal_store_follows_the_same_rules_as_a_queues() {
    accepted(&gateway(
        "  queues: [{name: q}]\n  signals: {redis: {url: redis://redis:6379}}\n",
    ));
    rejected(
        &gateway("  queues: [{name: q}]\n  signals: {redis: {url: 'redis://u:p@redis:6379'}}\n"),
        "without credentials",
    );
}

#[test]
fn a_propensity_stage_is_declared_under_filters_with_defaults() {
    let object = gateway(
        "  queues: [{name: a}]\n  filters:\n    propensity: {table: bundles/popular, keys: [age_band, region]}\n",
    );
    accepted(&object);
    let KanObject::Gateway(g) = object else {
        unreachable!()
    };
    let p = g.spec.filters.propensity.expect("declared");
    assert_eq!(p.keys, ["age_band", "region"]);
    assert_eq!(p.boost, 1.0);
    assert_eq!(p.min_lift, None);
}

#[test]
fn a_bad_propensity_stage_is_rejected_naming_the_field() {
    let with = |p: &str| {
        gateway(&format!(
            "  queues: [{{name: a}}]\n  filters:\n    propensity: {p}\n"
        ))
    };
    let errors = |p: &str| match validate::object(&with(p)) {
        Ok(()) => panic!("{p} should be rejected"),
        Err(e) => e,
    };
    let e = errors("{table: t, keys: [age_band, zodiac]}");
    assert!(e.has_field("spec.filters.propensity.keys[1]"), "{e}");
    assert!(e.to_string().contains("zodiac"), "{e}");
    assert!(
        errors("{table: t, keys: [region, region]}").has_field("spec.filters.propensity.keys[1]")
    );
    assert!(errors("{table: t, keys: []}").has_field("spec.filters.propensity.keys"));
    assert!(
        errors("{table: t, keys: [region], boost: 11}").has_field("spec.filters.propensity.boost")
    );
    assert!(
        errors("{table: t, keys: [region], boost: 0}").has_field("spec.filters.propensity.boost")
    );
    assert!(
        errors("{table: t, keys: [region], minLift: 0}")
            .has_field("spec.filters.propensity.minLift")
    );
    assert!(errors("{table: ' ', keys: [region]}").has_field("spec.filters.propensity.table"));
    let unknown = parse_manifests(
        "apiVersion: kan.dev/v1alpha1\nkind: RecallGateway\nmetadata: {name: g}\nspec:\n  queues: [{name: a}]\n  filters:\n    propensity: {table: t, keys: [region], strength: 2}\n",
    )
    .expect_err("unknown field");
    assert!(unknown.to_string().contains("strength"), "{unknown}");
    accepted(&with("{table: t, keys: [gender], boost: 0, minLift: 0.5}"));
}

#[test]
fn merge_policies_parse_from_their_spec_names_and_name_the_choices_otherwise() {
    use kan_api::crd::MergePolicy;
    for p in MergePolicy::ALL {
        assert_eq!(p.as_str().parse::<MergePolicy>(), Ok(p));
    }
    let e = "borda".parse::<MergePolicy>().unwrap_err();
    assert!(e.contains("`borda`") && e.contains("score"), "{e}");
}
