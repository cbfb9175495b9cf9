//! `fgstp train`: train from a run configuration, or continue a run.

use anyhow::{bail, Result};
use fgstp_train::run_config::RunConfig;
use fgstp_train::trainer::{self, Outcome, TrainOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// Run configuration (TOML); with --resume it defaults to the run's own config.toml
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override a configuration field, e.g. --set train.epochs=5 (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Run directory [default: <log.dir>/<config name>-<timestamp>]
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    run_dir: Option<PathBuf>,
    /// Continue the run in RUN_DIR from its last checkpoint
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
    /// Stop as Ctrl-C would (save `last`, exit 0) after this many optimiser steps
    #[arg(long, value_name = "N", hide = true)]
    stop_after_steps: Option<u64>,
    /// Read each step's loss one step late, as training on a GPU does
    #[arg(long, hide = true)]
    read_loss_late: bool,
}

pub fn run(args: Args, threads_from_cli: bool) -> Result<()> {
    let config_path = match (&args.config, &args.resume) {
        (Some(path), _) => path.clone(),
        (None, Some(run)) => run.join("config.toml"),
        (None, None) => bail!(
            "give a run configuration: --config configs/quickstart.toml (or --resume RUN_DIR)"
        ),
    };
    let cfg = RunConfig::load(&config_path, &args.sets)?;
    if cfg.train.threads > 0 && !threads_from_cli {
        tch::set_num_threads(i32::try_from(cfg.train.threads)?);
    }
    let run_dir = match (&args.resume, args.run_dir) {
        (Some(run), _) => run.clone(),
        (None, Some(dir)) => dir,
        (None, None) => trainer::new_run_dir(&cfg, &config_path),
    };
    if args.resume.is_none() && run_dir.join("last.safetensors").exists() {
        bail!(
            "{} already holds a run: continue it with --resume {0}, or choose another --run-dir",
            run_dir.display()
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond Ctrl-C: aborting without saving");
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: saving the last checkpoint after this step (Ctrl-C again to abort)");
    })?;

    eprintln!("run directory: {}", run_dir.display());
    let options = TrainOptions {
        run_dir: run_dir.clone(),
        resume: args.resume.is_some(),
        stop,
        stop_after_steps: args.stop_after_steps,
        read_loss_late: args.read_loss_late,
    };
    match trainer::train(&cfg, &options)? {
        Outcome::Finished { progress } => {
            match &progress.best {
                Some(best) => eprintln!(
                    "done: {} epochs; best {} {:.4} after epoch {} ({})",
                    progress.epoch,
                    best.metric,
                    best.value,
                    best.epoch,
                    run_dir.join("best.safetensors").display()
                ),
                None => eprintln!("done: {} epochs ({})", progress.epoch, run_dir.display()),
            }
            eprintln!(
                "curves: tensorboard --logdir {}",
                run_dir.join("tensorboard").display()
            );
        }
        Outcome::Interrupted { progress } => {
            eprintln!(
                "stopped at epoch {}, batch {} (step {}); saved {}.\ncontinue with: fgstp train --resume {}",
                progress.epoch + usize::from(progress.batch > 0),
                progress.batch,
                progress.step,
                run_dir.join("last.safetensors").display(),
                run_dir.display()
            );
        }
    }
    Ok(())
}
