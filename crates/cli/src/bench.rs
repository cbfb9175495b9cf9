//! `fgstp bench`'s measurements for one run configuration, in one process and with random
//! weights: model size and cost, inference and training speed, data-stream and metric
//! throughput.

use anyhow::Result;
use fgstp_data::sample::neighbours;
use fgstp_data::TrainLoader;
use fgstp_metrics::{FrameScores, GrayView};
use fgstp_model::complexity::forward_macs;
use fgstp_model::streaming::predict_video;
use fgstp_model::Model;
use rayon::prelude::*;
use serde::Serialize;
use std::time::Instant;
use tch::{nn::VarStore, Device, Kind, Tensor};

use crate::run_config::RunConfig;
use crate::train::loss::total_loss;
use crate::train::optim::{Adam, AdamConfig};
use crate::train::prepare_data;

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
    pub input_size: i64,
    pub batch_size: usize,
    pub device: String,
    pub threads: i32,
    pub params_m: f64,
    /// One triplet, each frame encoded (as in training and the reference).
    pub gmacs_per_triplet: f64,
    pub gflops_per_triplet: f64,
    /// One more frame of a video with the feature cache (encoder once per frame).
    pub gmacs_per_frame_cached: f64,
    pub forward_ms_per_triplet: f64,
    pub video_fps_cached: f64,
    pub video_fps_uncached: f64,
    pub cache_speedup: f64,
    pub train_step_s: f64,
    pub data_triplets_per_s: Option<f64>,
    pub metrics_frames_per_s: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median wall time of `repeats` runs of `f`, after one untimed warm-up run.
fn time(repeats: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64());
    }
    Ok(median(times))
}

/// Measures `cfg` (`config` names it in the results), printing each stage as it starts.
pub fn run(cfg: &RunConfig, config: &str, opts: BenchOptions) -> Result<Bench> {
    let device = cfg.train.device.resolve()?;
    let size = i64::from(cfg.data.train_size);
    let batch = cfg.train.batch_size;
    tch::manual_seed(cfg.train.seed as i64);
    let vs = VarStore::new(device);
    let model = Model::new(&vs.root(), &cfg.model)?;
    let frames_per_sample = cfg.model.kind.frames();
    let params: i64 = vs
        .trainable_variables()
        .iter()
        .map(Tensor::numel)
        .map(|n| n as i64)
        .sum();
    let macs = forward_macs(&cfg.model, size, size, false) as f64;
    let macs_cached = forward_macs(&cfg.model, size, size, true) as f64;
    let step = |what: &str| eprintln!("bench: {what}");

    step("forward latency per triplet");
    let inputs: Vec<Tensor> = (0..frames_per_sample)
        .map(|_| Tensor::randn([1, 3, size, size], (Kind::Float, device)))
        .collect();
    let refs: Vec<&Tensor> = inputs.iter().collect();
    let forward_s = time(opts.repeats, || {
        tch::no_grad(|| model.forward_t(&refs, false)).map(|out| {
            let _ = out.prediction().sum(Kind::Float).double_value(&[]);
        })
    })?;

    step("video frames/s with and without the feature cache");
    let n = opts.video_frames.max(3);
    // Decoded frames in memory (tensors are not shareable across threads): this times the
    // model, not the disk.
    let video: Vec<Vec<f32>> = (0..n)
        .map(|_| Vec::<f32>::try_from(Tensor::randn([3 * size * size], (Kind::Float, Device::Cpu))))
        .collect::<Result<_, _>>()?;
    let source = |i: usize| Ok(Tensor::from_slice(&video[i]).view([3, size, size]));
    let triplets: Vec<[usize; 3]> = (0..n)
        .map(|t| {
            let [a, b] = neighbours(t, n);
            [t, a, b]
        })
        .collect();
    let mut fps = [0.0; 2];
    for (slot, cache) in [(0, true), (1, false)] {
        let seconds = time(opts.repeats, || {
            tch::no_grad(|| {
                predict_video(
                    &model,
                    device,
                    &source,
                    &triplets,
                    cfg.data.eval_batch_size,
                    cache,
                    |_, logits| {
                        let _ = logits.sum(Kind::Float).double_value(&[]);
                        Ok(())
                    },
                )
            })
        })?;
        fps[slot] = n as f64 / seconds;
    }

    step(&format!("training step at batch {batch}"));
    let mut adam = Adam::new(&vs, AdamConfig::default());
    let frames: Vec<Tensor> = (0..frames_per_sample)
        .map(|_| Tensor::randn([batch as i64, 3, size, size], (Kind::Float, device)))
        .collect();
    let mask = Tensor::rand([batch as i64, 1, size, size], (Kind::Float, device))
        .gt(0.9)
        .to_kind(Kind::Float);
    let train_refs: Vec<&Tensor> = frames.iter().collect();
    let train_s = time(opts.repeats, || {
        let out = model.forward_t(&train_refs, true)?;
        let (loss, _) = total_loss(&out, &mask, cfg.train.bce);
        adam.zero_grad();
        loss.backward();
        adam.clip_grad_value(cfg.train.clip);
        adam.step();
        Ok(())
    })?;

    step("data stream");
    let data_rate = match prepare_data(cfg)
        .and_then(|()| Ok(TrainLoader::open(&cfg.data, cfg.train.sampling())?))
    {
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
    let (w, h) = (size as usize, size as usize);
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
        model: format!("{:?}", cfg.model.kind).to_lowercase(),
        backbone: cfg.model.backbone.name().to_string(),
        input_size: size,
        batch_size: batch,
        device: format!("{device:?}").to_lowercase(),
        threads: tch::get_num_threads(),
        params_m: params as f64 / 1e6,
        gmacs_per_triplet: macs / 1e9,
        gflops_per_triplet: 2.0 * macs / 1e9,
        gmacs_per_frame_cached: macs_cached / 1e9,
        forward_ms_per_triplet: forward_s * 1e3,
        video_fps_cached: fps[0],
        video_fps_uncached: fps[1],
        cache_speedup: fps[0] / fps[1],
        train_step_s: train_s,
        data_triplets_per_s: data_rate,
        metrics_frames_per_s: metrics_fps,
    };
    Ok(bench)
}
