//! PNG decoding that keeps what the file says — grey, grey + alpha, RGB, RGBA or palette
//! indices, 8 or 16 bits — so that a prediction can be read as a soft map (as OpenCV's
//! `IMREAD_GRAYSCALE` reads it), a binary mask or an object-id image.

use std::io::Cursor;
use std::path::Path;

use anyhow::{bail, Context, Result};
use image::GrayImage;

/// How a PNG stores its pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    Gray,
    GrayAlpha,
    Rgb,
    Rgba,
    /// Palette indices (P mode), with the palette's RGB colours.
    Indexed,
}

impl Color {
    fn channels(self) -> usize {
        match self {
            Color::Gray | Color::Indexed => 1,
            Color::GrayAlpha => 2,
            Color::Rgb => 3,
            Color::Rgba => 4,
        }
    }
}

/// A decoded PNG: samples as stored, interleaved, row by row.
#[derive(Clone, Debug)]
pub struct Decoded {
    pub width: usize,
    pub height: usize,
    pub color: Color,
    /// 16-bit samples (`samples` then holds native `u16` values in `wide`).
    pub sixteen: bool,
    /// 8-bit samples (grey below 8 bits expanded to 0–255 as libpng does; palette indices as
    /// they are). Empty for 16-bit images.
    pub samples: Vec<u8>,
    /// 16-bit samples. Empty for 8-bit images.
    pub wide: Vec<u16>,
    /// The palette of an indexed image, one RGB triple per index (missing entries are black).
    pub palette: Vec<[u8; 3]>,
}

/// The most pixels a PNG may have (2^27). A header can claim 2^31 × 2^31 in a few bytes, and
/// scoring a mask takes about 18 bytes per pixel (its geometry and distance transform): a cap
/// turns such a file into an error instead of an abort or an exhausted machine.
pub const MAX_PIXELS: u64 = 1 << 27;

/// Reads a PNG file (any colour type and bit depth PNG allows, at most [`MAX_PIXELS`]).
pub fn decode_png(path: &Path) -> Result<Decoded> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    decode_png_bytes(&bytes).with_context(|| format!("decoding {}", path.display()))
}

fn decode_png_bytes(bytes: &[u8]) -> Result<Decoded> {
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::IDENTITY);
    decoder.set_ignore_text_chunk(true);
    let mut reader = decoder.read_info()?;
    let (width, height) = (reader.info().width, reader.info().height);
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        bail!(
            "{width}×{height} pixels: more than the {MAX_PIXELS} (about 11585×11585) a \
             prediction or mask may have; is this the right file?"
        );
    }
    let size = reader
        .output_buffer_size()
        .context("image too large for this machine")?;
    let mut raw = Vec::new();
    raw.try_reserve_exact(size)
        .with_context(|| format!("not enough memory for a {width}×{height} image"))?;
    raw.resize(size, 0u8);
    let frame = reader.next_frame(&mut raw)?;
    let (width, height) = (frame.width as usize, frame.height as usize);
    let color = match frame.color_type {
        png::ColorType::Grayscale => Color::Gray,
        png::ColorType::GrayscaleAlpha => Color::GrayAlpha,
        png::ColorType::Rgb => Color::Rgb,
        png::ColorType::Rgba => Color::Rgba,
        png::ColorType::Indexed => Color::Indexed,
    };
    let bits = frame.bit_depth as u8;
    let palette = match (color, reader.info().palette.as_deref()) {
        (Color::Indexed, Some(p)) => {
            let mut out: Vec<[u8; 3]> = p.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect();
            out.resize(256, [0, 0, 0]);
            out
        }
        (Color::Indexed, None) => bail!("indexed PNG without a palette"),
        _ => Vec::new(),
    };
    let line = frame.line_size;
    let channels = color.channels();
    let mut out = Decoded {
        width,
        height,
        color,
        sixteen: bits == 16,
        samples: Vec::new(),
        wide: Vec::new(),
        palette,
    };
    match bits {
        8 => {
            raw.truncate(line * height);
            if line == width * channels {
                out.samples = raw;
            } else {
                out.samples = raw
                    .chunks_exact(line)
                    .flat_map(|row| &row[..width * channels])
                    .copied()
                    .collect();
            }
        }
        16 => {
            let n = width * channels;
            out.wide = Vec::with_capacity(n * height);
            for row in raw.chunks_exact(line).take(height) {
                out.wide.extend(
                    row[..n * 2]
                        .chunks_exact(2)
                        .map(|b| u16::from_be_bytes([b[0], b[1]])),
                );
            }
        }
        1 | 2 | 4 => {
            // Only grey and indexed images have fewer than 8 bits; one sample per pixel.
            let per_byte = 8 / bits as usize;
            let mask = (1u8 << bits) - 1;
            // Grey expands to 0–255 (libpng's `expand_gray_1_2_4_to_8`); indices stay indices.
            let scale = if color == Color::Gray { 255 / mask } else { 1 };
            out.samples = Vec::with_capacity(width * height);
            for row in raw.chunks_exact(line).take(height) {
                for x in 0..width {
                    let byte = row[x / per_byte];
                    let shift = 8 - bits as usize * (x % per_byte + 1);
                    out.samples.push(((byte >> shift) & mask) * scale);
                }
            }
        }
        other => bail!("unsupported bit depth {other}"),
    }
    Ok(out)
}

/// libpng's RGB-to-grey weights (0.299, 0.587, 0.114 in 1/32768ths, truncated): what OpenCV's
/// `IMREAD_GRAYSCALE` uses for colour PNGs.
#[inline]
fn rgb_to_gray(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 9797 + g as u32 * 19234 + b as u32 * 3737) >> 15) as u8
}

impl Decoded {
    /// 8-bit grey as `cv2.imread(path, cv2.IMREAD_GRAYSCALE)` gives it: colour through
    /// libpng's integer weights, palette colours likewise, alpha dropped, 16 bits to the high
    /// byte.
    pub fn to_gray(&self) -> Vec<u8> {
        if let (Color::Gray, false) = (self.color, self.sixteen) {
            return self.samples.clone();
        }
        self.convert_to_gray()
    }

    /// [`Decoded::to_gray`], keeping the samples of an 8-bit grey image instead of copying them.
    pub fn into_gray(self) -> Vec<u8> {
        if let (Color::Gray, false) = (self.color, self.sixteen) {
            return self.samples;
        }
        self.convert_to_gray()
    }

    fn convert_to_gray(&self) -> Vec<u8> {
        let n = self.width * self.height;
        let mut out = Vec::with_capacity(n);
        let high = |v: u16| (v >> 8) as u8;
        match (self.color, self.sixteen) {
            (Color::Gray, false) => out.extend_from_slice(&self.samples),
            (Color::Gray, true) => out.extend(self.wide.iter().map(|&v| high(v))),
            (Color::GrayAlpha, false) => out.extend(self.samples.chunks_exact(2).map(|p| p[0])),
            (Color::GrayAlpha, true) => out.extend(self.wide.chunks_exact(2).map(|p| high(p[0]))),
            (Color::Rgb | Color::Rgba, false) => {
                let c = self.color.channels();
                out.extend(
                    self.samples
                        .chunks_exact(c)
                        .map(|p| rgb_to_gray(p[0], p[1], p[2])),
                )
            }
            (Color::Rgb | Color::Rgba, true) => {
                let c = self.color.channels();
                out.extend(
                    self.wide
                        .chunks_exact(c)
                        .map(|p| rgb_to_gray(high(p[0]), high(p[1]), high(p[2]))),
                )
            }
            (Color::Indexed, _) => {
                let grey: Vec<u8> = self
                    .palette
                    .iter()
                    .map(|&[r, g, b]| rgb_to_gray(r, g, b))
                    .collect();
                out.extend(self.samples.iter().map(|&i| grey[i as usize]))
            }
        }
        out
    }

    /// 255 where the stored value is not zero — palette index, grey value or id, or any colour
    /// channel (alpha ignored) — else 0: an object-id or colour-coded mask as foreground.
    pub fn nonzero_mask(&self) -> Vec<u8> {
        let on = |x: bool| if x { 255u8 } else { 0 };
        let c = self.color.channels();
        if self.sixteen {
            let colour = if c >= 3 { 3 } else { 1 };
            return self
                .wide
                .chunks_exact(c)
                .map(|p| on(p[..colour].iter().any(|&v| v != 0)))
                .collect();
        }
        // One arm per layout, so that each loop has fixed-size pixels.
        match (self.color, c) {
            (Color::Rgb | Color::Rgba, 3) => self
                .samples
                .chunks_exact(3)
                .map(|p| on(p[0] | p[1] | p[2] != 0))
                .collect(),
            (Color::Rgb | Color::Rgba, _) => self
                .samples
                .chunks_exact(4)
                .map(|p| on(p[0] | p[1] | p[2] != 0))
                .collect(),
            (_, 1) => self.samples.iter().map(|&v| on(v != 0)).collect(),
            _ => self
                .samples
                .chunks_exact(c)
                .map(|p| on(p[0] != 0))
                .collect(),
        }
    }

    /// The largest stored grey value (or palette index), for telling id images from maps.
    pub(crate) fn max_gray_sample(&self) -> u16 {
        let c = self.color.channels();
        if self.sixteen {
            self.wide.chunks_exact(c).map(|p| p[0]).max().unwrap_or(0)
        } else {
            self.samples
                .chunks_exact(c)
                .map(|p| p[0] as u16)
                .max()
                .unwrap_or(0)
        }
    }

    /// Every distinct RGB colour of a colour image (8-bit samples, or the high bytes of
    /// 16-bit ones), each checked once by `accept`; `false` as soon as one is rejected.
    pub(crate) fn all_colours(&self, mut accept: impl FnMut([u8; 3]) -> bool) -> bool {
        let c = self.color.channels();
        let mut last: Option<[u8; 3]> = None;
        let mut seen = std::collections::HashSet::new();
        let mut check = |rgb: [u8; 3]| {
            if last == Some(rgb) {
                return true;
            }
            last = Some(rgb);
            !seen.insert(rgb) || accept(rgb)
        };
        if self.sixteen {
            self.wide
                .chunks_exact(c)
                .all(|p| check([(p[0] >> 8) as u8, (p[1] >> 8) as u8, (p[2] >> 8) as u8]))
        } else {
            self.samples
                .chunks_exact(c)
                .all(|p| check([p[0], p[1], p[2]]))
        }
    }
}

/// Decodes an image to 8-bit grey as `cv2.imread(path, cv2.IMREAD_GRAYSCALE)` does for
/// PNGs (what PySODMetrics users load with): colour through libpng's integer weights
/// (0.299, 0.587, 0.114 in 1/32768ths, truncated), alpha dropped, 16 bits to the high byte.
pub fn read_gray(path: &Path) -> Result<GrayImage> {
    let decoded = decode_png(path)?;
    let (w, h) = (decoded.width as u32, decoded.height as u32);
    Ok(GrayImage::from_raw(w, h, decoded.to_gray()).expect("one grey value per pixel"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut out = (data.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
        out
    }

    /// A PNG of a few dozen bytes whose header claims `width` × `height` pixels of `bits`
    /// and PNG colour type `color`.
    fn claimed_png(width: u32, height: u32, bits: u8, color: u8) -> Vec<u8> {
        let mut ihdr = width.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[bits, color, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(b"IHDR", &ihdr));
        png.extend(chunk(
            b"IDAT",
            &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        ));
        png.extend(chunk(b"IEND", &[]));
        png
    }

    #[test]
    fn a_header_claiming_more_pixels_than_the_cap_is_an_error_not_an_allocation() {
        // 60000 × 60000 RGBA16 would be a 28.8 GB buffer (the process aborted).
        let err = decode_png_bytes(&claimed_png(60_000, 60_000, 16, 6)).unwrap_err();
        assert!(format!("{err:#}").contains("60000×60000 pixels"), "{err:#}");
        // Just over the cap, and at it (1-bit grey: a 16 MiB buffer; decoding then fails on
        // the missing data, not on the size).
        let over = decode_png_bytes(&claimed_png(1 << 14, (1 << 13) + 1, 1, 0)).unwrap_err();
        assert!(format!("{over:#}").contains("more than the"), "{over:#}");
        let under = decode_png_bytes(&claimed_png(1 << 14, 1 << 13, 1, 0)).unwrap_err();
        assert!(!format!("{under:#}").contains("more than the"), "{under:#}");
    }

    #[test]
    fn colour_pngs_turn_grey_as_cv2_imread_grayscale() {
        // (RGB, grey) as opencv-python 4.14's cv2.imread(path, cv2.IMREAD_GRAYSCALE) read them.
        let cv2: [([u8; 3], u8); 8] = [
            ([0, 0, 0], 0),
            ([255, 255, 255], 255),
            ([255, 0, 0], 76),
            ([0, 255, 0], 149),
            ([0, 0, 255], 29),
            ([77, 200, 10], 141),
            ([0, 0, 128], 14),
            ([5, 4, 3], 4),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rgb.png");
        let mut rgb = image::RgbImage::new(cv2.len() as u32, 1);
        for (x, (c, _)) in cv2.iter().enumerate() {
            rgb.put_pixel(x as u32, 0, image::Rgb(*c));
        }
        rgb.save(&path).unwrap();
        let grey = read_gray(&path).unwrap();
        let expected: Vec<u8> = cv2.iter().map(|(_, g)| *g).collect();
        assert_eq!(grey.as_raw(), &expected);
    }
}
