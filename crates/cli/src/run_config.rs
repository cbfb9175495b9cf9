//! The run configuration's schema: `[model] [data] [train] [eval] [log]` (and optionally
//! `[synth]`), one TOML file per experiment. Every field has the reference's value as its
//! default. Files are read by the generic [`crate::toml_overrides`].

use anyhow::{ensure, Result};
use fgstp_data::synth::SynthConfig;
use fgstp_data::{DataConfig, TrainSampling};
use fgstp_metrics::registry;
use fgstp_model::DeviceSpec;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::toml_overrides;

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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Epochs, counted from 1 (reference: 60).
    pub epochs: usize,
    /// Samples per step (reference: 6).
    pub batch_size: usize,
    /// Adam's learning rate (reference: 1e-4).
    pub lr: f64,
    /// Seed of the initial weights, the shuffle and every augmentation (reference: 2025).
    pub seed: u64,
    /// "auto" (CUDA if available), "cpu", "cuda" or "cuda:N".
    pub device: DeviceSpec,
    /// Gradients are clamped to [-clip, clip] (reference: 0.5, by value); 0 disables.
    pub clip: f64,
    /// The learning rate is multiplied by `lr_decay_rate` every `lr_decay_every` epochs
    /// (reference: 0.1 every 45).
    pub lr_decay_rate: f64,
    pub lr_decay_every: usize,
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
    /// libtorch intra-op threads; 0 = all cores.
    pub threads: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        let sampling = TrainSampling::default();
        Self {
            epochs: 60,
            batch_size: sampling.batch_size,
            lr: 1e-4,
            seed: sampling.seed,
            device: DeviceSpec::Auto,
            clip: 0.5,
            lr_decay_rate: 0.1,
            lr_decay_every: 45,
            pretrained: None,
            pretrained_layout: PretrainedLayout::Partial,
            bce: BceWeighting::Reference,
            threads: 0,
        }
    }
}

impl TrainConfig {
    /// What the training stream needs of this table.
    pub fn sampling(&self) -> TrainSampling {
        TrainSampling {
            batch_size: self.batch_size,
            seed: self.seed,
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
    /// Compute each frame's encoder features once and reuse them for the three triplets
    /// that contain it (same outputs, about 3× fewer encoder passes).
    pub feature_cache: bool,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            every: 5,
            at_start: true,
            best_metric: "jaccard".into(),
            feature_cache: true,
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
        let cfg: RunConfig = toml_overrides::load(path, overrides)?;
        cfg.validate()
            .map_err(|e| e.context(format!("in config {}", path.display())))?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.data.validate(Path::new("[data]"))?;
        let size = i64::from(self.data.train_size);
        self.model.check_input_size(size, size)?;
        ensure!(self.train.epochs >= 1, "train.epochs must be at least 1");
        ensure!(
            self.train.batch_size >= 1,
            "train.batch_size must be at least 1"
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
            self.train.lr_decay_every >= 1,
            "train.lr_decay_every must be at least 1"
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
                gasvid.data.train_size
            ),
            (60, 6, 352)
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
