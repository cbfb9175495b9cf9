//! `fgstp metrics` end to end on the metrics crate's fixture PNGs, whose golden values come
//! from PySODMetrics 1.6.2 (scripts/fixtures/golden_metrics.py).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const KEYS: [&str; 18] = [
    "sm",
    "wfm",
    "mae",
    "em_adp",
    "em_mean",
    "em_max",
    "fm_adp",
    "fm_mean",
    "fm_max",
    "iou_adp",
    "iou_mean",
    "iou_max",
    "dice_adp",
    "dice_mean",
    "dice_max",
    "jaccard",
    "f1",
    "jf",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../metrics/tests/fixtures")
}

fn golden_report() -> Value {
    let text = std::fs::read_to_string(fixtures().join("golden.json")).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["report"].clone()
}

fn fgstp(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fgstp"))
        .arg("metrics")
        .args(args)
        .output()
        .expect("fgstp runs")
}

fn run_ok(pred: &Path, gt: &Path, extra: &[&str]) -> (Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("metrics.json");
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "--pred".as_ref(),
        pred.as_os_str(),
        "--gt".as_ref(),
        gt.as_os_str(),
        "--json".as_ref(),
        json.as_os_str(),
    ];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    let out = fgstp(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "fgstp metrics failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("video_mean"), "no table:\n{stdout}");
    let text = std::fs::read_to_string(&json).unwrap();
    (serde_json::from_str(&text).unwrap(), stderr)
}

fn copy_tree(from: &Path, to: &Path, layout: impl Fn(&str, &str) -> PathBuf) {
    for video in std::fs::read_dir(from).unwrap() {
        let video = video.unwrap().path();
        let name = video.file_name().unwrap().to_str().unwrap().to_string();
        for frame in std::fs::read_dir(&video).unwrap() {
            let frame = frame.unwrap().path();
            let target = to.join(layout(&name, frame.file_name().unwrap().to_str().unwrap()));
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(&frame, target).unwrap();
        }
    }
}

fn assert_shape(report: &Value) {
    let top: Vec<&String> = report.as_object().unwrap().keys().collect();
    let mut sorted_top = top.clone();
    sorted_top.sort();
    assert_eq!(
        sorted_top,
        ["frames", "overall", "per_video", "video_mean", "videos"]
    );
    let mut groups = vec![&report["overall"], &report["video_mean"]];
    groups.extend(report["per_video"].as_object().unwrap().values());
    for g in groups {
        let keys: Vec<&str> = g.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        // The golden keys, then frame-level detection (fgstp's own, no golden values).
        let mut expected = KEYS.to_vec();
        expected.extend(["leak_recall", "leak_fpr"]);
        expected.sort();
        assert_eq!(sorted, expected);
        for k in expected {
            assert!(g[k].is_f64() || g[k].is_null(), "{k} is {}", g[k]);
        }
    }
    assert!(report["frames"].is_u64() && report["videos"].is_u64());
}

fn assert_close(ours: &Value, golden: &Value, label: &str) {
    for k in KEYS {
        match (ours[k].as_f64(), golden[k].as_f64()) {
            (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-6, "{label} {k}: {a} vs {b}"),
            (None, None) => {}
            (a, b) => panic!("{label} {k}: {a:?} vs {b:?}"),
        }
    }
}

#[test]
fn same_tree_and_split_root_give_the_golden_report() {
    let golden = golden_report();
    let (same_tree, _) = run_ok(&fixtures().join("pred"), &fixtures().join("gt"), &[]);
    assert_shape(&same_tree);
    assert_close(&same_tree["overall"], &golden["overall"], "overall");
    assert_close(
        &same_tree["video_mean"],
        &golden["video_mean"],
        "video_mean",
    );
    for (video, scores) in golden["per_video"].as_object().unwrap() {
        assert_close(&same_tree["per_video"][video], scores, video);
    }
    assert_eq!(same_tree["frames"], golden["frames"]);
    assert_eq!(same_tree["videos"], golden["videos"]);

    // A dataset split root: <video>/masks/<frame>.png (next to <video>/images/...).
    let split = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("gt"), split.path(), |video, frame| {
        PathBuf::from(video).join("masks").join(frame)
    });
    std::fs::create_dir_all(split.path().join("blobs_a/images")).unwrap();
    let (split_root, _) = run_ok(&fixtures().join("pred"), split.path(), &["--threads", "1"]);
    assert_eq!(
        split_root, same_tree,
        "same numbers from both layouts, any thread count"
    );
}

#[test]
fn a_flat_folder_is_one_video() {
    let (report, _) = run_ok(
        &fixtures().join("pred/blobs_a"),
        &fixtures().join("gt/blobs_a"),
        &[],
    );
    assert_shape(&report);
    assert_eq!(report["videos"], 1);
    assert_eq!(report["frames"], 5);
    assert_close(
        &report["per_video"]["blobs_a"],
        &golden_report()["per_video"]["blobs_a"],
        "blobs_a",
    );
}

#[test]
fn predictions_of_another_size_are_resized_and_reported() {
    let pred = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("pred"), pred.path(), |v, f| {
        PathBuf::from(v).join(f)
    });
    let frame = pred.path().join("blobs_a/00002.png");
    let img = image::open(&frame).unwrap().into_luma8();
    let bigger = image::imageops::resize(&img, 128, 96, image::imageops::FilterType::Triangle);
    bigger.save(&frame).unwrap();
    let (report, stderr) = run_ok(pred.path(), &fixtures().join("gt"), &[]);
    assert!(
        stderr.contains("1 of 33 predictions differed in size"),
        "{stderr}"
    );
    assert_eq!(report["frames"], 33);
}

#[test]
fn a_prediction_without_a_mask_is_an_error_naming_it() {
    let pred = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("pred"), pred.path(), |v, f| {
        PathBuf::from(v).join(f)
    });
    std::fs::copy(
        fixtures().join("pred/blobs_a/00000.png"),
        pred.path().join("blobs_a/09999.png"),
    )
    .unwrap();
    std::fs::create_dir_all(pred.path().join("no_such_video")).unwrap();
    std::fs::copy(
        fixtures().join("pred/blobs_a/00000.png"),
        pred.path().join("no_such_video/00000.png"),
    )
    .unwrap();
    let gt = fixtures().join("gt");
    let out = fgstp(&[
        "--pred".as_ref(),
        pred.path().as_os_str(),
        "--gt".as_ref(),
        gt.as_os_str(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("2 of 35 predictions have no mask"),
        "{stderr}"
    );
    assert!(stderr.contains("blobs_a/09999.png"), "{stderr}");
    assert!(stderr.contains("no_such_video/00000.png"), "{stderr}");
}

#[test]
fn masks_without_predictions_are_skipped_unless_strict() {
    let pred = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("pred"), pred.path(), |v, f| {
        PathBuf::from(v).join(f)
    });
    std::fs::remove_file(pred.path().join("blobs_b/00003.png")).unwrap();
    let gt = fixtures().join("gt");
    let (report, stderr) = run_ok(pred.path(), &gt, &[]);
    assert_eq!(report["frames"], 32);
    assert!(stderr.contains("1 masks have no prediction"), "{stderr}");
    let out = fgstp(&[
        "--pred".as_ref(),
        pred.path().as_os_str(),
        "--gt".as_ref(),
        gt.as_os_str(),
        "--strict".as_ref(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("blobs_b/00003.png"));
}

#[test]
fn missing_directories_are_named() {
    let out = fgstp(&[
        "--pred".as_ref(),
        "/nonexistent/preds".as_ref(),
        "--gt".as_ref(),
        "/tmp".as_ref(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--pred /nonexistent/preds: not a directory")
    );
}

fn formats() -> PathBuf {
    fixtures().join("formats")
}

#[test]
fn palette_predictions_are_read_as_ids_and_given_frames_excluded() {
    let pred = formats().join("xmem");
    let gt = formats().join("gt");
    let annotations = formats().join("annotations");
    let (auto, stderr) = run_ok(
        &pred,
        &gt,
        &["--exclude-annotated", annotations.to_str().unwrap()],
    );
    assert!(
        stderr.contains("6 × palette (P) PNGs: foreground = index ≠ 0"),
        "{stderr}"
    );
    assert!(stderr.contains("2 predictions excluded"), "{stderr}");
    assert_eq!(auto["frames"], 6);
    let (by_list, _) = run_ok(&pred, &gt, &["--exclude", "00000", "--pred-kind", "index"]);
    assert_eq!(
        by_list, auto,
        "--exclude 00000 = --exclude-annotated; index = auto here"
    );
    let (soft, stderr) = run_ok(&pred, &gt, &["--exclude", "0-0", "--pred-kind", "soft"]);
    assert!(stderr.contains("--pred-kind soft"), "{stderr}");
    assert_ne!(soft["video_mean"], auto["video_mean"]);
}

#[test]
fn frames_of_the_split_without_a_mask_are_skipped() {
    // A VOS method predicts every frame; the split annotates only some.
    let split = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("gt"), split.path(), |video, frame| {
        PathBuf::from(video).join("masks").join(frame)
    });
    let images = split.path().join("blobs_a/images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(images.join("00077.jpg"), b"").unwrap();
    let pred = tempfile::tempdir().unwrap();
    copy_tree(&fixtures().join("pred"), pred.path(), |v, f| {
        PathBuf::from(v).join(f)
    });
    std::fs::copy(
        fixtures().join("pred/blobs_a/00000.png"),
        pred.path().join("blobs_a/00077.png"),
    )
    .unwrap();
    let (report, stderr) = run_ok(pred.path(), split.path(), &[]);
    assert_eq!(report["frames"], 33);
    assert!(
        stderr.contains("1 predictions are of frames without a mask"),
        "{stderr}"
    );
}
