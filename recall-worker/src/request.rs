//! Turning a request body into a [`RecallRequest`], with errors that name the offending field,
//! and resolving it against the loaded bundle.

use std::collections::{BTreeMap, HashSet};

use kan_api::wire::RecallRequest;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::InvalidRequest {
        field: field.to_string(),
        message: message.into(),
    }
}

fn field<T: DeserializeOwned>(name: &str, value: &Value, expected: &str) -> Result<()> {
    serde_json::from_value::<T>(value.clone())
        .map(|_| ())
        .map_err(|_| invalid(name, format!("must be {expected}")))
}

/// Parses and validates a JSON body. Each field is checked on its own first so the error can name
/// it (serde's own message does not say which field had the wrong type).
pub fn parse(body: &[u8]) -> Result<RecallRequest> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid("body", format!("not valid JSON: {e}")))?;
    let Value::Object(object) = &value else {
        return Err(invalid(
            "body",
            "must be a JSON object such as {\"user_id\": \"u1\", \"k\": 100}",
        ));
    };
    for (key, v) in object {
        match key.as_str() {
            "user_id" => field::<String>(key, v, "a string")?,
            "k" => field::<Option<u32>>(key, v, "a positive integer")?,
            "history" => field::<Option<Vec<String>>>(key, v, "an array of item id strings")?,
            "exclude" => field::<Vec<String>>(key, v, "an array of item id strings")?,
            "context" => field::<BTreeMap<String, String>>(key, v, "an object of string values")?,
            "debug" => field::<bool>(key, v, "true or false")?,
            _ => {
                return Err(invalid(
                    key,
                    "unknown field: a recall request has user_id, k, history, exclude, context and debug",
                ));
            }
        }
    }
    if !object.contains_key("user_id") {
        return Err(invalid("user_id", "is required"));
    }
    let request: RecallRequest =
        serde_json::from_value(value).map_err(|e| invalid("body", e.to_string()))?;
    kan_api::validate::recall_request(&request).map_err(|e| invalid(&e.field, e.message))?;
    Ok(request)
}

/// Known ids of `ids` as internal indices, in order (unknown ids dropped).
pub fn resolve<'a>(
    ids: impl IntoIterator<Item = &'a String>,
    lookup: impl Fn(&str) -> Option<u32>,
) -> Vec<u32> {
    ids.into_iter().filter_map(|id| lookup(id)).collect()
}

/// The same as a set.
pub fn resolve_set<'a>(
    ids: impl IntoIterator<Item = &'a String>,
    lookup: impl Fn(&str) -> Option<u32>,
) -> HashSet<u32> {
    ids.into_iter().filter_map(|id| lookup(id)).collect()
}

/// `k` as served: the request's, else the queue default, capped by `maxCandidates`.
pub fn effective_k(requested: Option<u32>, default: i32, max: i32) -> usize {
    let max = max.max(1) as usize;
    requested
        .map(|k| k as usize)
        .unwrap_or(default.max(1) as usize)
        .clamp(1, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: &str) -> String {
        match parse(body.as_bytes()) {
            Err(Error::InvalidRequest { field, .. }) => field,
            other => panic!("expected an invalid request, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_offending_field() {
        assert_eq!(field_of(r#"{"user_id": "u", "k": "ten"}"#), "k");
        assert_eq!(field_of(r#"{"user_id": "u", "k": 0}"#), "k");
        assert_eq!(field_of(r#"{"user_id": "u", "colour": 1}"#), "colour");
        assert_eq!(field_of(r#"{"k": 3}"#), "user_id");
        assert_eq!(field_of(r#"{"user_id": ""}"#), "user_id");
        assert_eq!(field_of(r#"{"user_id": "u", "history": [1]}"#), "history");
        assert_eq!(field_of(r#"[1]"#), "body");
        assert_eq!(field_of(r#"{"#), "body");
    }

    #[test]
    fn a_minimal_request_parses() {
        let r = parse(br#"{"user_id": "u1"}"#).unwrap();
        assert_eq!(r.user_id, "u1");
        assert_eq!(r.k, None);
    }

    #[test]
    fn k_defaults_to_the_queue_and_is_capped_by_max_candidates() {
        assert_eq!(effective_k(None, 300, 1000), 300);
        assert_eq!(effective_k(Some(5000), 300, 1000), 1000);
        assert_eq!(effective_k(Some(7), 300, 1000), 7);
    }
}
