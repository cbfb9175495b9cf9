//! The model's streaming API: predictions for a video's frames, as logits at the model's input
//! size. Each frame t comes as a frame-index triplet (t and its two neighbours); each model reads
//! what it needs:
//!
//! - FGSTP and SLT-Net read the triplet, with or without the feature cache: with it, each frame
//!   goes through the encoder once and its features serve all (up to three) triplets that
//!   contain it; the reference encodes every frame of every triplet, three times per frame. Both
//!   paths give the same maps, bit for bit where libtorch's CPU kernels sum a frame alike in any
//!   batch size (AVX2), to float rounding where they do not (AVX512: 1.5e-7); tested.
//! - Single-frame models (SINet-V2, ZoomNeXt's image model, the long-term SLT-Net as its test
//!   script runs it) read t alone.
//! - ZoomNeXt's video model reads clips of 5 frames that cover the video ([`plan_clips`]: the
//!   last clip shifted back to end on the last frame; a frame in two clips keeps the later
//!   clip's prediction, as the reference scores it).

use anyhow::{Context, Result};
use rayon::prelude::*;
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

use crate::models::clips::plan_clips;
use crate::runtime::cuda_graph::GraphReplays;
use crate::runtime::transfer::upload;
use crate::{Features, Model, ModelKind};

/// Loads frame `index` of the current video as the model's per-frame inputs (CPU): one `[3, S,
/// S]` normalised frame for FGSTP, SLT-Net and SINet-V2, `[4, 256, 448]` (RGB + prior) for the
/// long-term SLT-Net, the three zoom scales for ZoomNeXt. Called from several threads at once:
/// frames of a batch are decoded in parallel.
pub trait FrameSource: Sync {
    fn frame(&self, index: usize) -> Result<Vec<Tensor>>;
}

impl<F: Fn(usize) -> Result<Vec<Tensor>> + Sync> FrameSource for F {
    fn frame(&self, index: usize) -> Result<Vec<Tensor>> {
        self(index)
    }
}

/// The model inputs of a batch of samples, each given as its frames' per-frame inputs
/// (`samples[b][f][j]`: input j of frame f of sample b), stacked as `Model::forward_t` takes
/// them: models that read one input per frame (FGSTP, SLT-Net, SINet-V2, the long-term
/// SLT-Net) get input k = frame k of every sample, `[B, C, H, W]`; ZoomNeXt gets input j = scale
/// j of every frame of every sample, `[B·F, 3, h, w]`, the frames of a sample adjacent.
pub fn stack_samples(kind: ModelKind, samples: &[Vec<Vec<Tensor>>]) -> Vec<Tensor> {
    if kind.inputs() == kind.frames() {
        (0..kind.frames())
            .map(|k| {
                let parts: Vec<&Tensor> = samples.iter().map(|s| &s[k][0]).collect();
                Tensor::stack(&parts, 0)
            })
            .collect()
    } else {
        (0..kind.inputs())
            .map(|j| {
                let parts: Vec<&Tensor> = samples.iter().flatten().map(|f| &f[j]).collect();
                Tensor::stack(&parts, 0)
            })
            .collect()
    }
}

/// The prediction (float32 logits `[N, 1, H, W]`, N = samples × frames per sample) of a batch
/// of samples given as in [`stack_samples`], in the model's precision, without gradients.
pub fn predict_samples(
    model: &Model,
    device: Device,
    samples: &[Vec<Vec<Tensor>>],
) -> Result<Tensor> {
    predict_samples_replayed(model, device, samples, None)
}

/// As [`predict_samples`], replayed through `replays` when given.
fn predict_samples_replayed(
    model: &Model,
    device: Device,
    samples: &[Vec<Vec<Tensor>>],
    replays: Option<&GraphReplays>,
) -> Result<Tensor> {
    let kind = model.config().kind;
    let inputs: Vec<Tensor> = stack_samples(kind, samples)
        .iter()
        .map(|t| upload(t, device))
        .collect::<Result<_>>()?;
    let refs: Vec<&Tensor> = inputs.iter().collect();
    let precision = model.config().precision;
    let forward = |inputs: &[&Tensor]| -> Result<Vec<Tensor>> {
        let out = precision.run(device, || model.forward_t(inputs, false))??;
        Ok(vec![out.prediction().to_kind(Kind::Float)])
    };
    let mut out = tch::no_grad(|| graphed(replays, "forward", &refs, forward))?;
    Ok(out.remove(0))
}

/// Reads the frames of `samples` (frame indices per sample) in parallel.
fn read_samples(frames: &dyn FrameSource, samples: &[Vec<usize>]) -> Result<Vec<Vec<Vec<Tensor>>>> {
    samples
        .par_iter()
        .map(|sample| sample.iter().map(|&i| frames.frame(i)).collect())
        .collect()
}

/// Predicts `triplets` of one video — frame indices (t, first neighbour, second neighbour),
/// sorted by t — in chunks of `batch` frames, calling `emit(position in triplets, logits [1, 1,
/// S, S])` in order. Single-frame models read only t; ZoomNeXt's video model reads the t's in
/// clips (see the module docs). With `replays`, batches of a shape seen before are replayed
/// as CUDA graphs ([`GraphReplays`]).
#[allow(clippy::too_many_arguments)]
pub fn predict_video(
    model: &Model,
    device: Device,
    frames: &dyn FrameSource,
    triplets: &[[usize; 3]],
    batch: usize,
    feature_cache: bool,
    replays: Option<&GraphReplays>,
    mut emit: impl FnMut(usize, Tensor) -> Result<()>,
) -> Result<()> {
    let batch = batch.max(1);
    let precision = model.config().precision;
    // Under bf16 autocast the maps come out in bfloat16; what is emitted is float32.
    let float = |t: Tensor| t.to_kind(Kind::Float);
    // Models that can encode a frame once and decode triplets from its features.
    type Encode<'a> = Box<dyn Fn(&Tensor) -> Result<Features> + 'a>;
    type Decode<'a> = Box<dyn Fn(&Features, &Features, &Features) -> Result<Tensor> + 'a>;
    // (`ModelKind::has_feature_cache` names these kinds.)
    let streaming: Option<(Encode, Decode)> = match model {
        Model::Fgstp(m) => Some((
            Box::new(|x| m.encode(x, false)),
            Box::new(|a, b, c| Ok(m.forward_features(a, b, c, false)?.fused)),
        )),
        _ => None,
    };
    let kind = model.config().kind;
    // The whole forward on a batch of samples (frame indices), read from `frames`.
    let predict_batch = |samples: &[Vec<usize>]| {
        predict_samples_replayed(model, device, &read_samples(frames, samples)?, replays)
    };
    match streaming {
        _ if kind == ModelKind::ZoomnextVideo => {
            let clip_len = kind.frames();
            let plan = plan_clips(triplets.len(), clip_len)?;
            let clips_per_batch = (batch / clip_len).max(1);
            for (c, chunk) in plan.clips.chunks(clips_per_batch).enumerate() {
                let first_clip = c * clips_per_batch;
                let samples: Vec<Vec<usize>> = chunk
                    .iter()
                    .map(|clip| clip.iter().map(|&p| triplets[p][0]).collect())
                    .collect();
                let logits = predict_batch(&samples)?;
                for (k, clip) in chunk.iter().enumerate() {
                    for (position_in_clip, &position) in clip.iter().enumerate() {
                        if plan.keep[position] == (first_clip + k, position_in_clip) {
                            let row = (k * clip_len + position_in_clip) as i64;
                            emit(position, logits.narrow(0, row, 1))?;
                        }
                    }
                }
            }
        }
        Some((encode, decode)) if feature_cache => {
            let mut cache: BTreeMap<usize, Features> = BTreeMap::new();
            for (c, chunk) in triplets.chunks(batch).enumerate() {
                // Encode, in one batch, the frames this chunk needs that are not cached yet.
                let mut missing: Vec<usize> = chunk
                    .iter()
                    .flatten()
                    .copied()
                    .filter(|i| !cache.contains_key(i))
                    .collect();
                missing.sort_unstable();
                missing.dedup();
                if !missing.is_empty() {
                    let inputs = missing
                        .par_iter()
                        .map(|&i| Ok(frames.frame(i)?.remove(0)))
                        .collect::<Result<Vec<_>>>()?;
                    let stacked = upload(&Tensor::stack(&inputs, 0), device)?;
                    let features = graphed(replays, "encode", &[&stacked], |x| {
                        Ok(Vec::from(precision.run(device, || encode(x[0]))??))
                    })?;
                    let features: Features = features
                        .try_into()
                        .map_err(|_| anyhow::anyhow!("the encoder gave other than 3 levels"))?;
                    for (row, &index) in missing.iter().enumerate() {
                        let row = row as i64;
                        cache.insert(index, features.each_ref().map(|f| f.narrow(0, row, 1)));
                    }
                }
                // Features of slot k of every sample in the chunk, batched.
                let slot = |k: usize| -> Features {
                    std::array::from_fn(|level| {
                        let parts: Vec<&Tensor> =
                            chunk.iter().map(|s| &cache[&s[k]][level]).collect();
                        Tensor::cat(&parts, 0)
                    })
                };
                let slots = [slot(0), slot(1), slot(2)];
                let inputs: Vec<&Tensor> = slots.iter().flatten().collect();
                let fused = graphed(replays, "decode", &inputs, |x| {
                    let level =
                        |k: usize| -> Features { [0, 1, 2].map(|l| x[3 * k + l].shallow_clone()) };
                    let fused =
                        precision.run(device, || decode(&level(0), &level(1), &level(2)))??;
                    Ok(vec![float(fused)])
                })?
                .remove(0);
                for row in 0..chunk.len() {
                    emit(c * batch + row, fused.narrow(0, row as i64, 1))?;
                }
                // Later samples only look back two frames from their own.
                let oldest_needed = chunk.last().map_or(0, |s| s[0].saturating_sub(2));
                cache.retain(|&i, _| i >= oldest_needed);
            }
        }
        _ => {
            let slots = kind.frames();
            for (c, chunk) in triplets.chunks(batch).enumerate() {
                let samples: Vec<Vec<usize>> = chunk.iter().map(|s| s[..slots].to_vec()).collect();
                let prediction = predict_batch(&samples)?;
                for row in 0..chunk.len() {
                    emit(c * batch + row, prediction.narrow(0, row as i64, 1))?;
                }
            }
        }
    }
    Ok(())
}

/// `f(inputs)`, through `replays` when given.
fn graphed(
    replays: Option<&GraphReplays>,
    name: &'static str,
    inputs: &[&Tensor],
    f: impl Fn(&[&Tensor]) -> Result<Vec<Tensor>>,
) -> Result<Vec<Tensor>> {
    match replays {
        Some(replays) => replays.run(name, inputs, f),
        None => f(inputs),
    }
}

/// Logits `[1, 1, S, S]` → sigmoid probabilities at `(width, height)`, resized bilinearly with
/// `align_corners = False` as the reference's `test.py` does (resize, then sigmoid).
pub fn probability_at(logits: &Tensor, width: u32, height: u32) -> Result<Vec<f32>> {
    let resized =
        logits.upsample_bilinear2d([i64::from(height), i64::from(width)], false, None, None);
    let prob = resized.sigmoid().to_device(Device::Cpu).flatten(0, -1);
    Vec::<f32>::try_from(&prob).context("cannot read the prediction back from libtorch")
}
