//! The compact worker answer: a [`WorkerResponse`] in a binary layout the gateway reads without
//! parsing text, offered by content negotiation (`Accept: application/vnd.kan.candidates`).
//! JSON stays the default; a worker that does not know this format answers JSON and the gateway
//! reads that, so gateways and workers can be upgraded in any order.
//!
//! Why: the gateway reads five answers of a few hundred candidates per request, and parsing that
//! JSON alone cost more CPU than the whole request may cost at 5k requests/s per core.
//!
//! Layout (all integers and floats little-endian):
//!
//! | bytes | field |
//! | --- | --- |
//! | 4 | magic `KANC` |
//! | 1 | format version, `1` |
//! | 4 + n | `queue`: length `u32`, then UTF-8 |
//! | 4 + n | `version`: length `u32`, then UTF-8 |
//! | 8 | `took_ms`: `f64` |
//! | 4 | `count`: `u32`, the number of candidates |
//! | 4 × count | scores: `f32` each, best candidate first |
//! | 4 × count | id ends: `u32` each, where each id ends in the id text (non-decreasing) |
//! | rest | id text: every `item_id` in UTF-8, one after another, exactly as long as the last end |
//!
//! Columns rather than records: a reader checks the id text for UTF-8 once and then only
//! slices it.

use std::ops::Range;

use super::{Candidate, WorkerResponse};

/// The media type of the compact answer, for `Accept` and `Content-Type`.
/// Response header of a compact answer carrying `unknown_history` (the layout has no field for
/// it; a header keeps format 1 readable by every gateway).
pub const UNKNOWN_HISTORY_HEADER: &str = "x-kan-unknown-history";
/// Response header of a compact answer that is `degraded` (the signal store did not answer).
pub const DEGRADED_HEADER: &str = "x-kan-degraded";

pub const MEDIA_TYPE: &str = "application/vnd.kan.candidates";

/// First bytes of every compact answer.
const MAGIC: &[u8; 4] = b"KANC";
/// The layout this build writes and reads.
const FORMAT_VERSION: u8 = 1;

/// Why bytes are not a compact answer (or a response cannot be written as one).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompactError {
    #[error("not a compact answer: it does not start with the magic bytes `KANC`")]
    NotCompact,
    #[error("compact answer format version {0} is not supported (this build reads version 1)")]
    UnsupportedVersion(u8),
    #[error("the compact answer is truncated: its {field} needs {needed} bytes, {left} are left")]
    Truncated {
        field: &'static str,
        needed: usize,
        left: usize,
    },
    #[error("the compact answer's {0} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("the compact answer's id ends are invalid at candidate {index}: {why}")]
    BadIdEnd { index: usize, why: &'static str },
    #[error("the compact answer has {0} bytes after its id text")]
    TrailingBytes(usize),
    #[error("{what} is too large for the compact answer ({len} bytes or items, at most 4 GiB)")]
    TooLarge { what: &'static str, len: usize },
}

/// Whether an `Accept` header value admits the compact answer: one of its media ranges names
/// [`MEDIA_TYPE`] (case-insensitive) without `q=0`. Wildcards do not count — a client that has
/// not asked for the format by name gets JSON.
pub fn accepts(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim();
        media.eq_ignore_ascii_case(MEDIA_TYPE)
            && !parts.any(|param| {
                let param = param.trim();
                let value = param
                    .strip_prefix("q=")
                    .or_else(|| param.strip_prefix("Q="));
                value.and_then(|q| q.trim().parse::<f32>().ok()) == Some(0.0)
            })
    })
}

/// Whether a `Content-Type` value is the compact answer (parameters ignored).
pub fn is_compact_content_type(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

/// Writes `response` in the compact layout.
pub fn encode(response: &WorkerResponse) -> Result<Vec<u8>, CompactError> {
    let candidates = &response.candidates;
    let id_bytes: usize = candidates.iter().map(|c| c.item_id.len()).sum();
    let count = to_u32("the candidate list", candidates.len())?;
    to_u32("the candidates' id text", id_bytes)?;
    let mut out = Vec::with_capacity(
        MAGIC.len()
            + 1
            + 8
            + response.queue.len()
            + response.version.len()
            + 12
            + 8 * candidates.len()
            + id_bytes,
    );
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    for (what, text) in [
        ("the queue name", &response.queue),
        ("the version", &response.version),
    ] {
        out.extend_from_slice(&to_u32(what, text.len())?.to_le_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    out.extend_from_slice(&response.took_ms.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    for c in candidates {
        out.extend_from_slice(&c.score.to_le_bytes());
    }
    let mut end = 0u32;
    for c in candidates {
        // Cannot overflow: the total was checked above.
        end += c.item_id.len() as u32;
        out.extend_from_slice(&end.to_le_bytes());
    }
    for c in candidates {
        out.extend_from_slice(c.item_id.as_bytes());
    }
    Ok(out)
}

fn to_u32(what: &'static str, len: usize) -> Result<u32, CompactError> {
    u32::try_from(len).map_err(|_| CompactError::TooLarge { what, len })
}

/// A compact answer read in place: every field borrows the bytes it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompactAnswer<'a> {
    pub queue: &'a str,
    pub version: &'a str,
    pub took_ms: f64,
    scores: &'a [u8],
    ends: &'a [u8],
    ids: &'a str,
}

impl<'a> CompactAnswer<'a> {
    /// Checks the whole layout (lengths, UTF-8, id ends) once, so reading it afterwards cannot
    /// fail.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, CompactError> {
        let mut reader = Reader { bytes };
        if reader.take("magic", MAGIC.len()).ok() != Some(&MAGIC[..]) {
            return Err(CompactError::NotCompact);
        }
        let version = reader.take("format version", 1)?[0];
        if version != FORMAT_VERSION {
            return Err(CompactError::UnsupportedVersion(version));
        }
        let queue = reader.text("queue name")?;
        let bundle_version = reader.text("version")?;
        let took_ms = f64::from_le_bytes(reader.array("took_ms")?);
        let count = u32::from_le_bytes(reader.array("count")?) as usize;
        // Checked, so a hostile count cannot overflow the multiplication.
        let column = count.checked_mul(4).ok_or(CompactError::TooLarge {
            what: "the candidate count",
            len: count,
        })?;
        let scores = reader.take("scores", column)?;
        let ends = reader.take("id ends", column)?;
        // The last end is the length of the id text.
        let id_len = ends.rchunks_exact(4).next().map_or(0, le_u32) as usize;
        let ids = reader.take("id text", id_len)?;
        if !reader.bytes.is_empty() {
            return Err(CompactError::TrailingBytes(reader.bytes.len()));
        }
        let ids = std::str::from_utf8(ids).map_err(|_| CompactError::NotUtf8("id text"))?;
        let mut start = 0;
        for (index, end) in ends.chunks_exact(4).map(le_u32).enumerate() {
            let end = end as usize;
            if end < start {
                return Err(CompactError::BadIdEnd {
                    index,
                    why: "an id ends before the previous one",
                });
            }
            if end > ids.len() {
                return Err(CompactError::BadIdEnd {
                    index,
                    why: "an id ends after the id text",
                });
            }
            if !ids.is_char_boundary(end) {
                return Err(CompactError::BadIdEnd {
                    index,
                    why: "an id ends inside a UTF-8 character",
                });
            }
            start = end;
        }
        Ok(Self {
            queue,
            version: bundle_version,
            took_ms,
            scores,
            ends,
            ids,
        })
    }

    /// Number of candidates.
    pub fn len(&self) -> usize {
        self.scores.len() / 4
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// All ids, one after another; [`Self::spans`] says where each lies.
    pub fn id_text(&self) -> &'a str {
        self.ids
    }

    /// Per candidate, best first: where its id lies in [`Self::id_text`], and its score.
    pub fn spans(&self) -> impl ExactSizeIterator<Item = (Range<usize>, f32)> + 'a {
        let scores = self.scores.chunks_exact(4);
        let ends = self.ends.chunks_exact(4);
        let mut start = 0;
        scores.zip(ends).map(move |(score, end)| {
            let end = le_u32(end) as usize;
            let span = start..end;
            start = end;
            (span, f32::from_bits(le_u32(score)))
        })
    }

    /// Per candidate, best first: its id and score.
    pub fn candidates(&self) -> impl ExactSizeIterator<Item = (&'a str, f32)> + 'a {
        let ids = self.ids;
        self.spans().map(move |(span, score)| (&ids[span], score))
    }

    /// The answer as the JSON wire type.
    pub fn to_response(&self) -> WorkerResponse {
        WorkerResponse {
            queue: self.queue.to_string(),
            version: self.version.to_string(),
            candidates: self
                .candidates()
                .map(|(id, score)| Candidate {
                    item_id: id.to_string(),
                    score,
                })
                .collect(),
            took_ms: self.took_ms,
            unknown_history: 0,
            degraded: false,
        }
    }
}

/// A little-endian `u32` from exactly four bytes (the layout's columns, split by `chunks_exact`).
fn le_u32(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Takes fields off the front of the bytes, saying which field ran out.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, field: &'static str, needed: usize) -> Result<&'a [u8], CompactError> {
        if self.bytes.len() < needed {
            return Err(CompactError::Truncated {
                field,
                needed,
                left: self.bytes.len(),
            });
        }
        let (head, rest) = self.bytes.split_at(needed);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], CompactError> {
        let bytes = self.take(field, N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn text(&mut self, field: &'static str) -> Result<&'a str, CompactError> {
        let len = u32::from_le_bytes(self.array(field)?) as usize;
        std::str::from_utf8(self.take(field, len)?).map_err(|_| CompactError::NotUtf8(field))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn response(ids: &[&str]) -> WorkerResponse {
        WorkerResponse {
            queue: "dssm-main".into(),
            version: "v7".into(),
            candidates: ids
                .iter()
                .enumerate()
                .map(|(i, id)| Candidate {
                    item_id: id.to_string(),
                    score: 1.0 / (i + 1) as f32,
                })
                .collect(),
            took_ms: 1.25,
            unknown_history: 0,
            degraded: false,
        }
    }

    #[test]
    fn an_answer_reads_back_as_written() {
        let written = response(&["i3", "", "é✓", "i9"]);
        let bytes = encode(&written).expect("encode");
        let answer = CompactAnswer::decode(&bytes).expect("decode");
        assert_eq!(answer.len(), 4);
        assert_eq!(answer.to_response(), written);
        assert_eq!(answer.id_text(), "i3é✓i9");
        let spans: Vec<_> = answer.spans().map(|(span, _)| span).collect();
        assert_eq!(spans, vec![0..2, 2..2, 2..7, 7..9]);
    }

    #[test]
    fn an_empty_answer_is_valid() {
        let bytes = encode(&response(&[])).expect("encode");
        let answer = CompactAnswer::decode(&bytes).expect("decode");
        assert!(answer.is_empty());
        assert_eq!(answer.queue, "dssm-main");
    }

    #[test]
    fn json_and_other_bytes_are_not_compact() {
        let json = serde_json::to_vec(&response(&["a"])).expect("json");
        assert_eq!(CompactAnswer::decode(&json), Err(CompactError::NotCompact));
        assert_eq!(CompactAnswer::decode(b"KA"), Err(CompactError::NotCompact));
    }

    #[test]
    fn a_newer_format_version_is_refused_by_number() {
        let mut bytes = encode(&response(&["a"])).expect("encode");
        bytes[4] = 2;
        let err = CompactAnswer::decode(&bytes).expect_err("version 2");
        assert_eq!(err, CompactError::UnsupportedVersion(2));
        assert!(err.to_string().contains("reads version 1"), "{err}");
    }

    #[test]
    fn every_truncation_is_an_error_naming_the_field() {
        let bytes = encode(&response(&["i1", "i22", "i333"])).expect("encode");
        for cut in MAGIC.len()..bytes.len() {
            let err = CompactAnswer::decode(&bytes[..cut]).expect_err("truncated");
            assert!(
                matches!(err, CompactError::Truncated { .. }),
                "cut at {cut}: {err}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(b'x');
        assert_eq!(
            CompactAnswer::decode(&longer),
            Err(CompactError::TrailingBytes(1))
        );
    }

    /// Offset of the id ends column in an answer written by [`response`].
    fn ends_at(bytes: &[u8], count: usize) -> usize {
        bytes.len() - 4 * count - answer_ids_len(bytes)
    }

    fn answer_ids_len(bytes: &[u8]) -> usize {
        CompactAnswer::decode(bytes).expect("valid").id_text().len()
    }

    #[test]
    fn decreasing_id_ends_and_ends_inside_a_character_are_errors() {
        let bytes = encode(&response(&["ab", "é"])).expect("encode");
        let at = ends_at(&bytes, 2);
        // First id ends at 3 instead of 2 (inside `é`, which takes bytes 2..4).
        let mut inside = bytes.clone();
        inside[at..at + 4].copy_from_slice(&3u32.to_le_bytes());
        let err = CompactAnswer::decode(&inside).expect_err("inside a character");
        assert!(
            err.to_string().contains("inside a UTF-8 character"),
            "{err}"
        );
        // The second id ends before the first.
        let bytes = encode(&response(&["a", "b", "c"])).expect("encode");
        let at = ends_at(&bytes, 3);
        let mut decreasing = bytes.clone();
        decreasing[at..at + 4].copy_from_slice(&2u32.to_le_bytes());
        decreasing[at + 4..at + 8].copy_from_slice(&1u32.to_le_bytes());
        let err = CompactAnswer::decode(&decreasing).expect_err("decreasing");
        assert!(err.to_string().contains("before the previous one"), "{err}");
        // The first id ends past the text (the last end, which sizes the text, is fine).
        let mut past = bytes.clone();
        past[at..at + 4].copy_from_slice(&9u32.to_le_bytes());
        let err = CompactAnswer::decode(&past).expect_err("past the end");
        assert!(err.to_string().contains("after the id text"), "{err}");
    }

    #[test]
    fn id_text_that_is_not_utf8_is_an_error() {
        let mut bytes = encode(&response(&["ab"])).expect("encode");
        let last = bytes.len() - 1;
        bytes[last] = 0xff;
        assert_eq!(
            CompactAnswer::decode(&bytes),
            Err(CompactError::NotUtf8("id text"))
        );
    }

    #[test]
    fn a_hostile_count_is_an_error_not_an_allocation() {
        let mut bytes = encode(&response(&[])).expect("encode");
        let at = bytes.len() - 4;
        bytes[at..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(CompactAnswer::decode(&bytes).is_err());
    }

    #[test]
    fn accept_negotiation_needs_the_media_type_by_name() {
        assert!(accepts(MEDIA_TYPE));
        assert!(accepts(
            "application/json;q=0.5, Application/VND.kan.candidates"
        ));
        assert!(accepts("application/vnd.kan.candidates; q=0.8"));
        assert!(!accepts("application/vnd.kan.candidates;q=0"));
        assert!(!accepts("application/vnd.kan.candidates; q=0.0"));
        assert!(!accepts("*/*"));
        assert!(!accepts("application/json"));
        assert!(!accepts(""));
        assert!(is_compact_content_type("application/vnd.kan.candidates"));
        assert!(is_compact_content_type(
            "application/vnd.kan.candidates; charset=binary"
        ));
        assert!(!is_compact_content_type("application/json"));
    }

    proptest! {
        #[test]
        fn any_response_reads_back_as_written(
            queue in "\\PC{0,20}",
            version in "\\PC{0,20}",
            raw in prop::collection::vec(("\\PC{0,12}", -1e6f32..1e6), 0..40),
            took_ms in 0.0f64..1e4,
        ) {
            let written = WorkerResponse {
                queue,
                version,
                candidates: raw
                    .into_iter()
                    .map(|(item_id, score)| Candidate { item_id, score })
                    .collect(),
                took_ms,
                unknown_history: 0,
                degraded: false,
            };
            let bytes = encode(&written).expect("encode");
            let answer = CompactAnswer::decode(&bytes).expect("decode");
            prop_assert_eq!(answer.to_response(), written);
        }

        #[test]
        fn no_bytes_make_the_decoder_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut framed = MAGIC.to_vec();
            framed.push(FORMAT_VERSION);
            framed.extend_from_slice(&bytes);
            let _ = CompactAnswer::decode(&framed);
        }
    }
}
