//! A trained model over a dataset split: every sample predicted (feature cache as configured),
//! resized to its frame's original size as the reference's `test.py` does, and handed over
//! frame by frame to be scored with the paper's metrics or written out.

use anyhow::Result;
use fgstp_data::dataset::{Scene, Split};
use fgstp_data::{EvalLoader, Protocol, SixteenBit};
use fgstp_metrics::{to_gray_map, GrayView, MetricRecorder, Shard};
use fgstp_model::models::feature_cache::{predict_video, probability_at};
use fgstp_model::runtime::cuda_graph::GraphReplays;
use fgstp_model::Model;
use image::{GrayImage, RgbImage};
use std::sync::atomic::{AtomicBool, Ordering};
use tch::Device;

use crate::recipes::recipe;
use crate::run_config::RunConfig;

/// One predicted frame, at its original size.
pub struct FramePrediction<'a> {
    /// Index into the loader's samples.
    pub sample_index: usize,
    pub scene: &'a Scene,
    /// Frame index within the scene.
    pub frame: usize,
    pub width: u32,
    pub height: u32,
    /// Sigmoid probabilities, row-major.
    pub prob: Vec<f32>,
    /// What the SOD metrics score (see [`fgstp_metrics::to_gray_map`]).
    pub gray_map: Vec<u8>,
    /// The binarised mask, if the frame is annotated.
    pub mask: Option<GrayImage>,
    sixteen_bit: SixteenBit,
}

impl FramePrediction<'_> {
    /// The frame itself (8-bit RGB, original size), decoded on demand.
    pub fn image(&self) -> Result<RgbImage> {
        Ok(self.scene.load_frame(self.frame, self.sixteen_bit)?)
    }

    /// Scores the frame into `recorder` if it is annotated.
    pub fn score(&self, recorder: &mut MetricRecorder) -> Result<()> {
        if let Some(mask) = &self.mask {
            let (w, h) = (self.width as usize, self.height as usize);
            recorder.step_with_probability(
                &self.scene.name,
                GrayView::new(&self.gray_map, w, h)?,
                &self.prob,
                GrayView::new(mask.as_raw(), mask.width() as usize, mask.height() as usize)?,
            )?;
        }
        Ok(())
    }
}

/// Only `shard`'s videos of `split`, for job arrays: video *i*, in byte order of the names, is
/// in shard *i* mod N — the rule of `fgstp metrics --shard` ([`Shard::select`]), so that a
/// model's shards and another system's shards hold the same videos.
pub fn shard_split(mut split: Split, shard: Shard) -> Split {
    let scenes = std::mem::take(&mut split.scenes);
    split.scenes = shard.select(scenes, |scene| scene.name.clone());
    split
}

#[derive(Debug)]
struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Predicts every sample of `loader` (video by video, in order) and hands each frame to
/// `on_frame`. Returns `false` if `stop` was raised before the end. Under
/// `protocol = "reference"` a kind with its own evaluation ([`Recipe::reference_evaluation`],
/// ZoomNeXt's batch normalisation) goes through it.
pub fn predict_split(
    model: &Model,
    device: Device,
    loader: &EvalLoader,
    cfg: &RunConfig,
    stop: &AtomicBool,
    mut on_frame: impl FnMut(&FramePrediction) -> Result<()>,
) -> Result<bool> {
    let samples = loader.samples();
    let split = loader.split();
    let frame_prediction = |position: usize, prob: Vec<f32>, gray_map: Vec<u8>| {
        let sample = &samples[position];
        let scene = &split.scenes[sample.scene];
        let t = sample.frames[0];
        let mask = match &scene.frames[t].mask {
            Some(path) => Some(fgstp_data::decode::load_mask(path)?),
            None => None,
        };
        anyhow::Ok(FramePrediction {
            sample_index: position,
            scene,
            frame: t,
            width: scene.width,
            height: scene.height,
            prob,
            gray_map,
            mask,
            sixteen_bit: cfg.data.sixteen_bit,
        })
    };
    if cfg.data.protocol == Protocol::Reference {
        let mut sink = |position, prob, gray| on_frame(&frame_prediction(position, prob, gray)?);
        if let Some(done) =
            recipe(cfg.model.kind).reference_evaluation(model, device, loader, cfg, stop, &mut sink)
        {
            return done;
        }
    }
    let replays = graph_replays(cfg, device, GraphReplays::DEFAULT_LIMIT)?;
    let mut start = 0;
    while start < samples.len() {
        let scene_index = samples[start].scene;
        let video = &samples[start..];
        let len = video.iter().take_while(|s| s.scene == scene_index).count();
        let video = &video[..len];
        let scene = &split.scenes[scene_index];
        let source = |frame: usize| Ok(loader.model_inputs(scene_index, frame)?);
        let triplets: Vec<[usize; 3]> = video.iter().map(|s| s.frames).collect();
        let result = tch::no_grad(|| {
            predict_video(
                model,
                device,
                &source,
                &triplets,
                cfg.data.eval_batch_size,
                cfg.eval.feature_cache,
                replays.as_ref(),
                |position, logits| {
                    if stop.load(Ordering::Relaxed) {
                        return Err(Interrupted.into());
                    }
                    let prob = probability_at(&logits, scene.width, scene.height)?;
                    let gray_map = to_gray_map(&prob);
                    on_frame(&frame_prediction(start + position, prob, gray_map)?)
                },
            )
        });
        match result {
            Ok(()) => {}
            Err(err) if err.is::<Interrupted>() => return Ok(false),
            Err(err) => return Err(err),
        }
        start += len;
    }
    Ok(true)
}

/// CUDA graphs (at most `limit` kept) when `eval.cuda_graphs` asks for them and the device is
/// a GPU; elsewhere a note (once per process) and none.
pub(crate) fn graph_replays(
    cfg: &RunConfig,
    device: Device,
    limit: usize,
) -> Result<Option<GraphReplays>> {
    if !cfg.eval.cuda_graphs {
        return Ok(None);
    }
    if !device.is_cuda() {
        static NOTE: std::sync::Once = std::sync::Once::new();
        NOTE.call_once(|| {
            eprintln!(
                "note: eval.cuda_graphs needs a CUDA device; running on {} without graphs",
                format!("{device:?}").to_lowercase()
            )
        });
        return Ok(None);
    }
    Ok(Some(GraphReplays::cuda(device, limit)?))
}
