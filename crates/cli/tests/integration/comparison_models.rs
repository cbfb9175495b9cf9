//! The comparison systems end to end through the `fgstp` binary, on tiny configurations (b0
//! encoders, a few synthetic 64 px videos): `train` (a few steps of each recipe's optimiser,
//! schedule and parameter groups), `eval` under both protocols, `infer`, and the two-stage
//! SLT-Net pipeline (the short-term model's maps are the long-term model's priors).

use crate::common;
use common::{ok, s, shared_scratch_dir, stderr, synth_64};

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use fgstp_model::checkpoint::StateDict;

/// `fgstp --threads 1 ARGS`.
fn fgstp(args: &[&str]) -> Output {
    common::fgstp(&[&["--threads", "1"], args].concat())
}

/// 4 synthetic videos of 6 frames (train 2, val 1, test 1), made once.
struct Data {
    root: PathBuf,
}

fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        let root = shared_scratch_dir();
        let out = root.join("data");
        synth_64(&out, 4, 6, 3, &[]);
        Data { root }
    })
}

/// Writes `name.toml` with the shared tiny settings and `extra` (TOML tables), returns its path.
fn config(name: &str, model: &str, data_table: &str, train: &str, eval: &str) -> PathBuf {
    let d = data();
    let path = d.root.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
[model]
backbone = "b0"
{model}
[data]
root = "{root}"
threads = 1
{data_table}
[train]
epochs = 1
device = "cpu"
threads = 1
{train}
[eval]
every = 1
at_start = false
{eval}
[log]
loss_every = 1
images = 1
progress = false
tensorboard = false
"#,
            root = d.root.join("data").display()
        ),
    )
    .unwrap();
    path
}

/// Trains `config` into `<data root>/<run>`; returns the run directory and the log.
fn train(config: &Path, run: &str, extra: &[&str]) -> (PathBuf, String) {
    let dir = data().root.join(run);
    let mut args = vec![
        "train",
        "--config",
        config.to_str().unwrap(),
        "--run-dir",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let log = stderr(&ok(fgstp(&args)));
    eprintln!("{run}: {log}");
    (dir, log)
}

/// Asserts the log reports a partial load that filled `expected` tensors.
fn assert_pretrained(log: &str, expected: &str) {
    let line = log
        .lines()
        .find(|l| l.starts_with("pretrained "))
        .unwrap_or_else(|| panic!("no pretrained line in {log}"));
    assert!(line.contains(&format!("loaded {expected},")), "{line}");
}

/// `fgstp eval` of a run on the test split: the report JSON.
fn eval(run: &Path, weights: &str, sets: &[&str]) -> serde_json::Value {
    let json = run.join(format!("eval-{}.json", sets.len()));
    let config = run.join("config.toml");
    let weights = run.join(weights);
    let mut args = vec![
        "eval",
        "--config",
        config.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ];
    for set in sets {
        args.extend_from_slice(&["--set", set]);
    }
    ok(fgstp(&args));
    serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap()
}

/// `fgstp infer` of a run on `input` with maps and probabilities; returns the output folder.
fn infer(run: &Path, weights: &str, input: &Path, out: &str) -> PathBuf {
    let dir = run.join(out);
    let (config, weights) = (run.join("config.toml"), run.join(weights));
    ok(fgstp(&[
        "infer",
        "--config",
        config.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        dir.to_str().unwrap(),
        "--save-maps",
        "--save-prob",
    ]));
    dir
}

fn files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

fn test_split() -> PathBuf {
    data().root.join("data/test")
}

/// A tensor of a checkpoint.
fn tensor(path: &Path, key: &str) -> tch::Tensor {
    StateDict::read(path)
        .unwrap()
        .iter()
        .find(|(k, _)| *k == key)
        .unwrap_or_else(|| panic!("{key} not in {}", path.display()))
        .1
        .shallow_clone()
}

/// ZoomNeXt's image model, trained once (its checkpoint starts the video model).
fn zoomnext_run() -> &'static PathBuf {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let cfg = config(
            "zoomnext",
            "kind = \"zoomnext\"",
            "train_size = 64\neval_batch_size = 4\ndrop_last = true",
            "batch_size = 2\nlr = 1e-3\nclip = 0.0\nlr_schedule = \"iteration-step\"\n\
             param_groups = [{ params = [\"encoder.*\"], lr_factor = 0.1 }]\n\
             frozen = [\"encoder.patch_embed1.*\"]",
            "",
        );
        let (run, log) = train(&cfg, "zoomnext-run", &[]);
        assert!(
            log.contains("4 parameter tensors frozen") && log.contains("at 0.1× lr"),
            "{log}"
        );
        run
    })
}

/// SLT-Net's short-term model, trained once, with its maps on every split (the priors).
fn slt_net_run() -> &'static PathBuf {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let cfg = config(
            "slt-net",
            "kind = \"slt-net\"\ncorrelation_pools = [2, 2, 2]\nfreeze_backbone_bn = false",
            "train_size = 64\neval_batch_size = 4",
            "batch_size = 2\nlr = 1e-3",
            "best_metric = \"mae\"",
        );
        let (run, _) = train(&cfg, "slt-net-run", &[]);
        for split in ["train", "val", "test"] {
            infer(
                &run,
                "best.safetensors",
                &data().root.join("data").join(split),
                &format!("priors/{split}"),
            );
        }
        run
    })
}

#[test]
fn zoomnext_trains_with_frozen_and_scaled_groups_then_evaluates_and_infers() {
    let run = zoomnext_run();
    let full = eval(run, "best.safetensors", &[]);
    let reference = eval(run, "best.safetensors", &["data.protocol=reference"]);
    // Every frame of the test video is annotated: both protocols score all 6.
    assert_eq!(full["frames"], 6);
    assert_eq!(reference["frames"], 6);
    // Normalising a batch of 4 together, not each frame, moves the scores a little.
    let (a, b) = (
        full["overall"]["mae"].as_f64().unwrap(),
        reference["overall"]["mae"].as_f64().unwrap(),
    );
    assert!(a != b && (a - b).abs() < 0.05, "full {a}, reference {b}");
    let out = infer(run, "best.safetensors", &test_split(), "infer");
    let video = std::fs::read_dir(out.join("maps"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    for kind in ["masks", "maps", "overlays", "prob"] {
        assert_eq!(files(&out.join(kind).join(&video)), 6, "{kind}");
    }
}

#[test]
fn zoomnext_video_fine_tunes_from_the_image_model_and_covers_videos_with_clips() {
    let image = zoomnext_run();
    let cfg = config(
        "zoomnext-video",
        "kind = \"zoomnext-video\"",
        "train_size = 64\neval_batch_size = 10\ndrop_last = true",
        "batch_size = 1\nlr = 1e-3\nclip = 0.0\nlr_schedule = \"constant\"\n\
         param_groups = [{ params = [\"*.temperal_proj*\"], lr_factor = 1.0 }, \
         { params = [\"*\"], lr_factor = 0.1 }]\nfrozen = [\"encoder.patch_embed1.*\"]",
        "",
    );
    let pretrained = format!(
        "train.pretrained=\"{}\"",
        image.join("best.safetensors").display()
    );
    let (run, log) = train(&cfg, "zoomnext-video-run", &["--set", &pretrained]);
    // Everything but the 12 temporal tensors, made for one frame (skipped, as the authors'
    // loader skips them).
    assert_pretrained(&log, "604");
    assert!(log.contains("12 at 1× lr"), "{log}");
    // The frozen patch embedding is the image model's, bit for bit; the rest of the encoder moved.
    let (before, after) = (image.join("best.safetensors"), run.join("last.safetensors"));
    for (key, same) in [
        ("encoder.patch_embed1.proj.weight", true),
        ("encoder.patch_embed2.proj.weight", false),
    ] {
        assert_eq!(
            tensor(&before, key).equal(&tensor(&after, key)),
            same,
            "{key}"
        );
    }
    for sets in [&[][..], &["data.protocol=reference"][..]] {
        let report = eval(&run, "last.safetensors", sets);
        assert_eq!(report["frames"], 6, "{sets:?}");
    }
    let out = infer(&run, "last.safetensors", &test_split(), "infer");
    let video = std::fs::read_dir(out.join("prob"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    assert_eq!(files(&out.join("prob").join(video)), 6);
}

#[test]
fn slt_net_two_stage_pipeline_runs_from_short_term_maps_to_the_long_term_model() {
    let short = slt_net_run();
    let report = eval(short, "best.safetensors", &["data.protocol=reference"]);
    assert_eq!(report["frames"], 4, "test_video.py's frames 0 … n−3");
    let priors = short.join("priors");
    assert_eq!(
        files(&priors.join("train/maps")),
        2,
        "one folder per training video"
    );

    let cfg = config(
        "slt-net-long",
        "kind = \"slt-net-long\"\nfreeze_backbone_bn = false",
        &format!(
            "train_size = [256, 448]\neval_batch_size = 3\naugment = false\nprior_dir = \"{}/{{split}}/maps\"",
            priors.display()
        ),
        "batch_size = 1\nlr = 1e-4\noptimizer = \"sltnet-adamw\"\nweight_decay = 1e-6\n\
         lr_schedule = \"cyclic-cosine\"\nclip_frames = 2",
        "best_metric = \"mae\"",
    );
    let pretrained = format!(
        "train.pretrained=\"{}\"",
        short.join("best.safetensors").display()
    );
    // Two optimiser steps on clips of 2 frames (a full epoch would be 10), then stop.
    let (run, log) = train(
        &cfg,
        "slt-net-long-run",
        &["--set", &pretrained, "--stop-after-steps", "2"],
    );
    // The shared backbone (encoder, RFBs, decoder) came from the short-term model; the NS
    // blocks and first_conv are new.
    assert_pretrained(&log, "479");
    let full = eval(&run, "last.safetensors", &[]);
    assert_eq!(full["frames"], 6);
    let out = infer(&run, "last.safetensors", &test_split(), "infer");
    let video = std::fs::read_dir(out.join("masks"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    assert_eq!(files(&out.join("masks").join(video)), 6);

    // Without its priors the long-term model says where they should be and how to make them.
    let cfg_path = run.join("config.toml");
    let weights = run.join("last.safetensors");
    let missing = fgstp(&[
        "eval",
        "--config",
        cfg_path.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
        "--set",
        "data.prior_dir=\"/nonexistent/{split}\"",
    ]);
    assert!(!missing.status.success());
    let err = stderr(&missing);
    assert!(
        err.contains("/nonexistent/test") && err.contains("--save-maps"),
        "{err}"
    );
    // And `weights inspect` names what it trained.
    let text =
        String::from_utf8(ok(fgstp(&["weights", "inspect", weights.to_str().unwrap()])).stdout)
            .unwrap();
    assert!(
        text.contains("model.kind = \"slt-net-long\"")
            && text.contains("every key and shape matches"),
        "{text}"
    );
}

#[test]
fn bench_measures_a_clip_model_per_clip_and_per_frame() {
    let cfg = config(
        "bench-zoomnext-video",
        "kind = \"zoomnext-video\"",
        "train_size = 64\neval_batch_size = 10",
        "batch_size = 1",
        "",
    );
    let json = data().root.join("bench.json");
    ok(fgstp(&[
        "bench",
        "--config",
        cfg.to_str().unwrap(),
        "--repeats",
        "1",
        "--video-frames",
        "6",
        "--json",
        json.to_str().unwrap(),
    ]));
    let bench: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(bench["model"], "zoomnext-video");
    assert_eq!(bench["sample"], "clip of 5 frames");
    assert!(bench["gflops_per_triplet"].as_f64().unwrap() > 0.0);
    assert!(bench["video_fps_cached"].as_f64().unwrap() > 0.0);
    assert!(bench["train_step_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn bench_against_the_reference_refuses_at_once_what_it_cannot_compare() {
    let run = |cfg: &Path, checkout: &Path| {
        let out = fgstp(&["bench", "--config", s(cfg), "--reference", s(checkout)]);
        assert!(!out.status.success());
        stderr(&out)
    };
    // Another model kind: the FGSTP reference is not its reference.
    let zoomnext = config(
        "bench-ref-zoomnext",
        "kind = \"zoomnext\"",
        "train_size = 64",
        "",
        "",
    );
    let err = run(&zoomnext, &data().root);
    assert!(
        err.contains("scripts/bench/bench-baselines-vs-reference"),
        "{err}"
    );
    // A folder that is not a checkout of GeekEagle/FGSTP.
    let fgstp_cfg = config(
        "bench-ref-fgstp",
        "kind = \"fgstp\"\ncorrelation_pools = [2, 2, 2]",
        "train_size = 64",
        "",
        "",
    );
    let err = run(&fgstp_cfg, &data().root);
    assert!(
        err.contains("not a checkout") && err.contains("GeekEagle/FGSTP"),
        "{err}"
    );
}
