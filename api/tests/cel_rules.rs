//! The CRDs' CEL rules themselves (not the Rust mirror), evaluated client-side by kube's CEL
//! engine: each rule compiles, accepts a valid object and rejects an invalid one with its message.

use kan_api::manifest::{KanObject, parse_manifests};

fn cel_errors(yaml: &str) -> Vec<String> {
    let object = parse_manifests(yaml).expect("parses").remove(0);
    let result = match &object {
        KanObject::Queue(o) => o.validate_cel(),
        KanObject::Gateway(o) => o.validate_cel(),
        KanObject::Experiment(o) => o.validate_cel(),
    };
    match result {
        Ok(()) => vec![],
        Err(e) => e.as_slice().iter().map(|e| e.message.clone()).collect(),
    }
}

fn queue(spec: &str) -> String {
    format!("apiVersion: kan.dev/v1alpha1\nkind: RecallQueue\nmetadata: {{name: q}}\nspec:\n{spec}")
}

fn assert_rule(valid: &str, invalid: &str, message: &str) {
    assert_eq!(
        cel_errors(valid),
        Vec::<String>::new(),
        "valid object rejected"
    );
    let errors = cel_errors(invalid);
    assert!(
        errors.iter().any(|e| e.contains(message)),
        "expected '{message}', got {errors:?}"
    );
}

#[test]
fn queue_rules_run_in_cel() {
    let base = "  strategy: {type: dssm}\n  bundle: {uri: /b}\n";
    assert_rule(
        &queue(&format!("{base}  replicas: 2\n")),
        &queue(&format!(
            "{base}  replicas: 2\n  autoscaling: {{maxReplicas: 3}}\n"
        )),
        "either replicas or autoscaling",
    );
    assert_rule(
        &queue(&format!(
            "{base}  autoscaling: {{minReplicas: 1, maxReplicas: 3}}\n  resources: {{requests: {{cpu: 500m}}}}\n"
        )),
        &queue(&format!(
            "{base}  autoscaling: {{minReplicas: 1, maxReplicas: 3}}\n  resources: {{requests: {{memory: 1Gi}}}}\n"
        )),
        "needs a CPU request",
    );
    assert_rule(
        &queue(&format!(
            "{base}  autoscaling: {{minReplicas: 1, maxReplicas: 3}}\n  resources: {{requests: {{cpu: 500m}}}}\n"
        )),
        &queue(&format!(
            "{base}  autoscaling: {{minReplicas: 4, maxReplicas: 3}}\n"
        )),
        "minReplicas must not exceed",
    );
    assert_rule(
        &queue(base),
        &queue("  strategy: {type: popular}\n"),
        "set spec.bundle.uri",
    );
    assert_rule(
        &queue(&format!("{base}  candidates: 100\n")),
        &queue(&format!("{base}  candidates: 2000\n")),
        "must not exceed maxCandidates",
    );
    assert_rule(
        &queue(&format!(
            "{base}  index: {{type: qdrant, qdrant: {{url: 'http://q', collection: c}}}}\n"
        )),
        &queue(&format!("{base}  index: {{type: qdrant}}\n")),
        "needs index.qdrant",
    );
    assert_rule(
        &queue(&format!(
            "{base}  index: {{type: embedded, hnsw: {{m: 32}}}}\n"
        )),
        &queue(&format!(
            "{base}  index: {{type: qdrant, qdrant: {{url: 'http://q', collection: c}}, hnsw: {{m: 32}}}}\n"
        )),
        "index.hnsw is only allowed",
    );
    let window = |s: &str, e: &str| {
        queue(&format!(
            "  strategy: {{type: operational, operational: {{items: [{{itemId: a, start: '{s}', end: '{e}'}}]}}}}\n"
        ))
    };
    assert_rule(
        &window("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
        &window("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"),
        "start must be before its end",
    );
}

#[test]
fn bundle_uri_and_endpoint_rules_run_in_cel() {
    let bundle = |b: &str| queue(&format!("  strategy: {{type: dssm}}\n  bundle: {b}\n"));
    assert_rule(
        &bundle("{uri: 's3://kan-bundles/dssm/'}"),
        &bundle("{uri: 'ftp://host/dssm'}"),
        "unsupported scheme",
    );
    for uri in ["gs://b/x", "az://c/x", "https://h/x", "file:///b", "/b"] {
        assert_eq!(
            cel_errors(&bundle(&format!("{{uri: '{uri}'}}"))),
            Vec::<String>::new(),
            "{uri}"
        );
    }
    assert_rule(
        &bundle(
            "{uri: 's3://b/x', endpoint: 'http://minio:9000', credentialsSecretRef: {name: s3}}",
        ),
        &bundle("{uri: 's3://b/x', endpoint: 'minio:9000'}"),
        "must be an http:// or https:// URL",
    );
    assert_rule(
        &bundle("{uri: 's3://b/x', endpoint: 'https://minio'}"),
        &bundle("{uri: 'gs://b/x', endpoint: 'https://minio'}"),
        "only used with s3:// URIs",
    );
}

#[test]
fn gateway_rules_run_in_cel() {
    let gw = |spec: &str| {
        format!(
            "apiVersion: kan.dev/v1alpha1\nkind: RecallGateway\nmetadata: {{name: g}}\nspec:\n{spec}"
        )
    };
    assert_rule(
        &gw("  queues: [{name: a, quota: 5}]\n  merge: {policy: quota}\n"),
        &gw("  queues: [{name: a}]\n  merge: {policy: quota}\n"),
        "quota on every queue",
    );
    assert_rule(
        &gw("  queues: [{name: a, timeoutMs: 50}]\n  deadlineMs: 100\n"),
        &gw("  queues: [{name: a, timeoutMs: 150}]\n  deadlineMs: 100\n"),
        "must not exceed the gateway's deadlineMs",
    );
}

#[test]
fn experiment_rules_run_in_cel() {
    let exp = |spec: &str| {
        format!(
            "apiVersion: kan.dev/v1alpha1\nkind: RecallExperiment\nmetadata: {{name: e}}\nspec:\n  gateway: g\n{spec}"
        )
    };
    assert_rule(
        &exp("  traffic: 10\n  arms: [{name: a, weight: 60}, {name: b, weight: 40}]\n"),
        &exp("  traffic: 10\n  arms: [{name: a, weight: 60}, {name: b, weight: 30}]\n"),
        "arm weights must sum to 100",
    );
    assert_rule(
        &exp("  traffic: 40\n  bucketStart: 6000\n  arms: [{name: a, weight: 100}]\n"),
        &exp("  traffic: 50\n  bucketStart: 6000\n  arms: [{name: a, weight: 100}]\n"),
        "must not exceed 10000 buckets",
    );
    assert_rule(
        &exp(
            "  traffic: 10\n  arms: [{name: a, weight: 100, merge: {policy: quota}, queues: [{name: q, quota: 5}]}]\n",
        ),
        &exp(
            "  traffic: 10\n  arms: [{name: a, weight: 100, merge: {policy: quota}, queues: [{name: q}]}]\n",
        ),
        "quota on every queue of the arm",
    );
}
