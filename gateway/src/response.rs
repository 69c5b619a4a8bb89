//! The gateway's answer as the request path builds it: borrowed from the merge and the queues'
//! answers and written once into one buffer. Its JSON is byte for byte that of
//! [`kan_api::wire::GatewayResponse`], the wire contract (a test holds it to that).

use kan_api::wire::{Assignment, GatewayCandidate, GatewayResponse, QueueReport};
use serde::{Serialize, Serializer};

use crate::merge::Merged;

/// A response borrowing its candidates; fields in the order of `GatewayResponse`.
#[derive(Serialize)]
pub struct ResponseView<'v, 'a> {
    #[serde(serialize_with = "candidates")]
    pub candidates: &'v [Merged<'a>],
    pub assignments: &'v [Assignment],
    pub queues: &'v [QueueReport],
    pub degraded: bool,
    pub took_ms: f64,
}

/// One candidate in the shape of `GatewayCandidate`.
#[derive(Serialize)]
struct CandidateWire<'v, 'a> {
    item_id: &'a str,
    score: f64,
    sources: &'v [&'a str],
}

fn candidates<S: Serializer>(merged: &&[Merged<'_>], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(merged.iter().map(|m| CandidateWire {
        item_id: m.item_id,
        score: m.score,
        sources: m.sources.as_slice(),
    }))
}

impl ResponseView<'_, '_> {
    /// The JSON body, in a buffer sized up front so it is written without regrowing.
    pub fn to_json(&self) -> serde_json::Result<Vec<u8>> {
        // Per candidate: the id, the sources, and ~50 bytes of keys, punctuation and score.
        let candidates: usize = self
            .candidates
            .iter()
            .map(|m| m.item_id.len() + 50 + m.sources.iter().map(|s| s.len() + 3).sum::<usize>())
            .sum();
        let mut out = Vec::with_capacity(candidates + 256 * (1 + self.queues.len()));
        serde_json::to_writer(&mut out, self)?;
        Ok(out)
    }

    /// An owned copy, for callers of the library API.
    pub fn to_response(&self) -> GatewayResponse {
        GatewayResponse {
            candidates: self
                .candidates
                .iter()
                .map(|m| GatewayCandidate {
                    item_id: m.item_id.to_string(),
                    score: m.score,
                    sources: m.sources.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
            assignments: self.assignments.to_vec(),
            queues: self.queues.to_vec(),
            degraded: self.degraded,
            took_ms: self.took_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use kan_api::wire::{Candidate, QueueStatus};
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn the_view_writes_exactly_the_json_of_the_wire_type(
            items in prop::collection::vec(
                ("\\PC{0,10}", any::<f64>(), prop::collection::vec("[a-z\"]{1,6}", 0..4)),
                0..20,
            ),
            degraded in any::<bool>(),
            took_ms in 0.0f64..1e4,
            debug in any::<bool>(),
        ) {
            let names: Vec<Vec<String>> = items.iter().map(|i| i.2.clone()).collect();
            let merged: Vec<Merged> = items
                .iter()
                .zip(&names)
                .map(|((id, score, _), sources)| Merged {
                    item_id: id,
                    score: if score.is_finite() { *score } else { 0.0 },
                    sources: sources.iter().map(String::as_str).collect(),
                })
                .collect();
            let assignments = vec![Assignment {
                layer: "l".into(),
                experiment: "e\u{e9}".into(),
                arm: "a".into(),
            }];
            let queues = vec![QueueReport {
                name: "q".into(),
                returned: 2,
                took_ms: 0.25,
                status: if degraded { QueueStatus::Timeout } else { QueueStatus::Ok },
                detail: degraded.then(|| "no answer within 5 ms".to_string()),
                unknown_history: u32::from(debug),
                version: (!degraded).then(|| "v\u{e9}".to_string()),
                candidates: debug.then(|| vec![Candidate { item_id: "x".into(), score: 0.5 }]),
            }];
            let view = ResponseView {
                candidates: &merged,
                assignments: &assignments,
                queues: &queues,
                degraded,
                took_ms,
            };
            let expected = serde_json::to_vec(&view.to_response()).expect("encode");
            prop_assert_eq!(view.to_json().expect("encode"), expected);
        }
    }
}
