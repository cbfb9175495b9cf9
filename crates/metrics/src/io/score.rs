//! Reading masks and predictions and scoring pairs of them on all cores.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use image::{imageops, GrayImage};
use rayon::prelude::*;

use super::decode::decode_png;
use super::pairing::FramePair;
use super::pred_kind::{prediction_map, PredKind, Reading};
use crate::{Detection, FrameScores, GrayView, MaskGeometry, MetricRecorder, MinLeakArea};

/// An 8-bit grey image owned by the caller of the scorer.
#[derive(Clone, Debug)]
pub struct Map {
    pub pixels: Vec<u8>,
    pub width: usize,
    pub height: usize,
}

impl Map {
    pub fn view(&self) -> Result<GrayView<'_>, crate::MetricsError> {
        GrayView::new(&self.pixels, self.width, self.height)
    }
}

/// A mask as PySODMetrics users read it (`cv2.IMREAD_GRAYSCALE`).
pub fn read_mask(path: &Path) -> Result<Map> {
    let d = decode_png(path)?;
    let (width, height) = (d.width, d.height);
    Ok(Map {
        pixels: d.into_gray(),
        width,
        height,
    })
}

/// A prediction read as `kind` says, resized (bilinear) to `size` when it differs; also
/// returns how it was read and whether it was resized.
pub fn read_prediction(
    path: &Path,
    kind: PredKind,
    size: (usize, usize),
) -> Result<(Map, Reading, bool)> {
    let d = decode_png(path)?;
    let stored = (d.width, d.height);
    let (pixels, reading) = prediction_map(d, kind);
    let (width, height) = size;
    if stored == size {
        return Ok((
            Map {
                pixels,
                width,
                height,
            },
            reading,
            false,
        ));
    }
    let img =
        GrayImage::from_raw(stored.0 as u32, stored.1 as u32, pixels).expect("one value per pixel");
    let resized = imageops::resize(
        &img,
        width as u32,
        height as u32,
        imageops::FilterType::Triangle,
    );
    Ok((
        Map {
            pixels: resized.into_raw(),
            width,
            height,
        },
        reading,
        true,
    ))
}

/// The frame-level detection's predicted area of `pair` when it is counted from another file
/// than the prediction (`pair.detection`, an eval output's binary mask): that file read as
/// `kind` and resized to `size` as the prediction is, then its pixels `>= 128`
/// ([`Detection::map_area`]). `None` when the prediction's own pixels count.
pub fn detection_area(
    pair: &FramePair,
    kind: PredKind,
    size: (usize, usize),
) -> Result<Option<u64>> {
    let Some(path) = &pair.detection else {
        return Ok(None);
    };
    let (mask, _, _) = read_prediction(path, kind, size)?;
    Ok(Some(Detection::map_area(mask.view()?)))
}

/// What scoring a set of pairs gave.
pub struct Scored {
    pub recorder: MetricRecorder,
    /// Predictions of another size than their mask, resized to it (bilinear) before scoring.
    pub resized: usize,
    /// How many predictions were read which way.
    pub readings: BTreeMap<Reading, usize>,
}

/// Scores every pair on the current rayon pool, reading predictions as `kind`, a frame being
/// predicted leak from `min_leak_area` on (pixels `>= 128` of the map as read, or of the
/// pair's `detection` mask: see [`detection_area`]), calling
/// `progress` after each frame. The recorder's totals are exact, so the result is the same on
/// any thread count.
pub fn score_pairs(
    frames: &[FramePair],
    kind: PredKind,
    min_leak_area: MinLeakArea,
    progress: &(dyn Fn() + Sync),
) -> Result<Scored> {
    let empty = || {
        (
            MetricRecorder::with_min_leak_area(min_leak_area),
            0usize,
            BTreeMap::new(),
        )
    };
    let (recorder, resized, readings) = frames
        .par_iter()
        .map(|pair| -> Result<(String, FrameScores, bool, Reading)> {
            let gt = read_mask(&pair.gt)?;
            let (pred, reading, resized) =
                read_prediction(&pair.pred, kind, (gt.width, gt.height))?;
            let area = detection_area(pair, kind, (gt.width, gt.height))?;
            let geometry = MaskGeometry::new(gt.view()?);
            let scores =
                FrameScores::compute_with_predicted_area(pred.view()?, gt.view()?, &geometry, area)
                    .with_context(|| format!("scoring {}", pair.pred.display()))?;
            progress();
            Ok((pair.video.clone(), scores, resized, reading))
        })
        .try_fold(empty, |(mut recorder, mut resized, mut readings), frame| {
            let (video, scores, was_resized, reading) = frame?;
            recorder.add(&video, &scores);
            resized += was_resized as usize;
            *readings.entry(reading).or_insert(0) += 1;
            Ok::<_, anyhow::Error>((recorder, resized, readings))
        })
        .try_reduce(empty, |(mut a, ra, mut ka), (b, rb, kb)| {
            a.merge(&b);
            for (k, n) in kb {
                *ka.entry(k).or_insert(0) += n;
            }
            Ok((a, ra + rb, ka))
        })?;
    Ok(Scored {
        recorder,
        resized,
        readings,
    })
}

/// `readings` as one line per reading, e.g. `500 × palette (P) PNGs: foreground = index ≠ 0`.
pub fn describe_readings(readings: &BTreeMap<Reading, usize>) -> Vec<String> {
    readings
        .iter()
        .map(|(r, n)| format!("{n} × {}", r.describe()))
        .collect()
}
