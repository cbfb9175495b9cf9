//! `fgstp eval`: score a trained model on a dataset split with the paper's metrics.

use anyhow::{Context, Result};
use fgstp_cli::evaluate::predict_split;
use fgstp_cli::outputs::{stem, Outputs};
use fgstp_cli::run_config::RunConfig;
use fgstp_data::EvalLoader;
use fgstp_metrics::MetricRecorder;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

#[derive(clap::Args)]
pub struct Args {
    /// Run configuration (TOML), e.g. the `config.toml` of a training run
    #[arg(long, short, value_name = "FILE")]
    config: PathBuf,
    /// Weights: a training checkpoint, or a .pth/.safetensors state dict
    #[arg(long, value_name = "FILE")]
    weights: PathBuf,
    /// Split to score [default: data.test_split]
    #[arg(long)]
    split: Option<String>,
    /// Write masks/, maps/ and overlays/ per video here
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Write the metrics as JSON (overall, per_video, video_mean)
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Override a configuration field, e.g. --set data.protocol=reference (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Encode each frame once per triplet, as the reference does (same results, slower)
    #[arg(long)]
    no_feature_cache: bool,
}

pub fn run(args: Args) -> Result<()> {
    let mut cfg = RunConfig::load(&args.config, &args.sets)?;
    if args.no_feature_cache {
        cfg.eval.feature_cache = false;
    }
    let device = cfg.train.device.resolve()?;
    let (_vs, model) = fgstp_cli::load_model(&cfg, &args.weights, device)?;
    let split = args
        .split
        .clone()
        .unwrap_or_else(|| cfg.data.test_split.clone());
    let loader = EvalLoader::open(&cfg.data, &split)?;
    let outputs = args
        .output
        .as_deref()
        .map(|dir| Outputs::new(dir, true, false));

    let bar = ProgressBar::new(loader.len() as u64).with_style(
        ProgressStyle::with_template(
            "eval {prefix} [{bar:30}] {pos}/{len} frames {per_sec} ETA {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(split.clone());
    let mut recorder = MetricRecorder::new();
    let never = AtomicBool::new(false);
    predict_split(&model, device, &loader, &cfg, &never, |frame| {
        frame.score(&mut recorder)?;
        if let Some(out) = &outputs {
            let name = stem(&frame.scene.frames[frame.frame].image);
            out.write(Some(&frame.scene.name), &name, &frame.prob, &frame.image()?)?;
        }
        bar.inc(1);
        Ok(())
    })?;
    bar.finish_and_clear();

    let report = recorder
        .results()
        .with_context(|| format!("no annotated frame in split {split:?}: nothing to score"))?;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)? + "\n";
        fgstp_cli::fsutil::write_atomic(path, text.as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(dir) = &args.output {
        eprintln!("wrote masks/, maps/ and overlays/ under {}", dir.display());
    }
    Ok(())
}
