//! Weighted F-measure (Margolin et al., CVPR 2014), beta = 1, as PySODMetrics'
//! `WeightedFmeasure` (a port of the authors' MATLAB code).

use crate::frame::{Frame, EPS};
use crate::mask_geometry::MaskGeometry;

const BETA: f64 = 1.0;
/// MATLAB's `fspecial('gaussian', 7, 5)`.
const KERNEL_RADIUS: usize = 3;
const KERNEL_SIGMA: f64 = 5.0;

thread_local! {
    /// The filter's two buffers (Et around the foreground's box, and its horizontal pass),
    /// kept per thread: allocating a fresh pair per frame and system costs page faults.
    static SCRATCH: std::cell::RefCell<(Vec<f64>, Vec<f64>)> = const {
        std::cell::RefCell::new((Vec::new(), Vec::new()))
    };
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
    const R: usize = KERNEL_RADIUS;
    // The box plus the kernel's margin on every side, in padded coordinates: pixel (r, c) of
    // the image is (r + R - r0, c + R - c0) here, and the margin outside the image holds
    // zeros. Et >= 0, so a zero tap adds +0.0 and the sums are those of skipping the tap.
    let (bh, bw) = (r1 + 1 - r0, c1 + 1 - c0);
    let (ph, pw) = (bh + 2 * R, bw + 2 * R);
    let span = |r: usize| geometry.row_span[r].map(|(first, last)| (first - c0, last - c0));
    let fg_sum = SCRATCH.with_borrow_mut(|(et_box, horizontal)| {
        // Every cell that is read below is written first, so stale values need no clearing.
        if et_box.len() < ph * pw {
            et_box.resize(ph * pw, 0.0);
        }
        if horizontal.len() < ph * bw {
            horizontal.resize(ph * bw, 0.0);
        }
        for pr in 0..ph {
            // Padded row pr is read by the vertical pass of the box rows pr - 2R ..= pr, at
            // their foreground columns: the horizontal pass covers the union of those spans.
            let mut needed: Option<(usize, usize)> = None;
            for br in pr.saturating_sub(2 * R)..=pr.min(bh - 1) {
                if let Some((first, last)) = span(r0 + br) {
                    needed = Some(
                        needed.map_or((first, last), |(lo, hi)| (lo.min(first), hi.max(last))),
                    );
                }
            }
            let Some((lo, hi)) = needed else { continue };
            let image_row = (r0 + pr).checked_sub(R).filter(|&r| r < h);
            let et_row = &mut et_box[pr * pw..(pr + 1) * pw];
            for (pc, v) in et_row.iter_mut().enumerate().take(hi + 2 * R + 1).skip(lo) {
                let column = (c0 + pc).checked_sub(R).filter(|&c| c < w);
                *v = match (image_row, column) {
                    (Some(r), Some(c)) => et(r * w + c),
                    _ => 0.0,
                };
            }
            let out = &mut horizontal[pr * bw..(pr + 1) * bw];
            for (c, o) in out.iter_mut().enumerate().take(hi + 1).skip(lo) {
                let mut acc = 0.0;
                for (kv, t) in kernel.iter().zip(&et_row[c..c + 2 * R + 1]) {
                    acc += kv * t;
                }
                *o = acc;
            }
        }

        // Vertical pass, on the foreground only.
        let mut fg_sum = 0.0;
        for br in 0..bh {
            let Some((first, last)) = span(r0 + br) else {
                continue;
            };
            for c in first..=last {
                let i = (r0 + br) * w + c0 + c;
                if !is_fg(i) {
                    continue;
                }
                let mut ea = 0.0;
                for (k, &kv) in kernel.iter().enumerate() {
                    ea += kv * horizontal[(br + k) * bw + c];
                }
                let e = error(i);
                fg_sum += if ea < e { ea } else { e };
            }
        }
        fg_sum
    });

    // Background errors weighted by B = 2 - exp(log(0.5) / 5 * distance to the foreground).
    // B is 0 on the foreground, so every pixel can be summed without a branch; eight
    // interleaved sums (within 1e-15 of numpy's pairwise sum, as a running sum is) let the
    // additions overlap. The order is fixed, so every run gives the same bits.
    let mut lanes = [0.0f64; 8];
    let pred_chunks = f.pred.chunks_exact(8);
    let weight_chunks = geometry.weight.chunks_exact(8);
    let (pred_tail, weight_tail) = (pred_chunks.remainder(), weight_chunks.remainder());
    for (p, b) in pred_chunks.zip(weight_chunks) {
        for k in 0..8 {
            lanes[k] += f.value[p[k] as usize] * b[k];
        }
    }
    let mut bg_sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]))
        + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for (&p, &b) in pred_tail.iter().zip(weight_tail) {
        bg_sum += f.value[p as usize] * b;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GrayView;

    /// The measure straight from its definition: Et over the whole image, the full 7×7
    /// filter at every foreground pixel (zero outside the image), background errors times B.
    fn by_definition(pred: &[u8], gt: &[u8], w: usize, h: usize) -> f64 {
        let geometry = MaskGeometry::new(GrayView::new(gt, w, h).unwrap());
        let f = Frame::new(
            GrayView::new(pred, w, h).unwrap(),
            GrayView::new(gt, w, h).unwrap(),
            &geometry,
        )
        .unwrap();
        let nearest = geometry.nearest.as_ref().unwrap();
        let error = |i: usize| {
            let v = f.value[pred[i] as usize];
            if gt[i] > 128 {
                (v - 1.0).abs()
            } else {
                v
            }
        };
        let k = gaussian_1d();
        let (mut fg_sum, mut bg_sum) = (0.0, 0.0);
        for r in 0..h {
            for c in 0..w {
                let i = r * w + c;
                if gt[i] <= 128 {
                    bg_sum += error(i) * geometry.weight[i];
                    continue;
                }
                let mut ea = 0.0;
                for (dr, kr) in k.iter().enumerate() {
                    for (dc, kc) in k.iter().enumerate() {
                        let (rr, cc) = ((r + dr) as isize - 3, (c + dc) as isize - 3);
                        if rr >= 0 && cc >= 0 && (rr as usize) < h && (cc as usize) < w {
                            ea += kr * kc * error(nearest[rr as usize * w + cc as usize] as usize);
                        }
                    }
                }
                fg_sum += ea.min(error(i));
            }
        }
        let fg = f.fg as f64;
        let (recall, tpw) = (1.0 - fg_sum / fg, fg - fg_sum);
        let precision = tpw / (tpw + bg_sum + EPS);
        2.0 * recall * precision / (recall + precision + EPS)
    }

    #[test]
    fn the_banded_filter_is_the_whole_image_filter() {
        let (w, h) = (37, 29);
        let mut seed = 12345u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        // Blobs at the corners and edges, far apart (row spans with gaps), one pixel, ...
        let blobs: [&[(usize, usize, usize)]; 5] = [
            &[(0, 0, 3)],
            &[(28, 36, 4), (2, 30, 2)],
            &[(14, 18, 0)],
            &[(3, 3, 2), (25, 5, 3), (10, 33, 1)],
            &[(0, 18, 6), (28, 18, 6)],
        ];
        for (n, blob) in blobs.iter().enumerate() {
            let mut gt = vec![0u8; w * h];
            for &(br, bc, radius) in blob.iter() {
                for r in br.saturating_sub(radius)..(br + radius + 1).min(h) {
                    for c in bc.saturating_sub(radius)..(bc + radius + 1).min(w) {
                        if r.abs_diff(br).pow(2) + c.abs_diff(bc).pow(2) <= radius * radius {
                            gt[r * w + c] = 255;
                        }
                    }
                }
            }
            let pred: Vec<u8> = (0..w * h).map(|_| (next() % 256) as u8).collect();
            let geometry = MaskGeometry::new(GrayView::new(&gt, w, h).unwrap());
            let f = Frame::new(
                GrayView::new(&pred, w, h).unwrap(),
                GrayView::new(&gt, w, h).unwrap(),
                &geometry,
            )
            .unwrap();
            let fast = weighted_f_measure(&f, &geometry);
            let slow = by_definition(&pred, &gt, w, h);
            assert!(
                fast > 0.0 && (fast - slow).abs() < 1e-12,
                "mask {n}: {fast} vs {slow}"
            );
        }
    }
}
