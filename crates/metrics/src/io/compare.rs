//! Several systems' predictions scored against one set of masks, on the same frames: each
//! mask is decoded once, each prediction once, frames are scored in parallel.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use super::exclude::Exclusions;
use super::pairing::{pair_files, FramePair, PairOptions};
use super::pred_kind::{PredKind, Reading};
use super::score::{detection_area, read_mask, read_prediction, Map};
use crate::recorder::Curves;
use crate::{FrameScores, MaskGeometry, MetricRecorder, MinLeakArea, Report};

/// One system to compare: its name in the table and its predictions (any layout `fgstp
/// metrics --pred` reads).
#[derive(Clone, Debug)]
pub struct System {
    pub name: String,
    pub pred: PathBuf,
}

/// Which frames the picture grid shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GridFrames {
    None,
    /// This many frames, from videos spread over the set, each video's middle frame.
    Spread(usize),
    /// `(video, frame stem)`.
    These(Vec<(String, String)>),
}

pub struct CompareOptions {
    pub kind: PredKind,
    /// The frame-level detection rule (see [`MinLeakArea`]).
    pub min_leak_area: MinLeakArea,
    pub exclude: Exclusions,
    pub grid: GridFrames,
}

/// One system's results on the common frames.
pub struct SystemResult {
    pub name: String,
    pub pred: PathBuf,
    /// Where its predictions were found, in words.
    pub layout: String,
    pub recorder: MetricRecorder,
    pub report: Report,
    pub curves: Curves,
    pub readings: BTreeMap<Reading, usize>,
    pub resized: usize,
    /// Its scored frames that other systems lack (left out so that all score the same frames).
    pub dropped: usize,
    pub excluded: usize,
}

/// One frame of the picture grid: the frame (when `--gt` is a split), its mask and each
/// system's map, as scored.
pub struct GridFrame {
    pub video: String,
    pub stem: String,
    pub image: Option<PathBuf>,
    pub gt: Map,
    pub preds: Vec<Map>,
}

pub struct Comparison {
    pub systems: Vec<SystemResult>,
    /// Frames scored (the same for every system).
    pub frames: usize,
    pub videos: usize,
    pub grid: Vec<GridFrame>,
}

type Key = (String, String);

/// One frame scored for every system: its video, and per system the scores, whether the
/// prediction was resized and how it was read.
type ScoredFrame<'a> = (&'a str, (Vec<FrameScores>, Vec<bool>, Vec<Reading>));

/// Scores every system on the frames all of them predict (after exclusions), calling
/// `started` with the number of frames once they are paired and `progress` once per frame.
pub fn compare_systems(
    gt: &Path,
    systems: &[System],
    options: &CompareOptions,
    started: &dyn Fn(usize),
    progress: &(dyn Fn() + Sync),
) -> Result<Comparison> {
    if systems.is_empty() {
        bail!("no systems to compare: give --pred NAME=DIR at least once");
    }
    let mut seen = BTreeSet::new();
    for s in systems {
        if !seen.insert(&s.name) {
            bail!(
                "two systems are called {:?}: give each --pred a distinct NAME",
                s.name
            );
        }
    }
    let pair_options = PairOptions {
        strict: false,
        exclude: options.exclude.clone(),
        shard: None,
    };
    let mut paired: Vec<(BTreeMap<Key, FramePair>, String, usize)> = Vec::new();
    for s in systems {
        let pairs = pair_files(&s.pred, gt, &pair_options)
            .with_context(|| format!("system {:?}", s.name))?;
        let frames = pairs
            .frames
            .into_iter()
            .map(|p| ((p.video.clone(), p.stem.clone()), p))
            .collect();
        paired.push((frames, pairs.layout, pairs.excluded));
    }
    let common: Vec<Key> = paired[0]
        .0
        .keys()
        .filter(|k| {
            paired[1..]
                .iter()
                .all(|(frames, ..)| frames.contains_key(*k))
        })
        .cloned()
        .collect();
    if common.is_empty() {
        let counts: Vec<String> = systems
            .iter()
            .zip(&paired)
            .map(|(s, (frames, ..))| {
                let example = frames
                    .keys()
                    .next()
                    .map_or(String::new(), |(v, f)| format!(", e.g. {v}/{f}"));
                format!("{}: {} frames{example}", s.name, frames.len())
            })
            .collect();
        bail!(
            "no frame is predicted by every system (video and file names must match):\n  {}",
            counts.join("\n  ")
        );
    }
    let grid_keys = grid_keys(&common, &options.grid)?;
    started(common.len());

    let n = systems.len();
    let grid_maps: Mutex<BTreeMap<Key, (Map, Vec<Map>)>> = Mutex::new(BTreeMap::new());
    struct Acc {
        recorders: Vec<MetricRecorder>,
        resized: Vec<usize>,
        readings: Vec<BTreeMap<Reading, usize>>,
    }
    let empty = || Acc {
        recorders: vec![MetricRecorder::with_min_leak_area(options.min_leak_area); n],
        resized: vec![0; n],
        readings: vec![BTreeMap::new(); n],
    };
    let acc = common
        .par_iter()
        .map(|key| -> Result<ScoredFrame> {
            let gt_path = &paired[0].0[key].gt;
            let mask = read_mask(gt_path)?;
            // What depends on the mask alone (its distance transform) is computed once.
            let geometry = MaskGeometry::new(mask.view()?);
            let mut scores = Vec::with_capacity(n);
            let mut resized = Vec::with_capacity(n);
            let mut readings = Vec::with_capacity(n);
            let mut maps = Vec::new();
            for (frames, ..) in &paired {
                let pair = &frames[key];
                let size = (mask.width, mask.height);
                let (pred, reading, was_resized) = read_prediction(&pair.pred, options.kind, size)?;
                let area = detection_area(pair, options.kind, size)?;
                scores.push(
                    FrameScores::compute_with_predicted_area(
                        pred.view()?,
                        mask.view()?,
                        &geometry,
                        area,
                    )
                    .with_context(|| format!("scoring {}", pair.pred.display()))?,
                );
                resized.push(was_resized);
                readings.push(reading);
                if grid_keys.contains(key) {
                    maps.push(pred);
                }
            }
            if grid_keys.contains(key) {
                grid_maps
                    .lock()
                    .expect("no panics while holding the lock")
                    .insert(key.clone(), (mask, maps));
            }
            progress();
            Ok((key.0.as_str(), (scores, resized, readings)))
        })
        .try_fold(empty, |mut acc, frame| {
            let (video, (scores, resized, readings)) = frame?;
            for (i, ((s, r), k)) in scores.iter().zip(resized).zip(readings).enumerate() {
                acc.recorders[i].add(video, s);
                acc.resized[i] += r as usize;
                *acc.readings[i].entry(k).or_insert(0) += 1;
            }
            Ok::<_, anyhow::Error>(acc)
        })
        .try_reduce(empty, |mut a, b| {
            for i in 0..n {
                a.recorders[i].merge(&b.recorders[i]);
                a.resized[i] += b.resized[i];
                for (k, c) in &b.readings[i] {
                    *a.readings[i].entry(*k).or_insert(0) += c;
                }
            }
            Ok(a)
        })?;

    let common_set: BTreeSet<&Key> = common.iter().collect();
    let mut results = Vec::with_capacity(n);
    for (i, (system, (frames, layout, excluded))) in systems.iter().zip(&paired).enumerate() {
        let recorder = acc.recorders[i].clone();
        results.push(SystemResult {
            name: system.name.clone(),
            pred: system.pred.clone(),
            layout: layout.clone(),
            report: recorder.results()?,
            curves: recorder.curves()?,
            recorder,
            readings: acc.readings[i].clone(),
            resized: acc.resized[i],
            dropped: frames.keys().filter(|k| !common_set.contains(k)).count(),
            excluded: *excluded,
        });
    }
    let grid = grid_maps
        .into_inner()
        .expect("no panics while holding the lock")
        .into_iter()
        .map(|((video, stem), (gt, preds))| GridFrame {
            image: paired[0].0[&(video.clone(), stem.clone())].image.clone(),
            video,
            stem,
            gt,
            preds,
        })
        .collect();
    let videos = common.iter().map(|k| &k.0).collect::<BTreeSet<_>>().len();
    Ok(Comparison {
        systems: results,
        frames: common.len(),
        videos,
        grid,
    })
}

/// The grid's frames, checked against the common set.
fn grid_keys(common: &[Key], grid: &GridFrames) -> Result<BTreeSet<Key>> {
    match grid {
        GridFrames::None => Ok(BTreeSet::new()),
        GridFrames::These(keys) => {
            let all: BTreeSet<&Key> = common.iter().collect();
            for key in keys {
                if !all.contains(key) {
                    bail!(
                        "--grid-frames {}/{}: not among the frames every system predicts",
                        key.0,
                        key.1
                    );
                }
            }
            Ok(keys.iter().cloned().collect())
        }
        GridFrames::Spread(count) => {
            let mut by_video: BTreeMap<&str, Vec<&Key>> = BTreeMap::new();
            for key in common {
                by_video.entry(&key.0).or_default().push(key);
            }
            let videos: Vec<&Vec<&Key>> = by_video.values().collect();
            let take = (*count).min(videos.len());
            Ok((0..take)
                .map(|i| {
                    // Evenly spread over the videos, each video's middle frame.
                    let frames = videos[i * videos.len() / take];
                    frames[frames.len() / 2].clone()
                })
                .collect())
        }
    }
}
