//! Weighted F-measure (Margolin et al., CVPR 2014), beta = 1, as PySODMetrics'
//! `WeightedFmeasure` (a port of the authors' MATLAB code).

use crate::frame::{Frame, EPS};
use crate::mask_geometry::MaskGeometry;

const BETA: f64 = 1.0;
/// MATLAB's `fspecial('gaussian', 7, 5)`.
const KERNEL_RADIUS: usize = 3;
const KERNEL_SIGMA: f64 = 5.0;

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
    // Et once per pixel of the box and its margin (the filter reads each seven times).
    let (cs, ce) = (
        c0.saturating_sub(KERNEL_RADIUS),
        (c1 + KERNEL_RADIUS + 1).min(w),
    );
    let ew = ce - cs;
    let mut et_box = vec![0.0; (re - rs) * ew];
    for r in rs..re {
        for c in cs..ce {
            et_box[(r - rs) * ew + (c - cs)] = et(r * w + c);
        }
    }
    let mut horizontal = vec![0.0; (re - rs) * bw];
    for r in rs..re {
        let row = &et_box[(r - rs) * ew..(r - rs + 1) * ew];
        for c in c0..=c1 {
            let mut acc = 0.0;
            for (k, &kv) in kernel.iter().enumerate() {
                let cc = c as isize + k as isize - KERNEL_RADIUS as isize;
                if cc >= 0 && (cc as usize) < w {
                    acc += kv * row[cc as usize - cs];
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
