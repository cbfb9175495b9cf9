//! `fgstp data check ROOT`: validate a dataset and print what it holds.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use fgstp_data::decode::describe_color;
use fgstp_data::natural_order::natural_sort;
use fgstp_data::sample::{evaluation_samples, training_samples, training_samples_every_frame};
use fgstp_data::{Masks, Protocol, Split};
use fgstp_train::progress;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(clap::Subcommand)]
enum DataCommand {
    /// Check a dataset (layout, frame counts, sizes, every file decodes) and print its contents
    Check(CheckArgs),
}

#[derive(clap::Args)]
struct CheckArgs {
    /// Dataset root: ROOT/<split>/<scene>/{images,masks}/ (or <scene>/video.mp4 and masks/)
    root: PathBuf,
    /// Splits to check, comma-separated [default: every folder under ROOT]
    #[arg(long, value_delimiter = ',')]
    splits: Vec<String>,
    /// Read file headers only (skip decoding every pixel)
    #[arg(long)]
    quick: bool,
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        DataCommand::Check(a) => check(a),
    }
}

fn split_names(root: &Path) -> Result<Vec<String>> {
    if !root.is_dir() {
        bail!(
            "dataset root {} does not exist (expected ROOT/<split>/<scene>/images/)",
            root.display()
        );
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root).with_context(|| format!("listing {}", root.display()))? {
        let entry = entry.with_context(|| format!("listing {}", root.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && !name.starts_with('.') {
            names.push(name);
        }
    }
    if names.is_empty() {
        bail!(
            "{} has no split folders: expected e.g. {0}/train/<scene>/images/",
            root.display()
        );
    }
    natural_sort(&mut names);
    Ok(names)
}

fn check(args: CheckArgs) -> Result<()> {
    let names = if args.splits.is_empty() {
        split_names(&args.root)?
    } else {
        args.splits.clone()
    };
    println!("dataset {}", args.root.display());
    let mut splits = Vec::new();
    for name in &names {
        let split = Split::open(&args.root, name, Masks::Required)?;
        print_split(&split);
        splits.push(split);
    }
    if !args.quick {
        let files: usize = splits.iter().map(Split::file_count).sum();
        let bar = progress::bar(files as u64, "decoding", "files");
        for split in &splits {
            split.verify_pixels(&|| bar.inc(1))?;
        }
        bar.finish_and_clear();
    }
    let scenes: usize = splits.iter().map(|s| s.scenes.len()).sum();
    let frames: usize = splits.iter().map(Split::frame_count).sum();
    let masks: usize = splits.iter().map(Split::mask_count).sum();
    println!(
        "ok: {} split(s), {scenes} scenes, {frames} frames, {masks} masks{}",
        splits.len(),
        if args.quick {
            " (headers only; run without --quick to decode every file)"
        } else {
            "; every file decodes"
        }
    );
    Ok(())
}

fn print_split(split: &Split) {
    println!(
        "split {}: {} scenes, {} frames, {} masks; {} training samples ({} with data.train_protocol = \"full\"), {} evaluation samples ({} in the reference's frame set)",
        split.name,
        split.scenes.len(),
        split.frame_count(),
        split.mask_count(),
        training_samples(split).len(),
        training_samples_every_frame(split).len(),
        evaluation_samples(split, Protocol::Full).len(),
        evaluation_samples(split, Protocol::Reference).len(),
    );
    let width = split
        .scenes
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "  {:width$}  {:>6}  {:>6}  {:>11}  pixels",
        "scene", "frames", "masks", "size"
    );
    for scene in &split.scenes {
        let mut pixels: Vec<String> = scene.colors().into_iter().map(describe_color).collect();
        if let Some(video) = scene.video() {
            let file = video
                .path()
                .file_name()
                .unwrap_or_default()
                .to_string_lossy();
            pixels.push(format!("from {file} ({})", video.describe()));
        }
        println!(
            "  {:width$}  {:>6}  {:>6}  {:>11}  {}",
            scene.name,
            scene.frames.len(),
            scene.mask_count(),
            format!("{}x{}", scene.width, scene.height),
            pixels.join(", "),
        );
    }
}
