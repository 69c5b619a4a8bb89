//! Kan's recall core: the algorithms that both the serving path (worker, gateway) and `kan eval`
//! run, written once. Pure and synchronous: no network, no async runtime, no Kubernetes client,
//! so the offline figures are computed by the same code that answers requests. The one module
//! that touches files is [`bundle`], the codec of local bundle directories.
//!
//! * [`bundle`] — the bundle codec: safetensors tensors, CSR, id lists, the writer and the
//!   verified reader of a local bundle directory;
//! * [`clock`] — the reference time that time-decayed strategies age interactions from;
//! * [`rank`] — the hit type, top-k selection and the score accumulator the kernels share;
//! * [`vector`] — dot product, normalisation and the exact scan over item vectors;
//! * [`itemcf`], [`item2vec`], [`social`], [`attribute`], [`popular`], [`exploratory`] — the strategy kernels, taking the queue's settings
//!   (the RecallQueue's `strategy` block) as they are deployed;
//! * [`merge`] — the gateway's merge policies;
//! * [`propensity`] — item lifts per audience segment (trainer) and the gateway's propensity
//!   boost/filter over merged candidates;
//! * [`interests`] — multi-interest users: K user vectors pooled from one history, and the
//!   merge of their K searches;
//! * [`fresh`] — trending windows and stored histories from the online store;
//! * [`readout`] — the online A/B readout: exposures joined with engagements, Wilson intervals.

pub mod attribute;
pub mod bundle;
pub mod clock;
pub mod exploratory;
pub mod fresh;
pub mod interests;
pub mod item2vec;
pub mod itemcf;
pub mod merge;
pub mod popular;
pub mod propensity;
pub mod rank;
pub mod readout;
pub mod social;
pub mod vector;

pub use rank::{Hit, ItemSet, top_k};

/// Rows of a compressed sparse row matrix, borrowed: row `r` is
/// `columns[offsets[r]..offsets[r + 1]]`. Rows past the end are empty.
#[derive(Debug, Clone, Copy)]
pub struct CsrRef<'a> {
    pub offsets: &'a [usize],
    pub columns: &'a [u32],
}

impl<'a> CsrRef<'a> {
    /// The positions of row `row` in `columns` (and in any array parallel to it).
    pub fn range(&self, row: usize) -> std::ops::Range<usize> {
        match (self.offsets.get(row), self.offsets.get(row + 1)) {
            (Some(&start), Some(&end)) if start <= end && end <= self.columns.len() => start..end,
            _ => 0..0,
        }
    }

    pub fn row(&self, row: usize) -> &'a [u32] {
        &self.columns[self.range(row)]
    }
}

/// Weight of the `i`-th most recent history item: `decay^i`.
pub fn recency_weight(decay: f64, i: usize) -> f32 {
    decay.powi(i.min(i32::MAX as usize) as i32) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_outside_the_matrix_are_empty_rather_than_a_panic() {
        let csr = CsrRef {
            offsets: &[0, 2, 3],
            columns: &[4, 5, 6],
        };
        assert_eq!(csr.row(0), [4, 5]);
        assert_eq!(csr.row(1), [6]);
        assert!(csr.row(2).is_empty());
        assert_eq!(csr.range(9), 0..0);
    }

    #[test]
    fn recency_weights_fall_geometrically() {
        assert_eq!(recency_weight(0.5, 0), 1.0);
        assert_eq!(recency_weight(0.5, 2), 0.25);
        assert_eq!(recency_weight(1.0, 40), 1.0);
    }
}
