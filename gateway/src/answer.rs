//! A queue's answer as the gateway keeps it: the response body, checked as UTF-8 once, and
//! per candidate the id's place in it and the score — no allocation per candidate. The merge
//! then borrows ids straight from the body.

use std::borrow::Cow;

use kan_api::wire::Candidate;
use serde::Deserialize;

use crate::merge::CandidateRef;

/// The candidates of one worker answer (`kan_api::wire::WorkerResponse`), best first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CandidateList {
    /// The answer's body.
    body: String,
    /// Ids that JSON escapes made differ from their bytes in the body (rare), one after another.
    unescaped: String,
    items: Vec<Item>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Item {
    start: u32,
    len: u32,
    /// True: the id is in `unescaped`, else in `body`.
    unescaped: bool,
    score: f32,
}

/// The worker response with borrowed strings; every field of the wire type is still required.
#[derive(Deserialize)]
struct WorkerAnswer<'a> {
    #[serde(borrow)]
    #[allow(dead_code)]
    queue: Cow<'a, str>,
    #[serde(borrow)]
    #[allow(dead_code)]
    version: Cow<'a, str>,
    #[serde(borrow)]
    candidates: Vec<WireCandidate<'a>>,
    #[allow(dead_code)]
    took_ms: f64,
}

#[derive(Deserialize)]
struct WireCandidate<'a> {
    #[serde(borrow)]
    item_id: Cow<'a, str>,
    score: f32,
}

impl CandidateList {
    /// Decodes a worker's answer. Errors say what is wrong with the body.
    pub fn decode(body: Vec<u8>) -> Result<Self, String> {
        let body = String::from_utf8(body).map_err(|e| format!("the body is not UTF-8: {e}"))?;
        // Parsing from a `str` lets serde_json skip checking every string for UTF-8 again.
        let answer: WorkerAnswer<'_> =
            serde_json::from_str(&body).map_err(|e| format!("not a worker response: {e}"))?;
        let base = body.as_ptr() as usize;
        let mut unescaped = String::new();
        let items = answer
            .candidates
            .iter()
            .map(|c| {
                let (start, is_unescaped) = match &c.item_id {
                    Cow::Borrowed(id) => (id.as_ptr() as usize - base, false),
                    Cow::Owned(id) => {
                        unescaped.push_str(id);
                        (unescaped.len() - id.len(), true)
                    }
                };
                Item {
                    start: start as u32,
                    len: c.item_id.len() as u32,
                    unescaped: is_unescaped,
                    score: c.score,
                }
            })
            .collect();
        drop(answer);
        if body.len() > u32::MAX as usize || unescaped.len() > u32::MAX as usize {
            return Err("the answer is larger than 4 GiB".into());
        }
        Ok(Self {
            body,
            unescaped,
            items,
        })
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
            &self.body
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
}
