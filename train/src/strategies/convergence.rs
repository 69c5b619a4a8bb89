//! Training to convergence: early stopping on a validation metric with patience, and the
//! learning curve (epoch → train loss, validation R@20, wall and CPU seconds) that trainers
//! record in their bundle's manifest.

use serde::Serialize;

/// One epoch of a learning curve.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpochPoint {
    pub epoch: usize,
    pub train_loss: f64,
    /// Validation Recall@20 after the epoch (None without a validation part).
    pub valid_recall_20: Option<f64>,
    /// Seconds since training started.
    pub wall_s: f64,
    /// CPU seconds (user + system) of the process since training started.
    pub cpu_s: Option<f64>,
}

/// What to do after an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A new best: keep these weights.
    Best,
    /// Not better, patience left: go on.
    Continue,
    /// `patience` epochs without a new best: stop and keep the best weights.
    Stop,
}

/// Early stopping on a metric where higher is better.
#[derive(Clone, Debug)]
pub struct EarlyStop {
    patience: usize,
    best: Option<(usize, f64)>,
    since_best: usize,
}

impl EarlyStop {
    pub fn new(patience: usize) -> Self {
        EarlyStop {
            patience,
            best: None,
            since_best: 0,
        }
    }

    /// Records `value` for `epoch`. NaN never counts as an improvement.
    pub fn observe(&mut self, epoch: usize, value: f64) -> Verdict {
        let better = match self.best {
            None => !value.is_nan(),
            Some((_, b)) => value > b,
        };
        if better {
            self.best = Some((epoch, value));
            self.since_best = 0;
            return Verdict::Best;
        }
        self.since_best += 1;
        if self.since_best >= self.patience {
            Verdict::Stop
        } else {
            Verdict::Continue
        }
    }

    /// The best epoch and its value so far.
    pub fn best(&self) -> Option<(usize, f64)> {
        self.best
    }
}

/// CPU seconds (user + system) this process has used; None where `/proc` is unavailable.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // Linux reports in USER_HZ, 100 on every supported architecture.
    Some(ticks / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_stops_after_patience_epochs_without_a_new_best_and_remembers_the_best() {
        let mut s = EarlyStop::new(2);
        assert_eq!(s.observe(1, 0.10), Verdict::Best);
        assert_eq!(s.observe(2, 0.12), Verdict::Best);
        assert_eq!(s.observe(3, 0.11), Verdict::Continue);
        assert_eq!(
            s.observe(4, 0.13),
            Verdict::Best,
            "a new best resets patience"
        );
        assert_eq!(s.observe(5, 0.13), Verdict::Continue, "equal is not better");
        assert_eq!(s.observe(6, 0.01), Verdict::Stop);
        assert_eq!(s.best(), Some((4, 0.13)));
    }

    #[test]
    fn a_nan_metric_is_never_a_best() {
        let mut s = EarlyStop::new(1);
        assert_eq!(s.observe(1, f64::NAN), Verdict::Stop);
        assert_eq!(s.best(), None);
    }

    #[test]
    fn cpu_seconds_grow_with_work_done() {
        let before = cpu_seconds();
        if before.is_none() {
            return; // no /proc here
        }
        let mut x = 0u64;
        let until = std::time::Instant::now() + std::time::Duration::from_millis(150);
        while std::time::Instant::now() < until {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds().unwrap() > before.unwrap());
    }
}
