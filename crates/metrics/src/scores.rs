//! Every metric of one frame.

use crate::detection::{self, Detection};
use crate::frame::{Frame, PROTOCOL_FG};
use crate::mask_geometry::MaskGeometry;
use crate::protocol::{self, JaccardF1};
use crate::{binary, emeasure, smeasure, wfmeasure, GrayView, MetricsError};

/// All metrics of one prediction/mask pair. Curves are indexed by threshold: `curve[t]` is
/// the metric of the prediction binarised at histogram bin `>= t` (PySODMetrics stores the
/// same 256 values in the opposite order).
#[derive(Clone, Debug, PartialEq)]
pub struct FrameScores {
    /// S-measure (alpha 0.5).
    pub sm: f64,
    /// Weighted F-measure (beta² 1).
    pub wfm: f64,
    pub mae: f64,
    pub em_adp: f64,
    pub fm_adp: f64,
    pub iou_adp: f64,
    pub dice_adp: f64,
    pub em_curve: [f64; 256],
    /// F-measure (beta² 0.3).
    pub fm_curve: [f64; 256],
    pub iou_curve: [f64; 256],
    pub dice_curve: [f64; 256],
    /// Precision and recall (PySODMetrics' `PrecisionHandler`/`RecallHandler`: 0 where
    /// nothing is predicted / nothing is annotated), for precision–recall curves.
    pub precision_curve: [f64; 256],
    pub recall_curve: [f64; 256],
    /// The reference `test.py`'s Jaccard and F1; `None` when the mask is empty (such frames
    /// are not part of its averages).
    pub jaccard_f1: Option<JaccardF1>,
    /// The areas frame-level leak detection is decided from (`leak_recall`, `leak_fpr`): the
    /// prediction is not min-max normalised (see [`crate::detection`]).
    pub detection: Detection,
}

impl FrameScores {
    /// Scores an 8-bit prediction against an 8-bit mask of the same size. The `test.py`
    /// protocol binarises the 8-bit prediction itself (min-max normalised, `> 0.5`).
    pub fn compute(pred: GrayView<'_>, gt: GrayView<'_>) -> Result<Self, MetricsError> {
        pred.same_size(&gt)?;
        Self::compute_with_geometry(pred, gt, &MaskGeometry::new(gt))
    }

    /// As [`FrameScores::compute`], with the mask's [`MaskGeometry`] computed beforehand (by
    /// `MaskGeometry::new(gt)`): scoring several predictions against one mask then computes
    /// the mask's distance transform once. Same results, bit for bit.
    pub fn compute_with_geometry(
        pred: GrayView<'_>,
        gt: GrayView<'_>,
        geometry: &MaskGeometry,
    ) -> Result<Self, MetricsError> {
        Self::compute_with_predicted_area(pred, gt, geometry, None)
    }

    /// As [`FrameScores::compute_with_geometry`], with the detection's predicted area given:
    /// `Some(area)` is taken as it is (e.g. [`Detection::map_area`] of the binary mask written
    /// beside a min-max normalised map, whose own `>= 128` pixels mean nothing), `None` counts
    /// `pred`'s pixels `>= 128`. Every other metric is computed from `pred` alone, bit for bit
    /// as without the override.
    pub fn compute_with_predicted_area(
        pred: GrayView<'_>,
        gt: GrayView<'_>,
        geometry: &MaskGeometry,
        predicted_area: Option<u64>,
    ) -> Result<Self, MetricsError> {
        let frame = Frame::new(pred, gt, geometry)?;
        let jf = protocol::from_frame(&frame);
        let detection = Detection {
            predicted_area: predicted_area.unwrap_or_else(|| count_pixels(&frame, |v, _| v >= 128)),
            ..detection_of(&frame)
        };
        Ok(Self::from_frame(&frame, jf, detection, geometry))
    }

    /// As [`FrameScores::compute`], but the `test.py` protocol binarises `probability` (the
    /// float map the 8-bit `pred` was quantised from, same size) exactly as `test.py` does.
    pub fn compute_with_probability(
        pred: GrayView<'_>,
        probability: &[f32],
        gt: GrayView<'_>,
    ) -> Result<Self, MetricsError> {
        pred.same_size(&gt)?;
        let geometry = MaskGeometry::new(gt);
        let frame = Frame::new(pred, gt, &geometry)?;
        if probability.len() != frame.size as usize {
            return Err(MetricsError::BufferSize {
                len: probability.len(),
                width: frame.width,
                height: frame.height,
            });
        }
        let jf = protocol::from_probability(probability, &frame);
        let detection = Detection {
            predicted_area: detection::probability_area(probability),
            ..detection_of(&frame)
        };
        Ok(Self::from_frame(&frame, jf, detection, &geometry))
    }

    fn from_frame(
        f: &Frame,
        jaccard_f1: Option<JaccardF1>,
        detection: Detection,
        geometry: &MaskGeometry,
    ) -> Self {
        let adaptive = binary::adaptive(f);
        let curves = binary::curves(f);
        Self {
            sm: smeasure::s_measure(f),
            wfm: wfmeasure::weighted_f_measure(f, geometry),
            mae: mae(f),
            em_adp: emeasure::adaptive(f),
            fm_adp: adaptive.fm,
            iou_adp: adaptive.iou,
            dice_adp: adaptive.dice,
            em_curve: emeasure::curve(f),
            fm_curve: curves.map(|b| b.fm),
            iou_curve: curves.map(|b| b.iou),
            dice_curve: curves.map(|b| b.dice),
            precision_curve: curves.map(|b| b.precision),
            recall_curve: curves.map(|b| b.recall),
            jaccard_f1,
            detection,
        }
    }
}

/// Pixels whose raw prediction value `v` and mask code satisfy `keep(v, code)`.
fn count_pixels(f: &Frame, keep: impl Fn(usize, usize) -> bool) -> u64 {
    let mut n = 0;
    for quadrant in f.hist.iter() {
        for (code, h) in quadrant.iter().enumerate() {
            for (v, &c) in h.iter().enumerate() {
                if keep(v, code) {
                    n += c as u64;
                }
            }
        }
    }
    n
}

/// The mask's side of a frame's [`Detection`] (no predicted area yet).
fn detection_of(f: &Frame) -> Detection {
    Detection {
        predicted_area: 0,
        mask_area: count_pixels(f, |_, code| code & PROTOCOL_FG != 0),
        pixels: f.size,
    }
}

fn mae(f: &Frame) -> f64 {
    let (fg, bg) = (f.sod_hist(true), f.sod_hist(false));
    let mut sum = 0.0;
    for v in 0..256 {
        let value = f.value[v];
        sum += fg[v] as f64 * (1.0 - value) + bg[v] as f64 * value;
    }
    sum / f.size as f64
}
