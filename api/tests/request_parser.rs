//! The one recall-request parser: each rejection names its field, and good bodies parse.

use kan_api::wire::{
    MAX_CONTEXT_KEYS, MAX_CONTEXT_VALUE_LEN, MAX_EXCLUDE, MAX_ID_LEN, parse_recall_request,
};

fn fault(body: &str) -> (String, String) {
    let e = parse_recall_request(body.as_bytes()).expect_err("rejected");
    (e.field, e.message)
}

fn field(body: &str) -> String {
    fault(body).0
}

#[test]
fn a_full_request_parses_and_nulls_mean_absent() {
    let r = parse_recall_request(
        br#"{"user_id":"u1","k":5,"history":["i1","i2"],"exclude":["i3"],"context":{"region":"SH"},"debug":true}"#,
    )
    .expect("valid");
    assert_eq!(r.user_id, "u1");
    assert_eq!(r.k, Some(5));
    assert_eq!(r.history, Some(vec!["i1".to_string(), "i2".to_string()]));
    assert_eq!(r.exclude, vec!["i3".to_string()]);
    assert_eq!(r.context.get("region").map(String::as_str), Some("SH"));
    assert!(r.debug);
    let r = parse_recall_request(
        br#"{"user_id":"u1","k":null,"history":null,"exclude":null,"context":null,"debug":null}"#,
    )
    .expect("nulls");
    assert_eq!(
        (r.k, r.history, r.exclude.len(), r.context.len(), r.debug),
        (None, None, 0, 0, false)
    );
}

#[test]
fn a_json_array_is_not_read_by_position() {
    let (field, message) = fault(r#"["u1", 5]"#);
    assert_eq!(field, "body");
    assert!(message.contains("JSON object"), "{message}");
}

#[test]
fn scalars_and_null_are_not_a_request() {
    for body in ["null", "1", "\"u1\"", "true"] {
        assert_eq!(field(body), "body", "{body}");
    }
}

#[test]
fn broken_json_and_trailing_bytes_are_refused_as_the_body() {
    let (field, message) = fault(r#"{"user_id": "u1""#);
    assert_eq!(field, "body");
    assert!(message.starts_with("not valid JSON"), "{message}");
    assert_eq!(self::field(r#"{"user_id":"u1"} {}"#), "body");
}

#[test]
fn a_key_given_twice_is_refused() {
    let (field, message) = fault(r#"{"user_id":"u1","user_id":"u2"}"#);
    assert_eq!(field, "user_id");
    assert!(message.contains("more than once"), "{message}");
    assert_eq!(self::field(r#"{"user_id":"u1","k":1,"k":2}"#), "k");
}

#[test]
fn a_context_key_given_twice_is_refused() {
    assert_eq!(
        field(r#"{"user_id":"u1","context":{"a":"x","a":"y"}}"#),
        "context.a"
    );
}

#[test]
fn unknown_and_missing_fields_are_named() {
    let (field, message) = fault(r#"{"user_id":"u1","kk":3}"#);
    assert_eq!(field, "kk");
    assert!(message.starts_with("unknown field"), "{message}");
    let (field, message) = fault(r#"{"k":3}"#);
    assert_eq!(
        (field.as_str(), message.as_str()),
        ("user_id", "is required")
    );
}

#[test]
fn wrongly_typed_values_name_their_field() {
    assert_eq!(
        fault(r#"{"user_id":7}"#),
        ("user_id".into(), "must be a string".into())
    );
    assert_eq!(field(r#"{"user_id":"u","k":"ten"}"#), "k");
    assert_eq!(field(r#"{"user_id":"u","k":-1}"#), "k");
    assert_eq!(field(r#"{"user_id":"u","history":[1]}"#), "history");
    assert_eq!(field(r#"{"user_id":"u","exclude":"i1"}"#), "exclude");
    assert_eq!(field(r#"{"user_id":"u","context":["a"]}"#), "context");
    assert_eq!(field(r#"{"user_id":"u","context":{"a":1}}"#), "context.a");
    assert_eq!(field(r#"{"user_id":"u","debug":"yes"}"#), "debug");
}

#[test]
fn ranges_are_checked_after_parsing() {
    assert_eq!(field(r#"{"user_id":""}"#), "user_id");
    let long = "u".repeat(MAX_ID_LEN + 1);
    assert_eq!(field(&format!(r#"{{"user_id":"{long}"}}"#)), "user_id");
    assert_eq!(field(r#"{"user_id":"u","k":0}"#), "k");
    assert_eq!(
        field(&format!(r#"{{"user_id":"u","history":["{long}"]}}"#)),
        "history"
    );
}

#[test]
fn exclude_is_bounded_in_length_and_per_id() {
    let many: Vec<String> = (0..=MAX_EXCLUDE).map(|i| format!("\"i{i}\"")).collect();
    let body = format!(r#"{{"user_id":"u","exclude":[{}]}}"#, many.join(","));
    assert_eq!(field(&body), "exclude");
    let (field, message) = fault(r#"{"user_id":"u","exclude":["i1",""]}"#);
    assert_eq!(field, "exclude");
    assert!(message.contains("item 1"), "{message}");
}

#[test]
fn a_large_context_value_is_refused() {
    let big = "x".repeat(1_900_000);
    let (field, message) = fault(&format!(r#"{{"user_id":"u","context":{{"a":"{big}"}}}}"#));
    assert_eq!(field, "context.a");
    assert!(
        message.contains(&MAX_CONTEXT_VALUE_LEN.to_string()),
        "{message}"
    );
    let just = "x".repeat(MAX_CONTEXT_VALUE_LEN);
    assert!(
        parse_recall_request(format!(r#"{{"user_id":"u","context":{{"a":"{just}"}}}}"#).as_bytes())
            .is_ok()
    );
}

#[test]
fn context_keys_are_bounded_in_number_and_length() {
    let keys: Vec<String> = (0..=MAX_CONTEXT_KEYS)
        .map(|i| format!("\"k{i}\":\"v\""))
        .collect();
    let body = format!(r#"{{"user_id":"u","context":{{{}}}}}"#, keys.join(","));
    assert_eq!(field(&body), "context");
    let long_key = "k".repeat(65);
    assert_eq!(
        field(&format!(
            r#"{{"user_id":"u","context":{{"{long_key}":"v"}}}}"#
        )),
        "context"
    );
    assert_eq!(field(r#"{"user_id":"u","context":{"":"v"}}"#), "context");
}
