//! `fgstp metrics`: scores folders of predicted masks against ground-truth masks with the
//! PySODMetrics suite and the reference `test.py`'s J&F.

use std::path::PathBuf;

use anyhow::{Context, Result};
use fgstp_cli::progress;
use fgstp_metrics::io::{pair_files, score_pairs};

#[derive(clap::Args)]
pub struct Args {
    /// Predicted masks: DIR/<video>/<frame>.png, or DIR/<frame>.png for a single video
    #[arg(long, value_name = "DIR")]
    pred: PathBuf,
    /// Ground-truth masks: the same tree as --pred, or a dataset split root
    /// (DIR/<video>/masks/<frame>.png)
    #[arg(long, value_name = "DIR")]
    gt: PathBuf,
    /// Also write the results as JSON: {"overall", "per_video", "video_mean", "frames", "videos"}
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Fail when a mask has no prediction (by default such masks are counted and skipped,
    /// as FGSTP never predicts the last two frames of a video)
    #[arg(long)]
    strict: bool,
}

pub fn run(args: Args, threads: Option<usize>) -> Result<()> {
    let pairs = pair_files(&args.pred, &args.gt, args.strict)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .context("starting the worker threads")?;
    let bar = progress::bar(pairs.frames.len() as u64, "scoring", "frames");
    let scored = pool.install(|| score_pairs(&pairs.frames, &|| bar.inc(1)))?;
    bar.finish_and_clear();

    let report = scored.recorder.results()?;
    let resized = scored.resized;
    print!("{}", report.table());
    if resized > 0 {
        eprintln!(
            "note: {resized} of {} predictions differed in size from their mask and were resized to it (bilinear)",
            report.frames
        );
    }
    if pairs.unpredicted_masks > 0 {
        eprintln!(
            "note: {} masks have no prediction and were not scored (--strict makes this an error)",
            pairs.unpredicted_masks
        );
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)? + "\n";
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
