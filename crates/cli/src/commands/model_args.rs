//! Arguments shared by the commands that run a trained model (`eval`, `infer`, `watch`).

use anyhow::Result;
use fgstp_model::Precision;
use fgstp_train::run_config::RunConfig;
use fgstp_train::trained_run::LoadedModel;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ModelArgs {
    /// Run configuration (TOML), e.g. the `config.toml` of a training run
    #[arg(long, short, value_name = "FILE")]
    pub config: PathBuf,
    /// Weights: a training checkpoint, or a .pth/.safetensors state dict
    #[arg(long, value_name = "FILE")]
    pub weights: PathBuf,
    /// Override a configuration field, e.g. --set data.protocol=reference (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Encode each frame once per triplet, as the reference does (same results, slower)
    #[arg(long)]
    pub no_feature_cache: bool,
    /// On CUDA, replay batches of a repeated shape as CUDA graphs (eval.cuda_graphs)
    #[arg(long)]
    pub cuda_graphs: bool,
    /// fp32-strict, tf32 or bf16 [default: model.precision, tf32]
    #[arg(long, value_name = "MODE")]
    pub precision: Option<Precision>,
}

impl ModelArgs {
    /// The configuration (with the overrides) and the model with its weights.
    pub fn load(&self) -> Result<LoadedModel> {
        let mut cfg = RunConfig::load(&self.config, &self.sets)?;
        if self.no_feature_cache {
            cfg.eval.feature_cache = false;
        }
        if self.cuda_graphs {
            cfg.eval.cuda_graphs = true;
        }
        if let Some(precision) = self.precision {
            cfg.model.precision = precision;
        }
        LoadedModel::load(cfg, &self.weights)
    }
}
