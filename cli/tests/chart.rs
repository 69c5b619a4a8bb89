//! The Helm chart's image allow-list (`imagePolicy.allowedImagePrefixes`), rendered by `helm
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
