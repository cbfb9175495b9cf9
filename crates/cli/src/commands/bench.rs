//! `fgstp bench`: model size and cost, inference and training speed, data-stream and metric
//! throughput, for one run configuration, measured in one process.

use anyhow::{Context, Result};
use fgstp_train::bench::reference::ReferenceComparison;
use fgstp_train::bench::{self, Bench, BenchOptions};
use fgstp_train::run_config::RunConfig;
use std::path::PathBuf;

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
    /// Your checkout of https://github.com/GeekEagle/FGSTP: also time its forward and training
    /// step side by side with fgstp's (same weights, inputs and threads, alternating rounds,
    /// --repeats of each) and print the ratios. Runs scripts/bench/bench-model-vs-reference and
    /// scripts/bench/bench-train-vs-reference of this source tree (CPU; model.kind = "fgstp")
    #[arg(long, value_name = "CHECKOUT")]
    reference: Option<PathBuf>,
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
    let options = BenchOptions {
        repeats: args.repeats,
        video_frames: args.video_frames,
    };
    if let Some(checkout) = &args.reference {
        // Before the fgstp measurements, so that a wrong path fails at once.
        bench::reference::check(&cfg, checkout)?;
    }
    let mut bench = bench::run(&cfg, &args.config.display().to_string(), options)?;
    print_table(&bench, &args.sets);
    if let Some(checkout) = &args.reference {
        let r = bench::reference::compare(&cfg, checkout, bench.threads, args.repeats)?;
        print_reference(&r);
        bench.reference = Some(r);
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&bench)? + "\n";
        fgstp_metrics::io::write_atomically(path, text.as_bytes())
            .context("cannot write the bench JSON")?;
    }
    Ok(())
}

/// `sets`: the `--set` overrides, repeated in the reproduce line.
fn print_table(b: &Bench, sets: &[String]) {
    let overrides: String = sets.iter().map(|s| format!(" --set '{s}'")).collect();
    let rows: [(&str, String); 14] = [
        (
            "model",
            format!(
                "{} ({}), {}×{} px, batch {}",
                b.model, b.backbone, b.input_height, b.input_width, b.batch_size
            ),
        ),
        ("device", format!("{}, {} threads", b.device, b.threads)),
        ("parameters", format!("{:.2} M", b.params_m)),
        (
            "compute per sample",
            format!(
                "{:.2} GMACs ({:.2} GFLOPs) per {}",
                b.gmacs_per_triplet, b.gflops_per_triplet, b.sample
            ),
        ),
        (
            "compute per video frame",
            if b.feature_cache {
                format!(
                    "{:.2} GMACs with the feature cache",
                    b.gmacs_per_frame_cached
                )
            } else {
                format!("{:.2} GMACs", b.gmacs_per_frame_cached)
            },
        ),
        (
            "forward latency",
            format!("{:.1} ms per {}", b.forward_ms_per_triplet, b.sample),
        ),
        (
            "video, feature cache",
            if b.feature_cache {
                format!("{:.2} frames/s", b.video_fps_cached)
            } else {
                format!(
                    "{:.2} frames/s (no feature cache: each frame is encoded once)",
                    b.video_fps_cached
                )
            },
        ),
        (
            "video, no cache",
            format!("{:.2} frames/s", b.video_fps_uncached),
        ),
        (
            "video, cache + CUDA graphs",
            match b.video_fps_cached_graphs {
                Some(fps) => format!("{fps:.2} frames/s"),
                None => "— (CUDA only)".to_string(),
            },
        ),
        (
            "cache speed-up",
            if b.feature_cache {
                format!("{:.2}×", b.cache_speedup)
            } else {
                "—".to_string()
            },
        ),
        (
            "training step",
            format!("{:.2} s at batch {}", b.train_step_s, b.batch_size),
        ),
        (
            "data stream",
            b.data_triplets_per_s
                .map_or("not measured (no dataset)".into(), |r| {
                    format!("{r:.1} samples/s")
                }),
        ),
        (
            "metric suite",
            format!(
                "{:.1} frames/s at {}×{}",
                b.metrics_frames_per_s, b.input_height, b.input_width
            ),
        ),
        (
            "reproduce",
            format!(
                "fgstp --threads {} bench --config {}{overrides}",
                b.threads, b.config
            ),
        ),
    ];
    for (name, value) in rows {
        println!("{name:<24} {value}");
    }
    println!(
        "forward per {}, alternating rounds (Δp: largest probability difference from the first):",
        b.sample
    );
    for v in &b.forward_variants {
        println!(
            "  {:<22} {:>9.1} ms  {:>5.2}×  Δp {:.1e}",
            v.name,
            v.forward_ms,
            v.forward_ms / b.forward_variants[0].forward_ms,
            v.max_prob_diff
        );
    }
}

fn print_reference(r: &ReferenceComparison) {
    println!(
        "against the reference ({}), on the CPU, side by side, medians:",
        r.checkout
    );
    println!(
        "  forward per triplet    fgstp {:.3} s, PyTorch {:.3} s: {:.2}× (max output difference {:.1e})",
        r.forward_s, r.reference_forward_s, r.forward_ratio, r.forward_max_diff
    );
    println!(
        "  training step          fgstp {:.3} s, PyTorch {:.3} s: {:.2}×",
        r.train_step_s, r.reference_train_step_s, r.train_step_ratio
    );
    for c in &r.commands {
        println!("  reproduce: {c}");
    }
}
