//! `fgstp frames VIDEO OUT_DIR`: a video's frames as a scene's `images/`, to label and train on.

use std::path::PathBuf;

use anyhow::{bail, Result};
use fgstp_data::extract::{extract_frames, FrameSelection};
use fgstp_train::progress;

#[derive(clap::Args)]
pub struct Args {
    /// Video file: H.264 MP4/MOV, AVI (MJPEG, uncompressed), FLIR .seq (read by content)
    video: PathBuf,
    /// Where images/frame_00001.png … go (a scene folder: add masks/ beside them)
    out_dir: PathBuf,
    /// Write every K-th frame (names keep the video's frame numbers)
    #[arg(long, value_name = "K", default_value_t = 1)]
    every: usize,
    /// First frame to write, 1-based
    #[arg(long, value_name = "S", default_value_t = 1)]
    start: usize,
    /// Last frame to write, 1-based, inclusive [default: the last]
    #[arg(long, value_name = "E")]
    end: Option<usize>,
    /// Write into OUT_DIR/images even if it is not empty (files of the same names are replaced)
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> Result<()> {
    let images = args.out_dir.join("images");
    let non_empty = std::fs::read_dir(&images).is_ok_and(|mut d| d.next().is_some());
    if non_empty && !args.force {
        bail!(
            "{} is not empty: choose another OUT_DIR, or pass --force to write into it",
            images.display()
        );
    }
    let selection = FrameSelection {
        start: args.start,
        end: args.end,
        every: args.every,
    };
    let bar: std::cell::OnceCell<indicatif::ProgressBar> = std::cell::OnceCell::new();
    let done = extract_frames(
        &args.video,
        &args.out_dir,
        &selection,
        |n| {
            let _ = bar.set(progress::bar(n as u64, "frames", "frames"));
        },
        &|| {
            if let Some(bar) = bar.get() {
                bar.inc(1)
            }
        },
    )?;
    if let Some(bar) = bar.get() {
        bar.finish_and_clear();
    }
    let info = &done.info;
    let range = match (done.first, done.last) {
        (Some(a), Some(b)) => format!(" (frame_{a:05}.png … frame_{b:05}.png)",),
        _ => String::new(),
    };
    if let Some(broken) = done.broken {
        bail!(
            "{broken}\nwrote {} of the {} selected frames{range} to {} before the break; the rest of the video could not be read",
            done.written,
            done.selected,
            done.images.display()
        );
    }
    println!(
        "wrote {} of {} frames{range} of {}x{} {}-bit {} {} to {}",
        done.written,
        info.frames,
        info.width,
        info.height,
        info.bit_depth,
        info.codec,
        info.container,
        done.images.display()
    );
    Ok(())
}
