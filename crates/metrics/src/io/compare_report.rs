//! The comparison as the paper's table — one row per system, the columns of
//! [`PAPER_COLUMNS`], then frame-level detection's [`DETECTION_COLUMNS`] — as text, Markdown,
//! CSV and JSON, best value per column marked.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{json, Value};

use super::compare::Comparison;
use crate::registry::{self, Better, Metric, DETECTION_COLUMNS, PAPER_COLUMNS};
use crate::Scores;

/// Which of the report's aggregates the table shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Aggregation {
    /// Mean over videos (the reference's grouped recorder; the paper's table).
    #[default]
    VideoMean,
    /// Every frame weighs the same.
    Overall,
}

impl Aggregation {
    pub fn key(self) -> &'static str {
        match self {
            Aggregation::VideoMean => "video_mean",
            Aggregation::Overall => "overall",
        }
    }
}

/// Decimals of the tables, as in the paper; values equal at this precision tie for best.
const DECIMALS: usize = 3;

pub struct TableOptions {
    pub aggregation: Aggregation,
    /// Rows best first by this metric; `None` keeps the systems' order.
    pub sort: Option<&'static Metric>,
}

fn columns() -> Vec<&'static Metric> {
    PAPER_COLUMNS
        .iter()
        .chain(DETECTION_COLUMNS)
        .map(|k| registry::find(k).expect("the columns are registered"))
        .collect()
}

fn rounded(x: f64) -> f64 {
    let scale = 10f64.powi(DECIMALS as i32);
    (x * scale).round() / scale
}

fn cell(x: Option<f64>) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{x:.DECIMALS$}"),
        Some(_) => "nan".into(),
        None => "-".into(),
    }
}

fn arrow(m: &Metric) -> &'static str {
    match m.better {
        Better::Higher => "↑",
        Better::Lower => "↓",
    }
}

/// Which rows hold the best value (at the shown precision) of `metric` among `rows`.
fn best_rows(rows: &[&Scores], metric: &Metric) -> Vec<bool> {
    let values: Vec<Option<f64>> = rows
        .iter()
        .map(|s| s.get(metric.key).filter(|x| x.is_finite()).map(rounded))
        .collect();
    let best =
        values.iter().flatten().copied().reduce(
            |a, b| {
                if metric.better.improves(b, a) {
                    b
                } else {
                    a
                }
            },
        );
    values.iter().map(|v| v.is_some() && *v == best).collect()
}

impl Comparison {
    fn scores(&self, i: usize, aggregation: Aggregation) -> &Scores {
        let report = &self.systems[i].report;
        match aggregation {
            Aggregation::VideoMean => &report.video_mean,
            Aggregation::Overall => &report.overall,
        }
    }

    /// Row order: as given, or best first by `options.sort` (absent values last).
    pub fn order(&self, options: &TableOptions) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.systems.len()).collect();
        if let Some(metric) = options.sort {
            let value = |i: usize| self.scores(i, options.aggregation).get(metric.key);
            order.sort_by(|&a, &b| match (value(a), value(b)) {
                (Some(x), Some(y)) => {
                    let ord = x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
                    match metric.better {
                        Better::Higher => ord.reverse(),
                        Better::Lower => ord,
                    }
                }
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            });
        }
        order
    }

    /// The table for a terminal: best values marked `*`, then the per-video breakdown.
    pub fn text(&self, options: &TableOptions) -> String {
        let cols = columns();
        let order = self.order(options);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} frames in {} videos, every system on the same frames; {} ({})",
            self.frames,
            self.videos,
            options.aggregation.key(),
            if options.aggregation == Aggregation::VideoMean {
                "mean over videos, as the paper"
            } else {
                "every frame the same weight"
            }
        );
        // Per-video rows indent the system names by two.
        let name_width = 2 + self
            .systems
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(0)
            .max(6);
        let header = |out: &mut String, first: &str| {
            let _ = write!(out, "{first:<name_width$}");
            for m in &cols {
                let _ = write!(out, " {:>12}", format!("{}{}", m.display, arrow(m)));
            }
            out.push('\n');
        };
        header(&mut out, "system");
        let rows: Vec<&Scores> = order
            .iter()
            .map(|&i| self.scores(i, options.aggregation))
            .collect();
        let best: Vec<Vec<bool>> = cols.iter().map(|m| best_rows(&rows, m)).collect();
        for (r, &i) in order.iter().enumerate() {
            let _ = write!(out, "{:<name_width$}", self.systems[i].name);
            for (c, m) in cols.iter().enumerate() {
                let mark = if best[c][r] { "*" } else { " " };
                let _ = write!(out, " {:>11}{mark}", cell(rows[r].get(m.key)));
            }
            out.push('\n');
        }
        let _ = writeln!(out, "* best in its column");
        for video in self.systems[0].report.per_video.keys() {
            let _ = writeln!(out, "\n{video}");
            header(&mut out, "  system");
            let rows: Vec<&Scores> = order
                .iter()
                .map(|&i| &self.systems[i].report.per_video[video])
                .collect();
            let best: Vec<Vec<bool>> = cols.iter().map(|m| best_rows(&rows, m)).collect();
            for (r, &i) in order.iter().enumerate() {
                let _ = write!(
                    out,
                    "{:<name_width$}",
                    format!("  {}", self.systems[i].name)
                );
                for (c, m) in cols.iter().enumerate() {
                    let mark = if best[c][r] { "*" } else { " " };
                    let _ = write!(out, " {:>11}{mark}", cell(rows[r].get(m.key)));
                }
                out.push('\n');
            }
        }
        out
    }

    /// The paper's table in Markdown (best in bold), then one table per video.
    pub fn markdown(&self, options: &TableOptions) -> String {
        let cols = columns();
        let order = self.order(options);
        let mut out = String::new();
        let table = |out: &mut String, rows: &[&Scores]| {
            let _ = write!(out, "| system |");
            for m in &cols {
                let _ = write!(out, " {}{} |", m.display, arrow(m));
            }
            let _ = write!(out, "\n| --- |");
            for _ in &cols {
                out.push_str(" ---: |");
            }
            out.push('\n');
            let best: Vec<Vec<bool>> = cols.iter().map(|m| best_rows(rows, m)).collect();
            for (r, &i) in order.iter().enumerate() {
                let _ = write!(out, "| {} |", self.systems[i].name.replace('|', "\\|"));
                for (c, m) in cols.iter().enumerate() {
                    let v = cell(rows[r].get(m.key));
                    if best[c][r] {
                        let _ = write!(out, " **{v}** |");
                    } else {
                        let _ = write!(out, " {v} |");
                    }
                }
                out.push('\n');
            }
        };
        let rows: Vec<&Scores> = order
            .iter()
            .map(|&i| self.scores(i, options.aggregation))
            .collect();
        let _ = writeln!(
            out,
            "{} frames in {} videos, every system on the same frames; {}. Best per column in bold.\n",
            self.frames,
            self.videos,
            match options.aggregation {
                Aggregation::VideoMean => "mean over videos (as the paper)",
                Aggregation::Overall => "mean over frames",
            }
        );
        table(&mut out, &rows);
        for video in self.systems[0].report.per_video.keys() {
            let _ = writeln!(out, "\n**{video}**\n");
            let rows: Vec<&Scores> = order
                .iter()
                .map(|&i| &self.systems[i].report.per_video[video])
                .collect();
            table(&mut out, &rows);
        }
        out
    }

    /// `system,video,<column keys>`: first each system's aggregate (video = `video_mean` or
    /// `overall`), then every video; full precision.
    pub fn csv(&self, options: &TableOptions) -> String {
        let cols = columns();
        let order = self.order(options);
        let quote = |s: &str| {
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        let mut out = String::from("system,video");
        for m in &cols {
            let _ = write!(out, ",{}", m.key);
        }
        out.push('\n');
        let row = |out: &mut String, system: &str, video: &str, scores: &Scores| {
            let _ = write!(out, "{},{}", quote(system), quote(video));
            for m in &cols {
                match scores.get(m.key) {
                    Some(v) => {
                        let _ = write!(out, ",{v}");
                    }
                    None => out.push(','),
                }
            }
            out.push('\n');
        };
        for &i in &order {
            row(
                &mut out,
                &self.systems[i].name,
                options.aggregation.key(),
                self.scores(i, options.aggregation),
            );
        }
        for video in self.systems[0].report.per_video.keys() {
            for &i in &order {
                row(
                    &mut out,
                    &self.systems[i].name,
                    video,
                    &self.systems[i].report.per_video[video],
                );
            }
        }
        out
    }

    /// Everything: columns (with direction), each system's table row and full report, how its
    /// predictions were read, the best systems per column, the per-video rows.
    pub fn json(&self, options: &TableOptions) -> Value {
        let cols = columns();
        let order = self.order(options);
        let row = |scores: &Scores| -> Value {
            cols.iter()
                .map(|m| (m.key.to_string(), json!(scores.get(m.key))))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        let rows: Vec<&Scores> = order
            .iter()
            .map(|&i| self.scores(i, options.aggregation))
            .collect();
        let mut best = serde_json::Map::new();
        for m in &cols {
            let names: Vec<&str> = best_rows(&rows, m)
                .iter()
                .zip(&order)
                .filter(|(b, _)| **b)
                .map(|(_, &i)| self.systems[i].name.as_str())
                .collect();
            best.insert(m.key.to_string(), json!(names));
        }
        let systems: Vec<Value> = order
            .iter()
            .map(|&i| {
                let s = &self.systems[i];
                let readings: BTreeMap<String, usize> =
                    s.readings.iter().map(|(r, n)| (r.describe(), *n)).collect();
                json!({
                    "name": s.name,
                    "pred": s.pred.display().to_string(),
                    "layout": s.layout,
                    "read_as": readings,
                    "resized": s.resized,
                    "excluded": s.excluded,
                    "dropped": s.dropped,
                    "table": row(self.scores(i, options.aggregation)),
                    "report": s.report,
                })
            })
            .collect();
        let mut per_video = serde_json::Map::new();
        for video in self.systems[0].report.per_video.keys() {
            let by_system: serde_json::Map<String, Value> = order
                .iter()
                .map(|&i| {
                    (
                        self.systems[i].name.clone(),
                        row(&self.systems[i].report.per_video[video]),
                    )
                })
                .collect();
            per_video.insert(video.clone(), by_system.into());
        }
        json!({
            "aggregation": options.aggregation.key(),
            "columns": cols.iter().map(|m| json!({
                "key": m.key,
                "name": m.display,
                "better": match m.better { Better::Higher => "higher", Better::Lower => "lower" },
            })).collect::<Vec<_>>(),
            "frames": self.frames,
            "videos": self.videos,
            "systems": systems,
            "best": best,
            "per_video": per_video,
        })
    }
}
