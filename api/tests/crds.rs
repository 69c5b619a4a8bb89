//! The generated CRDs: committed copies match the code, and every schema is structural
//! (the API server rejects non-structural schemas).

use std::path::PathBuf;

use kan_api::crd::{all_crds, crd_files};
use serde_json::Value;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn committed_crds_match_the_generated_ones() {
    let bless = std::env::var_os("KAN_BLESS").is_some();
    for (file, generated) in crd_files().expect("CRDs render") {
        let path = repo_root().join("crds").join(&file);
        if bless {
            std::fs::write(&path, &generated).expect("writing crds/");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!(
                "{} is missing: run `make crds` (KAN_BLESS=1 cargo test -p kan-api --test crds)",
                path.display()
            )
        });
        assert!(
            committed == generated,
            "{} differs from what the code generates: run `make crds` (KAN_BLESS=1 cargo test -p kan-api --test crds) and commit the result",
            path.display()
        );
    }
}

/// Collects the structural-schema violations under `node` (Kubernetes' rules for
/// `apiextensions.k8s.io/v1`: every node typed, no `$ref`, no `type`/`default`/`nullable` inside
/// logical junctors, properties and additionalProperties not both set).
fn structural_violations(node: &Value, path: &str, out: &mut Vec<String>) {
    let Some(obj) = node.as_object() else { return };
    let escape = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
        || obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if !obj.contains_key("type") && !escape {
        out.push(format!("{path}: no type"));
    }
    if obj.contains_key("$ref") {
        out.push(format!("{path}: $ref is not allowed"));
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        out.push(format!(
            "{path}: properties and additionalProperties both set"
        ));
    }
    for junctor in ["anyOf", "oneOf", "allOf"] {
        for (i, branch) in obj
            .get(junctor)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            for forbidden in [
                "type",
                "default",
                "nullable",
                "description",
                "additionalProperties",
            ] {
                if branch.get(forbidden).is_some() {
                    out.push(format!(
                        "{path}.{junctor}[{i}]: '{forbidden}' inside a junctor"
                    ));
                }
            }
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, child) in props {
            structural_violations(child, &format!("{path}.{name}"), out);
        }
    }
    if let Some(items) = obj.get("items") {
        structural_violations(items, &format!("{path}[]"), out);
    }
    if let Some(extra) = obj.get("additionalProperties").filter(|v| v.is_object()) {
        structural_violations(extra, &format!("{path}{{}}"), out);
    }
}

#[test]
fn every_crd_schema_is_structural() {
    for crd in all_crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        for version in &crd.spec.versions {
            let schema = version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("schema");
            let json = serde_json::to_value(schema).expect("json");
            let mut violations = Vec::new();
            structural_violations(&json, &name, &mut violations);
            assert!(
                violations.is_empty(),
                "{name} is not structural:\n{}",
                violations.join("\n")
            );
        }
    }
}

#[test]
fn structural_check_catches_untyped_nodes() {
    let bad =
        serde_json::json!({"type": "object", "properties": {"x": {"description": "no type"}}});
    let mut v = Vec::new();
    structural_violations(&bad, "root", &mut v);
    assert_eq!(v, vec!["root.x: no type".to_string()]);
}

#[test]
fn crds_have_short_names_categories_status_and_printer_columns() {
    let expected = [
        ("recallqueues.kan.dev", "rq"),
        ("recallgateways.kan.dev", "rgw"),
        ("recallexperiments.kan.dev", "rexp"),
    ];
    for (crd, (name, short)) in all_crds().iter().zip(expected) {
        assert_eq!(crd.metadata.name.as_deref(), Some(name));
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&[short.to_string()][..])
        );
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["kan".to_string()][..])
        );
        assert_eq!(crd.spec.scope, "Namespaced");
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{name} has a status subresource"
        );
        assert!(
            v.additional_printer_columns
                .as_ref()
                .is_some_and(|c| c.len() >= 4),
            "{name} printer columns"
        );
    }
    let queue_columns: Vec<String> = all_crds()[0].spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(
        queue_columns,
        ["Strategy", "Ready", "Replicas", "Version", "Age"]
    );
}

#[test]
fn every_schema_field_has_a_description_for_kubectl_explain() {
    fn walk(node: &Value, path: &str, out: &mut Vec<String>) {
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (name, child) in props {
                let p = format!("{path}.{name}");
                // metadata, apiVersion and kind are described by Kubernetes itself.
                let inherited =
                    path.is_empty() && matches!(name.as_str(), "metadata" | "apiVersion" | "kind");
                if child.get("description").is_none() && !inherited && !p.contains(".resources.") {
                    out.push(p.clone());
                }
                walk(child, &p, out);
            }
        }
        if let Some(items) = node.get("items") {
            walk(items, path, out);
        }
    }
    for crd in all_crds() {
        let schema = crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("schema");
        let mut missing = Vec::new();
        walk(
            &serde_json::to_value(schema).expect("json"),
            "",
            &mut missing,
        );
        let name = crd.metadata.name.clone().unwrap_or_default();
        assert!(
            missing.is_empty(),
            "{name}: fields without a description: {missing:?}"
        );
    }
}
