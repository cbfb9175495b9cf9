//! The reference's training transforms (`dataloaders/video_list.py`), in its order:
//!
//! 1. flip left–right with p = 0.5 — all three frames and the mask together;
//! 2. rotation with p = 0.2 by an integer angle in [-15, 14]° (counter-clockwise, as PIL),
//!    bicubic, about the image centre, same size, black outside — frames and mask together;
//! 3. per frame, each with its own draws: PIL `ImageEnhance` brightness (factor 0.5–1.5),
//!    contrast (0.5–1.5), colour (0.0–2.0) and sharpness (0.0–3.0), in steps of 0.1;
//! 4. salt-and-pepper on the mask: ⌊0.0015·H·W⌋ random pixels, each set to 0 or 255;
//! 5. resize frames and mask to the train size (bilinear), frames to ImageNet mean/std.
//!
//! The enhancers reproduce Pillow's arithmetic exactly (float32 blends that truncate, the
//! rounded-mean grey of `Contrast`, the integer luma of `Color`, the 3×3 SMOOTH filter of
//! `Sharpness` with its untouched border); a test compares them with Pillow's output.
//! Rotation and resizing are ports of Pillow's bicubic affine transform and bilinear resample,
//! also checked against Pillow's output.

use image::imageops;
use image::{GrayImage, ImageBuffer, Luma, Pixel, Rgb, RgbImage};
use rand::rngs::ChaCha8Rng;
use rand::{Rng, RngExt, SeedableRng};

use crate::config::ImageSize;
use crate::decode::pil_luma;

/// ImageNet statistics used by the reference's `transforms.Normalize`.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Enhancement factors of one frame (reference: `random.randint(a, b) / 10`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Enhance {
    pub brightness: f32,
    pub contrast: f32,
    pub color: f32,
    pub sharpness: f32,
}

/// Every random choice of one training sample, drawn up front so the three frames and the mask
/// can be processed independently (and in parallel) with the same flip and angle.
#[derive(Debug, Clone, PartialEq)]
pub struct AugmentDraw {
    pub flip: bool,
    /// Rotation angle in degrees, counter-clockwise; `None` when not rotated.
    pub rotation: Option<i32>,
    pub enhance: [Enhance; 3],
    /// Seed of the mask's salt-and-pepper positions; `None`: no salt-and-pepper.
    pub pepper_seed: Option<u64>,
    /// Frames inverted (255 − v) after their enhancement (`data.invert_polarity`; never in the
    /// reference).
    pub invert: bool,
}

/// `random.randint(lo, hi) / 10.0` as the float32 that Pillow's C code receives.
fn tenths(rng: &mut impl Rng, lo: u32, hi: u32) -> f32 {
    (f64::from(rng.random_range(lo..=hi)) / 10.0) as f32
}

impl AugmentDraw {
    /// Draws with the reference's probabilities and ranges.
    pub fn draw(rng: &mut impl Rng) -> Self {
        let flip = rng.random_bool(0.5);
        // `random.random() > 0.8`, then `np.random.randint(-15, 15)` (high end exclusive).
        let rotation = (rng.random::<f64>() > 0.8).then(|| rng.random_range(-15..15));
        let enhance = std::array::from_fn(|_| Enhance {
            brightness: tenths(rng, 5, 15),
            contrast: tenths(rng, 5, 15),
            color: tenths(rng, 0, 20),
            sharpness: tenths(rng, 0, 30),
        });
        AugmentDraw {
            flip,
            rotation,
            enhance,
            pepper_seed: Some(rng.random()),
            invert: false,
        }
    }

    /// The identity (no augmentation).
    pub fn none() -> Self {
        let one = Enhance {
            brightness: 1.0,
            contrast: 1.0,
            color: 1.0,
            sharpness: 1.0,
        };
        AugmentDraw {
            flip: false,
            rotation: None,
            enhance: [one; 3],
            pepper_seed: None,
            invert: false,
        }
    }

    /// Flip and rotation, shared by the frames and the mask.
    pub fn geometry_rgb(&self, img: RgbImage) -> RgbImage {
        let img = if self.flip {
            imageops::flip_horizontal(&img)
        } else {
            img
        };
        match self.rotation {
            Some(angle) if angle != 0 => rotate_like_pil(&img, angle),
            _ => img,
        }
    }

    pub fn geometry_mask(&self, mask: GrayImage) -> GrayImage {
        let mask = if self.flip {
            imageops::flip_horizontal(&mask)
        } else {
            mask
        };
        match self.rotation {
            Some(angle) if angle != 0 => rotate_like_pil(&mask, angle),
            _ => mask,
        }
    }

    /// Frame `slot` (0 = t, 1 = t+1, 2 = t+2) through flip, rotation and its enhancement.
    pub fn frame(&self, img: RgbImage, slot: usize) -> RgbImage {
        let mut img = self.geometry_rgb(img);
        let e = self.enhance[slot];
        brightness(&mut img, e.brightness);
        contrast(&mut img, e.contrast);
        color(&mut img, e.color);
        sharpness(&mut img, e.sharpness);
        if self.invert {
            imageops::invert(&mut img);
        }
        img
    }

    /// The mask through flip, rotation and salt-and-pepper.
    pub fn mask(&self, mask: GrayImage) -> GrayImage {
        let mut mask = self.geometry_mask(mask);
        if let Some(seed) = self.pepper_seed {
            salt_and_pepper(&mut mask, seed);
        }
        mask
    }
}

/// `Image.rotate(degrees, Image.BICUBIC)` as Pillow computes it: counter-clockwise about the
/// centre, same size, black where the pre-image falls outside. Pillow's transform bicubic is the
/// a = −1 cubic in float64 with clamped neighbours and a truncating store; this is a port of
/// that arithmetic (the `imageproc` rotation uses Catmull-Rom and blends black into the edges).
pub fn rotate_like_pil<P>(img: &ImageBuffer<P, Vec<u8>>, degrees: i32) -> ImageBuffer<P, Vec<u8>>
where
    P: Pixel<Subpixel = u8>,
{
    let (w, h) = img.dimensions();
    let channels = usize::from(P::CHANNEL_COUNT);
    let m = pil_rotation_matrix(degrees, w, h);
    let src = img.as_raw();
    let (wi, hi) = (w as i64, h as i64);
    let at = |x: i64, y: i64, c: usize| {
        f64::from(src[(y as usize * w as usize + x as usize) * channels + c])
    };
    let clip_x = |x: i64| x.clamp(0, wi - 1);
    let cubic = |v1: f64, v2: f64, v3: f64, v4: f64, d: f64| {
        let p1 = v2;
        let p2 = -v1 + v3;
        let p3 = 2.0 * (v1 - v2) + v3 - v4;
        let p4 = -v1 + v2 - v3 + v4;
        p1 + d * (p2 + d * (p3 + d * p4))
    };
    let mut out = ImageBuffer::<P, Vec<u8>>::new(w, h);
    let dst: &mut [u8] = &mut out;
    for y in 0..h {
        for x in 0..w {
            let (xo, yo) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
            let xin = m[0] * xo + m[1] * yo + m[2];
            let yin = m[3] * xo + m[4] * yo + m[5];
            if xin < 0.0 || xin >= f64::from(w) || yin < 0.0 || yin >= f64::from(h) {
                continue; // stays black
            }
            let (xin, yin) = (xin - 0.5, yin - 0.5);
            let (fx, fy) = (xin.floor() as i64, yin.floor() as i64);
            let (dx, dy) = (xin - fx as f64, yin - fy as f64);
            let (x0, y0) = (fx - 1, fy - 1);
            let xs = [clip_x(x0), clip_x(x0 + 1), clip_x(x0 + 2), clip_x(x0 + 3)];
            for c in 0..channels {
                let row = |yy: i64| {
                    cubic(
                        at(xs[0], yy, c),
                        at(xs[1], yy, c),
                        at(xs[2], yy, c),
                        at(xs[3], yy, c),
                        dx,
                    )
                };
                // Pillow clamps only the first row; rows past the image repeat the previous value.
                let v1 = row(y0.clamp(0, hi - 1));
                let v2 = if (0..hi).contains(&(y0 + 1)) {
                    row(y0 + 1)
                } else {
                    v1
                };
                let v3 = if (0..hi).contains(&(y0 + 2)) {
                    row(y0 + 2)
                } else {
                    v2
                };
                let v4 = if (0..hi).contains(&(y0 + 3)) {
                    row(y0 + 3)
                } else {
                    v3
                };
                let v = cubic(v1, v2, v3, v4, dy);
                dst[(y as usize * w as usize + x as usize) * channels + c] = if v <= 0.0 {
                    0
                } else if v >= 255.0 {
                    255
                } else {
                    v as u8
                };
            }
        }
    }
    out
}

/// The affine matrix (output edge coordinates → input edge coordinates) that
/// `Image.rotate` builds, including its rounding of cos/sin to 15 decimals.
fn pil_rotation_matrix(degrees: i32, w: u32, h: u32) -> [f64; 6] {
    let round15 = |v: f64| {
        format!("{v:.15}")
            .parse::<f64>()
            .expect("a formatted float parses")
    };
    let angle = -f64::from(degrees).rem_euclid(360.0).to_radians();
    let (cos, sin) = (round15(angle.cos()), round15(angle.sin()));
    let mut m = [cos, sin, 0.0, round15(-angle.sin()), cos, 0.0];
    let (cx, cy) = (f64::from(w) / 2.0, f64::from(h) / 2.0);
    m[2] = m[0] * -cx + m[1] * -cy + m[2] + cx;
    m[5] = m[3] * -cx + m[4] * -cy + m[5] + cy;
    m
}

/// `Image.blend(degenerate, image, factor)` for one 8-bit sample: Pillow computes
/// `d + α·(v − d)` in float32 and truncates, clipping only when α is outside [0, 1].
#[inline]
pub fn pil_blend(degenerate: u8, value: u8, alpha: f32) -> u8 {
    let d = f32::from(degenerate);
    let t = d + alpha * (f32::from(value) - d);
    if (0.0..=1.0).contains(&alpha) {
        t as u8
    } else if t <= 0.0 {
        0
    } else if t >= 255.0 {
        255
    } else {
        t as u8
    }
}

/// `ImageEnhance.Brightness(img).enhance(f)`: blend with black.
pub fn brightness(img: &mut RgbImage, factor: f32) {
    if factor == 1.0 {
        return;
    }
    for v in img.iter_mut() {
        *v = pil_blend(0, *v, factor);
    }
}

/// `ImageEnhance.Contrast(img).enhance(f)`: blend with a flat grey, the rounded mean of the
/// image's luminance.
pub fn contrast(img: &mut RgbImage, factor: f32) {
    if factor == 1.0 {
        return;
    }
    let sum: u64 = img
        .pixels()
        .map(|p| u64::from(pil_luma(p[0], p[1], p[2])))
        .sum();
    let n = (u64::from(img.width()) * u64::from(img.height())).max(1);
    let grey = (sum as f64 / n as f64 + 0.5) as u8;
    for v in img.iter_mut() {
        *v = pil_blend(grey, *v, factor);
    }
}

/// `ImageEnhance.Color(img).enhance(f)`: blend with the image's own luminance.
pub fn color(img: &mut RgbImage, factor: f32) {
    if factor == 1.0 {
        return;
    }
    for p in img.pixels_mut() {
        let l = pil_luma(p[0], p[1], p[2]);
        *p = Rgb(p.0.map(|v| pil_blend(l, v, factor)));
    }
}

/// `ImageEnhance.Sharpness(img).enhance(f)`: blend with PIL's SMOOTH filter
/// (kernel `[[1,1,1],[1,5,1],[1,1,1]]/13`, outermost pixels left as they are).
pub fn sharpness(img: &mut RgbImage, factor: f32) {
    if factor == 1.0 {
        return;
    }
    let smooth = pil_smooth(img);
    for (v, &d) in img.iter_mut().zip(smooth.iter()) {
        *v = pil_blend(d, *v, factor);
    }
}

/// Pillow's `ImagingFilter3x3` for 8-bit RGB with the SMOOTH kernel, float32 term by term in
/// its order (row below, row, row above), +0.5 and truncation.
pub fn pil_smooth(img: &RgbImage) -> RgbImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut out = img.clone();
    if w < 3 || h < 3 {
        return out;
    }
    let k1 = 1.0f32 / 13.0;
    let k5 = 5.0f32 / 13.0;
    let src = img.as_raw();
    let dst: &mut [u8] = &mut out;
    let row = w * 3;
    for y in 1..h - 1 {
        let (up, mid, down) = (
            &src[(y - 1) * row..y * row],
            &src[y * row..(y + 1) * row],
            &src[(y + 1) * row..(y + 2) * row],
        );
        for x in 1..w - 1 {
            for c in 0..3 {
                let i = x * 3 + c;
                let f = |r: &[u8], j: usize| f32::from(r[j]);
                let mut ss = 0.5f32;
                ss += f(down, i - 3) * k1 + f(down, i) * k1 + f(down, i + 3) * k1;
                ss += f(mid, i - 3) * k1 + f(mid, i) * k5 + f(mid, i + 3) * k1;
                ss += f(up, i - 3) * k1 + f(up, i) * k1 + f(up, i + 3) * k1;
                dst[y * row + i] = ss.clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

/// Sets ⌊0.0015·H·W⌋ random pixels (repeats allowed, as in the reference) to 0 or 255.
pub fn salt_and_pepper(mask: &mut GrayImage, seed: u64) {
    let (w, h) = mask.dimensions();
    // Python evaluates `int(0.0015 * H * W)` left to right in doubles.
    let count = (0.0015f64 * f64::from(h) * f64::from(w)) as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..count {
        let y = rng.random_range(0..h);
        let x = rng.random_range(0..w);
        let v = if rng.random_bool(0.5) { 0 } else { 255 };
        mask.put_pixel(x, y, Luma([v]));
    }
}

/// `img.resize((size, size), Image.BILINEAR)` as Pillow computes it (what torchvision's
/// `Resize` does to a PIL image): separable passes, horizontal then vertical, with the filter
/// widened when shrinking, coefficients in 22-bit fixed point and 8-bit rounding in between.
pub fn resize_rgb(img: &RgbImage, size: u32) -> RgbImage {
    pil_resize(img, size, size)
}

pub fn resize_mask(mask: &GrayImage, size: u32) -> GrayImage {
    pil_resize(mask, size, size)
}

/// As [`resize_rgb`] to `size` (height × width): torchvision's `Resize((h, w))`.
pub fn resize_rgb_to(img: &RgbImage, size: ImageSize) -> RgbImage {
    pil_resize(img, size.width, size.height)
}

/// As [`resize_mask`] to `size` (height × width).
pub fn resize_mask_to(mask: &GrayImage, size: ImageSize) -> GrayImage {
    pil_resize(mask, size.width, size.height)
}

/// Writes an RGB image as a `[3, H, W]` float block of `v / 255` (`ToTensor` alone).
pub fn unit_range_into(img: &RgbImage, out: &mut [f32]) {
    let plane = (img.width() * img.height()) as usize;
    assert_eq!(out.len(), 3 * plane, "output block must be [3, H, W]");
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = f32::from(p[c]) / 255.0;
        }
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output position: first input index and fixed-point weights (Pillow's
/// `precompute_coeffs` + `normalize_coeffs_8bpc` for the bilinear filter).
fn pil_coefficients(in_size: u32, out_size: u32) -> Vec<(usize, Vec<i32>)> {
    let scale = f64::from(in_size) / f64::from(out_size);
    let filterscale = scale.max(1.0);
    let support = filterscale; // the bilinear filter's support is 1
    let bilinear = |x: f64| {
        let x = x.abs();
        if x < 1.0 {
            1.0 - x
        } else {
            0.0
        }
    };
    (0..out_size)
        .map(|xx| {
            let center = (f64::from(xx) + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size)) - xmin;
            let weights: Vec<f64> = (0..xmax)
                .map(|x| bilinear((x as f64 + xmin as f64 - center + 0.5) / filterscale))
                .collect();
            let total: f64 = weights.iter().sum();
            let fixed = weights
                .iter()
                .map(|&w| {
                    let w = if total != 0.0 { w / total } else { w };
                    let v = w * f64::from(1u32 << PRECISION_BITS);
                    if w < 0.0 {
                        (-0.5 + v) as i32
                    } else {
                        (0.5 + v) as i32
                    }
                })
                .collect();
            (xmin as usize, fixed)
        })
        .collect()
}

#[inline]
fn clip8(ss: i32) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

fn pil_resize<P>(img: &ImageBuffer<P, Vec<u8>>, out_w: u32, out_h: u32) -> ImageBuffer<P, Vec<u8>>
where
    P: Pixel<Subpixel = u8>,
{
    let (in_w, in_h) = img.dimensions();
    let c = usize::from(P::CHANNEL_COUNT);
    let half = 1i32 << (PRECISION_BITS - 1);
    // Horizontal pass (skipped when the width does not change, as Pillow does).
    let (row_w, rows): (u32, Vec<u8>) = if out_w != in_w {
        let coeffs = pil_coefficients(in_w, out_w);
        let src = img.as_raw();
        let mut out = vec![0u8; out_w as usize * in_h as usize * c];
        for y in 0..in_h as usize {
            let line = &src[y * in_w as usize * c..(y + 1) * in_w as usize * c];
            let dst = &mut out[y * out_w as usize * c..(y + 1) * out_w as usize * c];
            for (xx, (xmin, k)) in coeffs.iter().enumerate() {
                for ch in 0..c {
                    let mut ss = half;
                    for (x, &w) in k.iter().enumerate() {
                        ss += i32::from(line[(xmin + x) * c + ch]) * w;
                    }
                    dst[xx * c + ch] = clip8(ss);
                }
            }
        }
        (out_w, out)
    } else {
        (in_w, img.as_raw().clone())
    };
    // Vertical pass.
    let data = if out_h != in_h {
        let coeffs = pil_coefficients(in_h, out_h);
        let stride = row_w as usize * c;
        let mut out = vec![0u8; out_h as usize * stride];
        for (yy, (ymin, k)) in coeffs.iter().enumerate() {
            let dst = &mut out[yy * stride..(yy + 1) * stride];
            for (i, d) in dst.iter_mut().enumerate() {
                let mut ss = half;
                for (y, &w) in k.iter().enumerate() {
                    ss += i32::from(rows[(ymin + y) * stride + i]) * w;
                }
                *d = clip8(ss);
            }
        }
        out
    } else {
        rows
    };
    ImageBuffer::from_raw(row_w, out_h, data).expect("buffer matches its size")
}

/// `ToTensor` + `Normalize(mean, std)` as torch computes it in float32, as a table per channel.
pub fn normalisation_table() -> [[f32; 256]; 3] {
    std::array::from_fn(|c| {
        std::array::from_fn(|v| (v as f32 / 255.0 - IMAGENET_MEAN[c]) / IMAGENET_STD[c])
    })
}

/// Writes an RGB image as a normalised `[3, H, W]` float block.
pub fn normalise_into(img: &RgbImage, table: &[[f32; 256]; 3], out: &mut [f32]) {
    let plane = (img.width() * img.height()) as usize;
    assert_eq!(out.len(), 3 * plane, "output block must be [3, H, W]");
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, p) in img.pixels().enumerate() {
        r[i] = table[0][usize::from(p[0])];
        g[i] = table[1][usize::from(p[1])];
        b[i] = table[2][usize::from(p[2])];
    }
}

/// Writes a mask as a `[1, H, W]` float block in [0, 1] (`ToTensor`: v / 255).
pub fn mask_into(mask: &GrayImage, out: &mut [f32]) {
    assert_eq!(
        out.len(),
        mask.as_raw().len(),
        "output block must be [1, H, W]"
    );
    for (o, &v) in out.iter_mut().zip(mask.as_raw()) {
        *o = f32::from(v) / 255.0;
    }
}
