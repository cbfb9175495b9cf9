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
