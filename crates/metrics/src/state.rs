//! A recorder's exact state as a versioned, serialisable value, so that shards scored in
//! separate processes (or on separate machines) merge into exactly the recorder of the whole:
//! every sum is the recorder's integer count of 2^-64, written in decimal.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::detection::MinLeakArea;
use crate::recorder::{ExactSum, MeasureTotal, Totals};
use crate::registry::{Reading, MEASURES};
use crate::{MetricRecorder, Shard};

/// `format` of every state file.
pub const STATE_FORMAT: &str = "fgstp-metric-state";
/// Bumped whenever the meaning of a state changes; readers refuse other versions.
pub const STATE_VERSION: u32 = 2;

/// A recorder's totals per video, with what produced them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecorderState {
    pub format: String,
    pub version: u32,
    /// How to read the sums (documentation for people opening the file).
    pub fixed_point: String,
    /// The measures, in the order of each video's `sums`.
    pub measures: Vec<MeasureSpec>,
    /// The detection rule the frames were scored with (`0.5%`, `40px`): states of different
    /// rules do not merge.
    pub min_leak_area: String,
    /// The shard this state covers, if it is one.
    #[serde(default)]
    pub shard: Option<Shard>,
    /// What was scored (command, folders, options), for checking that states belong together.
    #[serde(default)]
    pub origin: BTreeMap<String, String>,
    pub videos: BTreeMap<String, VideoState>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasureSpec {
    pub key: String,
    /// `value`, `curve` (256 sums), `annotated` (a sum and the number of frames that have it)
    /// or `count` (how many of the frames that have it count, and how many there are).
    pub kind: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VideoState {
    pub frames: u64,
    pub sums: Vec<SumState>,
}

/// A sum is a decimal integer (units of 2^-64) or `"invalid"` (a NaN or infinity was added).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SumState {
    Value(String),
    Curve(Vec<String>),
    Annotated { sum: String, count: u64 },
    Count { hits: u64, frames: u64 },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    #[error("not a metric state (format {0:?}, expected {STATE_FORMAT:?})")]
    Format(String),
    #[error("metric state version {found}, but this build reads version {STATE_VERSION}: merge with the fgstp version that wrote it")]
    Version { found: u32 },
    #[error("the state's measures ({found}) differ from this build's ({expected}): merge with the fgstp version that wrote it")]
    Measures { found: String, expected: String },
    #[error("the state's minimum leak area: {0}")]
    Rule(String),
    #[error("video {video:?}, measure {key:?}: {problem}")]
    Value {
        video: String,
        key: String,
        problem: String,
    },
}

fn kind_name(reading: Reading) -> &'static str {
    match reading {
        Reading::Value(_) => "value",
        Reading::Curve(_) => "curve",
        Reading::Annotated(_) => "annotated",
        Reading::Count(_) => "count",
    }
}

fn specs() -> Vec<MeasureSpec> {
    MEASURES
        .iter()
        .map(|m| MeasureSpec {
            key: m.key.to_string(),
            kind: kind_name(m.reading).to_string(),
        })
        .collect()
}

fn write_sum(sum: &ExactSum) -> String {
    if sum.invalid {
        "invalid".to_string()
    } else {
        sum.fixed.to_string()
    }
}

fn read_sum(text: &str, video: &str, key: &str) -> Result<ExactSum, StateError> {
    if text == "invalid" {
        return Ok(ExactSum {
            fixed: 0,
            invalid: true,
        });
    }
    text.parse::<i128>()
        .map(|fixed| ExactSum {
            fixed,
            invalid: false,
        })
        .map_err(|_| StateError::Value {
            video: video.to_string(),
            key: key.to_string(),
            problem: format!("{text:?} is not an integer sum"),
        })
}

/// The most frames one video's state may count: 2^40, far beyond any video, so that merging
/// up to 2^23 videos' counts cannot overflow.
const MAX_FRAMES: u64 = 1 << 40;

impl MetricRecorder {
    /// The exact state, labelled with its shard and origin.
    pub fn to_state(
        &self,
        shard: Option<Shard>,
        origin: BTreeMap<String, String>,
    ) -> RecorderState {
        let videos = self
            .videos
            .iter()
            .map(|(name, totals)| {
                let sums = totals
                    .measures
                    .iter()
                    .map(|total| match total {
                        MeasureTotal::Value(s) => SumState::Value(write_sum(s)),
                        MeasureTotal::Curve(sums) => {
                            SumState::Curve(sums.iter().map(write_sum).collect())
                        }
                        MeasureTotal::Annotated(s, count) => SumState::Annotated {
                            sum: write_sum(s),
                            count: *count,
                        },
                        MeasureTotal::Count { hits, frames } => SumState::Count {
                            hits: *hits,
                            frames: *frames,
                        },
                    })
                    .collect();
                (
                    name.clone(),
                    VideoState {
                        frames: totals.frames,
                        sums,
                    },
                )
            })
            .collect();
        RecorderState {
            format: STATE_FORMAT.to_string(),
            version: STATE_VERSION,
            fixed_point:
                "each sum is an integer number of 2^-64 (values rounded once, then added exactly)"
                    .to_string(),
            measures: specs(),
            min_leak_area: self.min_leak_area.to_string(),
            shard,
            origin,
            videos,
        }
    }

    /// The recorder a state was written from, bit for bit.
    pub fn from_state(state: &RecorderState) -> Result<Self, StateError> {
        if state.format != STATE_FORMAT {
            return Err(StateError::Format(state.format.clone()));
        }
        if state.version != STATE_VERSION {
            return Err(StateError::Version {
                found: state.version,
            });
        }
        let expected = specs();
        if state.measures != expected {
            let list = |m: &[MeasureSpec]| {
                m.iter()
                    .map(|m| format!("{}:{}", m.key, m.kind))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            return Err(StateError::Measures {
                found: list(&state.measures),
                expected: list(&expected),
            });
        }
        let rule: MinLeakArea = state
            .min_leak_area
            .parse()
            .map_err(|e: crate::MinLeakAreaError| StateError::Rule(e.to_string()))?;
        let mut recorder = MetricRecorder::with_min_leak_area(rule);
        let too_many = |video: &str, key: &str, n: u64| StateError::Value {
            video: video.to_string(),
            key: key.to_string(),
            problem: format!("{n} frames (a damaged state: at most {MAX_FRAMES} per video)"),
        };
        for (video, v) in &state.videos {
            if v.frames > MAX_FRAMES {
                return Err(too_many(video, "frames", v.frames));
            }
            let mut totals = Totals {
                frames: v.frames,
                ..Totals::default()
            };
            if v.sums.len() != MEASURES.len() {
                return Err(StateError::Value {
                    video: video.clone(),
                    key: "*".into(),
                    problem: format!("{} sums for {} measures", v.sums.len(), MEASURES.len()),
                });
            }
            for ((total, sum), measure) in totals.measures.iter_mut().zip(&v.sums).zip(MEASURES) {
                let key = measure.key;
                let mismatch = || StateError::Value {
                    video: video.clone(),
                    key: key.to_string(),
                    problem: format!("not a {} sum", kind_name(measure.reading)),
                };
                match (total, sum) {
                    (MeasureTotal::Value(t), SumState::Value(s)) => *t = read_sum(s, video, key)?,
                    (MeasureTotal::Curve(t), SumState::Curve(s)) => {
                        if s.len() != t.len() {
                            return Err(mismatch());
                        }
                        for (t, s) in t.iter_mut().zip(s) {
                            *t = read_sum(s, video, key)?;
                        }
                    }
                    (MeasureTotal::Annotated(t, n), SumState::Annotated { sum, count }) => {
                        if *count > MAX_FRAMES {
                            return Err(too_many(video, key, *count));
                        }
                        *t = read_sum(sum, video, key)?;
                        *n = *count;
                    }
                    (
                        MeasureTotal::Count { hits, frames },
                        SumState::Count { hits: h, frames: f },
                    ) => {
                        if *f > MAX_FRAMES {
                            return Err(too_many(video, key, *f));
                        }
                        if h > f {
                            return Err(StateError::Value {
                                video: video.clone(),
                                key: key.to_string(),
                                problem: format!("{h} hits among {f} frames"),
                            });
                        }
                        (*hits, *frames) = (*h, *f);
                    }
                    _ => return Err(mismatch()),
                }
            }
            recorder.videos.insert(video.clone(), totals);
        }
        Ok(recorder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GrayView;

    fn recorder() -> MetricRecorder {
        let mut r = MetricRecorder::new();
        let pred = [0u8, 40, 200, 255, 0, 30, 220, 250, 0, 0, 10, 20];
        let gt = [0u8, 0, 255, 255, 0, 0, 255, 255, 0, 0, 0, 0];
        let empty = [0u8; 12];
        for (video, g) in [("a", &gt), ("b", &empty), ("a", &empty)] {
            r.step(
                video,
                GrayView::new(&pred, 4, 3).unwrap(),
                GrayView::new(g, 4, 3).unwrap(),
            )
            .unwrap();
        }
        r
    }

    #[test]
    fn a_state_round_trips_exactly_and_is_checked() {
        let r = recorder();
        let state = r.to_state(Some(Shard { index: 1, count: 2 }), BTreeMap::new());
        assert_eq!(MetricRecorder::from_state(&state).unwrap(), r);

        let mut wrong = state.clone();
        wrong.version = 99;
        assert!(matches!(
            MetricRecorder::from_state(&wrong),
            Err(StateError::Version { found: 99 })
        ));
        let mut wrong = state.clone();
        wrong.measures.pop();
        assert!(matches!(
            MetricRecorder::from_state(&wrong),
            Err(StateError::Measures { .. })
        ));
        let mut wrong = state.clone();
        wrong.videos.get_mut("a").unwrap().sums[0] = SumState::Value("1.5".into());
        let err = MetricRecorder::from_state(&wrong).unwrap_err().to_string();
        assert!(err.contains("\"a\"") && err.contains("sm"), "{err}");
        // Counts that merging could overflow are a damaged state.
        let mut wrong = state.clone();
        wrong.videos.get_mut("a").unwrap().frames = u64::MAX;
        let err = MetricRecorder::from_state(&wrong).unwrap_err().to_string();
        assert!(err.contains("\"a\"") && err.contains("damaged"), "{err}");
        let mut wrong = state;
        for sum in &mut wrong.videos.get_mut("a").unwrap().sums {
            if let SumState::Count { hits, frames } = sum {
                (*hits, *frames) = (0, u64::MAX);
            }
        }
        let err = MetricRecorder::from_state(&wrong).unwrap_err().to_string();
        assert!(err.contains("damaged"), "{err}");
    }
}
