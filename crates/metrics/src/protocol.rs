//! The reference `test.py`'s per-frame Jaccard and F1: prediction min-max normalised and
//! thresholded at 0.5, mask `gt / (gt.max() + 1e-8) > 0.5`; frames whose mask is empty are
//! not scored.

use crate::frame::{Frame, PROTOCOL_FG};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JaccardF1 {
    pub jaccard: f64,
    pub f1: f64,
}

/// From the counts of a binary prediction: `None` when the mask is empty.
pub(crate) fn from_counts(intersection: u64, predicted: u64, mask: u64) -> Option<JaccardF1> {
    if mask == 0 {
        return None;
    }
    let union = predicted + mask - intersection;
    let recall = intersection as f64 / (mask as f64 + 1e-8);
    let precision = intersection as f64 / (predicted as f64 + 1e-8);
    Some(JaccardF1 {
        jaccard: intersection as f64 / union as f64,
        f1: 2.0 * recall * precision / (recall + precision + 1e-8),
    })
}

/// With the 8-bit prediction itself: `(p/255 - min) / (max - min + 1e-8) > 0.5`, which for
/// 8-bit values is `2·(p - min) > max - min` (nothing when the prediction is constant).
pub(crate) fn from_frame(f: &Frame) -> Option<JaccardF1> {
    let (lo, hi) = (f.pred_min as usize, f.pred_max as usize);
    let positive = |v: usize| hi > lo && 2 * (v - lo.min(v)) > hi - lo;
    let (mut intersection, mut predicted, mut mask) = (0, 0, 0);
    for quadrant in f.hist.iter() {
        for (code, h) in quadrant.iter().enumerate() {
            let on_mask = code & PROTOCOL_FG != 0;
            for (v, &c) in h.iter().enumerate() {
                let c = c as u64;
                if on_mask {
                    mask += c;
                }
                if positive(v) {
                    predicted += c;
                    if on_mask {
                        intersection += c;
                    }
                }
            }
        }
    }
    from_counts(intersection, predicted, mask)
}

/// The probability min-max normalised over the frame exactly as `test.py` does it in float32:
/// `(p - min) / (max - min + 1e-8)`.
pub fn min_max_normalised(probability: &[f32]) -> impl Iterator<Item = f32> + '_ {
    let (lo, hi) = probability
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &p| {
            (lo.min(p), hi.max(p))
        });
    let range = hi - lo + 1e-8f32;
    probability.iter().map(move |&p| (p - lo) / range)
}

/// The 8-bit map the SOD metrics score and `fgstp eval` saves in `maps/`: the normalised
/// probability × 255, rounded.
pub fn to_gray_map(probability: &[f32]) -> Vec<u8> {
    min_max_normalised(probability)
        .map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect()
}

/// The binary mask `test.py` scores and saves: normalised probability > 0.5, as 0/255.
pub fn to_binary_mask(probability: &[f32]) -> Vec<u8> {
    min_max_normalised(probability)
        .map(|v| if v > 0.5 { 255 } else { 0 })
        .collect()
}

/// With a float probability map (e.g. the sigmoid of a network's logits), in float32 as
/// `test.py` does: `(res - res.min()) / (res.max() - res.min() + 1e-8) > 0.5`.
pub(crate) fn from_probability(probability: &[f32], f: &Frame) -> Option<JaccardF1> {
    let mask_max = f.gt.iter().copied().max().unwrap_or(0) as u32;
    let (mut intersection, mut predicted, mut mask) = (0, 0, 0);
    for (normalised, &g) in min_max_normalised(probability).zip(f.gt) {
        let on_mask = 2 * g as u32 > mask_max;
        let positive = normalised > 0.5;
        mask += on_mask as u64;
        predicted += positive as u64;
        intersection += (on_mask && positive) as u64;
    }
    from_counts(intersection, predicted, mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GrayView;

    #[test]
    fn probability_maps_are_min_max_normalised_then_thresholded() {
        // min 0.2, max 0.9: (p - 0.2) / 0.7 > 0.5  <=>  p > 0.55
        let probability = [0.2f32, 0.5, 0.56, 0.9, 0.3, 0.6];
        let pred = [0u8; 6];
        let gt = [0u8, 255, 255, 255, 0, 0];
        let gt = GrayView::new(&gt, 3, 2).unwrap();
        let geometry = crate::MaskGeometry::new(gt);
        let frame = Frame::new(GrayView::new(&pred, 3, 2).unwrap(), gt, &geometry).unwrap();
        // predicted {2, 3, 5}, mask {1, 2, 3}: intersection 2, union 4
        let jf = from_probability(&probability, &frame).unwrap();
        assert_eq!(jf.jaccard, 0.5);
        let (r, p) = (2.0 / (3.0 + 1e-8), 2.0 / (3.0 + 1e-8));
        assert_eq!(jf.f1, 2.0 * r * p / (r + p + 1e-8));
    }

    #[test]
    fn constant_predictions_predict_nothing_and_empty_masks_are_not_scored() {
        assert_eq!(from_counts(0, 0, 0), None);
        let jf = from_counts(0, 0, 10).unwrap();
        assert_eq!((jf.jaccard, jf.f1), (0.0, 0.0));
    }
}
