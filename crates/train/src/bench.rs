//! `fgstp bench`'s measurements for one run configuration, in one process and with random
//! weights: model size and cost, inference and training speed, data-stream and metric
//! throughput; with a reference checkout, the same against the reference's PyTorch code
//! ([`reference`]).

pub mod reference;

use anyhow::Result;
use fgstp_data::sample::neighbours;
use fgstp_data::{InputSpec, PixelFormat, TrainLoader, TrainSamples};
use fgstp_metrics::{FrameScores, GrayView};
use fgstp_model::models::feature_cache::{predict_video, stack_samples};
use fgstp_model::models::forward_macs;
use fgstp_model::runtime::cuda_graph::{cuda_graphs_built, CudaGraph, GraphReplays};
use fgstp_model::{Model, Precision};
use rayon::prelude::*;
use serde::Serialize;
use std::time::Instant;
use tch::{nn::VarStore, Device, Kind, Tensor};

use crate::recipes::recipe;
use crate::run_config::RunConfig;
use crate::trainer::optim::{Adam, AdamConfig};
use crate::trainer::prepare_data;

/// How long to measure.
#[derive(Clone, Copy, Debug)]
pub struct BenchOptions {
    /// Timed repetitions of each measurement (the median is reported).
    pub repeats: usize,
    /// Frames of the synthetic video timed for video frames/s.
    pub video_frames: usize,
}

/// Stable keys: scripts read these.
#[derive(Serialize)]
pub struct Bench {
    pub config: String,
    pub model: String,
    pub backbone: String,
    /// The input side (square), or the height for `[height, width]` inputs.
    pub input_size: i64,
    pub input_height: i64,
    pub input_width: i64,
    /// What one "triplet" below is for this model: "triplet", "frame" or "clip of N frames"
    /// (the keys keep FGSTP's name).
    pub sample: String,
    pub batch_size: usize,
    pub device: String,
    pub threads: i32,
    pub params_m: f64,
    /// One triplet, each frame encoded (as in training and the reference).
    pub gmacs_per_triplet: f64,
    pub gflops_per_triplet: f64,
    /// One more frame of a video with the feature cache (encoder once per frame); for models
    /// without one, a sample's compute per frame it predicts.
    pub gmacs_per_frame_cached: f64,
    pub forward_ms_per_triplet: f64,
    /// Forward latency per triplet for each numeric mode and computation order, measured in
    /// alternating rounds in this process, with the largest probability difference from the
    /// first (fp32-strict, reference order).
    pub forward_variants: Vec<ForwardVariant>,
    /// Video frames/s with and without the feature cache (equal, measured once, for models
    /// without one: `feature_cache` false).
    pub video_fps_cached: f64,
    pub video_fps_uncached: f64,
    pub cache_speedup: f64,
    /// On CUDA: video frames/s with the feature cache and batches replayed as CUDA graphs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_fps_cached_graphs: Option<f64>,
    pub feature_cache: bool,
    pub train_step_s: f64,
    pub data_triplets_per_s: Option<f64>,
    pub metrics_frames_per_s: f64,
    /// With `--reference CHECKOUT`: the reference timed side by side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<reference::ReferenceComparison>,
}

/// One way of running the eval forward.
#[derive(Serialize, Clone, Debug)]
pub struct ForwardVariant {
    /// e.g. `fp32-strict`, `bf16 fused`, `tf32 fused graph`.
    pub name: String,
    pub precision: String,
    pub fused: bool,
    /// Replayed as a CUDA graph (CUDA only).
    pub cuda_graph: bool,
    pub forward_ms: f64,
    /// Largest |Δ probability| of the fused map against the first variant.
    pub max_prob_diff: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Waits for the GPU's queued work (timings must include it).
fn synchronize(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Median wall time of `repeats` runs of `f`, after one untimed warm-up run.
fn time(repeats: usize, device: Device, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    synchronize(device);
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        f()?;
        synchronize(device);
        times.push(start.elapsed().as_secs_f64());
    }
    Ok(median(times))
}

/// A model of `cfg`'s kind and weights, run as `variant` says.
struct Runner {
    variant: ForwardVariant,
    model: Model,
    _vs: VarStore,
    graph: Option<(CudaGraph, Tensor)>,
}

/// Times the eval forward on `inputs` in every numeric mode (fp32-strict, tf32 where it
/// differs — on CUDA —, bf16), in the reference's order and fused, and replayed as a CUDA
/// graph on CUDA; rounds alternate between variants so that a busy machine slows all alike.
fn forward_variants(
    cfg: &RunConfig,
    weights: &VarStore,
    device: Device,
    inputs: &[Tensor],
    repeats: usize,
) -> Result<Vec<ForwardVariant>> {
    let mut modes = vec![Precision::Fp32Strict];
    if device.is_cuda() {
        modes.push(Precision::Tf32);
    }
    modes.push(Precision::Bf16);
    let refs: Vec<&Tensor> = inputs.iter().collect();
    let mut runners = Vec::new();
    for precision in modes {
        for (fused, graph) in [(false, false), (true, false), (true, true)] {
            if graph && !(device.is_cuda() && cuda_graphs_built()) {
                continue;
            }
            let model_cfg = fgstp_model::Config {
                precision,
                fused,
                ..cfg.model.clone()
            };
            let mut vs = VarStore::new(device);
            let model = Model::new(&vs.root(), &model_cfg)?;
            vs.copy(weights)?;
            let mut name = precision.name().to_string();
            if fused {
                name.push_str(" fused");
            }
            if graph {
                name.push_str(" graph");
            }
            let mut runner = Runner {
                variant: ForwardVariant {
                    name,
                    precision: precision.name().into(),
                    fused,
                    cuda_graph: graph,
                    forward_ms: 0.0,
                    max_prob_diff: 0.0,
                },
                model,
                _vs: vs,
                graph: None,
            };
            if graph {
                precision.set_backend_flags()?;
                // Warm-up outside the capture (cuDNN's algorithm choice, lazy initialisation).
                for _ in 0..3 {
                    let _ = eval_forward(&runner.model, device, &refs)?;
                }
                let (graph, out) =
                    CudaGraph::capture(device, || eval_forward(&runner.model, device, &refs))?;
                runner.graph = Some((graph, out));
            }
            runners.push(runner);
        }
    }
    let run = |runner: &Runner| -> Result<Tensor> {
        let precision: Precision = runner.variant.precision.parse()?;
        precision.set_backend_flags()?;
        match &runner.graph {
            Some((graph, out)) => {
                graph.replay()?;
                Ok(out.shallow_clone())
            }
            None => eval_forward(&runner.model, device, &refs),
        }
    };
    let reference = run(&runners[0])?.sigmoid();
    for runner in &mut runners {
        let prob = run(runner)?.sigmoid();
        runner.variant.max_prob_diff = (prob - &reference).abs().max().double_value(&[]);
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); runners.len()];
    for _ in 0..repeats.max(1) {
        for (runner, times) in runners.iter().zip(&mut times) {
            let start = Instant::now();
            let out = run(runner)?;
            let _ = out.sum(Kind::Float).double_value(&[]);
            synchronize(device);
            times.push(start.elapsed().as_secs_f64());
        }
    }
    cfg.model.precision.set_backend_flags()?;
    Ok(runners
        .into_iter()
        .zip(times)
        .map(|(runner, times)| ForwardVariant {
            forward_ms: median(times) * 1e3,
            ..runner.variant
        })
        .collect())
}

/// The model's prediction (float32 logits) for one sample, without gradients, in the model's
/// precision.
fn eval_forward(model: &Model, device: Device, inputs: &[&Tensor]) -> Result<Tensor> {
    let out = tch::no_grad(|| {
        model
            .config()
            .precision
            .run(device, || model.forward_t(inputs, false))
    })??;
    Ok(out.prediction().to_kind(Kind::Float))
}

/// Shapes `[C, h, w]` of one frame's model inputs.
fn frame_input_shapes(cfg: &RunConfig, spec: &InputSpec) -> Vec<[i64; 3]> {
    let (h, w) = cfg.data.train_size.hw();
    match spec.pixels {
        PixelFormat::ImageNet => vec![[3, h, w]],
        PixelFormat::UnitRange => vec![[if spec.prior { 4 } else { 3 }, h, w]],
        PixelFormat::ZoomPyramid { sizes } => sizes
            .iter()
            .map(|&(h, w)| [3, i64::from(h), i64::from(w)])
            .collect(),
    }
}

/// Random model inputs of one frame, on the CPU, values in [0, 1].
fn random_frame(shapes: &[[i64; 3]]) -> Vec<Tensor> {
    shapes
        .iter()
        .map(|s| Tensor::rand(s.as_slice(), (Kind::Float, Device::Cpu)))
        .collect()
}

/// Measures `cfg` (`config` names it in the results), printing each stage as it starts.
pub fn run(cfg: &RunConfig, config: &str, opts: BenchOptions) -> Result<Bench> {
    let device = cfg.train.device.resolve()?;
    cfg.model.precision.set_backend_flags()?;
    let (height, width) = cfg.data.train_size.hw();
    let batch = cfg.train.batch_size;
    tch::manual_seed(cfg.train.seed as i64);
    let vs = VarStore::new(device);
    let model = Model::new(&vs.root(), &cfg.model)?;
    let kind = cfg.model.kind;
    let spec = recipe(cfg.model.kind).input_spec(cfg);
    let shapes = frame_input_shapes(cfg, &spec);
    let frames_per_sample = kind.frames();
    let sample = match frames_per_sample {
        1 => "frame".to_string(),
        3 => "triplet".to_string(),
        n => format!("clip of {n} frames"),
    };
    let params: i64 = vs
        .trainable_variables()
        .iter()
        .map(Tensor::numel)
        .map(|n| n as i64)
        .sum();
    let macs = forward_macs(&cfg.model, height, width, false)? as f64;
    // Per video frame: with the feature cache one encoder pass per frame; a clip model's clip
    // covers its frames (ignoring the overlap of a video's last clip).
    let macs_cached = if recipe(kind).has_feature_cache() {
        forward_macs(&cfg.model, height, width, true)? as f64
    } else {
        macs / frames_per_sample.max(1) as f64
    };
    let step = |what: &str| eprintln!("bench: {what}");

    step(&format!("forward latency per {sample}"));
    let one_sample: Vec<Vec<Tensor>> = (0..frames_per_sample)
        .map(|_| random_frame(&shapes))
        .collect();
    let inputs: Vec<Tensor> = stack_samples(kind, &[one_sample])
        .into_iter()
        .map(|t| t.to_device(device))
        .collect();
    let refs: Vec<&Tensor> = inputs.iter().collect();
    let forward_s = time(opts.repeats, device, || {
        eval_forward(&model, device, &refs).map(|out| {
            let _ = out.sum(Kind::Float).double_value(&[]);
        })
    })?;
    step("forward latency per numeric mode and computation order");
    let variants = forward_variants(cfg, &vs, device, &inputs, opts.repeats)?;

    step("video frames/s with and without the feature cache");
    let n = opts.video_frames.max(3);
    // Decoded frames in memory (tensors are not shareable across threads): this times the
    // model, not the disk.
    let video: Vec<Vec<Vec<f32>>> = (0..n)
        .map(|_| {
            random_frame(&shapes)
                .iter()
                .map(|t| Vec::<f32>::try_from(t.flatten(0, -1)))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<_, _>>()?;
    let source = |i: usize| {
        Ok(video[i]
            .iter()
            .zip(&shapes)
            .map(|(v, s)| Tensor::from_slice(v).view(s.as_slice()))
            .collect())
    };
    let triplets: Vec<[usize; 3]> = (0..n)
        .map(|t| {
            let [a, b] = neighbours(t, n);
            [t, a, b]
        })
        .collect();
    // Models without a feature cache run the same path either way: measured once.
    let cache_modes: &[(usize, bool)] = if recipe(kind).has_feature_cache() {
        &[(0, true), (1, false)]
    } else {
        &[(0, true)]
    };
    let play = |cache: bool, replays: Option<&GraphReplays>| {
        tch::no_grad(|| {
            predict_video(
                &model,
                device,
                &source,
                &triplets,
                cfg.data.eval_batch_size,
                cache,
                replays,
                |_, logits| {
                    let _ = logits.sum(Kind::Float).double_value(&[]);
                    Ok(())
                },
            )
        })
    };
    let mut fps = [0.0; 2];
    for &(slot, cache) in cache_modes {
        let seconds = time(opts.repeats, device, || play(cache, None))?;
        fps[slot] = n as f64 / seconds;
    }
    if !kind.has_feature_cache() {
        fps[1] = fps[0];
    }
    // On CUDA, the cached path again with batches replayed as graphs (`eval.cuda_graphs`):
    // one untimed pass sees each shape, `time`'s warm-up pass captures them.
    let fps_graphs = if device.is_cuda() && cuda_graphs_built() {
        step("video frames/s with the feature cache, replayed as CUDA graphs");
        let replays = GraphReplays::cuda(device, GraphReplays::DEFAULT_LIMIT)?;
        play(true, Some(&replays))?;
        let seconds = time(opts.repeats, device, || play(true, Some(&replays)))?;
        Some(n as f64 / seconds)
    } else {
        if device.is_cuda() {
            eprintln!(
                "bench: this build cannot capture CUDA graphs (no CUDA headers at build time)"
            );
        }
        None
    };

    step(&format!("training step at batch {batch}"));
    let mut adam = Adam::new(&vs, AdamConfig::default());
    // A training sample: a triplet, a frame, or a clip (`train.clip_frames` for the long-term
    // SLT-Net), with a mask per supervised frame.
    let train_frames = spec.frames_per_sample();
    let samples: Vec<Vec<Vec<Tensor>>> = (0..batch)
        .map(|_| (0..train_frames).map(|_| random_frame(&shapes)).collect())
        .collect();
    let frames: Vec<Tensor> = if spec.train == TrainSamples::Triplets {
        stack_samples(kind, &samples)
    } else {
        // ZoomNeXt: [B·F, 3, h, w] per scale; the long-term SLT-Net: [B, F, 4, H, W].
        (0..shapes.len())
            .map(|j| {
                let parts: Vec<&Tensor> = samples.iter().flatten().map(|f| &f[j]).collect();
                let stacked = Tensor::stack(&parts, 0);
                match recipe(cfg.model.kind).training_clip(cfg) {
                    Some(t) => stacked.unflatten(0, [batch as i64, t as i64]),
                    None => stacked,
                }
            })
            .collect()
    }
    .into_iter()
    .map(|t| t.to_device(device))
    .collect();
    let supervised = match spec.train {
        TrainSamples::Clips { len, .. } => batch * len,
        _ => batch,
    };
    let mask = Tensor::rand([supervised as i64, 1, height, width], (Kind::Float, device))
        .gt(0.9)
        .to_kind(Kind::Float);
    let train_refs: Vec<&Tensor> = frames.iter().collect();
    let train_s = time(opts.repeats, device, || {
        adam.zero_grad()?;
        let (loss, _) = cfg.model.precision.run(device, || {
            let out = model.forward_t(&train_refs, true)?;
            // Mid-training (ZoomNeXt's uncertainty ramp at half weight).
            anyhow::Ok(recipe(cfg.model.kind).loss(
                &out,
                &mask,
                crate::loss::LossTerms::for_epoch(&cfg.train, cfg.train.epochs),
                0.5,
            ))
        })??;
        loss.backward();
        if cfg.train.clip > 0.0 {
            adam.clip_grad_value(cfg.train.clip)?;
        }
        adam.step()?;
        Ok(())
    })?;

    step("data stream");
    let data_rate = match prepare_data(cfg).and_then(|()| {
        Ok(TrainLoader::open_with(
            &cfg.data,
            cfg.train.sampling(),
            &spec,
        )?)
    }) {
        Ok(loader) => {
            let batches = loader.batches_per_epoch().min(8);
            let start = Instant::now();
            let mut triplets = 0;
            for b in loader.epoch(1).take(batches) {
                triplets += b?.samples.len();
            }
            Some(triplets as f64 / start.elapsed().as_secs_f64())
        }
        Err(err) => {
            eprintln!("bench: no data stream measured ({err:#})");
            None
        }
    };

    step("metric suite");
    let (w, h) = (width as usize, height as usize);
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..64u32)
        .map(|seed| {
            let pred = (0..w * h)
                .map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 24) as u8)
                .collect();
            let gt = (0..w * h)
                .map(|i| {
                    if (i % w) < w / 3 + seed as usize % 7 {
                        255
                    } else {
                        0
                    }
                })
                .collect();
            (pred, gt)
        })
        .collect();
    let start = Instant::now();
    pairs
        .par_iter()
        .map(|(p, g)| {
            FrameScores::compute(GrayView::new(p, w, h)?, GrayView::new(g, w, h)?).map(|_| ())
        })
        .collect::<Result<Vec<()>, _>>()?;
    let metrics_fps = pairs.len() as f64 / start.elapsed().as_secs_f64();

    let bench = Bench {
        config: config.to_string(),
        model: recipe(kind).about().name.to_string(),
        backbone: cfg.model.backbone.name().to_string(),
        input_size: height,
        input_height: height,
        input_width: width,
        sample,
        batch_size: batch,
        device: format!("{device:?}").to_lowercase(),
        threads: tch::get_num_threads(),
        params_m: params as f64 / 1e6,
        gmacs_per_triplet: macs / 1e9,
        gflops_per_triplet: 2.0 * macs / 1e9,
        gmacs_per_frame_cached: macs_cached / 1e9,
        forward_ms_per_triplet: forward_s * 1e3,
        forward_variants: variants,
        video_fps_cached: fps[0],
        video_fps_uncached: fps[1],
        cache_speedup: fps[0] / fps[1],
        video_fps_cached_graphs: fps_graphs,
        feature_cache: recipe(kind).has_feature_cache(),
        train_step_s: train_s,
        data_triplets_per_s: data_rate,
        metrics_frames_per_s: metrics_fps,
        reference: None,
    };
    Ok(bench)
}
