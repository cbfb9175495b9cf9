//! The streaming API for the models that do not read triplets: ZoomNeXt's video model covers a
//! video with clips (the last one shifted back, the later clip's prediction kept), single-frame
//! models read each frame alone, and every kind's per-frame inputs stack as its forward takes
//! them. Replaying batches through [`GraphReplays`] (emulated here: no GPU) gives the same
//! maps as running them eagerly.

use anyhow::Result;
use fgstp_model::models::feature_cache::{predict_samples, predict_video, stack_samples};
use fgstp_model::models::zoomnext::{plan_clips, zoom_sizes};
use fgstp_model::runtime::cuda_graph::GraphReplays;
use fgstp_model::{Config, Model, ModelKind, PvtV2Variant};
use tch::{nn::VarStore, Device, Kind, Tensor};

fn model(kind: ModelKind) -> (VarStore, Model) {
    tch::manual_seed(7);
    let vs = VarStore::new(Device::Cpu);
    let cfg = Config {
        kind,
        backbone: PvtV2Variant::B0,
        correlation_pools: [1, 1, 1],
        ..Config::default()
    };
    let model = Model::new(&vs.root(), &cfg).unwrap();
    // The temporal branch starts as the identity (its last conv is zero): give it weight, so
    // that a frame's prediction depends on its clip.
    tch::no_grad(|| {
        for (name, mut var) in vs.variables() {
            if name.contains(".temperal_proj") {
                var.copy_(&(Tensor::randn_like(&var) * 0.2));
            }
        }
    });
    (vs, model)
}

/// `n` random frames, each as ZoomNeXt's three zoom scales of a 64 px base.
fn zoom_frames(n: usize) -> Vec<Vec<Tensor>> {
    tch::manual_seed(11);
    (0..n)
        .map(|_| {
            zoom_sizes(64, 64)
                .iter()
                .map(|&(h, w)| Tensor::rand([3, h as i64, w as i64], (Kind::Float, Device::Cpu)))
                .collect()
        })
        .collect()
}

fn copy(frame: &[Tensor]) -> Vec<Tensor> {
    frame.iter().map(Tensor::shallow_clone).collect()
}

fn triplets(n: usize) -> Vec<[usize; 3]> {
    (0..n).map(|t| [t, (t + 1) % n, (t + 2) % n]).collect()
}

/// Runs `predict_video` (with the feature cache) and collects the emitted (position, logits).
fn stream(model: &Model, frames: &[Vec<Tensor>], batch: usize) -> Vec<(usize, Tensor)> {
    stream_with(model, frames, batch, true, None)
}

fn stream_with(
    model: &Model,
    frames: &[Vec<Tensor>],
    batch: usize,
    feature_cache: bool,
    replays: Option<&GraphReplays>,
) -> Vec<(usize, Tensor)> {
    let data: Vec<Vec<Vec<f32>>> = frames
        .iter()
        .map(|f| {
            f.iter()
                .map(|t| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap())
                .collect()
        })
        .collect();
    let shapes: Vec<Vec<Vec<i64>>> = frames
        .iter()
        .map(|f| f.iter().map(Tensor::size).collect())
        .collect();
    let source = |i: usize| -> Result<Vec<Tensor>> {
        Ok(data[i]
            .iter()
            .zip(&shapes[i])
            .map(|(v, s)| Tensor::from_slice(v).view(s.as_slice()))
            .collect())
    };
    let mut out = Vec::new();
    tch::no_grad(|| {
        predict_video(
            model,
            Device::Cpu,
            &source,
            &triplets(frames.len()),
            batch,
            feature_cache,
            replays,
            |position, logits| {
                out.push((position, logits));
                Ok(())
            },
        )
    })
    .unwrap();
    out
}

#[test]
fn zoomnext_video_streams_clips_and_keeps_the_later_clips_prediction() {
    let (_vs, model) = model(ModelKind::ZoomnextVideo);
    let frames = zoom_frames(7); // clips [0..5) and [2..7): frames 2, 3, 4 are in both
    let plan = plan_clips(7, 5).unwrap();
    assert_eq!(plan.clips, [vec![0, 1, 2, 3, 4], vec![2, 3, 4, 5, 6]]);
    // Each clip on its own, as the model's forward takes it.
    let per_clip: Vec<Tensor> = plan
        .clips
        .iter()
        .map(|clip| {
            let sample: Vec<Vec<Tensor>> = clip.iter().map(|&i| copy(&frames[i])).collect();
            predict_samples(&model, Device::Cpu, &[sample]).unwrap()
        })
        .collect();
    // One clip per batch: the same computation, bit for bit.
    let streamed = stream(&model, &frames, 5);
    let positions: Vec<usize> = streamed.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        positions,
        (0..7).collect::<Vec<_>>(),
        "every frame once, in order"
    );
    for (position, logits) in &streamed {
        let (clip, k) = plan.keep[*position];
        let expected = per_clip[clip].narrow(0, k as i64, 1);
        assert!(logits.equal(&expected), "frame {position}");
    }
    // Frames in both clips really depend on the clip (the temporal branch sees the others).
    let first_clip_view = per_clip[0].narrow(0, 2, 1);
    let kept = &streamed[2].1;
    assert!(
        (kept - &first_clip_view).abs().max().double_value(&[]) > 0.0,
        "the kept prediction of frame 2 is the second clip's"
    );
    // Two clips per batch: the same clips, equal to float rounding.
    for ((p, a), (_, b)) in streamed.iter().zip(stream(&model, &frames, 10)) {
        let diff = (a - &b).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "frame {p}: {diff}");
    }
}

#[test]
fn single_frame_models_read_frame_t_alone() {
    let (_vs, model) = model(ModelKind::Zoomnext);
    let frames = zoom_frames(4);
    let streamed = stream(&model, &frames, 1);
    for (position, logits) in streamed {
        let expected =
            predict_samples(&model, Device::Cpu, &[vec![copy(&frames[position])]]).unwrap();
        assert!(logits.equal(&expected), "frame {position}");
        assert_eq!(logits.size(), [1, 1, 64, 64]);
    }
}

#[test]
fn stacking_follows_each_kinds_forward() {
    let frame = |c: i64| vec![Tensor::zeros([c, 32, 32], (Kind::Float, Device::Cpu))];
    // FGSTP: one input per frame of the triplet, [B, 3, H, W].
    let triplet = || vec![frame(3), frame(3), frame(3)];
    let stacked = stack_samples(ModelKind::Fgstp, &[triplet(), triplet()]);
    assert_eq!(stacked.len(), 3);
    assert_eq!(stacked[0].size(), [2, 3, 32, 32]);
    // The long-term SLT-Net: one [4, H, W] frame per sample.
    let stacked = stack_samples(ModelKind::SltNetLong, &[vec![frame(4)], vec![frame(4)]]);
    assert_eq!(stacked.len(), 1);
    assert_eq!(stacked[0].size(), [2, 4, 32, 32]);
    // ZoomNeXt's video model: per scale, the frames of each clip next to each other.
    let clips = [zoom_frames(5), zoom_frames(5)];
    let stacked = stack_samples(ModelKind::ZoomnextVideo, &clips);
    assert_eq!(stacked.len(), 3);
    assert_eq!(stacked[0].size(), [10, 3, 32, 32]);
    assert_eq!(stacked[2].size(), [10, 3, 96, 96]);
    assert!(stacked[1].get(6).equal(&clips[1][1][1]));
}

/// `n` random 64 px frames, one input each (FGSTP).
fn plain_frames(n: usize) -> Vec<Vec<Tensor>> {
    tch::manual_seed(13);
    (0..n)
        .map(|_| vec![Tensor::rand([3, 64, 64], (Kind::Float, Device::Cpu))])
        .collect()
}

#[test]
fn replayed_batches_give_the_eager_maps_with_and_without_the_feature_cache() {
    let (_vs, fgstp) = model(ModelKind::Fgstp);
    let (_vs_zoom, zoomnext) = model(ModelKind::ZoomnextVideo);
    // 9 frames in batches of 2: the shapes of the middle batches repeat, so they are captured
    // and replayed; the first (it encodes two more frames) and the last are seen once.
    let cases = [
        (&fgstp, plain_frames(9), 2, true),
        (&fgstp, plain_frames(9), 2, false),
        (&zoomnext, zoom_frames(12), 5, false),
    ];
    for (model, frames, batch, cache) in cases {
        let kind = model.config().kind;
        let eager = stream_with(model, &frames, batch, cache, None);
        let replays = GraphReplays::emulated(Device::Cpu, GraphReplays::DEFAULT_LIMIT);
        let replayed = stream_with(model, &frames, batch, cache, Some(&replays));
        assert!(
            replays.captured() > 0,
            "{kind:?}, cache {cache}: nothing was replayed"
        );
        assert_eq!(eager.len(), replayed.len());
        for ((p, a), (q, b)) in eager.iter().zip(&replayed) {
            assert_eq!(p, q);
            assert!(
                a.equal(b),
                "{kind:?}, cache {cache}: frame {p} differs when replayed"
            );
        }
    }
}
