//! Aggregation over frames, per video and over videos, as the reference's grouped recorder
//! does it, with exactly mergeable state.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::detection::MinLeakArea;
use crate::registry::{measure_index, metric_index, Aggregate, Metric, Reading, MEASURES, METRICS};
use crate::{FrameScores, GrayView, MetricsError};

/// A sum of floats that does not depend on the order of additions: each value is rounded
/// once to a multiple of 2^-64 (far below float64 resolution near 1) and added as an
/// integer. Sharded or multi-threaded evaluations therefore merge to bit-identical results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ExactSum {
    pub(crate) fixed: i128,
    /// A NaN or infinite value was added, or the sum left the representable range.
    pub(crate) invalid: bool,
}

pub(crate) const FIXED_SCALE: f64 = 18446744073709551616.0; // 2^64

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

/// Running totals of one group of frames (one video), one entry per [`MEASURES`] item.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Totals {
    pub(crate) frames: u64,
    pub(crate) measures: Vec<MeasureTotal>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum MeasureTotal {
    Value(ExactSum),
    Curve(Box<[ExactSum; 256]>),
    /// The sum over the frames that have the measure, and their count.
    Annotated(ExactSum, u64),
    /// Of the frames that have the measure: how many count, and how many there are.
    Count {
        hits: u64,
        frames: u64,
    },
}

impl Default for Totals {
    fn default() -> Self {
        let measures = MEASURES
            .iter()
            .map(|m| match m.reading {
                Reading::Value(_) => MeasureTotal::Value(ExactSum::default()),
                Reading::Curve(_) => MeasureTotal::Curve(Box::new([ExactSum::default(); 256])),
                Reading::Annotated(_) => MeasureTotal::Annotated(ExactSum::default(), 0),
                Reading::Count(_) => MeasureTotal::Count { hits: 0, frames: 0 },
            })
            .collect();
        Self {
            frames: 0,
            measures,
        }
    }
}

impl Totals {
    fn add(&mut self, s: &FrameScores, rule: MinLeakArea) {
        self.frames += 1;
        for (total, measure) in self.measures.iter_mut().zip(MEASURES) {
            match (total, measure.reading) {
                (MeasureTotal::Value(sum), Reading::Value(read)) => sum.add(read(s)),
                (MeasureTotal::Curve(sums), Reading::Curve(read)) => {
                    for (t, &x) in sums.iter_mut().zip(read(s).iter()) {
                        t.add(x);
                    }
                }
                (MeasureTotal::Annotated(sum, count), Reading::Annotated(read)) => {
                    if let Some(x) = read(s) {
                        *count += 1;
                        sum.add(x);
                    }
                }
                (MeasureTotal::Count { hits, frames }, Reading::Count(read)) => {
                    if let Some(hit) = read(&s.detection, rule) {
                        *frames += 1;
                        *hits += hit as u64;
                    }
                }
                _ => unreachable!("totals are built from MEASURES"),
            }
        }
    }

    fn merge(&mut self, other: &Totals) {
        self.frames += other.frames;
        for (a, b) in self.measures.iter_mut().zip(&other.measures) {
            match (a, b) {
                (MeasureTotal::Value(x), MeasureTotal::Value(y)) => x.merge(y),
                (MeasureTotal::Curve(xs), MeasureTotal::Curve(ys)) => {
                    for (x, y) in xs.iter_mut().zip(ys.iter()) {
                        x.merge(y);
                    }
                }
                (MeasureTotal::Annotated(x, n), MeasureTotal::Annotated(y, m)) => {
                    x.merge(y);
                    *n += m;
                }
                (
                    MeasureTotal::Count { hits, frames },
                    MeasureTotal::Count { hits: h, frames: f },
                ) => {
                    *hits += h;
                    *frames += f;
                }
                _ => unreachable!("totals are built from MEASURES"),
            }
        }
    }

    fn means(&self) -> Means {
        Means(
            self.measures
                .iter()
                .map(|total| match total {
                    MeasureTotal::Value(sum) => MeasureMean::Value(sum.mean(self.frames)),
                    MeasureTotal::Curve(sums) => {
                        MeasureMean::Curve(Box::new(sums.map(|s| s.mean(self.frames))))
                    }
                    MeasureTotal::Annotated(sum, count) => {
                        MeasureMean::Annotated((*count > 0).then(|| sum.mean(*count)))
                    }
                    MeasureTotal::Count { hits, frames } => MeasureMean::Count {
                        hits: *hits,
                        frames: *frames,
                    },
                })
                .collect(),
        )
    }
}

/// Per-frame averages of a group, one entry per [`MEASURES`] item: values, curves averaged
/// threshold by threshold, annotated-frame averages, and frame counts (kept as counts, so
/// that groups pool them).
struct Means(Vec<MeasureMean>);

enum MeasureMean {
    Value(f64),
    Curve(Box<[f64; 256]>),
    Annotated(Option<f64>),
    Count { hits: u64, frames: u64 },
}

impl Means {
    /// The mean over groups: values averaged, curves averaged threshold by threshold (then
    /// [`Means::scores`] takes their mean and maximum), annotated measures averaged over the
    /// groups that have any, counts pooled (added up over the groups).
    fn over_groups(groups: &[Means]) -> Means {
        let n = groups.len() as f64;
        let per_measure = (0..MEASURES.len()).map(|k| match MEASURES[k].reading {
            Reading::Value(_) => {
                let mut sum = 0.0;
                for g in groups {
                    if let MeasureMean::Value(x) = g.0[k] {
                        sum += x;
                    }
                }
                MeasureMean::Value(sum / n)
            }
            Reading::Curve(_) => {
                let mut sums = [0.0; 256];
                for g in groups {
                    if let MeasureMean::Curve(c) = &g.0[k] {
                        for (x, y) in sums.iter_mut().zip(c.iter()) {
                            *x += y;
                        }
                    }
                }
                MeasureMean::Curve(Box::new(sums.map(|x| x / n)))
            }
            Reading::Annotated(_) => {
                let values: Vec<f64> = groups
                    .iter()
                    .filter_map(|g| match g.0[k] {
                        MeasureMean::Annotated(x) => x,
                        _ => None,
                    })
                    .collect();
                MeasureMean::Annotated(
                    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64),
                )
            }
            Reading::Count(_) => {
                let (mut hits, mut frames) = (0, 0);
                for g in groups {
                    if let MeasureMean::Count { hits: h, frames: f } = g.0[k] {
                        hits += h;
                        frames += f;
                    }
                }
                MeasureMean::Count { hits, frames }
            }
        });
        Means(per_measure.collect())
    }

    fn curves(&self) -> BTreeMap<&'static str, Vec<f64>> {
        MEASURES
            .iter()
            .zip(&self.0)
            .filter_map(|(m, mean)| match mean {
                MeasureMean::Curve(c) => Some((m.key, c.to_vec())),
                _ => None,
            })
            .collect()
    }

    fn scores(&self) -> Scores {
        let mut values: Vec<Option<f64>> = Vec::with_capacity(METRICS.len());
        for metric in METRICS {
            let measure = |key: &str| &self.0[measure_index(key)];
            let curve = |key: &str| match measure(key) {
                MeasureMean::Curve(c) => c,
                _ => unreachable!("the registry test checks measure kinds"),
            };
            let value = match metric.aggregate {
                Aggregate::Mean(key) => match measure(key) {
                    MeasureMean::Value(x) => Some(*x),
                    _ => unreachable!("the registry test checks measure kinds"),
                },
                Aggregate::CurveMean(key) => Some(curve(key).iter().sum::<f64>() / 256.0),
                Aggregate::CurveMax(key) => {
                    Some(curve(key).iter().copied().fold(f64::NEG_INFINITY, f64::max))
                }
                Aggregate::AnnotatedMean(key) => match measure(key) {
                    MeasureMean::Annotated(x) => *x,
                    _ => unreachable!("the registry test checks measure kinds"),
                },
                Aggregate::PooledShare(key) => match measure(key) {
                    MeasureMean::Count { hits, frames } => {
                        (*frames > 0).then(|| *hits as f64 / *frames as f64)
                    }
                    _ => unreachable!("the registry test checks measure kinds"),
                },
                // Earlier in METRICS (checked by the registry test), so already computed.
                Aggregate::MeanOf(a, b) => values[metric_index(a)]
                    .zip(values[metric_index(b)])
                    .map(|(x, y)| (x + y) / 2.0),
            };
            values.push(value);
        }
        Scores { values }
    }
}

/// The metrics of a set of frames, one value per [`METRICS`] item (see there for the keys).
/// `_adp`: at the adaptive threshold (twice the mean prediction); `_mean`/`_max`: mean and
/// maximum over the 256 thresholds. `jaccard`, `f1` and `jf` follow the reference `test.py`
/// and are absent (JSON `null`) when no frame has a non-empty mask; `leak_recall` and
/// `leak_fpr` are shares of frames, absent when there are no frames with (without) a leak in
/// the mask. Serialises as a JSON
/// object with the registry's keys, in its order.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    values: Vec<Option<f64>>,
}

impl Scores {
    /// The value of metric `key`; `None` for an absent value or an unknown key
    /// ([`registry::find`](crate::registry::find) tells which).
    pub fn get(&self, key: &str) -> Option<f64> {
        METRICS
            .iter()
            .position(|m| m.key == key)
            .and_then(|i| self.values[i])
    }

    /// `(key, value)` in the order of the JSON keys.
    pub fn entries(&self) -> Vec<(&'static str, Option<f64>)> {
        METRICS
            .iter()
            .zip(&self.values)
            .map(|(m, v)| (m.key, *v))
            .collect()
    }

    /// Every metric with its value, in registry order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static Metric, Option<f64>)> + '_ {
        METRICS.iter().zip(self.values.iter().copied())
    }
}

impl Serialize for Scores {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.values.len()))?;
        for (metric, value) in self.iter() {
            map.serialize_entry(metric.key, &value)?;
        }
        map.end()
    }
}

/// Threshold curves by measure key (`em`, `fm`, `iou`, `dice`, `precision`, `recall`), 256
/// values each, index = threshold bin.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Curves {
    pub overall: BTreeMap<&'static str, Vec<f64>>,
    pub video_mean: BTreeMap<&'static str, Vec<f64>>,
}

/// Results over all frames (`overall`: every frame weighs the same), per video, and over
/// videos (`video_mean`: every video weighs the same, except for the detection rates, which
/// are pooled over all frames there too; see [`Aggregate::PooledShare`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub overall: Scores,
    pub per_video: BTreeMap<String, Scores>,
    pub video_mean: Scores,
    pub frames: u64,
    pub videos: usize,
}

/// Collects frame scores by video. `step` per frame, `results` at the end; recorders of
/// disjoint shards of a dataset `merge` into exactly the recorder of the whole. The recorder
/// applies its [`MinLeakArea`] rule to each frame it adds (frame-level detection).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricRecorder {
    pub(crate) min_leak_area: MinLeakArea,
    pub(crate) videos: BTreeMap<String, Totals>,
}

impl MetricRecorder {
    /// A recorder with the default detection rule ([`MinLeakArea::default`], 0.5 %).
    pub fn new() -> Self {
        Self::default()
    }

    /// A recorder whose frames are predicted leak from `min_leak_area` on.
    pub fn with_min_leak_area(min_leak_area: MinLeakArea) -> Self {
        Self {
            min_leak_area,
            videos: BTreeMap::new(),
        }
    }

    /// The detection rule this recorder applies.
    pub fn min_leak_area(&self) -> MinLeakArea {
        self.min_leak_area
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
        let rule = self.min_leak_area;
        match self.videos.get_mut(video) {
            Some(totals) => totals.add(scores, rule),
            None => {
                let mut totals = Totals::default();
                totals.add(scores, rule);
                self.videos.insert(video.to_string(), totals);
            }
        }
    }

    /// Adds everything `other` recorded; the result does not depend on the order of merges.
    ///
    /// # Panics
    /// When `other` applies another detection rule (the recorders of one evaluation are made
    /// with one rule); [`MetricRecorder::try_merge`] returns an error instead.
    pub fn merge(&mut self, other: &MetricRecorder) {
        if let Err(e) = self.try_merge(other) {
            panic!("{e}");
        }
    }

    /// As [`MetricRecorder::merge`], refusing (and changing nothing) when `other` applies
    /// another detection rule.
    pub fn try_merge(&mut self, other: &MetricRecorder) -> Result<(), MetricsError> {
        if self.min_leak_area != other.min_leak_area {
            return Err(MetricsError::RuleMismatch {
                ours: self.min_leak_area,
                theirs: other.min_leak_area,
            });
        }
        for (video, totals) in &other.videos {
            self.videos.entry(video.clone()).or_default().merge(totals);
        }
        Ok(())
    }

    pub fn frames(&self) -> u64 {
        self.videos.values().map(|t| t.frames).sum()
    }

    /// The videos recorded so far, in name order.
    pub fn videos(&self) -> impl Iterator<Item = &str> {
        self.videos.keys().map(String::as_str)
    }

    /// The threshold curves (PySODMetrics' `dynamic` results: E-measure, F-measure, IoU, Dice,
    /// precision, recall; index = threshold bin) averaged as the report's `overall` (over
    /// frames) and `video_mean` (over frames per video, then over videos).
    pub fn curves(&self) -> Result<Curves, MetricsError> {
        if self.videos.is_empty() {
            return Err(MetricsError::NoFrames);
        }
        let mut all = Totals::default();
        for totals in self.videos.values() {
            all.merge(totals);
        }
        let groups: Vec<Means> = self.videos.values().map(Totals::means).collect();
        Ok(Curves {
            overall: all.means().curves(),
            video_mean: Means::over_groups(&groups).curves(),
        })
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
