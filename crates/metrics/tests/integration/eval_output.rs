//! `fgstp eval`/`infer --output` folders (`overlays/`, `maps/`, `masks/`) built by hand: the
//! SOD and `test.py` metrics come from the min-max normalised `maps/`, the frame-level
//! detection's predicted area from the binary `masks/`, on any thread count and in `compare`.

use std::path::{Path, PathBuf};

use fgstp_metrics::io::compare::{compare_systems, CompareOptions, GridFrames, System};
use fgstp_metrics::io::{pair_files, score_pairs, PairOptions, PredKind};
use fgstp_metrics::{MinLeakArea, Report};

const W: usize = 16;
const H: usize = 16;
const VIDEO: &str = "cam01";
const RULE: MinLeakArea = MinLeakArea::Pixels(4);

/// One frame of the eval output: its mask (`gt`), `maps/` and `masks/` images.
struct Frame {
    stem: &'static str,
    gt: Vec<u8>,
    map: Vec<u8>,
    mask: Vec<u8>,
}

/// A min-max normalised map (what eval writes to `maps/`): a gradient over the whole range, so
/// that about half of its pixels are `>= 128` whatever the probabilities were.
fn normalised_map() -> Vec<u8> {
    (0..W * H).map(|i| (i * 255 / (W * H - 1)) as u8).collect()
}

/// 0/255 with the first `n` pixels of the last rows at 255.
fn block(n: usize) -> Vec<u8> {
    let mut m = vec![0u8; W * H];
    for v in m.iter_mut().rev().take(n) {
        *v = 255;
    }
    m
}

fn write_png(path: &Path, pixels: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::from_raw(W as u32, H as u32, pixels.to_vec())
        .unwrap()
        .save(path)
        .unwrap();
}

/// Writes the split (`gt/<video>/masks/`) and the eval output (`out/{overlays,maps,masks}/`);
/// `with_maps: false` is `fgstp infer` without `--save-maps` (no `maps/`).
fn build(root: &Path, frames: &[Frame], with_maps: bool) -> (PathBuf, PathBuf) {
    let (gt, out) = (root.join("gt"), root.join("out"));
    for f in frames {
        let png = format!("{}.png", f.stem);
        write_png(&gt.join(VIDEO).join("masks").join(&png), &f.gt);
        write_png(&out.join("overlays").join(VIDEO).join(&png), &f.map);
        if with_maps {
            write_png(&out.join("maps").join(VIDEO).join(&png), &f.map);
        }
        write_png(&out.join("masks").join(VIDEO).join(&png), &f.mask);
    }
    (gt, out)
}

/// Scores `pred` against `gt` with `fgstp metrics`' pairing and scoring on `threads` threads;
/// also returns the layout in words.
fn score(pred: &Path, gt: &Path, threads: usize) -> (Report, String) {
    let pairs = pair_files(pred, gt, &PairOptions::default()).unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let scored = pool
        .install(|| score_pairs(&pairs.frames, PredKind::Auto, RULE, &|| {}))
        .unwrap();
    (scored.recorder.results().unwrap(), pairs.layout)
}

fn rates(report: &Report) -> (Option<f64>, Option<f64>) {
    (
        report.overall.get("leak_recall"),
        report.overall.get("leak_fpr"),
    )
}

/// Every metric but the detection rates, for `overall`, `video_mean` and each video.
fn without_detection(report: &Report) -> Vec<(String, &'static str, Option<f64>)> {
    let mut parts = vec![
        ("overall".to_string(), &report.overall),
        ("video_mean".to_string(), &report.video_mean),
    ];
    parts.extend(report.per_video.iter().map(|(v, s)| (v.clone(), s)));
    let mut out = Vec::new();
    for (part, scores) in parts {
        for (key, value) in scores.entries() {
            if !key.starts_with("leak_") {
                out.push((part.clone(), key, value));
            }
        }
    }
    out
}

/// Scores the eval output and, alone, its `maps/` and `masks/`; checks that the output's SOD
/// and `test.py` metrics are the maps' bit for bit and its detection rates the masks', on 1 and
/// 3 threads and in `compare`. Returns the output's and the maps' detection rates.
#[allow(clippy::type_complexity)]
fn check(frames: &[Frame]) -> ((Option<f64>, Option<f64>), (Option<f64>, Option<f64>)) {
    let dir = tempfile::tempdir().unwrap();
    let (gt, out) = build(dir.path(), frames, true);
    let (report, layout) = score(&out, &gt, 1);
    assert_eq!(
        layout,
        "fgstp eval/infer output, maps/<video>/<frame>.png; detection areas from \
         masks/<video>/<frame>.png"
    );
    assert_eq!(score(&out, &gt, 3).0, report, "thread-count independent");

    let (maps, maps_layout) = score(&out.join("maps"), &gt, 1);
    assert_eq!(maps_layout, "<video>/<frame>.png");
    assert_eq!(without_detection(&report), without_detection(&maps));
    assert_eq!(report.frames, frames.len() as u64);
    let (masks, _) = score(&out.join("masks"), &gt, 1);
    assert_eq!(rates(&report), rates(&masks));
    for (video, scores) in &report.per_video {
        for key in ["leak_recall", "leak_fpr"] {
            assert_eq!(scores.get(key), masks.per_video[video].get(key), "{key}");
        }
    }

    // `compare` reads the same: the eval output beside its maps/ alone.
    let systems = [
        System {
            name: "EVAL".into(),
            pred: out.clone(),
        },
        System {
            name: "MAPS".into(),
            pred: out.join("maps"),
        },
    ];
    let options = CompareOptions {
        kind: PredKind::Auto,
        min_leak_area: RULE,
        exclude: Default::default(),
        grid: GridFrames::None,
    };
    let comparison = compare_systems(&gt, &systems, &options, &|_| {}, &|| {}).unwrap();
    assert_eq!(comparison.systems[0].report, report);
    assert_eq!(comparison.systems[0].layout, layout);
    assert_eq!(comparison.systems[1].report, maps);
    (rates(&report), rates(&maps))
}

#[test]
fn a_normalised_map_of_a_leak_free_frame_is_no_false_alarm_when_its_mask_is_empty() {
    let frames = [
        // Leak-free: the normalised map marks half the frame, the binary mask nothing.
        Frame {
            stem: "00000",
            gt: vec![0; W * H],
            map: normalised_map(),
            mask: vec![0; W * H],
        },
        // A leak, found: the binary mask marks it.
        Frame {
            stem: "00001",
            gt: block(32),
            map: normalised_map(),
            mask: block(20),
        },
    ];
    let (eval, maps) = check(&frames);
    assert_eq!(eval, (Some(1.0), Some(0.0)), "(leak_recall, leak_fpr)");
    // What reading maps/ for everything gave: every leak-free frame a false alarm.
    assert_eq!(maps, (Some(1.0), Some(1.0)));
}

#[test]
fn leaks_and_false_alarms_are_those_the_binary_masks_mark() {
    let frames = [
        // Leak-free, but the mask marks 10 pixels (rule: 4): a false alarm.
        Frame {
            stem: "00000",
            gt: vec![0; W * H],
            map: normalised_map(),
            mask: block(10),
        },
        // A leak the mask misses (3 pixels < 4), though the normalised map marks half the frame.
        Frame {
            stem: "00001",
            gt: block(32),
            map: normalised_map(),
            mask: block(3),
        },
        // A leak the mask finds.
        Frame {
            stem: "00002",
            gt: block(32),
            map: normalised_map(),
            mask: block(4),
        },
    ];
    let (eval, maps) = check(&frames);
    assert_eq!(eval, (Some(0.5), Some(1.0)), "(leak_recall, leak_fpr)");
    assert_eq!(maps, (Some(1.0), Some(1.0)));
}

#[test]
fn a_map_without_its_binary_mask_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let frame = |stem| Frame {
        stem,
        gt: vec![0; W * H],
        map: normalised_map(),
        mask: vec![0; W * H],
    };
    let (gt, out) = build(dir.path(), &[frame("00000"), frame("00001")], true);
    let missing = out.join("masks").join(VIDEO).join("00001.png");
    std::fs::remove_file(&missing).unwrap();
    let err = pair_files(&out, &gt, &PairOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.contains("1 of 2 maps"), "{err}");
    // Excluded, the frame needs no mask.
    let mut options = PairOptions::default();
    options
        .exclude
        .parse_list(&format!("{VIDEO}/00001"))
        .unwrap();
    assert_eq!(pair_files(&out, &gt, &options).unwrap().frames.len(), 1);
}

#[test]
fn an_infer_output_without_maps_is_scored_from_its_masks() {
    let dir = tempfile::tempdir().unwrap();
    let frames = [Frame {
        stem: "00000",
        gt: vec![0; W * H],
        map: normalised_map(),
        mask: block(10),
    }];
    let (gt, out) = build(dir.path(), &frames, false);
    let pairs = pair_files(&out, &gt, &PairOptions::default()).unwrap();
    assert!(pairs.frames.iter().all(|p| p.detection.is_none()));
    let (report, layout) = score(&out, &gt, 2);
    assert_eq!(layout, "fgstp eval/infer output, masks/<video>/<frame>.png");
    assert_eq!(report, score(&out.join("masks"), &gt, 1).0);
    assert_eq!(rates(&report), (None, Some(1.0)));
}
