//! The library behind the `fgstp` binary: run configurations, the training loop, prediction
//! and evaluation, usable (and tested) without going through the command line.

pub mod complexity;
pub mod config;
pub mod evaluate;
pub mod fsutil;
pub mod outputs;
pub mod predict;
pub mod run_config;
pub mod train;

use anyhow::{Context, Result};
use fgstp_model::checkpoint::{load_into, LoadOptions, StateDict};
use fgstp_model::Model;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use tch::{nn::VarStore, Device};

/// Builds the configured model on `device` and loads `weights` into it: every model variable
/// must come from the file (training checkpoints' `optimizer.*` entries are skipped).
pub fn load_model(
    cfg: &run_config::RunConfig,
    weights: &Path,
    device: Device,
) -> Result<(VarStore, Model)> {
    let mut vs = VarStore::new(device);
    let model = Model::new(&vs.root(), &cfg.model)?;
    let file = StateDict::read(weights)?;
    let options = LoadOptions {
        drop_prefixes: vec![train::checkpoint::OPTIMIZER_PREFIX.to_string()],
        ..LoadOptions::strict()
    };
    let report = load_into(&mut vs, &file, &options).with_context(|| {
        format!(
            "{} does not fit the configured model ({:?} with a {:?} encoder): check [model] in the config",
            weights.display(),
            cfg.model.kind,
            cfg.model.backbone
        )
    })?;
    eprintln!("weights {}: {}", weights.display(), report.summary());
    Ok((vs, model))
}

/// Generates the configured synthetic dataset if `data.root` does not exist yet. It is written
/// next to the root and renamed into place when complete, so an interrupted generation is
/// simply redone.
pub fn prepare_data(cfg: &run_config::RunConfig) -> Result<()> {
    let root = &cfg.data.root;
    let Some(synth) = &cfg.synth else {
        return Ok(());
    };
    if root.exists() {
        return Ok(());
    }
    let mut partial = root.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("cannot remove the unfinished {}", partial.display()))?;
    }
    let frames = (synth.scenes * synth.frames) as u64;
    let bar = ProgressBar::new(frames).with_style(
        ProgressStyle::with_template("synthetic data [{bar:30}] {pos}/{len} frames {per_sec}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    eprintln!(
        "{} does not exist: generating the synthetic dataset there",
        root.display()
    );
    fgstp_data::synth::generate(synth, &partial, &|| bar.inc(1))?;
    bar.finish();
    std::fs::rename(&partial, root)
        .with_context(|| format!("cannot move {} to {}", partial.display(), root.display()))?;
    Ok(())
}
