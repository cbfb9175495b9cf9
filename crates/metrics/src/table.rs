//! The human-readable report.

use std::fmt::Write;

use crate::registry::{Aggregate, Metric, METRICS};
use crate::{Report, Scores};

fn cell(x: Option<f64>) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{x:.4}"),
        Some(_) => "nan".into(),
        None => "-".into(),
    }
}

impl Report {
    /// Every metric for `overall` and `video_mean`, then one line per video with the
    /// headline metrics (the paper's and `test.py`'s; see [`Metric::headline`]).
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} frames in {} video{}",
            self.frames,
            self.videos,
            if self.videos == 1 { "" } else { "s" }
        );
        let _ = writeln!(
            out,
            "{:<10} {:>9} {:>11}",
            "metric", "overall", "video_mean"
        );
        for ((key, overall), (_, video_mean)) in self
            .overall
            .entries()
            .into_iter()
            .zip(self.video_mean.entries())
        {
            let _ = writeln!(
                out,
                "{key:<10} {:>9} {:>11}",
                cell(overall),
                cell(video_mean)
            );
        }
        let columns: Vec<&Metric> = METRICS.iter().filter(|m| m.headline).collect();
        let name_width = self
            .per_video
            .keys()
            .map(|k| k.chars().count())
            .max()
            .unwrap_or(5)
            .max(5);
        let _ = write!(out, "\n{:<name_width$}", "video");
        for metric in &columns {
            let _ = write!(out, " {:>9}", metric.key);
        }
        out.push('\n');
        for (video, scores) in &self.per_video {
            let _ = write!(out, "{video:<name_width$}");
            for metric in &columns {
                let _ = write!(out, " {:>9}", cell(scores.get(metric.key)));
            }
            out.push('\n');
        }
        out
    }
}

impl Scores {
    /// The headline metrics on one line, `test.py`'s first, frame-level detection last:
    /// `jaccard 0.3373 f1 0.4700 J&F 0.4036 | S 0.6470 wF … MAE … E … mIoU … mDice … |
    /// leakR 1.0000 leakFPR 0.2500`.
    pub fn summary(&self) -> String {
        let part = |group: Group| {
            self.iter()
                .filter(|(m, _)| m.headline && Group::of(m) == group)
                .map(|(m, v)| match v {
                    Some(v) => format!("{} {v:.4}", m.short),
                    None => format!("{} n/a", m.short),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        format!(
            "{} | {} | {}",
            part(Group::Protocol),
            part(Group::Sod),
            part(Group::Detection)
        )
    }
}

#[derive(PartialEq, Eq)]
enum Group {
    /// `test.py`'s metrics (only frames with a non-empty mask count).
    Protocol,
    /// PySODMetrics'.
    Sod,
    /// Frame-level detection rates.
    Detection,
}

impl Group {
    fn of(metric: &Metric) -> Group {
        match metric.aggregate {
            Aggregate::AnnotatedMean(_) | Aggregate::MeanOf(..) => Group::Protocol,
            Aggregate::PooledShare(_) => Group::Detection,
            _ => Group::Sod,
        }
    }
}
