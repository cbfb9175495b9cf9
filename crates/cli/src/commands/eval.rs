//! `fgstp eval`: score a trained model on a dataset split with the paper's metrics.

use super::model_args::ModelArgs;
use anyhow::{Context, Result};
use fgstp_data::dataset::{Masks, Split};
use fgstp_metrics::cli::report_json;
use fgstp_metrics::io::state_file::state_json;
use fgstp_metrics::io::write_atomically;
use fgstp_metrics::{MetricRecorder, MinLeakArea, Shard};
use fgstp_train::evaluate::shard_split;
use fgstp_train::outputs::{MaskRule, Outputs};
use fgstp_train::progress;
use std::collections::BTreeMap;
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
    /// Evaluate only shard K of N (0-based) of the split's videos: video i, in byte order of
    /// names, is in shard i mod N (for job arrays; merge with `fgstp metrics merge`)
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// Write the exact metric state (versioned JSON) for `fgstp metrics merge`
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Frame-level detection: a frame is predicted leak when at least this many pixels have
    /// probability > 0.5: pixels (40 or 40px) or percent of the frame (0.5%, rounded up)
    /// [default: eval.min_leak_area of the run's config]
    #[arg(long, value_name = "AREA")]
    min_leak_area: Option<MinLeakArea>,
    /// Which pixels masks/ and overlays/ mark (maps/ are always min-max normalised):
    /// probability (probability > 0.5, the predicted area of the detection rates) or
    /// normalised (the reference test.py's masks)
    #[arg(long, value_name = "RULE", default_value_t = MaskRule::Probability)]
    mask: MaskRule,
}

pub fn run(args: Args) -> Result<()> {
    let loaded = args.model.load()?;
    let cfg = &loaded.cfg;
    let split = args
        .split
        .clone()
        .unwrap_or_else(|| cfg.data.test_split.clone());
    let mut videos = Split::open(&cfg.data.root, &split, Masks::Required)?;
    if let Some(shard) = args.shard {
        videos = shard_split(videos, shard);
        eprintln!("shard {shard}: {} videos", videos.scenes.len());
    }
    let loader = loaded.loader_for(videos)?;
    let outputs = args
        .output
        .as_deref()
        .map(|dir| Outputs::new(dir, true, false, args.mask));
    let min_leak_area = args.min_leak_area.unwrap_or(cfg.eval.min_leak_area);

    let bar = progress::bar(loader.len() as u64, format!("eval {split}"), "frames");
    let mut recorder = MetricRecorder::with_min_leak_area(min_leak_area);
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

    if let Some(path) = &args.state {
        let origin: BTreeMap<String, String> = [
            ("command", "eval".to_string()),
            ("config", args.model.config.display().to_string()),
            ("weights", args.model.weights.display().to_string()),
            ("split", split.clone()),
            ("set", args.model.sets.join(" ")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let text = state_json(&recorder, args.shard, origin)?;
        write_atomically(path, text.as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    if args.shard.is_some() && recorder.frames() == 0 {
        eprintln!(
            "this shard has no annotated frames (more shards than videos?): nothing to report"
        );
        return Ok(());
    }
    let report = recorder
        .results()
        .with_context(|| format!("no annotated frame in split {split:?}: nothing to score"))?;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        write_atomically(path, report_json(&report)?.as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(dir) = &args.output {
        eprintln!("wrote masks/, maps/ and overlays/ under {}", dir.display());
    }
    Ok(())
}
