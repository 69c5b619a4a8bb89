//! `POST /v1/items`: items published after the bundle was trained, with their tags (and, for
//! queues with item vectors, a content vector), so queues recall them before the next training.
//!
//! ```json
//! {"items": [{"id": "m9001", "tags": ["Comedy", "director:m.0abc"]}]}
//! ```
//!
//! Every fault names its field (`items[2].tags[0]`); a request with any fault changes nothing.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::MAX_ID_LEN;
use crate::error::ValidationError;

/// Most items one request may add.
pub const MAX_ITEMS_PER_REQUEST: usize = 1000;
/// Most tags one item may carry.
pub const MAX_TAGS_PER_ITEM: usize = 64;
/// Longest tag name.
pub const MAX_TAG_LEN: usize = 256;
/// Longest content vector.
pub const MAX_VECTOR_LEN: usize = 4096;

/// One item added after training.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    pub id: String,
    /// Tag and entity names as the bundle lists them (`tags.txt`); may be empty for queues that
    /// do not recall by tags (popular, vector queues).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Optional content vector (finite values); only a queue with item vectors of this
    /// dimension can use one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
}

/// `POST /v1/items` body.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ItemsRequest {
    pub items: Vec<NewItem>,
}

/// The answer: how many items the request added or replaced, and how many added items the
/// queue now holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ItemsResponse {
    pub queue: String,
    pub accepted: usize,
    pub added_items: usize,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> ValidationError {
    ValidationError::new(field, message)
}

fn text(v: &Value, field: &str, max: usize) -> Result<String, ValidationError> {
    let s = v.as_str().ok_or_else(|| bad(field, "must be a string"))?;
    if s.is_empty() || s.len() > max || s.chars().any(char::is_control) {
        return Err(bad(
            field,
            format!("must be 1 to {max} bytes without control characters"),
        ));
    }
    Ok(s.to_string())
}

fn item(v: &Value, at: &str) -> Result<NewItem, ValidationError> {
    let obj = v
        .as_object()
        .ok_or_else(|| bad(at, "must be an object {\"id\", \"tags\", \"vector\"?}"))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "id" | "tags" | "vector"))
    {
        return Err(bad(
            format!("{at}.{k}"),
            "unknown field (expected id, tags, vector)",
        ));
    }
    let id = text(
        obj.get("id")
            .ok_or_else(|| bad(format!("{at}.id"), "is required"))?,
        &format!("{at}.id"),
        MAX_ID_LEN,
    )?;
    let field = format!("{at}.tags");
    // Optional here: a queue that recalls by tags refuses an item without a tag it knows.
    let none = Vec::new();
    let tags = match obj.get("tags") {
        None | Some(Value::Null) => &none,
        Some(v) => v
            .as_array()
            .ok_or_else(|| bad(&field, "must be an array of tag names"))?,
    };
    if tags.len() > MAX_TAGS_PER_ITEM {
        return Err(bad(
            &field,
            format!("must hold at most {MAX_TAGS_PER_ITEM} tags"),
        ));
    }
    let tags = tags
        .iter()
        .enumerate()
        .map(|(j, t)| text(t, &format!("{field}[{j}]"), MAX_TAG_LEN))
        .collect::<Result<Vec<_>, _>>()?;
    let vector = match obj.get("vector") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let field = format!("{at}.vector");
            let values = v
                .as_array()
                .filter(|a| !a.is_empty() && a.len() <= MAX_VECTOR_LEN)
                .ok_or_else(|| {
                    bad(
                        &field,
                        format!("must be an array of 1 to {MAX_VECTOR_LEN} numbers"),
                    )
                })?;
            let mut out = Vec::with_capacity(values.len());
            for (j, x) in values.iter().enumerate() {
                match x.as_f64().map(|x| x as f32) {
                    Some(x) if x.is_finite() => out.push(x),
                    _ => return Err(bad(format!("{field}[{j}]"), "must be a finite number")),
                }
            }
            Some(out)
        }
    };
    Ok(NewItem { id, tags, vector })
}

/// Parses and validates a `POST /v1/items` body: one object with `items`, each item an `id`,
/// up to 64 `tags` (optional) and an optional finite `vector`, ids unique within the request.
pub fn parse_items_request(body: &[u8]) -> Result<ItemsRequest, ValidationError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| bad("body", format!("not valid JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| bad("body", "must be a JSON object {\"items\": [...]}"))?;
    if let Some(k) = obj.keys().find(|k| k.as_str() != "items") {
        return Err(bad(k.as_str(), "unknown field (expected items)"));
    }
    let items = obj
        .get("items")
        .ok_or_else(|| bad("items", "is required"))?
        .as_array()
        .ok_or_else(|| bad("items", "must be an array"))?;
    if items.is_empty() || items.len() > MAX_ITEMS_PER_REQUEST {
        return Err(bad(
            "items",
            format!("must hold 1 to {MAX_ITEMS_PER_REQUEST} items"),
        ));
    }
    let items = items
        .iter()
        .enumerate()
        .map(|(i, v)| item(v, &format!("items[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = std::collections::HashSet::new();
    if let Some(i) = items.iter().position(|it| !seen.insert(it.id.as_str())) {
        return Err(bad(
            format!("items[{i}].id"),
            format!("'{}' appears twice in the request", items[i].id),
        ));
    }
    Ok(ItemsRequest { items })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(body: &str) -> String {
        parse_items_request(body.as_bytes()).unwrap_err().field
    }

    #[test]
    fn a_valid_body_parses_with_tags_and_an_optional_vector() {
        let r = parse_items_request(
            br#"{"items":[{"id":"n1","tags":["Comedy"]},{"id":"n2","tags":["a","b"],"vector":[0.5,1]}]}"#,
        )
        .unwrap();
        assert_eq!(r.items[0].tags, ["Comedy"]);
        assert_eq!(r.items[1].vector.as_deref(), Some(&[0.5, 1.0][..]));
    }

    #[test]
    fn each_fault_names_its_field() {
        assert_eq!(field("[1]"), "body");
        assert_eq!(field("{nope"), "body");
        assert_eq!(field(r#"{"items":[],"x":1}"#), "x");
        assert_eq!(field(r#"{"items":[]}"#), "items");
        assert_eq!(field(r#"{"items":[{"tags":["a"]}]}"#), "items[0].id");
        assert_eq!(
            field(r#"{"items":[{"id":"a","tags":"x"}]}"#),
            "items[0].tags"
        );
        assert_eq!(
            field(r#"{"items":[{"id":"a","tags":["x"]},{"id":"b","tags":["y",""]}]}"#),
            "items[1].tags[1]"
        );
        assert_eq!(
            field(r#"{"items":[{"id":"a","tags":["x"],"vector":[1,"z"]}]}"#),
            "items[0].vector[1]"
        );
        assert_eq!(
            field(r#"{"items":[{"id":"a","tags":["x"],"colour":1}]}"#),
            "items[0].colour"
        );
        assert_eq!(
            field(r#"{"items":[{"id":"a","tags":["x"]},{"id":"a","tags":["y"]}]}"#),
            "items[1].id"
        );
    }

    #[test]
    fn tags_may_be_left_out_or_empty() {
        let r = parse_items_request(
            br#"{"items":[{"id":"a"},{"id":"b","tags":[]},{"id":"c","tags":null,"vector":[1]}]}"#,
        )
        .unwrap();
        assert!(r.items.iter().all(|it| it.tags.is_empty()));
    }

    #[test]
    fn oversize_requests_are_refused() {
        let many: Vec<String> = (0..=MAX_ITEMS_PER_REQUEST)
            .map(|i| format!(r#"{{"id":"i{i}","tags":["t"]}}"#))
            .collect();
        assert_eq!(
            field(&format!(r#"{{"items":[{}]}}"#, many.join(","))),
            "items"
        );
        let tags: Vec<String> = (0..=MAX_TAGS_PER_ITEM)
            .map(|i| format!("\"t{i}\""))
            .collect();
        assert_eq!(
            field(&format!(
                r#"{{"items":[{{"id":"a","tags":[{}]}}]}}"#,
                tags.join(",")
            )),
            "items[0].tags"
        );
    }
}
