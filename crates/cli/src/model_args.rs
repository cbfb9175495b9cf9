//! Arguments shared by the commands that run a trained model (`eval`, `infer`).

use anyhow::Result;
use fgstp_cli::evaluate::{predict_split, FramePrediction};
use fgstp_cli::run_config::RunConfig;
use fgstp_data::EvalLoader;
use fgstp_model::Model;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use tch::{nn::VarStore, Device};

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
}

/// A configured model with its weights loaded, on the configured device.
pub struct LoadedModel {
    pub cfg: RunConfig,
    pub device: Device,
    pub model: Model,
    /// Owns the weights for as long as the model runs.
    _vs: VarStore,
}

impl ModelArgs {
    pub fn load(&self) -> Result<LoadedModel> {
        let mut cfg = RunConfig::load(&self.config, &self.sets)?;
        if self.no_feature_cache {
            cfg.eval.feature_cache = false;
        }
        let device = cfg.train.device.resolve()?;
        let (vs, model) = fgstp_cli::load_model(&cfg, &self.weights, device)?;
        Ok(LoadedModel {
            cfg,
            device,
            model,
            _vs: vs,
        })
    }
}

impl LoadedModel {
    /// Predicts every sample of `loader` as configured (feature cache, batch size), in order.
    pub fn predict(
        &self,
        loader: &EvalLoader,
        on_frame: impl FnMut(&FramePrediction) -> Result<()>,
    ) -> Result<()> {
        let never = AtomicBool::new(false);
        predict_split(
            &self.model,
            self.device,
            loader,
            &self.cfg,
            &never,
            on_frame,
        )?;
        Ok(())
    }
}
