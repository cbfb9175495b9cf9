//! `fgstp eval`: score a trained model on a dataset split with the paper's metrics.

use super::model_args::ModelArgs;
use anyhow::{Context, Result};
use fgstp_cli::outputs::Outputs;
use fgstp_cli::progress;
use fgstp_data::EvalLoader;
use fgstp_metrics::MetricRecorder;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Split to score [default: data.test_split]
    #[arg(long)]
    split: Option<String>,
    /// Write masks/, maps/ and overlays/ per video here
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Write the metrics as JSON (overall, per_video, video_mean)
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let loaded = args.model.load()?;
    let cfg = &loaded.cfg;
    let split = args
        .split
        .clone()
        .unwrap_or_else(|| cfg.data.test_split.clone());
    let loader = EvalLoader::open(&cfg.data, &split)?;
    let outputs = args
        .output
        .as_deref()
        .map(|dir| Outputs::new(dir, true, false));

    let bar = progress::bar(loader.len() as u64, format!("eval {split}"), "frames");
    let mut recorder = MetricRecorder::new();
    loaded.predict(&loader, |frame| {
        frame.score(&mut recorder)?;
        if let Some(out) = &outputs {
            let name = frame.scene.frames[frame.frame].stem();
            out.write(Some(&frame.scene.name), name, &frame.prob, &frame.image()?)?;
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
        fgstp_model::files::write_bytes_atomically(path, text.as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(dir) = &args.output {
        eprintln!("wrote masks/, maps/ and overlays/ under {}", dir.display());
    }
    Ok(())
}
