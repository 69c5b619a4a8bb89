//! The generated schema is the one source of every per-field bound. Each bound the CRDs (and the
//! gateway's routing config) declare is enforced by the offline validators at its field, a value
//! just inside it passes there, no number is left unbounded unless listed below, and no CEL rule
//! restates a range. A range written in one place only fails here: in the schema only, the
//! offline check is missing; in validator code only, an in-range or unbounded value is refused;
//! in a CEL rule only, the CEL check below names it.

use std::collections::BTreeSet;

use kan_api::ValidationErrors;
use kan_api::crd::*;
use kan_api::routing::RoutingConfig;
use kan_api::validate;
use kube::CustomResourceExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Numbers without a bound on purpose, as path templates (`[]` stands for any list index).
const UNBOUNDED: &[&str] = &[
    // Any seed is as good as another.
    "strategy.exploratory.seed",
    // An editor's score, on whatever scale the editor likes.
    "strategy.operational.items[].score",
];

/// One kind of document: its schema, documents that reach every bounded field, and its
/// validator (the field paths of the errors; the document must deserialize).
struct Kind {
    name: &'static str,
    schema: Value,
    examples: Vec<Value>,
    errors: fn(&Value) -> Vec<String>,
}

fn fields<T: DeserializeOwned>(
    document: &Value,
    check: fn(&T) -> Result<(), ValidationErrors>,
) -> Vec<String> {
    let typed: T = serde_json::from_value(document.clone())
        .unwrap_or_else(|e| panic!("{document}\ndoes not deserialize: {e}"));
    check(&typed)
        .err()
        .map(|e| e.0.into_iter().map(|e| e.field).collect())
        .unwrap_or_default()
}

/// `document` with its defaults written out (through the typed spec).
fn materialize<T: DeserializeOwned + Serialize>(document: Value) -> Value {
    let typed: T = serde_json::from_value(document.clone())
        .unwrap_or_else(|e| panic!("{document}\ndoes not deserialize: {e}"));
    serde_json::to_value(typed).expect("serializes")
}

fn crd_spec(
    crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    let crd = serde_json::to_value(crd).expect("CRD as JSON");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

fn queue_examples() -> Vec<Value> {
    let base = json!({
        "candidates": 1,
        "maxCandidates": 10000,
        "replicas": 1,
        "image": "ghcr.io/kan-dev/kan:dev",
        "startupTimeoutSeconds": 600,
        "bundle": {
            "uri": "s3://bundles/q",
            "sha256": "abc",
            "endpoint": "http://minio:9000",
            "credentialsSecretRef": {"name": "s3"},
        },
        "index": {"type": "embedded", "hnsw": {}},
        "signals": {"redis": {"url": "redis://redis:6379", "secretRef": {"name": "redis"}}},
    });
    let with = |changes: Value| {
        let mut spec = base.clone();
        for (k, v) in changes.as_object().expect("object") {
            if v.is_null() {
                spec.as_object_mut().expect("object").remove(k);
            } else {
                spec[k] = v.clone();
            }
        }
        materialize::<RecallQueueSpec>(spec)
    };
    let mut examples: Vec<Value> = [
        json!({"type": "dssm", "dssm": {"scoreThreshold": 0.5}}),
        json!({"type": "gat", "gat": {"scoreThreshold": 0.5}}),
        json!({"type": "spectral", "spectral": {"scoreThreshold": 0.5}}),
        json!({"type": "sequence", "sequence": {"scoreThreshold": 0.5}}),
        json!({"type": "item2vec"}),
        json!({"type": "itemcf"}),
        json!({"type": "social"}),
        json!({"type": "exploratory"}),
        json!({"type": "popular", "popular": {"segmentBy": ["age_band"], "trending": {}, "newItems": 5}}),
        json!({"type": "attribute", "attribute": {"kgExpansion": true}}),
        json!({"type": "operational", "operational": {"items": [{
            "itemId": "a", "score": 1.0,
            "start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z",
        }]}}),
    ]
    .into_iter()
    .map(|strategy| with(json!({"strategy": strategy})))
    .collect();
    examples.push(with(json!({
        "strategy": {"type": "dssm"},
        "index": {"type": "qdrant", "qdrant": {
            "url": "http://qdrant:6334",
            "collection": "items",
            "apiKeySecret": {"name": "qdrant", "key": "api-key"},
            "search": {"hnswEf": 128},
            "collections": {},
        }},
    })));
    examples.push(with(json!({
        "strategy": {"type": "dssm"},
        "replicas": null,
        "autoscaling": {"minReplicas": 1, "maxReplicas": 1000},
        "resources": {"requests": {"cpu": "500m"}},
    })));
    examples
}

fn queue_routes() -> Value {
    json!([{"name": "a", "quota": 1, "weight": 1.0, "timeoutMs": 1, "hedgeAfterMs": 1}])
}

fn filters() -> Value {
    json!({
        "blocklist": ["x"],
        "maxPerSource": 1,
        "propensity": {"table": "bundles/popular", "keys": ["region"], "minLift": 1.0},
    })
}

fn arms() -> Value {
    json!([{"name": "control", "weight": 100, "queues": queue_routes(), "merge": {}, "fallback": "a"}])
}

fn gateway_example() -> Value {
    materialize::<RecallGatewaySpec>(json!({
        "queues": queue_routes(),
        "filters": filters(),
        "fallback": "a",
        "deadlineMs": 60000,
        "circuitBreaker": {},
        "exposureLog": "/var/log/kan/exposures.jsonl",
        "image": "ghcr.io/kan-dev/kan:dev",
        "signals": {"redis": {"url": "redis://redis:6379", "secretRef": {"name": "redis"}}},
    }))
}

fn experiment_example() -> Value {
    materialize::<RecallExperimentSpec>(json!({
        "gateway": "feed",
        "salt": "s",
        "traffic": 0,
        "arms": arms(),
    }))
}

fn routing_example() -> Value {
    materialize::<RoutingConfig>(json!({
        "gateway": "feed",
        "endpoints": {"a": "http://a:8080"},
        "queues": queue_routes(),
        "filters": filters(),
        "fallback": "a",
        "deadlineMs": 60000,
        "circuitBreaker": {},
        "exposureLog": "/var/log/kan/exposures.jsonl",
        "experiments": [{
            "name": "e", "layer": "recall", "salt": "s",
            "buckets": {"start": 0, "end": 10000},
            "arms": arms(),
        }],
    }))
}

fn kinds() -> Vec<Kind> {
    vec![
        Kind {
            name: "RecallQueue",
            schema: crd_spec(RecallQueue::crd()),
            examples: queue_examples(),
            errors: |d| fields::<RecallQueueSpec>(d, validate::queue_spec),
        },
        Kind {
            name: "RecallGateway",
            schema: crd_spec(RecallGateway::crd()),
            examples: vec![gateway_example()],
            errors: |d| fields::<RecallGatewaySpec>(d, validate::gateway_spec),
        },
        Kind {
            name: "RecallExperiment",
            schema: crd_spec(RecallExperiment::crd()),
            examples: vec![experiment_example()],
            errors: |d| fields::<RecallExperimentSpec>(d, validate::experiment_spec),
        },
        Kind {
            name: "routing config",
            schema: validate::schema::routing_config().clone(),
            examples: vec![routing_example()],
            errors: |d| fields::<RoutingConfig>(d, validate::routing_config),
        },
    ]
}

const BOUNDS: [&str; 6] = [
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
];

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Path templates of every schema node with a bound, and of every number.
fn schema_nodes(
    schema: &Value,
    template: &str,
    bounded: &mut BTreeSet<String>,
    numbers: &mut BTreeSet<String>,
) {
    if BOUNDS.iter().any(|b| schema.get(b).is_some()) {
        bounded.insert(template.to_string());
    }
    if matches!(schema["type"].as_str(), Some("integer" | "number")) {
        numbers.insert(template.to_string());
    }
    if let Some(properties) = schema["properties"].as_object() {
        for (key, property) in properties {
            schema_nodes(property, &join(template, key), bounded, numbers);
        }
    }
    if schema["items"].is_object() {
        schema_nodes(&schema["items"], &format!("{template}[]"), bounded, numbers);
    }
    if schema["additionalProperties"].is_object() {
        schema_nodes(
            &schema["additionalProperties"],
            &join(template, "*"),
            bounded,
            numbers,
        );
    }
}

/// One field of an example: where it is, its path template, and its schema.
struct Field {
    path: Vec<Step>,
    field: String,
    template: String,
    schema: Value,
}

#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn example_fields(schema: &Value, value: &Value, at: &Field, out: &mut Vec<Field>) {
    out.push(Field {
        path: at.path.clone(),
        field: at.field.clone(),
        template: at.template.clone(),
        schema: schema.clone(),
    });
    match value {
        Value::Object(o) => {
            for (key, v) in o {
                let (property, template_key) = match schema["properties"].get(key) {
                    Some(p) => (p, key.as_str()),
                    None if schema["additionalProperties"].is_object() => {
                        (&schema["additionalProperties"], "*")
                    }
                    None => continue,
                };
                let mut path = at.path.clone();
                path.push(Step::Key(key.clone()));
                let next = Field {
                    path,
                    field: join(&at.field, key),
                    template: join(&at.template, template_key),
                    schema: Value::Null,
                };
                example_fields(property, v, &next, out);
            }
        }
        Value::Array(items) if schema["items"].is_object() => {
            for (i, v) in items.iter().enumerate() {
                let mut path = at.path.clone();
                path.push(Step::Index(i));
                let next = Field {
                    path,
                    field: format!("{}[{i}]", at.field),
                    template: format!("{}[]", at.template),
                    schema: Value::Null,
                };
                example_fields(&schema["items"], v, &next, out);
            }
        }
        _ => {}
    }
}

fn with_value(document: &Value, path: &[Step], value: Value) -> Value {
    let mut document = document.clone();
    let mut at = &mut document;
    for step in path {
        at = match step {
            Step::Key(k) => &mut at[k.as_str()],
            Step::Index(i) => &mut at[*i],
        };
    }
    *at = value;
    document
}

fn get<'a>(document: &'a Value, path: &[Step]) -> &'a Value {
    path.iter().fold(document, |at, step| match step {
        Step::Key(k) => &at[k.as_str()],
        Step::Index(i) => &at[*i],
    })
}

/// Values just inside and just outside each bound of a field, as (value, inside).
fn probes(schema: &Value, current: &Value) -> Vec<(Value, bool)> {
    let mut probes = Vec::new();
    let number = |n: f64, integer: bool| {
        if integer { json!(n as i64) } else { json!(n) }
    };
    match schema["type"].as_str() {
        Some(t @ ("integer" | "number")) => {
            let integer = t == "integer";
            let step = if integer { 1.0 } else { 0.5 };
            let (min, max) = (schema["minimum"].as_f64(), schema["maximum"].as_f64());
            if let Some(min) = min {
                let exclusive = schema["exclusiveMinimum"] == true;
                probes.push((number(min, integer), !exclusive));
                probes.push((number(min - step, integer), false));
            }
            if let Some(max) = max {
                probes.push((number(max, integer), true));
                probes.push((number(max + step, integer), false));
            }
            if min.is_none() && max.is_none() {
                // Unbounded: the largest values the type holds must pass.
                let extreme = match (integer, schema["format"].as_str()) {
                    (true, Some("int32")) => json!(i32::MAX),
                    (true, _) => json!(i64::MAX),
                    (false, _) => json!(1e300),
                };
                let lowest = match (integer, schema["format"].as_str()) {
                    (true, Some("int32")) => json!(i32::MIN),
                    (true, _) => json!(i64::MIN),
                    (false, _) => json!(-1e300),
                };
                probes.push((extreme, true));
                probes.push((lowest, true));
            }
        }
        Some("string") => {
            let s = current.as_str().unwrap_or_default();
            if let Some(max) = schema["maxLength"].as_u64() {
                let mut long = s.to_string();
                while (long.chars().count() as u64) <= max {
                    long.push('a');
                }
                probes.push((json!(long), false));
            }
            if schema["minLength"].as_u64().is_some_and(|min| min > 0) {
                probes.push((json!(""), false));
            }
        }
        Some("array") => {
            let items = current.as_array().cloned().unwrap_or_default();
            if let (Some(max), Some(last)) = (schema["maxItems"].as_u64(), items.last()) {
                let mut long = items.clone();
                long.resize(max as usize + 1, last.clone());
                probes.push((json!(long), false));
            }
            if let Some(min) = schema["minItems"].as_u64().filter(|m| *m > 0) {
                probes.push((json!(items[..min as usize - 1].to_vec()), false));
            }
        }
        _ => {}
    }
    probes
}

#[test]
fn every_schema_bound_is_enforced_offline_and_nothing_narrower() {
    let mut failures = Vec::new();
    let mut every_number = BTreeSet::new();
    for kind in kinds() {
        let (mut bounded, mut numbers) = (BTreeSet::new(), BTreeSet::new());
        schema_nodes(&kind.schema, "", &mut bounded, &mut numbers);
        every_number.extend(numbers.iter().cloned());
        assert!(bounded.len() > 5, "{}: {bounded:?}", kind.name);
        let mut reached = BTreeSet::new();
        for example in &kind.examples {
            let found = (kind.errors)(example);
            assert!(
                found.is_empty(),
                "{}: the example is invalid: {found:?}\n{example}",
                kind.name
            );
            let root = Field {
                path: Vec::new(),
                field: String::new(),
                template: String::new(),
                schema: Value::Null,
            };
            let mut all = Vec::new();
            example_fields(&kind.schema, example, &root, &mut all);
            for field in all {
                let current = get(example, &field.path);
                let probes = probes(&field.schema, current);
                if !probes.is_empty() {
                    reached.insert(field.template.clone());
                }
                for (value, inside) in probes {
                    let shown = value.to_string().chars().take(40).collect::<String>();
                    let errors = (kind.errors)(&with_value(example, &field.path, value));
                    let refused = errors.contains(&field.field);
                    if refused == inside {
                        failures.push(format!(
                            "{} {}: {shown} is {} the schema but the validator {}",
                            kind.name,
                            field.field,
                            if inside { "inside" } else { "outside" },
                            if refused { "refuses it" } else { "accepts it" },
                        ));
                    }
                }
            }
        }
        for template in &numbers {
            let listed = UNBOUNDED.contains(&template.as_str());
            if bounded.contains(template) == listed {
                failures.push(format!(
                    "{} {template}: {}",
                    kind.name,
                    if listed {
                        "is bounded in the schema: take it off UNBOUNDED"
                    } else {
                        "a number without a schema range: add #[schemars(range(...))] or list it in UNBOUNDED"
                    }
                ));
            }
        }
        for template in bounded.difference(&reached) {
            failures.push(format!(
                "{} {template}: no example reaches this bounded field: extend the examples",
                kind.name
            ));
        }
    }
    for listed in UNBOUNDED {
        if !every_number.contains(*listed) {
            failures.push(format!(
                "UNBOUNDED lists {listed}, which is no number of any schema"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn no_cel_rule_restates_a_range() {
    // A rule made only of comparisons of one field with literals is a range: it belongs in the
    // schema, where the offline validators and `kubectl explain` see it.
    let range = regex::Regex::new(
        r"^\s*self\.\w+\s*[<>]=?\s*-?[0-9.]+(\s*&&\s*self\.\w+\s*[<>]=?\s*-?[0-9.]+)*\s*$",
    )
    .expect("regex");
    let mut rules = Vec::new();
    fn collect(schema: &Value, rules: &mut Vec<String>) {
        match schema {
            Value::Object(o) => {
                if let Some(list) = o.get("x-kubernetes-validations").and_then(Value::as_array) {
                    rules.extend(
                        list.iter()
                            .filter_map(|r| r["rule"].as_str().map(String::from)),
                    );
                }
                o.values().for_each(|v| collect(v, rules));
            }
            Value::Array(a) => a.iter().for_each(|v| collect(v, rules)),
            _ => {}
        }
    }
    for crd in all_crds() {
        collect(&serde_json::to_value(crd).expect("json"), &mut rules);
    }
    assert!(rules.len() > 10, "{rules:?}");
    let ranges: Vec<&String> = rules.iter().filter(|r| range.is_match(r)).collect();
    assert!(ranges.is_empty(), "ranges written as CEL rules: {ranges:?}");
    assert!(range.is_match("self.kgHops >= 1 && self.kgHops <= 2"));
}

/// The schema without what may differ between a spec and the routing config rendered from it:
/// doc comments, defaults, and optionality (a config holds what the spec's defaults resolve to).
/// Numbers compare as floats: the CRD stores every bound as one.
fn rules_only(schema: &Value) -> Value {
    match schema {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(k, _)| !["description", "default", "nullable"].contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), rules_only(v)))
                .collect(),
        ),
        Value::Number(n) => json!(n.as_f64()),
        other => other.clone(),
    }
}

#[test]
fn a_routing_config_is_held_to_the_rules_of_the_gateway_and_experiments_it_comes_from() {
    let routing = validate::schema::routing_config();
    let gateway = crd_spec(RecallGateway::crd());
    let experiment = crd_spec(RecallExperiment::crd());
    for key in [
        "queues",
        "merge",
        "filters",
        "fallback",
        "deadlineMs",
        "circuitBreaker",
        "exposureLog",
    ] {
        assert_eq!(
            rules_only(&routing["properties"][key]),
            rules_only(&gateway["properties"][key]),
            "{key}"
        );
    }
    let experiment_route = &routing["properties"]["experiments"]["items"]["properties"];
    for key in ["arms", "layer", "salt"] {
        assert_eq!(
            rules_only(&experiment_route[key]),
            rules_only(&experiment["properties"][key]),
            "{key}"
        );
    }
}
