//! PNG decoding as OpenCV's `IMREAD_GRAYSCALE` does it.

use std::path::Path;

use anyhow::{bail, Context, Result};
use image::{DynamicImage, GrayImage};

/// Decodes an image to 8-bit grey as `cv2.imread(path, cv2.IMREAD_GRAYSCALE)` does for
/// PNGs (what PySODMetrics users load with): colour through libpng's integer weights
/// (0.299, 0.587, 0.114 in 1/32768ths, truncated), alpha dropped, 16 bits to the high byte.
pub fn read_gray(path: &Path) -> Result<GrayImage> {
    let img = image::open(path).with_context(|| format!("reading {}", path.display()))?;
    let (w, h) = (img.width(), img.height());
    let rgb_to_gray = |r: u32, g: u32, b: u32| ((r * 9797 + g * 19234 + b * 3737) >> 15) as u8;
    let pixels: Vec<u8> = match img {
        DynamicImage::ImageLuma8(g) => return Ok(g),
        DynamicImage::ImageLumaA8(g) => g.pixels().map(|p| p[0]).collect(),
        DynamicImage::ImageLuma16(g) => g.pixels().map(|p| (p[0] >> 8) as u8).collect(),
        DynamicImage::ImageLumaA16(g) => g.pixels().map(|p| (p[0] >> 8) as u8).collect(),
        DynamicImage::ImageRgb8(c) => c
            .pixels()
            .map(|p| rgb_to_gray(p[0] as u32, p[1] as u32, p[2] as u32))
            .collect(),
        DynamicImage::ImageRgba8(c) => c
            .pixels()
            .map(|p| rgb_to_gray(p[0] as u32, p[1] as u32, p[2] as u32))
            .collect(),
        DynamicImage::ImageRgb16(c) => c
            .pixels()
            .map(|p| rgb_to_gray((p[0] >> 8) as u32, (p[1] >> 8) as u32, (p[2] >> 8) as u32))
            .collect(),
        DynamicImage::ImageRgba16(c) => c
            .pixels()
            .map(|p| rgb_to_gray((p[0] >> 8) as u32, (p[1] >> 8) as u32, (p[2] >> 8) as u32))
            .collect(),
        other => bail!(
            "{}: unsupported pixel format {:?}: save masks as 8-bit grey or RGB PNGs",
            path.display(),
            other.color()
        ),
    };
    Ok(GrayImage::from_raw(w, h, pixels).expect("one grey value per pixel"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
