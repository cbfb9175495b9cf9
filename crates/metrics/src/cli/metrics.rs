//! `fgstp metrics` (and `fgstp-score metrics`): score mask folders of any system with the
//! PySODMetrics suite and the reference `test.py`'s J&F; `metrics merge` merges shard states.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

use super::{
    exclusions, print_stdout, progress_bar, report_json, thread_pool, write_text, EXCLUDE_HELP,
    MIN_LEAK_AREA_HELP,
};
use crate::io::state_file::{merge_states, write_state};
use crate::io::{describe_readings, pair_files, score_pairs, PairOptions, PredKind};
use crate::{MinLeakArea, Shard};

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<MetricsCommand>,
    /// Predictions: DIR/<video>/<frame>.png, DIR/<video>/masks/<frame>.png, DIR/<frame>.png
    /// (one video), an `fgstp eval`/`infer --output` folder (its maps/ scored, the detection
    /// areas from its masks/; masks/ alone without maps/), or a path with one * for the video,
    /// e.g. 'OUT/*/mean'
    #[arg(long, value_name = "DIR", required = true)]
    pub pred: Option<PathBuf>,
    /// Ground-truth masks: the same tree as --pred, or a dataset split root
    /// (DIR/<video>/masks/<frame>.png; frames in <video>/images/ without a mask are skipped)
    #[arg(long, value_name = "DIR", required = true)]
    pub gt: Option<PathBuf>,
    /// Also write the results as JSON: {"overall", "per_video", "video_mean", "frames", "videos"}
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Fail when a mask has no prediction (by default such masks are counted and skipped,
    /// as FGSTP never predicts the last two frames of a video)
    #[arg(long)]
    pub strict: bool,
    /// How a prediction PNG becomes the scored map: auto (per file, reported: palette images,
    /// 16-bit ids and DAVIS-coloured RGB masks → foreground = non-zero; grey → soft map), soft
    /// (as cv2.IMREAD_GRAYSCALE), binary (grey ≥ 128) or index (non-zero = foreground)
    #[arg(long, value_enum, default_value_t = PredKind::Auto)]
    pub pred_kind: PredKind,
    #[arg(long, value_name = "AREA", default_value_t = MinLeakArea::default(), help = MIN_LEAK_AREA_HELP)]
    pub min_leak_area: MinLeakArea,
    #[arg(long, value_name = "FRAMES", help = EXCLUDE_HELP)]
    pub exclude: Vec<String>,
    /// Leave out the frames named in DIR (<video>/<frame>.*, <video>/masks/<frame>.*, or
    /// <frame>.*): the reference masks a VOS method was given; repeatable
    #[arg(long, value_name = "DIR")]
    pub exclude_annotated: Vec<PathBuf>,
    /// Score only shard K of N (0-based) of the videos: video i, in byte order of names, is in
    /// shard i mod N
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Write the exact metric state (versioned JSON) for `metrics merge`
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum MetricsCommand {
    /// Merge shard states (--state of `metrics` or `eval`) into the results of the whole run,
    /// bit-identical to an unsharded run
    Merge(MergeArgs),
}

#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// State files, one per shard
    #[arg(required = true, value_name = "STATE")]
    pub states: Vec<PathBuf>,
    /// Also write the merged results as JSON (the same file an unsharded run writes)
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Merge even when some shards' states are missing (the result is then not the whole run's)
    #[arg(long)]
    pub allow_partial: bool,
}

pub fn run(args: Args, threads: Option<usize>) -> Result<()> {
    if let Some(MetricsCommand::Merge(merge)) = args.command {
        return run_merge(merge);
    }
    let (pred, gt) = match (&args.pred, &args.gt) {
        (Some(p), Some(g)) => (p, g),
        _ => anyhow::bail!("--pred and --gt are required (or use `metrics merge STATE…`)"),
    };
    let options = PairOptions {
        strict: args.strict,
        exclude: exclusions(&args.exclude, &args.exclude_annotated)?,
        shard: args.shard,
    };
    let pairs = pair_files(pred, gt, &options)?;
    let pool = thread_pool(threads)?;
    eprintln!(
        "predictions: {} ({} frames{})",
        pairs.layout,
        pairs.frames.len(),
        args.shard.map_or(String::new(), |s| format!(", shard {s}"))
    );
    let bar = progress_bar(pairs.frames.len() as u64, "scoring", "frames");
    let scored = pool.install(|| {
        score_pairs(&pairs.frames, args.pred_kind, args.min_leak_area, &|| {
            bar.inc(1)
        })
    })?;
    bar.finish_and_clear();

    if let Some(path) = &args.state {
        let origin: BTreeMap<String, String> = [
            ("command", "metrics".to_string()),
            ("pred", pred.display().to_string()),
            ("gt", gt.display().to_string()),
            ("pred_kind", args.pred_kind.to_string()),
            ("min_leak_area", args.min_leak_area.to_string()),
            ("exclude", args.exclude.join(",")),
            (
                "exclude_annotated",
                args.exclude_annotated
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        write_state(path, &scored.recorder, args.shard, origin)?;
        eprintln!("wrote {}", path.display());
    }
    if let (true, Some(shard)) = (pairs.frames.is_empty(), args.shard) {
        eprintln!("shard {shard} has no frames (more shards than videos?): nothing to report");
        return Ok(());
    }
    let report = scored.recorder.results()?;
    print_stdout(&report.table())?;
    for line in describe_readings(&scored.readings) {
        eprintln!("read as: {line}");
    }
    if scored.resized > 0 {
        eprintln!(
            "note: {} of {} predictions differed in size from their mask and were resized to it (bilinear)",
            scored.resized, report.frames
        );
    }
    if pairs.excluded > 0 {
        eprintln!(
            "note: {} predictions excluded (--exclude/--exclude-annotated)",
            pairs.excluded
        );
    }
    if pairs.unannotated > 0 {
        eprintln!(
            "note: {} predictions are of frames without a mask in the split and were not scored",
            pairs.unannotated
        );
    }
    if pairs.unpredicted_masks > 0 {
        eprintln!(
            "note: {} masks have no prediction and were not scored (--strict makes this an error)",
            pairs.unpredicted_masks
        );
    }
    if let Some(path) = &args.json {
        write_text(path, &report_json(&report)?)?;
    }
    Ok(())
}

fn run_merge(args: MergeArgs) -> Result<()> {
    let merged = merge_states(&args.states, args.allow_partial)?;
    let report = merged
        .recorder
        .results()
        .context("the state files hold no frames")?;
    print_stdout(&report.table())?;
    for note in &merged.notes {
        eprintln!("note: {note}");
    }
    eprintln!(
        "merged {} state files: {} frames in {} videos",
        args.states.len(),
        report.frames,
        report.videos
    );
    if let Some(path) = &args.json {
        write_text(path, &report_json(&report)?)?;
    }
    Ok(())
}
