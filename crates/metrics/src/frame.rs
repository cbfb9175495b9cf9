//! One prediction/mask pair, normalised as PySODMetrics does and reduced to the histograms
//! that every metric except the weighted F-measure is computed from.

use crate::numpy_sum::pairwise_sum;
use crate::{GrayView, MetricsError};

/// `np.spacing(1)`: the epsilon PySODMetrics adds to denominators.
pub(crate) const EPS: f64 = f64::EPSILON;

use crate::mask_geometry::MaskGeometry;
pub(crate) use crate::mask_geometry::{
    LEFT_BOTTOM, LEFT_TOP, PROTOCOL_FG, RIGHT_BOTTOM, RIGHT_TOP, SOD_FG,
};

pub(crate) struct Frame<'a> {
    pub pred: &'a [u8],
    pub gt: &'a [u8],
    pub width: usize,
    pub height: usize,
    /// The normalised prediction for each raw value: `mapminmax(im2double(pred))`, computed
    /// with PySODMetrics' float64 operations so every value is bit-identical.
    pub value: [f64; 256],
    /// The 256-bin histogram bin of each raw value: `uint8(value * 255)` (truncating).
    pub bin: [usize; 256],
    /// Raw-value histograms per quadrant and mask code: `hist[quadrant][code][raw]`.
    /// Without a region split (empty or full mask) everything is in `LEFT_TOP`.
    pub hist: Box<[[[u32; 256]; 4]; 4]>,
    /// Foreground pixels by PySODMetrics' rule.
    pub fg: u64,
    pub size: u64,
    /// `np.mean(pred)` of the normalised prediction, bit-identical to numpy.
    pub mean: f64,
    /// The S-measure's split point `(cy, cx)` (rows `0..cy` are the top quadrants) when the
    /// mask is neither empty nor full.
    pub split: Option<(usize, usize)>,
    /// Raw prediction extremes, for the `test.py` protocol's min-max normalisation.
    pub pred_min: u8,
    pub pred_max: u8,
}

impl<'a> Frame<'a> {
    /// `geometry` must be `MaskGeometry::new(gt)`.
    pub fn new(
        pred: GrayView<'a>,
        gt: GrayView<'a>,
        geometry: &MaskGeometry,
    ) -> Result<Self, MetricsError> {
        pred.same_size(&gt)?;
        let (width, height) = (pred.width(), pred.height());
        if (geometry.width, geometry.height) != (width, height) {
            return Err(MetricsError::SizeMismatch {
                pred: (width, height),
                gt: (geometry.width, geometry.height),
            });
        }
        let (p, g) = (pred.pixels(), gt.pixels());

        // Prediction range, then raw-value histograms per quadrant and mask code. Smooth maps
        // repeat a value from pixel to pixel, and one histogram would wait on its own last
        // increment: four copies, one per pixel position modulo 4, are summed at the end.
        let pred_min = p.iter().copied().min().unwrap_or(u8::MAX);
        let pred_max = p.iter().copied().max().unwrap_or(u8::MIN);
        const BINS: usize = 16 * 256;
        let mut copies = vec![0u32; 4 * BINS];
        let (pixels, buckets) = (p.chunks_exact(4), geometry.bucket.chunks_exact(4));
        let (pixel_tail, bucket_tail) = (pixels.remainder(), buckets.remainder());
        let slot = |b: u8, v: u8| (b as usize & 15) * 256 + v as usize;
        for (pv, b) in pixels.zip(buckets) {
            for k in 0..4 {
                copies[k * BINS + slot(b[k], pv[k])] += 1;
            }
        }
        for (&pv, &b) in pixel_tail.iter().zip(bucket_tail) {
            copies[slot(b, pv)] += 1;
        }
        let mut hist = Box::new([[[0u32; 256]; 4]; 4]);
        for (k, counts) in copies[..BINS].chunks_exact(256).enumerate() {
            let out = &mut hist[k / 4][k % 4];
            for (v, (o, &c)) in out.iter_mut().zip(counts).enumerate() {
                let i = k * 256 + v;
                *o = c + copies[BINS + i] + copies[2 * BINS + i] + copies[3 * BINS + i];
            }
        }
        let size = (width * height) as u64;

        let value = normalised_values(pred_min, pred_max);
        let mut bin = [0usize; 256];
        for (b, v) in bin.iter_mut().zip(&value) {
            *b = (v * 255.0) as u8 as usize;
        }
        let (fg, split) = (geometry.fg, geometry.split);

        let mean = pairwise_sum(p.len(), &|i| value[p[i] as usize]) / size as f64;
        Ok(Self {
            pred: p,
            gt: g,
            width,
            height,
            value,
            bin,
            hist,
            fg,
            size,
            mean,
            split,
            pred_min,
            pred_max,
        })
    }

    /// Raw-value histogram of the prediction over PySODMetrics' foreground (`fg = true`) or
    /// background, all quadrants together.
    pub fn sod_hist(&self, fg: bool) -> [u64; 256] {
        let mut out = [0u64; 256];
        for quadrant in self.hist.iter() {
            for (code, h) in quadrant.iter().enumerate() {
                if (code & SOD_FG != 0) == fg {
                    for (o, &c) in out.iter_mut().zip(h) {
                        *o += c as u64;
                    }
                }
            }
        }
        out
    }

    /// Counts per threshold `t` (0..=255) of pixels whose bin is `>= t`, over PySODMetrics'
    /// foreground or background: numpy's `cumsum(flip(histogram(...)))`, indexed by threshold.
    pub fn at_least_per_threshold(&self, fg: bool) -> [u64; 256] {
        let raw = self.sod_hist(fg);
        let mut per_bin = [0u64; 256];
        for (v, &c) in raw.iter().enumerate() {
            per_bin[self.bin[v]] += c;
        }
        let mut out = [0u64; 256];
        let mut running = 0;
        for t in (0..256).rev() {
            running += per_bin[t];
            out[t] = running;
        }
        out
    }

    /// `min(2 * mean(pred), 1)`: PySODMetrics' adaptive threshold.
    pub fn adaptive_threshold(&self) -> f64 {
        (2.0 * self.mean).min(1.0)
    }

    /// (foreground, background) pixels with `pred >= threshold`.
    pub fn counts_at_or_above(&self, threshold: f64) -> (u64, u64) {
        let (fg, bg) = (self.sod_hist(true), self.sod_hist(false));
        let mut out = (0, 0);
        for v in 0..256 {
            if self.value[v] >= threshold {
                out.0 += fg[v];
                out.1 += bg[v];
            }
        }
        out
    }
}

/// `pred / 255`, then `(pred - min) / (max - min)` unless the prediction is constant.
fn normalised_values(min: u8, max: u8) -> [f64; 256] {
    let mut value = [0.0; 256];
    let (lo, hi) = (min as f64 / 255.0, max as f64 / 255.0);
    for (v, out) in value.iter_mut().enumerate() {
        let x = v as f64 / 255.0;
        *out = if hi != lo { (x - lo) / (hi - lo) } else { x };
    }
    value
}
