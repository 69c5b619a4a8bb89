//! The bundle manifest: what a worker serves, and how it proves the files are intact.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::crd::{EncoderSettings, StrategyType};

/// Current manifest format.
pub const BUNDLE_FORMAT_VERSION: u32 = 1;
/// File name of the manifest inside a bundle directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// `manifest.json` at the root of a bundle directory.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    /// Manifest format version ([`BUNDLE_FORMAT_VERSION`]).
    pub format_version: u32,
    /// Strategy the bundle is for.
    pub strategy: StrategyType,
    /// Content hash over every file (see [`content_version`]); changes whenever any file does.
    pub version: String,
    /// Fingerprint of the training data (hash of the interaction table).
    pub dataset: DatasetInfo,
    /// Hyper-parameters and other training settings, free-form.
    #[serde(default)]
    pub params: serde_json::Value,
    /// Offline metrics on the validation split, e.g. `{"recall@20": 0.17}`.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Embedding dimension, for strategies with item vectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dim: Option<u32>,
    /// When the bundle was written (RFC 3339).
    pub created_at: String,
    /// Every file in the bundle (relative path → sha256 hex), manifest excluded.
    pub files: BTreeMap<String, String>,
}

impl BundleManifest {
    /// The history length `L` an encoder bundle is served and scored with: the model was
    /// exported for `params.history_length`; the queue's `historyLength` is the fallback for
    /// bundles that do not record it.
    pub fn encoder_history_length(&self, settings: &EncoderSettings) -> usize {
        self.params
            .get(params::HISTORY_LENGTH)
            .and_then(serde_json::Value::as_u64)
            .map_or(settings.history_length.max(1) as usize, |l| {
                (l as usize).max(1)
            })
    }
}

/// Where the training data came from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct DatasetInfo {
    /// Dataset name (e.g. `ml-100k`, `gowalla`).
    pub name: String,
    /// sha256 of the interactions the model was trained on.
    pub fingerprint: String,
    pub users: u64,
    pub items: u64,
    pub interactions: u64,
}

/// File names inside a bundle directory, shared by `kan train` (writer) and the worker (reader).
///
/// Ids: `items.txt` / `users.txt` list external ids, one per line; line `i` is internal index
/// `i`. All tensors are safetensors. CSR tensors are named `offsets` (i64, rows + 1) plus value
/// tensors of length `offsets[last]`. Histories are most recent first.
pub mod files {
    /// External item ids, one per line (every strategy with items).
    pub const ITEMS: &str = "items.txt";
    /// External user ids, one per line.
    pub const USERS: &str = "users.txt";
    /// CSR over users: `offsets` i64[U+1], `items` i64[nnz] (internal item index, most recent
    /// first), `timestamps` i64[nnz] (unix seconds, 0 when unknown).
    pub const USER_HISTORY: &str = "user_history.safetensors";
    /// `vectors` f32[N, D], L2-normalised item vectors (dssm, gat, item2vec).
    pub const ITEM_VECTORS: &str = "item_vectors.safetensors";
    /// ONNX user encoder (dssm, gat): inputs `history_ids` i64[B, L] (internal item indices,
    /// padding 0), `history_mask` f32[B, L] (1 real, 0 padding); output `user_embedding`
    /// f32[B, D], L2-normalised.
    pub const MODEL: &str = "model.onnx";
    /// itemcf: CSR over items: `offsets` i64[N+1], `neighbours` i64[nnz], `weights` f32[nnz],
    /// neighbours sorted by weight descending.
    pub const NEIGHBOURS: &str = "neighbours.safetensors";
    /// social: CSR over users: `offsets`, `friends` i64 (user index), `strength` f32 (tie
    /// strength, descending).
    pub const FRIENDS: &str = "friends.safetensors";
    /// exploratory: CSR over items: `offsets`, `categories` i64 (category index); plus `alpha`
    /// f32[N] and `beta` f32[N], the Beta quality prior of each item.
    pub const CATEGORIES: &str = "categories.safetensors";
    /// exploratory: category names, one per line.
    pub const CATEGORY_NAMES: &str = "categories.txt";
    /// popular: `global/items` i64[M], `global/scores` f32[M], and per segment
    /// `segment/<key>=<value>/items` and `.../scores` (best first).
    pub const POPULAR: &str = "popular.safetensors";
    /// Optional item titles for display (`item_id<TAB>title` per line).
    pub const TITLES: &str = "titles.tsv";
    /// attribute: tag names (genres, tags, knowledge-graph entities such as `actor:m.0x`), one
    /// per line; line `t` is tag index `t`.
    pub const TAG_NAMES: &str = "tags.txt";
    /// attribute: CSR over items: `offsets`, `tags` i64 (tag index), `weights` f32 (the item's
    /// L2-normalised IDF weight of the tag); plus `prior` f32[N], the item's quality prior.
    pub const ITEM_TAGS: &str = "item_tags.safetensors";
    /// attribute: CSR over tags: `offsets`, `items` i64, `scores` f32 (tag weight × quality
    /// prior, descending): the inverted index.
    pub const TAG_ITEMS: &str = "tag_items.safetensors";
    /// attribute: CSR over tags: `offsets`, `related` i64 (tag index), `weights` f32 (each row
    /// sums to 1, strongest first): knowledge-graph / co-occurrence neighbours for expansion.
    pub const RELATED_TAGS: &str = "related_tags.safetensors";
    /// Every strategy, when the training data has user attributes: `lift` f32[N, S], item `i`'s
    /// lift for segment `s` (engagement share from the segment over its population share,
    /// shrunk towards 1; 1 below the minimum support). Read by a gateway's propensity stage.
    pub const PROPENSITY: &str = "propensity.safetensors";
    /// The propensity table's segments, one `key=value` per line (`age_band=18-24`,
    /// `gender=F`, `occupation=writer`, `region=9`); line `s` is column `s`.
    pub const PROPENSITY_SEGMENTS: &str = "propensity_segments.txt";
}

/// Keys of [`BundleManifest::params`] the worker reads.
pub mod params {
    /// Unix seconds treated as "now" by time-decayed strategies (the newest interaction of the
    /// training data); the worker decays relative to it so offline data keeps its shape.
    pub const REFERENCE_TIME: &str = "reference_time";
    /// Model input length `L` of an ONNX user encoder.
    pub const HISTORY_LENGTH: &str = "history_length";
    /// attribute: the quality prior given to items without training interactions (items posted
    /// to `/v1/items`, or held out of training): the median prior of the trained items.
    pub const NEW_ITEM_PRIOR: &str = "new_item_prior";
}

/// sha256 of bytes, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The bundle version: the first 16 hex digits of sha256 over `path\0sha256\n` for every file
/// in path order. Two bundles with identical files have the same version.
pub fn content_version(files: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (path, digest) in files {
        h.update(path.as_bytes());
        h.update([0]);
        h.update(digest.as_bytes());
        h.update([b'\n']);
    }
    hex::encode(h.finalize())[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoder_is_served_with_the_bundles_history_length_else_the_queues() {
        let mut m = BundleManifest {
            format_version: BUNDLE_FORMAT_VERSION,
            strategy: StrategyType::Dssm,
            version: String::new(),
            dataset: DatasetInfo::default(),
            params: serde_json::json!({ params::HISTORY_LENGTH: 12 }),
            metrics: BTreeMap::new(),
            dim: Some(8),
            created_at: String::new(),
            files: BTreeMap::new(),
        };
        let queue = EncoderSettings {
            history_length: 30,
            ..EncoderSettings::default()
        };
        assert_eq!(m.encoder_history_length(&queue), 12);
        m.params = serde_json::json!({});
        assert_eq!(m.encoder_history_length(&queue), 30);
    }

    #[test]
    fn content_version_changes_when_any_file_changes() {
        let mut files = BTreeMap::new();
        files.insert("a.safetensors".to_string(), sha256_hex(b"a"));
        files.insert("model.onnx".to_string(), sha256_hex(b"m"));
        let v1 = content_version(&files);
        files.insert("model.onnx".to_string(), sha256_hex(b"m2"));
        assert_ne!(v1, content_version(&files));
        assert_eq!(v1.len(), 16);
    }

    #[test]
    fn sha256_matches_the_standard_test_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
