//! H.264 decode speed on one thread, in frames/s, at 320x240 (GasVid's size) and 640x480.
//!
//! cargo run --release -p fgstp-data --example bench_video -- [--frames 300] [--qp 23]
//!     [--input VIDEO]...
//! It first encodes, at each size, a video of moving gradients, noise and a moving blob with
//! fgstp's writer (Constrained Baseline, IDR every 2 s, 30 fps) into a temporary folder, then
//! reads it back twice: frames as RGB (`VideoReader::frame`, what the loaders get) and decoded
//! planes only (`frame_yuv`). `--input` times your own files instead (any fgstp-readable
//! video, e.g. an x264 High-profile MP4 with B-frames). Everything runs on this thread: the
//! decoder is single-threaded and the conversion to RGB is a plain loop.

use std::path::{Path, PathBuf};
use std::time::Instant;

use fgstp_data::video::{VideoReader, VideoWriter, WriterOptions};
use image::{Rgb, RgbImage};

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("bad value for {name}: {v}"))
        })
        .unwrap_or(default)
}

fn scene(index: usize, w: u32, h: u32, seed: &mut u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 17;
        *seed ^= *seed << 5;
        let noise = (*seed % 7) as f64 - 3.0;
        let phase = std::f64::consts::TAU * (x as f64 + 2.0 * index as f64) / w as f64;
        let base = 100.0 + 50.0 * phase.sin() + 40.0 * y as f64 / h as f64;
        let (cx, cy) = (
            w as f64 * (0.2 + 0.6 * ((index % 120) as f64 / 120.0)),
            h as f64 * 0.5,
        );
        let d2 = (x as f64 - cx).powi(2) + (y as f64 - cy).powi(2);
        let blob = 80.0 * (-d2 / (w as f64 * 2.0)).exp();
        let px = |v: f64| (v + noise).clamp(0.0, 255.0) as u8;
        Rgb([
            px(base + blob),
            px(0.9 * base + 0.3 * blob),
            px(0.7 * base + 30.0),
        ])
    })
}

fn time_file(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut video = VideoReader::open(path)?;
    let info = video.info().clone();
    let n = info.frames;
    let start = Instant::now();
    for i in 0..n {
        std::hint::black_box(video.frame(i)?);
    }
    let rgb = n as f64 / start.elapsed().as_secs_f64();
    let mut video = VideoReader::open(path)?;
    let start = Instant::now();
    for i in 0..n {
        std::hint::black_box(video.frame_yuv(i)?);
    }
    let planes = n as f64 / start.elapsed().as_secs_f64();
    // The YUV -> RGB conversion alone, on one decoded frame.
    let convert = match video.frame_yuv(0)? {
        Some(yuv) => {
            let color = video.color_space();
            let start = Instant::now();
            for _ in 0..n {
                std::hint::black_box(yuv.to_rgb(color));
            }
            format!("{:.0}", n as f64 / start.elapsed().as_secs_f64())
        }
        None => "-".into(),
    };
    println!(
        "{:>9} {:>6} frames  {:>7.0} frames/s to RGB  {:>7.0} frames/s decode only  {:>7} frames/s RGB conversion only  ({}, {} {})",
        format!("{}x{}", info.width, info.height),
        n,
        rgb,
        planes,
        convert,
        path.file_name().unwrap_or_default().to_string_lossy(),
        info.container,
        info.codec
    );
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let frames: usize = arg(&args, "--frames", 300);
    let qp: u8 = arg(&args, "--qp", 23);
    let inputs: Vec<PathBuf> = args
        .windows(2)
        .filter(|w| w[0] == "--input")
        .map(|w| PathBuf::from(&w[1]))
        .collect();
    if cfg!(debug_assertions) {
        eprintln!("note: a debug build; numbers are for `cargo run --release`");
    }
    if !inputs.is_empty() {
        for input in &inputs {
            time_file(input)?;
        }
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    for (w, h) in [(320, 240), (640, 480)] {
        let path = dir.path().join(format!("bench_{w}x{h}.mp4"));
        let options = WriterOptions {
            qp,
            keyframe_interval: None,
        };
        let mut writer = VideoWriter::create_with(&path, w, h, 30.0, options)?;
        let mut seed = 0x1234_5678;
        let start = Instant::now();
        for i in 0..frames {
            writer.push_rgb(&scene(i, w, h, &mut seed))?;
        }
        writer.finish()?;
        let encode = frames as f64 / start.elapsed().as_secs_f64();
        let kb = std::fs::metadata(&path)?.len() as f64 / 1024.0;
        println!("{w}x{h}: encoded {frames} frames at QP {qp}, {kb:.0} KB, {encode:.0} frames/s (incl. scene drawing)");
        time_file(&path)?;
    }
    Ok(())
}
