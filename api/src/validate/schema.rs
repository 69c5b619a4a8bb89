//! Per-field rules read from the generated schema: the ranges, lengths, list sizes, patterns,
//! enums and list uniqueness the CRDs declare (`#[schemars(...)]` on the types, written out by
//! `kan crd`) are checked here against a document's JSON, so code paths without an API server
//! enforce exactly what the API server does. Only cross-field rules are written by hand
//! ([`super`]).

use std::collections::BTreeSet;
use std::sync::LazyLock;

use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::crd::{PropensitySpec, RecallExperiment, RecallGateway, RecallQueue};
use crate::error::{Collector, ValidationErrors};
use crate::routing::RoutingConfig;

static QUEUE_SPEC: LazyLock<Value> = LazyLock::new(|| spec_of(RecallQueue::crd()));
static GATEWAY_SPEC: LazyLock<Value> = LazyLock::new(|| spec_of(RecallGateway::crd()));
static EXPERIMENT_SPEC: LazyLock<Value> = LazyLock::new(|| spec_of(RecallExperiment::crd()));
static ROUTING_CONFIG: LazyLock<Value> = LazyLock::new(of::<RoutingConfig>);
static PROPENSITY: LazyLock<Value> = LazyLock::new(of::<PropensitySpec>);

/// The schema of `spec` in the RecallQueue CRD.
pub fn queue_spec() -> &'static Value {
    &QUEUE_SPEC
}

/// The schema of `spec` in the RecallGateway CRD.
pub fn gateway_spec() -> &'static Value {
    &GATEWAY_SPEC
}

/// The schema of `spec` in the RecallExperiment CRD.
pub fn experiment_spec() -> &'static Value {
    &EXPERIMENT_SPEC
}

/// The schema of the gateway's routing config, generated as the CRDs are.
pub fn routing_config() -> &'static Value {
    &ROUTING_CONFIG
}

/// The schema of a propensity stage, generated as the CRDs are.
pub fn propensity() -> &'static Value {
    &PROPENSITY
}

/// The structural schema of `T`, generated with the settings kube-derive uses for a CRD (inlined
/// subschemas, `nullable`, structural rewrites), so a type's rules read the same here as in
/// `kan crd`.
fn of<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(schemars::transform::AddNullable::default())
        .with_transform(kube::core::schema::StructuralSchemaRewriter)
        .with_transform(kube::core::schema::OptionalEnum)
        .with_transform(kube::core::schema::OptionalIntOrString)
        .into_generator();
    generator.into_root_schema_for::<T>().to_value()
}

/// The `spec` property of a CRD's (only) version.
fn spec_of(
    crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    let schema = crd
        .spec
        .versions
        .into_iter()
        .next()
        .and_then(|v| v.schema)
        .and_then(|s| s.open_api_v3_schema);
    serde_json::to_value(schema).map_or(Value::Null, |mut v| v["properties"]["spec"].take())
}

/// Checks `document` against `schema`; field paths are relative to the document.
pub fn check(schema: &Value, document: &impl Serialize) -> Result<(), ValidationErrors> {
    let mut c = Collector::default();
    check_into(&mut c, schema, document, "");
    c.finish()
}

/// [`check`], adding the errors to `c` with field paths under `field`.
pub(crate) fn check_into(
    c: &mut Collector,
    schema: &Value,
    document: &impl Serialize,
    field: &str,
) {
    match serde_json::to_value(document) {
        Ok(value) => walk(c, schema, &value, field),
        Err(e) => c.push(field, format!("cannot be checked: {e}")),
    }
}

fn child(field: &str, key: &str) -> String {
    if field.is_empty() {
        key.to_string()
    } else {
        format!("{field}.{key}")
    }
}

fn walk(c: &mut Collector, schema: &Value, value: &Value, field: &str) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    match value {
        // serde_json writes a NaN or infinite float as null; an unset optional number is
        // skipped, never written as null.
        Value::Null => c.check(
            schema.get("type").and_then(Value::as_str) != Some("number"),
            field,
            "must be a finite number",
        ),
        Value::Number(n) => {
            if let Some(n) = n.as_f64() {
                number(c, schema, n, field);
            }
        }
        Value::String(s) => string(c, schema, s, field),
        Value::Array(items) => {
            array(c, schema, items, field);
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    walk(c, item, v, &format!("{field}[{i}]"));
                }
            }
        }
        Value::Object(o) => object(c, schema, o, field),
        Value::Bool(_) => {}
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !value.is_null()
        && !allowed.contains(value)
    {
        let names: Vec<String> = allowed.iter().map(plain).collect();
        c.push(
            field,
            format!(
                "must be one of {}, got `{}`",
                names.join(", "),
                plain(value)
            ),
        );
    }
}

/// A JSON value as a user wrote it (strings without quotes).
fn plain(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn bound(schema: &Map<String, Value>, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

fn number(c: &mut Collector, schema: &Map<String, Value>, n: f64, field: &str) {
    let flag = |key| schema.get(key).and_then(Value::as_bool).unwrap_or(false);
    let (min, max) = (bound(schema, "minimum"), bound(schema, "maximum"));
    let (min_excl, max_excl) = (flag("exclusiveMinimum"), flag("exclusiveMaximum"));
    let above_min = min.is_none_or(|m| if min_excl { n > m } else { n >= m });
    let below_max = max.is_none_or(|m| if max_excl { n < m } else { n <= m });
    if above_min && below_max {
        return;
    }
    let message = match (min, max) {
        (Some(min), Some(max)) if !min_excl && !max_excl => {
            format!("must be between {min} and {max}, got {n}")
        }
        (Some(min), Some(max)) => format!(
            "must be {} {min} and {} {max}, got {n}",
            if min_excl { "above" } else { "at least" },
            if max_excl { "below" } else { "at most" },
        ),
        (Some(min), None) if min_excl => format!("must be above {min}, got {n}"),
        (Some(min), None) => format!("must be at least {min}, got {n}"),
        (None, Some(max)) if max_excl => format!("must be below {max}, got {n}"),
        (None, Some(max)) => format!("must be at most {max}, got {n}"),
        (None, None) => return,
    };
    c.push(field, message);
}

/// `(min, max)` of a count, or `None` when the value is within them.
fn out_of(schema: &Map<String, Value>, min: &str, max: &str, n: usize) -> Option<String> {
    let count = |key| schema.get(key).and_then(Value::as_u64);
    let (min, max) = (count(min), count(max));
    let n = n as u64;
    if min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m) {
        return None;
    }
    Some(match (min, max) {
        (Some(min), Some(max)) if min == max => format!("exactly {min}"),
        (Some(min), Some(max)) => format!("between {min} and {max}"),
        (Some(min), None) => format!("at least {min}"),
        (None, Some(max)) => format!("at most {max}"),
        (None, None) => return None,
    })
}

fn string(c: &mut Collector, schema: &Map<String, Value>, s: &str, field: &str) {
    // The API server counts characters, not bytes.
    let len = s.chars().count();
    if let Some(wanted) = out_of(schema, "minLength", "maxLength", len) {
        let message = if len == 0 {
            "must not be empty".to_string()
        } else {
            format!("must be {wanted} characters long, got {len}")
        };
        c.push(field, message);
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        match regex::Regex::new(pattern) {
            Ok(re) => c.check(
                re.is_match(s),
                field,
                format!("must match the regular expression `{pattern}`, got `{s}`"),
            ),
            Err(e) => c.push(
                field,
                format!("the schema's pattern `{pattern}` is invalid: {e}"),
            ),
        }
    }
}

fn array(c: &mut Collector, schema: &Map<String, Value>, items: &[Value], field: &str) {
    if let Some(wanted) = out_of(schema, "minItems", "maxItems", items.len()) {
        c.push(
            field,
            format!("needs {wanted} entries, got {}", items.len()),
        );
    }
    // Entries the API server requires to be unique: whole values (`set`) or key fields (`map`).
    let keys: Vec<&str> = match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => Vec::new(),
        Some("map") => schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|keys| keys.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default(),
        _ => return,
    };
    let mut seen = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let identity: Vec<String> = if keys.is_empty() {
            vec![plain(item)]
        } else {
            keys.iter().map(|k| plain(&item[*k])).collect()
        };
        if !seen.insert(identity.clone()) {
            let at = match keys.as_slice() {
                [key] => format!("{field}[{i}].{key}"),
                _ => format!("{field}[{i}]"),
            };
            c.push(at, format!("`{}` is listed twice", identity.join(", ")));
        }
    }
}

fn object(c: &mut Collector, schema: &Map<String, Value>, o: &Map<String, Value>, field: &str) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (key, value) in o {
        if let Some(property) = properties.and_then(|p| p.get(key)).or(additional) {
            walk(c, property, value, &child(field, key));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn errors(schema: Value, document: Value) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = match check(&schema, &document) {
            Ok(()) => Vec::new(),
            Err(e) => e.0.into_iter().map(|e| (e.field, e.message)).collect(),
        };
        found.sort();
        found
    }

    #[test]
    fn numbers_are_checked_against_inclusive_and_exclusive_bounds() {
        let schema = json!({"properties": {
            "a": {"type": "integer", "minimum": 1, "maximum": 2},
            "b": {"type": "number", "minimum": 0.0, "maximum": 100.0, "exclusiveMinimum": true},
        }});
        assert!(errors(schema.clone(), json!({"a": 2, "b": 100.0})).is_empty());
        assert_eq!(
            errors(schema.clone(), json!({"a": 3, "b": 0.0})),
            [
                ("a".into(), "must be between 1 and 2, got 3".into()),
                ("b".into(), "must be above 0 and at most 100, got 0".into()),
            ]
        );
    }

    #[test]
    fn a_non_finite_number_is_refused_where_serde_json_wrote_null() {
        let schema = json!({"properties": {"w": {"type": "number"}, "o": {"type": "integer", "nullable": true}}});
        let document = json!({"w": f64::NAN, "o": null});
        assert_eq!(
            errors(schema, document),
            [("w".into(), "must be a finite number".into())]
        );
    }

    #[test]
    fn strings_are_measured_in_characters_and_matched_against_their_pattern() {
        let schema = json!({"properties": {
            "s": {"type": "string", "minLength": 1, "maxLength": 3},
            "p": {"type": "string", "pattern": "\\S"},
        }});
        assert!(errors(schema.clone(), json!({"s": "ééé", "p": " x"})).is_empty());
        assert_eq!(
            errors(schema.clone(), json!({"s": "abcd", "p": "  "})),
            [
                (
                    "p".into(),
                    "must match the regular expression `\\S`, got `  `".into()
                ),
                (
                    "s".into(),
                    "must be between 1 and 3 characters long, got 4".into()
                ),
            ]
        );
        assert_eq!(
            errors(schema, json!({"s": ""})),
            [("s".into(), "must not be empty".into())]
        );
    }

    #[test]
    fn lists_are_counted_and_their_entries_checked_with_indexed_paths() {
        let schema = json!({"properties": {"l": {
            "type": "array", "minItems": 1, "maxItems": 2,
            "items": {"type": "string", "enum": ["x", "y"]},
        }}});
        assert_eq!(
            errors(schema.clone(), json!({"l": ["x", "z", "y"]})),
            [
                ("l".into(), "needs between 1 and 2 entries, got 3".into()),
                ("l[1]".into(), "must be one of x, y, got `z`".into()),
            ]
        );
        assert_eq!(
            errors(schema, json!({"l": []})),
            [("l".into(), "needs between 1 and 2 entries, got 0".into())]
        );
    }

    #[test]
    fn set_and_map_lists_refuse_repeated_entries() {
        let schema = json!({"properties": {
            "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
            "map": {"type": "array", "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"], "items": {"type": "object"}},
        }});
        let document = json!({
            "set": ["a", "b", "a"],
            "map": [{"name": "q", "w": 1}, {"name": "q", "w": 2}, {"name": "r"}],
        });
        assert_eq!(
            errors(schema, document),
            [
                ("map[1].name".into(), "`q` is listed twice".into()),
                ("set[2]".into(), "`a` is listed twice".into()),
            ]
        );
    }

    #[test]
    fn map_values_follow_additional_properties() {
        let schema = json!({"properties": {"m": {
            "type": "object", "additionalProperties": {"type": "integer", "maximum": 5},
        }}});
        assert_eq!(
            errors(schema, json!({"m": {"k": 6}})),
            [("m.k".into(), "must be at most 5, got 6".into())]
        );
    }
}
