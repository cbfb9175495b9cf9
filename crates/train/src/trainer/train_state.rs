//! Training checkpoints: one `.safetensors` file holding the model's weights under their
//! state-dict keys, the optimiser's moments under `optimizer.*`, and in its metadata the
//! progress (epoch, batch, step, best score) and the resolved run configuration.
//!
//! The file is written to a temporary name and renamed, so `last`/`best` are always whole.
//! Any tool that reads safetensors sees the weights; `fgstp eval/infer --weights` and
//! `weights convert` skip the `optimizer.*` entries.

use anyhow::{bail, Context, Result};
use fgstp_model::checkpoint::{self, LoadOptions, StateDict};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

use super::optim::{Adam, STATE_PREFIX};

/// Metadata key that marks a training checkpoint, and its format version.
const FORMAT_KEY: &str = "fgstp_training_checkpoint";
const FORMAT_VERSION: &str = "1";

/// How to load the weights of a file that may be a training checkpoint: strictly (every model
/// variable must come from it), its optimiser entries skipped.
pub fn weights_load_options() -> LoadOptions {
    LoadOptions {
        drop_prefixes: vec![STATE_PREFIX.to_string()],
        ..LoadOptions::strict()
    }
}

/// Where training stands. Every random draw of training is a function of (seed, epoch, sample),
/// so this is the whole random state as well.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Epochs completed (0 before the first).
    pub epoch: usize,
    /// Batches of epoch `epoch + 1` already trained (0 at an epoch boundary), by the world
    /// size that trained them.
    pub batch: usize,
    /// Samples of epoch `epoch + 1`'s global order already trained (0 at an epoch boundary):
    /// where a resumed run continues, whatever its number of processes.
    #[serde(default)]
    pub samples: usize,
    /// Optimiser steps so far.
    pub step: u64,
    /// Whether the validation due after epoch `epoch` (if any) has been done.
    pub validated: bool,
    /// Updates of the weights' moving average (`train.ema_decay`) so far; 0 when none.
    #[serde(default)]
    pub ema_updates: u64,
    pub best: Option<Best>,
    pub seed: u64,
}

impl Progress {
    /// A checkpoint written before `samples` was recorded counts one process's batches.
    pub fn resume_position(&mut self, batch_size: usize) {
        if self.samples == 0 && self.batch > 0 {
            self.samples = self.batch * batch_size;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Best {
    pub metric: String,
    pub value: f64,
    pub epoch: usize,
}

pub struct Loaded {
    pub progress: Progress,
    /// The resolved configuration the run was started with (TOML).
    pub config: String,
    pub tensors: StateDict,
}

/// Writes `weights` (the model's keys, and any training state beside them such as the live
/// weights of a moving average) with the optimiser's state and the progress.
pub fn save(
    path: &Path,
    weights: Vec<(String, tch::Tensor)>,
    adam: &Adam,
    progress: &Progress,
    config_toml: &str,
) -> Result<()> {
    let mut tensors = weights;
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors.extend(adam.state_tensors());
    let metadata = HashMap::from([
        (FORMAT_KEY.to_string(), FORMAT_VERSION.to_string()),
        ("progress".to_string(), serde_json::to_string(progress)?),
        ("config".to_string(), config_toml.to_string()),
    ]);
    checkpoint::write_safetensors(path, &tensors, metadata)
        .with_context(|| format!("cannot write the checkpoint {}", path.display()))
}

pub fn load(path: &Path) -> Result<Loaded> {
    let metadata = checkpoint::read_safetensors_metadata(path)?;
    if metadata.get(FORMAT_KEY).map(String::as_str) != Some(FORMAT_VERSION) {
        bail!(
            "{} is not an fgstp training checkpoint (no {FORMAT_KEY} = {FORMAT_VERSION} in its \
             metadata): resume needs the `last.safetensors` of a run; to start from plain \
             weights use train.pretrained",
            path.display()
        );
    }
    let field = |key: &str| {
        metadata
            .get(key)
            .with_context(|| format!("{} has no {key:?} in its metadata", path.display()))
    };
    let progress = serde_json::from_str(field("progress")?)
        .with_context(|| format!("{}: unreadable progress metadata", path.display()))?;
    Ok(Loaded {
        progress,
        config: field("config")?.clone(),
        tensors: StateDict::read(path)?,
    })
}
