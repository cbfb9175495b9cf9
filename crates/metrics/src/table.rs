//! The human-readable report.

use std::fmt::Write;

use crate::{Report, Scores};

/// A per-video table column: its title and how to read it.
type Column = (&'static str, fn(&Scores) -> Option<f64>);

fn cell(x: Option<f64>) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{x:.4}"),
        Some(_) => "nan".into(),
        None => "-".into(),
    }
}

impl Report {
    /// Every metric for `overall` and `video_mean`, then one line per video with the
    /// metrics the FGSTP paper reports.
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
        let columns: [Column; 9] = [
            ("sm", |s| Some(s.sm)),
            ("wfm", |s| Some(s.wfm)),
            ("mae", |s| Some(s.mae)),
            ("em_mean", |s| Some(s.em_mean)),
            ("iou_mean", |s| Some(s.iou_mean)),
            ("dice_mean", |s| Some(s.dice_mean)),
            ("jaccard", |s| s.jaccard),
            ("f1", |s| s.f1),
            ("jf", |s| s.jf),
        ];
        let name_width = self
            .per_video
            .keys()
            .map(|k| k.chars().count())
            .max()
            .unwrap_or(5)
            .max(5);
        let _ = write!(out, "\n{:<name_width$}", "video");
        for (name, _) in &columns {
            let _ = write!(out, " {name:>9}");
        }
        out.push('\n');
        for (video, scores) in &self.per_video {
            let _ = write!(out, "{video:<name_width$}");
            for (_, get) in &columns {
                let _ = write!(out, " {:>9}", cell(get(scores)));
            }
            out.push('\n');
        }
        out
    }
}
