//! Engagement events and follow edges: the `POST /v1/events` body and its one validating parser.
//! Pure: bytes and the receiver's clock in, the events or the field at fault out.
//!
//! A batch is all or nothing: the first bad event refuses the whole batch, named by its path
//! (`events[3].ts`), so a caller never has to find out which half was stored.
//!
//! Delivery is at-least-once: a caller retries a batch it got no acknowledgement for, and the
//! store applies each event `id` once (see `docs/events.md`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ValidationError;
use crate::wire::{MAX_CONTEXT_KEY_LEN, MAX_CONTEXT_KEYS, MAX_CONTEXT_VALUE_LEN, MAX_ID_LEN};

/// Most events one batch may carry.
pub const MAX_BATCH: usize = 1000;
/// How far in the future an event time may be (clocks of callers drift), in milliseconds.
pub const MAX_FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;
/// How old an event may be when it arrives, in milliseconds: fresh signals, not a backfill
/// path (backfills go through `kan train`).
pub const MAX_AGE_MS: i64 = 24 * 3600 * 1000;
/// Largest explicit `weight`.
pub const MAX_WEIGHT: f32 = 100.0;
/// Most `context` keys on one event (segments its item counts under).
pub const MAX_EVENT_CONTEXT_KEYS: usize = 8;

/// What a user did.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Click,
    Like,
    Comment,
    Share,
    Purchase,
    /// `user_id` now follows `target`.
    Follow,
    /// `user_id` no longer follows `target`.
    Unfollow,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Click,
        Action::Like,
        Action::Comment,
        Action::Share,
        Action::Purchase,
        Action::Follow,
        Action::Unfollow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Click => "click",
            Action::Like => "like",
            Action::Comment => "comment",
            Action::Share => "share",
            Action::Purchase => "purchase",
            Action::Follow => "follow",
            Action::Unfollow => "unfollow",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// True for follow edges (they name a `target` user, not an item).
    pub fn is_edge(self) -> bool {
        matches!(self, Action::Follow | Action::Unfollow)
    }

    /// The weight of an engagement without an explicit one: stronger signals count more.
    pub fn default_weight(self) -> f32 {
        match self {
            Action::Click => 1.0,
            Action::Like => 2.0,
            Action::Comment => 3.0,
            Action::Share => 4.0,
            Action::Purchase => 5.0,
            Action::Follow | Action::Unfollow => 0.0,
        }
    }
}

/// One validated event.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Event {
    /// The caller's id of the event; the store applies each id once (idempotent retries).
    pub id: String,
    pub user_id: String,
    pub action: Action,
    /// The item engaged with (engagements only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    /// The user followed or unfollowed (edges only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// When it happened, unix milliseconds.
    pub ts: i64,
    /// The engagement's weight; the action's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f32>,
    /// Segment attributes (region, age band...): the item also counts as trending in each
    /// `key=value` segment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
}

impl Event {
    /// The weight the store counts: the explicit one, else the action's default.
    pub fn effective_weight(&self) -> f32 {
        self.weight.unwrap_or_else(|| self.action.default_weight())
    }

    /// The trending segments this event counts in: `global`, then `key=value` per context entry.
    pub fn segments(&self) -> Vec<String> {
        std::iter::once(GLOBAL_SEGMENT.to_string())
            .chain(self.context.iter().map(|(k, v)| segment_name(k, v)))
            .collect()
    }
}

/// The segment every engagement counts in.
pub const GLOBAL_SEGMENT: &str = "global";

/// The name of the segment of a context entry, as the popular strategy looks it up.
pub fn segment_name(key: &str, value: &str) -> String {
    format!("{key}={value}")
}

/// The acknowledgement of a stored batch.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EventsAck {
    /// Events in the batch.
    pub received: usize,
    /// Events applied now.
    pub stored: usize,
    /// Events whose id was already applied (retries); not applied again.
    pub duplicates: usize,
}

/// One arm's online outcome: exposures joined with the user's later engagements on the exposed
/// items (`GET /v1/experiments/readout`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ArmReadout {
    pub experiment: String,
    pub arm: String,
    /// Responses served to users in this arm.
    pub exposures: u64,
    /// Exposures followed, within the window, by an engagement on one of their items.
    pub engaged: u64,
    /// `engaged / exposures` (0 without exposures).
    pub rate: f64,
    /// 95% Wilson score interval of `rate`.
    pub low: f64,
    pub high: f64,
}

/// An arm against its experiment's baseline (the arm named `control`, else the first by name).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ArmDifference {
    pub experiment: String,
    pub arm: String,
    pub baseline: String,
    /// `rate(arm) - rate(baseline)`.
    pub difference: f64,
    /// 95% interval of the difference (Newcombe's hybrid score method).
    pub low: f64,
    pub high: f64,
}

/// The online readout of every experiment seen in the exposures.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Readout {
    /// Engagements count within this many milliseconds after the exposure.
    pub window_ms: i64,
    pub arms: Vec<ArmReadout>,
    pub differences: Vec<ArmDifference>,
}

const BATCH_FIELDS: [&str; 1] = ["events"];
const EVENT_FIELDS: [&str; 8] = [
    "id", "user_id", "action", "item_id", "target", "ts", "weight", "context",
];

/// Parses and validates a `POST /v1/events` body received at `now_ms` (unix milliseconds).
pub fn parse_events(body: &[u8], now_ms: i64) -> Result<Vec<Event>, ValidationError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ValidationError::new("body", format!("not valid JSON: {e}")))?;
    let Value::Object(top) = value else {
        return Err(ValidationError::new(
            "body",
            "must be a JSON object {\"events\": [...]}",
        ));
    };
    if let Some(key) = top.keys().find(|k| !BATCH_FIELDS.contains(&k.as_str())) {
        return Err(ValidationError::new(
            key.as_str(),
            "unknown field: an event batch has events",
        ));
    }
    let Some(events) = top.get("events") else {
        return Err(ValidationError::new("events", "is required"));
    };
    let Value::Array(events) = events else {
        return Err(ValidationError::new("events", "must be an array of events"));
    };
    if events.is_empty() || events.len() > MAX_BATCH {
        return Err(ValidationError::new(
            "events",
            format!("must hold 1 to {MAX_BATCH} events, not {}", events.len()),
        ));
    }
    events
        .iter()
        .enumerate()
        .map(|(i, e)| parse_event(e, &format!("events[{i}]"), now_ms))
        .collect()
}

fn parse_event(value: &Value, path: &str, now_ms: i64) -> Result<Event, ValidationError> {
    let at = |field: &str| format!("{path}.{field}");
    let Value::Object(obj) = value else {
        return Err(ValidationError::new(path, "must be a JSON object"));
    };
    if let Some(key) = obj.keys().find(|k| !EVENT_FIELDS.contains(&k.as_str())) {
        return Err(ValidationError::new(
            at(key),
            format!("unknown field: an event has {}", EVENT_FIELDS.join(", ")),
        ));
    }
    let id = required_id(obj, "id", &at)?;
    let user_id = required_id(obj, "user_id", &at)?;
    let action_name = required_str(obj, "action", &at)?;
    let action = Action::parse(action_name).ok_or_else(|| {
        let known: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
        ValidationError::new(
            at("action"),
            format!(
                "unknown action {action_name:?}: one of {}",
                known.join(", ")
            ),
        )
    })?;
    let item_id = optional_id(obj, "item_id", &at)?;
    let target = optional_id(obj, "target", &at)?;
    if action.is_edge() {
        if target.is_none() {
            return Err(ValidationError::new(
                at("target"),
                format!("is required for {}: the user followed", action.as_str()),
            ));
        }
        if item_id.is_some() {
            return Err(ValidationError::new(
                at("item_id"),
                format!(
                    "is not allowed on {} (an edge names a target)",
                    action.as_str()
                ),
            ));
        }
        if target.as_deref() == Some(user_id.as_str()) {
            return Err(ValidationError::new(
                at("target"),
                "must differ from user_id",
            ));
        }
    } else {
        if item_id.is_none() {
            return Err(ValidationError::new(
                at("item_id"),
                format!("is required for {}", action.as_str()),
            ));
        }
        if target.is_some() {
            return Err(ValidationError::new(
                at("target"),
                "is only allowed on follow and unfollow",
            ));
        }
    }
    let ts = match obj.get("ts") {
        None => return Err(ValidationError::new(at("ts"), "is required")),
        Some(v) => v.as_i64().ok_or_else(|| {
            ValidationError::new(at("ts"), "must be an integer (unix milliseconds)")
        })?,
    };
    if ts > now_ms.saturating_add(MAX_FUTURE_SKEW_MS) {
        return Err(ValidationError::new(
            at("ts"),
            format!(
                "is {} ms in the future (at most {MAX_FUTURE_SKEW_MS} allowed); is it in milliseconds?",
                ts - now_ms
            ),
        ));
    }
    if ts < now_ms.saturating_sub(MAX_AGE_MS) {
        return Err(ValidationError::new(
            at("ts"),
            format!(
                "is older than {MAX_AGE_MS} ms (fresh signals only; backfill through training); is it in milliseconds?"
            ),
        ));
    }
    let weight = match obj.get("weight") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let w = v
                .as_f64()
                .ok_or_else(|| ValidationError::new(at("weight"), "must be a number"))?
                as f32;
            if !(w > 0.0 && w <= MAX_WEIGHT) {
                return Err(ValidationError::new(
                    at("weight"),
                    format!("must be in (0, {MAX_WEIGHT}]"),
                ));
            }
            if action.is_edge() {
                return Err(ValidationError::new(
                    at("weight"),
                    "is only allowed on engagements",
                ));
            }
            Some(w)
        }
    };
    let context = parse_context(obj.get("context"), &at("context"))?;
    Ok(Event {
        id,
        user_id,
        action,
        item_id,
        target,
        ts,
        weight,
        context,
    })
}

fn required_str<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    at: &impl Fn(&str) -> String,
) -> Result<&'a str, ValidationError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(ValidationError::new(at(field), "is required")),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ValidationError::new(at(field), "must be a string")),
    }
}

fn check_id(s: &str, field: &str, at: &impl Fn(&str) -> String) -> Result<(), ValidationError> {
    if s.is_empty() || s.len() > MAX_ID_LEN {
        return Err(ValidationError::new(
            at(field),
            format!("must be 1 to {MAX_ID_LEN} bytes"),
        ));
    }
    // Ids become parts of store keys and of space-separated store records.
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ValidationError::new(
            at(field),
            "must not contain whitespace or control characters",
        ));
    }
    Ok(())
}

fn required_id(
    obj: &Map<String, Value>,
    field: &str,
    at: &impl Fn(&str) -> String,
) -> Result<String, ValidationError> {
    let s = required_str(obj, field, at)?;
    check_id(s, field, at)?;
    Ok(s.to_string())
}

fn optional_id(
    obj: &Map<String, Value>,
    field: &str,
    at: &impl Fn(&str) -> String,
) -> Result<Option<String>, ValidationError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => required_id(obj, field, at).map(Some),
    }
}

fn parse_context(
    value: Option<&Value>,
    path: &str,
) -> Result<BTreeMap<String, String>, ValidationError> {
    let obj = match value {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(obj)) => obj,
        Some(_) => {
            return Err(ValidationError::new(
                path,
                "must be an object of string values",
            ));
        }
    };
    let max = MAX_EVENT_CONTEXT_KEYS.min(MAX_CONTEXT_KEYS);
    if obj.len() > max {
        return Err(ValidationError::new(
            path,
            format!("has {} keys; at most {max}", obj.len()),
        ));
    }
    let mut out = BTreeMap::new();
    for (key, value) in obj {
        let field = format!("{path}.{key}");
        let Value::String(value) = value else {
            return Err(ValidationError::new(field, "must be a string"));
        };
        if key.is_empty() || key.len() > MAX_CONTEXT_KEY_LEN || key.contains(['=', ':']) {
            return Err(ValidationError::new(
                field,
                format!("keys must be 1 to {MAX_CONTEXT_KEY_LEN} bytes without '=' or ':'"),
            ));
        }
        if value.is_empty()
            || value.len() > MAX_CONTEXT_VALUE_LEN
            || value
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == ':')
        {
            return Err(ValidationError::new(
                field,
                format!(
                    "values must be 1 to {MAX_CONTEXT_VALUE_LEN} bytes without whitespace or ':'"
                ),
            ));
        }
        out.insert(key.clone(), value.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000_000;

    fn parse(json: &str) -> Result<Vec<Event>, ValidationError> {
        parse_events(json.as_bytes(), NOW)
    }

    fn field_of(json: &str) -> String {
        parse(json).expect_err("must be refused").field
    }

    #[test]
    fn a_batch_of_engagements_and_edges_parses_with_default_weights() {
        let events = parse(&format!(
            r#"{{"events": [
                {{"id": "e1", "user_id": "u1", "item_id": "i1", "action": "like", "ts": {NOW}}},
                {{"id": "e2", "user_id": "u1", "target": "u2", "action": "follow", "ts": {NOW}}},
                {{"id": "e3", "user_id": "u2", "item_id": "i2", "action": "click", "ts": {NOW},
                  "weight": 0.5, "context": {{"region": "SH"}}}}
            ]}}"#
        ))
        .expect("valid");
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].effective_weight(), 2.0);
        assert_eq!(events[1].target.as_deref(), Some("u2"));
        assert_eq!(events[2].effective_weight(), 0.5);
        assert_eq!(events[2].segments(), ["global", "region=SH"]);
    }

    #[test]
    fn each_bad_event_is_refused_with_the_path_of_its_field() {
        let ok = format!(
            r#"{{"id": "e0", "user_id": "u", "item_id": "i", "action": "click", "ts": {NOW}}}"#
        );
        let with = |bad: &str| format!(r#"{{"events": [{ok}, {ok}, {ok}, {bad}]}}"#);
        let cases = [
            (
                format!(
                    r#"{{"id": "e", "user_id": "u", "item_id": "i", "action": "click", "ts": {}}}"#,
                    NOW + MAX_FUTURE_SKEW_MS + 1
                ),
                "events[3].ts",
            ),
            (
                format!(
                    r#"{{"id": "e", "user_id": "u", "item_id": "i", "action": "click", "ts": {}}}"#,
                    NOW - MAX_AGE_MS - 1
                ),
                "events[3].ts",
            ),
            (
                r#"{"id": "e", "user_id": "u", "item_id": "i", "action": "click", "ts": "now"}"#
                    .to_string(),
                "events[3].ts",
            ),
            (
                r#"{"id": "e", "user_id": "u", "item_id": "i", "action": "click"}"#.to_string(),
                "events[3].ts",
            ),
            (
                format!(
                    r#"{{"id": "e", "user_id": "u", "item_id": "i", "action": "teleport", "ts": {NOW}}}"#
                ),
                "events[3].action",
            ),
            (
                format!(r#"{{"user_id": "u", "item_id": "i", "action": "click", "ts": {NOW}}}"#),
                "events[3].id",
            ),
            (
                format!(
                    r#"{{"id": "e", "user_id": "", "item_id": "i", "action": "click", "ts": {NOW}}}"#
                ),
                "events[3].user_id",
            ),
            (
                format!(
                    r#"{{"id": "e", "user_id": "u u", "item_id": "i", "action": "click", "ts": {NOW}}}"#
                ),
                "events[3].user_id",
            ),
            (
                format!(r#"{{"id": "e", "user_id": "u", "action": "click", "ts": {NOW}}}"#),
                "events[3].item_id",
            ),
            (
                format!(r#"{{"id": "e", "user_id": "u", "action": "follow", "ts": {NOW}}}"#),
                "events[3].target",
            ),
            (
                format!(
                    r#"{{"id": "e", "user_id": "u", "target": "u", "action": "follow", "ts": {NOW}}}"#
                ),
                "events[3].target",
            ),
            (
                format!(
                    r#"{{"id": "e", "user_id": "u", "item_id": "i", "action": "click", "ts": {NOW}, "weight": -1}}"#
                ),
                "events[3].weight",
            ),
            (
                format!(
                    r#"{{"id": "e", "user_id": "u", "item_id": "i", "action": "click", "ts": {NOW}, "colour": 1}}"#
                ),
                "events[3].colour",
            ),
            (
                format!(
                    r#"{{"id": "e", "user_id": "u", "item_id": "i", "action": "click", "ts": {NOW}, "context": {{"region": 7}}}}"#
                ),
                "events[3].context.region",
            ),
            ("[]".to_string(), "events[3]"),
        ];
        for (bad, field) in cases {
            assert_eq!(field_of(&with(&bad)), field, "{bad}");
        }
    }

    #[test]
    fn batches_must_be_bounded_objects_with_only_events() {
        assert_eq!(field_of("[1]"), "body");
        assert_eq!(field_of("{"), "body");
        assert_eq!(field_of("{}"), "events");
        assert_eq!(field_of(r#"{"events": []}"#), "events");
        assert_eq!(field_of(r#"{"events": {}}"#), "events");
        assert_eq!(field_of(r#"{"events": [], "more": 1}"#), "more");
        let one = format!(
            r#"{{"id": "e", "user_id": "u", "item_id": "i", "action": "click", "ts": {NOW}}}"#
        );
        let too_many = vec![one.as_str(); MAX_BATCH + 1].join(",");
        assert_eq!(
            field_of(&format!(r#"{{"events": [{too_many}]}}"#)),
            "events"
        );
        let most = vec![one.as_str(); MAX_BATCH].join(",");
        assert_eq!(
            parse(&format!(r#"{{"events": [{most}]}}"#))
                .expect("at the bound")
                .len(),
            MAX_BATCH
        );
    }
}
