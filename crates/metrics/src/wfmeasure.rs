//! Weighted F-measure (Margolin et al., CVPR 2014), beta = 1, as PySODMetrics'
//! `WeightedFmeasure` (a port of the authors' MATLAB code).

use crate::edt::nearest_site;
use crate::frame::{Frame, EPS};
use crate::GrayView;

const BETA: f64 = 1.0;
/// MATLAB's `fspecial('gaussian', 7, 5)`.
const KERNEL_RADIUS: usize = 3;
const KERNEL_SIGMA: f64 = 5.0;

/// What the weighted F-measure needs from a mask alone — each pixel's nearest foreground
/// pixel, the background weight `B` of each pixel, the foreground's bounding box — computed
/// once per mask and shared by every prediction scored against it (`fgstp compare`).
pub struct MaskGeometry {
    width: usize,
    height: usize,
    /// `None` for an empty mask.
    nearest: Option<Vec<u32>>,
    /// `B` per background pixel (0 on the foreground).
    weight: Vec<f64>,
    bbox: (usize, usize, usize, usize),
}

impl MaskGeometry {
    pub fn new(gt: GrayView<'_>) -> Self {
        let (w, h) = (gt.width(), gt.height());
        let pixels = gt.pixels();
        let nearest = nearest_site(pixels, |g| g > 128, w, h);
        let mut weight = vec![0.0; w * h];
        if let Some(nearest) = &nearest {
            let table = background_weights();
            for r in 0..h {
                for c in 0..w {
                    let i = r * w + c;
                    if pixels[i] > 128 {
                        continue;
                    }
                    let j = nearest[i] as usize;
                    // j / w and j % w with one division.
                    let (jr, jc) = (j / w, j - (j / w) * w);
                    let (dr, dc) = (r.abs_diff(jr), c.abs_diff(jc));
                    weight[i] = if dr < table.side && dc < table.side {
                        table.table[dr * table.side + dc]
                    } else {
                        2.0
                    };
                }
            }
        }
        let bbox = bounding_box(pixels, w, h);
        Self {
            width: w,
            height: h,
            nearest,
            weight,
            bbox,
        }
    }

    pub(crate) fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }
}

pub(crate) fn weighted_f_measure(f: &Frame, geometry: &MaskGeometry) -> f64 {
    if f.fg == 0 {
        return 0.0;
    }
    let (w, h) = (f.width, f.height);
    let is_fg = |i: usize| f.gt[i] > 128;
    let nearest = geometry
        .nearest
        .as_ref()
        .expect("a non-empty mask has a nearest foreground pixel");

    // E = |pred - gt|; Et copies E of the nearest foreground pixel onto the background.
    let error = |i: usize| {
        let v = f.value[f.pred[i] as usize];
        if is_fg(i) {
            (v - 1.0).abs()
        } else {
            v
        }
    };
    let et = |i: usize| error(nearest[i] as usize);

    // EA = Et convolved with the Gaussian (zero outside the image); only needed on the
    // foreground, so it is computed on the foreground's bounding box, separably.
    let kernel = gaussian_1d();
    let (r0, r1, c0, c1) = geometry.bbox;
    let (rs, re) = (
        r0.saturating_sub(KERNEL_RADIUS),
        (r1 + KERNEL_RADIUS + 1).min(h),
    );
    let bw = c1 + 1 - c0;
    let mut horizontal = vec![0.0; (re - rs) * bw];
    for r in rs..re {
        for c in c0..=c1 {
            let mut acc = 0.0;
            for (k, &kv) in kernel.iter().enumerate() {
                let cc = c as isize + k as isize - KERNEL_RADIUS as isize;
                if cc >= 0 && (cc as usize) < w {
                    acc += kv * et(r * w + cc as usize);
                }
            }
            horizontal[(r - rs) * bw + (c - c0)] = acc;
        }
    }

    let mut fg_sum = 0.0;
    for r in r0..=r1 {
        for c in c0..=c1 {
            let i = r * w + c;
            if !is_fg(i) {
                continue;
            }
            let mut ea = 0.0;
            for (k, &kv) in kernel.iter().enumerate() {
                let rr = r as isize + k as isize - KERNEL_RADIUS as isize;
                if rr >= 0 && (rr as usize) < h {
                    ea += kv * horizontal[(rr as usize - rs) * bw + (c - c0)];
                }
            }
            let e = error(i);
            fg_sum += if ea < e { ea } else { e };
        }
    }

    // Background errors weighted by B = 2 - exp(log(0.5) / 5 * distance to the foreground),
    // summed in raster order.
    let mut bg_sum = 0.0;
    for ((&p, &g), &b) in f.pred.iter().zip(f.gt).zip(&geometry.weight) {
        if g > 128 {
            continue;
        }
        let e = f.value[p as usize];
        if e == 0.0 {
            continue;
        }
        bg_sum += e * b;
    }

    let tpw = f.fg as f64 - fg_sum;
    let fpw = bg_sum;
    let recall = 1.0 - fg_sum / f.fg as f64;
    let precision = tpw / (tpw + fpw + EPS);
    (1.0 + BETA) * recall * precision / (recall + BETA * precision + EPS)
}

/// The 1-D factor of the normalised 7×7 Gaussian: its outer product is the 2-D kernel up to
/// rounding in the last bit.
fn gaussian_1d() -> [f64; 2 * KERNEL_RADIUS + 1] {
    let mut k = [0.0; 2 * KERNEL_RADIUS + 1];
    for (i, v) in k.iter_mut().enumerate() {
        let x = i as f64 - KERNEL_RADIUS as f64;
        *v = (-(x * x) / (2.0 * KERNEL_SIGMA * KERNEL_SIGMA)).exp();
    }
    let sum: f64 = k.iter().sum();
    k.map(|v| v / sum)
}

/// The background weight `B` for a squared distance, as PySODMetrics computes it per pixel.
fn background_weight(squared_distance: usize) -> f64 {
    let distance = (squared_distance as f64).sqrt();
    2.0 - (0.5f64.ln() / 5.0 * distance).exp()
}

/// `B` by (row, column) offset to the nearest foreground pixel, for offsets below `side`:
/// from the first squared distance where `B` is exactly 2.0 in float64 (a distance of about
/// 260 px) on, `exp` only falls, so every larger distance gives exactly 2.0 too. Computed once
/// per process with the same float64 operations as per pixel; indexed by (dr, dc), neighbouring
/// pixels read neighbouring entries, so the table stays in cache.
struct BackgroundWeights {
    side: usize,
    table: Vec<f64>,
}

/// The first squared distance whose weight is exactly 2.0.
fn first_squared_distance_of_weight_two() -> usize {
    (0..)
        .find(|&s| background_weight(s) == 2.0)
        .expect("exp underflows")
}

fn background_weights() -> &'static BackgroundWeights {
    static TABLE: std::sync::OnceLock<BackgroundWeights> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let limit = first_squared_distance_of_weight_two();
        let side = (limit as f64).sqrt().ceil() as usize + 1;
        let mut table = vec![2.0; side * side];
        for dr in 0..side {
            for dc in 0..side {
                let squared = dr * dr + dc * dc;
                if squared < limit {
                    table[dr * side + dc] = background_weight(squared);
                }
            }
        }
        BackgroundWeights { side, table }
    })
}

fn bounding_box(gt: &[u8], w: usize, h: usize) -> (usize, usize, usize, usize) {
    let (mut r0, mut r1, mut c0, mut c1) = (h, 0, w, 0);
    for r in 0..h {
        let row = &gt[r * w..(r + 1) * w];
        if let Some(first) = row.iter().position(|&g| g > 128) {
            let last = row.iter().rposition(|&g| g > 128).unwrap_or(first);
            r0 = r0.min(r);
            r1 = r;
            c0 = c0.min(first);
            c1 = c1.max(last);
        }
    }
    (r0, r1, c0, c1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weight_table_is_the_per_pixel_formula_and_two_beyond_it() {
        let w = background_weights();
        let limit = first_squared_distance_of_weight_two();
        assert!(limit > 60_000 && limit < 80_000, "{limit}");
        for dr in 0..w.side + 3 {
            for dc in (0..w.side + 3).step_by(7) {
                let from_table = if dr < w.side && dc < w.side {
                    w.table[dr * w.side + dc]
                } else {
                    2.0
                };
                let formula = background_weight(dr * dr + dc * dc);
                assert_eq!(from_table.to_bits(), formula.to_bits(), "({dr}, {dc})");
            }
        }
        for s in [limit, limit + 1, 2 * limit, 640 * 640 + 480 * 480] {
            assert_eq!(background_weight(s), 2.0, "squared distance {s}");
        }
    }
}
