//! `fgstp bench`: model size and cost, inference and training speed, data-stream and metric
//! throughput, for one run configuration, measured in one process.

use anyhow::{Context, Result};
use fgstp_cli::complexity::forward_macs;
use fgstp_cli::predict::predict_video;
use fgstp_cli::run_config::RunConfig;
use fgstp_cli::train::loss::structure_loss;
use fgstp_cli::train::optim::{Adam, AdamConfig};
use fgstp_data::sample::{neighbours, SampleRef};
use fgstp_data::TrainLoader;
use fgstp_metrics::{FrameScores, GrayView};
use fgstp_model::Model;
use rayon::prelude::*;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;
use tch::{nn::VarStore, Device, Kind, Tensor};

#[derive(clap::Args)]
pub struct Args {
    /// Run configuration (TOML): model, input size, batch size, device
    #[arg(long, short, value_name = "FILE")]
    config: PathBuf,
    /// Override a configuration field (repeatable), e.g. --set train.batch_size=2
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Write the results as JSON
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Timed repetitions of each measurement (the median is reported)
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Frames of the synthetic video timed for video frames/s
    #[arg(long, default_value_t = 12)]
    video_frames: usize,
}

/// Stable keys: scripts read these.
#[derive(Serialize)]
struct Bench {
    config: String,
    model: String,
    backbone: String,
    input_size: i64,
    batch_size: usize,
    device: String,
    threads: i32,
    params_m: f64,
    /// One triplet, each frame encoded (as in training and the reference).
    gmacs_per_triplet: f64,
    gflops_per_triplet: f64,
    /// One more frame of a video with the feature cache (encoder once per frame).
    gmacs_per_frame_cached: f64,
    forward_ms_per_triplet: f64,
    video_fps_cached: f64,
    video_fps_uncached: f64,
    cache_speedup: f64,
    train_step_s: f64,
    data_triplets_per_s: Option<f64>,
    metrics_frames_per_s: f64,
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

pub fn run(args: Args) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "bench: this fgstp is a dev build (debug assertions on): the model stages run at full \
             speed inside libtorch, the data and metric stages a little slower. For reference \
             numbers: FGSTP_PROFILE=release scripts/fgstp bench ..."
        );
    }
    let cfg = RunConfig::load(&args.config, &args.sets)?;
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
    let forward_s = time(args.repeats, || {
        tch::no_grad(|| model.forward_t(&refs, false)).map(|out| {
            let _ = out.prediction().sum(Kind::Float).double_value(&[]);
        })
    })?;

    step("video frames/s with and without the feature cache");
    let n = args.video_frames.max(3);
    // Decoded frames in memory (tensors are not shareable across threads): this times the
    // model, not the disk.
    let video: Vec<Vec<f32>> = (0..n)
        .map(|_| Vec::<f32>::try_from(Tensor::randn([3 * size * size], (Kind::Float, Device::Cpu))))
        .collect::<Result<_, _>>()?;
    let source = |i: usize| Ok(Tensor::from_slice(&video[i]).view([3, size, size]));
    let samples: Vec<SampleRef> = (0..n)
        .map(|t| {
            let [a, b] = neighbours(t, n);
            SampleRef {
                scene: 0,
                frames: [t, a, b],
                supervised: false,
            }
        })
        .collect();
    let mut fps = [0.0; 2];
    for (slot, cache) in [(0, true), (1, false)] {
        let seconds = time(args.repeats, || {
            tch::no_grad(|| {
                predict_video(
                    &model,
                    device,
                    &source,
                    &samples,
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
    let train_s = time(args.repeats, || {
        let out = model.forward_t(&train_refs, true)?;
        let loss = out
            .maps()
            .into_iter()
            .map(|m| structure_loss(m, &mask, cfg.train.bce))
            .fold(Tensor::zeros([], (Kind::Float, device)), |a, b| a + b);
        adam.zero_grad();
        loss.backward();
        adam.clip_grad_value(cfg.train.clip);
        adam.step();
        Ok(())
    })?;

    step("data stream");
    let data_rate =
        match fgstp_cli::prepare_data(&cfg).and_then(|()| Ok(TrainLoader::open(&cfg.data)?)) {
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
        config: args.config.display().to_string(),
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
    print_table(&bench);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&bench)? + "\n";
        fgstp_cli::fsutil::write_atomic(path, text.as_bytes())
            .context("cannot write the bench JSON")?;
    }
    Ok(())
}

fn print_table(b: &Bench) {
    let rows: [(&str, String); 13] = [
        (
            "model",
            format!(
                "{} ({}), {}×{} px, batch {}",
                b.model, b.backbone, b.input_size, b.input_size, b.batch_size
            ),
        ),
        ("device", format!("{}, {} threads", b.device, b.threads)),
        ("parameters", format!("{:.2} M", b.params_m)),
        (
            "compute per triplet",
            format!(
                "{:.2} GMACs ({:.2} GFLOPs)",
                b.gmacs_per_triplet, b.gflops_per_triplet
            ),
        ),
        (
            "compute per video frame",
            format!(
                "{:.2} GMACs with the feature cache",
                b.gmacs_per_frame_cached
            ),
        ),
        (
            "forward latency",
            format!("{:.1} ms per triplet", b.forward_ms_per_triplet),
        ),
        (
            "video, feature cache",
            format!("{:.2} frames/s", b.video_fps_cached),
        ),
        (
            "video, no cache",
            format!("{:.2} frames/s", b.video_fps_uncached),
        ),
        ("cache speed-up", format!("{:.2}×", b.cache_speedup)),
        (
            "training step",
            format!("{:.2} s at batch {}", b.train_step_s, b.batch_size),
        ),
        (
            "data stream",
            b.data_triplets_per_s
                .map_or("not measured (no dataset)".into(), |r| {
                    format!("{r:.1} triplets/s")
                }),
        ),
        (
            "metric suite",
            format!(
                "{:.1} frames/s at {s}×{s}",
                b.metrics_frames_per_s,
                s = b.input_size
            ),
        ),
        (
            "reproduce",
            format!("fgstp --threads {} bench --config {}", b.threads, b.config),
        ),
    ];
    for (name, value) in rows {
        println!("{name:<24} {value}");
    }
}
