//! PNG plots of a comparison (feature `cli`), drawn with `plotters` into memory and encoded
//! with `image`; text uses an embedded DejaVu Sans subset (`assets/`), so no system font and
//! no Python are needed.
//!
//! - `pr_curves.png`: precision against recall over the 256 thresholds;
//! - `fmeasure.png`, `emeasure.png`: F-measure (beta² 0.3) and E-measure against threshold;
//! - `miou_per_video.png`: each video's mIoU per system;
//! - `grid.png`: frame | ground truth | each system's map, for chosen frames.

mod charts;
mod grid;
mod style;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::io::compare::Comparison;
use crate::io::Aggregation;

/// Writes every plot of `comparison` into `dir`; returns the files written.
pub fn write_plots(
    comparison: &Comparison,
    aggregation: Aggregation,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    style::register_font();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, draw) in [
        ("pr_curves.png", charts::precision_recall as charts::Draw),
        ("fmeasure.png", charts::f_measure),
        ("emeasure.png", charts::e_measure),
        ("miou_per_video.png", charts::miou_per_video),
    ] {
        let path = dir.join(name);
        draw(comparison, aggregation, &path)
            .with_context(|| format!("drawing {}", path.display()))?;
        written.push(path);
    }
    if !comparison.grid.is_empty() {
        let path = dir.join("grid.png");
        grid::draw(comparison, &path).with_context(|| format!("drawing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
