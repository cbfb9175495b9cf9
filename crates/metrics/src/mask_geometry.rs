//! What the metrics need from a mask alone, computed once per mask and shared by every
//! prediction scored against it (`fgstp compare` scores several systems per mask): the
//! foreground count and S-measure split, each pixel's histogram bucket (quadrant and mask
//! codes), and for the weighted F-measure each pixel's nearest foreground pixel, the
//! background weight `B` and the foreground's bounding box.

use crate::edt::nearest_site;
use crate::GrayView;

/// Quadrants of the S-measure's region score, split at the foreground centroid.
pub(crate) const LEFT_TOP: usize = 0;
pub(crate) const RIGHT_TOP: usize = 1;
pub(crate) const LEFT_BOTTOM: usize = 2;
pub(crate) const RIGHT_BOTTOM: usize = 3;

/// Bit 0 of a mask code: PySODMetrics' foreground (`gt > 128`).
pub(crate) const SOD_FG: usize = 1;
/// Bit 1 of a mask code: the reference `test.py`'s foreground (`gt / (gt.max() + 1e-8) > 0.5`).
pub(crate) const PROTOCOL_FG: usize = 2;

/// A mask's precomputed structure (see the module docs). Same results as computing it per
/// prediction, bit for bit.
pub struct MaskGeometry {
    pub(crate) width: usize,
    pub(crate) height: usize,
    /// Foreground pixels by PySODMetrics' rule.
    pub(crate) fg: u64,
    /// The S-measure's split point `(cy, cx)` when the mask is neither empty nor full.
    pub(crate) split: Option<(usize, usize)>,
    /// Per pixel: `quadrant * 4 + code` (the histogram a prediction value is counted in).
    pub(crate) bucket: Vec<u8>,
    /// Each pixel's nearest foreground pixel; `None` for an empty mask.
    pub(crate) nearest: Option<Vec<u32>>,
    /// `B` per background pixel (0 on the foreground).
    pub(crate) weight: Vec<f64>,
    pub(crate) bbox: (usize, usize, usize, usize),
    /// Per row: its first and last foreground column, if it has any.
    pub(crate) row_span: Vec<Option<(usize, usize)>>,
}

impl MaskGeometry {
    pub fn new(gt: GrayView<'_>) -> Self {
        let (w, h) = (gt.width(), gt.height());
        let pixels = gt.pixels();

        // Mask maximum, foreground count and centroid sums.
        let mut gt_max = 0u8;
        let (mut fg, mut row_sum, mut col_sum) = (0u64, 0u64, 0u64);
        for (r, row) in pixels.chunks_exact(w).enumerate() {
            for (c, &gv) in row.iter().enumerate() {
                gt_max = gt_max.max(gv);
                if gv > 128 {
                    fg += 1;
                    row_sum += r as u64;
                    col_sum += c as u64;
                }
            }
        }
        let size = (w * h) as u64;
        // np.argwhere(gt).mean(axis=0).round() + 1: integer sums are exact in float64, and
        // numpy rounds half to even.
        let split = (fg > 0 && fg < size).then(|| {
            let cy = (row_sum as f64 / fg as f64).round_ties_even() as usize + 1;
            let cx = (col_sum as f64 / fg as f64).round_ties_even() as usize + 1;
            (cy, cx)
        });

        let mut code = [0u8; 256];
        for (gv, c) in code.iter_mut().enumerate() {
            let sod = if gv > 128 { SOD_FG } else { 0 };
            // gt / (gt.max() + 1e-8) > 0.5  <=>  2 * gt > gt.max() for 8-bit masks
            let protocol = if 2 * gv > gt_max as usize {
                PROTOCOL_FG
            } else {
                0
            };
            *c = (sod | protocol) as u8;
        }
        // Without a region split (empty or full mask) everything is in LEFT_TOP.
        let (cy, cx) = split.unwrap_or((h, w));
        let split_at = cx.min(w);
        let mut bucket = Vec::with_capacity(w * h);
        for (r, row) in pixels.chunks_exact(w).enumerate() {
            let (left, right) = if r < cy {
                (LEFT_TOP, RIGHT_TOP)
            } else {
                (LEFT_BOTTOM, RIGHT_BOTTOM)
            };
            bucket.extend(
                row[..split_at]
                    .iter()
                    .map(|&g| (left * 4) as u8 + code[g as usize]),
            );
            bucket.extend(
                row[split_at..]
                    .iter()
                    .map(|&g| (right * 4) as u8 + code[g as usize]),
            );
        }

        let row_span: Vec<Option<(usize, usize)>> = pixels
            .chunks_exact(w)
            .map(|row| {
                let first = row.iter().position(|&g| g > 128)?;
                let last = row.iter().rposition(|&g| g > 128).unwrap_or(first);
                Some((first, last))
            })
            .collect();
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
        Self {
            width: w,
            height: h,
            fg,
            split,
            bucket,
            nearest,
            weight,
            bbox: bounding_box(&row_span),
            row_span,
        }
    }
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

/// `(first row, last row, first column, last column)` of the foreground; `(h, 0, w, 0)`-like
/// (empty ranges) when there is none.
fn bounding_box(row_span: &[Option<(usize, usize)>]) -> (usize, usize, usize, usize) {
    let (mut r0, mut r1, mut c0, mut c1) = (row_span.len(), 0, usize::MAX, 0);
    for (r, span) in row_span.iter().enumerate() {
        if let Some((first, last)) = *span {
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
