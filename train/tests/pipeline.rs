//! End to end on synthetic data: every strategy trains into a verified bundle, and `eval`
//! scores queues and merges with full ranking.

mod common;

use kan_api::bundle::{MANIFEST_FILE, files};
use kan_api::crd::StrategyType;
use kan_train::bundle::BundleDir;
use kan_train::data::Format;
use kan_train::split::SplitSpec;
use kan_train::{EvalRequest, MergePolicy, QueueInput, TrainOptions, TrainRequest};

const STRATEGIES: [StrategyType; 10] = [
    StrategyType::Popular,
    StrategyType::Attribute,
    StrategyType::Itemcf,
    StrategyType::Item2vec,
    StrategyType::Social,
    StrategyType::Exploratory,
    StrategyType::Dssm,
    StrategyType::Gat,
    StrategyType::Spectral,
    StrategyType::Sequence,
];

/// A temporary directory holding the synthetic communities dataset in `data/`.
fn communities() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).expect("the data directory");
    common::write_communities(&data);
    (tmp, data)
}

/// `kan eval` of `queues` on `data`'s test part with the default settings.
fn eval_request(
    data: &std::path::Path,
    queues: Vec<QueueInput>,
    merges: Vec<MergePolicy>,
) -> EvalRequest {
    EvalRequest {
        data: data.to_path_buf(),
        format: Format::Csv,
        split: None,
        seed: None,
        queues,
        merges,
        rrf_k: kan_train::eval::RRF_K,
        on_validation: false,
        max_users: None,
        progress: false,
        propensity: None,
        now: None,
        tune_weights: false,
    }
}

fn request(data: &std::path::Path, out: &std::path::Path, strategy: StrategyType) -> TrainRequest {
    TrainRequest {
        strategy,
        data: data.to_path_buf(),
        format: Format::Csv,
        split: Some(SplitSpec::Temporal { n: 1 }),
        out: out.to_path_buf(),
        opts: TrainOptions {
            epochs: Some(3),
            dim: 16,
            seed: 7,
            history_length: 10,
            progress: false,
            params: Default::default(),
        },
    }
}

#[test]
fn every_strategy_trains_a_bundle_in_the_shared_layout_and_eval_scores_queues_and_merges() {
    let (tmp, data) = communities();

    let mut queues = Vec::new();
    for s in STRATEGIES {
        let out = tmp.path().join(s.to_string());
        let outcome = kan_train::train(&request(&data, &out, s)).unwrap();
        let m = &outcome.manifest;
        assert_eq!(m.strategy, s);
        assert!(out.join(MANIFEST_FILE).is_file());
        for f in [files::ITEMS, files::USERS, files::USER_HISTORY] {
            assert!(m.files.contains_key(f), "{s}: {f} missing");
        }
        let expected = match s {
            StrategyType::Popular => vec![files::POPULAR],
            StrategyType::Itemcf => vec![files::NEIGHBOURS],
            StrategyType::Item2vec => vec![files::ITEM_VECTORS],
            StrategyType::Social => vec![files::FRIENDS],
            StrategyType::Exploratory => vec![
                files::CATEGORIES,
                files::CATEGORY_NAMES,
                files::RELATED_TAGS,
            ],
            StrategyType::Attribute => vec![
                files::TAG_NAMES,
                files::ITEM_TAGS,
                files::TAG_ITEMS,
                files::RELATED_TAGS,
            ],
            _ => vec![files::ITEM_VECTORS, files::MODEL],
        };
        for f in expected {
            assert!(m.files.contains_key(f), "{s}: {f} missing");
        }
        assert!(
            m.metrics.contains_key("recall@20"),
            "{s}: validation metrics recorded"
        );
        assert_eq!(m.params["split"], "temporal:1");
        BundleDir::open(&out).unwrap();
        // dssm/gat evaluate through ONNX Runtime; without it they are trained but not evaluated.
        let needs_ort = matches!(
            s,
            StrategyType::Dssm
                | StrategyType::Gat
                | StrategyType::Spectral
                | StrategyType::Sequence
        );
        if !needs_ort || kan_onnx::dylib_path(None).is_ok() {
            queues.push(QueueInput::new(s.to_string(), out));
        }
    }

    let report = kan_train::eval(&eval_request(
        &data,
        queues,
        vec![
            MergePolicy::Rrf,
            MergePolicy::WeightedInterleave,
            MergePolicy::Quota,
        ],
    ))
    .unwrap();
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(
        report.users,
        common::COMMUNITIES * common::USERS_PER_COMMUNITY
    );
    let recall =
        |name: &str| report.rows.iter().find(|r| r.name == name).unwrap().metrics["recall@20"];
    // The held-out item of each user is a community item: neighbours/co-engagement find it,
    // while exploration deliberately looks outside the user's communities.
    assert!(recall("itemcf") > 0.5, "itemcf R@20 = {}", recall("itemcf"));
    assert!(recall("social") > 0.5, "social R@20 = {}", recall("social"));
    assert!(recall("itemcf") > recall("exploratory"));
    // Tags alone find the community's items: the held-out item shares the user's genre.
    assert!(
        recall("attribute") > 0.2,
        "attribute R@20 = {}",
        recall("attribute")
    );
    let merges: Vec<_> = report.rows.iter().filter(|r| r.kind == "merge").collect();
    assert_eq!(merges.len(), 3);
    let out = tmp.path().join("report");
    let written = report.write(&out).unwrap();
    assert!(written.iter().all(|p| p.is_file()));
}

#[test]
fn neural_trainers_stop_on_validation_and_record_their_learning_curve() {
    let (tmp, data) = communities();
    for s in [
        StrategyType::Dssm,
        StrategyType::Gat,
        StrategyType::Sequence,
    ] {
        let mut req = request(&data, &tmp.path().join(s.to_string()), s);
        req.opts.epochs = Some(6);
        req.opts.params = kan_train::HyperParams::parse(&["patience=1"]).unwrap();
        let m = kan_train::train(&req).unwrap().manifest;
        let curve = m.params["curve"].as_array().unwrap();
        let epochs = m.params["epochs"].as_u64().unwrap() as usize;
        assert_eq!(curve.len(), epochs, "{s}: one point per epoch run");
        assert!((1..=6).contains(&epochs));
        for (n, p) in curve.iter().enumerate() {
            assert_eq!(p["epoch"], n + 1);
            assert!(p["valid_recall_20"].as_f64().is_some(), "{s}: {p}");
            assert!(p["train_loss"].as_f64().unwrap().is_finite());
        }
        let best = m.params["best_epoch"].as_u64().unwrap() as usize;
        assert!(best >= 1 && best <= epochs);
        let best_r = curve[best - 1]["valid_recall_20"].as_f64().unwrap();
        assert!(
            curve
                .iter()
                .all(|p| p["valid_recall_20"].as_f64().unwrap() <= best_r)
        );
        if epochs < 6 {
            assert_eq!(
                epochs,
                best + 1,
                "{s}: stopped one epoch after the best (patience 1)"
            );
        }
        assert!(
            m.files
                .contains_key(kan_train::strategies::twotower::CURVE_PNG)
        );
    }
}

#[test]
fn training_on_a_missing_directory_explains_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let err = kan_train::train(&request(
        &tmp.path().join("nope"),
        tmp.path(),
        StrategyType::Popular,
    ))
    .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn the_same_seed_gives_the_same_bundle_version() {
    let (tmp, data) = communities();
    for s in [StrategyType::Item2vec, StrategyType::Dssm] {
        let a = kan_train::train(&request(&data, &tmp.path().join("a"), s))
            .unwrap()
            .manifest;
        let b = kan_train::train(&request(&data, &tmp.path().join("b"), s))
            .unwrap()
            .manifest;
        assert_eq!(a.files, b.files, "{s}: same seed, same files");
    }
}

#[test]
fn hyper_parameters_reach_the_trainer_and_the_manifest_and_foreign_keys_are_refused() {
    let (tmp, data) = communities();

    let mut req = request(&data, &tmp.path().join("itemcf"), StrategyType::Itemcf);
    req.opts.params =
        kan_train::HyperParams::parse(&["alpha=0.7", "beta=0.3", "top_n=17"]).unwrap();
    let m = kan_train::train(&req).unwrap().manifest;
    assert_eq!(m.params["alpha"], 0.7);
    assert_eq!(m.params["beta"], 0.3);
    assert_eq!(m.params["top_n"], 17);

    let mut req = request(&data, &tmp.path().join("popular"), StrategyType::Popular);
    req.opts.params = kan_train::HyperParams::parse(&["alpha=0.7"]).unwrap();
    let err = kan_train::train(&req).unwrap_err().to_string();
    assert!(
        err.contains("alpha") && err.contains("half_life_days"),
        "{err}"
    );
    assert!(
        !tmp.path().join("popular").exists(),
        "no bundle written on a refused parameter"
    );
}

#[test]
fn on_a_cold_item_split_interaction_queues_recall_nothing_and_attribute_recalls_by_tags() {
    let (tmp, data) = communities();
    let mut queues = Vec::new();
    for s in [
        StrategyType::Popular,
        StrategyType::Itemcf,
        StrategyType::Social,
        StrategyType::Attribute,
    ] {
        let out = tmp.path().join(s.to_string());
        let mut req = request(&data, &out, s);
        req.split = Some(SplitSpec::parse("cold:0.2").unwrap());
        kan_train::train(&req).unwrap();
        queues.push(QueueInput::new(s.to_string(), out));
    }
    let report = kan_train::eval(&eval_request(&data, queues, vec![MergePolicy::Rrf])).unwrap();
    assert!(
        report.part.contains("held-out items only"),
        "{}",
        report.part
    );
    assert!(report.split.contains("cold items"), "{}", report.split);
    let recall =
        |name: &str| report.rows.iter().find(|r| r.name == name).unwrap().metrics["recall@20"];
    for interaction_only in ["popular", "itemcf", "social"] {
        assert_eq!(recall(interaction_only), 0.0, "{interaction_only}");
    }
    assert!(
        recall("attribute") > 0.3,
        "attribute R@20 = {}",
        recall("attribute")
    );
}

#[test]
fn the_declared_friend_weight_is_chosen_on_validation_unless_given() {
    let (tmp, data) = communities();

    let searched = kan_train::train(&request(&data, &tmp.path().join("s"), StrategyType::Social))
        .unwrap()
        .manifest;
    let search = searched.params["explicit_weight_search"]
        .as_array()
        .unwrap();
    // 0 and the grid 0.1, 0.3, 1 at least; widened past an edge winner.
    let weights: Vec<f64> = search.iter().map(|p| p[0].as_f64().unwrap()).collect();
    for w in [0.0, 0.1, 0.3, 1.0] {
        assert!(weights.contains(&w), "{weights:?}");
    }
    let best = search
        .iter()
        .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.total_cmp(&a.0)))
        .unwrap();
    let chosen = searched.params["explicit_weight"].as_f64().unwrap();
    let chosen_r20 = search
        .iter()
        .find(|p| (p[0].as_f64().unwrap() - chosen).abs() < 1e-6)
        .map(|p| p[1].as_f64().unwrap())
        .unwrap();
    assert_eq!(
        chosen_r20, best.1,
        "the chosen weight scores the best: {search:?}"
    );

    let mut req = request(&data, &tmp.path().join("g"), StrategyType::Social);
    req.opts.params = kan_train::strategies::HyperParams::parse(&["explicit_weight=2.5"]).unwrap();
    let given = kan_train::train(&req).unwrap().manifest;
    assert_eq!(given.params["explicit_weight"], 2.5);
    assert!(given.params.get("explicit_weight_search").is_none());

    req.opts.params = kan_train::strategies::HyperParams::parse(&["explicit_weight=-1"]).unwrap();
    req.out = tmp.path().join("bad");
    let e = kan_train::train(&req).unwrap_err().to_string();
    assert!(
        e.contains("explicit_weight=-1") && e.contains("0 or more"),
        "{e}"
    );
}

#[test]
fn tuned_merge_weights_are_chosen_on_validation_and_never_on_test() {
    let (tmp, data) = communities();
    let strategies = [StrategyType::Itemcf, StrategyType::Exploratory];
    let queues: Vec<QueueInput> = strategies
        .iter()
        .map(|&s| {
            let out = tmp.path().join(s.to_string());
            kan_train::train(&request(&data, &out, s)).unwrap();
            QueueInput::new(s.to_string(), out)
        })
        .collect();
    let mut req = EvalRequest {
        on_validation: true,
        tune_weights: true,
        ..eval_request(&data, queues, vec![MergePolicy::Rrf])
    };
    let report = kan_train::eval(&req).unwrap();
    let recall =
        |name: &str| report.rows.iter().find(|r| r.name == name).unwrap().metrics["recall@20"];
    let equal = recall("merge:rrf(itemcf+exploratory)");
    let tuned = recall("merge:rrf(tuned)");
    assert!(
        tuned > equal,
        "exploration looks outside the user's community, so weighing it down must help: {tuned} vs {equal}"
    );
    let [t] = report.tuned.as_slice() else {
        panic!("one tuned merge expected: {:?}", report.tuned)
    };
    assert_eq!(t.policy, "rrf");
    assert!(
        (t.recall_20 - tuned).abs() < 1e-12,
        "the row scores the chosen weights"
    );
    assert!((t.initial_recall_20 - equal).abs() < 1e-12);
    let weight = |q: &str| t.weights.iter().find(|(n, _)| n == q).unwrap().1;
    assert!(weight("exploratory") < weight("itemcf"), "{:?}", t.weights);
    assert!(report.to_markdown().contains(&t.weight_flags()));

    req.on_validation = false;
    let err = kan_train::eval(&req).unwrap_err().to_string();
    assert!(err.contains("--validation"), "{err}");
}
