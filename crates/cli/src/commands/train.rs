//! `fgstp train`: train from a run configuration, or continue a run.

use anyhow::{bail, ensure, Result};
use fgstp_train::distributed::{local_workers, LaunchEnv, Launcher};
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
    /// Exit with status 17 after N steps unless restarted by torchrun (tests of restarts)
    #[arg(long, value_name = "N", hide = true)]
    crash_after_steps: Option<u64>,
    /// Train with N processes on this machine (data parallel; each with train.batch_size),
    /// started by fgstp itself [default: train.processes]; under torchrun or srun leave it out
    #[arg(long, value_name = "N")]
    nproc: Option<usize>,
}

pub fn run(args: Args, threads_from_cli: bool) -> Result<()> {
    let launch = LaunchEnv::from_env()?;
    if let Some(n) = args.nproc {
        match &launch {
            Some(env) if env.launcher == Launcher::Local => {} // a worker of `--nproc`
            Some(env) => bail!(
                "--nproc starts processes itself, but this one was started by {} ({}): leave \
                 --nproc out",
                env.launcher,
                env.describe()
            ),
            None if n == 0 => bail!("--nproc takes a number of processes ≥ 1"),
            None => return start_local_workers(n),
        }
    }
    let config_path = match (&args.config, &args.resume) {
        (Some(path), _) => path.clone(),
        (None, Some(run)) => run.join("config.toml"),
        (None, None) => bail!(
            "give a run configuration: --config configs/quickstart.toml (or --resume RUN_DIR)"
        ),
    };
    let cfg = RunConfig::load(&config_path, &args.sets)?;
    if launch.is_none() && args.nproc.is_none() && cfg.train.processes > 1 {
        eprintln!(
            "train.processes = {} ({}): training with that many processes, as --nproc would",
            cfg.train.processes,
            config_path.display()
        );
        return start_local_workers(cfg.train.processes);
    }
    if cfg.train.threads > 0 && !threads_from_cli {
        tch::set_num_threads(i32::try_from(cfg.train.threads)?);
    }
    let restarted = launch.as_ref().is_some_and(|env| env.restart_count > 0);
    if restarted && args.run_dir.is_none() && args.resume.is_none() {
        bail!(
            "this worker group was restarted by torchrun (TORCHELASTIC_RESTART_COUNT > 0), but \
             the run directory is a new timestamp each start: give --run-dir DIR, so that a \
             restarted group continues DIR's run from its last checkpoint"
        );
    }
    let run_dir = match (&args.resume, args.run_dir) {
        (Some(run), _) => run.clone(),
        (None, Some(dir)) => dir,
        (None, None) => {
            let main = launch.as_ref().is_none_or(|env| env.rank == 0);
            trainer::new_run_dir(&cfg, &config_path, main)?
        }
    };
    if let Some(run) = &args.resume {
        let last = run.join("last.safetensors");
        ensure!(
            last.exists(),
            "--resume {}: there is no {} (the run saved no checkpoint): start it again with \
             --config {} --run-dir {0}",
            run.display(),
            last.display(),
            config_path.display()
        );
    }
    // A restarted worker group continues its run; a fresh start never reuses one.
    let resume = args.resume.is_some() || (restarted && run_dir.join("last.safetensors").exists());
    if !resume && run_dir.join("last.safetensors").exists() {
        bail!(
            "{} already holds a run: continue it with --resume {0}, or choose another --run-dir",
            run_dir.display()
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let distributed = launch.is_some();
    let first = std::sync::OnceLock::<std::time::Instant>::new();
    // Ctrl-C and SIGTERM. Under a launcher the same Ctrl-C arrives twice (from the terminal and
    // forwarded by torchrun or by `--nproc`'s launcher): a repeat within 3 s is that echo, not a
    // request to abort.
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            let echo = distributed
                && first
                    .get()
                    .is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(3));
            if echo {
                return;
            }
            eprintln!("\nsecond Ctrl-C: aborting without saving");
            std::process::exit(130);
        }
        let _ = first.set(std::time::Instant::now());
        eprintln!("\nCtrl-C: saving the last checkpoint after this step (Ctrl-C again to abort)");
    })?;

    let is_main = launch.as_ref().is_none_or(|env| env.rank == 0);
    if launch.is_none() {
        eprintln!("run directory: {}", run_dir.display());
    }
    let options = TrainOptions {
        run_dir,
        resume,
        stop,
        stop_after_steps: args.stop_after_steps,
        read_loss_late: args.read_loss_late,
        launch,
        crash_after_steps: args.crash_after_steps,
    };
    let outcome = trainer::train(&cfg, &options)?;
    if !is_main {
        return Ok(());
    }
    // Rank 0's run directory, which every rank agreed on.
    let run_dir = options.run_dir.clone();
    match outcome {
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

/// `fgstp train --nproc N`: this same command line, N times, as the ranks of one job on this
/// machine (the workers see `FGSTP_LOCAL_LAUNCH=1` and train; this process waits for them).
fn start_local_workers(n: usize) -> Result<()> {
    let exe = std::env::current_exe()?;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    // SIGINT, SIGTERM and SIGHUP are counted here and passed on by `local_workers::run` to
    // each worker as SIGTERM (each saves and stops as on Ctrl-C), while this process keeps
    // waiting for them: `kill PID` or `docker stop` signal this process alone. A Ctrl-C at the
    // terminal also reaches the workers directly; the one passed on follows within
    // milliseconds, which a worker takes as the launcher's echo (see `run`), not as a second
    // Ctrl-C.
    let signals = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let received = Arc::clone(&signals);
    ctrlc::set_handler(move || {
        received.fetch_add(1, Ordering::SeqCst);
    })?;
    eprintln!("starting {n} local workers (ranks 0–{})", n - 1);
    local_workers::run(n, &exe, &args, std::time::Duration::from_secs(30), &signals)
}
