//! Decoding frames to 8-bit RGB and masks to binary 8-bit, as the reference's loaders see them.
//!
//! - 8-bit frames become RGB like PIL's `convert("RGB")`: gray is replicated, alpha dropped.
//! - 16-bit frames (thermal cameras) are mapped to 8 bits by a min–max stretch
//!   ([`SixteenBit`]): `round((clamp(v, lo, hi) - lo) · 255 / (hi - lo))`, 0 where `hi == lo`.
//!   (The reference's `convert("RGB")` would clip them at 255, which leaves a white frame.)
//! - Masks become luminance like PIL's `convert("L")` (ITU-R 601-2 with PIL's integer
//!   weights) and are binarised as `test.py` does: a pixel is foreground when it is above half
//!   of the mask's maximum (an all-zero mask stays empty). Stored as 0/255.
//!
//! [`SixteenBit`]: crate::SixteenBit

use std::path::Path;

use image::{ColorType, DynamicImage, GrayImage, ImageReader, Luma, RgbImage};

use crate::error::{DataError, Result};

/// fgstp reads 8- and 16-bit integer pixels; float TIFFs are refused up front.
pub fn check_supported(path: &Path, color: ColorType) -> Result<()> {
    match color {
        ColorType::L8
        | ColorType::La8
        | ColorType::Rgb8
        | ColorType::Rgba8
        | ColorType::L16
        | ColorType::La16
        | ColorType::Rgb16
        | ColorType::Rgba16 => Ok(()),
        other => Err(DataError::UnsupportedPixels {
            path: path.to_path_buf(),
            pixels: describe_color(other),
        }),
    }
}

/// The most memory one image's decoding may take: 4 GiB, eight times a 20000 × 20000 16-bit
/// mosaic; a header that claims more is damaged.
const MAX_IMAGE_BYTES: u64 = 4 << 30;

/// Decodes a file completely (format from its content, not its extension).
pub fn load_raw(path: &Path) -> Result<DynamicImage> {
    let mut reader = ImageReader::open(path)
        .and_then(ImageReader::with_guessed_format)
        .map_err(|e| DataError::unreadable(path, e))?;
    // Huge thermal mosaics must not trip the default 512 MiB limit, but a header that claims
    // terabytes is an error, not an allocation that aborts the process.
    let mut limits = image::Limits::no_limits();
    limits.max_alloc = Some(MAX_IMAGE_BYTES);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| DataError::unreadable(path, e))?;
    check_supported(path, img.color())?;
    Ok(img)
}

pub fn is_sixteen_bit(img: &DynamicImage) -> bool {
    matches!(
        img,
        DynamicImage::ImageLuma16(_)
            | DynamicImage::ImageLumaA16(_)
            | DynamicImage::ImageRgb16(_)
            | DynamicImage::ImageRgba16(_)
    )
}

/// Min and max over the colour samples of a 16-bit image (alpha ignored); `None` for 8-bit.
pub fn raw_range(img: &DynamicImage) -> Option<(u16, u16)> {
    fn fold(values: impl Iterator<Item = u16>) -> (u16, u16) {
        values.fold((u16::MAX, u16::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)))
    }
    Some(match img {
        DynamicImage::ImageLuma16(im) => fold(im.as_raw().iter().copied()),
        DynamicImage::ImageLumaA16(im) => fold(im.as_raw().iter().step_by(2).copied()),
        DynamicImage::ImageRgb16(im) => fold(im.as_raw().iter().copied()),
        DynamicImage::ImageRgba16(im) => fold(
            im.as_raw()
                .chunks_exact(4)
                .flat_map(|p| p[..3].iter().copied()),
        ),
        _ => return None,
    })
}

/// The 16→8-bit stretch of `lo..=hi` (values outside are clipped).
pub fn stretch(v: u16, lo: u16, hi: u16) -> u8 {
    if hi <= lo {
        return 0;
    }
    let span = u32::from(hi - lo);
    let v = u32::from(v.clamp(lo, hi) - lo);
    ((v * 255 + span / 2) / span) as u8
}

/// 8-bit RGB as PIL's `convert("RGB")` gives it; 16-bit input is stretched over `range`
/// (its own min–max if `None`).
pub fn to_rgb8(img: &DynamicImage, range: Option<(u16, u16)>) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    if !is_sixteen_bit(img) {
        return match img {
            DynamicImage::ImageRgb8(im) => im.clone(),
            DynamicImage::ImageLuma8(im) => {
                RgbImage::from_fn(w, h, |x, y| image::Rgb([im.get_pixel(x, y)[0]; 3]))
            }
            DynamicImage::ImageLumaA8(im) => {
                RgbImage::from_fn(w, h, |x, y| image::Rgb([im.get_pixel(x, y)[0]; 3]))
            }
            // RGBA: alpha is dropped, not composited (PIL's convert does the same).
            other => other.to_rgb8(),
        };
    }
    let (lo, hi) = range.or_else(|| raw_range(img)).unwrap_or((0, u16::MAX));
    let mut lut = vec![0u8; 65536];
    for (v, out) in lut.iter_mut().enumerate() {
        *out = stretch(v as u16, lo, hi);
    }
    let map = |v: u16| lut[usize::from(v)];
    match img {
        DynamicImage::ImageLuma16(im) => {
            RgbImage::from_fn(w, h, |x, y| image::Rgb([map(im.get_pixel(x, y)[0]); 3]))
        }
        DynamicImage::ImageLumaA16(im) => {
            RgbImage::from_fn(w, h, |x, y| image::Rgb([map(im.get_pixel(x, y)[0]); 3]))
        }
        DynamicImage::ImageRgb16(im) => RgbImage::from_fn(w, h, |x, y| {
            let p = im.get_pixel(x, y).0;
            image::Rgb([map(p[0]), map(p[1]), map(p[2])])
        }),
        DynamicImage::ImageRgba16(im) => RgbImage::from_fn(w, h, |x, y| {
            let p = im.get_pixel(x, y).0;
            image::Rgb([map(p[0]), map(p[1]), map(p[2])])
        }),
        _ => unreachable!("is_sixteen_bit covers these"),
    }
}

/// PIL's RGB→L: ITU-R 601-2 luma with 16-bit fixed-point weights, rounded.
#[inline]
pub fn pil_luma(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471 + 0x8000) >> 16) as u8
}

/// A mask at its original size, binarised: 255 where the luminance is above half the mask's
/// maximum, 0 elsewhere.
pub fn load_mask(path: &Path) -> Result<GrayImage> {
    Ok(binarize(&load_raw(path)?))
}

/// A mask binarised as ZoomNeXt reads it (`read_gray_array(thr=0)`): 255 where the luminance
/// is above 0.
pub fn load_mask_nonzero(path: &Path) -> Result<GrayImage> {
    let img = load_raw(path)?;
    let gray = match &img {
        DynamicImage::ImageLuma8(im) => im.clone(),
        DynamicImage::ImageLuma16(im) => GrayImage::from_fn(im.width(), im.height(), |x, y| {
            Luma([u8::from(im.get_pixel(x, y)[0] > 0) * 255])
        }),
        _ => {
            let rgb = img.to_rgb8();
            GrayImage::from_fn(rgb.width(), rgb.height(), |x, y| {
                let p = rgb.get_pixel(x, y);
                Luma([pil_luma(p[0], p[1], p[2])])
            })
        }
    };
    Ok(GrayImage::from_fn(gray.width(), gray.height(), |x, y| {
        Luma([if gray.get_pixel(x, y)[0] > 0 { 255 } else { 0 }])
    }))
}

/// Binarises like `test.py` (`gt / (gt.max() + 1e-8) > 0.5`, which for integer pixels is
/// `2·v > max`), on PIL's luminance; 16-bit masks keep their precision.
pub fn binarize(img: &DynamicImage) -> GrayImage {
    let (w, h) = (img.width(), img.height());
    let luma: Vec<u32> = match img {
        DynamicImage::ImageLuma8(im) => im.as_raw().iter().map(|&v| u32::from(v)).collect(),
        DynamicImage::ImageLuma16(im) => im.as_raw().iter().map(|&v| u32::from(v)).collect(),
        DynamicImage::ImageLumaA8(im) => im.as_raw().iter().step_by(2).map(|&v| v.into()).collect(),
        DynamicImage::ImageLumaA16(im) => {
            im.as_raw().iter().step_by(2).map(|&v| v.into()).collect()
        }
        DynamicImage::ImageRgb16(_) | DynamicImage::ImageRgba16(_) => {
            let im = img.to_rgb16();
            im.pixels()
                .map(|p| {
                    let [r, g, b] = p.0.map(u64::from);
                    ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) as u32
                })
                .collect()
        }
        _ => {
            let im = img.to_rgb8();
            im.pixels()
                .map(|p| u32::from(pil_luma(p[0], p[1], p[2])))
                .collect()
        }
    };
    let max = luma.iter().copied().max().unwrap_or(0);
    let mut out = GrayImage::new(w, h);
    for (o, &v) in out.pixels_mut().zip(&luma) {
        *o = Luma([if max > 0 && 2 * v > max { 255 } else { 0 }]);
    }
    out
}

/// A short human description of a pixel format: `8-bit gray`, `16-bit RGB`, ….
pub fn describe_color(color: ColorType) -> String {
    let channels = match color.channel_count() {
        1 => "gray",
        2 => "gray+alpha",
        3 => "RGB",
        _ => "RGBA",
    };
    let bits = color.bits_per_pixel() / u16::from(color.channel_count());
    if matches!(color, ColorType::Rgb32F | ColorType::Rgba32F) {
        return format!("32-bit float {channels}");
    }
    format!("{bits}-bit {channels}")
}

#[cfg(test)]
mod limits_tests {
    use super::*;

    /// A little-endian grey TIFF whose header claims `side` × `side` pixels in one strip of a
    /// few bytes.
    fn tiff_claiming(side: u32) -> Vec<u8> {
        let entries: [(u16, u16, u32); 9] = [
            (256, 4, side), // width
            (257, 4, side), // height
            (258, 3, 8),    // bits per sample
            (259, 3, 1),    // no compression
            (262, 3, 1),    // black is zero
            (273, 4, 122),  // strip offset: right after this directory
            (277, 3, 1),    // samples per pixel
            (278, 4, side), // rows per strip
            (279, 4, 4),    // strip bytes
        ];
        let mut out = b"II*\0".to_vec();
        out.extend(8u32.to_le_bytes());
        out.extend((entries.len() as u16).to_le_bytes());
        for (tag, kind, value) in entries {
            out.extend(tag.to_le_bytes());
            out.extend(kind.to_le_bytes());
            out.extend(1u32.to_le_bytes());
            out.extend(value.to_le_bytes());
        }
        out.extend(0u32.to_le_bytes());
        assert_eq!(out.len(), 122);
        out.extend([1, 2, 3, 4]);
        out
    }

    #[test]
    fn an_image_whose_header_claims_a_terabyte_is_an_error_not_an_abort() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claims.tif");
        std::fs::write(&path, tiff_claiming(1_000_000)).unwrap();
        let err = load_raw(&path).unwrap_err().to_string();
        assert!(err.contains("claims.tif"), "{err}");
        // Within the limit the same header is decoded as far as its data goes.
        std::fs::write(&path, tiff_claiming(2)).unwrap();
        let small = load_raw(&path).unwrap();
        assert_eq!((small.width(), small.height()), (2, 2));
    }
}
