//! `fgstp-score`: the scoring commands of `fgstp` without libtorch — score any system's mask
//! folders, merge shard states, compare systems with the paper's table and plots.
//! `cargo install --path crates/metrics --features cli`.

use clap::{Parser, Subcommand};
use fgstp_metrics::cli::{compare, metrics};

#[derive(Parser)]
#[command(
    name = "fgstp-score",
    version,
    about = "Score segmentation masks of any system (PySODMetrics-identical), merge shards, compare systems"
)]
struct Cli {
    /// Worker threads [default: all cores]
    #[arg(long, global = true, env = "FGSTP_THREADS", value_name = "N")]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score mask folders of any system: S-measure, weighted F, MAE, E, F, IoU, Dice, J&F
    Metrics(metrics::Args),
    /// Compare systems side by side: the paper's table, per-video rows, JSON/CSV/Markdown, plots
    Compare(compare::Args),
}

fn main() -> std::process::ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Metrics(args) => metrics::run(args, cli.threads),
        Command::Compare(args) => compare::run(args, cli.threads),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Scoring allocates and frees a few megabytes per frame and thread (decoded PNGs, the mask's
/// distance transform); glibc returns such blocks to the kernel and the next frame faults them
/// in again, which was an eighth of `compare`'s CPU time (system time 1.8 s of 13 s for 7
/// systems × 500 frames at 480×640; 0.3 s with this). So blocks under 32 MiB come from the
/// heap and freed memory stays in the process for the next frame. glibc on Linux only. (`fgstp`
/// does the same for all its commands: `fgstp_model::keep_freed_memory`.)
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters, before any worker thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
