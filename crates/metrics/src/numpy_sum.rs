//! Floating-point sums in the exact order numpy uses, for the few places where PySODMetrics'
//! result is discontinuous in the last bit of a mean (the adaptive threshold `pred >= 2·mean`,
//! and S-measure's SSIM branch for a constant quadrant, where `pred - mean(pred)` is either
//! exactly zero or not). Everywhere else a plain sum is within 1e-15 of numpy and that is enough.

/// numpy's pairwise summation (`pairwise_sum` in its `add` loop): blocks of at most 128 values
/// summed with 8 interleaved accumulators, larger ranges split in two at a multiple of 8.
pub(crate) fn pairwise_sum(n: usize, value: &impl Fn(usize) -> f64) -> f64 {
    pairwise_from(0, n, value)
}

fn pairwise_from(start: usize, n: usize, value: &impl Fn(usize) -> f64) -> f64 {
    const BLOCK: usize = 128;
    if n < 8 {
        let mut sum = 0.0;
        for i in start..start + n {
            sum += value(i);
        }
        sum
    } else if n <= BLOCK {
        let mut acc = [0.0f64; 8];
        for (j, a) in acc.iter_mut().enumerate() {
            *a = value(start + j);
        }
        let whole = n - n % 8;
        let mut i = 8;
        while i < whole {
            for (j, a) in acc.iter_mut().enumerate() {
                *a += value(start + i + j);
            }
            i += 8;
        }
        let mut sum =
            ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for k in whole..n {
            sum += value(start + k);
        }
        sum
    } else {
        let mut half = n / 2;
        half -= half % 8;
        pairwise_from(start, half, value) + pairwise_from(start + half, n - half, value)
    }
}

/// `np.mean(a[r0:r1, c0:c1])` of a C-contiguous `height × width` float64 array, bit for bit
/// as numpy 2.3 computes it: a view that is contiguous is summed pairwise in one go; otherwise
/// the reduction iterator copies as many whole rows as fit in its 8192-element buffer and sums
/// each buffer pairwise into a running total (checked against numpy 2.3.4 on random views).
pub(crate) fn view_mean(
    width: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    value: &impl Fn(usize) -> f64,
) -> f64 {
    const BUFFER: usize = 8192;
    let (h, w) = (rows.len(), cols.len());
    let n = h * w;
    if n == 0 {
        return f64::NAN;
    }
    let sum = if w == width || h == 1 {
        let base = rows.start * width + cols.start;
        pairwise_sum(n, &|i| value(base + i))
    } else {
        let rows_per_buffer = (BUFFER / w).max(1);
        let mut total = 0.0;
        let mut r = rows.start;
        while r < rows.end {
            let take = rows_per_buffer.min(rows.end - r);
            let (r0, c0) = (r, cols.start);
            total += pairwise_sum(take * w, &|i| value((r0 + i / w) * width + c0 + i % w));
            r += take;
        }
        total
    };
    sum / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairwise_differs_from_a_naive_sum_where_numpy_does() {
        // 0.1 summed 1000 times: numpy gives 100.00000000000001 (pairwise), a running sum
        // gives 99.9999999999986; numpy's value is what PySODMetrics sees.
        let pairwise = pairwise_sum(1000, &|_| 0.1);
        assert_eq!(pairwise, 100.00000000000001);
        let naive: f64 = (0..1000).map(|_| 0.1).sum();
        assert_ne!(naive, pairwise);
    }

    #[test]
    fn mean_of_a_constant_view_is_not_always_the_constant() {
        // np.full((48, 64), 128/255)[0:30, 0:20].mean() != 128/255 in numpy 2.3
        let c = 128.0 / 255.0;
        let m = view_mean(64, 0..30, 0..20, &|_| c);
        assert_ne!(m, c);
    }
}
