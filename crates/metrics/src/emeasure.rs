//! E-measure (Fan et al., IJCAI 2018) as PySODMetrics' `Emeasure`: the enhanced-alignment
//! sum over the four (prediction, mask) parts, from pixel counts alone.

use crate::frame::{Frame, EPS};

/// E-measure of the prediction binarised at the adaptive threshold.
pub(crate) fn adaptive(f: &Frame) -> f64 {
    let (fg_fg, fg_bg) = f.counts_at_or_above(f.adaptive_threshold());
    from_counts(fg_fg, fg_bg, f.fg, f.size)
}

/// E-measure at each of the 256 thresholds (`curve[t]`: prediction bin `>= t`).
pub(crate) fn curve(f: &Frame) -> [f64; 256] {
    let fg_fg = f.at_least_per_threshold(true);
    let fg_bg = f.at_least_per_threshold(false);
    std::array::from_fn(|t| from_counts(fg_fg[t], fg_bg[t], f.fg, f.size))
}

/// `fg_fg`, `fg_bg`: predicted-foreground pixels on the mask's foreground / background.
fn from_counts(fg_fg: u64, fg_bg: u64, gt_fg: u64, size: u64) -> f64 {
    let pred_fg = fg_fg + fg_bg;
    let pred_bg = size - pred_fg;
    let enhanced_sum = if gt_fg == 0 {
        pred_bg as f64
    } else if gt_fg == size {
        pred_fg as f64
    } else {
        let bg_fg = gt_fg - fg_fg;
        let bg_bg = pred_bg - bg_fg;
        let mean_pred = pred_fg as f64 / size as f64;
        let mean_gt = gt_fg as f64 / size as f64;
        let (pred_on, pred_off) = (1.0 - mean_pred, 0.0 - mean_pred);
        let (gt_on, gt_off) = (1.0 - mean_gt, 0.0 - mean_gt);
        let parts = [
            (fg_fg, pred_on, gt_on),
            (fg_bg, pred_on, gt_off),
            (bg_fg, pred_off, gt_on),
            (bg_bg, pred_off, gt_off),
        ];
        let mut sum = 0.0;
        for (numel, a, b) in parts {
            let align = 2.0 * (a * b) / (a * a + b * b + EPS);
            let enhanced = (align + 1.0) * (align + 1.0) / 4.0;
            sum += enhanced * numel as f64;
        }
        sum
    };
    enhanced_sum / ((size - 1) as f64 + EPS)
}
