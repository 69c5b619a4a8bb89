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

/// The learning curve as a PNG: validation R@20 (left axis) and train loss (right axis) by epoch.
pub fn curve_png(points: &[EpochPoint], title: &str) -> crate::error::Result<Vec<u8>> {
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
