//! Serves the eval forward of a comparison model (SLT-Net short/long-term, ZoomNeXt image/video)
//! for `scripts/bench/bench-baselines-vs-reference`, which times it against the authors' PyTorch
//! code on the same weights and inputs.
//!
//!   baseline_forward_bench --kind slt-net|slt-net-long|zoomnext|zoomnext-video --backbone b0..b5
//!       --weights FILE (the reference's torch.save'd state dict) --inputs FILE (safetensors:
//!       input.0 … input.k, exactly what `Model::forward_t` takes) [--threads N] [--fused]
//!       (--fused: `model.fused`, the faster computation order where the model has one)
//!
//! After loading and one warm-up forward it prints `ready`, then answers commands on stdin:
//! `run` → `time <seconds>` (one no_grad forward), `save FILE` → the last output maps as
//! safetensors (`map.0` … in `Output::maps` order), `quit`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use fgstp_model::checkpoint::{load_into, LoadOptions, StateDict};
use fgstp_model::{Config, Model, ModelKind, PvtV2Variant};
use tch::{nn::VarStore, Device, Kind, Tensor};

struct Args {
    kind: ModelKind,
    backbone: PvtV2Variant,
    weights: PathBuf,
    inputs: PathBuf,
    threads: Option<i32>,
    fused: bool,
}

fn parse_args() -> Result<Args> {
    let (mut kind, mut backbone, mut weights, mut inputs, mut threads) =
        (None, PvtV2Variant::B5, None, None, None);
    let mut fused = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--kind" => {
                let name = value()?;
                kind = Some(
                    serde_json::from_value::<ModelKind>(serde_json::Value::String(name.clone()))
                        .with_context(|| format!("unknown kind {name:?}"))?,
                );
            }
            "--backbone" => {
                let name = value()?;
                backbone = PvtV2Variant::ALL
                    .into_iter()
                    .find(|v| v.name() == name)
                    .with_context(|| format!("unknown backbone {name:?}; use b0 … b5"))?;
            }
            "--weights" => weights = Some(PathBuf::from(value()?)),
            "--inputs" => inputs = Some(PathBuf::from(value()?)),
            "--threads" => threads = Some(value()?.parse().context("--threads")?),
            "--fused" => fused = true,
            other => bail!("unknown option {other:?} (see the header of this example)"),
        }
    }
    Ok(Args {
        kind: kind.context("--kind is required")?,
        backbone,
        weights: weights.context("--weights is required")?,
        inputs: inputs.context("--inputs is required")?,
        threads,
        fused,
    })
}

fn main() -> Result<()> {
    // As the fgstp binary does: what is timed here is what fgstp runs.
    fgstp_model::keep_freed_memory();
    let args = parse_args()?;
    if let Some(n) = args.threads {
        tch::set_num_threads(n);
    }
    let cfg = Config {
        kind: args.kind,
        backbone: args.backbone,
        fused: args.fused,
        ..Config::default()
    };
    let mut vs = VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), &cfg)?;
    let sd = StateDict::read(&args.weights)?;
    load_into(&mut vs, &sd, &LoadOptions::strict())
        .with_context(|| format!("loading {}", args.weights.display()))?;
    let mut inputs: Vec<(String, Tensor)> = Tensor::read_safetensors(&args.inputs)?;
    inputs.sort_by(|a, b| a.0.cmp(&b.0));
    let inputs: Vec<Tensor> = inputs
        .into_iter()
        .map(|(_, t)| t.to_kind(Kind::Float))
        .collect();
    let refs: Vec<&Tensor> = inputs.iter().collect();
    let forward = || tch::no_grad(|| model.forward_t(&refs, false));
    let mut last = forward()?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "ready")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let mut words = line.split_whitespace();
        match words.next() {
            Some("run") => {
                let start = Instant::now();
                last = forward()?;
                // Outputs are computed eagerly on the CPU; reading one value keeps the timing honest.
                let _ = last.prediction().double_value(&[0, 0, 0, 0]);
                writeln!(out, "time {}", start.elapsed().as_secs_f64())?;
            }
            Some("save") => {
                let path = words.next().context("save needs a file")?;
                let maps: Vec<(String, Tensor)> = last
                    .maps()
                    .into_iter()
                    .enumerate()
                    .map(|(i, t)| (format!("map.{i}"), t.shallow_clone()))
                    .collect();
                Tensor::write_safetensors(&maps, path)?;
                writeln!(out, "saved")?;
            }
            Some("quit") | None => break,
            Some(other) => bail!("unknown command {other:?}"),
        }
        out.flush()?;
    }
    Ok(())
}
