//! Training to convergence: early stopping on a validation metric with patience, and the
//! learning curve (epoch → train loss, validation R@20, wall and CPU seconds) that trainers
//! record in their bundle's manifest.

use std::time::Instant;

use candle_core::{Tensor, Var};
use indicatif::ProgressBar;
use serde::Serialize;

use super::{Context, Recaller};
use crate::error::Result;
use crate::progress::Progress;

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

/// A model that [`fit`] trains epoch by epoch.
pub trait EpochModel {
    /// A copy of the weights, to go back to the best epoch's.
    type Weights;
    /// One pass over the training examples.
    fn train_epoch(&mut self) -> Result<EpochLoss>;
    /// Validation Recall@20 of the current weights; None without a validation part.
    fn valid_recall_20(&mut self) -> Result<Option<f64>>;
    fn snapshot(&self) -> Result<Self::Weights>;
    fn restore(&mut self, weights: &Self::Weights) -> Result<()>;
}

/// The losses of one epoch.
#[derive(Clone, Copy, Debug)]
pub struct EpochLoss {
    /// Mean over the epoch's steps.
    pub mean: f64,
    /// The last step's.
    pub last: f32,
}

/// What [`fit`] ran: the curve, and the epoch whose weights the model holds now.
#[derive(Clone, Debug)]
pub struct Fitted {
    pub curve: Vec<EpochPoint>,
    /// Epochs run.
    pub epochs: usize,
    /// The best validation epoch (the last epoch without a validation part).
    pub best_epoch: usize,
    /// The last training step's loss.
    pub final_loss: f32,
}

/// One epoch's progress line: loss, validation R@20 against the best so far, time spent, and
/// the time the remaining epochs would take at this pace (an upper bound: early stopping may
/// end sooner).
pub fn epoch_line(
    name: &str,
    point: &EpochPoint,
    max_epochs: usize,
    best: Option<(usize, f64)>,
) -> String {
    let mut line = format!(
        "{name} epoch {}/{max_epochs}: train loss {:.4}",
        point.epoch, point.train_loss
    );
    if let Some(r) = point.valid_recall_20 {
        line += &format!(", valid R@20 {r:.4}");
        if let Some((e, b)) = best {
            line += &format!(" (best {b:.4} at epoch {e})");
        }
    }
    line += &format!(", {:.0} s", point.wall_s);
    if let Some(cpu) = point.cpu_s {
        line += &format!(" / {cpu:.0} CPU-s");
    }
    let left = max_epochs.saturating_sub(point.epoch);
    if left > 0 {
        let eta = point.wall_s / point.epoch.max(1) as f64 * left as f64;
        let epochs = if left == 1 { "epoch" } else { "epochs" };
        line += &format!(", at most {left} {epochs} left (≤ {})", duration(eta));
    }
    line
}

/// Seconds as `42 s`, `7.5 min` or `1.2 h`.
fn duration(s: f64) -> String {
    if s < 90.0 {
        format!("{s:.0} s")
    } else if s < 5400.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

/// Trains `model` for at most `max_epochs`, stopping after `patience` epochs without a better
/// validation R@20 and restoring the best epoch's weights; `pb` shows `name` and the latest R@20,
/// and `progress` gets one [`epoch_line`] per epoch.
pub fn fit<M: EpochModel>(
    model: &mut M,
    max_epochs: usize,
    patience: usize,
    pb: &ProgressBar,
    progress: &Progress,
    name: &str,
) -> Result<Fitted> {
    let mut stop = EarlyStop::new(patience);
    let mut best: Option<M::Weights> = None;
    let mut curve = Vec::new();
    let started = Instant::now();
    let cpu0 = cpu_seconds();
    let mut final_loss = f32::NAN;
    for epoch in 1..=max_epochs {
        let loss = model.train_epoch()?;
        final_loss = loss.last;
        let valid_recall_20 = model.valid_recall_20()?;
        curve.push(EpochPoint {
            epoch,
            train_loss: loss.mean,
            valid_recall_20,
            wall_s: started.elapsed().as_secs_f64(),
            cpu_s: cpu_seconds().zip(cpu0).map(|(now, then)| now - then),
        });
        let verdict = valid_recall_20.map(|r| {
            pb.set_message(format!("{name} R@20 {r:.4}"));
            stop.observe(epoch, r)
        });
        if let Some(point) = curve.last() {
            progress.line(pb, &epoch_line(name, point, max_epochs, stop.best()));
        }
        match verdict {
            Some(Verdict::Best) => best = Some(model.snapshot()?),
            Some(Verdict::Stop) => break,
            Some(Verdict::Continue) | None => {}
        }
    }
    pb.finish();
    let epochs = curve.len();
    let best_epoch = match (stop.best(), best) {
        (Some((e, _)), Some(weights)) => {
            model.restore(&weights)?;
            e
        }
        _ => epochs,
    };
    Ok(Fitted {
        curve,
        epochs,
        best_epoch,
        final_loss,
    })
}

/// Validation Recall@20 of the recaller `view` builds, over `ctx`'s validation part; None (and
/// no recaller built) without one.
pub fn valid_recall_20<R: Recaller>(
    ctx: &Context,
    view: impl FnOnce() -> Result<R>,
) -> Result<Option<f64>> {
    if ctx.split.valid.is_empty() {
        return Ok(None);
    }
    let m =
        crate::pipeline::validate_parts(ctx.ds, ctx.split, ctx.history, &view()?, ctx.opts.seed)?;
    Ok(m.get("recall@20").copied())
}

/// Deep copies of candle variables, for [`restore_vars`].
pub fn snapshot_vars(vars: &[Var]) -> Result<Vec<Tensor>> {
    vars.iter().map(|v| Ok(v.as_tensor().copy()?)).collect()
}

/// Sets each variable back to its [`snapshot_vars`] copy.
pub fn restore_vars(vars: &[Var], weights: &[Tensor]) -> Result<()> {
    for (v, w) in vars.iter().zip(weights) {
        v.set(w)?;
    }
    Ok(())
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

    /// A model whose "weights" are the epoch it last trained, with scripted validation scores.
    struct Scripted {
        scores: Vec<Option<f64>>,
        epoch: usize,
        restored: Option<usize>,
    }

    impl EpochModel for Scripted {
        type Weights = usize;
        fn train_epoch(&mut self) -> Result<EpochLoss> {
            self.epoch += 1;
            Ok(EpochLoss {
                mean: 1.0 / self.epoch as f64,
                last: 0.5,
            })
        }
        fn valid_recall_20(&mut self) -> Result<Option<f64>> {
            Ok(self.scores[self.epoch - 1])
        }
        fn snapshot(&self) -> Result<usize> {
            Ok(self.epoch)
        }
        fn restore(&mut self, weights: &usize) -> Result<()> {
            self.restored = Some(*weights);
            Ok(())
        }
    }

    fn scripted(scores: &[Option<f64>]) -> Scripted {
        Scripted {
            scores: scores.to_vec(),
            epoch: 0,
            restored: None,
        }
    }

    fn fit_quietly(m: &mut Scripted, max_epochs: usize, patience: usize) -> Fitted {
        let progress = Progress::new(false);
        fit(
            m,
            max_epochs,
            patience,
            &ProgressBar::hidden(),
            &progress,
            "t",
        )
        .unwrap()
    }

    #[test]
    fn fit_stops_on_patience_and_hands_back_the_best_epochs_weights() {
        let mut m = scripted(&[Some(0.1), Some(0.3), Some(0.2), Some(0.25), Some(0.9)]);
        let f = fit_quietly(&mut m, 5, 2);
        assert_eq!(f.epochs, 4, "two epochs without a new best after epoch 2");
        assert_eq!(f.best_epoch, 2);
        assert_eq!(m.restored, Some(2), "the weights snapshotted after epoch 2");
        assert_eq!(f.final_loss, 0.5);
        let epochs: Vec<usize> = f.curve.iter().map(|p| p.epoch).collect();
        assert_eq!(epochs, [1, 2, 3, 4]);
        assert_eq!(f.curve[2].valid_recall_20, Some(0.2));
        assert_eq!(f.curve[3].train_loss, 0.25);
    }

    #[test]
    fn an_epoch_line_says_where_training_stands_and_how_long_the_rest_may_take() {
        let point = EpochPoint {
            epoch: 2,
            train_loss: 4.25,
            valid_recall_20: Some(0.1801),
            wall_s: 120.0,
            cpu_s: Some(230.0),
        };
        assert_eq!(
            epoch_line("dssm", &point, 20, Some((2, 0.1801))),
            "dssm epoch 2/20: train loss 4.2500, valid R@20 0.1801 (best 0.1801 at epoch 2), \
             120 s / 230 CPU-s, at most 18 epochs left (≤ 18.0 min)"
        );
        let last = EpochPoint {
            epoch: 3,
            valid_recall_20: None,
            cpu_s: None,
            ..point
        };
        assert_eq!(
            epoch_line("gat", &last, 3, None),
            "gat epoch 3/3: train loss 4.2500, 120 s"
        );
    }

    #[test]
    fn fit_without_validation_runs_every_epoch_and_keeps_the_last_weights() {
        let mut m = scripted(&[None, None, None]);
        let f = fit_quietly(&mut m, 3, 1);
        assert_eq!((f.epochs, f.best_epoch), (3, 3));
        assert_eq!(m.restored, None);
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

/// The learning curve as a PNG: validation R@20 (left axis) and train loss (right axis) by epoch.
pub fn curve_png(points: &[EpochPoint], title: &str) -> Result<Vec<u8>> {
    use crate::eval::report::{FONT_FAMILY, register_chart_font};
    use plotters::prelude::*;
    const SIZE: (u32, u32) = (900, 520);
    let fail = |e: String| crate::error::Error::InvalidInput(format!("cannot draw the curve: {e}"));
    let mut pixels = vec![0u8; SIZE.0 as usize * SIZE.1 as usize * 3];
    {
        register_chart_font().map_err(fail)?;
        let root = BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area();
        let err = |e: DrawingAreaErrorKind<_>| fail(e.to_string());
        root.fill(&WHITE).map_err(err)?;
        let last = points.iter().map(|p| p.epoch).max().unwrap_or(1).max(2) as f64;
        let rmax = points
            .iter()
            .filter_map(|p| p.valid_recall_20)
            .fold(0.01f64, f64::max)
            * 1.1;
        let losses = points
            .iter()
            .map(|p| p.train_loss)
            .filter(|l| l.is_finite());
        let (lmin, lmax) = losses.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), l| {
            (a.min(l), b.max(l))
        });
        let (lmin, lmax) = if lmin.is_finite() && lmax > lmin {
            (lmin * 0.95, lmax * 1.05)
        } else {
            (0.0, 1.0)
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT_FAMILY, 22))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .right_y_label_area_size(60)
            .build_cartesian_2d(1.0..last, 0.0..rmax)
            .map_err(err)?
            .set_secondary_coord(1.0..last, lmin..lmax);
        chart
            .configure_mesh()
            .label_style((FONT_FAMILY, 14))
            .x_desc("epoch")
            .y_desc("validation R@20")
            .draw()
            .map_err(err)?;
        chart
            .configure_secondary_axes()
            .label_style((FONT_FAMILY, 14))
            .y_desc("train loss")
            .draw()
            .map_err(err)?;
        let recall: Vec<(f64, f64)> = points
            .iter()
            .filter_map(|p| p.valid_recall_20.map(|r| (p.epoch as f64, r)))
            .collect();
        chart
            .draw_series(LineSeries::new(recall, BLUE.stroke_width(2)))
            .map_err(err)?
            .label("validation R@20")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE.stroke_width(2)));
        let loss: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (p.epoch as f64, p.train_loss))
            .collect();
        chart
            .draw_secondary_series(LineSeries::new(loss, RED.stroke_width(2)))
            .map_err(err)?
            .label("train loss")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED.stroke_width(2)));
        chart
            .configure_series_labels()
            .label_font((FONT_FAMILY, 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, SIZE.0, SIZE.1);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder
        .write_header()
        .and_then(|mut w| {
            w.write_image_data(&pixels)?;
            w.finish()
        })
        .map_err(|e| fail(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod png_tests {
    use super::*;

    #[test]
    fn the_curve_png_is_a_png_of_the_chart_size() {
        let pts: Vec<EpochPoint> = (1..=4)
            .map(|e| EpochPoint {
                epoch: e,
                train_loss: 5.0 / e as f64,
                valid_recall_20: Some(0.1 + 0.01 * e as f64),
                wall_s: e as f64,
                cpu_s: Some(2.0 * e as f64),
            })
            .collect();
        let bytes = curve_png(&pts, "dssm").unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let reader = decoder.read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), (900, 520));
    }
}
