//! The model's streaming API: predictions for a video's frame-index triplets, as logits at the
//! model's input size, computed with or without the feature cache.
//!
//! With the cache, each frame goes through the encoder once and its features serve all (up to
//! three) triplets that contain it; the reference encodes every frame of every triplet, three
//! times per frame. Both paths give the same maps (tested).

use anyhow::{Context, Result};
use rayon::prelude::*;
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

use crate::{Features, Model};

/// Loads frame `index` of the current video as a model input `[3, S, S]` (normalised, CPU).
/// Called from several threads at once: frames of a batch are decoded in parallel.
pub trait FrameSource: Sync {
    fn frame(&self, index: usize) -> Result<Tensor>;
}

impl<F: Fn(usize) -> Result<Tensor> + Sync> FrameSource for F {
    fn frame(&self, index: usize) -> Result<Tensor> {
        self(index)
    }
}

/// Predicts `triplets` of one video — frame indices (t, first neighbour, second neighbour),
/// sorted by t — in chunks of `batch`, calling `emit(position in triplets, logits [1, 1, S, S])`
/// in order. Single-frame models read only t.
pub fn predict_video(
    model: &Model,
    device: Device,
    frames: &dyn FrameSource,
    triplets: &[[usize; 3]],
    batch: usize,
    feature_cache: bool,
    mut emit: impl FnMut(usize, Tensor) -> Result<()>,
) -> Result<()> {
    let batch = batch.max(1);
    let precision = model.config().precision;
    // Under bf16 autocast the maps come out in bfloat16; what is emitted is float32.
    let float = |t: Tensor| t.to_kind(Kind::Float);
    // Models that can encode a frame once and decode triplets from its features.
    type Encode<'a> = Box<dyn Fn(&Tensor) -> Result<Features> + 'a>;
    type Decode<'a> = Box<dyn Fn(&Features, &Features, &Features) -> Result<Tensor> + 'a>;
    let streaming: Option<(Encode, Decode)> = match model {
        Model::Fgstp(m) => Some((
            Box::new(|x| m.encode(x, false)),
            Box::new(|a, b, c| Ok(m.forward_features(a, b, c, false)?.fused)),
        )),
        _ => None,
    };
    match streaming {
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
                        .map(|&i| frames.frame(i))
                        .collect::<Result<Vec<_>>>()?;
                    let stacked = Tensor::stack(&inputs, 0).to_device(device);
                    let features = precision.run(device, || encode(&stacked))??;
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
                let fused = precision.run(device, || decode(&slot(0), &slot(1), &slot(2)))??;
                let fused = float(fused);
                for row in 0..chunk.len() {
                    emit(c * batch + row, fused.narrow(0, row as i64, 1))?;
                }
                // Later samples only look back two frames from their own.
                let oldest_needed = chunk.last().map_or(0, |s| s[0].saturating_sub(2));
                cache.retain(|&i, _| i >= oldest_needed);
            }
        }
        _ => {
            let slots = model.config().kind.frames();
            for (c, chunk) in triplets.chunks(batch).enumerate() {
                let mut inputs = Vec::with_capacity(slots);
                for k in 0..slots {
                    let per_sample = chunk
                        .par_iter()
                        .map(|s| frames.frame(s[k]))
                        .collect::<Result<Vec<_>>>()?;
                    inputs.push(Tensor::stack(&per_sample, 0).to_device(device));
                }
                let refs: Vec<&Tensor> = inputs.iter().collect();
                let out = precision.run(device, || model.forward_t(&refs, false))??;
                let prediction = float(out.prediction().shallow_clone());
                for row in 0..chunk.len() {
                    emit(c * batch + row, prediction.narrow(0, row as i64, 1))?;
                }
            }
        }
    }
    Ok(())
}

/// Logits `[1, 1, S, S]` → sigmoid probabilities at `(width, height)`, resized bilinearly with
/// `align_corners = False` as the reference's `test.py` does (resize, then sigmoid).
pub fn probability_at(logits: &Tensor, width: u32, height: u32) -> Result<Vec<f32>> {
    let resized =
        logits.upsample_bilinear2d([i64::from(height), i64::from(width)], false, None, None);
    let prob = resized.sigmoid().to_device(Device::Cpu).flatten(0, -1);
    Vec::<f32>::try_from(&prob).context("cannot read the prediction back from libtorch")
}
