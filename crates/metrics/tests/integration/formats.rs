//! Prediction PNGs as other systems write them (palette ids, DAVIS-coloured RGB, 16-bit ids,
//! grey + alpha, 16-bit soft maps, colour maps) read as OpenCV reads them and scored as
//! PySODMetrics scores the map they stand for; golden values from
//! `scripts/fixtures/make_metrics_formats.py` (OpenCV 4.14, PySODMetrics 1.6.2).

use std::path::{Path, PathBuf};

use fgstp_metrics::io::{
    decode_png, pair_files, score_pairs, Exclusions, PairOptions, PredKind, Reading,
};
use fgstp_metrics::Report;
use serde_json::Value;

const TOLERANCE: f64 = 1e-6;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn formats() -> PathBuf {
    fixtures().join("formats")
}

fn golden() -> Value {
    let text = std::fs::read_to_string(formats().join("golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn every_png_kind_turns_grey_exactly_as_cv2_imread_grayscale() {
    let golden = golden();
    let files = golden["cv2_gray"].as_object().unwrap();
    assert!(files.len() >= 60, "{} fixture PNGs", files.len());
    for (rel, expected) in files {
        let decoded = decode_png(&formats().join(rel)).unwrap();
        assert_eq!(
            hex(&decoded.to_gray()),
            expected.as_str().unwrap(),
            "{rel}: differs from cv2.IMREAD_GRAYSCALE"
        );
    }
}

/// Scores `folder` against `gt/`, leaving out the given annotations (`00000`).
fn score(folder: &str, kind: PredKind) -> (Report, Vec<Reading>) {
    let mut exclude = Exclusions::default();
    exclude
        .add_annotated(&formats().join("annotations"))
        .unwrap();
    let options = PairOptions {
        exclude,
        ..PairOptions::default()
    };
    let pairs = pair_files(&formats().join(folder), &formats().join("gt"), &options).unwrap();
    assert_eq!(
        pairs.excluded, 2,
        "{folder}: one given annotation per video"
    );
    let scored = score_pairs(&pairs.frames, kind, Default::default(), &|| {}).unwrap();
    let readings = scored.readings.keys().copied().collect();
    (scored.recorder.results().unwrap(), readings)
}

fn assert_matches(report: &Report, golden: &Value, label: &str) {
    assert_eq!(report.frames, golden["frames"].as_u64().unwrap(), "{label}");
    for group in ["overall", "video_mean"] {
        let ours = match group {
            "overall" => &report.overall,
            _ => &report.video_mean,
        };
        let expected = golden[group].as_object().unwrap();
        assert_eq!(expected.len(), 15, "{label}: every PySODMetrics key");
        for (key, value) in expected {
            let (a, b) = (ours.get(key).unwrap(), value.as_f64().unwrap());
            assert!(
                (a - b).abs() <= TOLERANCE,
                "{label} {group} {key}: {a} vs PySODMetrics {b}"
            );
        }
    }
}

#[test]
fn auto_reads_each_system_format_and_scores_it_as_pysodmetrics() {
    let golden = golden();
    let systems = &golden["systems"];
    let cases: [(&str, &str, Reading); 7] = [
        ("xmem", "xmem:index", Reading::IndexPalette),
        ("xmempp", "xmempp:index", Reading::IndexDavisRgb),
        ("ids16", "ids16:index", Reading::IndexWide),
        ("soft_la", "soft_la:soft", Reading::SoftGray),
        ("soft16", "soft16:soft", Reading::SoftGray),
        ("soft_rgba", "soft_rgba:soft", Reading::SoftColour),
        ("gray_rgb", "gray_rgb:soft", Reading::SoftGrayRgb),
    ];
    for (folder, key, reading) in cases {
        let (report, readings) = score(folder, PredKind::Auto);
        assert_eq!(readings, [reading], "{folder}");
        assert_matches(&report, &systems[key], key);
    }
    // Index images as one mask: three systems, three formats, one result.
    let (palette, _) = score("xmem", PredKind::Auto);
    let (rgb, _) = score("xmempp", PredKind::Auto);
    let (wide, _) = score("ids16", PredKind::Auto);
    assert_eq!(palette, rgb);
    assert_eq!(palette, wide);
}

#[test]
fn forced_readings_override_auto() {
    let golden = golden();
    // A palette image read as cv2 reads it (palette colours to grey): what PySODMetrics users
    // get without --pred-kind.
    let (soft, readings) = score("xmem", PredKind::Soft);
    assert_eq!(readings, [Reading::Forced(PredKind::Soft)]);
    assert_matches(
        &soft,
        &golden["systems"]["xmem:soft"],
        "xmem --pred-kind soft",
    );
    let (index, _) = score("xmem", PredKind::Index);
    let (auto, _) = score("xmem", PredKind::Auto);
    assert_eq!(index, auto);
    assert_ne!(soft, auto, "ids 1 and 2 have different palette greys");
    // binary: the grey map thresholded at 128 is a 0/255 mask, so scores do not depend on
    // the soft values above or below it.
    let (binary, readings) = score("gray_rgb", PredKind::Binary);
    assert_eq!(readings, [Reading::Forced(PredKind::Binary)]);
    assert!(binary.overall.get("mae").unwrap().is_finite());
}

#[test]
fn auto_on_grey_predictions_is_the_soft_reading_of_before() {
    let pred = fixtures().join("pred");
    let gt = fixtures().join("gt");
    let pairs = pair_files(&pred, &gt, &PairOptions::default()).unwrap();
    let auto = score_pairs(&pairs.frames, PredKind::Auto, Default::default(), &|| {}).unwrap();
    let soft = score_pairs(&pairs.frames, PredKind::Soft, Default::default(), &|| {}).unwrap();
    assert_eq!(auto.recorder, soft.recorder);
    assert_eq!(
        auto.readings.into_iter().collect::<Vec<_>>(),
        [(Reading::SoftGray, 33)]
    );
}

#[test]
fn precision_recall_curves_match_pysodmetrics() {
    let golden = golden();
    let pairs = pair_files(
        &fixtures().join("pred"),
        &fixtures().join("gt"),
        &PairOptions::default(),
    )
    .unwrap();
    let scored = score_pairs(&pairs.frames, PredKind::Auto, Default::default(), &|| {}).unwrap();
    let curves = scored.recorder.curves().unwrap();
    for key in ["precision", "recall"] {
        let ours = &curves.video_mean[key];
        // PySODMetrics stores the curve from threshold 255 down to 0.
        let theirs: Vec<f64> = golden["pr_curves"][key]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(ours.len(), 256);
        for (t, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert!((a - b).abs() <= TOLERANCE, "{key}[{t}]: {a} vs {b}");
        }
    }
}
