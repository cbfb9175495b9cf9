//! The [`Recipe`] trait: what the rest of the workspace needs to know of one model kind.

use std::sync::atomic::AtomicBool;

use anyhow::Result;
use fgstp_data::{EvalLoader, InputSpec};
use fgstp_model::{Model, ModelKind, Output};
use tch::{Device, Tensor};

pub use crate::loss::Loss;
use crate::loss::LossTerms;
use crate::run_config::RunConfig;

/// Receives each evaluated frame: the sample's position in the loader, its probability map and
/// its 8-bit grey map (both at the frame's original size).
pub type FrameSink<'a> = dyn FnMut(usize, Vec<f32>, Vec<u8>) -> Result<()> + 'a;

/// The facts `fgstp kinds` and the docs list of a kind.
#[derive(Debug)]
pub struct About {
    /// `model.kind` as configurations spell it (`slt-net-long`).
    pub name: &'static str,
    /// The model, in a few words.
    pub model: &'static str,
    /// The authors' code it reproduces.
    pub reference: &'static str,
    /// The shipped configuration that trains it as its authors do.
    pub config: &'static str,
    /// The learning-rate recipe of that configuration, in a few words.
    pub lr_recipe: &'static str,
}

/// What the rest of the workspace needs to know of one model kind.
pub trait Recipe: Sync {
    /// The kind this recipe is for.
    fn kind(&self) -> ModelKind;
    /// What `fgstp kinds` and the docs say of it.
    fn about(&self) -> &'static About;

    /// What it reads from the data: training samples, pixels, masks, augmentation, the
    /// reference protocol's frames.
    fn input_spec(&self, cfg: &RunConfig) -> InputSpec;
    /// Frames per training sample that its forward sees as a clip dimension (`[B·T, …]` batches
    /// become `[B, T, …]`), if any.
    fn training_clip(&self, _cfg: &RunConfig) -> Option<usize> {
        None
    }
    /// Checks of the run configuration that only this kind needs.
    fn validate(&self, _cfg: &RunConfig) -> Result<()> {
        Ok(())
    }

    /// The training loss of a forward pass and its logged parts. `progress`: the fraction of
    /// training done, in [0, 1].
    fn loss(&self, out: &Output, mask: &Tensor, terms: LossTerms, progress: f64) -> Loss;

    /// Where an official PVTv2 ImageNet checkpoint's keys go in this model (the prefix of its
    /// encoder in the state dict).
    fn encoder_prefix(&self) -> &'static str;
    /// Pretrained tensors (`train.pretrained_layout = "partial"`) that are left out when their
    /// shape differs from the model's: none, except where the authors skip them.
    fn skips_mismatched_pretrained(&self, _key: &str) -> bool {
        false
    }

    /// Its authors' own evaluation for `data.protocol = "reference"`, where it differs from
    /// predicting each frame alone: returns `None` to use the common path, else whether it ran
    /// to the end (`false` when `stop` was raised).
    fn reference_evaluation(
        &self,
        _model: &Model,
        _device: Device,
        _loader: &EvalLoader,
        _cfg: &RunConfig,
        _stop: &AtomicBool,
        _on_frame: &mut FrameSink<'_>,
    ) -> Option<Result<bool>> {
        None
    }

    /// Whether video inference encodes each frame once and reuses its features in every
    /// sample that contains it.
    fn has_feature_cache(&self) -> bool {
        self.kind().has_feature_cache()
    }
    /// Frames per sample.
    fn frames(&self) -> usize {
        self.kind().frames()
    }
}
