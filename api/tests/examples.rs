//! Every file in `examples/` parses and passes the CRDs' rules (schema ranges and CEL).

use std::collections::BTreeSet;
use std::path::PathBuf;

use kan_api::crd::StrategyType;
use kan_api::manifest::{KanObject, parse_manifests};

fn example_objects() -> Vec<(PathBuf, KanObject)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/ exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        let objects = parse_manifests(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        out.extend(objects.into_iter().map(|o| (file.clone(), o)));
    }
    out
}

#[test]
fn every_example_is_valid() {
    let objects = example_objects();
    assert!(!objects.is_empty());
    for (file, object) in &objects {
        if let Err(e) = kan_api::validate::object(object) {
            panic!(
                "{} ({} {}): {e}",
                file.display(),
                object.kind(),
                object.name()
            );
        }
    }
}

#[test]
fn examples_cover_every_strategy_a_gateway_and_an_experiment() {
    let objects = example_objects();
    let strategies: BTreeSet<StrategyType> = objects
        .iter()
        .filter_map(|(_, o)| match o {
            KanObject::Queue(q) => Some(q.spec.strategy.type_()),
            _ => None,
        })
        .collect();
    assert_eq!(strategies, StrategyType::ALL.into_iter().collect());
    assert!(
        objects
            .iter()
            .any(|(_, o)| matches!(o, KanObject::Gateway(_)))
    );
    assert!(
        objects
            .iter()
            .any(|(_, o)| matches!(o, KanObject::Experiment(_)))
    );
}
