//! Precision, recall, F-measure (beta² = 0.3), IoU and Dice from the confusion counts of a binarised
//! prediction, as PySODMetrics' `FmeasureV2` handlers (0 wherever a denominator is 0).

use crate::frame::Frame;

const BETA2: f64 = 0.3;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Binary {
    pub precision: f64,
    pub recall: f64,
    pub fm: f64,
    pub iou: f64,
    pub dice: f64,
}

pub(crate) fn adaptive(f: &Frame) -> Binary {
    let (tp, fp) = f.counts_at_or_above(f.adaptive_threshold());
    from_counts(tp, fp, f.fg)
}

/// `curves[t]`: the three metrics with the prediction binarised at bin `>= t`.
pub(crate) fn curves(f: &Frame) -> [Binary; 256] {
    let tp = f.at_least_per_threshold(true);
    let fp = f.at_least_per_threshold(false);
    std::array::from_fn(|t| from_counts(tp[t], fp[t], f.fg))
}

fn divide(numerator: f64, denominator: f64) -> f64 {
    if denominator != 0.0 {
        numerator / denominator
    } else {
        0.0
    }
}

fn from_counts(tp: u64, fp: u64, gt_fg: u64) -> Binary {
    let fn_ = gt_fg - tp;
    let precision = divide(tp as f64, (tp + fp) as f64);
    let recall = divide(tp as f64, (tp + fn_) as f64);
    Binary {
        precision,
        recall,
        fm: divide(
            (BETA2 + 1.0) * precision * recall,
            BETA2 * precision + recall,
        ),
        iou: divide(tp as f64, (tp + fp + fn_) as f64),
        dice: divide((2 * tp) as f64, (tp + fn_ + tp + fp) as f64),
    }
}
