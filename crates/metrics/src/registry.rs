//! The one list of metrics. The recorder, the report's table and JSON keys, the choice of a
//! training run's best checkpoint, TensorBoard tags and comparison tables all read it, so a
//! metric is added here (and computed per frame in [`FrameScores`]) and nowhere else.
//!
//! Two levels:
//! - a [`Measure`] is what one frame yields: a value, a 256-threshold curve, a value that
//!   only frames with a non-empty mask have (the reference `test.py`'s protocol), or a yes/no
//!   that only some frames have (frame-level leak detection, see [`crate::detection`]);
//! - a [`Metric`] is what a set of frames reports: a measure's mean, a curve's mean or maximum
//!   after averaging it over frames, a mean of two metrics, or a share of frames.

use crate::detection::{Detection, MinLeakArea};
use crate::FrameScores;

/// Whether a larger value of a metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

impl Better {
    /// Whether `candidate` beats `incumbent`.
    pub fn improves(self, candidate: f64, incumbent: f64) -> bool {
        match self {
            Better::Higher => candidate > incumbent,
            Better::Lower => candidate < incumbent,
        }
    }
}

/// How one frame's value of a measure is read from its [`FrameScores`].
#[derive(Clone, Copy)]
pub enum Reading {
    /// One value per frame.
    Value(fn(&FrameScores) -> f64),
    /// One value per threshold (index = threshold bin), per frame.
    Curve(fn(&FrameScores) -> &[f64; 256]),
    /// A value only frames with a non-empty mask have (`test.py` averages over those).
    Annotated(fn(&FrameScores) -> Option<f64>),
    /// Whether a frame counts (`Some(true)`), does not (`Some(false)`), or is not among the
    /// frames the share is taken of (`None`), under the recorder's [`MinLeakArea`] rule.
    Count(fn(&Detection, MinLeakArea) -> Option<bool>),
}

/// A per-frame quantity the recorder accumulates.
#[derive(Clone, Copy)]
pub struct Measure {
    pub key: &'static str,
    pub reading: Reading,
}

/// The measures, in accumulation order.
#[rustfmt::skip]
pub const MEASURES: &[Measure] = &[
    Measure { key: "sm", reading: Reading::Value(|s| s.sm) },
    Measure { key: "wfm", reading: Reading::Value(|s| s.wfm) },
    Measure { key: "mae", reading: Reading::Value(|s| s.mae) },
    Measure { key: "em_adp", reading: Reading::Value(|s| s.em_adp) },
    Measure { key: "fm_adp", reading: Reading::Value(|s| s.fm_adp) },
    Measure { key: "iou_adp", reading: Reading::Value(|s| s.iou_adp) },
    Measure { key: "dice_adp", reading: Reading::Value(|s| s.dice_adp) },
    Measure { key: "em", reading: Reading::Curve(|s| &s.em_curve) },
    Measure { key: "fm", reading: Reading::Curve(|s| &s.fm_curve) },
    Measure { key: "iou", reading: Reading::Curve(|s| &s.iou_curve) },
    Measure { key: "dice", reading: Reading::Curve(|s| &s.dice_curve) },
    // Not reported as metrics: the precision–recall curve of `fgstp compare --plots`.
    Measure { key: "precision", reading: Reading::Curve(|s| &s.precision_curve) },
    Measure { key: "recall", reading: Reading::Curve(|s| &s.recall_curve) },
    Measure { key: "jaccard", reading: Reading::Annotated(|s| s.jaccard_f1.map(|j| j.jaccard)) },
    Measure { key: "f1", reading: Reading::Annotated(|s| s.jaccard_f1.map(|j| j.f1)) },
    // Frames with a leak in the mask: predicted leak or not.
    Measure { key: "leak_found", reading: Reading::Count(Detection::found) },
    // Leak-free frames: predicted leak or not.
    Measure { key: "leak_false_alarm", reading: Reading::Count(Detection::false_alarm) },
];

/// How a metric is made from the measures of a set of frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    /// The mean of a `Value` measure over frames.
    Mean(&'static str),
    /// A `Curve` measure averaged over frames threshold by threshold, then its mean over the
    /// 256 thresholds.
    CurveMean(&'static str),
    /// As `CurveMean`, then its maximum.
    CurveMax(&'static str),
    /// The mean of an `Annotated` measure over the frames that have it; absent (JSON `null`)
    /// when none does.
    AnnotatedMean(&'static str),
    /// The mean of two earlier metrics; absent when either is.
    MeanOf(&'static str, &'static str),
    /// The share of a `Count` measure's frames that count, pooled over frames in every
    /// aggregate (`video_mean` too: frames of all videos together, not a mean over videos);
    /// absent when there are no such frames.
    PooledShare(&'static str),
}

/// A reported metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metric {
    /// The JSON key, TensorBoard tag (`val/<key>`) and `eval.best_metric` value.
    pub key: &'static str,
    /// The name in tables and plots.
    pub display: &'static str,
    /// A short label for one-line summaries.
    pub short: &'static str,
    pub better: Better,
    pub aggregate: Aggregate,
    /// A column of the per-video table and of the one-line validation summary: the paper's
    /// six (S-alpha, weighted F, MAE, mean E-phi, mIoU, mDice), `test.py`'s three and the two
    /// frame-level detection rates.
    pub headline: bool,
}

const fn metric(
    key: &'static str,
    display: &'static str,
    short: &'static str,
    better: Better,
    aggregate: Aggregate,
    headline: bool,
) -> Metric {
    Metric {
        key,
        display,
        short,
        better,
        aggregate,
        headline,
    }
}

use Aggregate::{AnnotatedMean, CurveMax, CurveMean, Mean, MeanOf, PooledShare};
use Better::{Higher, Lower};

/// Every reported metric, in the order of the JSON keys and the tables.
#[rustfmt::skip]
pub const METRICS: &[Metric] = &[
    metric("sm",        "S-alpha",          "S",       Higher, Mean("sm"),           true),
    metric("wfm",       "weighted F",       "wF",      Higher, Mean("wfm"),          true),
    metric("mae",       "MAE",              "MAE",     Lower,  Mean("mae"),          true),
    metric("em_adp",    "adaptive E-phi",   "adpE",    Higher, Mean("em_adp"),       false),
    metric("em_mean",   "E-phi",            "E",       Higher, CurveMean("em"),      true),
    metric("em_max",    "max E-phi",        "maxE",    Higher, CurveMax("em"),       false),
    metric("fm_adp",    "adaptive F",       "adpF",    Higher, Mean("fm_adp"),       false),
    metric("fm_mean",   "mean F",           "mF",      Higher, CurveMean("fm"),      false),
    metric("fm_max",    "max F",            "maxF",    Higher, CurveMax("fm"),       false),
    metric("iou_adp",   "adaptive IoU",     "adpIoU",  Higher, Mean("iou_adp"),      false),
    metric("iou_mean",  "mIoU",             "mIoU",    Higher, CurveMean("iou"),     true),
    metric("iou_max",   "max IoU",          "maxIoU",  Higher, CurveMax("iou"),      false),
    metric("dice_adp",  "adaptive Dice",    "adpDice", Higher, Mean("dice_adp"),     false),
    metric("dice_mean", "mDice",            "mDice",   Higher, CurveMean("dice"),    true),
    metric("dice_max",  "max Dice",         "maxDice", Higher, CurveMax("dice"),     false),
    metric("jaccard",   "Jaccard (test.py)", "jaccard", Higher, AnnotatedMean("jaccard"), true),
    metric("f1",        "F1 (test.py)",     "f1",      Higher, AnnotatedMean("f1"),  true),
    metric("jf",        "J&F (test.py)",    "J&F",     Higher, MeanOf("jaccard", "f1"), true),
    metric("leak_recall", "leak recall",    "leakR",   Higher, PooledShare("leak_found"), true),
    metric("leak_fpr",  "leak FPR",         "leakFPR", Lower,  PooledShare("leak_false_alarm"), true),
];

/// The columns of the paper's table, in its order: S-alpha, weighted F, MAE, E-phi, mIoU,
/// mDice. The reference repository's metric code (`utils/recorder/metrics.py`,
/// `GroupedMetricRecorder`, PySODMetrics underneath) groups frames by video and averages over
/// videos — the report's `video_mean` — and for the threshold curves reports `adp*` (adaptive
/// threshold), `avg*` (mean over the 256 thresholds of the video-averaged curve) and `max*`.
/// "mIoU" and "mDice" are its `avgiou` and `avgdice` (its Dice handler has no adaptive value at
/// all), and E-phi is `avgem`, the mean E-measure, as in the video camouflage tables (SLT-Net,
/// ZoomNeXt) the paper's rows come from. S-alpha, weighted F and MAE are single values
/// (`sm`, `wfm`, `mae`).
pub const PAPER_COLUMNS: &[&str] = &["sm", "wfm", "mae", "em_mean", "iou_mean", "dice_mean"];

/// Frame-level leak detection (see [`crate::detection`]), shown beside the paper's columns by
/// `fgstp compare`: the share of frames with a leak that are predicted leak, and of leak-free
/// frames that are.
pub const DETECTION_COLUMNS: &[&str] = &["leak_recall", "leak_fpr"];

/// The metric called `key`.
pub fn find(key: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.key == key)
}

/// Every metric key, for error messages.
pub fn keys() -> Vec<&'static str> {
    METRICS.iter().map(|m| m.key).collect()
}

/// The position of measure `key` in [`MEASURES`].
pub(crate) fn measure_index(key: &str) -> usize {
    MEASURES
        .iter()
        .position(|m| m.key == key)
        .unwrap_or_else(|| panic!("registry: no measure {key:?}"))
}

/// The position of metric `key` in [`METRICS`].
pub(crate) fn metric_index(key: &str) -> usize {
    METRICS
        .iter()
        .position(|m| m.key == key)
        .unwrap_or_else(|| panic!("registry: no metric {key:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry refers to itself by key: every reference must resolve to the right kind,
    /// and keys must be unique (a typo here would otherwise surface as a panic at run time).
    #[test]
    fn every_reference_resolves_and_keys_are_unique() {
        for (i, m) in METRICS.iter().enumerate() {
            assert!(METRICS[..i].iter().all(|o| o.key != m.key), "{}", m.key);
            let kind = |key: &str| MEASURES[measure_index(key)].reading;
            match m.aggregate {
                Mean(k) => assert!(matches!(kind(k), Reading::Value(_)), "{}", m.key),
                CurveMean(k) | CurveMax(k) => {
                    assert!(matches!(kind(k), Reading::Curve(_)), "{}", m.key)
                }
                AnnotatedMean(k) => {
                    assert!(matches!(kind(k), Reading::Annotated(_)), "{}", m.key)
                }
                PooledShare(k) => assert!(matches!(kind(k), Reading::Count(_)), "{}", m.key),
                // Both must come earlier, so that one pass in order computes them.
                MeanOf(a, b) => assert!(metric_index(a) < i && metric_index(b) < i, "{}", m.key),
            }
        }
        for (i, m) in MEASURES.iter().enumerate() {
            assert!(MEASURES[..i].iter().all(|o| o.key != m.key), "{}", m.key);
        }
        assert_eq!(find("mae").map(|m| m.better), Some(Better::Lower));
        for key in PAPER_COLUMNS.iter().chain(DETECTION_COLUMNS) {
            assert!(find(key).is_some(), "{key}");
        }
        assert!(find("nope").is_none());
    }
}
