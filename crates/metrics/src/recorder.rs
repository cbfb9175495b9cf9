//! Aggregation over frames, per video and over videos, as the reference's grouped recorder
//! does it, with exactly mergeable state.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::{FrameScores, GrayView, MetricsError};

/// A sum of floats that does not depend on the order of additions: each value is rounded
/// once to a multiple of 2^-64 (far below float64 resolution near 1) and added as an
/// integer. Sharded or multi-threaded evaluations therefore merge to bit-identical results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ExactSum {
    fixed: i128,
    /// A NaN or infinite value was added, or the sum left the representable range.
    invalid: bool,
}

const FIXED_SCALE: f64 = 18446744073709551616.0; // 2^64

impl ExactSum {
    fn add(&mut self, x: f64) {
        let scaled = x * FIXED_SCALE;
        // i128 holds ±2^127; a value past ±2^100 (x past ±2^36) is no metric value.
        if !scaled.is_finite() || scaled.abs() >= 2f64.powi(100) {
            self.invalid = true;
            return;
        }
        match self.fixed.checked_add(scaled as i128) {
            Some(sum) => self.fixed = sum,
            None => self.invalid = true,
        }
    }

    fn merge(&mut self, other: &ExactSum) {
        self.invalid |= other.invalid;
        match self.fixed.checked_add(other.fixed) {
            Some(sum) => self.fixed = sum,
            None => self.invalid = true,
        }
    }

    fn mean(&self, count: u64) -> f64 {
        if self.invalid || count == 0 {
            f64::NAN
        } else {
            (self.fixed as f64 / FIXED_SCALE) / count as f64
        }
    }
}

const SCALARS: usize = 7; // sm, wfm, mae, em_adp, fm_adp, iou_adp, dice_adp
const CURVES: usize = 4; // em, fm, iou, dice

/// Running totals of one group of frames (one video).
#[derive(Clone, Debug, PartialEq)]
struct Totals {
    frames: u64,
    scalars: [ExactSum; SCALARS],
    curves: Box<[[ExactSum; 256]; CURVES]>,
    /// Frames with a non-empty mask: the ones the `test.py` protocol averages over.
    protocol_frames: u64,
    jaccard: ExactSum,
    f1: ExactSum,
}

impl Default for Totals {
    fn default() -> Self {
        Self {
            frames: 0,
            scalars: [ExactSum::default(); SCALARS],
            curves: Box::new([[ExactSum::default(); 256]; CURVES]),
            protocol_frames: 0,
            jaccard: ExactSum::default(),
            f1: ExactSum::default(),
        }
    }
}

impl Totals {
    fn add(&mut self, s: &FrameScores) {
        self.frames += 1;
        let scalars = [
            s.sm, s.wfm, s.mae, s.em_adp, s.fm_adp, s.iou_adp, s.dice_adp,
        ];
        for (total, x) in self.scalars.iter_mut().zip(scalars) {
            total.add(x);
        }
        let curves = [&s.em_curve, &s.fm_curve, &s.iou_curve, &s.dice_curve];
        for (total, curve) in self.curves.iter_mut().zip(curves) {
            for (t, &x) in total.iter_mut().zip(curve.iter()) {
                t.add(x);
            }
        }
        if let Some(jf) = s.jaccard_f1 {
            self.protocol_frames += 1;
            self.jaccard.add(jf.jaccard);
            self.f1.add(jf.f1);
        }
    }

    fn merge(&mut self, other: &Totals) {
        self.frames += other.frames;
        for (a, b) in self.scalars.iter_mut().zip(&other.scalars) {
            a.merge(b);
        }
        for (a, b) in self.curves.iter_mut().zip(other.curves.iter()) {
            for (x, y) in a.iter_mut().zip(b) {
                x.merge(y);
            }
        }
        self.protocol_frames += other.protocol_frames;
        self.jaccard.merge(&other.jaccard);
        self.f1.merge(&other.f1);
    }

    fn means(&self) -> Means {
        Means {
            scalars: self.scalars.map(|s| s.mean(self.frames)),
            curves: Box::new(std::array::from_fn(|k| {
                self.curves[k].map(|s| s.mean(self.frames))
            })),
            jaccard: (self.protocol_frames > 0).then(|| self.jaccard.mean(self.protocol_frames)),
            f1: (self.protocol_frames > 0).then(|| self.f1.mean(self.protocol_frames)),
        }
    }
}

/// Per-frame averages of a group: scalars, and curves averaged threshold by threshold.
struct Means {
    scalars: [f64; SCALARS],
    curves: Box<[[f64; 256]; CURVES]>,
    jaccard: Option<f64>,
    f1: Option<f64>,
}

impl Means {
    /// The mean over groups: scalars averaged, curves averaged threshold by threshold (then
    /// [`Means::scores`] takes their mean and maximum), `test.py` scores averaged over the
    /// groups that have any.
    fn over_groups(groups: &[Means]) -> Means {
        let n = groups.len() as f64;
        let mut scalars = [0.0; SCALARS];
        let mut curves = Box::new([[0.0; 256]; CURVES]);
        for g in groups {
            for (a, b) in scalars.iter_mut().zip(&g.scalars) {
                *a += b;
            }
            for (a, b) in curves.iter_mut().zip(g.curves.iter()) {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
            }
        }
        let mean_of = |values: Vec<f64>| {
            (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
        };
        Means {
            scalars: scalars.map(|s| s / n),
            curves: Box::new(curves.map(|c| c.map(|x| x / n))),
            jaccard: mean_of(groups.iter().filter_map(|g| g.jaccard).collect()),
            f1: mean_of(groups.iter().filter_map(|g| g.f1).collect()),
        }
    }

    fn scores(&self) -> Scores {
        let mean = |c: &[f64; 256]| c.iter().sum::<f64>() / 256.0;
        let max = |c: &[f64; 256]| c.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let [sm, wfm, mae, em_adp, fm_adp, iou_adp, dice_adp] = self.scalars;
        let [em, fm, iou, dice] = &*self.curves;
        Scores {
            sm,
            wfm,
            mae,
            em_adp,
            em_mean: mean(em),
            em_max: max(em),
            fm_adp,
            fm_mean: mean(fm),
            fm_max: max(fm),
            iou_adp,
            iou_mean: mean(iou),
            iou_max: max(iou),
            dice_adp,
            dice_mean: mean(dice),
            dice_max: max(dice),
            jaccard: self.jaccard,
            f1: self.f1,
            jf: self.jaccard.zip(self.f1).map(|(j, f)| (j + f) / 2.0),
        }
    }
}

/// The metrics of a set of frames. `_adp`: at the adaptive threshold (twice the mean
/// prediction); `_mean`/`_max`: mean and maximum over the 256 thresholds. `jaccard`, `f1`
/// and `jf` follow the reference `test.py` and are `None` (JSON `null`) when no frame has
/// a non-empty mask.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scores {
    pub sm: f64,
    pub wfm: f64,
    pub mae: f64,
    pub em_adp: f64,
    pub em_mean: f64,
    pub em_max: f64,
    pub fm_adp: f64,
    pub fm_mean: f64,
    pub fm_max: f64,
    pub iou_adp: f64,
    pub iou_mean: f64,
    pub iou_max: f64,
    pub dice_adp: f64,
    pub dice_mean: f64,
    pub dice_max: f64,
    pub jaccard: Option<f64>,
    pub f1: Option<f64>,
    pub jf: Option<f64>,
}

impl Scores {
    /// `(key, value)` in the order of the JSON keys.
    pub fn entries(&self) -> [(&'static str, Option<f64>); 18] {
        [
            ("sm", Some(self.sm)),
            ("wfm", Some(self.wfm)),
            ("mae", Some(self.mae)),
            ("em_adp", Some(self.em_adp)),
            ("em_mean", Some(self.em_mean)),
            ("em_max", Some(self.em_max)),
            ("fm_adp", Some(self.fm_adp)),
            ("fm_mean", Some(self.fm_mean)),
            ("fm_max", Some(self.fm_max)),
            ("iou_adp", Some(self.iou_adp)),
            ("iou_mean", Some(self.iou_mean)),
            ("iou_max", Some(self.iou_max)),
            ("dice_adp", Some(self.dice_adp)),
            ("dice_mean", Some(self.dice_mean)),
            ("dice_max", Some(self.dice_max)),
            ("jaccard", self.jaccard),
            ("f1", self.f1),
            ("jf", self.jf),
        ]
    }
}

/// Results over all frames (`overall`: every frame weighs the same), per video, and over
/// videos (`video_mean`: every video weighs the same).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub overall: Scores,
    pub per_video: BTreeMap<String, Scores>,
    pub video_mean: Scores,
    pub frames: u64,
    pub videos: usize,
}

/// Collects frame scores by video. `step` per frame, `results` at the end; recorders of
/// disjoint shards of a dataset `merge` into exactly the recorder of the whole.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricRecorder {
    videos: BTreeMap<String, Totals>,
}

impl MetricRecorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Scores one frame of `video` (see [`FrameScores::compute`]).
    pub fn step(
        &mut self,
        video: &str,
        pred: GrayView<'_>,
        gt: GrayView<'_>,
    ) -> Result<(), MetricsError> {
        self.add(video, &FrameScores::compute(pred, gt)?);
        Ok(())
    }

    /// Scores one frame of `video` (see [`FrameScores::compute_with_probability`]).
    pub fn step_with_probability(
        &mut self,
        video: &str,
        pred: GrayView<'_>,
        probability: &[f32],
        gt: GrayView<'_>,
    ) -> Result<(), MetricsError> {
        self.add(
            video,
            &FrameScores::compute_with_probability(pred, probability, gt)?,
        );
        Ok(())
    }

    /// Adds a frame scored elsewhere (e.g. on another thread).
    pub fn add(&mut self, video: &str, scores: &FrameScores) {
        match self.videos.get_mut(video) {
            Some(totals) => totals.add(scores),
            None => {
                let mut totals = Totals::default();
                totals.add(scores);
                self.videos.insert(video.to_string(), totals);
            }
        }
    }

    /// Adds everything `other` recorded; the result does not depend on the order of merges.
    pub fn merge(&mut self, other: &MetricRecorder) {
        for (video, totals) in &other.videos {
            self.videos.entry(video.clone()).or_default().merge(totals);
        }
    }

    pub fn frames(&self) -> u64 {
        self.videos.values().map(|t| t.frames).sum()
    }

    pub fn results(&self) -> Result<Report, MetricsError> {
        if self.videos.is_empty() {
            return Err(MetricsError::NoFrames);
        }
        let mut all = Totals::default();
        for totals in self.videos.values() {
            all.merge(totals);
        }
        let per_video_means: Vec<(String, Means)> = self
            .videos
            .iter()
            .map(|(name, t)| (name.clone(), t.means()))
            .collect();
        let groups: Vec<Means> = self.videos.values().map(Totals::means).collect();
        Ok(Report {
            overall: all.means().scores(),
            per_video: per_video_means
                .iter()
                .map(|(name, m)| (name.clone(), m.scores()))
                .collect(),
            video_mean: Means::over_groups(&groups).scores(),
            frames: all.frames,
            videos: self.videos.len(),
        })
    }
}
