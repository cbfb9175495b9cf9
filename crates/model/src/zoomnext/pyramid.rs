//! ZoomNeXt's input: three zoom scales of each frame (0.5×, 1× and 1.5× of the base size), made
//! the way the reference's data pipeline makes them — OpenCV's `cv2.resize(..., INTER_LINEAR)` on
//! the **uint8** RGB frame, then `/ 255` (the model's own pixel normaliser does the rest). A float
//! bilinear resize of an already-normalised frame differs by up to ~1e-2 in probability, so the
//! 8-bit resize is reproduced here bit for bit.
//!
//! OpenCV's INTER_LINEAR on 8-bit images: source coordinate (d + 0.5)·(src/dst) − 0.5 computed in
//! double and rounded to float, its fraction turned into two 11-bit fixed-point weights, clamped
//! at the borders; a horizontal pass keeps the products exact, the vertical pass shifts them down
//! as OpenCV does (`(b·(v >> 4)) >> 16`, then a rounding `>> 2`). An exact halving of both sides
//! takes OpenCV's "fast area" path instead (rounded mean of each 2×2 block), and equal sizes are
//! a copy. Checked against cv2 4.8 and 4.14 (tests/zoomnext.rs and the fixture).

use anyhow::{ensure, Result};
use tch::{Kind, Tensor};

/// The zoom factors of the three inputs, small to large (the reference's `ms_resize` scales).
pub const ZOOM_SCALES: [f64; 3] = [0.5, 1.0, 1.5];

/// Fixed-point weight scale of OpenCV's 8-bit resize (`INTER_RESIZE_COEF_SCALE`, 2^11).
const COEF_SCALE: f32 = 2048.0;

/// `int(base * s)` for each zoom scale, as (height, width): Python truncation, so a 97-pixel base
/// gives 48, 97 and 145.
pub fn zoom_sizes(base_h: usize, base_w: usize) -> [(usize, usize); 3] {
    ZOOM_SCALES.map(|s| ((base_h as f64 * s) as usize, (base_w as f64 * s) as usize))
}

/// OpenCV's float → integer rounding (`cvRound`): to nearest, ties to even.
fn cv_round(v: f32) -> i32 {
    v.round_ties_even() as i32
}

/// Per destination index along one axis: (first source index, its weight, the next index's
/// weight), as OpenCV computes them. Past either edge the index is clamped and the fraction is 0,
/// so the first weight is the full 2048.
fn axis_taps(src: usize, dst: usize) -> Vec<(usize, i32, i32)> {
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
            (
                i as usize,
                cv_round((1.0 - frac) * COEF_SCALE),
                cv_round(frac * COEF_SCALE),
            )
        })
        .collect()
}

/// `cv2.resize(src, (dst_w, dst_h), interpolation=cv2.INTER_LINEAR)` for an 8-bit image of
/// `channels` interleaved channels (HWC, row-major), bit for bit.
pub fn resize_linear_u8(
    src: &[u8],
    (src_h, src_w): (usize, usize),
    channels: usize,
    (dst_h, dst_w): (usize, usize),
) -> Result<Vec<u8>> {
    ensure!(
        src_h > 0 && src_w > 0 && dst_h > 0 && dst_w > 0 && channels > 0,
        "resize of a {src_h}×{src_w}×{channels} image to {dst_h}×{dst_w}: every size must be positive"
    );
    ensure!(
        src.len() == src_h * src_w * channels,
        "resize: {} bytes do not make a {src_h}×{src_w}×{channels} image",
        src.len()
    );
    if (src_h, src_w) == (dst_h, dst_w) {
        return Ok(src.to_vec());
    }
    let (row, cn) = (src_w * channels, channels);
    let at = |y: usize, x: usize, c: usize| src[y * row + x * cn + c] as i32;
    let mut out = Vec::with_capacity(dst_h * dst_w * cn);

    // OpenCV's test for an integer factor (in double, as `1 / (dst / src)`).
    let halves = |s: usize, d: usize| (1.0 / (d as f64 / s as f64) - 2.0).abs() < f64::EPSILON;
    if halves(src_h, dst_h) && halves(src_w, dst_w) {
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
    // Vertical: no clamping of the weights, only of the rows (OpenCV's `clip`).
    let scale_y = 1.0 / (dst_h as f64 / src_h as f64);
    for d in 0..dst_h {
        let f = ((d as f64 + 0.5) * scale_y - 0.5) as f32;
        let i = f.floor();
        let frac = f - i;
        let (b0, b1) = (
            cv_round((1.0 - frac) * COEF_SCALE),
            cv_round(frac * COEF_SCALE),
        );
        let clamp = |r: i64| r.clamp(0, src_h as i64 - 1) as usize;
        let r0 = &horizontal[clamp(i as i64) * hrow..][..hrow];
        let r1 = &horizontal[clamp(i as i64 + 1) * hrow..][..hrow];
        out.extend(r0.iter().zip(r1).map(|(&v0, &v1)| {
            ((((b0 * (v0 >> 4)) >> 16) + ((b1 * (v1 >> 4)) >> 16) + 2) >> 2) as u8
        }));
    }
    Ok(out)
}

/// The three model inputs of one uint8 RGB frame (HWC, `height`×`width`), zoom scales small to
/// large at `zoom_sizes(base_h, base_w)`: [3, h, w] float tensors with values `u8 / 255`, as the
/// reference's datasets produce them (the model normalises them with its own mean/std).
pub fn zoom_pyramid(
    frame: &[u8],
    (height, width): (usize, usize),
    (base_h, base_w): (usize, usize),
) -> Result<[Tensor; 3]> {
    let sizes = zoom_sizes(base_h, base_w);
    ensure!(
        sizes.iter().all(|&(h, w)| h > 0 && w > 0),
        "zoom pyramid of base size {base_h}×{base_w}: the 0.5× scale would be empty; use a base of at least 2×2"
    );
    let mut out = Vec::with_capacity(3);
    for (h, w) in sizes {
        let resized = resize_linear_u8(frame, (height, width), 3, (h, w))?;
        let hwc = Tensor::from_slice(&resized).view([h as i64, w as i64, 3]);
        out.push(hwc.permute([2, 0, 1]).to_kind(Kind::Float) / 255.0);
    }
    Ok(out.try_into().expect("three scales"))
}
