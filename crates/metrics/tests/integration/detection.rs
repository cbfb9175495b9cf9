//! Frame-level leak detection on hand-made 10×10 frames: which frames are predicted leak
//! under pixel and percent rules, pooled and per-video rates, exact merges and the rule in
//! the mergeable state.

use std::collections::BTreeMap;

use fgstp_metrics::{
    Detection, FrameScores, GrayView, MaskGeometry, MetricRecorder, MetricsError, MinLeakArea,
    Report, Shard,
};

const W: usize = 10;
const H: usize = 10;

/// A prediction with `on` pixels at 128 (the lowest value that counts) and 20 pixels at 127
/// (which do not), elsewhere 0.
fn prediction(on: usize) -> Vec<u8> {
    let mut p = vec![0u8; W * H];
    for v in p.iter_mut().take(on) {
        *v = 128;
    }
    for v in p.iter_mut().skip(50).take(20) {
        *v = 127;
    }
    p
}

/// A mask with a leak in its last 10 pixels, or without one.
fn mask(leak: bool) -> Vec<u8> {
    let mut m = vec![0u8; W * H];
    if leak {
        for v in m.iter_mut().skip(90) {
            *v = 255;
        }
    }
    m
}

fn view(pixels: &[u8]) -> GrayView<'_> {
    GrayView::new(pixels, W, H).unwrap()
}

/// (video, predicted pixels, mask has a leak): with a rule of 3 pixels, video `a` has a leak
/// found (3) and one missed (2); `b` three leak-free frames, quiet (2, 0) and one false alarm
/// (3); `c` a leak found and a quiet leak-free frame.
const FRAMES: &[(&str, usize, bool)] = &[
    ("a", 3, true),
    ("a", 2, true),
    ("b", 2, false),
    ("b", 3, false),
    ("b", 0, false),
    ("c", 40, true),
    ("c", 1, false),
];

fn record(rule: MinLeakArea, frames: &[(&str, usize, bool)]) -> MetricRecorder {
    let mut r = MetricRecorder::with_min_leak_area(rule);
    for &(video, on, leak) in frames {
        r.step(video, view(&prediction(on)), view(&mask(leak)))
            .unwrap();
    }
    r
}

fn rates(report: &Report) -> BTreeMap<String, (Option<f64>, Option<f64>)> {
    let pair = |s: &fgstp_metrics::Scores| (s.get("leak_recall"), s.get("leak_fpr"));
    let mut out: BTreeMap<String, _> = report
        .per_video
        .iter()
        .map(|(v, s)| (v.clone(), pair(s)))
        .collect();
    out.insert("overall".into(), pair(&report.overall));
    out.insert("video_mean".into(), pair(&report.video_mean));
    out
}

#[test]
fn the_predicted_area_counts_8_bit_pixels_from_128_and_the_mask_any_non_zero_pixel() {
    let s = FrameScores::compute(view(&prediction(3)), view(&mask(true))).unwrap();
    assert_eq!(
        (
            s.detection.predicted_area,
            s.detection.mask_area,
            s.detection.pixels
        ),
        (3, 10, 100)
    );
    // A faint mask (level 1) still marks a leak, as test.py's rule has it.
    let faint = [vec![0u8; 99], vec![1u8]].concat();
    let s = FrameScores::compute(view(&prediction(0)), view(&faint)).unwrap();
    assert!(s.detection.has_leak() && s.jaccard_f1.is_some());
    let s = FrameScores::compute(view(&prediction(0)), view(&mask(false))).unwrap();
    assert!(!s.detection.has_leak());
}

#[test]
fn a_given_predicted_area_replaces_the_counted_one_and_nothing_else() {
    let (pred, gt) = (prediction(30), mask(false));
    let geometry = MaskGeometry::new(view(&gt));
    let counted = FrameScores::compute(view(&pred), view(&gt)).unwrap();
    assert_eq!(Detection::map_area(view(&pred)), 30);
    let none =
        FrameScores::compute_with_predicted_area(view(&pred), view(&gt), &geometry, None).unwrap();
    assert_eq!(none, counted);
    let given =
        FrameScores::compute_with_predicted_area(view(&pred), view(&gt), &geometry, Some(2))
            .unwrap();
    assert_eq!(given.detection.predicted_area, 2);
    assert_eq!(
        FrameScores {
            detection: counted.detection,
            ..given.clone()
        },
        counted
    );
    let rule = MinLeakArea::Pixels(3);
    assert!(counted.detection.predicts_leak(rule) && !given.detection.predicts_leak(rule));
}

#[test]
fn leaks_are_found_or_missed_and_leak_free_frames_quiet_or_false_alarms_at_the_boundary() {
    let report = record(MinLeakArea::Pixels(3), FRAMES).results().unwrap();
    let got = rates(&report);
    // Pooled over frames: leaks found 2 of 3 (a: 1 of 2, c: 1 of 1), false alarms 1 of 4
    // (b: 1 of 3, c: 0 of 1).
    assert_eq!(got["overall"], (Some(2.0 / 3.0), Some(0.25)));
    assert_eq!(got["a"], (Some(0.5), None));
    assert_eq!(got["b"], (None, Some(1.0 / 3.0)));
    assert_eq!(got["c"], (Some(1.0), Some(0.0)));
    // video_mean pools frames too: not the mean over videos (0.75 and 1/6).
    assert_eq!(got["video_mean"], got["overall"]);
    // The paper's columns are untouched by the rule.
    let other = record(MinLeakArea::Pixels(1), FRAMES).results().unwrap();
    for key in [
        "sm",
        "wfm",
        "mae",
        "em_mean",
        "iou_mean",
        "dice_mean",
        "jaccard",
    ] {
        assert_eq!(
            report.video_mean.get(key),
            other.video_mean.get(key),
            "{key}"
        );
    }
    // With 1 pixel, the missed leak and both quiet frames with pixels become hits.
    let got = rates(&other);
    assert_eq!(got["overall"], (Some(1.0), Some(0.75)));
}

#[test]
fn percent_rules_round_up_to_pixels_of_the_frame() {
    let parse = |s: &str| s.parse::<MinLeakArea>().unwrap();
    // 2.5 % of 100 pixels = 3 pixels, 2.01 % rounds up to 3 as well, 2 % = 2 pixels.
    let three = rates(&record(MinLeakArea::Pixels(3), FRAMES).results().unwrap());
    assert_eq!(
        rates(&record(parse("2.5%"), FRAMES).results().unwrap()),
        three
    );
    assert_eq!(
        rates(&record(parse("2.01%"), FRAMES).results().unwrap()),
        three
    );
    let two = rates(&record(parse("2%"), FRAMES).results().unwrap());
    assert_eq!(two["overall"], (Some(1.0), Some(0.5)));
    // The default, 0.5 %, is one pixel on 100.
    let default = rates(&record(MinLeakArea::default(), FRAMES).results().unwrap());
    assert_eq!(default["overall"], (Some(1.0), Some(0.75)));
}

#[test]
fn empty_sets_give_absent_rates() {
    let only_leaks = record(MinLeakArea::Pixels(3), &FRAMES[..2])
        .results()
        .unwrap();
    assert_eq!(rates(&only_leaks)["overall"], (Some(0.5), None));
    let json = serde_json::to_value(&only_leaks).unwrap();
    assert!(json["overall"]["leak_fpr"].is_null(), "{json}");
    assert_eq!(json["video_mean"]["leak_recall"], 0.5);
    let only_quiet = record(MinLeakArea::Pixels(3), &FRAMES[2..5])
        .results()
        .unwrap();
    assert_eq!(rates(&only_quiet)["overall"], (None, Some(1.0 / 3.0)));
}

#[test]
fn probabilities_are_thresholded_absolutely_not_min_max_normalised() {
    // A leak-free frame whose probabilities stay below 0.5: normalised, half of it would be a
    // leak (and the 8-bit gray map of eval marks it), absolutely none of it is.
    let probability: Vec<f32> = (0..W * H).map(|i| if i < 50 { 0.4 } else { 0.1 }).collect();
    let gray = fgstp_metrics::to_gray_map(&probability);
    let empty = mask(false);
    let mut absolute = MetricRecorder::with_min_leak_area(MinLeakArea::Pixels(1));
    absolute
        .step_with_probability("v", view(&gray), &probability, view(&empty))
        .unwrap();
    assert_eq!(
        absolute.results().unwrap().overall.get("leak_fpr"),
        Some(0.0)
    );
    let mut normalised = MetricRecorder::with_min_leak_area(MinLeakArea::Pixels(1));
    normalised.step("v", view(&gray), view(&empty)).unwrap();
    assert_eq!(
        normalised.results().unwrap().overall.get("leak_fpr"),
        Some(1.0)
    );
    // Exactly 0.5 is not above it.
    let half = vec![0.5f32; W * H];
    let s = FrameScores::compute_with_probability(view(&gray), &half, view(&empty)).unwrap();
    assert_eq!(s.detection.predicted_area, 0);
}

#[test]
fn sharded_recorders_and_states_merge_exactly_and_only_under_one_rule() {
    let rule: MinLeakArea = "2.5%".parse().unwrap();
    let whole = record(rule, FRAMES);
    for shards in [2, 3] {
        let mut parts = vec![MetricRecorder::with_min_leak_area(rule); shards];
        for (k, &(video, on, leak)) in FRAMES.iter().enumerate() {
            parts[(k * 5 + 1) % shards]
                .step(video, view(&prediction(on)), view(&mask(leak)))
                .unwrap();
        }
        // Through the state files' values, in reverse order.
        let mut merged = MetricRecorder::with_min_leak_area(rule);
        for (k, part) in parts.iter().enumerate().rev() {
            let state = part.to_state(
                Some(Shard {
                    index: k,
                    count: shards,
                }),
                BTreeMap::new(),
            );
            assert_eq!(state.min_leak_area, "2.5%");
            let text = serde_json::to_string(&state).unwrap();
            let back = MetricRecorder::from_state(&serde_json::from_str(&text).unwrap()).unwrap();
            assert_eq!(back.min_leak_area(), rule);
            merged.try_merge(&back).unwrap();
        }
        assert_eq!(merged, whole, "{shards} shards");
        assert_eq!(merged.results().unwrap(), whole.results().unwrap());
    }

    let mut merged = record(rule, &FRAMES[..3]);
    let before = merged.clone();
    let other = record(MinLeakArea::Pixels(3), &FRAMES[3..]);
    let err = merged.try_merge(&other).unwrap_err();
    assert_eq!(
        err,
        MetricsError::RuleMismatch {
            ours: rule,
            theirs: MinLeakArea::Pixels(3)
        }
    );
    assert!(err.to_string().contains("3px") && err.to_string().contains("2.5%"));
    assert_eq!(merged, before, "a refused merge changes nothing");

    let mut state = whole.to_state(None, BTreeMap::new());
    state.min_leak_area = "half".into();
    let err = MetricRecorder::from_state(&state).unwrap_err().to_string();
    assert!(err.contains("\"half\""), "{err}");
}

#[test]
fn the_one_line_summary_ends_with_the_detection_rates() {
    let report = record(MinLeakArea::Pixels(3), FRAMES).results().unwrap();
    let line = report.overall.summary();
    assert!(line.ends_with("| leakR 0.6667 leakFPR 0.2500"), "{line}");
    let table = report.table();
    let header = table.lines().find(|l| l.starts_with("video")).unwrap();
    assert!(
        header.contains("leak_recall") && header.contains("leak_fpr"),
        "{table}"
    );
}
