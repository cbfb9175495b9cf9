//! A trained model for `fgstp eval` and `fgstp infer`: a run configuration and weights (a
//! training checkpoint or any state dict), loaded onto the configured device.

use anyhow::{Context, Result};
use fgstp_data::dataset::Split;
use fgstp_data::{EvalLoader, SampleRef};
use fgstp_model::checkpoint::{load_into, StateDict};
use fgstp_model::Model;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use tch::{nn::VarStore, Device};

use crate::evaluate::{predict_split, FramePrediction};
use crate::recipes::recipe;
use crate::run_config::RunConfig;
use crate::trainer::train_state::weights_load_options;

/// A configured model with its weights loaded, on the configured device.
pub struct LoadedModel {
    pub cfg: RunConfig,
    pub device: Device,
    pub model: Model,
    /// Owns the weights for as long as the model runs.
    _vs: VarStore,
}

impl LoadedModel {
    /// Builds the configured model on `cfg.train.device` and loads `weights` into it: every
    /// model variable must come from the file (a training checkpoint's optimiser entries are
    /// skipped).
    pub fn load(cfg: RunConfig, weights: &Path) -> Result<Self> {
        let device = cfg.train.device.resolve()?;
        cfg.model.precision.set_backend_flags()?;
        let mut vs = VarStore::new(device);
        let model = Model::new(&vs.root(), &cfg.model)?;
        let file = StateDict::read(weights)?;
        let report = load_into(&mut vs, &file, &weights_load_options()).with_context(|| {
            format!(
                "{} does not fit the configured model ({:?} with a {:?} encoder): check [model] in the config",
                weights.display(),
                cfg.model.kind,
                cfg.model.backbone
            )
        })?;
        eprintln!("weights {}: {}", weights.display(), report.summary());
        Ok(Self {
            cfg,
            device,
            model,
            _vs: vs,
        })
    }

    /// The configured model with its initial weights (drawn from libtorch's generator as
    /// seeded), for tests that need a model but not a trained one.
    #[cfg(test)]
    pub(crate) fn with_initial_weights(cfg: RunConfig) -> Result<Self> {
        let device = cfg.train.device.resolve()?;
        let vs = VarStore::new(device);
        let model = Model::new(&vs.root(), &cfg.model)?;
        Ok(Self {
            cfg,
            device,
            model,
            _vs: vs,
        })
    }

    /// The evaluation samples of `data.root / split` as this model reads them.
    pub fn open_split(&self, split: &str) -> Result<EvalLoader> {
        Ok(EvalLoader::open_with(
            &self.cfg.data,
            split,
            &recipe(self.cfg.model.kind).input_spec(&self.cfg),
        )?)
    }

    /// The samples of an already opened split (`Split::open_footage` for inference, or a shard
    /// of one) as this model reads them.
    pub fn loader_for(&self, split: Split) -> Result<EvalLoader> {
        self.loader_filtered(split, |_| true)
    }

    /// As [`LoadedModel::loader_for`], over the samples `keep` accepts.
    pub fn loader_filtered(
        &self,
        split: Split,
        keep: impl FnMut(&SampleRef) -> bool,
    ) -> Result<EvalLoader> {
        Ok(EvalLoader::new_filtered(
            split,
            &self.cfg.data,
            &recipe(self.cfg.model.kind).input_spec(&self.cfg),
            keep,
        )?)
    }

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
