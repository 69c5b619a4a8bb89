//! The evaluation report: JSON, a Markdown table and a chart of Recall@K (PNG and SVG).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Row {
    /// Queue name, or `merge:<policy>(<queues>)`.
    pub name: String,
    /// `queue` or `merge`.
    pub kind: String,
    /// Strategy of a queue, policy of a merge.
    pub strategy: String,
    /// `recall@K`, `ndcg@K`, `hit@K`, `coverage@K`, `users`.
    pub metrics: BTreeMap<String, f64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct EvalReport {
    pub dataset: String,
    pub split: String,
    /// `test` or `validation`.
    pub part: String,
    pub seed: u64,
    pub users: usize,
    pub items: usize,
    pub ks: Vec<usize>,
    pub rows: Vec<Row>,
    /// With a propensity stage: R@20 per audience segment, without and with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<SegmentRow>,
    /// With `--tune-weights`: the weights chosen for each merge policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tuned: Vec<TunedMerge>,
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// Merge weights chosen on the validation part for one policy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TunedMerge {
    pub policy: String,
    /// (queue, weight) in the queues' order.
    pub weights: Vec<(String, f64)>,
    /// Validation R@20 with these weights, and with the weights the search started from.
    pub recall_20: f64,
    pub initial_recall_20: f64,
    /// Merges scored during the search.
    pub evaluations: usize,
}

impl TunedMerge {
    /// The `kan eval` flags that score these weights (on test, say).
    pub fn weight_flags(&self) -> String {
        self.weights
            .iter()
            .map(|(q, w)| format!("--weight {q}={w}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// R@20 of the users of one audience segment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SegmentRow {
    /// `key=value`, e.g. `age_band=18-24`.
    pub segment: String,
    pub users: usize,
    /// Row name → (R@20 without the propensity stage, with it).
    pub recall: BTreeMap<String, (f64, f64)>,
}

impl EvalReport {
    /// One table: a row per queue/merge, Recall/NDCG/HitRate at every K, coverage at the largest.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Dataset `{}`, split {}, {} part, {} users, {} items, full ranking (training items excluded).\n",
            self.dataset, self.split, self.part, self.users, self.items
        );
        let mut head = "| queue | strategy |".to_string();
        let mut rule = "| --- | --- |".to_string();
        for k in &self.ks {
            let _ = write!(head, " R@{k} | N@{k} | HR@{k} |");
            rule.push_str(" ---: | ---: | ---: |");
        }
        let last = self.ks.last().copied().unwrap_or(0);
        let _ = write!(head, " cov@{last} |");
        rule.push_str(" ---: |");
        let _ = writeln!(s, "{head}\n{rule}");
        for r in &self.rows {
            let get = |m: &str| r.metrics.get(m).copied().unwrap_or(f64::NAN);
            let _ = write!(s, "| {} | {} |", r.name, r.strategy);
            for k in &self.ks {
                let _ = write!(
                    s,
                    " {:.4} | {:.4} | {:.4} |",
                    get(&format!("recall@{k}")),
                    get(&format!("ndcg@{k}")),
                    get(&format!("hit@{k}"))
                );
            }
            let _ = writeln!(s, " {:.4} |", get(&format!("coverage@{last}")));
        }
        self.segments_markdown(&mut s);
        for t in &self.tuned {
            let _ = writeln!(
                s,
                "\nWeights for `{}` chosen on validation R@20 ({:.4} → {:.4}, {} merges scored): `--merge {} {}`",
                t.policy,
                t.initial_recall_20,
                t.recall_20,
                t.evaluations,
                t.policy,
                t.weight_flags()
            );
        }
        for w in &self.warnings {
            let _ = writeln!(s, "\n> warning: {w}");
        }
        s
    }

    /// The per-segment table: R@20 without → with the propensity stage.
    fn segments_markdown(&self, s: &mut String) {
        let Some(first) = self.segments.first() else {
            return;
        };
        let names: Vec<&String> = first.recall.keys().collect();
        let _ = writeln!(
            s,
            "\nR@20 per audience segment, without → with the propensity stage:\n"
        );
        let mut head = "| segment | users |".to_string();
        let mut rule = "| --- | ---: |".to_string();
        for n in &names {
            let _ = write!(head, " {n} |");
            rule.push_str(" ---: |");
        }
        let _ = writeln!(s, "{head}\n{rule}");
        for row in &self.segments {
            let _ = write!(s, "| {} | {} |", row.segment, row.users);
            for n in &names {
                match row.recall.get(*n) {
                    Some((without, with)) => {
                        let _ = write!(s, " {without:.4} → {with:.4} |");
                    }
                    None => s.push_str(" |"),
                }
            }
            s.push('\n');
        }
    }

    /// Writes `report.json`, `report.md`, `recall.png` and `recall.svg` into `dir`; returns their
    /// paths in that order.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let json = dir.join("report.json");
        std::fs::write(&json, serde_json::to_vec_pretty(self)?).map_err(|e| Error::io(&json, e))?;
        let md = dir.join("report.md");
        std::fs::write(&md, self.to_markdown()).map_err(|e| Error::io(&md, e))?;
        let png = dir.join("recall.png");
        self.png_chart(&png)?;
        let svg = dir.join("recall.svg");
        self.svg_chart(&svg)?;
        Ok(vec![json, md, png, svg])
    }

    /// Recall@K per queue and merge as a PNG of [`CHART_SIZE`].
    pub fn png_chart(&self, path: &Path) -> Result<()> {
        let (w, h) = CHART_SIZE;
        let mut pixels = vec![0u8; w as usize * h as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut pixels, CHART_SIZE).into_drawing_area();
            self.draw(&root)
                .and_then(|()| root.present().map_err(|e| e.to_string()))
                .map_err(|e| chart_error(path, e))?;
        }
        let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder
            .write_header()
            .and_then(|mut writer| {
                writer.write_image_data(&pixels)?;
                writer.finish()
            })
            .map_err(|e| chart_error(path, e.to_string()))
    }

    /// The same chart as an SVG (text stays selectable; viewers substitute their own font).
    pub fn svg_chart(&self, path: &Path) -> Result<()> {
        let root = SVGBackend::new(path, CHART_SIZE).into_drawing_area();
        self.draw(&root)
            .and_then(|()| root.present().map_err(|e| e.to_string()))
            .map_err(|e| chart_error(path, e))
    }

    /// Recall@K per queue and merge as lines over a logarithmic K axis, legend at the upper left.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        register_chart_font()?;
        let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(err)?;
        let ymax = self
            .rows
            .iter()
            .flat_map(|r| {
                self.ks
                    .iter()
                    .filter_map(|k| r.metrics.get(&format!("recall@{k}")))
            })
            .fold(0.0f64, |a, &b| a.max(b))
            .max(0.01)
            * 1.1;
        let xs: Vec<f64> = self.ks.iter().map(|&k| k as f64).collect();
        let xmin = xs.first().copied().unwrap_or(1.0);
        let xmax = xs.last().copied().unwrap_or(2.0).max(xmin * 2.0);
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("Recall@K — {} ({})", self.dataset, self.part),
                (FONT_FAMILY, 22),
            )
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(
                // Ticks at the evaluated cut-offs rather than at powers of ten.
                (xmin..xmax).log_scale().with_key_points(xs),
                0.0..ymax,
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .label_style((FONT_FAMILY, 14))
            .x_desc("K")
            .y_desc("Recall@K")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(err)?;
        for (n, r) in self.rows.iter().enumerate() {
            let color = Palette99::pick(n).to_rgba();
            let points: Vec<(f64, f64)> = self
                .ks
                .iter()
                .filter_map(|k| {
                    r.metrics
                        .get(&format!("recall@{k}"))
                        .map(|v| (*k as f64, *v))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(err)?
                .label(r.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .label_font((FONT_FAMILY, 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(err)?;
        Ok(())
    }
}

/// Width and height of the chart in pixels.
pub const CHART_SIZE: (u32, u32) = (900, 560);

/// The family name chart text is drawn in; it maps to the font compiled into the binary.
pub(crate) const FONT_FAMILY: &str = "sans-serif";

/// Registers the Ubuntu font that `epaint_default_fonts` embeds as the chart's only font, so
/// drawing text needs no system fonts (plotters' `ab_glyph` text never looks for any).
pub(crate) fn register_chart_font() -> Result<(), String> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(
            FONT_FAMILY,
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        )
        .is_ok()
    });
    ok.then_some(())
        .ok_or_else(|| "the embedded chart font could not be parsed".to_string())
}

fn chart_error(path: &Path, problem: String) -> Error {
    Error::InvalidInput(format!("cannot draw {}: {problem}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> EvalReport {
        let metrics: BTreeMap<String, f64> = [
            ("recall@20", 0.25),
            ("ndcg@20", 0.125),
            ("hit@20", 0.5),
            ("coverage@20", 0.1),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
        EvalReport {
            dataset: "toy".into(),
            split: "random".into(),
            part: "test".into(),
            seed: 1,
            users: 2,
            items: 10,
            ks: vec![20],
            rows: vec![Row {
                name: "pop".into(),
                kind: "queue".into(),
                strategy: "popular".into(),
                metrics,
            }],
            segments: vec![],
            tuned: Vec::new(),
            warnings: vec![],
        }
    }

    #[test]
    fn the_segment_table_shows_recall_without_and_with_the_propensity_stage() {
        let r = EvalReport {
            segments: vec![SegmentRow {
                segment: "age_band=18-24".into(),
                users: 12,
                recall: [("pop".to_string(), (0.1, 0.125))].into(),
            }],
            ..report()
        };
        let md = r.to_markdown();
        assert!(md.contains("| segment | users | pop |"), "{md}");
        assert!(
            md.contains("| age_band=18-24 | 12 | 0.1000 → 0.1250 |"),
            "{md}"
        );
        assert!(!report().to_markdown().contains("segment"));
    }

    #[test]
    fn the_markdown_table_has_one_row_per_queue_with_four_decimals() {
        let md = report().to_markdown();
        assert!(
            md.contains("| pop | popular | 0.2500 | 0.1250 | 0.5000 | 0.1000 |"),
            "{md}"
        );
        assert!(md.contains("R@20"));
    }

    /// Two queues over three cut-offs, so both draw a visible line.
    fn two_queue_report() -> EvalReport {
        let row = |name: &str, recalls: [f64; 3]| Row {
            name: name.into(),
            kind: "queue".into(),
            strategy: "itemcf".into(),
            metrics: [20, 50, 100]
                .iter()
                .zip(recalls)
                .map(|(k, v)| (format!("recall@{k}"), v))
                .collect(),
        };
        EvalReport {
            ks: vec![20, 50, 100],
            rows: vec![
                row("alpha", [0.1, 0.2, 0.3]),
                row("beta", [0.05, 0.15, 0.2]),
            ],
            ..report()
        }
    }

    fn decode_png(path: &Path) -> (png::OutputInfo, Vec<u8>) {
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info, buf)
    }

    /// Pixels in the rectangle `[x0, x1) × [y0, y1)` for which `pred` holds.
    fn count(
        pixels: &[u8],
        (x0, x1): (u32, u32),
        (y0, y1): (u32, u32),
        pred: impl Fn([u8; 3]) -> bool,
    ) -> usize {
        let w = CHART_SIZE.0;
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| ((y * w + x) * 3) as usize))
            .filter(|&i| pred([pixels[i], pixels[i + 1], pixels[i + 2]]))
            .count()
    }

    #[test]
    fn writing_produces_json_markdown_and_png_and_svg_charts() {
        let dir = tempfile::tempdir().unwrap();
        let paths = report().write(dir.path()).unwrap();
        let names: Vec<_> = paths
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["report.json", "report.md", "recall.png", "recall.svg"]
        );
        let back: EvalReport = serde_json::from_slice(&std::fs::read(&paths[0]).unwrap()).unwrap();
        assert_eq!(back, report());
        let svg = std::fs::read_to_string(&paths[3]).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("pop"),
            "{}",
            &svg[..svg.len().min(200)]
        );
    }

    #[test]
    fn the_png_chart_has_the_chart_size_lines_in_queue_colours_and_legend_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recall.png");
        two_queue_report().png_chart(&path).unwrap();
        let (info, pixels) = decode_png(&path);
        assert_eq!((info.width, info.height), CHART_SIZE);
        assert_eq!(info.color_type, png::ColorType::Rgb);

        let colour = |n: usize| {
            let c = Palette99::pick(n).to_rgba();
            [c.0, c.1, c.2]
        };
        let (w, h) = CHART_SIZE;
        // The lines rise to the right, away from the legend in the upper-left quarter.
        let lower_right = ((w / 2, w), (h / 4, h));
        for n in 0..2 {
            let lines = count(&pixels, lower_right.0, lower_right.1, |p| p == colour(n));
            assert!(lines > 100, "queue {n}: {lines} pixels in its colour");
        }
        // Legend: a swatch per queue and dark text beside it, in the upper-left quarter.
        let upper_left = ((0, w / 2), (0, h / 2));
        for n in 0..2 {
            let swatch = count(&pixels, upper_left.0, upper_left.1, |p| p == colour(n));
            assert!(swatch >= 18, "queue {n}: legend swatch of {swatch} pixels");
        }
        let dark = |p: [u8; 3]| p.iter().all(|&c| c < 96);
        let text = count(&pixels, upper_left.0, upper_left.1, dark);
        let blank = {
            let mut r = two_queue_report();
            for row in &mut r.rows {
                row.name.clear();
            }
            r.dataset.clear();
            let path = dir.path().join("unnamed.png");
            r.png_chart(&path).unwrap();
            count(&decode_png(&path).1, upper_left.0, upper_left.1, dark)
        };
        assert!(
            text > blank + 100,
            "names and caption add dark text pixels: {text} with, {blank} without"
        );
    }
}
