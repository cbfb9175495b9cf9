//! The research loop end to end on a tiny configuration (b0 encoder, 64 px, a few synthetic
//! videos): train, interrupt, resume, evaluate, infer — through the `fgstp` binary.

use crate::common;
use common::{fgstp, ok, shared_scratch_dir, stderr, synth_64, FGSTP};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fgstp_model::checkpoint::{read_safetensors_metadata, StateDict};

/// A synthetic dataset and a tiny config, made once for the whole test binary.
struct Fixture {
    root: PathBuf,
    config: PathBuf,
    /// A finished uninterrupted run (2 epochs).
    run: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = shared_scratch_dir();
        let data = root.join("data");
        synth_64(&data, 4, 6, 3, &[]);
        let config = root.join("tiny.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[model]
backbone = "b0"
correlation_pools = [2, 2, 2]
[data]
root = "{}"
train_size = 64
eval_batch_size = 4
threads = 1
[train]
epochs = 2
batch_size = 2
lr = 1e-3
device = "cpu"
threads = 1
[eval]
every = 1
[log]
loss_every = 1
images = 1
progress = false
"#,
                data.display()
            ),
        )
        .unwrap();
        let run = root.join("straight");
        ok(fgstp(&[
            "train",
            "--config",
            config.to_str().unwrap(),
            "--run-dir",
            run.to_str().unwrap(),
        ]));
        Fixture { root, config, run }
    })
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn weights(path: &Path) -> BTreeMap<String, tch::Tensor> {
    let sd = StateDict::read(path).unwrap();
    sd.iter()
        .map(|(k, t)| (k.to_string(), t.shallow_clone()))
        .collect()
}

fn progress(path: &Path) -> serde_json::Value {
    serde_json::from_str(&read_safetensors_metadata(path).unwrap()["progress"]).unwrap()
}

#[test]
fn an_interrupted_and_resumed_run_equals_an_uninterrupted_one() {
    let f = fixture();
    let run = f.root.join("resumed");
    let (config, run_s) = (f.config.to_str().unwrap(), run.to_str().unwrap());
    // 4 steps per epoch: stop in the middle of epoch 2, after epoch 1's validation.
    let first = ok(fgstp(&[
        "train",
        "--config",
        config,
        "--run-dir",
        run_s,
        "--stop-after-steps",
        "5",
        // As on a GPU: the stop must still log and count every step's loss.
        "--read-loss-late",
    ]));
    assert!(
        stderr(&first).contains("continue with: fgstp train --resume"),
        "{}",
        stderr(&first)
    );
    let saved = progress(&run.join("last.safetensors"));
    assert_eq!(
        (
            saved["epoch"].as_u64(),
            saved["batch"].as_u64(),
            saved["step"].as_u64()
        ),
        (Some(1), Some(1), Some(5))
    );
    ok(fgstp(&["train", "--resume", run_s]));

    assert_eq!(
        lines(&run.join("losses.jsonl")),
        lines(&f.run.join("losses.jsonl")),
        "loss curves differ"
    );
    assert_eq!(
        lines(&run.join("metrics.jsonl")),
        lines(&f.run.join("metrics.jsonl")),
        "validation differs"
    );
    let (a, b) = (
        weights(&run.join("last.safetensors")),
        weights(&f.run.join("last.safetensors")),
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert!(
        a.keys().any(|k| k.starts_with("optimizer.exp_avg.")),
        "optimiser state is saved"
    );
    for (key, t) in &a {
        assert!(t.equal(&b[key]), "{key} differs after resuming");
    }
}

#[test]
fn a_run_with_a_moving_average_of_the_weights_validates_it_saves_it_and_resumes_it() {
    let f = fixture();
    let config = f.config.to_str().unwrap();
    let average = [
        "--set",
        "train.ema_decay=0.9",
        "--set",
        "train.ema_from_epoch=2",
    ];
    let straight = f.root.join("ema-straight");
    let resumed = f.root.join("ema-resumed");
    let train = |run: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--config",
            config,
            "--run-dir",
            run.to_str().unwrap(),
        ];
        args.extend(average);
        args.extend(extra);
        ok(fgstp(&args));
    };
    train(&straight, &[]);
    // Stop after epoch 2's first step: the average has started and must survive the resume.
    train(&resumed, &["--stop-after-steps", "5"]);
    assert_eq!(
        progress(&resumed.join("last.safetensors"))["ema_updates"],
        1
    );
    ok(fgstp(&["train", "--resume", resumed.to_str().unwrap()]));

    assert_eq!(
        lines(&resumed.join("metrics.jsonl")),
        lines(&straight.join("metrics.jsonl")),
        "validation differs"
    );
    let (a, b) = (
        weights(&resumed.join("last.safetensors")),
        weights(&straight.join("last.safetensors")),
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (key, t) in &a {
        assert!(t.equal(&b[key]), "{key} differs after resuming");
    }
    // Epoch 1 trains as without the average; epoch 2's validation sees the average, not the
    // trained weights, and `last` holds both.
    let plain = lines(&f.run.join("metrics.jsonl"));
    let with_average = lines(&straight.join("metrics.jsonl"));
    assert_eq!(with_average[..2], plain[..2], "before the average starts");
    assert_ne!(with_average[2], plain[2], "the average is validated");
    // The average differs from the trained weights, and those are the run's without an
    // average (the average never feeds back into training).
    let key = "backbone.encoder.pvtv2_en.patch_embed1.proj.weight";
    let live = b[&format!("optimizer.live_weights.{key}")].shallow_clone();
    assert!(!b[key].equal(&live));
    assert!(live.equal(&weights(&f.run.join("last.safetensors"))[key]));
    assert_eq!(
        progress(&straight.join("last.safetensors"))["ema_updates"],
        4
    );
    // `eval` reads the average as the model's weights.
    ok(fgstp(&[
        "eval",
        "--config",
        straight.join("config.toml").to_str().unwrap(),
        "--weights",
        straight.join("last.safetensors").to_str().unwrap(),
        "--split",
        "val",
    ]));
}

#[test]
fn the_run_directory_has_config_metrics_checkpoints_and_events() {
    let f = fixture();
    for name in [
        "config.toml",
        "metrics.jsonl",
        "losses.jsonl",
        "last.safetensors",
        "best.safetensors",
    ] {
        assert!(f.run.join(name).is_file(), "{name} missing");
    }
    // Validation at epoch 0 and after each epoch (every = 1).
    let metrics = lines(&f.run.join("metrics.jsonl"));
    assert_eq!(metrics.len(), 3);
    let first: serde_json::Value = serde_json::from_str(&metrics[0]).unwrap();
    for key in [
        "epoch",
        "step",
        "sm",
        "wfm",
        "mae",
        "em_mean",
        "iou_mean",
        "dice_mean",
        "jaccard",
        "f1",
        "jf",
    ] {
        assert!(
            first.get(key).is_some(),
            "metrics.jsonl has no {key}: {first}"
        );
    }
    let resolved = std::fs::read_to_string(f.run.join("config.toml")).unwrap();
    assert!(
        resolved.contains("lr_decay_every = 45"),
        "resolved config lists defaults:\n{resolved}"
    );
    let done = progress(&f.run.join("last.safetensors"));
    assert_eq!(
        (done["epoch"].as_u64(), done["step"].as_u64()),
        (Some(2), Some(8))
    );
    let best = progress(&f.run.join("best.safetensors"));
    assert!(best["best"]["value"].as_f64().is_some(), "{best}");
}

#[test]
fn tensorboards_own_reader_lists_the_scalar_and_image_tags() {
    let f = fixture();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts");
    let out = Command::new(script.join("pytools"))
        .arg(script.join("reference/tb_tags.py"))
        .arg(f.run.join("tensorboard"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let tags: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for tag in [
        "train/loss",
        "train/loss_pair_t1",
        "train/loss_pair_t2",
        "train/loss_final",
        "train/lr",
        "val/jaccard",
        "val/sm",
        "val/mae",
    ] {
        assert!(
            tags["scalars"].get(tag).is_some(),
            "no scalar {tag}: {tags}"
        );
    }
    assert_eq!(
        tags["scalars"]["train/loss"]["count"], 8,
        "one loss per step"
    );
    let image = &tags["images"]["val/sample_0"];
    assert_eq!(
        (image["width"].as_u64(), image["height"].as_u64()),
        (Some(3 * 64), Some(64)),
        "{tags}"
    );
}

#[test]
fn ctrl_c_saves_the_last_checkpoint_and_exits_cleanly() {
    let f = fixture();
    let run = f.root.join("ctrl-c");
    let child = Command::new(FGSTP)
        .args([
            "train",
            "--config",
            f.config.to_str().unwrap(),
            "--run-dir",
            run.to_str().unwrap(),
        ])
        .args(["--set", "train.epochs=1000"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let losses = run.join("losses.jsonl");
    let start = Instant::now();
    while std::fs::read_to_string(&losses).map_or(0, |t| t.lines().count()) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "training made no progress"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        stderr(&out)
    );
    assert!(stderr(&out).contains("Ctrl-C"), "{}", stderr(&out));
    let saved = progress(&run.join("last.safetensors"));
    assert!(saved["step"].as_u64().unwrap() >= 2, "{saved}");
}

#[test]
fn a_non_finite_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint() {
    let f = fixture();
    let run = f.root.join("nan");
    let out = fgstp(&[
        "train",
        "--config",
        f.config.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
        "--set",
        "train.lr=1e30",
        "--set",
        "train.clip=0",
        // The loss is read one step after it was computed, as on a GPU.
        "--read-loss-late",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("the loss became") && err.contains("last good checkpoint"),
        "{err}"
    );
    let last = run.join("last.safetensors");
    for (key, t) in weights(&last) {
        assert!(
            t.isfinite().all().int64_value(&[]) == 1,
            "{key} is not finite in the kept checkpoint"
        );
    }
}

#[test]
fn eval_scores_every_frame_and_writes_the_metrics_json() {
    let f = fixture();
    let out_dir = f.root.join("eval-out");
    let json = f.root.join("eval.json");
    let (config, weights) = (f.run.join("config.toml"), f.run.join("best.safetensors"));
    let out = ok(fgstp(&[
        "eval",
        "--config",
        config.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
        "--split",
        "test",
        "--output",
        out_dir.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--min-leak-area",
        "1px",
    ]));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("video"),
        "prints a table"
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    // One test video of 6 frames, every frame scored (the reference would score 4).
    assert_eq!(
        (report["frames"].as_u64(), report["videos"].as_u64()),
        (Some(6), Some(1))
    );
    for part in ["overall", "video_mean"] {
        assert_eq!(
            report[part].as_object().unwrap().len(),
            fgstp_metrics::METRICS.len(),
            "{part}: {}",
            report[part]
        );
    }
    let video = report["per_video"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    for kind in ["masks", "maps", "overlays"] {
        assert_eq!(
            std::fs::read_dir(out_dir.join(kind).join(&video))
                .unwrap()
                .count(),
            6,
            "{kind}"
        );
    }
    // masks/ mark probability > 0.5 (the default --mask): with a rule of one pixel, the
    // detection rates are the shares of frames whose written mask marks anything.
    let (mut leak, mut found, mut quiet, mut alarms) = (0, 0, 0, 0);
    for entry in std::fs::read_dir(out_dir.join("masks").join(&video)).unwrap() {
        let path = entry.unwrap().path();
        let any = |p: &Path| {
            image::open(p)
                .unwrap()
                .to_luma8()
                .pixels()
                .any(|v| v.0[0] > 0)
        };
        let gt = f
            .root
            .join("data/test")
            .join(&video)
            .join("masks")
            .join(path.file_name().unwrap());
        let marked = any(&path);
        if any(&gt) {
            (leak, found) = (leak + 1, found + marked as u32);
        } else {
            (quiet, alarms) = (quiet + 1, alarms + marked as u32);
        }
    }
    let share = |hits: u32, of: u32| (of > 0).then(|| hits as f64 / of as f64);
    assert_eq!(
        report["overall"]["leak_recall"].as_f64(),
        share(found, leak)
    );
    assert_eq!(report["overall"]["leak_fpr"].as_f64(), share(alarms, quiet));
    // `fgstp metrics` on the output folder scores its normalised maps/ but counts the detection
    // areas in its masks/: the same rates as eval's.
    let from_folder = f.root.join("eval-folder.json");
    ok(fgstp(&[
        "metrics",
        "--pred",
        out_dir.to_str().unwrap(),
        "--gt",
        f.root.join("data/test").to_str().unwrap(),
        "--min-leak-area",
        "1px",
        "--json",
        from_folder.to_str().unwrap(),
    ]));
    let folder: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&from_folder).unwrap()).unwrap();
    for key in ["leak_recall", "leak_fpr"] {
        assert_eq!(folder["overall"][key], report["overall"][key], "{key}");
    }
    let reference = ok(fgstp(&[
        "eval",
        "--config",
        config.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
        "--split",
        "test",
        "--set",
        "data.protocol=reference",
        "--json",
        json.to_str().unwrap(),
    ]));
    drop(reference);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(
        report["frames"].as_u64(),
        Some(4),
        "the reference skips the last two frames"
    );
}

#[test]
fn infer_writes_masks_overlays_and_probabilities_identically_with_and_without_the_cache() {
    let f = fixture();
    let (config, weights) = (f.run.join("config.toml"), f.run.join("best.safetensors"));
    let scene = std::fs::read_dir(f.root.join("data/test"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let frames_only = f.root.join("footage");
    std::fs::create_dir_all(&frames_only).unwrap();
    for entry in std::fs::read_dir(scene.join("images")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, frames_only.join(path.file_name().unwrap())).unwrap();
    }
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "infer",
            "--config",
            config.to_str().unwrap(),
            "--weights",
            weights.to_str().unwrap(),
            "--input",
            frames_only.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--save-prob",
        ];
        args.extend_from_slice(extra);
        ok(fgstp(&args))
    };
    let (cached, uncached) = (f.root.join("infer-cached"), f.root.join("infer-uncached"));
    run(&cached, &[]);
    // CUDA graphs asked for on a CPU: a note, and the same results.
    let out = run(&uncached, &["--no-feature-cache", "--cuda-graphs"]);
    assert!(
        stderr(&out).contains("eval.cuda_graphs needs a CUDA device"),
        "{}",
        stderr(&out)
    );
    // The same uncached path one frame per batch: on CPUs whose libtorch kernels sum a frame
    // alike in any batch (the AMD EPYC, AVX2), the two agree bit for bit and so must the cache;
    // where they do not (an Intel Xeon with AVX512: about 1.5e-7), the cache's frames, encoded
    // in other batches, can only agree to that float rounding.
    let single = f.root.join("infer-uncached-batch1");
    run(
        &single,
        &["--no-feature-cache", "--set", "data.eval_batch_size=1"],
    );
    // The float32 values at the end of a 64×64 `.npy`.
    let probabilities = |bytes: &[u8]| -> Vec<f32> {
        bytes[bytes.len() - 64 * 64 * 4..]
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let max_diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    };
    let names: Vec<_> = std::fs::read_dir(cached.join("prob"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names.len(),
        6,
        "a flat folder of 6 frames gives 6 predictions"
    );
    for name in &names {
        let a = std::fs::read(cached.join("prob").join(name)).unwrap();
        let b = std::fs::read(uncached.join("prob").join(name)).unwrap();
        let batch_noise = max_diff(
            &probabilities(&b),
            &probabilities(&std::fs::read(single.join("prob").join(name)).unwrap()),
        );
        if batch_noise == 0.0 {
            assert_eq!(a, b, "{name:?}: cached and uncached probabilities differ");
        } else {
            let cache_diff = max_diff(&probabilities(&a), &probabilities(&b));
            println!("{name:?}: batch 1 vs the default differs by {batch_noise:e}, cached vs uncached by {cache_diff:e}");
            assert!(
                cache_diff <= 1e-6,
                "{name:?}: cached and uncached probabilities differ by {cache_diff:e} (libtorch's \
                 batch dependence here: {batch_noise:e})"
            );
            let (ma, mb) = (cached.join("masks"), uncached.join("masks"));
            let stem = Path::new(name).with_extension("png");
            assert_eq!(
                std::fs::read(ma.join(&stem)).unwrap(),
                std::fs::read(mb.join(&stem)).unwrap(),
                "{name:?}: cached and uncached masks differ"
            );
        }
        // NumPy header, then 64×64 float32 values in [0, 1].
        assert!(
            a.starts_with(b"\x93NUMPY")
                && String::from_utf8_lossy(&a[..128]).contains("'shape': (64, 64")
        );
        let data = &a[a.len() - 64 * 64 * 4..];
        for v in data
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        {
            assert!((0.0..=1.0).contains(&v), "probability {v}");
        }
        let stem = Path::new(name).file_stem().unwrap().to_str().unwrap();
        let mask = image::open(cached.join("masks").join(format!("{stem}.png")))
            .unwrap()
            .to_luma8();
        assert!(
            mask.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255),
            "masks are 0/255"
        );
        assert!(cached
            .join("overlays")
            .join(format!("{stem}.png"))
            .is_file());
    }
}

#[test]
fn configuration_mistakes_are_named() {
    let f = fixture();
    let out = fgstp(&[
        "train",
        "--config",
        f.config.to_str().unwrap(),
        "--set",
        "train.epoch=3",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("train.epoch") && stderr(&out).contains("unknown field"),
        "{}",
        stderr(&out)
    );
    let out = fgstp(&[
        "train",
        "--config",
        f.config.to_str().unwrap(),
        "--set",
        "data.train_size=32",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("32"),
        "too small for the pools: {}",
        stderr(&out)
    );
    let out = fgstp(&["train", "--config", "/nonexistent/run.toml"]);
    assert!(
        stderr(&out).contains("/nonexistent/run.toml"),
        "{}",
        stderr(&out)
    );
    // Values far beyond any use name their key instead of overflowing, aborting on a huge
    // allocation or training with a negative learning rate.
    for (set, key) in [
        ("train.epochs=4000000000000000000", "train.epochs"),
        ("train.threads=100000", "train.threads"),
        ("train.lr_decay_rate=-1", "train.lr_decay_rate"),
        ("train.dist_timeout=1e20", "train.dist_timeout"),
        ("train.cyclic.t_mult=1e30", "train.cyclic"),
        ("data.prefetch=100000000000", "prefetch"),
    ] {
        let out = fgstp(&[
            "train",
            "--config",
            f.config.to_str().unwrap(),
            "--set",
            set,
        ]);
        assert!(
            !out.status.success()
                && stderr(&out).contains(key)
                && !stderr(&out).contains("panicked"),
            "{set}: {}",
            stderr(&out)
        );
    }
    // A run that saved no checkpoint cannot be resumed: say how to start it again.
    let empty = f.root.join("no-checkpoint");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::copy(&f.config, empty.join("config.toml")).unwrap();
    let out = fgstp(&["train", "--resume", empty.to_str().unwrap()]);
    assert!(
        !out.status.success() && stderr(&out).contains("--run-dir"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_resumed_run_keeps_its_logs_whole_and_follows_changed_settings() {
    let f = fixture();
    let config = f.config.to_str().unwrap();
    // Killed in epoch 2 (nothing saved after epoch 1, step 4): the lines of steps 5 and 6
    // would come again after the resume.
    let crashed = f.root.join("crashed");
    let out = fgstp(&[
        "train",
        "--config",
        config,
        "--run-dir",
        crashed.to_str().unwrap(),
        "--crash-after-steps",
        "6",
    ]);
    assert_eq!(out.status.code(), Some(17), "{}", stderr(&out));
    assert!(lines(&crashed.join("losses.jsonl")).len() >= 5);
    ok(fgstp(&["train", "--resume", crashed.to_str().unwrap()]));
    assert_eq!(
        lines(&crashed.join("losses.jsonl")),
        lines(&f.run.join("losses.jsonl"))
    );
    assert_eq!(
        lines(&crashed.join("metrics.jsonl")),
        lines(&f.run.join("metrics.jsonl"))
    );

    // Resumed with another eval.best_metric: its first validation is the new best (a Jaccard
    // recorded as best used to be compared with MAEs and never beaten).
    let switched = f.root.join("switched");
    ok(fgstp(&[
        "train",
        "--config",
        config,
        "--run-dir",
        switched.to_str().unwrap(),
        "--stop-after-steps",
        "5",
    ]));
    let out = ok(fgstp(&[
        "train",
        "--resume",
        switched.to_str().unwrap(),
        "--set",
        "eval.best_metric=\"mae\"",
    ]));
    assert!(
        stderr(&out).contains("best.safetensors was chosen by"),
        "{}",
        stderr(&out)
    );
    let best = progress(&switched.join("last.safetensors"))["best"].clone();
    assert_eq!(
        (best["metric"].as_str(), best["epoch"].as_u64()),
        (Some("mae"), Some(2)),
        "{best}"
    );

    // An averaged run resumed with train.ema_decay = 0 goes on from its trained weights: its
    // last validation is the plain run's (it was the frozen average's).
    let averaged = f.root.join("average-dropped");
    ok(fgstp(&[
        "train",
        "--config",
        config,
        "--run-dir",
        averaged.to_str().unwrap(),
        "--set",
        "train.ema_decay=0.9",
        "--set",
        "train.ema_from_epoch=2",
        "--stop-after-steps",
        "5",
    ]));
    let out = ok(fgstp(&[
        "train",
        "--resume",
        averaged.to_str().unwrap(),
        "--set",
        "train.ema_decay=0",
    ]));
    assert!(
        stderr(&out).contains("their average is dropped"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        lines(&averaged.join("metrics.jsonl")),
        lines(&f.run.join("metrics.jsonl"))
    );
}

#[test]
fn two_trainings_never_write_one_run_directory() {
    let f = fixture();
    let run = f.root.join("contested");
    let config = f.config.to_str().unwrap();
    let mut first = Command::new(FGSTP)
        .args([
            "train",
            "--config",
            config,
            "--run-dir",
            run.to_str().unwrap(),
        ])
        .args(["--set", "train.epochs=200"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !run.join("last.safetensors").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the first run never saved"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Resuming a run that is still training (a second terminal, a requeued job) would
    // interleave the two runs' logs and checkpoints.
    let second = fgstp(&["train", "--resume", run.to_str().unwrap()]);
    let _ = first.kill();
    let _ = first.wait();
    assert!(!second.status.success());
    assert!(
        stderr(&second).contains("being written by another training")
            && stderr(&second).contains(&format!("process {}", first.id())),
        "{}",
        stderr(&second)
    );
    // Runs named by the second they start in each get a directory of their own.
    let named = f.root.join("named");
    let text = std::fs::read_to_string(&f.config)
        .unwrap()
        .replace("[log]", &format!("[log]\ndir = \"{}\"", named.display()));
    let config = f.root.join("named.toml");
    std::fs::write(&config, text).unwrap();
    // Started together: in the same second, unless one lands just across its boundary.
    let runs: Vec<_> = (0..2)
        .map(|_| {
            Command::new(FGSTP)
                .args(["train", "--config", config.to_str().unwrap()])
                .args(["--set", "train.epochs=1"])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let run = run.wait_with_output().unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let dirs = std::fs::read_dir(&named).unwrap().count();
    assert_eq!(dirs, 2);
}
