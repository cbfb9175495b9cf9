//! The embedded default learns gas, not equipment: a trained quickstart run stays quiet on
//! leak-free frames, finds the leaks, and marks far more on a scene with gas than on the same
//! scene rendered without it. Training takes minutes, so this runs on a finished run:
//! `scripts/quickstart-check` trains one (or takes `--run DIR`) and runs this test on it.

use std::path::{Path, PathBuf};

use crate::common::{fgstp_in, ok, s};

/// Thresholds the quickstart must meet on its test split.
const MAX_FALSE_POSITIVE_RATE: f64 = 0.05;
const MIN_RECALL: f64 = 0.90;
const MIN_LEAK_FRAME_JACCARD: f64 = 0.30;
/// Predicted area on the frames with gas, with gas / without.
const MIN_AREA_RATIO: f64 = 10.0;

/// Runs `fgstp ARGS` from the repository root, where a run's relative paths (its
/// `data.root`) point, as they did when it was trained.
fn fgstp(args: &[&str]) -> std::process::Output {
    fgstp_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."), args)
}

fn run_dir() -> PathBuf {
    let dir = std::env::var_os("FGSTP_QUICKSTART_RUN").expect(
        "FGSTP_QUICKSTART_RUN=<a trained quickstart run folder>: scripts/quickstart-check sets it",
    );
    PathBuf::from(dir)
}

/// Marked pixels of every `frame_NNNNN.png` in `masks`, in frame order.
fn mask_areas(masks: &Path, frames: usize) -> Vec<u64> {
    (0..frames)
        .map(|t| {
            let path = masks.join(format!("frame_{:05}.png", t + 1));
            let m = image::open(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .to_luma8();
            m.iter().filter(|&&v| v > 127).count() as u64
        })
        .collect()
}

#[test]
#[ignore = "needs a trained quickstart run: scripts/quickstart-check trains one and runs this"]
fn the_quickstart_learns_gas_not_equipment() {
    let run = run_dir();
    let (config, weights) = (run.join("config.toml"), run.join("best.safetensors"));
    let tmp = tempfile::tempdir().unwrap();

    // 1. The test split: detection and the leak frames' Jaccard.
    let json = tmp.path().join("test.json");
    ok(fgstp(&[
        "eval",
        "--config",
        s(&config),
        "--weights",
        s(&weights),
        "--split",
        "test",
        "--json",
        s(&json),
    ]));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let overall = &report["overall"];
    let value = |key: &str| {
        overall[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} in {}", json.display()))
    };
    let (fpr, recall, jaccard) = (value("leak_fpr"), value("leak_recall"), value("jaccard"));
    eprintln!(
        "test split: false-positive rate {fpr:.4} on leak-free frames, recall {recall:.4} on leak frames, Jaccard {jaccard:.4} on leak frames"
    );

    // 2. One scene with two leak episodes, rendered with gas and with the same scene, noise and
    //    distractors but no visible gas (contrast 0).
    let text = std::fs::read_to_string(&config).unwrap();
    let cfg: toml::Table = toml::from_str(&text).unwrap();
    let synth = cfg["synth"]
        .as_table()
        .expect("a quickstart run has [synth]");
    let contrast = synth["contrast"].as_float().unwrap_or(60.0).to_string();
    let size = format!(
        "{}x{}",
        synth["width"].as_integer().unwrap(),
        synth["height"].as_integer().unwrap()
    );
    let frames = 96;
    let mut areas = Vec::new();
    for (name, contrast) in [("gas", contrast.as_str()), ("no-gas", "0")] {
        let video = tmp.path().join(name);
        ok(fgstp(&[
            "synth",
            "--episodes",
            "2",
            "--frames",
            &frames.to_string(),
            "--size",
            &size,
            "--seed",
            "31",
            "--contrast",
            contrast,
            "--out",
            s(&video),
        ]));
        let out = tmp.path().join(format!("{name}-infer"));
        ok(fgstp(&[
            "infer",
            "--config",
            s(&config),
            "--weights",
            s(&weights),
            "--input",
            s(&video.join("video.mp4")),
            "--output",
            s(&out),
        ]));
        areas.push(mask_areas(&out.join("masks"), frames));
    }
    let episodes: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tmp.path().join("gas").join("episodes.json")).unwrap(),
    )
    .unwrap();
    let in_episode = |t: usize| {
        episodes["episodes"].as_array().unwrap().iter().any(|e| {
            let (first, last) = (
                e["first_frame"].as_u64().unwrap(),
                e["last_frame"].as_u64().unwrap(),
            );
            (first..=last).contains(&(t as u64))
        })
    };
    let sum = |a: &[u64], gas: bool| -> u64 {
        (0..frames)
            .filter(|&t| in_episode(t) == gas)
            .map(|t| a[t])
            .sum()
    };
    let (with_gas, without_gas) = (sum(&areas[0], true), sum(&areas[1], true));
    eprintln!(
        "episode frames: {with_gas} pixels marked with gas, {without_gas} on the same frames without; leak-free stretches: {} and {}",
        sum(&areas[0], false),
        sum(&areas[1], false)
    );

    // Every target is checked, so that one run tells all that is missed.
    let checks = [
        (
            fpr <= MAX_FALSE_POSITIVE_RATE,
            format!("false-positive rate {fpr:.4} on the test split's leak-free frames (at most {MAX_FALSE_POSITIVE_RATE})"),
        ),
        (
            recall >= MIN_RECALL,
            format!("recall {recall:.4} on the test split's leak frames (at least {MIN_RECALL})"),
        ),
        (
            jaccard >= MIN_LEAK_FRAME_JACCARD,
            format!("Jaccard {jaccard:.4} on the test split's leak frames (at least {MIN_LEAK_FRAME_JACCARD})"),
        ),
        (
            with_gas as f64 >= MIN_AREA_RATIO * without_gas as f64 && with_gas > 0,
            format!("{with_gas} pixels marked on the episodes' frames with gas, {without_gas} without (at least {MIN_AREA_RATIO}× more)"),
        ),
    ];
    let missed: Vec<&str> = checks
        .iter()
        .filter(|(met, _)| !met)
        .map(|(_, what)| what.as_str())
        .collect();
    assert!(
        missed.is_empty(),
        "targets missed:\n  {}",
        missed.join("\n  ")
    );
}
