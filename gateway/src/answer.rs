//! A queue's answer as the gateway keeps it: the ids' text, checked as UTF-8 once, and per
//! candidate the id's place in it and the score — no allocation per candidate. The merge then
//! borrows ids straight from that text. Workers answer JSON or, when asked, the compact binary
//! layout of `kan_api::wire::compact`; both end up here.

use std::borrow::Cow;
use std::fmt;

use kan_api::wire::Candidate;
use kan_api::wire::compact::CompactAnswer;
use serde::Deserialize;
use serde::de::{
    DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

use crate::merge::CandidateRef;

/// The candidates of one worker answer (`kan_api::wire::WorkerResponse`), best first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CandidateList {
    /// Where the ids are: a JSON answer's whole body, or a compact answer's id text.
    text: String,
    /// Ids that JSON escapes made differ from their bytes in the body (rare), one after another.
    unescaped: String,
    items: Vec<Item>,
    /// History ids the queue's bundle did not know (reported beside the list, not in it).
    unknown_history: u32,
    /// Bundle version the queue answered from; empty for an empty default list.
    version: String,
    /// The queue answered from its bundle alone: its signal store did not answer
    /// (`WorkerResponse::degraded`).
    degraded: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Item {
    start: u32,
    len: u32,
    /// True: the id is in `unescaped`, else in `text`.
    unescaped: bool,
    score: f32,
}

/// One candidate of the answer, the id borrowed from the body unless escapes changed it.
#[derive(Deserialize)]
struct WireCandidate<'a> {
    #[serde(borrow)]
    item_id: Cow<'a, str>,
    score: f32,
}

/// The shortest candidate a worker can send, `{"item_id":"","score":0}`: the body's length
/// over it bounds the number of candidates, to size the list once.
const MIN_CANDIDATE_BYTES: usize = 26;

impl CandidateList {
    /// Decodes a compact answer (`kan_api::wire::compact`): one copy of the id text, no parsing.
    pub fn decode_compact(body: &[u8]) -> Result<Self, String> {
        let answer = CompactAnswer::decode(body).map_err(|e| e.to_string())?;
        // Spans fit u32: the layout's id ends are u32.
        let items = answer
            .spans()
            .map(|(span, score)| Item {
                start: span.start as u32,
                len: (span.end - span.start) as u32,
                unescaped: false,
                score,
            })
            .collect();
        Ok(Self {
            text: answer.id_text().to_owned(),
            unescaped: String::new(),
            items,
            unknown_history: 0,
            version: answer.version.to_owned(),
            degraded: false,
        })
    }

    /// Decodes a worker's JSON answer (`kan_api::wire::WorkerResponse`: every field required,
    /// unknown fields ignored, as its derived decoder does). Errors say what is wrong.
    pub fn decode(body: Vec<u8>) -> Result<Self, String> {
        let body = String::from_utf8(body).map_err(|e| format!("the body is not UTF-8: {e}"))?;
        // Offsets are u32.
        if body.len() > u32::MAX as usize {
            return Err("the answer is larger than 4 GiB".into());
        }
        let mut items = Vec::with_capacity(body.len() / MIN_CANDIDATE_BYTES);
        let mut unescaped = String::new();
        // Parsing from a `str` lets serde_json skip checking every string for UTF-8 again.
        let mut de = serde_json::Deserializer::from_str(&body);
        let seed = AnswerSeed(CandidatesSeed {
            base: body.as_ptr() as usize,
            items: &mut items,
            unescaped: &mut unescaped,
        });
        let meta = seed
            .deserialize(&mut de)
            .and_then(|meta| de.end().map(|()| meta))
            .map_err(|e| format!("not a worker response: {e}"))?;
        Ok(Self {
            text: body,
            unescaped,
            items,
            unknown_history: meta.unknown_history,
            version: meta.version,
            degraded: meta.degraded,
        })
    }

    /// The list with the count of history ids the queue did not know, for a compact answer
    /// (whose layout has no field for it: the `x-kan-unknown-history` header carries it).
    pub fn with_unknown_history(mut self, unknown_history: u32) -> Self {
        self.unknown_history = unknown_history;
        self
    }

    pub fn unknown_history(&self) -> u32 {
        self.unknown_history
    }

    /// The bundle version of the answer; `None` for a list no queue answered.
    pub fn version(&self) -> Option<&str> {
        (!self.version.is_empty()).then_some(self.version.as_str())
    }

    /// True when the queue said it answered from its bundle alone (signal store down).
    pub fn degraded(&self) -> bool {
        self.degraded
    }

    /// Marks the answer degraded (a compact answer says so in a header).
    pub fn set_degraded(&mut self, degraded: bool) {
        self.degraded = degraded;
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn id(&self, item: &Item) -> &str {
        let text = if item.unescaped {
            &self.unescaped
        } else {
            &self.text
        };
        let start = item.start as usize;
        &text[start..start + item.len as usize]
    }

    /// The candidates as the merge reads them, borrowing the ids.
    pub fn refs(&self) -> Vec<CandidateRef<'_>> {
        self.items
            .iter()
            .map(|item| CandidateRef {
                item_id: self.id(item),
                score: item.score,
            })
            .collect()
    }

    /// Owned copies, for a debug response.
    pub fn to_candidates(&self) -> Vec<Candidate> {
        self.items
            .iter()
            .map(|item| Candidate {
                item_id: self.id(item).to_string(),
                score: item.score,
            })
            .collect()
    }
}

/// The fields of a worker response, all required (as in `WorkerResponse`).
const FIELDS: [&str; 4] = ["queue", "version", "candidates", "took_ms"];

/// Reads the top-level object, sending `candidates` into the list as they are parsed.
struct AnswerSeed<'s>(CandidatesSeed<'s>);

/// What a worker's answer says beside its candidates.
struct AnswerMeta {
    /// 0 when absent.
    unknown_history: u32,
    version: String,
    /// false when absent.
    degraded: bool,
}

impl<'de> DeserializeSeed<'de> for AnswerSeed<'_> {
    type Value = AnswerMeta;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<AnswerMeta, D::Error> {
        deserializer.deserialize_struct("WorkerResponse", &FIELDS, self)
    }
}

impl<'de> Visitor<'de> for AnswerSeed<'_> {
    type Value = AnswerMeta;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a worker response object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnswerMeta, A::Error> {
        let mut seen = [false; FIELDS.len()];
        let mut unknown_history = None;
        let mut version = String::new();
        let mut degraded = false;
        let mut first = |i: usize| {
            if std::mem::replace(&mut seen[i], true) {
                Err(A::Error::duplicate_field(FIELDS[i]))
            } else {
                Ok(())
            }
        };
        let mut seed = Some(self.0);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "queue" => {
                    first(0)?;
                    map.next_value::<Cow<'de, str>>()?;
                }
                "version" => {
                    first(1)?;
                    version = map.next_value::<Cow<'de, str>>()?.into_owned();
                }
                "candidates" => {
                    first(2)?;
                    if let Some(seed) = seed.take() {
                        map.next_value_seed(seed)?;
                    }
                }
                "took_ms" => {
                    first(3)?;
                    map.next_value::<f64>()?;
                }
                "unknown_history" => {
                    if unknown_history.replace(map.next_value::<u32>()?).is_some() {
                        return Err(A::Error::duplicate_field("unknown_history"));
                    }
                }
                "degraded" => degraded = map.next_value::<bool>()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match seen.iter().position(|s| !s) {
            Some(i) => Err(A::Error::missing_field(FIELDS[i])),
            None => Ok(AnswerMeta {
                unknown_history: unknown_history.unwrap_or(0),
                version,
                degraded,
            }),
        }
    }
}

/// Reads the `candidates` array straight into the list.
struct CandidatesSeed<'s> {
    base: usize,
    items: &'s mut Vec<Item>,
    unescaped: &'s mut String,
}

impl<'de> DeserializeSeed<'de> for CandidatesSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for CandidatesSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of candidates")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(c) = seq.next_element::<WireCandidate<'de>>()? {
            let (start, unescaped) = match &c.item_id {
                // A borrowed id lies inside the body: its offset is where it starts there.
                Cow::Borrowed(id) => (id.as_ptr() as usize - self.base, false),
                Cow::Owned(id) => {
                    self.unescaped.push_str(id);
                    (self.unescaped.len() - id.len(), true)
                }
            };
            self.items.push(Item {
                start: start as u32,
                len: c.item_id.len() as u32,
                unescaped,
                score: c.score,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use kan_api::wire::WorkerResponse;
    use proptest::prelude::*;

    use super::*;

    fn encode(candidates: &[Candidate]) -> Vec<u8> {
        serde_json::to_vec(&WorkerResponse {
            queue: "q".into(),
            version: "v1".into(),
            candidates: candidates.to_vec(),
            took_ms: 1.5,
            unknown_history: 0,
            degraded: false,
        })
        .expect("encode")
    }

    #[test]
    fn escaped_ids_decode_to_their_text() {
        let candidates = vec![
            Candidate {
                item_id: "plain".into(),
                score: 1.0,
            },
            Candidate {
                item_id: "quote\"and\\slash\ttab é".into(),
                score: 0.5,
            },
            Candidate {
                item_id: "after".into(),
                score: 0.25,
            },
        ];
        let list = CandidateList::decode(encode(&candidates)).expect("decode");
        assert_eq!(list.to_candidates(), candidates);
        assert_eq!(list.refs()[1].item_id, "quote\"and\\slash\ttab é");
    }

    #[test]
    fn a_body_that_is_not_a_worker_response_is_an_error_saying_so() {
        let err = CandidateList::decode(br#"{"candidates": []}"#.to_vec()).expect_err("missing");
        assert!(err.contains("not a worker response"), "{err}");
        assert!(err.contains("queue"), "{err}");
        let err = CandidateList::decode(vec![b'"', 0xff, b'"']).expect_err("not utf-8");
        assert!(err.contains("UTF-8"), "{err}");
    }

    #[test]
    fn unknown_fields_are_ignored_and_repeated_fields_rejected_like_the_wire_types_decoder() {
        let body = br#"{"queue":"q","version":"v","extra":{"a":[1,2]},"candidates":[{"item_id":"x","score":1,"why":"new"}],"took_ms":1}"#;
        let list = CandidateList::decode(body.to_vec()).expect("decode");
        assert_eq!(list.refs()[0].item_id, "x");
        let twice = br#"{"queue":"q","queue":"q","version":"v","candidates":[],"took_ms":1}"#;
        let err = CandidateList::decode(twice.to_vec()).expect_err("duplicate");
        assert!(err.contains("duplicate field `queue`"), "{err}");
        let trailing = br#"{"queue":"q","version":"v","candidates":[],"took_ms":1} x"#;
        assert!(CandidateList::decode(trailing.to_vec()).is_err());
    }

    #[test]
    fn compact_and_json_answers_give_the_same_list() {
        let candidates = vec![
            Candidate {
                item_id: "i1".into(),
                score: 0.5,
            },
            Candidate {
                item_id: "ü\"2".into(),
                score: 0.25,
            },
        ];
        let response = WorkerResponse {
            queue: "q".into(),
            version: "v1".into(),
            candidates: candidates.clone(),
            took_ms: 1.5,
            unknown_history: 0,
            degraded: false,
        };
        let compact_body = kan_api::wire::compact::encode(&response).expect("compact");
        let from_compact = CandidateList::decode_compact(&compact_body).expect("compact");
        let from_json = CandidateList::decode(encode(&candidates)).expect("json");
        assert_eq!(from_compact.to_candidates(), candidates);
        assert_eq!(from_json.to_candidates(), candidates);
        let err = CandidateList::decode(compact_body).expect_err("not json");
        assert!(
            err.contains("UTF-8") || err.contains("not a worker response"),
            "{err}"
        );
        let err = CandidateList::decode_compact(&encode(&candidates)).expect_err("json");
        assert!(err.contains("magic"), "{err}");
    }

    proptest! {
        #[test]
        fn decoding_gives_back_exactly_the_encoded_candidates(
            raw in prop::collection::vec(("\\PC{0,12}", -1e6f32..1e6), 0..40)
        ) {
            let candidates: Vec<Candidate> = raw
                .into_iter()
                .map(|(item_id, score)| Candidate { item_id, score })
                .collect();
            let list = CandidateList::decode(encode(&candidates)).expect("decode");
            prop_assert_eq!(list.len(), candidates.len());
            prop_assert_eq!(list.to_candidates(), candidates);
        }
    }

    #[test]
    fn a_worker_answer_that_says_degraded_is_kept_as_degraded() {
        let body = br#"{"queue":"q","version":"v","candidates":[{"item_id":"a","score":1}],"took_ms":1,"degraded":true}"#;
        let list = CandidateList::decode(body.to_vec()).expect("decodes");
        assert!(list.degraded());
        assert_eq!(list.len(), 1);
        let plain = br#"{"queue":"q","version":"v","candidates":[],"took_ms":1}"#;
        assert!(
            !CandidateList::decode(plain.to_vec())
                .expect("decodes")
                .degraded()
        );
        let bad = br#"{"queue":"q","version":"v","candidates":[],"took_ms":1,"degraded":"yes"}"#;
        assert!(CandidateList::decode(bad.to_vec()).is_err());
    }
}
