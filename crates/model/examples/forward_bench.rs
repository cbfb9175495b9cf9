//! Times FGSTP's eval forward (no_grad) on CPU or GPU.
//!
//!   cargo run --release -p fgstp-model --example forward_bench -- [options]
//!
//! Options: --backbone b0..b5 (b5)  --size N (352)  --batch N (1)  --runs N (5)
//!          --threads N (libtorch default)  --device cpu|cuda|cuda:N|auto (cpu)
//!          --precision fp32-strict|tf32|bf16 (tf32)  --fused (the fused computation order)
//!          --weights FILE (.pth/.safetensors; default: the model's own initialisation)
//!          --frames FILE (safetensors with frame.0..2; default: random)
//!          --compare FILE (safetensors with the reference's pair_t1.0..3, pair_t2.0..3, fused,
//!                          e.g. from scripts/fixtures/make_model_fixture.py: print the max abs
//!                          differences)
//!          --serve (for scripts/bench/bench-model-vs-reference: answer commands on stdin,
//!                   `run` → `time <seconds>`, `save FILE` → the last outputs as safetensors
//!                   (pair_t1.0..3, pair_t2.0..3, fused), `quit`)

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use fgstp_model::checkpoint::{load_into, LoadOptions, StateDict};
use fgstp_model::{Config, DeviceSpec, Fgstp, FgstpOutput, Precision, PvtV2Variant};
use tch::{Kind, Tensor};

struct Args {
    backbone: PvtV2Variant,
    size: i64,
    batch: i64,
    runs: usize,
    threads: Option<i32>,
    device: DeviceSpec,
    weights: Option<PathBuf>,
    frames: Option<PathBuf>,
    compare: Option<PathBuf>,
    serve: bool,
    precision: Precision,
    fused: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        backbone: PvtV2Variant::B5,
        size: 352,
        batch: 1,
        runs: 5,
        threads: None,
        device: DeviceSpec::Cpu,
        weights: None,
        frames: None,
        compare: None,
        serve: false,
        precision: Precision::Tf32,
        fused: false,
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
            "--runs" => args.runs = value()?.parse().context("--runs")?,
            "--threads" => args.threads = Some(value()?.parse().context("--threads")?),
            "--device" => args.device = value()?.parse()?,
            "--weights" => args.weights = Some(value()?.into()),
            "--frames" => args.frames = Some(value()?.into()),
            "--compare" => args.compare = Some(value()?.into()),
            "--serve" => args.serve = true,
            "--precision" => args.precision = value()?.parse()?,
            "--fused" => args.fused = true,
            other => {
                bail!("unknown option {other:?} (see the header of examples/forward_bench.rs)")
            }
        }
    }
    Ok(args)
}

fn output_names() -> Vec<String> {
    (0..4)
        .map(|i| format!("pair_t1.{i}"))
        .chain((0..4).map(|i| format!("pair_t2.{i}")))
        .chain(["fused".to_string()])
        .collect()
}

fn save_outputs(out: &FgstpOutput, path: &str) -> Result<()> {
    let names = output_names();
    let tensors: Vec<(&str, Tensor)> = names
        .iter()
        .map(String::as_str)
        .zip(
            out.maps()
                .into_iter()
                .map(|t| t.to_device(tch::Device::Cpu)),
        )
        .collect();
    Tensor::write_safetensors(&tensors, path).with_context(|| format!("writing {path}"))?;
    Ok(())
}

fn main() -> Result<()> {
    // As the fgstp binary does: what is timed here is what fgstp runs.
    fgstp_model::keep_freed_memory();
    let args = parse_args()?;
    if let Some(n) = args.threads {
        tch::set_num_threads(n);
    }
    let device = args.device.resolve()?;
    let cfg = Config {
        backbone: args.backbone,
        precision: args.precision,
        fused: args.fused,
        ..Config::default()
    };
    cfg.precision.set_backend_flags()?;
    let mut vs = tch::nn::VarStore::new(device);
    let model = Fgstp::new(&vs.root(), &cfg)?;
    if let Some(path) = &args.weights {
        let sd = StateDict::read(path)?;
        let report = load_into(&mut vs, &sd, &LoadOptions::strict())?;
        eprintln!("{}: {}", path.display(), report.summary());
    }
    let frames: Vec<Tensor> = match &args.frames {
        Some(path) => {
            let named = Tensor::read_safetensors(path)
                .with_context(|| format!("reading {}", path.display()))?;
            (0..3)
                .map(|i| {
                    let name = format!("frame.{i}");
                    let t = named
                        .iter()
                        .find(|(n, _)| *n == name)
                        .with_context(|| format!("{name} missing"))?;
                    Ok(t.1.to_kind(Kind::Float).to_device(device))
                })
                .collect::<Result<_>>()?
        }
        None => {
            tch::manual_seed(0);
            (0..3)
                .map(|_| {
                    Tensor::randn([args.batch, 3, args.size, args.size], (Kind::Float, device))
                })
                .collect()
        }
    };
    let forward = || -> Result<(FgstpOutput, f64)> {
        let start = Instant::now();
        let out = cfg.precision.run(device, || {
            tch::no_grad(|| model.forward_t([&frames[0], &frames[1], &frames[2]], false))
        })??;
        if let tch::Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
        Ok((out, start.elapsed().as_secs_f64()))
    };

    let threads = tch::get_num_threads();
    if args.serve {
        let mut last = forward()?.0; // warm-up
        println!("ready threads={threads}");
        std::io::stdout().flush()?;
        for line in std::io::stdin().lock().lines() {
            let line = line?;
            let (command, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
            match command {
                "run" => {
                    let (out, secs) = forward()?;
                    last = out;
                    println!("time {secs}");
                }
                "save" => {
                    save_outputs(&last, rest)?;
                    println!("saved {rest}");
                }
                "quit" => break,
                other => bail!("unknown command {other:?}"),
            }
            std::io::stdout().flush()?;
        }
        return Ok(());
    }

    if let Some(path) = &args.compare {
        let reference = Tensor::read_safetensors(path)
            .with_context(|| format!("reading {}", path.display()))?;
        let (out, _) = forward()?;
        let mut worst = 0f64;
        for (name, ours) in output_names().iter().zip(out.maps()) {
            let theirs = &reference
                .iter()
                .find(|(n, _)| n == name)
                .with_context(|| format!("{name} missing"))?
                .1;
            let diff = (ours.to_device(tch::Device::Cpu).to_kind(Kind::Float)
                - theirs.to_kind(Kind::Float))
            .abs()
            .max()
            .double_value(&[]);
            worst = worst.max(diff);
            println!("{name}: max abs diff {diff:.3e}");
        }
        println!("max over all outputs: {worst:.3e}");
    }

    eprintln!(
        "{} at {}×{}, batch {}, {device:?}, {threads} threads",
        args.backbone, args.size, args.size, args.batch
    );
    if args.runs == 0 {
        return Ok(());
    }
    forward()?; // warm-up
    let mut times: Vec<f64> = (0..args.runs)
        .map(|_| forward().map(|(_, s)| s))
        .collect::<Result<_>>()?;
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "forward: median {median:.3} s over {} runs (min {:.3}, max {:.3})",
        args.runs,
        times[0],
        times[times.len() - 1]
    );
    Ok(())
}
