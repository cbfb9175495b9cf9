//! What every plot shares: the embedded font, the colours, PNG output.

use std::path::Path;
use std::sync::Once;

use anyhow::{Context, Result};
use plotters::style::{FontStyle, RGBColor};

use crate::io::write_atomically;

/// The font every plot's text is set in, registered once as "sans-serif".
pub(crate) const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans-subset.ttf");
pub(crate) const FAMILY: &str = "sans-serif";

pub(crate) fn register_font() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_font_parses() {
        assert!(plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    }
}
