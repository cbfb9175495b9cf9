//! The albumentations (1.3.1) training augmentations as ZoomNeXt's `main_for_image.py` and
//! `main_for_video.py` compose them, applied to the uint8 frame and its binary mask at the
//! original size, before the zoom scales are made:
//!
//! - image model, each with p = 0.5: horizontal flip; rotation by an angle uniform in
//!   [−90°, 90°] about the centre (bilinear, border replicated; the mask nearest-neighbour);
//!   brightness/contrast ±0.1 (`α·v + β·255` through a truncating lookup table); hue/saturation/
//!   value shifts of up to 5/10/10 (on OpenCV's 8-bit HSV, hue in [0, 180));
//! - video model: per clip (replayed on every frame) the flip, brightness/contrast ±0.1 and the
//!   HSV shift; per frame the rotation (border reflected, OpenCV's `BORDER_REFLECT_101`) and
//!   brightness/contrast ±0.02.
//!
//! Same transforms and distributions as the reference; the random values come from fgstp's
//! per-sample streams, and the rotation and the HSV conversion use float arithmetic rather than
//! OpenCV's fixed-point tables (a grey level here and there).

use image::{GrayImage, Luma, Rgb, RgbImage};
use rand::{Rng, RngExt};

/// How pixels outside the rotated frame are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Border {
    /// `BORDER_REPLICATE`: the nearest edge pixel.
    Replicate,
    /// `BORDER_REFLECT_101`: mirrored without repeating the edge (…, 2, 1 | 0, 1, 2, …).
    Reflect101,
}

/// Pointwise colour transforms: brightness/contrast (α, β), then hue/saturation/value shifts.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Colour {
    pub brightness_contrast: Option<(f32, f32)>,
    pub hsv: Option<(f32, f32, f32)>,
}

impl Colour {
    fn apply(&self, img: &mut RgbImage) {
        if let Some((a, b)) = self.brightness_contrast {
            apply_lut(img, &brightness_contrast_lut(a, b));
        }
        if let Some((h, s, v)) = self.hsv {
            shift_hsv(img, h, s, v);
        }
    }
}

/// Every random choice for one frame, applied in this order: flip, `before`, rotation, `after`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameDraw {
    pub flip: bool,
    /// The video model's clip-level colour (its `ReplayCompose` runs before the per-frame part).
    pub before: Colour,
    /// Degrees, counter-clockwise (OpenCV's convention), and the border.
    pub rotation: Option<(f64, Border)>,
    /// The image model's colour transforms; the video model's per-frame brightness/contrast.
    pub after: Colour,
}

/// `random.uniform(-limit, limit)` as albumentations draws its ranges.
fn uniform(rng: &mut impl Rng, limit: f64) -> f64 {
    -limit + 2.0 * limit * rng.random::<f64>()
}

fn maybe(rng: &mut impl Rng) -> bool {
    rng.random::<f64>() < 0.5
}

fn brightness_contrast(rng: &mut impl Rng, limit: f64) -> Option<(f32, f32)> {
    maybe(rng).then(|| {
        let alpha = 1.0 + uniform(rng, limit);
        let beta = uniform(rng, limit);
        (alpha as f32, beta as f32)
    })
}

fn hsv(rng: &mut impl Rng) -> Option<(f32, f32, f32)> {
    maybe(rng).then(|| {
        (
            uniform(rng, 5.0) as f32,
            uniform(rng, 10.0) as f32,
            uniform(rng, 10.0) as f32,
        )
    })
}

impl FrameDraw {
    pub fn none() -> Self {
        Self {
            flip: false,
            before: Colour::default(),
            rotation: None,
            after: Colour::default(),
        }
    }

    /// The image model's draw (flip, rotation, brightness/contrast, HSV, in that order).
    pub fn image(rng: &mut impl Rng) -> Self {
        let flip = maybe(rng);
        let rotation = maybe(rng).then(|| (uniform(rng, 90.0), Border::Replicate));
        let brightness_contrast = brightness_contrast(rng, 0.1);
        Self {
            flip,
            before: Colour::default(),
            rotation,
            after: Colour {
                brightness_contrast,
                hsv: hsv(rng),
            },
        }
    }

    /// The video model's draws for a clip of `frames` frames: the shared part once, then each
    /// frame's own.
    pub fn clip(rng: &mut impl Rng, frames: usize) -> Vec<Self> {
        let flip = maybe(rng);
        let before = Colour {
            brightness_contrast: brightness_contrast(rng, 0.1),
            hsv: hsv(rng),
        };
        (0..frames)
            .map(|_| {
                let rotation = maybe(rng).then(|| (uniform(rng, 90.0), Border::Reflect101));
                Self {
                    flip,
                    before,
                    rotation,
                    after: Colour {
                        brightness_contrast: brightness_contrast(rng, 0.02),
                        hsv: None,
                    },
                }
            })
            .collect()
    }

    /// The frame through flip, colour, rotation, colour.
    pub fn frame(&self, img: RgbImage) -> RgbImage {
        let mut img = if self.flip {
            image::imageops::flip_horizontal(&img)
        } else {
            img
        };
        self.before.apply(&mut img);
        if let Some((angle, border)) = self.rotation {
            img = rotate_rgb(&img, angle, border);
        }
        self.after.apply(&mut img);
        img
    }

    /// The binary mask through flip and rotation (nearest neighbour).
    pub fn mask(&self, mask: GrayImage) -> GrayImage {
        let mask = if self.flip {
            image::imageops::flip_horizontal(&mask)
        } else {
            mask
        };
        match self.rotation {
            Some((angle, border)) => rotate_nearest(&mask, angle, border),
            None => mask,
        }
    }
}

/// albumentations' uint8 brightness/contrast table: `clip(v·α + β·255, 0, 255)`, truncated.
pub fn brightness_contrast_lut(alpha: f32, beta: f32) -> [u8; 256] {
    std::array::from_fn(|v| {
        let mut x = v as f32;
        if alpha != 1.0 {
            x *= alpha;
        }
        if beta != 0.0 {
            x += beta * 255.0;
        }
        x.clamp(0.0, 255.0) as u8
    })
}

fn apply_lut(img: &mut RgbImage, lut: &[u8; 256]) {
    for v in img.iter_mut() {
        *v = lut[usize::from(*v)];
    }
}

/// OpenCV's 8-bit RGB → HSV (hue in [0, 180), saturation and value in [0, 255]).
fn rgb_to_hsv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let (rf, gf, bf) = (f32::from(r), f32::from(g), f32::from(b));
    let v = rf.max(gf).max(bf);
    let min = rf.min(gf).min(bf);
    let diff = v - min;
    let s = if v > 0.0 { diff * 255.0 / v } else { 0.0 };
    let mut h = if diff == 0.0 {
        0.0
    } else if v == rf {
        60.0 * (gf - bf) / diff
    } else if v == gf {
        120.0 + 60.0 * (bf - rf) / diff
    } else {
        240.0 + 60.0 * (rf - gf) / diff
    };
    if h < 0.0 {
        h += 360.0;
    }
    let h = (h / 2.0).round() as i32 % 180;
    (h as u8, s.round() as u8, v as u8)
}

/// OpenCV's 8-bit HSV → RGB.
fn hsv_to_rgb(h: u8, s: u8, v: u8) -> [u8; 3] {
    let h = f32::from(h) * 2.0;
    let s = f32::from(s) / 255.0;
    let v = f32::from(v) / 255.0;
    let c = v * s;
    let hp = (h / 60.0) % 6.0;
    let x = c * (1.0 - ((hp % 2.0) - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [r, g, b].map(|u| ((u + m) * 255.0).round().clamp(0.0, 255.0) as u8)
}

/// albumentations' `shift_hsv` for uint8: hue shifted modulo 180, saturation and value clipped.
pub fn shift_hsv(img: &mut RgbImage, hue: f32, sat: f32, val: f32) {
    let table = |shift: f32, modulo: Option<i32>| -> [u8; 256] {
        std::array::from_fn(|v| {
            let x = v as f32 + shift;
            match modulo {
                // numpy: np.mod(int16 + float, 180).astype(uint8), truncating.
                Some(m) => x.rem_euclid(m as f32) as u8,
                None => x.clamp(0.0, 255.0) as u8,
            }
        })
    };
    let (lh, ls, lv) = (table(hue, Some(180)), table(sat, None), table(val, None));
    for p in img.pixels_mut() {
        let (h, s, v) = rgb_to_hsv(p[0], p[1], p[2]);
        let h = if hue != 0.0 { lh[usize::from(h)] } else { h };
        let s = if sat != 0.0 { ls[usize::from(s)] } else { s };
        let v = if val != 0.0 { lv[usize::from(v)] } else { v };
        *p = Rgb(hsv_to_rgb(h, s, v));
    }
}

/// Source coordinates of destination pixel (x, y) for a rotation by `degrees` about
/// (w/2 − 0.5, h/2 − 0.5), as `cv2.getRotationMatrix2D` + `cv2.warpAffine` (which inverts it).
fn inverse_rotation(w: u32, h: u32, degrees: f64) -> impl Fn(f64, f64) -> (f64, f64) {
    let (cx, cy) = (f64::from(w) / 2.0 - 0.5, f64::from(h) / 2.0 - 0.5);
    let (sin, cos) = degrees.to_radians().sin_cos();
    // Forward: x' = cos·(x−cx) + sin·(y−cy) + cx, y' = −sin·(x−cx) + cos·(y−cy) + cy.
    move |x, y| {
        let (dx, dy) = (x - cx, y - cy);
        (cos * dx - sin * dy + cx, sin * dx + cos * dy + cy)
    }
}

fn border_index(i: i64, n: i64, border: Border) -> i64 {
    if n == 1 {
        return 0;
    }
    match border {
        Border::Replicate => i.clamp(0, n - 1),
        Border::Reflect101 => {
            let period = 2 * (n - 1);
            let m = i.rem_euclid(period);
            if m < n {
                m
            } else {
                period - m
            }
        }
    }
}

/// Bilinear rotation of an RGB image (same size), rounded.
pub fn rotate_rgb(img: &RgbImage, degrees: f64, border: Border) -> RgbImage {
    let (w, h) = img.dimensions();
    let src = inverse_rotation(w, h, degrees);
    let (wi, hi) = (i64::from(w), i64::from(h));
    RgbImage::from_fn(w, h, |x, y| {
        let (sx, sy) = src(f64::from(x), f64::from(y));
        let (x0, y0) = (sx.floor(), sy.floor());
        let (fx, fy) = (sx - x0, sy - y0);
        let at = |xx: i64, yy: i64| {
            let p = img.get_pixel(
                border_index(xx, wi, border) as u32,
                border_index(yy, hi, border) as u32,
            );
            p.0.map(f64::from)
        };
        let (x0, y0) = (x0 as i64, y0 as i64);
        let (p00, p01, p10, p11) = (
            at(x0, y0),
            at(x0 + 1, y0),
            at(x0, y0 + 1),
            at(x0 + 1, y0 + 1),
        );
        Rgb(std::array::from_fn(|c| {
            let top = p00[c] * (1.0 - fx) + p01[c] * fx;
            let bottom = p10[c] * (1.0 - fx) + p11[c] * fx;
            (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8
        }))
    })
}

/// Nearest-neighbour rotation of a mask (same size).
pub fn rotate_nearest(mask: &GrayImage, degrees: f64, border: Border) -> GrayImage {
    let (w, h) = mask.dimensions();
    let src = inverse_rotation(w, h, degrees);
    let (wi, hi) = (i64::from(w), i64::from(h));
    GrayImage::from_fn(w, h, |x, y| {
        let (sx, sy) = src(f64::from(x), f64::from(y));
        let (xx, yy) = (sx.round() as i64, sy.round() as i64);
        let v = mask.get_pixel(
            border_index(xx, wi, border) as u32,
            border_index(yy, hi, border) as u32,
        );
        Luma([v[0]])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quarter_turn_moves_corners_counter_clockwise_and_keeps_the_mask_binary() {
        let mut mask = GrayImage::new(5, 5);
        mask.put_pixel(4, 0, Luma([255])); // top right
        let turned = rotate_nearest(&mask, 90.0, Border::Replicate);
        // Counter-clockwise: the top-right corner goes to the top-left.
        assert_eq!(turned.get_pixel(0, 0)[0], 255);
        assert!(turned.iter().all(|&v| v == 0 || v == 255));
        assert_eq!(turned.iter().filter(|&&v| v == 255).count(), 1);
    }

    #[test]
    fn reflect_101_mirrors_without_repeating_the_edge() {
        let got: Vec<i64> = (-3..7)
            .map(|i| border_index(i, 4, Border::Reflect101))
            .collect();
        assert_eq!(got, [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
        assert_eq!(border_index(-2, 4, Border::Replicate), 0);
    }

    #[test]
    fn brightness_contrast_table_truncates_and_clips_like_albumentations() {
        let lut = brightness_contrast_lut(1.05, -0.02);
        // 100·1.05 − 5.1 = 99.9 → 99; 255·1.05 − 5.1 > 255 → 255; 0 − 5.1 → 0.
        assert_eq!((lut[100], lut[255], lut[0]), (99, 255, 0));
        assert_eq!(
            brightness_contrast_lut(1.0, 0.0),
            std::array::from_fn(|v| v as u8)
        );
    }

    #[test]
    fn hsv_round_trip_keeps_colours_and_grey_stays_grey_without_a_saturation_shift() {
        for rgb in [
            [200u8, 30, 40],
            [10, 200, 90],
            [128, 128, 128],
            [0, 0, 0],
            [255, 255, 0],
        ] {
            let (h, s, v) = rgb_to_hsv(rgb[0], rgb[1], rgb[2]);
            let back = hsv_to_rgb(h, s, v);
            for c in 0..3 {
                assert!(
                    (i32::from(back[c]) - i32::from(rgb[c])).abs() <= 3,
                    "{rgb:?} → {back:?}"
                );
            }
        }
        let mut grey = RgbImage::from_pixel(2, 2, Rgb([90, 90, 90]));
        shift_hsv(&mut grey, 4.0, 0.0, 8.0);
        assert_eq!(grey.get_pixel(0, 0).0, [98, 98, 98]);
    }
}
