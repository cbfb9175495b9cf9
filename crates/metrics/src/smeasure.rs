//! S-measure (Fan et al., ICCV 2017), alpha = 0.5, as PySODMetrics' `Smeasure`.

use crate::frame::{Frame, EPS, LEFT_BOTTOM, LEFT_TOP, RIGHT_BOTTOM, RIGHT_TOP, SOD_FG};
use crate::numpy_sum::view_mean;

const ALPHA: f64 = 0.5;

pub(crate) fn s_measure(f: &Frame) -> f64 {
    if f.fg == 0 {
        return 1.0 - f.mean;
    }
    if f.fg == f.size {
        return f.mean;
    }
    let object = object_score(f) * ALPHA;
    let region = region_score(f) * (1.0 - ALPHA);
    (object + region).max(0.0)
}

fn object_score(f: &Frame) -> f64 {
    let gt_mean = f.fg as f64 / f.size as f64;
    let fg = f.sod_hist(true);
    let bg = f.sod_hist(false);
    let fg_score = s_object(&fg, |v| f.value[v]) * gt_mean;
    let bg_score = s_object(&bg, |v| 1.0 - f.value[v]) * (1.0 - gt_mean);
    fg_score + bg_score
}

/// `2·mean / (mean² + 1 + std + eps)` over the pixels counted in `hist`, with `std` the
/// sample standard deviation (ddof = 1; 0 for a single pixel).
fn s_object(hist: &[u64; 256], value: impl Fn(usize) -> f64) -> f64 {
    let n: u64 = hist.iter().sum();
    let mut sum = 0.0;
    for (v, &c) in hist.iter().enumerate() {
        if c > 0 {
            sum += c as f64 * value(v);
        }
    }
    let mean = sum / n as f64;
    let std = if n > 1 {
        let mut sq = 0.0;
        for (v, &c) in hist.iter().enumerate() {
            if c > 0 {
                let d = value(v) - mean;
                sq += c as f64 * (d * d);
            }
        }
        (sq / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    2.0 * mean / (mean * mean + 1.0 + std + EPS)
}

fn region_score(f: &Frame) -> f64 {
    let (cy, cx) = f
        .split
        .expect("region score needs a mask that is neither empty nor full");
    let (h, w) = (f.height, f.width);
    let area = (h * w) as f64;
    let w_lt = (cx * cy) as f64 / area;
    let w_rt = (cy * (w - cx)) as f64 / area;
    let w_lb = ((h - cy) * cx) as f64 / area;
    let w_rb = 1.0 - w_lt - w_rt - w_lb;
    let quadrants = [
        (LEFT_TOP, 0..cy, 0..cx, w_lt),
        (RIGHT_TOP, 0..cy, cx..w, w_rt),
        (LEFT_BOTTOM, cy..h, 0..cx, w_lb),
        (RIGHT_BOTTOM, cy..h, cx..w, w_rb),
    ];
    let mut score = 0.0;
    for (q, rows, cols, weight) in quadrants {
        // A centroid in the last row or column leaves two quadrants without pixels (and a
        // weight of 0). PySODMetrics then returns NaN (the mean of an empty slice); they
        // contribute nothing here. See README, "Differences from the reference".
        if rows.is_empty() || cols.is_empty() {
            continue;
        }
        score += ssim(f, q, rows, cols) * weight;
    }
    score
}

fn ssim(
    f: &Frame,
    quadrant: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
) -> f64 {
    let hist = &f.hist[quadrant];
    let mut count = [0u64; 256];
    let mut fg = 0u64;
    for (code, h) in hist.iter().enumerate() {
        for (c, &k) in count.iter_mut().zip(h) {
            *c += k as u64;
        }
        if code & SOD_FG != 0 {
            fg += h.iter().map(|&k| k as u64).sum::<u64>();
        }
    }
    let n: u64 = count.iter().sum();
    let nf = n as f64;

    let mut present = count.iter().enumerate().filter(|(_, &c)| c > 0);
    let first = present.next().map(|(v, _)| v);
    let constant = present.next().is_none();
    let x = match first {
        // Whether `pred - mean(pred)` is exactly zero decides between the SSIM's branches,
        // so the mean of a constant quadrant is summed the way numpy sums it.
        Some(v) if constant => {
            let c = f.value[v];
            view_mean(f.width, rows, cols, &|_| c)
        }
        _ => {
            let mut sum = 0.0;
            for (v, &c) in count.iter().enumerate() {
                if c > 0 {
                    sum += c as f64 * f.value[v];
                }
            }
            sum / nf
        }
    };
    let y = fg as f64 / nf;

    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for (code, h) in hist.iter().enumerate() {
        let dy = if code & SOD_FG != 0 { 1.0 - y } else { -y };
        for (v, &k) in h.iter().enumerate() {
            if k > 0 {
                let k = k as f64;
                let dx = f.value[v] - x;
                sxx += k * (dx * dx);
                syy += k * (dy * dy);
                sxy += k * (dx * dy);
            }
        }
    }
    let denom = (n - 1) as f64 + EPS;
    let (sigma_x, sigma_y, sigma_xy) = (sxx / denom, syy / denom, sxy / denom);

    let alpha = 4.0 * x * y * sigma_xy;
    let beta = (x * x + y * y) * (sigma_x + sigma_y);
    if alpha != 0.0 {
        alpha / (beta + EPS)
    } else if beta == 0.0 {
        1.0
    } else {
        0.0
    }
}
