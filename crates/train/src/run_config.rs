//! The run configuration's schema: `[model] [data] [train] [eval] [log]` (and optionally
//! `[synth]`), one TOML file per experiment. Every field has the reference's value as its
//! default. Files are read by the generic [`crate::overrides`].

use anyhow::{ensure, Result};
use fgstp_data::synth::SynthConfig;
use fgstp_data::{DataConfig, EmptyMasks, TrainSampling};
use fgstp_metrics::{registry, MinLeakArea};
use fgstp_model::DeviceSpec;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::overrides;

pub mod watch;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    pub model: fgstp_model::Config,
    pub data: DataConfig,
    pub train: TrainConfig,
    pub eval: EvalConfig,
    pub log: LogConfig,
    /// If present and `data.root` does not exist yet, a synthetic dataset is generated there
    /// with these settings before anything else (the quickstart's embedded default).
    pub synth: Option<SynthConfig>,
    /// `fgstp watch`: cameras, and how masks become leak events.
    pub watch: watch::WatchConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Epochs, counted from 1 (reference: 60).
    pub epochs: usize,
    /// Samples per step (reference: 6); a sample is a triplet, a frame or a clip.
    pub batch_size: usize,
    /// The base learning rate (reference: 1e-4); parameter groups scale it.
    pub lr: f64,
    /// "adam" (`torch.optim.Adam`: weight decay added to the gradient) or "sltnet-adamw" (the
    /// long-term SLT-Net's `utils/adamw.py`: decoupled decay `p·(1 − wd)`, not scaled by lr).
    pub optimizer: OptimizerKind,
    /// Weight decay (reference: 0; SLT-Net long-term: 1e-6, scaled by the cyclic schedule).
    pub weight_decay: f64,
    /// Adam's ε, added to the root of the second moment (PyTorch's default: 1e-8).
    pub adam_eps: f64,
    /// Learning-rate factors by parameter name: `[{ params = ["encoder.*"], lr_factor = 0.1 }]`
    /// (glob patterns, `*` = any characters; the first group that matches wins; the rest 1×).
    pub param_groups: Vec<ParamGroup>,
    /// Parameters that are not trained at all (glob patterns), e.g. ZoomNeXt's
    /// `["encoder.patch_embed1.*"]`.
    pub frozen: Vec<String>,
    /// Seed of the initial weights, the shuffle and every augmentation (reference: 2025).
    pub seed: u64,
    /// "auto" (CUDA if available), "cpu", "cuda" or "cuda:N".
    pub device: DeviceSpec,
    /// Gradients are clamped to [-clip, clip] (reference: 0.5, by value); 0 disables.
    pub clip: f64,
    /// "epoch-step": × `lr_decay_rate` every `lr_decay_every` epochs (FGSTP, SLT-Net);
    /// "iteration-step": × `lr_decay_rate` once `lr_milestone` of all steps are done, per step
    /// (ZoomNeXt); "constant"; "cyclic-cosine": the long-term SLT-Net's cosine restarts
    /// (`[train.cyclic]`).
    pub lr_schedule: LrSchedule,
    /// The learning rate is multiplied by `lr_decay_rate` every `lr_decay_every` epochs
    /// (reference: 0.1 every 45).
    pub lr_decay_rate: f64,
    pub lr_decay_every: usize,
    /// "iteration-step": the decay comes after `[numerator, denominator]` of all steps,
    /// `steps · numerator / denominator` rounded down (ZoomNeXt: [2, 3]).
    pub lr_milestone: [u64; 2],
    /// "cyclic-cosine"'s parameters.
    pub cyclic: CyclicConfig,
    /// Frames per training clip of the long-term SLT-Net (reference: 10); ZoomNeXt's video
    /// model always takes its 5.
    pub clip_frames: usize,
    /// Weights to start from (partial load: matching keys only), e.g. the authors' COD10K
    /// backbone `pretrain/cod10k_encoder.pth`; a path relative to the config file's folder's
    /// parent is taken relative to the working directory.
    pub pretrained: Option<PathBuf>,
    /// How to read `pretrained`: "partial" (keys as in FGSTP, e.g. `backbone.*`) or
    /// "pvt-v2-imagenet" (an official PVTv2 checkpoint: keys without prefix, `head.*` dropped).
    pub pretrained_layout: PretrainedLayout,
    /// The BCE term of the structure loss: "reference" (what the reference computes: a plain
    /// mean) or "edge-weighted" (what it intended).
    pub bce: BceWeighting,
    /// How frames with an empty mask (leak-free frames) are trained: "reference" (the mask's
    /// salt-and-pepper noise and the structure loss's IoU term, as the reference) or
    /// "leak-free" (the mask stays empty; the BCE term alone; see `loss::LossTerms`).
    pub empty_masks: EmptyMasks,
    /// With `empty_masks = "leak-free"`: the area, as a share of the frame, against which a
    /// leak-free frame's marked area is charged (`Σp / (Σp + K)`); 0 charges nothing (the BCE
    /// term alone).
    pub false_area_scale: f64,
    /// The first epoch (1-based) whose leak-free frames are charged their false area; the
    /// epochs before it train them with the BCE term alone, so that the model first learns
    /// what gas looks like before it is taught to stay quiet where there is none.
    pub false_area_from_epoch: usize,
    /// With `empty_masks = "leak-free"`: the share of a leak-free frame's pixels, its most
    /// confident ones, whose mean BCE is added to its loss (from `false_area_from_epoch` on);
    /// 0 adds nothing. See `loss::LossTerms::false_peak_share`.
    pub false_peak_share: f64,
    /// The weight of that term (1: as the frame's mean BCE is weighted).
    pub false_peak_weight: f64,
    /// With `false_peak_share`: a leak frame's most confident pixels inside its mask (the same
    /// share) are charged `−log p` with the same weight. See `loss::LossTerms::leak_peak`.
    pub leak_peak: bool,
    /// A generated dataset's leak-free twins trained in the same step as the scenes they are
    /// twins of (each twin sample right after its source's in the epoch's order), so that a
    /// step sees the same frames with gas and without. See `Loader::with_twin_batches`.
    pub twin_batches: bool,
    /// Decay of an exponential moving average of the weights, updated after every optimiser
    /// step from `ema_from_epoch` on; validation, `best` and `last` use the average (the
    /// trained weights ride along for resuming). 0 = no average (the reference). See
    /// `trainer::weight_average`.
    pub ema_decay: f64,
    /// The first epoch (1-based) whose steps enter the average; it starts from the weights
    /// of that epoch's first step.
    pub ema_from_epoch: usize,
    /// libtorch intra-op threads; 0 = all cores.
    pub threads: usize,
    /// Processes that `fgstp train` starts on this machine when no launcher (torchrun, srun)
    /// started it: 1 trains in this process; N > 1 is `--nproc N` (data parallel, each process
    /// with `batch_size`), which the command line's `--nproc` overrides.
    pub processes: usize,
    /// Distributed training's backend: "auto" (NCCL on CUDA, Gloo on the CPU), "gloo" or
    /// "nccl". Used only when a launcher (torchrun, srun, `--nproc`) starts the processes.
    pub dist_backend: DistBackend,
    /// Seconds a collective or the rendezvous may wait for the other processes before this
    /// one gives up (PyTorch's default: 1800).
    pub dist_timeout: f64,
    /// SyncBatchNorm: in distributed training, BatchNorm's batch statistics over every
    /// process's batch (all-reduced in the forward); off as in DDP (each process its own).
    pub sync_batchnorm: bool,
    /// Size of the gradient buckets all-reduced while backward runs, in MiB (DDP's
    /// `bucket_cap_mb`: 25; the first bucket 1 MiB, as DDP).
    pub dist_bucket_mb: f64,
}

/// `train.dist_backend`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DistBackend {
    /// NCCL when training on CUDA, Gloo on the CPU.
    #[default]
    Auto,
    Gloo,
    Nccl,
}

impl Default for TrainConfig {
    fn default() -> Self {
        let sampling = TrainSampling::default();
        Self {
            epochs: 60,
            batch_size: sampling.batch_size,
            lr: 1e-4,
            optimizer: OptimizerKind::Adam,
            weight_decay: 0.0,
            adam_eps: 1e-8,
            param_groups: Vec::new(),
            frozen: Vec::new(),
            seed: sampling.seed,
            device: DeviceSpec::Auto,
            clip: 0.5,
            lr_schedule: LrSchedule::EpochStep,
            lr_decay_rate: 0.1,
            lr_decay_every: 45,
            lr_milestone: [2, 3],
            cyclic: CyclicConfig::default(),
            clip_frames: 10,
            pretrained: None,
            pretrained_layout: PretrainedLayout::Partial,
            bce: BceWeighting::Reference,
            empty_masks: EmptyMasks::Reference,
            false_area_scale: 0.01,
            false_area_from_epoch: 1,
            false_peak_share: 0.0,
            false_peak_weight: 1.0,
            leak_peak: false,
            twin_batches: false,
            ema_decay: 0.0,
            ema_from_epoch: 1,
            threads: 0,
            processes: 1,
            dist_backend: DistBackend::Auto,
            dist_timeout: 1800.0,
            sync_batchnorm: false,
            dist_bucket_mb: 25.0,
        }
    }
}

impl TrainConfig {
    /// What the training stream needs of this table.
    pub fn sampling(&self) -> TrainSampling {
        TrainSampling {
            batch_size: self.batch_size,
            seed: self.seed,
            empty_masks: self.empty_masks,
        }
    }
}

/// The optimiser's update rule (`train.optimizer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// `torch.optim.Adam` (FGSTP, SLT-Net short-term, ZoomNeXt).
    #[default]
    Adam,
    /// SLT-Net's own `utils/adamw.py` (its long-term model): bias correction folded into the
    /// step size, `eps` added to the uncorrected √v, weight decay `p·(1 − wd)` not scaled by lr.
    SltnetAdamw,
}

/// A learning-rate factor for the parameters whose names match `params`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamGroup {
    /// Glob patterns over state-dict names (`*` = any characters).
    pub params: Vec<String>,
    /// Multiplies the learning rate (ZoomNeXt's encoder: 0.1).
    pub lr_factor: f64,
}

/// How the learning rate moves (`train.lr_schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrSchedule {
    /// FGSTP's and SLT-Net's `adjust_lr`: `lr · rate^(epoch / every)`, epochs from 1.
    #[default]
    EpochStep,
    /// ZoomNeXt's "step" scheduler, per step: `lr · rate^((step + 1) / milestone)`.
    IterationStep,
    /// ZoomNeXt's video fine-tuning.
    Constant,
    /// SLT-Net long-term's `CyclicLRWithRestarts`, as its training loop calls it (see
    /// `[train.cyclic]`).
    CyclicCosine,
}

/// `CyclicLRWithRestarts(optimizer, batch_size, epoch_size, restart_period, t_mult,
/// policy="cosine", min_lr)`. The reference's training loop calls its `step()` (meant once per
/// epoch) before every batch, so a "period" counts optimiser steps, not epochs; this reproduces
/// that: step k of a cycle of period P has lr `min_lr + (lr − min_lr)·(1 + cos(π·t/P))/2`, t
/// running 0 … P in the first cycle and 1 … P after each restart, P growing to ⌈P·t_mult⌉; the
/// weight decay is `weight_decay · (1 + cos(π·t/P))/2 · √(batch_size / (epoch_size · P))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CyclicConfig {
    /// The first period (reference: 5).
    pub period: u64,
    /// Each period is the previous one × `t_mult`, rounded up (reference: 1.2).
    pub t_mult: f64,
    /// "Training samples per epoch" in the weight-decay normalisation (reference: 1024).
    pub epoch_size: u64,
    /// The floor of the learning rate (reference: 1e-7).
    pub min_lr: f64,
}

impl Default for CyclicConfig {
    fn default() -> Self {
        Self {
            period: 5,
            t_mult: 1.2,
            epoch_size: 1024,
            min_lr: 1e-7,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PretrainedLayout {
    Partial,
    PvtV2Imagenet,
}

/// How the BCE term of the structure loss is weighted (`train.bce`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BceWeighting {
    /// What the reference computes. It passes `reduce='none'` to
    /// `binary_cross_entropy_with_logits`; `reduce` is PyTorch's legacy boolean flag, so the
    /// call returns the batch mean and the "edge weighting" that follows cancels out.
    #[default]
    Reference,
    /// What the reference meant: per-pixel BCE weighted by the same edge map as the IoU term.
    EdgeWeighted,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Validate every N epochs (reference: 5), at epoch 0 if `at_start`, and after the last.
    pub every: usize,
    pub at_start: bool,
    /// The metric that picks the `best` checkpoint, any key of the metric registry (its
    /// direction decides whether higher or lower is better; reference: "jaccard").
    pub best_metric: String,
    /// Frame-level detection (`leak_recall`, `leak_fpr`): a frame is predicted leak when at
    /// least this many pixels have probability > 0.5 — pixels (`40`, `"40px"`) or percent of
    /// the frame (`"0.5%"`, rounded up, at least 1 pixel). Validation and `fgstp eval`.
    pub min_leak_area: MinLeakArea,
    /// Compute each frame's encoder features once and reuse them for the three triplets
    /// that contain it (same outputs, about 3× fewer encoder passes).
    pub feature_cache: bool,
    /// On CUDA: replay batches of a shape seen before as CUDA graphs (one launch instead of
    /// thousands; same maps up to the GPU's float rounding). Ignored, with a note, elsewhere.
    pub cuda_graphs: bool,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            every: 5,
            at_start: true,
            best_metric: "jaccard".into(),
            min_leak_area: MinLeakArea::default(),
            feature_cache: true,
            cuda_graphs: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Where runs go: `<dir>/<name>-<timestamp>/` unless `--run-dir` is given.
    pub dir: PathBuf,
    /// Run name prefix (default: the config file's stem).
    pub name: Option<String>,
    /// Write TensorBoard event files into `<run>/tensorboard/`.
    pub tensorboard: bool,
    /// Training losses are logged every N steps.
    pub loss_every: usize,
    /// Validation samples rendered to TensorBoard (frame | mask | prediction) per validation.
    pub images: usize,
    /// Show a progress bar (otherwise a line per epoch).
    pub progress: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("weights"),
            name: None,
            tensorboard: true,
            loss_every: 10,
            images: 4,
            progress: true,
        }
    }
}

impl RunConfig {
    /// Reads a config file with `--set` overrides and checks what serde cannot.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let cfg: RunConfig = overrides::load(path, overrides)?;
        cfg.validate()
            .map_err(|e| e.context(format!("in config {}", path.display())))?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.watch.validate()?;
        self.data.validate(Path::new("[data]"))?;
        if let Some(synth) = &self.synth {
            synth.validate_keys().map_err(anyhow::Error::msg)?;
        }
        let (height, width) = self.data.train_size.hw();
        self.model.check_train_size(height, width)?;
        // Upper bounds far beyond any use: past them a typing mistake overflows a step count,
        // or asks for terabytes or a million threads, before anything says which key it was.
        ensure!(
            (1..=1_000_000).contains(&self.train.epochs),
            "train.epochs must be 1 to 1000000, not {}",
            self.train.epochs
        );
        ensure!(
            (1..=65_536).contains(&self.train.batch_size),
            "train.batch_size must be 1 to 65536, not {}",
            self.train.batch_size
        );
        ensure!(
            self.train.threads <= 1024,
            "train.threads must be at most 1024 (0: one per core), not {}",
            self.train.threads
        );
        ensure!(
            self.train.lr_decay_rate > 0.0 && self.train.lr_decay_rate.is_finite(),
            "train.lr_decay_rate must be a positive factor (the reference: 0.1), not {}",
            self.train.lr_decay_rate
        );
        ensure!(
            self.train.lr > 0.0 && self.train.lr.is_finite(),
            "train.lr must be positive"
        );
        ensure!(
            self.train.clip >= 0.0,
            "train.clip must be ≥ 0 (0 disables clipping)"
        );
        ensure!(
            self.train.false_area_scale >= 0.0 && self.train.false_area_scale.is_finite(),
            "train.false_area_scale must be ≥ 0 (0 charges no false area), not {}",
            self.train.false_area_scale
        );
        ensure!(
            self.train.false_area_from_epoch >= 1,
            "train.false_area_from_epoch must be at least 1 (epochs count from 1)"
        );
        ensure!(
            (0.0..=1.0).contains(&self.train.false_peak_share),
            "train.false_peak_share must be a share of the frame in [0, 1] (0 adds nothing), not {}",
            self.train.false_peak_share
        );
        ensure!(
            self.train.false_peak_weight >= 0.0 && self.train.false_peak_weight.is_finite(),
            "train.false_peak_weight must be ≥ 0, not {}",
            self.train.false_peak_weight
        );
        ensure!(
            (0.0..1.0).contains(&self.train.ema_decay),
            "train.ema_decay must be in [0, 1) (0: no average of the weights; 0.99 averages \
             over about the last 100 steps), not {}",
            self.train.ema_decay
        );
        ensure!(
            self.train.ema_from_epoch >= 1,
            "train.ema_from_epoch must be at least 1 (epochs count from 1)"
        );
        ensure!(
            self.train.adam_eps > 0.0 && self.train.adam_eps.is_finite(),
            "train.adam_eps must be positive, not {}",
            self.train.adam_eps
        );
        ensure!(
            self.train.dist_timeout > 0.0 && self.train.dist_timeout <= 1e7,
            "train.dist_timeout must be a positive number of seconds up to 1e7 (about 4 \
             months), not {}",
            self.train.dist_timeout
        );
        ensure!(
            (1..=1024).contains(&self.train.processes),
            "train.processes must be 1 to 1024 (1: train in this process), not {}",
            self.train.processes
        );
        ensure!(
            self.train.dist_bucket_mb > 0.0 && self.train.dist_bucket_mb.is_finite(),
            "train.dist_bucket_mb must be a positive size in MiB, not {}",
            self.train.dist_bucket_mb
        );
        ensure!(
            self.train.lr_decay_every >= 1,
            "train.lr_decay_every must be at least 1"
        );
        ensure!(
            self.train.weight_decay >= 0.0 && self.train.weight_decay.is_finite(),
            "train.weight_decay must be ≥ 0"
        );
        for group in &self.train.param_groups {
            ensure!(
                group.lr_factor >= 0.0 && group.lr_factor.is_finite() && !group.params.is_empty(),
                "train.param_groups: each group needs params = [\"pattern\", …] and an lr_factor ≥ 0 \
                 (got {group:?}); to stop training parameters, list them in train.frozen"
            );
        }
        let [numerator, denominator] = self.train.lr_milestone;
        ensure!(
            denominator > 0 && numerator <= denominator,
            "train.lr_milestone = [{numerator}, {denominator}] must be a fraction of the run in \
             [0, 1] (ZoomNeXt: [2, 3])"
        );
        let cyclic = &self.train.cyclic;
        ensure!(
            (1..=1_000_000).contains(&cyclic.period)
                && (1.0..=100.0).contains(&cyclic.t_mult)
                && cyclic.epoch_size >= 1
                && cyclic.min_lr >= 0.0
                && cyclic.min_lr <= self.train.lr,
            "train.cyclic = {cyclic:?}: needs period 1 to 1000000, t_mult 1 to 100, \
             epoch_size ≥ 1 and 0 ≤ min_lr ≤ train.lr (reference: 5, 1.2, 1024, 1e-7)"
        );
        ensure!(
            self.train.clip_frames >= 1,
            "train.clip_frames must be at least 1 (the long-term SLT-Net's reference: 10)"
        );
        ensure!(self.eval.every >= 1, "eval.every must be at least 1");
        ensure!(
            self.log.loss_every >= 1,
            "log.loss_every must be at least 1"
        );
        ensure!(
            registry::find(&self.eval.best_metric).is_some(),
            "eval.best_metric = {:?}: choose one of {:?}",
            self.eval.best_metric,
            registry::keys()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs")
    }

    /// Dotted paths of every value in a TOML table.
    fn keys(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
        for (k, v) in table {
            let path = format!("{prefix}{k}");
            match v {
                toml::Value::Table(t) if !t.is_empty() && path != "data.sixteen_bit" => {
                    keys(t, &format!("{path}."), out)
                }
                _ => out.push(path),
            }
        }
    }

    #[test]
    fn the_minimum_leak_area_and_detection_metrics_are_set_like_other_keys() {
        let base = configs().join("gasvid.toml");
        let cfg = RunConfig::load(
            &base,
            &[
                "eval.min_leak_area=\"40px\"".into(),
                "eval.best_metric=\"leak_fpr\"".into(),
            ],
        )
        .unwrap();
        assert_eq!(cfg.eval.min_leak_area, MinLeakArea::Pixels(40));
        assert_eq!(cfg.eval.best_metric, "leak_fpr");
        let cfg = RunConfig::load(&base, &["eval.min_leak_area=12".into()]).unwrap();
        assert_eq!(cfg.eval.min_leak_area, MinLeakArea::Pixels(12));
        let cfg = RunConfig::load(&base, &["eval.min_leak_area=\"1.5%\"".into()]).unwrap();
        assert_eq!(cfg.eval.min_leak_area.to_string(), "1.5%");
        let text = toml::to_string(&cfg).unwrap();
        assert!(text.contains("min_leak_area = \"1.5%\""), "{text}");
        for bad in ["\"-1%\"", "0", "\"big\"", "0.5"] {
            let err = RunConfig::load(&base, &[format!("eval.min_leak_area={bad}")]).unwrap_err();
            let err = format!("{err:#}");
            assert!(
                err.contains("min_leak_area") && err.contains("0.5%"),
                "{bad}: {err}"
            );
        }
        assert_eq!(RunConfig::default().eval.min_leak_area.to_string(), "0.5%");
    }

    #[test]
    fn false_area_keys_out_of_range_are_named() {
        let base = configs().join("gasvid.toml");
        for bad in [
            "train.false_area_scale=-0.1",
            "train.false_area_from_epoch=0",
            "train.false_peak_share=1.5",
            "train.false_peak_weight=-1",
        ] {
            let err = format!("{:#}", RunConfig::load(&base, &[bad.into()]).unwrap_err());
            let key = bad.split('=').next().unwrap();
            assert!(err.contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn training_and_watch_values_out_of_range_are_named() {
        let base = configs().join("gasvid.toml");
        for bad in [
            "train.ema_decay=1",
            "train.ema_decay=-0.5",
            "train.ema_from_epoch=0",
            // Beyond what a duration can hold, or what the clips can keep in memory.
            "watch.http.live_fps=1e-20",
            "watch.false_positive_hold=1e13",
            "watch.stall_timeout=inf",
            "watch.stats_interval=0",
            "watch.pre_capture=61",
            "watch.retention_days=1e15",
            "watch.events.cutoff=1e30",
        ] {
            let err = format!("{:#}", RunConfig::load(&base, &[bad.into()]).unwrap_err());
            let key = bad.split('=').next().unwrap();
            let name = key.rsplit('.').next().unwrap();
            assert!(err.contains(name), "{bad}: {err}");
        }
        for good in [
            "train.ema_decay=0.999",
            "watch.pre_capture=60",
            "watch.false_positive_hold=86400",
            "watch.http.live_fps=0.5",
        ] {
            RunConfig::load(&base, &[good.into()]).unwrap();
        }
    }

    #[test]
    fn sizes_and_kind_specific_mistakes_are_named() {
        let base = configs().join("gasvid.toml");
        let long = RunConfig::load(
            &base,
            &[
                "model.kind=\"slt-net-long\"".into(),
                "data.train_size=352".into(),
            ],
        )
        .unwrap_err();
        assert!(format!("{long:#}").contains("256×448"), "{long:#}");
        let bad = RunConfig::load(&base, &["train.lr_milestone=[3, 2]".into()]).unwrap_err();
        assert!(format!("{bad:#}").contains("lr_milestone"), "{bad:#}");
        let rect = RunConfig::load(&base, &["data.train_size=[256, 448]".into()]).unwrap();
        assert_eq!(rect.data.train_size.hw(), (256, 448));
        let text = toml::to_string(&rect).unwrap();
        assert!(text.contains("train_size = [256, 448]"), "{text}");
    }

    /// (ZoomNeXt's two configurations are checked with its recipe.)
    #[test]
    fn shipped_configs_load_and_gasvid_spells_out_every_field() {
        let quickstart = RunConfig::load(&configs().join("quickstart.toml"), &[]).unwrap();
        assert!(
            quickstart.synth.is_some(),
            "the quickstart generates its data"
        );
        let gasvid = RunConfig::load(&configs().join("gasvid.toml"), &[]).unwrap();
        assert_eq!(
            (
                gasvid.train.epochs,
                gasvid.train.batch_size,
                gasvid.data.train_size.hw()
            ),
            (60, 6, (352, 352))
        );
        assert_eq!(
            (
                gasvid.train.lr,
                gasvid.train.clip,
                gasvid.train.lr_decay_every
            ),
            (1e-4, 0.5, 45)
        );
        assert_eq!((gasvid.train.seed, gasvid.eval.every), (2025, 5));

        let slt = RunConfig::load(&configs().join("slt-net.toml"), &[]).unwrap();
        assert_eq!(slt.model.kind, fgstp_model::ModelKind::SltNet);
        assert_eq!(
            (slt.train.lr, slt.train.batch_size, slt.train.lr_decay_every),
            (1e-6, 8, 50)
        );
        assert_eq!(slt.eval.best_metric, "mae");
        let long = RunConfig::load(&configs().join("slt-net-long.toml"), &[]).unwrap();
        assert_eq!(long.model.kind, fgstp_model::ModelKind::SltNetLong);
        assert_eq!(long.data.train_size.hw(), (256, 448));
        assert_eq!(long.train.optimizer, OptimizerKind::SltnetAdamw);
        assert_eq!(long.train.lr_schedule, LrSchedule::CyclicCosine);
        assert_eq!(
            (long.train.clip_frames, long.train.weight_decay),
            (10, 1e-6)
        );
        assert!(long.data.prior_dir.as_deref().unwrap().contains("{split}"));

        let written: toml::Table = std::fs::read_to_string(configs().join("gasvid.toml"))
            .unwrap()
            .parse()
            .unwrap();
        let resolved: toml::Table = toml::to_string(&gasvid).unwrap().parse().unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        keys(&written, "", &mut a);
        keys(&resolved, "", &mut b);
        a.sort();
        b.sort();
        assert_eq!(
            a, b,
            "configs/gasvid.toml should list every configuration field"
        );
    }
}
