//! The evaluation report: JSON, a Markdown table and an SVG chart of Recall@K.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

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
    #[serde(default)]
    pub warnings: Vec<String>,
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
        for w in &self.warnings {
            let _ = writeln!(s, "\n> warning: {w}");
        }
        s
    }

    /// Writes `report.json`, `report.md` and `recall.svg` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let json = dir.join("report.json");
        std::fs::write(&json, serde_json::to_vec_pretty(self)?).map_err(|e| Error::io(&json, e))?;
        let md = dir.join("report.md");
        std::fs::write(&md, self.to_markdown()).map_err(|e| Error::io(&md, e))?;
        let svg = dir.join("recall.svg");
        self.chart(&svg)?;
        Ok(vec![json, md, svg])
    }

    /// Recall@K per queue and merge as lines over K.
    pub fn chart(&self, path: &Path) -> Result<()> {
        let plot = |e: String| Error::InvalidInput(format!("cannot draw {}: {e}", path.display()));
        let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot(e.to_string()))?;
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
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Recall@K — {} ({})", self.dataset, self.part),
                ("sans-serif", 22),
            )
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((xmin..xmax).log_scale(), 0.0..ymax)
            .map_err(|e| plot(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("K")
            .y_desc("Recall@K")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(|e| plot(e.to_string()))?;
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
                .map_err(|e| plot(e.to_string()))?
                .label(r.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| plot(e.to_string()))?;
        root.present().map_err(|e| plot(e.to_string()))?;
        Ok(())
    }
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
            warnings: vec![],
        }
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

    #[test]
    fn writing_produces_json_markdown_and_an_svg_chart() {
        let dir = tempfile::tempdir().unwrap();
        let paths = report().write(dir.path()).unwrap();
        assert_eq!(paths.len(), 3);
        let back: EvalReport = serde_json::from_slice(&std::fs::read(&paths[0]).unwrap()).unwrap();
        assert_eq!(back, report());
        let svg = std::fs::read_to_string(&paths[2]).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("pop"),
            "{}",
            &svg[..svg.len().min(200)]
        );
    }
}
