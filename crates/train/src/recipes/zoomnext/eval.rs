//! ZoomNeXt's own evaluation, for `data.protocol = "reference"`. Its test `DataLoader` batches
//! the split's frames (image model: `data.eval_batch_size` frames) or clips (video model:
//! `eval_batch_size / 5` clips, covering each video as [`plan_clips`] does) in order, across
//! video boundaries. The sigmoid maps of a whole batch are min-max normalised *together*
//! (`p − min`, then `/ (max + 1e-8)`, in float32); each kept frame's map is resized to its mask
//! with OpenCV's float INTER_LINEAR and scored as `(p · 255)` truncated to uint8
//! (`main_for_image.py` / `main_for_video.py`, `Evaluator.eval`). With `protocol = "full"` fgstp
//! normalises each frame on its own, as for every other model.

use anyhow::Result;
use fgstp_data::opencv::resize_linear_f32;
use fgstp_data::EvalLoader;
use fgstp_model::models::feature_cache::predict_samples;
use fgstp_model::models::zoomnext::{plan_clips, VIDEO_CLIP_FRAMES};
use fgstp_model::{Model, ModelKind};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use tch::{Device, Kind, Tensor};

/// One model sample: its frames (indices into the loader's samples) and, for each, whether its
/// prediction is the one kept.
struct Unit {
    positions: Vec<usize>,
    keep: Vec<bool>,
}

/// The split's units in order: each sample alone (image model) or the clips of each video.
fn units(loader: &EvalLoader, kind: ModelKind) -> Result<Vec<Unit>> {
    let samples = loader.samples();
    let mut out = Vec::new();
    let mut start = 0;
    while start < samples.len() {
        let scene = samples[start].scene;
        let len = samples[start..]
            .iter()
            .take_while(|s| s.scene == scene)
            .count();
        if kind == ModelKind::ZoomnextVideo {
            let plan = plan_clips(len, VIDEO_CLIP_FRAMES as usize)?;
            for (c, clip) in plan.clips.iter().enumerate() {
                out.push(Unit {
                    positions: clip.iter().map(|&p| start + p).collect(),
                    keep: (0..clip.len())
                        .map(|k| plan.keep[clip[k]] == (c, k))
                        .collect(),
                });
            }
        } else {
            out.extend((start..start + len).map(|p| Unit {
                positions: vec![p],
                keep: vec![true],
            }));
        }
        start += len;
    }
    Ok(out)
}

/// `probs − probs.min()`, then `/ (max + 1e-8)`, over the whole batch, in float32.
pub fn normalise_batch(probabilities: &Tensor) -> Tensor {
    let shifted = probabilities - probabilities.min();
    let scale = shifted.max() + 1e-8;
    shifted / scale
}

/// `(p · 255).astype(np.uint8)` of maps in [0, 1]: truncation.
pub fn to_uint8_truncated(map: &[f32]) -> Vec<u8> {
    map.iter().map(|&v| (v * 255.0) as u8).collect()
}

/// Predicts every sample of `loader` the reference's way (see the module docs), in batches of
/// `batch_size` frames, calling `emit(sample index, probability map, 8-bit map)` for each
/// sample, both at the frame's size. Returns `false` if `stop` was raised before the end.
pub fn predict_split(
    model: &Model,
    device: Device,
    loader: &EvalLoader,
    batch_size: usize,
    stop: &AtomicBool,
    mut emit: impl FnMut(usize, Vec<f32>, Vec<u8>) -> Result<()>,
) -> Result<bool> {
    let kind = model.config().kind;
    let units = units(loader, kind)?;
    let per_batch = match kind {
        ModelKind::ZoomnextVideo => (batch_size / VIDEO_CLIP_FRAMES as usize).max(1),
        _ => batch_size.max(1),
    };
    let samples = loader.samples();
    let split = loader.split();
    for chunk in units.chunks(per_batch) {
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let inputs: Vec<Vec<Vec<Tensor>>> = chunk
            .par_iter()
            .map(|unit| {
                unit.positions
                    .iter()
                    .map(|&p| {
                        let s = &samples[p];
                        Ok(loader.model_inputs(s.scene, s.frames[0])?)
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<_>>()?;
        let logits = tch::no_grad(|| predict_samples(model, device, &inputs))?;
        let normalised = normalise_batch(&logits.sigmoid().to_device(Device::Cpu));
        let mut row = 0;
        for unit in chunk {
            for (&position, &keep) in unit.positions.iter().zip(&unit.keep) {
                let map = normalised.get(row).squeeze_dim(0); // [h, w]
                row += 1;
                if !keep {
                    continue;
                }
                let scene = &split.scenes[samples[position].scene];
                let (h, w) = (map.size()[0] as usize, map.size()[1] as usize);
                let values = Vec::<f32>::try_from(map.flatten(0, -1).to_kind(Kind::Float))?;
                let prob = resize_linear_f32(
                    &values,
                    (h, w),
                    (scene.height as usize, scene.width as usize),
                )?;
                let gray = to_uint8_truncated(&prob);
                emit(position, prob, gray)?;
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_normalised_together_not_per_frame() {
        // Two frames: one spans [0.2, 0.6], the other [0.4, 0.5].
        let batch = Tensor::from_slice(&[0.2f32, 0.6, 0.4, 0.5]).view([2, 1, 1, 2]);
        let got = Vec::<f32>::try_from(normalise_batch(&batch).flatten(0, -1)).unwrap();
        let expected = [0.0, 1.0, 0.5, 0.75];
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() < 1e-6, "{got:?}");
        }
        // Per frame the second would span [0, 1]; over the batch it keeps its place. NumPy, in
        // float32 as the reference: [0, 1, 0.49999997, 0.74999994] → [0, 255, 127, 191].
        assert_eq!(got, [0.0, 1.0, 0.49999997, 0.74999994]);
        assert_eq!(to_uint8_truncated(&got), [0, 255, 127, 191]);
    }
}
