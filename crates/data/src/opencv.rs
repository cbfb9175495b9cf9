//! OpenCV's `cv2.resize(..., interpolation=cv2.INTER_LINEAR)`, bit for bit, for the pipelines
//! that use it: ZoomNeXt's zoom scales of the **uint8** frame, its masks (float {0, 1} maps) and
//! its evaluation (float probability maps resized to the mask).
//!
//! 8-bit images: source coordinate (d + 0.5)·(src/dst) − 0.5 computed in double and rounded to
//! float, its fraction turned into two 11-bit fixed-point weights, clamped at the borders; a
//! horizontal pass keeps the products exact, the vertical pass shifts them down as OpenCV does
//! (`(b·(v >> 4)) >> 16`, then a rounding `>> 2`). Float images: the same coordinates with float
//! weights, `s0·a0 + s1·a1` per pass. An exact halving of both sides takes OpenCV's "fast area"
//! path instead (the mean of each 2×2 block: integer rounding for 8 bits; for floats its 4-lane
//! SIMD order `((a + b) + (c + d))·0.25` and a scalar tail `(a + b + c + d)·0.25`), and equal
//! sizes are a copy. Checked against cv2 4.8 and 4.14 (tests/integration/opencv_parity.rs).
//! OpenCV's x86 wheels route float resizes through Intel IPP by default, which differs from
//! OpenCV's own code by up to ~4e-6 (values in [0, 1]); these functions are OpenCV's own code
//! (`cv2.ipp.setUseIPP(False)`).

use image::RgbImage;

use crate::error::{DataError, Result};

fn ensure(ok: bool, reason: String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(DataError::Resize { reason })
    }
}

/// Fixed-point weight scale of OpenCV's 8-bit resize (`INTER_RESIZE_COEF_SCALE`, 2^11).
const COEF_SCALE: f32 = 2048.0;

/// OpenCV's float → integer rounding (`cvRound`): to nearest, ties to even.
fn cv_round(v: f32) -> i32 {
    v.round_ties_even() as i32
}

/// Per destination index along one axis: (first source index, the fraction towards the next),
/// as OpenCV computes them. Past either edge the index is clamped and the fraction is 0.
fn axis_fractions(src: usize, dst: usize) -> Vec<(usize, f32)> {
    let scale = 1.0 / (dst as f64 / src as f64);
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut i = f.floor() as i64;
            let mut frac = f - i as f32;
            if i < 0 {
                i = 0;
                frac = 0.0;
            }
            if i >= src as i64 - 1 {
                i = src as i64 - 1;
                frac = 0.0;
            }
            (i as usize, frac)
        })
        .collect()
}

/// The 8-bit weights: (first source index, its weight, the next index's weight) in 11-bit fixed
/// point; at the edges the first weight is the full 2048.
fn axis_taps(src: usize, dst: usize) -> Vec<(usize, i32, i32)> {
    axis_fractions(src, dst)
        .into_iter()
        .map(|(i, frac)| {
            (
                i,
                cv_round((1.0 - frac) * COEF_SCALE),
                cv_round(frac * COEF_SCALE),
            )
        })
        .collect()
}

/// The vertical pass's rows and weights: no clamping of the weights, only of the rows (OpenCV's
/// `clip` in `resizeGeneric_`).
fn row_fractions(src: usize, dst: usize) -> Vec<(usize, usize, f32)> {
    let scale = 1.0 / (dst as f64 / src as f64);
    let clamp = |r: i64| r.clamp(0, src as i64 - 1) as usize;
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let i = f.floor();
            (clamp(i as i64), clamp(i as i64 + 1), f - i)
        })
        .collect()
}

/// OpenCV's test for an integer factor of 2 on both axes (in double, as `1 / (dst / src)`),
/// which sends INTER_LINEAR to its fast area path.
fn halves(src: (usize, usize), dst: (usize, usize)) -> bool {
    let half = |s: usize, d: usize| (1.0 / (d as f64 / s as f64) - 2.0).abs() < f64::EPSILON;
    half(src.0, dst.0) && half(src.1, dst.1)
}

fn check_sizes(
    len: usize,
    (src_h, src_w): (usize, usize),
    channels: usize,
    (dst_h, dst_w): (usize, usize),
) -> Result<()> {
    ensure(
        src_h > 0 && src_w > 0 && dst_h > 0 && dst_w > 0 && channels > 0,
        format!(
            "resize of a {src_h}×{src_w}×{channels} image to {dst_h}×{dst_w}: every size must be \
             positive"
        ),
    )?;
    ensure(
        len == src_h * src_w * channels,
        format!("resize: {len} values do not make a {src_h}×{src_w}×{channels} image"),
    )
}

/// `cv2.resize(src, (dst_w, dst_h), interpolation=cv2.INTER_LINEAR)` for an 8-bit image of
/// `channels` interleaved channels (HWC, row-major), bit for bit.
pub fn resize_linear_u8(
    src: &[u8],
    (src_h, src_w): (usize, usize),
    channels: usize,
    (dst_h, dst_w): (usize, usize),
) -> Result<Vec<u8>> {
    check_sizes(src.len(), (src_h, src_w), channels, (dst_h, dst_w))?;
    if (src_h, src_w) == (dst_h, dst_w) {
        return Ok(src.to_vec());
    }
    let (row, cn) = (src_w * channels, channels);
    let at = |y: usize, x: usize, c: usize| src[y * row + x * cn + c] as i32;
    let mut out = Vec::with_capacity(dst_h * dst_w * cn);

    if halves((src_h, src_w), (dst_h, dst_w)) {
        for y in 0..dst_h {
            for x in 0..dst_w {
                for c in 0..cn {
                    let sum = at(2 * y, 2 * x, c)
                        + at(2 * y, 2 * x + 1, c)
                        + at(2 * y + 1, 2 * x, c)
                        + at(2 * y + 1, 2 * x + 1, c);
                    // 1, 3, 4 channels: OpenCV's integer rounding; 2 channels: float, ties to even.
                    let v = if cn == 2 {
                        cv_round(sum as f32 * 0.25)
                    } else {
                        (sum + 2) >> 2
                    };
                    out.push(v as u8);
                }
            }
        }
        return Ok(out);
    }

    let xs = axis_taps(src_w, dst_w);
    // Horizontal pass for every source row: exact 11-bit fixed-point sums.
    let horizontal: Vec<i32> = (0..src_h)
        .flat_map(|y| {
            xs.iter().flat_map(move |&(x, a0, a1)| {
                (0..cn).map(move |c| {
                    if x + 1 < src_w {
                        at(y, x, c) * a0 + at(y, x + 1, c) * a1
                    } else {
                        at(y, x, c) * COEF_SCALE as i32
                    }
                })
            })
        })
        .collect();
    let hrow = dst_w * cn;
    for (r0, r1, frac) in row_fractions(src_h, dst_h) {
        let (b0, b1) = (
            cv_round((1.0 - frac) * COEF_SCALE),
            cv_round(frac * COEF_SCALE),
        );
        let r0 = &horizontal[r0 * hrow..][..hrow];
        let r1 = &horizontal[r1 * hrow..][..hrow];
        out.extend(r0.iter().zip(r1).map(|(&v0, &v1)| {
            ((((b0 * (v0 >> 4)) >> 16) + ((b1 * (v1 >> 4)) >> 16) + 2) >> 2) as u8
        }));
    }
    Ok(out)
}

/// `cv2.resize(src, (dst_w, dst_h), interpolation=cv2.INTER_LINEAR)` for a single-channel
/// float32 image (row-major), as OpenCV's own code computes it (see the module docs for IPP).
pub fn resize_linear_f32(
    src: &[f32],
    (src_h, src_w): (usize, usize),
    (dst_h, dst_w): (usize, usize),
) -> Result<Vec<f32>> {
    check_sizes(src.len(), (src_h, src_w), 1, (dst_h, dst_w))?;
    if (src_h, src_w) == (dst_h, dst_w) {
        return Ok(src.to_vec());
    }
    let at = |y: usize, x: usize| src[y * src_w + x];
    let mut out = Vec::with_capacity(dst_h * dst_w);
    if halves((src_h, src_w), (dst_h, dst_w)) {
        // OpenCV's float SIMD takes 4 outputs at a time; the rest of a row is scalar code.
        let simd = if dst_w >= 4 { dst_w - dst_w % 4 } else { 0 };
        for y in 0..dst_h {
            for x in 0..dst_w {
                let (a, b) = (at(2 * y, 2 * x), at(2 * y, 2 * x + 1));
                let (c, d) = (at(2 * y + 1, 2 * x), at(2 * y + 1, 2 * x + 1));
                out.push(if x < simd {
                    ((a + b) + (c + d)) * 0.25
                } else {
                    (a + b + c + d) * 0.25
                });
            }
        }
        return Ok(out);
    }
    let xs = axis_fractions(src_w, dst_w);
    let horizontal: Vec<f32> = (0..src_h)
        .flat_map(|y| {
            xs.iter().map(move |&(x, frac)| {
                let first = at(y, x) * (1.0 - frac);
                if x + 1 < src_w {
                    first + at(y, x + 1) * frac
                } else {
                    first
                }
            })
        })
        .collect();
    for (r0, r1, frac) in row_fractions(src_h, dst_h) {
        let (b0, b1) = (1.0 - frac, frac);
        let r0 = &horizontal[r0 * dst_w..][..dst_w];
        let r1 = &horizontal[r1 * dst_w..][..dst_w];
        out.extend(r0.iter().zip(r1).map(|(&v0, &v1)| v0 * b0 + v1 * b1));
    }
    Ok(out)
}

/// ZoomNeXt's model inputs of one frame: `cv2.resize(frame, (w, h), INTER_LINEAR)` of the uint8
/// RGB frame to each of `sizes` (height, width), then `/ 255`, each as a `[3, h, w]` block
/// (channel-major). The model normalises them with its own mean/std.
pub fn zoom_pyramid(frame: &RgbImage, sizes: [(u32, u32); 3]) -> Result<[Vec<f32>; 3]> {
    let (w0, h0) = frame.dimensions();
    let mut out: [Vec<f32>; 3] = Default::default();
    for (scale, (h, w)) in out.iter_mut().zip(sizes) {
        let (h, w) = (h as usize, w as usize);
        let resized = resize_linear_u8(frame.as_raw(), (h0 as usize, w0 as usize), 3, (h, w))?;
        let plane = h * w;
        let mut chw = vec![0f32; 3 * plane];
        for (i, px) in resized.chunks_exact(3).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                chw[c * plane + i] = f32::from(v) / 255.0;
            }
        }
        *scale = chw;
    }
    Ok(out)
}
