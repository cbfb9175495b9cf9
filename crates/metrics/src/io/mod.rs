//! Scoring folders of PNG files (feature `io`): predictions and masks read as
//! `cv2.imread(path, cv2.IMREAD_GRAYSCALE)` reads them — what PySODMetrics users load with —
//! paired by file name, and scored on all cores into a [`MetricRecorder`].

mod gray;
mod pairing;

pub use gray::read_gray;
pub use pairing::{pair_files, FramePair, Pairs};

use anyhow::{Context, Result};
use image::{imageops, GrayImage};
use rayon::prelude::*;

use crate::{FrameScores, GrayView, MetricRecorder};

/// What scoring a set of pairs gave.
pub struct Scored {
    pub recorder: MetricRecorder,
    /// Predictions of another size than their mask, resized to it (bilinear) before scoring.
    pub resized: usize,
}

/// Scores every pair on the current rayon pool, calling `progress` after each frame. The
/// recorder's totals are exact, so the result is the same on any thread count.
pub fn score_pairs(frames: &[FramePair], progress: &(dyn Fn() + Sync)) -> Result<Scored> {
    let (recorder, resized) = frames
        .par_iter()
        .map(|pair| -> Result<(String, FrameScores, bool)> {
            let gt = read_gray(&pair.gt)?;
            let mut pred = read_gray(&pair.pred)?;
            let resized = pred.dimensions() != gt.dimensions();
            if resized {
                pred = imageops::resize(
                    &pred,
                    gt.width(),
                    gt.height(),
                    imageops::FilterType::Triangle,
                );
            }
            let scores = FrameScores::compute(gray_view(&pred)?, gray_view(&gt)?)
                .with_context(|| format!("scoring {}", pair.pred.display()))?;
            progress();
            Ok((pair.video.clone(), scores, resized))
        })
        .try_fold(
            || (MetricRecorder::new(), 0usize),
            |(mut recorder, mut resized), frame| {
                let (video, scores, was_resized) = frame?;
                recorder.add(&video, &scores);
                resized += was_resized as usize;
                Ok::<_, anyhow::Error>((recorder, resized))
            },
        )
        .try_reduce(
            || (MetricRecorder::new(), 0),
            |(mut a, ra), (b, rb)| {
                a.merge(&b);
                Ok((a, ra + rb))
            },
        )?;
    Ok(Scored { recorder, resized })
}

fn gray_view(img: &GrayImage) -> Result<GrayView<'_>, crate::MetricsError> {
    GrayView::new(img.as_raw(), img.width() as usize, img.height() as usize)
}
