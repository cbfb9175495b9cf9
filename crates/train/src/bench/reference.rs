//! `fgstp bench --reference CHECKOUT`: the reference PyTorch code timed side by side with fgstp,
//! through the two scripts that do it in one run each (same weights, inputs and threads,
//! alternating rounds): `scripts/bench/bench-model-vs-reference` (eval forward, and the full-size
//! parity check) and `scripts/bench/bench-train-vs-reference` (one training step, phase by phase).
//! They need this source tree (the scripts and their Python environment, `scripts/pytools`)
//! and the user's checkout of GeekEagle/FGSTP; the reference's code is never part of fgstp.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};
use fgstp_model::DeviceSpec;
use fgstp_model::ModelKind;
use serde::Serialize;

use crate::run_config::RunConfig;

/// fgstp's time over the reference's, measured side by side (below 1: fgstp is faster).
#[derive(Serialize, Clone, Debug)]
pub struct ReferenceComparison {
    pub checkout: String,
    /// Eval forward of one triplet, the reference's computation order.
    pub forward_s: f64,
    pub reference_forward_s: f64,
    pub forward_ratio: f64,
    /// Largest |difference| of any output from the reference's, same weights and frames.
    pub forward_max_diff: f64,
    /// One training step (forward, 9 losses, backward, clipping, Adam).
    pub train_step_s: f64,
    pub reference_train_step_s: f64,
    pub train_step_ratio: f64,
    /// How to rerun the two measurements.
    pub commands: Vec<String>,
}

/// Where the scripts are: the source tree this binary was built from.
fn scripts_dir() -> Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/bench");
    ensure!(
        dir.join("bench-model-vs-reference").is_file(),
        "--reference runs scripts/bench/bench-model-vs-reference and \
         scripts/bench/bench-train-vs-reference of the fgstp source tree this binary was built \
         from, but {} has no such scripts; run a binary built in an fgstp checkout",
        dir.display()
    );
    Ok(dir)
}

/// Checks what can be checked before the (long) fgstp measurements start.
pub fn check(cfg: &RunConfig, checkout: &Path) -> Result<()> {
    if cfg.model.kind != ModelKind::Fgstp {
        bail!(
            "--reference compares with the FGSTP reference (GeekEagle/FGSTP), but model.kind is \
             {:?}; for SLT-Net and ZoomNeXt use scripts/bench/bench-baselines-vs-reference \
             SLTNET ZOOMNEXT",
            cfg.model.kind
        );
    }
    ensure!(
        checkout.join("lib").is_dir(),
        "--reference {}: not a checkout of https://github.com/GeekEagle/FGSTP (no lib/ folder); \
         clone it and pass its path",
        checkout.display()
    );
    ensure!(
        !matches!(cfg.train.device, DeviceSpec::Cuda(_)),
        "--reference: the side-by-side scripts run both codes on the CPU; add --set \
         train.device=\"cpu\" (on a GPU, scripts/bench/bench-gpu measures fgstp)"
    );
    let (h, w) = cfg.data.train_size.hw();
    ensure!(
        h == w,
        "--reference: the reference scripts take square inputs; data.train_size is {h}×{w}"
    );
    scripts_dir().map(|_| ())
}

/// Runs one script with the user's terminal seeing its progress (stderr) and returns its
/// report (stdout), echoed as well.
fn run_script(script: &Path, args: &[String]) -> Result<String> {
    eprintln!("bench: {} {}", script.display(), args.join(" "));
    let out = Command::new(script)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {}", script.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    ensure!(
        out.status.success(),
        "{} failed ({}); its output is above",
        script.display(),
        out.status
    );
    Ok(text)
}

/// The number after `prefix` on the first line that starts with it.
fn number_after(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.trim_end_matches('s').parse().ok())
}

/// `fgstp (tch)      median 3.456 s …`, `PyTorch eager    median …`, `max over all outputs: …`.
pub(crate) fn parse_forward(text: &str) -> Result<(f64, f64, f64)> {
    let ours = number_after(text, "fgstp (tch)      median");
    let theirs = number_after(text, "PyTorch eager    median");
    let diff = number_after(text, "max over all outputs:");
    match (ours, theirs, diff) {
        (Some(a), Some(b), Some(d)) => Ok((a, b, d)),
        _ => bail!("scripts/bench/bench-model-vs-reference printed no medians/difference:\n{text}"),
    }
}

/// The `step   10.090s   12.120s    0.83` row of the training script's phase table.
pub(crate) fn parse_train(text: &str) -> Result<(f64, f64)> {
    let row = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some("step"))
        .and_then(|l| {
            let v: Vec<f64> = l
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.trim_end_matches('s').parse().ok())
                .collect();
            (v.len() >= 2).then(|| (v[0], v[1]))
        });
    row.with_context(|| {
        format!("scripts/bench/bench-train-vs-reference printed no step row:\n{text}")
    })
}

/// Times the reference's forward and training step against fgstp's at `cfg`'s backbone, input
/// size, batch and `threads`, `rounds` alternating rounds each.
pub fn compare(
    cfg: &RunConfig,
    checkout: &Path,
    threads: i32,
    rounds: usize,
) -> Result<ReferenceComparison> {
    check(cfg, checkout)?;
    let dir = scripts_dir()?;
    let (size, _) = cfg.data.train_size.hw();
    let common = [
        checkout.display().to_string(),
        "--backbone".into(),
        cfg.model.backbone.name().to_string(),
        "--size".into(),
        size.to_string(),
        "--threads".into(),
        threads.to_string(),
        "--rounds".into(),
        rounds.max(1).to_string(),
    ];
    let forward_args = common.to_vec();
    let mut train_args = common.to_vec();
    train_args.extend(["--batch".into(), cfg.train.batch_size.to_string()]);
    let (forward_s, reference_forward_s, forward_max_diff) = parse_forward(&run_script(
        &dir.join("bench-model-vs-reference"),
        &forward_args,
    )?)?;
    let (train_step_s, reference_train_step_s) = parse_train(&run_script(
        &dir.join("bench-train-vs-reference"),
        &train_args,
    )?)?;
    Ok(ReferenceComparison {
        checkout: checkout.display().to_string(),
        forward_s,
        reference_forward_s,
        forward_ratio: forward_s / reference_forward_s,
        forward_max_diff,
        train_step_s,
        reference_train_step_s,
        train_step_ratio: train_step_s / reference_train_step_s,
        commands: vec![
            format!(
                "scripts/bench/bench-model-vs-reference {}",
                forward_args.join(" ")
            ),
            format!(
                "scripts/bench/bench-train-vs-reference {}",
                train_args.join(" ")
            ),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_scripts_reports() {
        // As the two scripts print them (numbers from a b0 run).
        let forward = "fgstp (tch)      median 0.412 s  (min 0.401, max 0.455)\n\
                       PyTorch eager    median 0.468 s  (min 0.450, max 0.501)\n\
                       ratio fgstp / PyTorch = 0.880  (below 1: fgstp is faster)\n\
                       max abs diff vs the reference: fused 1.2e-06\n\
                       max over all outputs: 2.384e-06\n";
        assert_eq!(parse_forward(forward).unwrap(), (0.412, 0.468, 2.384e-6));
        let train = "phase          fgstp   PyTorch   ratio\n\
                     forward      3.100s    3.500s    0.89\n\
                     step        10.090s   12.120s    0.83\n\
                     peak RSS: fgstp 4.85 GB, PyTorch 4.84 GB\n";
        assert_eq!(parse_train(train).unwrap(), (10.09, 12.12));
        assert!(parse_forward("ratio fgstp / PyTorch = 0.880").is_err());
        assert!(parse_train("forward 3.1s 3.5s 0.89").is_err());
    }
}
