//! Choosing merge weights on the validation part: coordinate ascent over the queues' weights,
//! each tried at a few multiples of its current value (and at 0, the queue left out), with the
//! multiples re-centred on a winner that sits on the edge of what was tried.

/// Multiples of a weight tried in one pass (the current value, ×1, is already known).
const STEPS: [f64; 4] = [0.25, 0.5, 2.0, 4.0];
/// Times one weight's multiples are re-centred on an edge winner before settling there.
const MAX_WIDENINGS: usize = 4;
/// Passes over all the weights; the search stops early on a pass that changes nothing.
const MAX_PASSES: usize = 3;
/// The largest weight a RecallGateway accepts (`spec.queues[].weight`).
pub const MAX_WEIGHT: f64 = 1000.0;

/// What the search settled on.
#[derive(Clone, Debug, PartialEq)]
pub struct Search {
    pub weights: Vec<f64>,
    /// The objective at `weights`.
    pub value: f64,
    /// The starting weights' objective.
    pub initial_value: f64,
    /// Objective evaluations made.
    pub evaluations: usize,
}

/// Maximises `objective` over non-negative weights starting from `initial`. A change is kept
/// only when it is strictly better, so ties keep the earlier (starting) weights and the search
/// is deterministic.
pub fn coordinate_ascent(initial: &[f64], mut objective: impl FnMut(&[f64]) -> f64) -> Search {
    let mut weights: Vec<f64> = initial.iter().map(|w| w.clamp(0.0, MAX_WEIGHT)).collect();
    let mut best = objective(&weights);
    let initial_value = best;
    let mut evaluations = 1;
    for _ in 0..MAX_PASSES {
        let mut changed = false;
        for i in 0..weights.len() {
            let mut centre = if weights[i] > 0.0 { weights[i] } else { 1.0 };
            let mut tried_zero = weights[i] == 0.0;
            for _ in 0..=MAX_WIDENINGS {
                let mut candidates: Vec<f64> =
                    STEPS.iter().map(|m| (centre * m).min(MAX_WEIGHT)).collect();
                if !tried_zero {
                    candidates.insert(0, 0.0);
                    tried_zero = true;
                }
                let before = weights[i];
                for c in candidates {
                    if c == weights[i] {
                        continue;
                    }
                    let mut trial = weights.clone();
                    trial[i] = c;
                    let v = objective(&trial);
                    evaluations += 1;
                    if v > best {
                        best = v;
                        weights = trial;
                    }
                }
                let moved = weights[i] != before;
                changed |= moved;
                // An edge winner (the smallest or largest multiple tried) may have better
                // neighbours beyond it: re-centre there. Otherwise this weight is settled.
                let edge = weights[i] > 0.0
                    && (weights[i] == (centre * STEPS[0]).min(MAX_WEIGHT)
                        || weights[i] == (centre * STEPS[STEPS.len() - 1]).min(MAX_WEIGHT));
                if !(moved && edge) || weights[i] >= MAX_WEIGHT {
                    break;
                }
                centre = weights[i];
            }
        }
        if !changed {
            break;
        }
    }
    Search {
        weights,
        value: best,
        initial_value,
        evaluations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_peak_of_a_separable_objective() {
        // Peak at (2, 0.5): reachable by the ×2 / ×0.5 steps from (1, 1).
        let f = |w: &[f64]| -((w[0] - 2.0).powi(2)) - (w[1] - 0.5).powi(2);
        let s = coordinate_ascent(&[1.0, 1.0], f);
        assert_eq!(s.weights, [2.0, 0.5]);
        assert_eq!(s.value, 0.0);
        assert!(s.value > s.initial_value);
    }

    #[test]
    fn an_edge_winner_widens_the_search_beyond_the_first_multiples() {
        // Best at 64: the first pass reaches 4, then re-centres 4 → 16 → 64.
        let f = |w: &[f64]| -(w[0].log2() - 6.0).abs();
        let s = coordinate_ascent(&[1.0], f);
        assert_eq!(s.weights, [64.0]);
    }

    #[test]
    fn a_queue_that_only_hurts_is_left_out_with_weight_zero() {
        let f = |w: &[f64]| w[0] - w[1];
        let s = coordinate_ascent(&[1.0, 1.0], f);
        assert_eq!(s.weights[1], 0.0);
        assert!(s.weights[0] <= MAX_WEIGHT);
    }

    #[test]
    fn ties_keep_the_starting_weights_and_weights_stay_deployable() {
        let s = coordinate_ascent(&[3.0, 5000.0], |_| 1.0);
        assert_eq!(
            s.weights,
            [3.0, MAX_WEIGHT],
            "clamped to the CRD's range, else unchanged"
        );
        assert_eq!(s.value, s.initial_value);
    }
}
