//! The one parser of `POST /v1/recall` bodies, shared by the gateway and the worker so the same
//! bad body gets the same answer from both. Pure: bytes in, a request or the field at fault out.
//!
//! It walks the JSON object itself rather than letting serde fill the struct, so that it can
//! name the field whose value has the wrong type, and refuse what serde would quietly accept:
//! a JSON array filling the fields by position, and a key given twice (the last one winning).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use super::RecallRequest;
use crate::error::ValidationError;

/// The fields of a request, in the order the error messages list them.
const FIELDS: [&str; 6] = ["user_id", "k", "history", "exclude", "context", "debug"];

/// Parses and validates a body: JSON syntax, one object, known fields each given once with the
/// right type, then the ranges of [`crate::validate::recall_request`]. The error names the field
/// (`body` when the fault is not in one field).
pub fn parse_recall_request(body: &[u8]) -> Result<RecallRequest, ValidationError> {
    let mut fault = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Body { fault: &mut fault }
        .deserialize(&mut de)
        .and_then(|request| de.end().map(|()| request));
    let request = match (parsed, fault) {
        (Ok(request), None) => request,
        (_, Some(fault)) => return Err(fault),
        (Err(e), None) => {
            return Err(ValidationError::new("body", format!("not valid JSON: {e}")));
        }
    };
    crate::validate::recall_request(&request)?;
    Ok(request)
}

/// Reads the top-level object; records the first fault with its field in `fault`.
struct Body<'a> {
    fault: &'a mut Option<ValidationError>,
}

impl<'de> DeserializeSeed<'de> for Body<'_> {
    type Value = RecallRequest;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<RecallRequest, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Body<'_> {
    fn fail<E: de::Error>(&mut self, field: &str, message: impl Into<String>) -> E {
        let message = message.into();
        let error = E::custom(format!("{field}: {message}"));
        *self.fault = Some(ValidationError::new(field, message));
        error
    }

    fn value<'de, T: de::Deserialize<'de>, A: MapAccess<'de>>(
        &mut self,
        map: &mut A,
        field: &str,
        expected: &str,
    ) -> Result<T, A::Error> {
        match map.next_value::<T>() {
            Ok(value) => Ok(value),
            Err(_) => Err(self.fail(field, format!("must be {expected}"))),
        }
    }
}

impl<'de> Visitor<'de> for Body<'_> {
    type Value = RecallRequest;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<RecallRequest, A::Error> {
        let mut request = RecallRequest::default();
        let mut seen = [false; FIELDS.len()];
        let mut has_user_id = false;
        while let Some(key) = map.next_key::<String>()? {
            let Some(index) = FIELDS.iter().position(|f| *f == key) else {
                return Err(self.fail(
                    &key,
                    format!("unknown field: a recall request has {}", FIELDS.join(", ")),
                ));
            };
            if std::mem::replace(&mut seen[index], true) {
                return Err(self.fail(&key, "is given more than once"));
            }
            match index {
                0 => {
                    request.user_id = self.value(&mut map, &key, "a string")?;
                    has_user_id = true;
                }
                1 => request.k = self.value(&mut map, &key, "a positive integer")?,
                2 => {
                    request.history = self.value(&mut map, &key, "an array of item id strings")?;
                }
                3 => {
                    request.exclude = self
                        .value::<Option<Vec<String>>, _>(
                            &mut map,
                            &key,
                            "an array of item id strings",
                        )?
                        .unwrap_or_default();
                }
                4 => {
                    let context = map.next_value_seed(Context {
                        fault: &mut *self.fault,
                    })?;
                    request.context = context;
                }
                _ => {
                    request.debug = self
                        .value::<Option<bool>, _>(&mut map, &key, "true or false")?
                        .unwrap_or_default();
                }
            }
        }
        if !has_user_id {
            return Err(self.fail("user_id", "is required"));
        }
        Ok(request)
    }

    // Anything but an object is refused (an array would otherwise fill the fields by position).
    fn visit_seq<A: de::SeqAccess<'de>>(mut self, _: A) -> Result<RecallRequest, A::Error> {
        Err(self.fail("body", NOT_AN_OBJECT))
    }
    fn visit_unit<E: de::Error>(mut self) -> Result<RecallRequest, E> {
        Err(self.fail("body", NOT_AN_OBJECT))
    }
    fn visit_bool<E: de::Error>(mut self, _: bool) -> Result<RecallRequest, E> {
        Err(self.fail("body", NOT_AN_OBJECT))
    }
    fn visit_i64<E: de::Error>(mut self, _: i64) -> Result<RecallRequest, E> {
        Err(self.fail("body", NOT_AN_OBJECT))
    }
    fn visit_u64<E: de::Error>(mut self, _: u64) -> Result<RecallRequest, E> {
        Err(self.fail("body", NOT_AN_OBJECT))
    }
    fn visit_f64<E: de::Error>(mut self, _: f64) -> Result<RecallRequest, E> {
        Err(self.fail("body", NOT_AN_OBJECT))
    }
    fn visit_str<E: de::Error>(mut self, _: &str) -> Result<RecallRequest, E> {
        Err(self.fail("body", NOT_AN_OBJECT))
    }
}

const NOT_AN_OBJECT: &str = "must be a JSON object such as {\"user_id\": \"u1\", \"k\": 100}";

/// Reads `context`: an object of string values, each key once (`null` is an empty context).
struct Context<'a> {
    fault: &'a mut Option<ValidationError>,
}

impl<'de> DeserializeSeed<'de> for Context<'_> {
    type Value = BTreeMap<String, String>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Context<'_> {
    fn fail<E: de::Error>(&mut self, field: &str, message: &str) -> E {
        *self.fault = Some(ValidationError::new(field, message));
        E::custom(format!("{field}: {message}"))
    }
}

const CONTEXT_TYPE: &str = "must be an object of string values";

impl<'de> Visitor<'de> for Context<'_> {
    type Value = BTreeMap<String, String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of string values")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut context = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let Ok(value) = map.next_value::<String>() else {
                return Err(self.fail(&format!("context.{key}"), "must be a string"));
            };
            if context.insert(key.clone(), value).is_some() {
                return Err(self.fail(&format!("context.{key}"), "is given more than once"));
            }
        }
        Ok(context)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }

    fn visit_bool<E: de::Error>(mut self, _: bool) -> Result<Self::Value, E> {
        Err(self.fail("context", CONTEXT_TYPE))
    }
    fn visit_i64<E: de::Error>(mut self, _: i64) -> Result<Self::Value, E> {
        Err(self.fail("context", CONTEXT_TYPE))
    }
    fn visit_u64<E: de::Error>(mut self, _: u64) -> Result<Self::Value, E> {
        Err(self.fail("context", CONTEXT_TYPE))
    }
    fn visit_f64<E: de::Error>(mut self, _: f64) -> Result<Self::Value, E> {
        Err(self.fail("context", CONTEXT_TYPE))
    }
    fn visit_str<E: de::Error>(mut self, _: &str) -> Result<Self::Value, E> {
        Err(self.fail("context", CONTEXT_TYPE))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(mut self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.fail("context", CONTEXT_TYPE))
    }
}
