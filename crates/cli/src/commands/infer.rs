//! `fgstp infer`: run a trained model on new footage.

use super::model_args::ModelArgs;
use anyhow::Result;
use fgstp_cli::evaluate::shard_split;
use fgstp_cli::outputs::{stem, Outputs};
use fgstp_cli::progress;
use fgstp_data::layout::Split;
use fgstp_metrics::Shard;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// A folder of frames (one video, natural order), a scene folder (images/), or a dataset split
    #[arg(long, value_name = "DIR")]
    input: PathBuf,
    /// Where masks/, overlays/ (and prob/) go
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
    /// Also write prob/<frame>.npy: float32 [H, W] sigmoid probabilities at the frame's size
    #[arg(long)]
    save_prob: bool,
    /// Only shard K of N (0-based) of the videos: video i, in byte order of names, is in
    /// shard i mod N (for job arrays)
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// Also write maps/<frame>.png: the 8-bit min-max map (a short-term SLT-Net's maps are the
    /// long-term model's priors, data.prior_dir)
    #[arg(long)]
    save_maps: bool,
}

pub fn run(args: Args) -> Result<()> {
    let loaded = args.model.load()?;
    let mut footage = Split::open_footage(&args.input)?;
    if let Some(shard) = args.shard {
        footage = shard_split(footage, shard);
    }
    // One video given directly: flat outputs; a split: one folder per video.
    let per_video = footage.scenes.iter().any(|scene| scene.dir != args.input);
    let loader = loaded.loader_for(footage)?;
    let outputs = Outputs::new(&args.output, args.save_maps, args.save_prob);

    let bar = progress::bar(loader.len() as u64, "infer", "frames");
    loaded.predict(&loader, |frame| {
        let name = stem(&frame.scene.frames[frame.frame].image);
        let video = per_video.then_some(frame.scene.name.as_str());
        outputs.write(video, &name, &frame.prob, &frame.image()?)?;
        bar.inc(1);
        Ok(())
    })?;
    bar.finish_and_clear();
    eprintln!(
        "{} frames: masks/ and overlays/{}{} under {}",
        loader.len(),
        if args.save_maps { ", maps/" } else { "" },
        if args.save_prob { " and prob/" } else { "" },
        args.output.display()
    );
    Ok(())
}
