//! One FGSTP training step, timed phase by phase: forward (training mode), the nine-map loss,
//! backward, clip by value, Adam. For scripts/bench/bench-train-vs-reference, which times the
//! reference's own step beside it.
//!
//!   cargo run --release -p fgstp-train --example step_bench -- [options] --serve
//!
//! Options: --backbone b0..b5 (b5)  --size N (256)  --batch N (2)  --threads N
//!          --weights FILE (.pth; default: the model's own initialisation)
//!          --inputs FILE (safetensors with frame.0..2 [B,3,S,S] and mask [B,1,S,S]; default random)
//!          --freeze-backbone-bn (default off: the reference's model.train() semantics)
//!          --fused (the fused computation order)
//! Serve protocol (stdin → stdout): `step` → `time <forward> <loss> <backward> <clip> <optim>`
//! (seconds), `rss` → `rss <peak resident bytes>`, `quit`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use fgstp_model::checkpoint::{load_into, LoadOptions, StateDict};
use fgstp_model::{Config, Model, PvtV2Variant};
use fgstp_train::loss::nine_map_structure_loss;
use fgstp_train::run_config::BceWeighting;
use fgstp_train::trainer::optim::{Adam, AdamConfig};
use tch::{nn::VarStore, Device, Kind, Tensor};

struct Args {
    backbone: PvtV2Variant,
    size: i64,
    batch: i64,
    threads: Option<i32>,
    weights: Option<PathBuf>,
    inputs: Option<PathBuf>,
    freeze_backbone_bn: bool,
    fused: bool,
    serve: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        backbone: PvtV2Variant::B5,
        size: 256,
        batch: 2,
        threads: None,
        weights: None,
        inputs: None,
        freeze_backbone_bn: false,
        fused: false,
        serve: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--backbone" => {
                let name = value()?;
                args.backbone = PvtV2Variant::ALL
                    .into_iter()
                    .find(|v| v.name() == name)
                    .with_context(|| format!("unknown backbone {name:?}; use b0 … b5"))?;
            }
            "--size" => args.size = value()?.parse().context("--size")?,
            "--batch" => args.batch = value()?.parse().context("--batch")?,
            "--threads" => args.threads = Some(value()?.parse().context("--threads")?),
            "--weights" => args.weights = Some(value()?.into()),
            "--inputs" => args.inputs = Some(value()?.into()),
            "--freeze-backbone-bn" => args.freeze_backbone_bn = true,
            "--fused" => args.fused = true,
            "--serve" => args.serve = true,
            other => bail!("unknown option {other:?} (see the header of examples/step_bench.rs)"),
        }
    }
    Ok(args)
}

/// Peak resident memory of this process (VmHWM), in bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn main() -> Result<()> {
    // As the fgstp binary does: what is timed here is what fgstp runs.
    fgstp_model::keep_freed_memory();
    let args = parse_args()?;
    if let Some(n) = args.threads {
        tch::set_num_threads(n);
    }
    let cfg = Config {
        backbone: args.backbone,
        freeze_backbone_bn: args.freeze_backbone_bn,
        fused: args.fused,
        ..Config::default()
    };
    let mut vs = VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), &cfg)?;
    if let Some(path) = &args.weights {
        load_into(&mut vs, &StateDict::read(path)?, &LoadOptions::strict())?;
    }
    let (frames, mask) = match &args.inputs {
        Some(path) => {
            let named = Tensor::read_safetensors(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let get = |name: &str| -> Result<Tensor> {
                let t = named
                    .iter()
                    .find(|(n, _)| n == name)
                    .with_context(|| format!("{name} missing in {}", path.display()))?;
                Ok(t.1.to_kind(Kind::Float))
            };
            (
                vec![get("frame.0")?, get("frame.1")?, get("frame.2")?],
                get("mask")?,
            )
        }
        None => {
            tch::manual_seed(0);
            let frame =
                || Tensor::randn([args.batch, 3, args.size, args.size], tch::kind::FLOAT_CPU);
            let mask = Tensor::rand([args.batch, 1, args.size, args.size], tch::kind::FLOAT_CPU)
                .gt(0.9)
                .to_kind(Kind::Float);
            (vec![frame(), frame(), frame()], mask)
        }
    };
    let refs: Vec<&Tensor> = frames.iter().collect();
    // The reference's optimiser settings (Adam, lr 1e-4, clip 0.5).
    let mut adam = Adam::new(&vs, AdamConfig::default());
    let mut step = || -> Result<[f64; 5]> {
        let mut times = [0.0; 5];
        let mut lap = {
            let mut last = Instant::now();
            move |slot: &mut f64| {
                *slot = last.elapsed().as_secs_f64();
                last = Instant::now();
            }
        };
        adam.zero_grad()?;
        let out = model.forward_t(&refs, true)?;
        lap(&mut times[0]);
        let (loss, _) = nine_map_structure_loss(&out.maps(), &mask, BceWeighting::Reference.into());
        lap(&mut times[1]);
        loss.backward();
        lap(&mut times[2]);
        adam.clip_grad_value(0.5)?;
        lap(&mut times[3]);
        adam.step()?;
        lap(&mut times[4]);
        Ok(times)
    };
    if !args.serve {
        step()?;
        let times = step()?;
        println!(
            "forward {:.3} s, loss {:.3} s, backward {:.3} s, clip {:.3} s, optimiser {:.3} s; peak RSS {:.2} GB",
            times[0],
            times[1],
            times[2],
            times[3],
            times[4],
            peak_rss() as f64 / 1e9
        );
        return Ok(());
    }
    println!("ready threads={}", tch::get_num_threads());
    std::io::stdout().flush()?;
    for line in std::io::stdin().lock().lines() {
        match line?.trim() {
            "step" => {
                let t = step()?;
                println!("time {} {} {} {} {}", t[0], t[1], t[2], t[3], t[4]);
            }
            "rss" => println!("rss {}", peak_rss()),
            "quit" => break,
            other => bail!("unknown command {other:?}"),
        }
        std::io::stdout().flush()?;
    }
    Ok(())
}
