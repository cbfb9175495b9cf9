//! Training: the reference's loss and optimiser, validation with the paper's metrics, and
//! checkpoints that resume bit for bit.

pub mod board;
pub mod checkpoint;
pub mod loss;
pub mod optim;
pub mod validate;

use anyhow::{bail, Context, Result};
use fgstp_data::{EvalLoader, TrainLoader};
use fgstp_model::checkpoint::{load_into, LoadOptions};
use fgstp_model::{Model, Output};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tch::{nn::VarStore, Kind, Tensor};

use crate::run_config::{PretrainedLayout, RunConfig};
use board::Board;
use checkpoint::{Best, Progress};
use loss::structure_loss;
use optim::{step_lr, Adam, AdamConfig};

/// Metrics that can choose the `best` checkpoint (all: higher is better).
pub const BEST_METRICS: [&str; 11] = [
    "jaccard",
    "f1",
    "jf",
    "sm",
    "wfm",
    "em_mean",
    "em_max",
    "fm_mean",
    "fm_max",
    "iou_mean",
    "dice_mean",
];

pub struct TrainOptions {
    /// The run directory (created; on resume, the run being continued).
    pub run_dir: PathBuf,
    pub resume: bool,
    /// Set by the Ctrl-C handler: save `last` and stop cleanly.
    pub stop: Arc<AtomicBool>,
    /// Behave as if Ctrl-C came right after this many optimiser steps (tests, demos).
    pub stop_after_steps: Option<u64>,
}

#[derive(Debug)]
pub enum Outcome {
    Finished { progress: Progress },
    Interrupted { progress: Progress },
}

/// The nine supervised maps of the reference (three of each pair's four, both pairs' last,
/// and the fused map) or SINet-V2's four, summed; also the parts, for logging.
fn total_loss(
    out: &Output,
    mask: &Tensor,
    cfg: &RunConfig,
) -> (Tensor, Vec<(&'static str, Tensor)>) {
    let bce = cfg.train.bce;
    let sl = |pred: &Tensor| structure_loss(pred, mask, bce);
    match out {
        Output::Fgstp(o) => {
            let pair_t1 = sl(&o.pair_t1[0]) + sl(&o.pair_t1[1]) + sl(&o.pair_t1[2]);
            let pair_t2 = sl(&o.pair_t2[0]) + sl(&o.pair_t2[1]) + sl(&o.pair_t2[2]);
            let last = sl(&o.fused) + sl(&o.pair_t1[3]) + sl(&o.pair_t2[3]);
            let total = &pair_t1 + &pair_t2 + &last;
            (
                total,
                vec![("pair_t1", pair_t1), ("pair_t2", pair_t2), ("final", last)],
            )
        }
        Output::SinetV2(o) => {
            let total = o
                .maps
                .iter()
                .map(sl)
                .fold(Tensor::zeros([], (Kind::Float, mask.device())), |a, b| {
                    a + b
                });
            (total, vec![])
        }
    }
}

pub fn train(cfg: &RunConfig, opts: &TrainOptions) -> Result<Outcome> {
    let device = cfg.train.device.resolve()?;
    let config_toml = toml::to_string_pretty(cfg)?;
    std::fs::create_dir_all(&opts.run_dir)
        .with_context(|| format!("cannot create the run directory {}", opts.run_dir.display()))?;
    let last_path = opts.run_dir.join("last.safetensors");
    let best_path = opts.run_dir.join("best.safetensors");

    crate::prepare_data(cfg)?;
    let train_data = TrainLoader::open(&cfg.data)?;
    let val_data = EvalLoader::open(&cfg.data, &cfg.data.val_split)?;

    // Same seed ⇒ same initial weights.
    tch::manual_seed(cfg.train.seed as i64);
    let mut vs = VarStore::new(device);
    let model = Model::new(&vs.root(), &cfg.model)?;
    let mut adam = Adam::new(
        &vs,
        AdamConfig {
            lr: cfg.train.lr,
            ..AdamConfig::default()
        },
    );

    let mut progress = Progress {
        seed: cfg.train.seed,
        ..Progress::default()
    };
    if opts.resume {
        let loaded = checkpoint::load(&last_path)?;
        let options = LoadOptions {
            drop_prefixes: vec![checkpoint::OPTIMIZER_PREFIX.to_string()],
            ..LoadOptions::strict()
        };
        load_into(&mut vs, &loaded.tensors, &options)
            .with_context(|| format!("cannot resume from {}", last_path.display()))?;
        adam.load_state(|key| loaded.tensors.get(key).map(|t| t.to_device(device)))?;
        progress = loaded.progress;
        eprintln!(
            "resuming {} at epoch {}, batch {} (step {})",
            opts.run_dir.display(),
            progress.epoch + usize::from(progress.batch > 0),
            progress.batch,
            progress.step
        );
    } else if let Some(path) = &cfg.train.pretrained {
        let options = match cfg.train.pretrained_layout {
            PretrainedLayout::Partial => LoadOptions::partial(),
            PretrainedLayout::PvtV2Imagenet => LoadOptions::pvt_v2_imagenet(),
        };
        let weights = fgstp_model::checkpoint::StateDict::read(path)?;
        let report = load_into(&mut vs, &weights, &options)
            .with_context(|| format!("cannot load the pretrained weights {}", path.display()))?;
        eprintln!("pretrained {}: {}", path.display(), report.summary());
    }

    crate::config::write(cfg, &opts.run_dir.join("config.toml"))?;
    let mut board = if cfg.log.tensorboard {
        Some(Board::create(&opts.run_dir.join("tensorboard"))?)
    } else {
        None
    };
    let mut jsonl = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(opts.run_dir.join("metrics.jsonl"))
        .context("cannot open metrics.jsonl")?;
    let mut losses = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(opts.run_dir.join("losses.jsonl"))
        .context("cannot open losses.jsonl")?;

    let stop_requested = |step: u64| {
        opts.stop.load(Ordering::Relaxed) || opts.stop_after_steps.is_some_and(|n| step >= n)
    };
    let save_last = |vs: &VarStore, adam: &Adam, progress: &Progress| {
        checkpoint::save(&last_path, vs, adam, progress, &config_toml)
    };

    let due = |epoch: usize| {
        (epoch == 0 && cfg.eval.at_start)
            || (epoch > 0 && epoch.is_multiple_of(cfg.eval.every))
            || epoch == cfg.train.epochs
    };
    let batches = train_data.batches_per_epoch();
    loop {
        // Validation owed for the epoch just completed (or epoch 0).
        if progress.batch == 0 && !progress.validated {
            if due(progress.epoch) {
                let report = validate::run(
                    &model,
                    device,
                    &val_data,
                    cfg,
                    &opts.stop,
                    board.as_mut(),
                    progress.step,
                )?;
                let Some(report) = report else {
                    save_last(&vs, &adam, &progress)?;
                    return Ok(Outcome::Interrupted { progress });
                };
                let score = validate::metric(&report.overall, &cfg.eval.best_metric);
                let mut line =
                    serde_json::json!({ "epoch": progress.epoch, "step": progress.step });
                for (key, value) in report.overall.entries() {
                    line[key] = serde_json::json!(value);
                }
                line["video_mean"] = serde_json::to_value(&report.video_mean)?;
                writeln!(jsonl, "{line}")?;
                eprintln!(
                    "validation after epoch {}: {}",
                    progress.epoch,
                    validate::summary(&report.overall)
                );
                let improved =
                    score.is_some_and(|s| progress.best.as_ref().is_none_or(|b| s > b.value));
                if improved {
                    progress.best = Some(Best {
                        metric: cfg.eval.best_metric.clone(),
                        value: score.expect("improved implies a score"),
                        epoch: progress.epoch,
                    });
                }
                if improved {
                    progress.validated = true;
                    checkpoint::save(&best_path, &vs, &adam, &progress, &config_toml)?;
                }
            }
            progress.validated = true;
            save_last(&vs, &adam, &progress)?;
        }
        if progress.epoch >= cfg.train.epochs {
            break;
        }

        let epoch = progress.epoch + 1;
        let lr = step_lr(
            cfg.train.lr,
            epoch,
            cfg.train.lr_decay_rate,
            cfg.train.lr_decay_every,
        );
        adam.set_lr(lr);
        if let Some(b) = board.as_mut() {
            b.scalar("train/lr", lr, progress.step);
        }
        let bar = progress_bar(cfg, epoch, batches, progress.batch);
        let (started, mut loss_sum, mut loss_count) = (std::time::Instant::now(), 0.0, 0usize);
        let mut stream = train_data.epoch_from(epoch as u64, progress.batch);
        while progress.batch < batches {
            if stop_requested(progress.step) {
                bar.abandon_with_message("interrupted: saving last.safetensors");
                save_last(&vs, &adam, &progress)?;
                return Ok(Outcome::Interrupted { progress });
            }
            let batch = stream.next().context("the data stream ended early")??;
            let frames: Vec<Tensor> = batch.frames.iter().map(|f| f.to_device(device)).collect();
            let mask = batch.mask.to_device(device);
            let refs: Vec<&Tensor> = frames.iter().take(cfg.model.kind.frames()).collect();
            let out = model.forward_t(&refs, true)?;
            let (loss, parts) = total_loss(&out, &mask, cfg);
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                bar.abandon();
                bail!(
                    "the loss became {value} at epoch {epoch}, batch {} (step {}): training stopped. \
                     The last good checkpoint is {} — lower train.lr (now {lr}) or check the data, \
                     then resume with --resume {}",
                    progress.batch + 1,
                    progress.step + 1,
                    last_path.display(),
                    opts.run_dir.display()
                );
            }
            adam.zero_grad();
            loss.backward();
            if cfg.train.clip > 0.0 {
                adam.clip_grad_value(cfg.train.clip);
            }
            adam.step();
            progress.batch += 1;
            progress.step += 1;
            progress.validated = false;
            loss_sum += value;
            loss_count += 1;

            if progress.step.is_multiple_of(cfg.log.loss_every as u64) || progress.batch == batches
            {
                let mut line = serde_json::json!({ "epoch": epoch, "step": progress.step, "lr": lr, "loss": value });
                for (name, part) in &parts {
                    let v = part.double_value(&[]);
                    line[*name] = serde_json::json!(v);
                    if let Some(b) = board.as_mut() {
                        b.scalar(&format!("train/loss_{name}"), v, progress.step);
                    }
                }
                writeln!(losses, "{line}")?;
                if let Some(b) = board.as_mut() {
                    b.scalar("train/loss", value, progress.step);
                }
            }
            bar.set_message(format!("loss {value:.4} lr {lr:.1e}"));
            bar.inc(1);
        }
        bar.finish_and_clear();
        eprintln!(
            "epoch {epoch}/{}: mean loss {:.4} over {loss_count} steps, lr {lr:.1e}, {:.1} s",
            cfg.train.epochs,
            loss_sum / loss_count.max(1) as f64,
            started.elapsed().as_secs_f64()
        );
        progress.epoch = epoch;
        progress.batch = 0;
        if let Some(b) = board.as_mut() {
            b.flush();
        }
    }
    Ok(Outcome::Finished { progress })
}

fn progress_bar(cfg: &RunConfig, epoch: usize, batches: usize, done: usize) -> ProgressBar {
    let bar = if cfg.log.progress {
        ProgressBar::new(batches as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} {per_sec} ETA {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("epoch {epoch}/{}", cfg.train.epochs));
    bar.set_position(done as u64);
    bar.reset_eta();
    bar
}

/// The run directory for a new run: `<log.dir>/<name>-<YYYYmmdd-HHMMSS>`.
pub fn new_run_dir(cfg: &RunConfig, config_path: &Path) -> PathBuf {
    let name = cfg.log.name.clone().unwrap_or_else(|| {
        config_path
            .file_stem()
            .map_or("run".into(), |s| s.to_string_lossy().into_owned())
    });
    let stamp = crate::fsutil::timestamp();
    cfg.log.dir.join(format!("{name}-{stamp}"))
}
