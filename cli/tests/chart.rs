//! The Helm chart: its Grafana dashboard (queries only metrics the code emits, shipped for the
//! sidecar; every metric name lives in its crate's `metrics` module) and its image allow-list (`imagePolicy.allowedImagePrefixes`), rendered by `helm
//! template` and its ValidatingAdmissionPolicy evaluated with the Kubernetes CEL library against
//! RecallQueue objects, as the API server would at admission.
//!
//! Needs `helm` on PATH (scripts/test.sh installs it and sets KAN_REQUIRE_TOOLS=1; without both
//! the test says so and passes). What this cannot show: the API server's own matching of the
//! policy to requests (resourceRules, the binding) — tests/e2e/kind.sh covers that on a cluster.

use std::process::Command;

use kube_cel::{KubeCelExt, cel};
use serde_json::{Value, json};

/// The chart rendered with `--set` values, as YAML documents.
fn helm_template(set: &[&str]) -> Option<Vec<Value>> {
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/kan");
    let mut cmd = Command::new("helm");
    cmd.args(["template", "kan", chart]);
    for s in set {
        cmd.args(["--set", s]);
    }
    let output = match cmd.output() {
        Ok(output) => output,
        Err(e) if std::env::var_os("KAN_REQUIRE_TOOLS").is_none() => {
            eprintln!("SKIPPED: helm is not on PATH ({e}); run the tests through `make test`");
            return None;
        }
        Err(e) => panic!("helm is required (KAN_REQUIRE_TOOLS is set): {e}"),
    };
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("rendered YAML");
    Some(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// Evaluates `expression` with the policy's variables and `object` bound, as admission does.
fn eval(expression: &str, variables: &Value, object: &Value) -> cel::Value {
    let mut ctx = cel::Context::default().with_all();
    ctx.add_variable("object", object.clone()).expect("object");
    ctx.add_variable("variables", variables.clone())
        .expect("variables");
    cel::Program::compile(expression)
        .unwrap_or_else(|e| panic!("{expression}: {e}"))
        .execute(&ctx)
        .unwrap_or_else(|e| panic!("{expression}: {e}"))
}

/// A CEL list of strings as JSON (the only kind of variable the policy has).
fn strings(value: &cel::Value) -> Value {
    let cel::Value::List(items) = value else {
        panic!("a list: {value:?}");
    };
    items
        .iter()
        .map(|item| match item {
            cel::Value::String(s) => json!(s.as_str()),
            other => panic!("a string: {other:?}"),
        })
        .collect()
}

fn queue(image: Option<&str>) -> Value {
    let mut spec = json!({"strategy": {"type": "popular"}, "bundle": {"uri": "file:///b"}});
    if let Some(image) = image {
        spec["image"] = json!(image);
    }
    json!({"apiVersion": "kan.dev/v1alpha1", "kind": "RecallQueue", "spec": spec})
}

#[test]
fn without_an_allow_list_the_chart_renders_no_image_policy() {
    let Some(docs) = helm_template(&[]) else {
        return;
    };
    assert!(of_kind(&docs, "ValidatingAdmissionPolicy").is_empty());
    assert!(of_kind(&docs, "ValidatingAdmissionPolicyBinding").is_empty());
}

#[test]
fn the_image_policy_admits_allowed_prefixes_and_refuses_other_images_by_name() {
    let Some(docs) =
        helm_template(&["imagePolicy.allowedImagePrefixes={ghcr.io/kan-dev/kan:,registry.local/}"])
    else {
        return;
    };
    let policies = of_kind(&docs, "ValidatingAdmissionPolicy");
    assert_eq!(policies.len(), 1, "{docs:?}");
    let policy = &policies[0]["spec"];
    let bindings = of_kind(&docs, "ValidatingAdmissionPolicyBinding");
    assert_eq!(bindings.len(), 1);
    assert_eq!(
        bindings[0]["spec"]["policyName"],
        policies[0]["metadata"]["name"]
    );
    assert_eq!(bindings[0]["spec"]["validationActions"], json!(["Deny"]));
    let resources = &policy["matchConstraints"]["resourceRules"][0]["resources"];
    assert_eq!(resources, &json!(["recallqueues", "recallgateways"]));

    // Variables are CEL expressions themselves, evaluated before the validations.
    let mut variables = json!({});
    for v in policy["variables"].as_array().expect("variables") {
        let name = v["name"].as_str().expect("name");
        let value = eval(
            v["expression"].as_str().expect("expression"),
            &json!({}),
            &json!({}),
        );
        variables[name] = strings(&value);
    }
    let validation = &policy["validations"][0];
    let rule = validation["expression"].as_str().expect("expression");
    let message = validation["messageExpression"].as_str().expect("message");

    for allowed in [
        queue(None),
        queue(Some("ghcr.io/kan-dev/kan:0.1.0")),
        queue(Some("registry.local/team/kan:dev")),
    ] {
        assert_eq!(
            eval(rule, &variables, &allowed),
            cel::Value::Bool(true),
            "{allowed}"
        );
    }
    let refused = queue(Some("docker.io/evil/miner:latest"));
    assert_eq!(eval(rule, &variables, &refused), cel::Value::Bool(false));
    let cel::Value::String(text) = eval(message, &variables, &refused) else {
        panic!("the message is a string");
    };
    assert!(text.contains("docker.io/evil/miner:latest"), "{text}");
    assert!(text.contains("ghcr.io/kan-dev/kan:"), "{text}");
}

/// Every `kan_…` name in `text` (a PromQL expression or Rust source).
fn metric_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("kan_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// Every `.rs` file under the workspace crates' `src/`, with its text.
fn workspace_sources() -> Vec<(std::path::PathBuf, String)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut sources = Vec::new();
    let mut dirs: Vec<std::path::PathBuf> = std::fs::read_dir(root)
        .expect("workspace")
        .filter_map(|e| Some(e.ok()?.path().join("src")))
        .filter(|p| p.is_dir())
        .collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let source = std::fs::read_to_string(&path).expect("source");
                sources.push((path, source));
            }
        }
    }
    sources
}

/// The `kan_…` string literals of a source that are a whole metric-like name.
fn name_literals(source: &str) -> impl Iterator<Item = &str> {
    source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|literal| literal.starts_with("kan_") && metric_names(literal) == [*literal])
}

/// Metric names written as string literals in the workspace's library and binary sources.
fn emitted_metric_names() -> std::collections::BTreeSet<String> {
    workspace_sources()
        .iter()
        .flat_map(|(_, source)| name_literals(source).map(str::to_string))
        .collect()
}

#[test]
fn every_metric_name_is_defined_once_in_its_crates_metrics_module() {
    let prefixes = ["kan_gateway_", "kan_worker_", "kan_operator_", "kan_http_"];
    let mut defined = std::collections::BTreeMap::new();
    for (path, source) in workspace_sources() {
        let in_metrics_module = path.ends_with("src/metrics.rs");
        for name in name_literals(&source).filter(|n| prefixes.iter().any(|p| n.starts_with(p))) {
            assert!(
                in_metrics_module,
                "{}: the metric name {name} belongs in the crate's src/metrics.rs",
                path.display()
            );
            if let Some(other) = defined.insert(name.to_string(), path.clone()) {
                panic!(
                    "{name} is defined in {} and {}",
                    other.display(),
                    path.display()
                );
            }
        }
    }
    for crate_dir in ["gateway", "recall-worker", "operator", "http"] {
        assert!(
            defined
                .values()
                .any(|p| p.ends_with(format!("{crate_dir}/src/metrics.rs"))),
            "{crate_dir} defines no metric: {defined:?}"
        );
    }
}

#[test]
fn the_docs_name_every_operator_metric() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let docs: String = ["docs/operator.md", "docs/events.md"]
        .iter()
        .map(|d| std::fs::read_to_string(format!("{root}/{d}")).expect("doc"))
        .collect();
    let module =
        std::fs::read_to_string(format!("{root}/operator/src/metrics.rs")).expect("module");
    let names: Vec<&str> = name_literals(&module).collect();
    assert!(names.len() >= 6, "{names:?}");
    for name in names {
        assert!(
            docs.contains(&format!("`{name}")),
            "{name} is missing from docs/operator.md and docs/events.md"
        );
    }
}

fn dashboard() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../charts/kan/dashboards/kan.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("JSON")
}

#[test]
fn the_grafana_dashboard_queries_only_metrics_the_code_emits() {
    let emitted = emitted_metric_names();
    assert!(
        emitted.contains("kan_gateway_requests_total"),
        "{emitted:?}"
    );
    let dashboard = dashboard();
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "{}", panels.len());
    for panel in panels {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for target in targets {
            let expr = target["expr"].as_str().expect("expr");
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{expr}");
            for name in names {
                // Histograms are queried through their series.
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .filter(|base| emitted.contains(*base))
                    .unwrap_or(&name);
                assert!(
                    emitted.contains(base),
                    "panel {}: {name} is not a metric the code emits",
                    panel["title"]
                );
            }
        }
    }
}

#[test]
fn the_chart_ships_the_dashboard_for_grafanas_sidecar_when_enabled() {
    let Some(docs) = helm_template(&["grafanaDashboard.enabled=true"]) else {
        return;
    };
    let maps: Vec<&Value> = of_kind(&docs, "ConfigMap")
        .into_iter()
        .filter(|m| m["metadata"]["labels"]["grafana_dashboard"] == "1")
        .collect();
    assert_eq!(maps.len(), 1);
    let shipped: Value =
        serde_json::from_str(maps[0]["data"]["kan.json"].as_str().expect("kan.json"))
            .expect("JSON");
    assert_eq!(shipped, dashboard());
    let Some(off) = helm_template(&[]) else {
        return;
    };
    assert!(
        of_kind(&off, "ConfigMap")
            .iter()
            .all(|m| m["metadata"]["labels"]["grafana_dashboard"].is_null())
    );
}
