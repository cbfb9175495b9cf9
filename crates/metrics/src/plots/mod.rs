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

use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{Context, Result};
use plotters::style::{FontStyle, RGBColor};

use crate::io::compare::Comparison;
use crate::io::{write_atomically, Aggregation};

/// The font every plot's text is set in, registered once as "sans-serif".
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-subset.ttf");
pub(crate) const FAMILY: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font parses (checked by the plots test); if it ever did not, text would
        // be missing from the plots, not the plots themselves.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// Distinct line and bar colours (Tableau 10), one per system, repeating after ten.
pub(crate) const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Encodes an RGB buffer as PNG and writes it atomically.
pub(crate) fn save_rgb(path: &Path, width: u32, height: u32, rgb: Vec<u8>) -> Result<()> {
    let img = image::RgbImage::from_raw(width, height, rgb).context("plot buffer size")?;
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .context("encoding a plot as PNG")?;
    write_atomically(path, &bytes)
}

/// Writes every plot of `comparison` into `dir`; returns the files written.
pub fn write_plots(
    comparison: &Comparison,
    aggregation: Aggregation,
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    register_font();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_font_parses() {
        assert!(plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    }
}
