//! Throughput of the training stream (decode + augmentation + resize + tensors), in triplets/s.
//!
//! cargo run --release -p fgstp-data --example bench_stream -- [--root DIR] [--size 352]
//!     [--batch 6] [--batches 40] [--threads 1,2]
//! Without --root it first writes a synthetic dataset of 320x240 frames (GasVid's size) to a
//! temporary folder.

use std::time::Instant;

use fgstp_data::synth::{generate, SynthConfig};
use fgstp_data::{DataConfig, TrainLoader, TrainSampling};

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("bad value for {name}: {v}"))
        })
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let size: u32 = arg(&args, "--size", 352);
    let batch: usize = arg(&args, "--batch", 6);
    let batches: usize = arg(&args, "--batches", 40);
    let threads: String = arg(&args, "--threads", "1,2".to_string());
    let tmp;
    let root = match args.iter().position(|a| a == "--root") {
        Some(i) => std::path::PathBuf::from(&args[i + 1]),
        None => {
            tmp = tempfile::tempdir()?;
            let cfg = SynthConfig {
                scenes: 6,
                frames: 40,
                width: 320,
                height: 240,
                ..Default::default()
            };
            let t = Instant::now();
            generate(&cfg, tmp.path(), &|| {})?;
            eprintln!(
                "synthetic dataset: {} frames of 320x240 in {:.2} s",
                cfg.scenes * cfg.frames,
                t.elapsed().as_secs_f64()
            );
            tmp.path().to_path_buf()
        }
    };
    println!(
        "training stream at {size}x{size}, batch {batch}, augmentation on, {batches} batches timed"
    );
    for t in threads.split(',') {
        let t: usize = t.trim().parse()?;
        let cfg = DataConfig {
            root: root.clone(),
            train_size: size.into(),
            threads: t,
            prefetch: 2,
            ..Default::default()
        };
        let sampling = TrainSampling {
            batch_size: batch,
            ..TrainSampling::default()
        };
        let loader = TrainLoader::open(&cfg, sampling)?;
        let mut epoch = 0;
        let mut done = 0usize;
        let mut iter = loader.epoch(epoch);
        iter.next().transpose()?; // warm-up: first batch, caches, page faults
        let start = Instant::now();
        let mut triplets = 0usize;
        while done < batches {
            match iter.next() {
                Some(b) => {
                    triplets += b?.samples.len();
                    done += 1;
                }
                None => {
                    epoch += 1;
                    iter = loader.epoch(epoch);
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "threads {t}: {:.1} triplets/s ({:.1} ms per batch of {batch})",
            triplets as f64 / secs,
            secs * 1000.0 / done as f64
        );
    }
    Ok(())
}
