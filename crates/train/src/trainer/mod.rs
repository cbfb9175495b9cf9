//! Training: the reference's loss and optimiser, validation with the paper's metrics, and
//! checkpoints that resume bit for bit. [`Trainer`] holds a run: [`Trainer::new`] sets it up
//! (or resumes it), [`Trainer::run`] alternates validation (when due) and epochs.

pub mod board;
pub mod train_state;

pub mod optim;
pub mod schedule;
pub mod validate;
pub mod weight_average;

use anyhow::{bail, Context, Result};
use fgstp_data::dataset::{Masks, Split};
use fgstp_data::{EvalLoader, Shard, TrainLoader};
use fgstp_metrics::registry;
use fgstp_metrics::Report;
use fgstp_model::checkpoint::{load_into, LoadOptions, StateDict};
use fgstp_model::runtime::transfer::{self, StreamEvent};
use fgstp_model::Model;
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tch::{nn::VarStore, Device, Kind, Tensor};

use crate::distributed::{Dist, LaunchEnv};
use crate::recipes::recipe;
use crate::run_config::{OptimizerKind, PretrainedLayout, RunConfig, TrainConfig};
use crate::{overrides, progress};
use board::Board;
use optim::{glob_match, Adam, AdamConfig, AdamRule};
use schedule::{rates, At};
use train_state::{weights_load_options, Best, Progress};
use weight_average::{WeightAverage, LIVE_PREFIX};

#[derive(Clone)]
pub struct TrainOptions {
    /// The run directory (created; on resume, the run being continued).
    pub run_dir: PathBuf,
    pub resume: bool,
    /// Set by the Ctrl-C handler: save `last` and stop cleanly.
    pub stop: Arc<AtomicBool>,
    /// Behave as if Ctrl-C came right after this many optimiser steps (tests, demos).
    pub stop_after_steps: Option<u64>,
    /// Read each step's loss one step late on the CPU too, as on a GPU (tests).
    pub read_loss_late: bool,
    /// This process's place in a distributed job (torchrun, srun, `--nproc`); `None` trains
    /// in this process alone.
    pub launch: Option<LaunchEnv>,
    /// Exit at once (status 17, nothing saved) after this many optimiser steps, unless this
    /// worker group was restarted by torchrun (tests of restarts).
    pub crash_after_steps: Option<u64>,
}

#[derive(Debug)]
pub enum Outcome {
    Finished { progress: Progress },
    Interrupted { progress: Progress },
}

/// Whether a phase ran to its end or a stop was requested (after `last` was saved).
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Stopped,
}

/// Sets up (or resumes) the run `opts` describes and trains it to the end or to a stop.
///
/// In a distributed job every rank calls this: they join, agree on the run directory (rank
/// 0's), train in lockstep, and return together.
pub fn train(cfg: &RunConfig, opts: &TrainOptions) -> Result<Outcome> {
    let Some(env) = opts.launch.clone() else {
        return Trainer::new(cfg, opts, None)?.run();
    };
    let device = cfg.train.device.resolve()?;
    let dist = Arc::new(Dist::join(env, &cfg.train, device)?);
    let opts = TrainOptions {
        run_dir: dist.agree_on_run_dir(&opts.run_dir)?,
        ..opts.clone()
    };
    if dist.is_main() {
        eprintln!("run directory: {}", opts.run_dir.display());
    }
    let outcome = Trainer::new(cfg, &opts, Some(Arc::clone(&dist)))?.run()?;
    // Rank 0 hosts the store unless a launcher does: it leaves last.
    dist.barrier()?;
    fgstp_model::runtime::distributed::set_sync_batch_norm(None);
    Ok(outcome)
}

/// Where a step stands in the run.
#[derive(Debug, Clone, Copy)]
struct Position {
    epoch: usize,
    /// Counted from 1 over the run.
    step: u64,
    /// Counted from 1 within the epoch.
    batch: usize,
    lr: f64,
}

/// A step's loss and its parts on their way to the host. On a GPU they are copied to host
/// memory without waiting and read one step later: reading them at once would leave the GPU
/// idle while the CPU queues every backward. On the CPU they are ready when the step returns.
struct QueuedLoss {
    /// `[loss, part…]`, float32; on the host once `ready` has passed.
    values: Tensor,
    ready: Option<StreamEvent>,
    names: Vec<&'static str>,
    at: Position,
    /// Whether `values` ends with the all-reduced stop flag (distributed training).
    has_stop: bool,
}

impl QueuedLoss {
    /// In a distributed job (`dist` with this rank's stop flag, 0 or 1) the values are
    /// averaged over the ranks and the stop flags summed, in one all-reduce.
    fn new(
        loss: &Tensor,
        parts: &[(&'static str, Tensor)],
        device: Device,
        at: Position,
        dist: Option<(&Dist, f64)>,
    ) -> Result<Self> {
        let mut values: Vec<Tensor> = std::iter::once(loss)
            .chain(parts.iter().map(|(_, part)| part))
            .map(|t| t.detach().to_kind(Kind::Float).reshape([1]))
            .collect();
        if let Some((dist, stop)) = dist {
            let world = dist.world() as f64;
            // Scaled so that the sum over ranks is the mean of the values and the count of
            // ranks that want to stop.
            for v in &mut values {
                *v = &*v / world;
            }
            values.push(Tensor::full([1], stop, (Kind::Float, device)));
        }
        let values = Tensor::cat(&values, 0);
        if let Some((dist, _)) = dist {
            dist.group.all_reduce_sum(&values)?;
        }
        let (values, ready) = if device.is_cuda() {
            // Non-blocking to the host: libtorch puts the copy in pinned memory and returns.
            let host = values.to_device_(Device::Cpu, Kind::Float, true, false);
            (host, StreamEvent::record(device)?)
        } else {
            (values, None)
        };
        Ok(Self {
            values,
            ready,
            names: parts.iter().map(|(name, _)| *name).collect(),
            at,
            has_stop: dist.is_some(),
        })
    }

    /// The loss, its named parts, and whether a rank asked to stop; waits for the step's
    /// forward if it is still running.
    fn read(self) -> Result<ReadLoss> {
        if let Some(ready) = &self.ready {
            ready.synchronize()?;
        }
        let mut values = Vec::<f32>::try_from(&self.values)
            .context("cannot read the loss back from libtorch")?;
        let stop = self.has_stop && values.pop().is_some_and(|flags| flags > 0.0);
        let parts = self
            .names
            .iter()
            .zip(&values[1..])
            .map(|(n, v)| (*n, f64::from(*v)));
        Ok(ReadLoss {
            loss: f64::from(values[0]),
            parts: parts.collect(),
            stop,
        })
    }
}

/// A step's loss as read back: its value, its named parts, and whether a rank asked to stop.
struct ReadLoss {
    loss: f64,
    parts: Vec<(&'static str, f64)>,
    stop: bool,
}

/// The losses read in an epoch, for its mean.
#[derive(Default)]
struct LossTally {
    sum: f64,
    count: usize,
}

/// Where the time of distributed training's communication goes, per epoch.
#[derive(Default, Clone, Copy)]
struct CommClock {
    /// Blocking collectives outside backward: the step's loss and stop flag, buffers.
    explicit: f64,
    /// SyncBatchNorm's all-reduces in the forward (process-wide counter at the epoch's start).
    sync_bn_start: f64,
}

/// One training run: the model and optimiser, where training stands, the data streams and the
/// run's logs.
pub struct Trainer<'a> {
    cfg: &'a RunConfig,
    opts: &'a TrainOptions,
    device: Device,
    vs: VarStore,
    model: Model,
    adam: Adam,
    progress: Progress,
    train_data: TrainLoader,
    val_data: EvalLoader,
    log: RunLog,
    /// The resolved configuration, stored in every checkpoint.
    config_toml: String,
    /// The job this process trains in, if distributed.
    dist: Option<Arc<Dist>>,
    /// This process's part of each epoch's samples.
    shard: Shard,
    /// Non-trained variables (BatchNorm's running statistics), broadcast from rank 0 before
    /// each forward as DDP does (`broadcast_buffers`), unless SyncBatchNorm keeps them equal.
    buffers: Vec<Tensor>,
    /// Whether every rank agreed to stop (Ctrl-C on any of them), as of the last step read.
    agreed_stop: bool,
    comm: CommClock,
    /// The moving average of the weights (`train.ema_decay`), from `ema_from_epoch` on.
    average: Option<WeightAverage>,
    /// Rank 0's lock on the run directory, held while it trains.
    _run_lock: Option<std::fs::File>,
}

impl<'a> Trainer<'a> {
    /// Creates the run directory, prepares the data, builds the model (same seed ⇒ same initial
    /// weights) and the optimiser, then continues from `last` (`opts.resume`) or loads the
    /// pretrained weights, and opens the logs.
    pub fn new(
        cfg: &'a RunConfig,
        opts: &'a TrainOptions,
        dist: Option<Arc<Dist>>,
    ) -> Result<Self> {
        let device = match &dist {
            Some(dist) => dist.device,
            None => cfg.train.device.resolve()?,
        };
        cfg.model.precision.set_backend_flags()?;
        let config_toml = toml::to_string_pretty(cfg)?;
        let is_main = dist.as_ref().is_none_or(|d| d.is_main());
        let run_lock = if is_main {
            lock_run_dir(&opts.run_dir)?
        } else {
            None
        };
        let set_up = || -> Result<()> {
            std::fs::create_dir_all(&opts.run_dir).with_context(|| {
                format!("cannot create the run directory {}", opts.run_dir.display())
            })?;
            prepare_data(cfg)
        };
        let shard = match &dist {
            Some(dist) => {
                dist.agree_on_config(&config_toml)?;
                dist.on_main_first("preparing the run directory and the data", set_up)?;
                Shard {
                    rank: dist.rank(),
                    world: dist.world(),
                }
            }
            None => {
                set_up()?;
                Shard::SINGLE
            }
        };
        let spec = recipe(cfg.model.kind).input_spec(cfg);
        let mut train_data = TrainLoader::open_with(&cfg.data, cfg.train.sampling(), &spec)?;
        if cfg.train.twin_batches {
            train_data = train_data.with_twin_batches()?;
            if shard.rank == 0 {
                eprintln!(
                    "twin batches: {} of {} training samples follow their leaking source's",
                    train_data.twin_samples(),
                    train_data.len()
                );
            }
        }
        // Each rank validates its share of the videos (video i in byte order of the names on
        // rank i mod N, the rule of sharded evaluation); the metric states are merged exactly.
        let val_split = Split::open(&cfg.data.root, &cfg.data.val_split, Masks::Required)?;
        let val_split = if shard.world > 1 {
            crate::evaluate::shard_split(
                val_split,
                fgstp_metrics::Shard {
                    index: shard.rank,
                    count: shard.world,
                },
            )
        } else {
            val_split
        };
        let val_data = EvalLoader::new_with(val_split, &cfg.data, &spec)?;

        tch::manual_seed(cfg.train.seed as i64);
        let mut vs = VarStore::new(device);
        let model = Model::new(&vs.root(), &cfg.model)?;
        let mut adam = optimizer(&vs, &cfg.train)?;

        let mut progress = Progress {
            seed: cfg.train.seed,
            ..Progress::default()
        };
        let mut average = None;
        if opts.resume {
            let last = last_path(opts);
            let loaded = train_state::load(&last)?;
            load_into(&mut vs, &loaded.tensors, &weights_load_options())
                .with_context(|| format!("cannot resume from {}", last.display()))?;
            adam.load_state(|key| loaded.tensors.get(key).map(|t| t.to_device(device)))?;
            progress = loaded.progress;
            // A best chosen by another metric is not compared with this one's values (see
            // `new_best`): the next validation replaces it.
            if let Some(best) = progress
                .best
                .as_ref()
                .filter(|b| b.metric != cfg.eval.best_metric)
            {
                if is_main {
                    eprintln!(
                        "best.safetensors was chosen by {} ({:.4} after epoch {}); with \
                         eval.best_metric = {:?} the next validation replaces it, and later \
                         ones are compared with that",
                        best.metric, best.value, best.epoch, cfg.eval.best_metric
                    );
                }
            }
            // A checkpoint with live weights holds the average under the model's keys.
            if loaded
                .tensors
                .iter()
                .any(|(key, _)| key.starts_with(LIVE_PREFIX))
            {
                let resumed =
                    WeightAverage::resume(&vs, cfg.train.ema_decay, progress.ema_updates, |key| {
                        loaded
                            .tensors
                            .get(&format!("{LIVE_PREFIX}{key}"))
                            .map(|t| t.to_device(device))
                    })
                    .with_context(|| format!("cannot resume from {}", last.display()))?;
                // Without an average from now on, the model goes on from the trained weights
                // (an average no longer updated would be validated and saved as it is).
                if cfg.train.ema_decay > 0.0 {
                    average = Some(resumed);
                } else if is_main {
                    eprintln!(
                        "train.ema_decay = 0: training goes on from the trained weights of {}; \
                         their average is dropped",
                        last.display()
                    );
                }
            }
            progress.resume_position(cfg.train.batch_size);
            if is_main {
                eprintln!(
                    "resuming {} at epoch {}, sample {} of the epoch (step {})",
                    opts.run_dir.display(),
                    progress.epoch + usize::from(progress.samples > 0),
                    progress.samples,
                    progress.step
                );
            }
        } else if let Some(path) = &cfg.train.pretrained {
            let weights = StateDict::read(path)?;
            let options = pretrained_options(cfg, &vs, &weights);
            let report = load_into(&mut vs, &weights, &options).with_context(|| {
                format!("cannot load the pretrained weights {}", path.display())
            })?;
            if is_main {
                eprintln!("pretrained {}: {}", path.display(), report.summary());
            }
        }

        let mut buffers = Vec::new();
        if let Some(dist) = &dist {
            buffers = set_up_data_parallel(dist, &vs, &cfg.train)?;
        }
        let log = if is_main {
            overrides::write(cfg, &opts.run_dir.join("config.toml"))?;
            let resumed_at = opts.resume.then_some(progress.step);
            RunLog::open(&opts.run_dir, cfg.log.tensorboard, resumed_at)?
        } else {
            RunLog::none()
        };
        Ok(Self {
            cfg,
            opts,
            device,
            vs,
            model,
            adam,
            progress,
            train_data,
            val_data,
            log,
            config_toml,
            dist,
            shard,
            buffers,
            agreed_stop: false,
            comm: CommClock::default(),
            average,
            _run_lock: run_lock,
        })
    }

    fn is_main(&self) -> bool {
        self.dist.as_ref().is_none_or(|d| d.is_main())
    }

    /// `error` with the lost rank named when training is distributed.
    fn explain(&self, error: anyhow::Error) -> anyhow::Error {
        match &self.dist {
            Some(dist) => dist.explain_failure(error),
            None => error,
        }
    }

    /// Validates when due, trains the next epoch, and so on until the last epoch is trained
    /// and validated, or a stop is requested.
    pub fn run(mut self) -> Result<Outcome> {
        loop {
            if self.validate_if_due()? == Flow::Stopped {
                return Ok(Outcome::Interrupted {
                    progress: self.progress,
                });
            }
            if self.progress.epoch >= self.cfg.train.epochs {
                return Ok(Outcome::Finished {
                    progress: self.progress,
                });
            }
            if self.train_epoch()? == Flow::Stopped {
                return Ok(Outcome::Interrupted {
                    progress: self.progress,
                });
            }
        }
    }

    /// Validation is due after epoch 0 (if `eval.at_start`), every `eval.every` epochs and
    /// after the last.
    fn is_due(&self, epoch: usize) -> bool {
        let eval = &self.cfg.eval;
        (epoch == 0 && eval.at_start)
            || (epoch > 0 && epoch.is_multiple_of(eval.every))
            || epoch == self.cfg.train.epochs
    }

    /// The validation owed for the epoch just completed (or epoch 0), once: scored, logged,
    /// `best` saved if it improved, then `last`.
    fn validate_if_due(&mut self) -> Result<Flow> {
        if self.progress.batch != 0 || self.progress.validated {
            return Ok(Flow::Continue);
        }
        if self.is_due(self.progress.epoch) {
            // A distributed validation runs to its end on every rank (a Ctrl-C is taken at the
            // next step, where the ranks agree on it).
            let never = AtomicBool::new(false);
            let stop = if self.dist.is_some() {
                &never
            } else {
                &*self.opts.stop
            };
            let dist = self.dist.clone();
            let tag = format!("validation/{}/{}", self.progress.epoch, self.progress.step);
            // The average is what is validated (and what `best` and `last` hold).
            if let Some(average) = &mut self.average {
                average.swap();
            }
            let outcome = validate::run(
                &self.model,
                self.device,
                &self.val_data,
                self.cfg,
                stop,
                self.log.board.as_mut(),
                self.progress.step,
                |recorder| match &dist {
                    None => Ok(Some(recorder)),
                    Some(dist) => gather_metric_states(dist, &tag, recorder),
                },
            );
            if let Some(average) = &mut self.average {
                average.swap();
            }
            let outcome = outcome?;
            let report = match outcome {
                validate::Validation::Scored(report) => report,
                validate::Validation::Stopped => {
                    self.save_last()?;
                    return Ok(Flow::Stopped);
                }
                validate::Validation::HandedOver => {
                    self.progress.validated = true;
                    return Ok(Flow::Continue);
                }
            };
            self.log.validation(&self.progress, &report)?;
            eprintln!(
                "validation after epoch {}: {}",
                self.progress.epoch,
                report.overall.summary()
            );
            if self.record_if_best(&report) {
                self.progress.validated = true;
                self.save(&best_path(self.opts))?;
            }
        }
        self.progress.validated = true;
        self.save_last()?;
        Ok(Flow::Continue)
    }

    /// Whether `report` beats the best validation so far by `eval.best_metric` (in that
    /// metric's direction); if so it becomes the best.
    fn record_if_best(&mut self, report: &Report) -> bool {
        let key = &self.cfg.eval.best_metric;
        match new_best(key, report, self.progress.best.as_ref()) {
            Some(value) => {
                self.progress.best = Some(Best {
                    metric: key.clone(),
                    value,
                    epoch: self.progress.epoch,
                });
                true
            }
            None => false,
        }
    }

    /// Sets the learning rates and weight decay of the next optimiser step; returns the base
    /// learning rate (of a parameter group with factor 1).
    fn schedule_step(&mut self, epoch: usize) -> f64 {
        let train = &self.cfg.train;
        let at = At {
            step: self.progress.step,
            epoch,
            total_steps: (train.epochs * self.steps_per_epoch()) as u64,
        };
        let rates = rates(train, at);
        let base = rates.lr(train.lr);
        self.adam
            .set_group_lrs(base, |factor| rates.lr(train.lr * factor));
        self.adam.set_weight_decay(rates.weight_decay);
        base
    }

    /// Optimiser steps of a whole epoch at this world size.
    fn steps_per_epoch(&self) -> usize {
        self.train_data.batches_in(0, self.shard)
    }

    /// Trains epoch `progress.epoch + 1` from sample `progress.samples` of its order on.
    fn train_epoch(&mut self) -> Result<Flow> {
        let cfg = self.cfg;
        let epoch = self.progress.epoch + 1;
        let mut lr = self.schedule_step(epoch);
        self.log.scalar("train/lr", lr, self.progress.step);

        let start_sample = self.progress.samples;
        let remaining = self.train_data.batches_in(start_sample, self.shard);
        // Steps of this epoch, counting those trained before a resume (which may have run with
        // another number of processes).
        let batches = self.progress.batch + remaining;
        let bar = if cfg.log.progress && self.is_main() {
            progress::bar(
                batches as u64,
                format!("epoch {epoch}/{}", cfg.train.epochs),
                "",
            )
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_position(self.progress.batch as u64);
        bar.reset_eta();
        let started = std::time::Instant::now();
        self.comm = CommClock {
            explicit: 0.0,
            sync_bn_start: fgstp_model::runtime::distributed::sync_batch_norm_seconds(),
        };
        let mut losses = LossTally::default();
        // On a GPU each step's loss is read one step late (see `QueuedLoss`).
        let lag = usize::from(self.device.is_cuda() || self.opts.read_loss_late);
        let mut queued: VecDeque<QueuedLoss> = VecDeque::new();
        let mut stream = self
            .train_data
            .epoch_shard(epoch as u64, start_sample, self.shard);
        for k in 0..remaining {
            if self.stop_requested() {
                self.read_losses(&mut queued, 0, &mut losses, &bar, batches)?;
                bar.abandon_with_message("interrupted: saving last.safetensors");
                self.save_last()?;
                return Ok(Flow::Stopped);
            }
            let batch = stream.next().context("the data stream ended early")??;
            lr = self.schedule_step(epoch);
            queued.push_back(self.step(&batch.frames, &batch.mask, epoch, lr)?);
            self.progress.samples +=
                self.train_data
                    .global_batch_samples(start_sample, k, self.shard);
            self.read_losses(&mut queued, lag, &mut losses, &bar, batches)?;
            self.crash_if_asked();
        }
        self.read_losses(&mut queued, 0, &mut losses, &bar, batches)?;
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        // The first batch of an epoch is always waited for; later waits mean the data stream
        // (decode + augmentation on `data.threads`) did not keep up with the model.
        let data = stream.starvation();
        if self.is_main() {
            eprintln!(
                "epoch {epoch}/{}: mean loss {:.4} over {} steps, lr {lr:.1e}, {seconds:.1} s; \
                 data stream: {} of {} steps waited for a batch ({:.1} s){}",
                cfg.train.epochs,
                losses.sum / losses.count.max(1) as f64,
                losses.count,
                data.starved,
                data.requests,
                data.waited.as_secs_f64(),
                self.communication_summary(losses.count, seconds)
            );
        }
        self.progress.epoch = epoch;
        self.progress.batch = 0;
        self.progress.samples = 0;
        self.log.flush();
        Ok(Flow::Continue)
    }

    /// DDP's backward timings so far (zero when training alone).
    fn reducer_timings(&self) -> fgstp_model::runtime::distributed::ReducerTimings {
        self.dist
            .as_ref()
            .and_then(|d| d.group.reducer_timings().ok())
            .unwrap_or_default()
    }

    /// The epoch's communication share (distributed training only): time spent in collectives
    /// or waiting on them, out of the epoch's time.
    fn communication_summary(&mut self, steps: usize, seconds: f64) -> String {
        if self.dist.is_none() {
            return String::new();
        }
        // DDP keeps running means over the steps timed so far in this process: the epoch's
        // steps are counted at that mean.
        let timings = self.reducer_timings();
        let steps = steps as f64;
        let gradients = timings.backward_comm * steps;
        let exposed = timings.exposed_comm() * steps;
        let sync_bn =
            fgstp_model::runtime::distributed::sync_batch_norm_seconds() - self.comm.sync_bn_start;
        let other = self.comm.explicit;
        let total = exposed + sync_bn + other;
        let line = format!(
            "; communication {:.1} s ({:.1}% of the epoch): gradients {:.1} s exposed of {:.1} s \
             all-reduced ({:.0}% overlapped with backward), SyncBatchNorm {:.1} s, loss/stop/buffers \
             {:.1} s",
            total,
            100.0 * total / seconds.max(1e-9),
            exposed,
            gradients,
            if timings.backward_comm > 0.0 {
                100.0 * timings.overlap / timings.backward_comm
            } else {
                0.0
            },
            sync_bn,
            other
        );
        self.log.scalar(
            "train/comm_share",
            total / seconds.max(1e-9),
            self.progress.step,
        );
        line
    }

    /// One optimiser step on a batch: forward, the loss and its parts, backward, clipping,
    /// Adam. The loss comes back queued, to be read by [`Trainer::read_losses`].
    fn step(
        &mut self,
        frames: &[Tensor],
        mask: &Tensor,
        epoch: usize,
        lr: f64,
    ) -> Result<QueuedLoss> {
        let clip = recipe(self.cfg.model.kind).training_clip(self.cfg);
        let device = self.device;
        let frames: Vec<Tensor> = frames
            .iter()
            .map(|f| {
                let f = transfer::upload(f, device)?;
                match clip {
                    // [B·T, C, H, W] → [B, T, C, H, W]
                    Some(t) => {
                        let mut size = f.size();
                        size[0] /= t as i64;
                        size.insert(1, t as i64);
                        Ok(f.view(size.as_slice()))
                    }
                    None => Ok(f),
                }
            })
            .collect::<Result<_>>()?;
        let mask = transfer::upload(mask, device)?;
        let refs: Vec<&Tensor> = frames.iter().take(self.cfg.model.kind.inputs()).collect();
        if let (Some(dist), false) = (&self.dist, self.buffers.is_empty()) {
            // DDP's broadcast_buffers: every rank's forward sees rank 0's running statistics.
            let started = std::time::Instant::now();
            let buffers: Vec<&Tensor> = self.buffers.iter().collect();
            dist.group
                .broadcast(&buffers, 0)
                .map_err(|e| dist.explain_failure(e))?;
            self.comm.explicit += started.elapsed().as_secs_f64();
        }
        // Steps done before this one over all steps of the run (0 for the first).
        let total_steps = self.cfg.train.epochs * self.steps_per_epoch();
        let done = self.progress.step as f64 / total_steps.max(1) as f64;
        self.adam.zero_grad()?;
        let (loss, parts) = self.cfg.model.precision.run(device, || {
            let out = self.model.forward_t(&refs, true)?;
            anyhow::Ok(recipe(self.cfg.model.kind).loss(
                &out,
                &mask,
                crate::loss::LossTerms::for_epoch(&self.cfg.train, epoch),
                done,
            ))
        })??;
        if let Some(failure) = fgstp_model::runtime::distributed::take_sync_failure() {
            return Err(self.explain(failure));
        }
        let at = Position {
            epoch,
            step: self.progress.step + 1,
            batch: self.progress.batch + 1,
            lr,
        };
        if let Some(dist) = &self.dist {
            dist.group
                .prepare_backward(&[&loss])
                .map_err(|e| self.explain(e))?;
        }
        loss.f_backward()
            .map_err(|e| self.explain(anyhow::Error::new(e).context("backward")))?;
        if self.cfg.train.clip > 0.0 {
            self.adam.clip_grad_value(self.cfg.train.clip)?;
        }
        self.adam.step()?;
        let queued = match &self.dist {
            None => QueuedLoss::new(&loss, &parts, device, at, None)?,
            Some(dist) => {
                // The logged loss is the mean over ranks; the stop flag rides along, so every
                // rank stops after the same step. After the gradients' all-reduce the ranks are
                // in step, so this one does not wait for the slower rank's forward.
                let stop = if self.opts.stop.load(Ordering::Relaxed) {
                    1.0
                } else {
                    0.0
                };
                let started = std::time::Instant::now();
                let queued = QueuedLoss::new(&loss, &parts, device, at, Some((dist, stop)))
                    .map_err(|e| self.explain(e))?;
                self.comm.explicit += started.elapsed().as_secs_f64();
                queued
            }
        };
        if self.cfg.train.ema_decay > 0.0 && epoch >= self.cfg.train.ema_from_epoch {
            let decay = self.cfg.train.ema_decay;
            let vs = &self.vs;
            let average = self
                .average
                .get_or_insert_with(|| WeightAverage::start(vs, decay));
            average.update();
            self.progress.ema_updates = average.updates();
        }
        self.progress.batch += 1;
        self.progress.step += 1;
        self.progress.validated = false;
        Ok(queued)
    }

    /// Reads the queued losses until at most `keep` remain: adds them to the epoch's tally,
    /// logs them (every `log.loss_every` steps and the epoch's last) and shows them. A
    /// non-finite loss stops training with the way back named.
    fn read_losses(
        &mut self,
        queued: &mut VecDeque<QueuedLoss>,
        keep: usize,
        tally: &mut LossTally,
        bar: &indicatif::ProgressBar,
        batches: usize,
    ) -> Result<()> {
        while queued.len() > keep {
            let Some(next) = queued.pop_front() else {
                break;
            };
            let at = next.at;
            let ReadLoss { loss, parts, stop } = next.read()?;
            self.agreed_stop |= stop;
            if !loss.is_finite() {
                bar.abandon();
                bail!(
                    "the loss became {loss} at epoch {}, batch {} (step {}): training stopped. \
                     The last good checkpoint is {} — lower train.lr (now {}) or check the \
                     data, then resume with --resume {}",
                    at.epoch,
                    at.batch,
                    at.step,
                    last_path(self.opts).display(),
                    at.lr,
                    self.opts.run_dir.display()
                );
            }
            tally.sum += loss;
            tally.count += 1;
            if at.step.is_multiple_of(self.cfg.log.loss_every as u64) || at.batch == batches {
                self.log.losses(at.epoch, at.step, at.lr, loss, &parts)?;
            }
            bar.set_message(format!("loss {loss:.4} lr {:.1e}", at.lr));
            bar.inc(1);
        }
        Ok(())
    }

    fn crash_if_asked(&self) {
        let restarted = self
            .opts
            .launch
            .as_ref()
            .is_some_and(|e| e.restart_count > 0);
        if !restarted
            && self
                .opts
                .crash_after_steps
                .is_some_and(|n| self.progress.step >= n)
        {
            eprintln!("crashing after step {} as asked", self.progress.step);
            std::process::exit(17);
        }
    }

    fn stop_requested(&self) -> bool {
        // In a distributed job a Ctrl-C counts once every rank has seen it (with the loss of a
        // step), so that all stop after the same step.
        let interrupted = if self.dist.is_some() {
            self.agreed_stop
        } else {
            self.opts.stop.load(Ordering::Relaxed)
        };
        interrupted
            || self
                .opts
                .stop_after_steps
                .is_some_and(|n| self.progress.step >= n)
    }

    /// Writes a checkpoint (rank 0 alone in a distributed job; every rank holds the same
    /// weights and optimiser state).
    fn save(&self, path: &Path) -> Result<()> {
        if !self.is_main() {
            return Ok(());
        }
        let weights = match &self.average {
            Some(average) => average.checkpoint_tensors(),
            None => self.vs.variables().into_iter().collect(),
        };
        train_state::save(path, weights, &self.adam, &self.progress, &self.config_toml)
    }

    fn save_last(&self) -> Result<()> {
        self.save(&last_path(self.opts))
    }
}

/// Rank 0 gets every rank's validation metric state (through the job's store) and merges them
/// exactly; the others hand theirs over and get `None`.
fn gather_metric_states(
    dist: &Dist,
    tag: &str,
    recorder: fgstp_metrics::MetricRecorder,
) -> Result<Option<fgstp_metrics::MetricRecorder>> {
    use fgstp_metrics::MetricRecorder;
    if !dist.is_main() {
        let state = serde_json::to_vec(&recorder.to_state(None, Default::default()))?;
        dist.group
            .store_set(&format!("{tag}/{}", dist.rank()), &state)
            .map_err(|e| dist.explain_failure(e))?;
        return Ok(None);
    }
    let mut merged = recorder;
    for rank in 1..dist.world() {
        let bytes = dist
            .group
            .store_get(&format!("{tag}/{rank}"))
            .map_err(|e| dist.explain_failure(e))?;
        let state = serde_json::from_slice(&bytes)
            .with_context(|| format!("rank {rank}'s validation state is unreadable"))?;
        let theirs = MetricRecorder::from_state(&state)
            .with_context(|| format!("rank {rank}'s validation state"))?;
        merged.try_merge(&theirs)?;
    }
    Ok(Some(merged))
}

/// Makes this rank's model the job's: every variable (parameters and buffers, in name order)
/// broadcast from rank 0, then DDP's Reducer over the trained parameters, and SyncBatchNorm
/// when asked for. Returns the buffers to broadcast before each forward (none with
/// SyncBatchNorm, which keeps them equal).
fn set_up_data_parallel(
    dist: &Arc<Dist>,
    vs: &VarStore,
    train: &TrainConfig,
) -> Result<Vec<Tensor>> {
    let mut variables: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    let all: Vec<&Tensor> = variables.iter().map(|(_, t)| t).collect();
    dist.group
        .broadcast(&all, 0)
        .map_err(|e| dist.explain_failure(e))?;
    let (trained, fixed): (Vec<_>, Vec<_>) =
        variables.into_iter().partition(|(_, t)| t.requires_grad());
    let mib = |m: f64| (m * 1024.0 * 1024.0) as i64;
    dist.group.attach_reducer(
        &trained,
        mib(1.0).min(mib(train.dist_bucket_mb)),
        mib(train.dist_bucket_mb),
        false,
        train.sync_batchnorm,
    )?;
    if dist.is_main() {
        let bytes: i64 = trained
            .iter()
            .map(|(_, t)| t.numel() as i64 * t.kind().elt_size_in_bytes() as i64)
            .sum();
        eprintln!(
            "data parallel over {} processes: {} trained tensors ({:.1} MB of gradients per \
             step) in {} buckets of ≤ {} MiB, SyncBatchNorm {}",
            dist.world(),
            trained.len(),
            bytes as f64 / 1e6,
            dist.group.reducer_buckets()?,
            train.dist_bucket_mb,
            if train.sync_batchnorm { "on" } else { "off" }
        );
    }
    if train.sync_batchnorm {
        fgstp_model::runtime::distributed::set_sync_batch_norm(Some(Arc::clone(&dist.group)));
        Ok(Vec::new())
    } else {
        fgstp_model::runtime::distributed::set_sync_batch_norm(None);
        Ok(fixed.into_iter().map(|(_, t)| t).collect())
    }
}

/// How `train.pretrained` loads into the model: matching keys only ("partial"; tensors whose
/// shape differs are left out where the kind's recipe says its authors skip them, e.g.
/// ZoomNeXt's temporal tensors), or an official PVTv2 ImageNet file into the model's encoder,
/// whose prefix the recipe names.
fn pretrained_options(cfg: &RunConfig, vs: &VarStore, weights: &StateDict) -> LoadOptions {
    let recipe = recipe(cfg.model.kind);
    match cfg.train.pretrained_layout {
        PretrainedLayout::Partial => {
            let variables = vs.variables();
            // A training checkpoint's optimiser state is not weights.
            let mut options = LoadOptions {
                drop_prefixes: vec![optim::STATE_PREFIX.to_string()],
                ..LoadOptions::partial()
            };
            options.drop_prefixes.extend(
                weights
                    .iter()
                    .filter(|(key, t)| {
                        recipe.skips_mismatched_pretrained(key)
                            && variables.get(*key).is_some_and(|v| v.size() != t.size())
                    })
                    .map(|(key, _)| key.to_string()),
            );
            options
        }
        PretrainedLayout::PvtV2Imagenet => LoadOptions {
            prefix_map: vec![(String::new(), recipe.encoder_prefix().to_string())],
            ..LoadOptions::pvt_v2_imagenet()
        },
    }
}

/// The configured optimiser over the model's variables: frozen parameters (`train.frozen`) stop
/// requiring gradients and are left out; the others get their group's learning-rate factor.
fn optimizer(vs: &VarStore, train: &TrainConfig) -> Result<Adam> {
    let mut frozen = 0;
    for (name, var) in vs.variables() {
        if train.frozen.iter().any(|p| glob_match(p, &name)) && var.requires_grad() {
            let _ = var.set_requires_grad(false);
            frozen += 1;
        }
    }
    for pattern in train
        .frozen
        .iter()
        .chain(train.param_groups.iter().flat_map(|g| &g.params))
    {
        if !vs.variables().keys().any(|name| glob_match(pattern, name)) {
            bail!(
                "train.frozen / train.param_groups: the pattern {pattern:?} matches no parameter \
                 of this model; `fgstp weights inspect --verbose` on a checkpoint lists the names"
            );
        }
    }
    let factor = |name: &str| {
        train
            .param_groups
            .iter()
            .find(|g| g.params.iter().any(|p| glob_match(p, name)))
            .map_or(1.0, |g| g.lr_factor)
    };
    let adam = Adam::with_groups(
        vs,
        AdamConfig {
            lr: train.lr,
            weight_decay: train.weight_decay,
            eps: train.adam_eps,
            rule: match train.optimizer {
                OptimizerKind::Adam => AdamRule::Torch,
                OptimizerKind::SltnetAdamw => AdamRule::SltNetAdamW,
            },
            ..AdamConfig::default()
        },
        factor,
    );
    if frozen > 0 || !train.param_groups.is_empty() {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for (_, f) in adam.groups() {
            let key = format!("{f}×");
            match counts.iter_mut().find(|(k, _)| *k == key) {
                Some((_, n)) => *n += 1,
                None => counts.push((key, 1)),
            }
        }
        let groups: Vec<String> = counts
            .iter()
            .map(|(k, n)| format!("{n} at {k} lr"))
            .collect();
        eprintln!(
            "optimiser: {} parameter tensors frozen, {}",
            frozen,
            groups.join(", ")
        );
    }
    Ok(adam)
}

fn last_path(opts: &TrainOptions) -> PathBuf {
    opts.run_dir.join("last.safetensors")
}

fn best_path(opts: &TrainOptions) -> PathBuf {
    opts.run_dir.join("best.safetensors")
}

/// Keeps the lines of the JSON-lines log `path` whose `step` is at most `step` (a line cut off
/// by a kill is dropped too); a missing log is left missing.
fn drop_lines_after(path: &Path, step: u64) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let kept: String = text
        .lines()
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s <= step)
        })
        .flat_map(|line| [line, "\n"])
        .collect();
    if kept.len() == text.len() {
        return Ok(());
    }
    fgstp_metrics::io::write_atomically(path, kept.as_bytes())
        .with_context(|| format!("cannot rewrite {}", path.display()))
}

/// What a run writes besides checkpoints: `metrics.jsonl`, `losses.jsonl` and TensorBoard
/// events.
struct RunLog {
    board: Option<Board>,
    /// `None` on the ranks other than 0 of a distributed job, which write no logs.
    metrics: Option<File>,
    losses: Option<File>,
}

impl RunLog {
    /// Opens the logs for appending; a run resumed at step `resumed_at` first loses the lines
    /// of later steps (written before a kill or a failed save, they would come again).
    fn open(run_dir: &Path, tensorboard: bool, resumed_at: Option<u64>) -> Result<Self> {
        if let Some(step) = resumed_at {
            for name in ["metrics.jsonl", "losses.jsonl"] {
                drop_lines_after(&run_dir.join(name), step)?;
            }
        }
        let append = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(run_dir.join(name))
                .with_context(|| format!("cannot open {name}"))
        };
        Ok(Self {
            board: if tensorboard {
                Some(Board::create(&run_dir.join("tensorboard"))?)
            } else {
                None
            },
            metrics: Some(append("metrics.jsonl")?),
            losses: Some(append("losses.jsonl")?),
        })
    }

    /// A log that writes nothing (ranks other than 0).
    fn none() -> Self {
        Self {
            board: None,
            metrics: None,
            losses: None,
        }
    }

    fn scalar(&mut self, tag: &str, value: f64, step: u64) {
        if let Some(board) = self.board.as_mut() {
            board.scalar(tag, value, step);
        }
    }

    /// One `metrics.jsonl` line: epoch, step, every metric overall, and the video means.
    fn validation(&mut self, progress: &Progress, report: &Report) -> Result<()> {
        let mut line = serde_json::json!({ "epoch": progress.epoch, "step": progress.step });
        for (key, value) in report.overall.entries() {
            line[key] = serde_json::json!(value);
        }
        line["video_mean"] = serde_json::to_value(&report.video_mean)?;
        if let Some(file) = self.metrics.as_mut() {
            writeln!(file, "{line}")?;
        }
        Ok(())
    }

    /// One `losses.jsonl` line, and the loss and its parts as TensorBoard scalars.
    fn losses(
        &mut self,
        epoch: usize,
        step: u64,
        lr: f64,
        loss: f64,
        parts: &[(&str, f64)],
    ) -> Result<()> {
        let mut line = serde_json::json!({ "epoch": epoch, "step": step, "lr": lr, "loss": loss });
        for &(name, value) in parts {
            line[name] = serde_json::json!(value);
            self.scalar(&format!("train/loss_{name}"), value, step);
        }
        if let Some(file) = self.losses.as_mut() {
            writeln!(file, "{line}")?;
        }
        self.scalar("train/loss", loss, step);
        Ok(())
    }

    fn flush(&mut self) {
        if let Some(board) = self.board.as_mut() {
            board.flush();
        }
    }
}

/// Generates the configured synthetic dataset (`[synth]`) at `data.root` on first use, or
/// checks that the one there was made with the same settings.
pub fn prepare_data(cfg: &RunConfig) -> Result<()> {
    let Some(synth) = &cfg.synth else {
        return Ok(());
    };
    let root = &cfg.data.root;
    let bar = std::sync::OnceLock::<indicatif::ProgressBar>::new();
    fgstp_data::synth::prepare::prepare(
        root,
        synth,
        |frames| {
            eprintln!(
                "{} does not exist: generating the synthetic dataset there",
                root.display()
            );
            let _ = bar.set(progress::bar(frames, "synthetic data", "frames"));
        },
        &|| {
            if let Some(bar) = bar.get() {
                bar.inc(1);
            }
        },
    )?;
    if let Some(bar) = bar.get() {
        bar.finish();
    }
    Ok(())
}

/// Locks `run_dir` for this process (creating it): two trainings writing one run directory
/// interleave their logs and overwrite each other's checkpoints. The lock is the OS's (released
/// when the process ends, however it ends); `.lock` names the holder. `None` where the file
/// system has no locks (said once).
fn lock_run_dir(run_dir: &Path) -> Result<Option<std::fs::File>> {
    std::fs::create_dir_all(run_dir)
        .with_context(|| format!("cannot create the run directory {}", run_dir.display()))?;
    let path = run_dir.join(".lock");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "{} is being written by another training ({}): wait for it to end, or give \
                 this one another --run-dir",
                run_dir.display(),
                holder.trim()
            );
        }
        Err(std::fs::TryLockError::Error(e)) => {
            eprintln!(
                "warning: cannot lock {} ({e}); nothing keeps another training from writing \
                 the same run directory",
                path.display()
            );
            return Ok(None);
        }
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    file.set_len(0)?;
    writeln!(file, "process {} on {}", std::process::id(), host.trim())?;
    Ok(Some(file))
}

/// The run directory for a new run: `<log.dir>/<name>-<YYYYmmdd-HHMMSS>`, or with `-2`, `-3` …
/// after it when another run took that second's name. With `claim` the directory is created
/// here (atomically: of runs started in the same second each gets its own); without, it is only
/// proposed (ranks other than 0, which take rank 0's).
pub fn new_run_dir(cfg: &RunConfig, config_path: &Path, claim: bool) -> Result<PathBuf> {
    let name = cfg.log.name.clone().unwrap_or_else(|| {
        config_path
            .file_stem()
            .map_or("run".into(), |s| s.to_string_lossy().into_owned())
    });
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
    let base = cfg.log.dir.join(format!("{name}-{stamp}"));
    if !claim {
        return Ok(base);
    }
    std::fs::create_dir_all(&cfg.log.dir)
        .with_context(|| format!("cannot create log.dir {}", cfg.log.dir.display()))?;
    for n in 1..=1000 {
        let dir = match n {
            1 => base.clone(),
            n => PathBuf::from(format!("{}-{n}", base.display())),
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
        }
    }
    bail!(
        "{}: a thousand runs started in the same second",
        base.display()
    )
}

/// `report`'s value of metric `key` if it beats `best` in the registry's direction for that
/// metric (or there is no best yet); `None` when it does not, or `report` has no value (e.g.
/// `leak_fpr` of a split without leak-free frames).
fn new_best(key: &str, report: &Report, best: Option<&Best>) -> Option<f64> {
    // The configuration was validated against the registry.
    let metric = registry::find(key)?;
    let value = report.overall.get(key)?;
    // A best of another metric (from a run resumed with another `eval.best_metric`) is none.
    best.filter(|b| b.metric == key)
        .is_none_or(|b| metric.better.improves(value, b.value))
        .then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fgstp_metrics::{GrayView, MetricRecorder, MinLeakArea};

    /// A validation of leak-free 4×4 frames, `alarms` of `frames` with a predicted pixel.
    fn validation(alarms: usize, frames: usize) -> Report {
        let mut recorder = MetricRecorder::with_min_leak_area(MinLeakArea::Pixels(1));
        let empty = [0u8; 16];
        for k in 0..frames {
            let mut pred = [0u8; 16];
            pred[0] = if k < alarms { 255 } else { 0 };
            recorder
                .step(
                    "v",
                    GrayView::new(&pred, 4, 4).unwrap(),
                    GrayView::new(&empty, 4, 4).unwrap(),
                )
                .unwrap();
        }
        recorder.results().unwrap()
    }

    #[test]
    fn leak_fpr_picks_the_lower_and_leak_recall_the_higher_value() {
        let best = |metric: &str, value| Best {
            metric: metric.into(),
            value,
            epoch: 0,
        };
        let (quiet, noisy) = (validation(1, 4), validation(3, 4));
        assert_eq!(noisy.overall.get("leak_fpr"), Some(0.75));
        assert_eq!(new_best("leak_fpr", &quiet, None), Some(0.25));
        assert_eq!(
            new_best("leak_fpr", &quiet, Some(&best("leak_fpr", 0.75))),
            Some(0.25)
        );
        assert_eq!(
            new_best("leak_fpr", &noisy, Some(&best("leak_fpr", 0.25))),
            None
        );
        // leak_recall is absent without leak frames: never a new best.
        assert_eq!(new_best("leak_recall", &quiet, None), None);
        // A lower-is-better metric never beats 0.
        let mae = quiet.overall.get("mae").unwrap();
        assert_eq!(new_best("mae", &quiet, Some(&best("mae", 0.0))), None);
        // A best recorded by another metric (a run resumed with another eval.best_metric) is
        // not compared with: a Jaccard of 0 read as an MAE would never be beaten.
        assert_eq!(
            new_best("mae", &quiet, Some(&best("jaccard", 0.0))),
            Some(mae)
        );
    }
}
