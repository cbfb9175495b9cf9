//! Validation during training: every frame of the validation split predicted (feature cache as
//! configured), scored with the paper's metrics, and a few samples rendered for TensorBoard.

use anyhow::Result;
use fgstp_data::EvalLoader;
use fgstp_metrics::{MetricRecorder, Report};
use fgstp_model::Model;
use image::{GrayImage, RgbImage};
use std::sync::atomic::{AtomicBool, Ordering};
use tch::Device;

use super::board::Board;
use crate::evaluate::{predict_split, FramePrediction};
use crate::run_config::RunConfig;

/// What a validation came to.
pub enum Validation {
    /// The split's scores (in a distributed job: on rank 0, every rank's videos merged).
    Scored(Report),
    /// `stop` was raised meanwhile.
    Stopped,
    /// This rank's videos were scored and handed to rank 0.
    HandedOver,
}

/// Scores the validation split (`val`: this rank's videos in a distributed job). `gather`
/// takes this process's metric state and returns the whole split's where the report is made
/// (one process: the state itself; distributed: rank 0 merges every rank's, the others get
/// `None`).
#[allow(clippy::too_many_arguments)]
pub fn run(
    model: &Model,
    device: Device,
    val: &EvalLoader,
    cfg: &RunConfig,
    stop: &AtomicBool,
    board: Option<&mut Board>,
    step: u64,
    gather: impl FnOnce(MetricRecorder) -> Result<Option<MetricRecorder>>,
) -> Result<Validation> {
    let wanted = preview_indices(val, cfg.log.images);
    let mut previews: Vec<RgbImage> = Vec::new();
    let mut recorder = MetricRecorder::with_min_leak_area(cfg.eval.min_leak_area);
    let completed = predict_split(model, device, val, cfg, stop, |frame: &FramePrediction| {
        frame.score(&mut recorder)?;
        if wanted.contains(&frame.sample_index) {
            previews.push(preview(frame)?);
        }
        Ok(())
    })?;
    if !completed || stop.load(Ordering::Relaxed) {
        return Ok(Validation::Stopped);
    }
    let Some(recorder) = gather(recorder)? else {
        return Ok(Validation::HandedOver);
    };
    let report = recorder.results()?;
    if let Some(board) = board {
        for (key, value) in report.overall.entries() {
            if let Some(v) = value {
                board.scalar(&format!("val/{key}"), v, step);
            }
        }
        for (i, image) in previews.iter().enumerate() {
            board.image(&format!("val/sample_{i}"), image, step)?;
        }
        board.flush();
    }
    Ok(Validation::Scored(report))
}

/// Up to `n` annotated samples spread over the split (the same ones at every validation).
fn preview_indices(val: &EvalLoader, n: usize) -> Vec<usize> {
    let annotated: Vec<usize> = val
        .samples()
        .iter()
        .enumerate()
        .filter(|(_, s)| s.supervised)
        .map(|(i, _)| i)
        .collect();
    if n == 0 || annotated.is_empty() {
        return Vec::new();
    }
    let n = n.min(annotated.len());
    (0..n).map(|k| annotated[k * annotated.len() / n]).collect()
}

/// frame | mask | prediction, side by side.
fn preview(frame: &FramePrediction) -> Result<RgbImage> {
    let (w, h) = (frame.width, frame.height);
    let mut out = RgbImage::new(3 * w, h);
    image::imageops::replace(&mut out, &frame.image()?, 0, 0);
    let gray = |g: &GrayImage| image::DynamicImage::ImageLuma8(g.clone()).to_rgb8();
    if let Some(mask) = &frame.mask {
        image::imageops::replace(&mut out, &gray(mask), i64::from(w), 0);
    }
    let map = GrayImage::from_raw(w, h, frame.gray_map.clone()).expect("map has the frame's size");
    image::imageops::replace(&mut out, &gray(&map), 2 * i64::from(w), 0);
    Ok(out)
}
