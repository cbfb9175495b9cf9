//! `fgstp synth`: write synthetic infrared gas-leak videos in the dataset layout.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use fgstp_data::synth::episodes::generate_episodes;
use fgstp_data::synth::gallery::gallery;
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
    /// Share of leak-free scenes (empty masks), spread evenly over train, val and test
    #[arg(long, value_name = "F", default_value_t = SynthConfig::default().negatives)]
    negatives: f32,
    /// Share of leaking scenes whose leak starts during the video
    #[arg(long, value_name = "F", default_value_t = SynthConfig::default().onsets)]
    onsets: f32,
    /// Share of leaking scenes whose leak stops during the video (the gas then dissipates)
    #[arg(long, value_name = "F", default_value_t = SynthConfig::default().stops)]
    stops: f32,
    /// Up to N pipe ends per scene that never leak
    #[arg(long, value_name = "N", default_value_t = SynthConfig::default().idle_pipes)]
    idle_pipes: u32,
    /// Share of leaks from a point without visible equipment (not a pipe end)
    #[arg(long, value_name = "F", default_value_t = SynthConfig::default().hidden_sources)]
    hidden_sources: f32,
    /// Share of scenes with heat shimmer above a hot surface (a distractor)
    #[arg(long, value_name = "F", default_value_t = SynthConfig::default().shimmer)]
    shimmer: f32,
    /// Share of scenes with steam rising from a stack (a distractor)
    #[arg(long, value_name = "F", default_value_t = SynthConfig::default().steam)]
    steam: f32,
    /// Share of scenes with a person or a vehicle crossing (a distractor)
    #[arg(long, value_name = "F", default_value_t = SynthConfig::default().crossers)]
    crossers: f32,
    /// Share of scenes with a flat-field correction: a shutter frame, then an offset (a distractor)
    #[arg(long, value_name = "F", default_value_t = SynthConfig::default().nuc)]
    nuc: f32,
    /// Share of scenes with a short camera shake (a distractor)
    #[arg(long, value_name = "F", default_value_t = SynthConfig::default().shake)]
    shake: f32,
    /// Share of leak-free scenes that are twins: the leaking scene before them again without its leak (same background, equipment, distractors and noise)
    #[arg(long, value_name = "F", default_value_t = SynthConfig::default().twins)]
    twins: f32,
    /// Instead of a dataset: one video of one scene (--frames long) whose leak comes and
    /// goes N times, as DIR/video.mp4, DIR/{images,masks}/ and DIR/episodes.json
    #[arg(long, value_name = "N", conflicts_with_all = ["video", "gallery"])]
    episodes: Option<usize>,
    /// Frame rate of the --episodes video (video.mp4, episodes.json's seconds); the frames are
    /// the same at any rate
    #[arg(long, value_name = "FPS", default_value_t = SYNTH_FPS, requires = "episodes")]
    fps: f64,
    /// Instead of a dataset: one picture (frame | mask) of each element the generator
    /// draws, as DIR/<element>.png, with DIR/gallery.md listing them
    #[arg(long, conflicts_with = "video")]
    gallery: bool,
    /// Write into DIR even if it is not empty. Where an earlier `fgstp synth` wrote (DIR has
    /// its synth.toml), what it writes (train/, val/, test/, images/, masks/, video.mp4,
    /// episodes.json, synth.toml) is removed first; other files are left
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
        negatives: args.negatives,
        onsets: args.onsets,
        stops: args.stops,
        idle_pipes: args.idle_pipes,
        hidden_sources: args.hidden_sources,
        shimmer: args.shimmer,
        steam: args.steam,
        crossers: args.crossers,
        nuc: args.nuc,
        shake: args.shake,
        twins: args.twins,
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
    if args.gallery {
        return write_gallery(&cfg, &args.out);
    }
    // Only over an earlier generator's output: a folder of the user's own frames and masks
    // (`images/`, `masks/`) is never removed.
    if non_empty && args.out.join("synth.toml").is_file() {
        remove_earlier_output(&args.out)?;
    }
    if let Some(episodes) = args.episodes {
        return write_episodes(&cfg, episodes, args.fps, &args.out);
    }
    let total = cfg.scenes.saturating_mul(cfg.frames) as u64;
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

fn write_episodes(cfg: &SynthConfig, episodes: usize, fps: f64, out: &Path) -> Result<()> {
    let bar = progress::bar(cfg.frames as u64, "synth episodes", "frames");
    let start = Instant::now();
    let file = generate_episodes(cfg, episodes, fps, out, &|| bar.inc(1))
        .with_context(|| format!("writing the episodes video to {}", out.display()))?;
    bar.finish_and_clear();
    let spans: Vec<String> = file
        .episodes
        .iter()
        .map(|e| format!("{:.2}–{:.2} s", e.start_s, e.end_s))
        .collect();
    println!(
        "wrote {} frames of {}x{} ({:.1} s at {} frames/s) with {} leak episodes ({}) to {} (video.mp4, images/, masks/, episodes.json) in {:.2} s",
        file.frames,
        file.width,
        file.height,
        file.frames as f64 / file.fps,
        file.fps,
        file.episodes.len(),
        spans.join(", "),
        out.display(),
        start.elapsed().as_secs_f64(),
    );
    Ok(())
}

/// Removes what a dataset or episodes run of `fgstp synth` writes under `out`: new files of the
/// same names alone would leave an earlier run's other scenes and frames beside them (a
/// validation scene of the new data identical to a training scene of the old, 4-frame scenes
/// read as 8).
fn remove_earlier_output(out: &Path) -> Result<()> {
    for name in ["train", "val", "test", "images", "masks"] {
        let dir = out.join(name);
        if dir.is_dir() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("--force: cannot remove {}", dir.display()))?;
        }
    }
    for name in ["video.mp4", "episodes.json", "synth.toml"] {
        let file = out.join(name);
        if file.is_file() {
            std::fs::remove_file(&file)
                .with_context(|| format!("--force: cannot remove {}", file.display()))?;
        }
    }
    Ok(())
}

fn write_gallery(cfg: &SynthConfig, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let items = gallery(cfg.seed, cfg.width, cfg.height, 2);
    let mut listing = String::from(
        "<!-- written by `fgstp synth --gallery`: each picture is a generated frame (left) and its mask (right) -->\n",
    );
    for item in &items {
        let path = out.join(format!("{}.png", item.name));
        item.image
            .save(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        listing.push_str(&format!(
            "\n**{}**: {}\n\n![{}]({}.png)\n",
            item.name, item.caption, item.caption, item.name
        ));
    }
    let md = out.join("gallery.md");
    std::fs::write(&md, listing).with_context(|| format!("cannot write {}", md.display()))?;
    println!(
        "wrote {} pictures (frame | mask) and gallery.md to {}",
        items.len(),
        out.display()
    );
    Ok(())
}
