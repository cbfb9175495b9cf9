//! How a prediction PNG becomes the 8-bit map that is scored.
//!
//! Systems write masks their own way: soft maps (×255), 0/255 masks, palette (P-mode) PNGs
//! whose indices are object ids (XMem, AOT, RMem), RGB masks coloured with the DAVIS palette
//! (XMem++), 16-bit id images. `auto` tells them apart per file; the others force a reading.

use std::fmt;

use super::decode::{Color, Decoded};

/// The reading asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum PredKind {
    /// Per file: palette images, 16-bit images with values ≤ 255 and RGB images whose colours
    /// are all DAVIS-palette colours are `index`; grey and other colour images are `soft`.
    #[default]
    Auto,
    /// A soft map, read as `cv2.IMREAD_GRAYSCALE` reads it (what PySODMetrics users do).
    Soft,
    /// A mask: grey (as `soft` reads it) ≥ 128 is foreground.
    Binary,
    /// Object ids: any non-zero index, id or colour is foreground (0/255).
    Index,
}

impl fmt::Display for PredKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PredKind::Auto => "auto",
            PredKind::Soft => "soft",
            PredKind::Binary => "binary",
            PredKind::Index => "index",
        })
    }
}

/// What a file was read as, with the reason (`auto` reports these counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reading {
    /// Grey PNG read as a soft map.
    SoftGray,
    /// Colour PNG that is grey everywhere (R = G = B), read as a soft map.
    SoftGrayRgb,
    /// Colour PNG with colours outside the DAVIS palette, read as grey as cv2 does.
    SoftColour,
    /// Palette PNG: foreground = index ≠ 0.
    IndexPalette,
    /// 16-bit grey PNG with values ≤ 255: ids, foreground = non-zero.
    IndexWide,
    /// RGB PNG in DAVIS-palette colours (XMem++): foreground = non-black.
    IndexDavisRgb,
    /// `--pred-kind soft`, `binary` or `index` as asked.
    Forced(PredKind),
}

impl Reading {
    pub fn describe(self) -> String {
        match self {
            Reading::SoftGray => "grey, read as soft maps".into(),
            Reading::SoftGrayRgb => "colour PNGs that are grey (R = G = B), read as soft maps".into(),
            Reading::SoftColour => {
                "colour PNGs with colours outside the DAVIS palette, read as grey (cv2 weights) soft maps".into()
            }
            Reading::IndexPalette => "palette (P) PNGs: foreground = index ≠ 0".into(),
            Reading::IndexWide => "16-bit PNGs with values ≤ 255 (ids): foreground = non-zero".into(),
            Reading::IndexDavisRgb => {
                "RGB masks in DAVIS-palette colours: foreground = non-black".into()
            }
            Reading::Forced(kind) => format!("--pred-kind {kind}"),
        }
    }
}

/// The `i`-th colour of the DAVIS / PASCAL VOC palette: the bits of `i` spread over the
/// channels' high bits (bit 0 → red, 1 → green, 2 → blue, then the next bit of each).
fn davis_colour(i: u8) -> [u8; 3] {
    let mut rgb = [0u8; 3];
    let mut id = i;
    let mut bit = 7;
    while id != 0 {
        for (c, channel) in rgb.iter_mut().enumerate() {
            *channel |= ((id >> c) & 1) << bit;
        }
        id >>= 3;
        bit -= 1;
    }
    rgb
}

fn is_davis_colour(rgb: [u8; 3]) -> bool {
    // Invert the bit spreading: bit k of a channel (from the top) is bit 3k + channel of i.
    let mut i: u32 = 0;
    for (c, &channel) in rgb.iter().enumerate() {
        for k in 0..8 {
            if channel & (0x80 >> k) != 0 {
                i |= 1 << (3 * k + c);
            }
        }
    }
    i < 256 && davis_colour(i as u8) == rgb
}

/// The map to score and how it was read.
pub fn prediction_map(decoded: Decoded, kind: PredKind) -> (Vec<u8>, Reading) {
    let reading = match kind {
        PredKind::Soft => return (decoded.into_gray(), Reading::Forced(kind)),
        PredKind::Index => return (decoded.nonzero_mask(), Reading::Forced(kind)),
        PredKind::Binary => {
            let mut map = decoded.into_gray();
            for v in &mut map {
                *v = if *v >= 128 { 255 } else { 0 };
            }
            return (map, Reading::Forced(kind));
        }
        PredKind::Auto => auto_reading(&decoded),
    };
    let map = match reading {
        Reading::IndexPalette | Reading::IndexWide | Reading::IndexDavisRgb => {
            decoded.nonzero_mask()
        }
        _ => decoded.into_gray(),
    };
    (map, reading)
}

fn auto_reading(decoded: &Decoded) -> Reading {
    match decoded.color {
        Color::Indexed => Reading::IndexPalette,
        Color::Gray | Color::GrayAlpha => {
            if decoded.sixteen && decoded.max_gray_sample() <= 255 {
                Reading::IndexWide
            } else {
                Reading::SoftGray
            }
        }
        Color::Rgb | Color::Rgba => {
            if decoded.all_colours(|[r, g, b]| r == g && g == b) {
                Reading::SoftGrayRgb
            } else if decoded.all_colours(is_davis_colour) {
                Reading::IndexDavisRgb
            } else {
                Reading::SoftColour
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_davis_palette_starts_as_published_and_is_recognised() {
        // DAVIS 2017's palette: black, then (128,0,0), (0,128,0), (128,128,0), (0,0,128), …
        assert_eq!(davis_colour(0), [0, 0, 0]);
        assert_eq!(davis_colour(1), [128, 0, 0]);
        assert_eq!(davis_colour(2), [0, 128, 0]);
        assert_eq!(davis_colour(3), [128, 128, 0]);
        assert_eq!(davis_colour(4), [0, 0, 128]);
        assert_eq!(davis_colour(7), [128, 128, 128]);
        assert_eq!(davis_colour(8), [64, 0, 0]);
        assert_eq!(davis_colour(255), [224, 224, 192]);
        let mut colours: Vec<[u8; 3]> = (0..=255).map(davis_colour).collect();
        assert!(colours.iter().all(|&c| is_davis_colour(c)));
        colours.sort();
        colours.dedup();
        assert_eq!(colours.len(), 256, "256 distinct colours");
        assert!(!is_davis_colour([255, 0, 0]));
        assert!(!is_davis_colour([128, 1, 0]));
    }
}
