//! `fgstp infer`: run a trained model on new footage.

use super::model_args::ModelArgs;
use anyhow::{bail, Result};
use fgstp_metrics::Shard;
use fgstp_train::infer::{infer, InferOptions};
use fgstp_train::outputs::MaskRule;
use fgstp_train::progress;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// A video file (H.264 MP4, AVI, FLIR .seq; read by content), a folder of frames (one
    /// video, natural order), a scene folder (images/ or video.mp4), or a dataset split
    #[arg(long, value_name = "PATH")]
    input: PathBuf,
    /// Where masks/, overlays/ (and prob/) go; a video's frames are named frame_00001.png, …
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
    /// Also write the overlays as one H.264 MP4 (the input must be one video)
    #[arg(long, value_name = "OUT.mp4")]
    overlay_video: Option<PathBuf>,
    /// Also write the masks as one H.264 MP4 (the input must be one video)
    #[arg(long, value_name = "OUT.mp4")]
    mask_video: Option<PathBuf>,
    /// Frame rate of --overlay-video/--mask-video [default: the source video's; 30 for
    /// frame folders and files that record none]
    #[arg(long, value_name = "FPS")]
    fps: Option<f64>,
    /// Which pixels masks/, overlays/ and --mask-video mark: probability (probability > 0.5; a
    /// frame without a predicted leak stays empty) or normalised (the reference test.py's
    /// masks: min-max normalised per frame, > 0.5)
    #[arg(long, value_name = "RULE", default_value_t = MaskRule::Probability)]
    mask: MaskRule,
}

pub fn run(args: Args) -> Result<()> {
    let loaded = args.model.load()?;
    let options = InferOptions {
        input: args.input,
        output: args.output,
        save_prob: args.save_prob,
        save_maps: args.save_maps,
        shard: args.shard,
        overlay_video: args.overlay_video,
        mask_video: args.mask_video,
        fps: args.fps,
        mask: args.mask,
    };
    let bar = progress::bar(0, "infer", "frames");
    let report = infer(&loaded, &options, &|n| bar.set_length(n), &|| bar.inc(1))?;
    bar.finish_and_clear();
    let videos: Vec<String> = [&options.overlay_video, &options.mask_video]
        .into_iter()
        .flatten()
        .map(|p| p.display().to_string())
        .collect();
    let fps = match report.video_fps {
        Some((fps, true)) => {
            format!(" at {fps} frames/s (the source gives no frame rate; set one with --fps)")
        }
        Some((fps, false)) => format!(" at {fps} frames/s"),
        None => String::new(),
    };
    let written = format!(
        "{} frames: masks/ and overlays/{}{} under {}{}",
        report.frames,
        if options.save_maps { ", maps/" } else { "" },
        if options.save_prob { " and prob/" } else { "" },
        options.output.display(),
        if videos.is_empty() {
            String::new()
        } else {
            format!("; {}{fps}", videos.join(" and "))
        }
    );
    if report.broken.is_empty() {
        eprintln!("{written}");
        return Ok(());
    }
    let mut message = String::new();
    for b in &report.broken {
        message.push_str(&format!("{}\n", b.error));
        message.push_str(&if b.written > 0 {
            format!(
                "{}: predicted {} of {} frames (frame_00001 … frame_{:05}, the frames before the break); the rest could not be read\n",
                b.scene, b.written, b.total, b.readable
            )
        } else {
            format!(
                "{}: predicted none of its {} frames ({} readable; a prediction needs 3)\n",
                b.scene, b.total, b.readable
            )
        });
    }
    bail!(
        "{message}wrote {written}{}, incomplete: {} of the input's {} frames",
        if videos.is_empty() {
            ""
        } else {
            " (the videos hold the predicted frames only)"
        },
        report.frames,
        report.expected
    );
}
