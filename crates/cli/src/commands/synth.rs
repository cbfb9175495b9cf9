//! `fgstp synth`: write synthetic infrared gas-leak videos in the dataset layout.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use fgstp_data::synth::video::{write_scene_videos, SYNTH_FPS};
use fgstp_data::SynthConfig;
use fgstp_train::progress;

#[derive(clap::Args)]
pub struct Args {
    /// Output dataset root (gets train/, val/, test/ and synth.toml)
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Scenes in total; val and test get 15% each (at least one)
    #[arg(long, default_value_t = SynthConfig::default().scenes)]
    scenes: usize,
    /// Frames per scene
    #[arg(long, default_value_t = SynthConfig::default().frames)]
    frames: usize,
    /// Frame size, WIDTHxHEIGHT
    #[arg(long, value_name = "WxH", default_value = "128x128", value_parser = parse_size)]
    size: (u32, u32),
    /// Random seed (same seed and options: byte-identical output)
    #[arg(long, default_value_t = SynthConfig::default().seed)]
    seed: u64,
    /// Grey levels the gas changes a pixel by at full opacity (sensor noise is 1–2.5 levels);
    /// 4 or less hides the gas in single frames, so that only its motion shows it
    #[arg(long, default_value_t = SynthConfig::default().contrast)]
    contrast: f32,
    /// 8 (PNG L8) or 16 (PNG L16, raw counts like a thermal camera)
    #[arg(long, default_value_t = 8)]
    bit_depth: u8,
    /// Write into DIR even if it is not empty (files of the same names are replaced)
    #[arg(long)]
    force: bool,
    /// Also write each scene as an H.264 MP4, <scene>/video.mp4 (30 frames/s); frames and
    /// masks are then named frame_00001.png … as a video's frames are
    #[arg(long)]
    video: bool,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("`{s}` is not WIDTHxHEIGHT, e.g. 352x352"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|_| format!("`{s}` is not WIDTHxHEIGHT, e.g. 352x352"))
    };
    Ok((parse(w)?, parse(h)?))
}

pub fn run(args: Args) -> Result<()> {
    let cfg = SynthConfig {
        scenes: args.scenes,
        frames: args.frames,
        width: args.size.0,
        height: args.size.1,
        seed: args.seed,
        contrast: args.contrast,
        bit_depth: args.bit_depth,
    };
    if let Err(reason) = cfg.validate() {
        bail!("{reason}");
    }
    let non_empty = std::fs::read_dir(&args.out).is_ok_and(|mut d| d.next().is_some());
    if non_empty && !args.force {
        bail!(
            "{} is not empty: choose another --out, or pass --force to write into it",
            args.out.display()
        );
    }
    let total = (cfg.scenes * cfg.frames) as u64;
    let bar = progress::bar(total, "synth", "frames");
    let start = Instant::now();
    let report = fgstp_data::generate(&cfg, &args.out, &|| bar.inc(1))
        .with_context(|| format!("writing the synthetic dataset to {}", args.out.display()))?;
    bar.finish_and_clear();
    let videos = if args.video {
        let bar = progress::bar(total, "synth video", "frames");
        let n = write_scene_videos(&args.out, &cfg, &|| bar.inc(1))
            .with_context(|| format!("writing the scene videos under {}", args.out.display()))?;
        bar.finish_and_clear();
        format!(
            " and {n} H.264 videos (<scene>/video.mp4, {SYNTH_FPS} frames/s; frames named frame_00001.png …)"
        )
    } else {
        String::new()
    };
    let secs = start.elapsed().as_secs_f64();
    let splits: Vec<String> = cfg
        .splits()
        .into_iter()
        .map(|(name, range)| format!("{name} {}", range.len()))
        .collect();
    println!(
        "wrote {} frames ({} scenes: {}) of {}x{} {}-bit{videos} to {} in {:.2} s ({:.0} frames/s)",
        report.frames,
        report.scenes,
        splits.join(", "),
        cfg.width,
        cfg.height,
        cfg.bit_depth,
        args.out.display(),
        secs,
        report.frames as f64 / secs.max(1e-9),
    );
    Ok(())
}
