//! `fgstp`: train, evaluate and run FGSTP gas-leak video segmentation.

mod commands;
#[cfg(test)]
mod docs_check;

use anyhow::Result;
use clap::{Parser, Subcommand};
use commands::{
    bench, compare, data, eval, frames, infer, info, kinds, metrics, synth, train, watch, weights,
};

#[derive(Parser)]
#[command(
    name = "fgstp",
    version,
    about = "Gas-leak segmentation in video: FGSTP (Zhao & Du, ICIP 2025) in Rust on libtorch"
)]
struct Cli {
    /// libtorch intra-op threads [default: all cores; fgstp watch: all but one]
    #[arg(long, global = true, env = "FGSTP_THREADS", value_name = "N")]
    threads: Option<usize>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show tch/libtorch versions, CUDA and cuDNN, MKL/OpenMP, threads, and the libtorch in use
    Info(info::Args),
    /// List the model kinds (FGSTP and the comparison models) with their references and configs
    Kinds(kinds::Args),
    /// Train any model kind from a run configuration, or resume a run
    Train(train::Args),
    /// Score trained weights on a dataset split (metrics table, JSON, masks and overlays)
    Eval(eval::Args),
    /// Segment new footage (a video file, a folder of frames or a dataset split): masks, overlays, probabilities, videos
    Infer(infer::Args),
    /// Write a video's frames (MP4, AVI, FLIR .seq) as OUT_DIR/images/frame_00001.png … to label and train on
    Frames(frames::Args),
    /// Measure parameters, FLOPs, latency, video frames/s (with/without feature cache), train step, data and metrics speed
    Bench(bench::Args),
    /// Check a dataset and print its splits, scenes, frames, masks, sizes and bit depths
    Data(data::Args),
    /// Write synthetic infrared gas-leak videos (train/val/test) in the dataset layout (--video: also as MP4s)
    Synth(synth::Args),
    /// Score mask folders of any system: S-measure, weighted F, MAE, E, F, IoU, Dice, J&F; merge shard states
    Metrics(metrics::Args),
    /// Compare systems side by side: the paper's table, per-video rows, JSON/CSV/Markdown, plots
    Compare(compare::Args),
    /// Inspect checkpoints (.pth/.pt/.safetensors) and convert between PyTorch and safetensors
    Weights(weights::Args),
    /// Watch cameras (RTSP, MJPEG over HTTP, video files, folders of frames, raw frames on standard input): segment frames as they arrive and write leak events
    Watch(watch::Args),
}

fn main() -> std::process::ExitCode {
    // Tensors' memory is reused instead of faulted in afresh for every forward pass (see the
    // function: up to a third faster at full size, same peak memory in training).
    fgstp_model::keep_freed_memory();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    set_threads(cli.threads)?;
    match cli.command {
        Command::Info(args) => info::run(args),
        Command::Kinds(args) => kinds::run(args),
        Command::Train(args) => train::run(args, cli.threads.is_some()),
        Command::Eval(args) => eval::run(args),
        Command::Infer(args) => infer::run(args),
        Command::Frames(args) => frames::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Data(args) => data::run(args),
        Command::Synth(args) => synth::run(args),
        Command::Metrics(args) => metrics::run(args, cli.threads),
        Command::Compare(args) => compare::run(args, cli.threads),
        Command::Weights(args) => weights::run(args),
        Command::Watch(args) => watch::run(args, cli.threads.is_some()),
    }
}

/// The most libtorch threads `--threads` and `train.threads` take.
pub const MAX_THREADS: usize = 1024;

/// Benchmarks are only comparable at a known thread count, so it is always set explicitly.
fn set_threads(requested: Option<usize>) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = match requested {
        Some(0) => anyhow::bail!("--threads must be at least 1 (this machine has {cores} cores)"),
        // libtorch gives each thread a stack: far more than the cores is a typing mistake.
        Some(n) if n > MAX_THREADS => anyhow::bail!(
            "--threads {n} is too many (at most {MAX_THREADS}; this machine has {cores} cores)"
        ),
        Some(n) => n,
        None => cores,
    };
    tch::set_num_threads(i32::try_from(threads)?);
    Ok(())
}
