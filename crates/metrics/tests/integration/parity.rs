//! Parity with PySODMetrics 1.6.2: golden values from `scripts/fixtures/golden_metrics.py` on the
//! committed fixture PNGs (edge cases: empty and full masks, constant predictions, centroids
//! on the border, single-pixel objects, non-square, single-row and single-column images).

use std::path::{Path, PathBuf};

use fgstp_metrics::registry::DETECTION_COLUMNS;
use fgstp_metrics::{FrameScores, GrayView, MetricRecorder, Report, Scores};
use serde_json::Value;

/// The bar: every key within 1e-6 of PySODMetrics.
const TOLERANCE: f64 = 1e-6;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn golden() -> Value {
    let text = std::fs::read_to_string(fixtures().join("golden.json")).expect("golden.json");
    serde_json::from_str(&text).expect("golden.json parses")
}

struct Image {
    pixels: Vec<u8>,
    width: usize,
    height: usize,
}

impl Image {
    fn view(&self) -> GrayView<'_> {
        GrayView::new(&self.pixels, self.width, self.height).unwrap()
    }
}

fn load(path: &Path) -> Image {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_luma8();
    Image {
        width: img.width() as usize,
        height: img.height() as usize,
        pixels: img.into_raw(),
    }
}

/// (video, frame, golden values) of every fixture frame, with its images.
fn golden_frames() -> Vec<(String, String, Value, Image, Image)> {
    let golden = golden();
    golden["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let video = row["video"].as_str().unwrap().to_string();
            let frame = row["frame"].as_str().unwrap().to_string();
            let file = format!("{video}/{frame}.png");
            let pred = load(&fixtures().join("pred").join(&file));
            let gt = load(&fixtures().join("gt").join(&file));
            (video, frame, row.clone(), pred, gt)
        })
        .collect()
}

fn frame_entries(s: &FrameScores) -> Vec<(&'static str, Option<f64>)> {
    let mean = |c: &[f64; 256]| c.iter().sum::<f64>() / 256.0;
    let max = |c: &[f64; 256]| c.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let jf = s.jaccard_f1;
    vec![
        ("sm", Some(s.sm)),
        ("wfm", Some(s.wfm)),
        ("mae", Some(s.mae)),
        ("em_adp", Some(s.em_adp)),
        ("em_mean", Some(mean(&s.em_curve))),
        ("em_max", Some(max(&s.em_curve))),
        ("fm_adp", Some(s.fm_adp)),
        ("fm_mean", Some(mean(&s.fm_curve))),
        ("fm_max", Some(max(&s.fm_curve))),
        ("iou_adp", Some(s.iou_adp)),
        ("iou_mean", Some(mean(&s.iou_curve))),
        ("iou_max", Some(max(&s.iou_curve))),
        ("dice_adp", Some(s.dice_adp)),
        ("dice_mean", Some(mean(&s.dice_curve))),
        ("dice_max", Some(max(&s.dice_curve))),
        ("jaccard", jf.map(|x| x.jaccard)),
        ("f1", jf.map(|x| x.f1)),
        ("jf", jf.map(|x| (x.f1 + x.jaccard) / 2.0)),
    ]
}

/// Compares and returns the largest difference; every mismatch is listed before failing.
fn compare(
    label: &str,
    ours: &[(&'static str, Option<f64>)],
    golden: &Value,
    errors: &mut Vec<String>,
) -> f64 {
    let mut worst: f64 = 0.0;
    assert_eq!(
        golden.as_object().map(|o| o
            .keys()
            .filter(|k| ours.iter().any(|(n, _)| n == k))
            .count()),
        Some(18),
        "{label}: golden entry lacks keys"
    );
    for (key, value) in ours {
        let expected = golden[key].as_f64();
        match (value, expected) {
            (Some(a), Some(b)) => {
                let d = (a - b).abs();
                worst = worst.max(d);
                if d.is_nan() || d > TOLERANCE {
                    errors.push(format!("{label} {key}: ours {a} vs PySODMetrics {b}"));
                }
            }
            (None, None) => {}
            (a, b) => errors.push(format!("{label} {key}: ours {a:?} vs golden {b:?}")),
        }
    }
    worst
}

#[test]
fn every_key_of_every_frame_matches_pysodmetrics() {
    let mut errors = Vec::new();
    let mut worst: f64 = 0.0;
    let frames = golden_frames();
    assert!(frames.len() >= 30, "fixtures missing");
    for (video, frame, golden, pred, gt) in &frames {
        let scores = FrameScores::compute(pred.view(), gt.view()).unwrap();
        worst = worst.max(compare(
            &format!("{video}/{frame}"),
            &frame_entries(&scores),
            golden,
            &mut errors,
        ));
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    eprintln!("largest difference from PySODMetrics over all frames and keys: {worst:e}");
}

#[test]
fn the_edge_cases_are_in_the_fixtures() {
    let frames = golden_frames();
    let has = |name: &str| frames.iter().any(|(_, frame, ..)| frame.contains(name));
    for name in [
        "empty_mask",
        "full_mask",
        "black_pred",
        "white_pred",
        "grey_pred",
        "single_pixel",
        "single_row",
        "single_column",
        "centroid_in_last_row",
    ] {
        assert!(has(name), "no fixture {name}");
    }
    // Non-square sizes, and a frame where the reference's S-measure is NaN.
    assert!(frames.iter().any(|(.., p, _)| p.width != p.height));
    assert!(frames
        .iter()
        .any(|(_, _, g, ..)| g["sm_reference_is_nan"].as_bool() == Some(true)));
}

/// Every metric with a golden value: all but frame-level detection, which is fgstp's own
/// (no PySODMetrics or `test.py` counterpart; see `detection.rs`).
fn scores_entries(s: &Scores) -> Vec<(&'static str, Option<f64>)> {
    s.entries()
        .into_iter()
        .filter(|(key, _)| !DETECTION_COLUMNS.contains(key))
        .collect()
}

fn record(frames: &[(String, String, Value, Image, Image)]) -> MetricRecorder {
    let mut recorder = MetricRecorder::new();
    for (video, _, _, pred, gt) in frames {
        recorder.step(video, pred.view(), gt.view()).unwrap();
    }
    recorder
}

#[test]
fn overall_per_video_and_video_mean_match_the_grouped_recorder() {
    let golden = golden();
    let expected = &golden["report"];
    let report: Report = record(&golden_frames()).results().unwrap();
    let mut errors = Vec::new();
    compare(
        "overall",
        &scores_entries(&report.overall),
        &expected["overall"],
        &mut errors,
    );
    compare(
        "video_mean",
        &scores_entries(&report.video_mean),
        &expected["video_mean"],
        &mut errors,
    );
    let videos = expected["per_video"].as_object().unwrap();
    assert_eq!(
        report.per_video.keys().collect::<Vec<_>>(),
        videos.keys().collect::<Vec<_>>()
    );
    for (video, scores) in &report.per_video {
        compare(video, &scores_entries(scores), &videos[video], &mut errors);
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert_eq!(Some(report.frames), expected["frames"].as_u64());
    assert_eq!(Some(report.videos as u64), expected["videos"].as_u64());
    // Curve metrics over videos are not the mean of the per-video values (curves are
    // averaged first): make sure the fixtures tell the two apart.
    let em_max = |s: &Scores| s.get("em_max").expect("em_max is always present");
    let naive = report.per_video.values().map(em_max).sum::<f64>() / report.videos as f64;
    assert!((naive - em_max(&report.video_mean)).abs() > 1e-4);
}

#[test]
fn merged_shards_equal_one_pass_exactly() {
    let frames = golden_frames();
    let whole = record(&frames);
    for shards in [2, 3, 7] {
        let mut parts = vec![MetricRecorder::new(); shards];
        for (k, (video, _, _, pred, gt)) in frames.iter().enumerate() {
            parts[(k * 5 + 3) % shards]
                .step(video, pred.view(), gt.view())
                .unwrap();
        }
        let mut merged = MetricRecorder::new();
        for part in parts.iter().rev() {
            merged.merge(part);
        }
        assert_eq!(merged, whole, "{shards} shards");
        assert_eq!(merged.results().unwrap(), whole.results().unwrap());
    }
}
