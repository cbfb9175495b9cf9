//! The standalone `fgstp-score` binary (feature `cli`, no libtorch): sharded scoring merged
//! back bit for bit, and `compare` with its table, files and plots.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn score(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fgstp-score"))
        .args(args)
        .output()
        .expect("fgstp-score runs")
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn three_shards_merge_to_the_unsharded_json_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (pred, gt) = (fixtures().join("pred"), fixtures().join("gt"));
    let whole = dir.path().join("whole.json");
    ok(score(&[
        "metrics",
        "--pred",
        s(&pred),
        "--gt",
        s(&gt),
        "--json",
        s(&whole),
    ]));

    let mut states = Vec::new();
    let mut frames = 0;
    for k in 0..3 {
        let state = dir.path().join(format!("shard{k}.state.json"));
        let shard = format!("{k}/3");
        let args = [
            "metrics",
            "--pred",
            s(&pred),
            "--gt",
            s(&gt),
            "--shard",
            &shard,
            "--state",
            s(&state),
        ];
        ok(score(&args));
        let v: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        assert_eq!(v["format"], "fgstp-metric-state");
        assert_eq!(v["version"], 2);
        assert_eq!(v["min_leak_area"], "0.5%");
        assert_eq!(v["shard"]["index"], k);
        frames += v["videos"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v["frames"].as_u64().unwrap())
            .sum::<u64>();
        states.push(state);
    }
    assert_eq!(frames, 33, "the shards cover every frame once");
    let merged = dir.path().join("merged.json");
    let mut args = vec!["metrics", "merge"];
    args.extend(states.iter().map(|p| s(p)));
    args.extend(["--json", s(&merged)]);
    ok(score(&args));
    assert_eq!(
        std::fs::read(&merged).unwrap(),
        std::fs::read(&whole).unwrap(),
        "merged shards == unsharded run"
    );

    // A missing shard or the same shard twice is refused.
    let out = score(&["metrics", "merge", s(&states[0]), s(&states[1])]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("missing shard 2/3"),
        "{}",
        stderr(&out)
    );
    let out = score(&[
        "metrics",
        "merge",
        s(&states[0]),
        s(&states[0]),
        s(&states[1]),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is in both"), "{}", stderr(&out));
    ok(score(&[
        "metrics",
        "merge",
        "--allow-partial",
        s(&states[0]),
        s(&states[1]),
    ]));

    // A shard count as large as --shard accepts names the first missing shards and counts
    // the rest (it used to list all of them: hours and all memory); an impossible shard in a
    // state file is an error.
    let mut v: Value = serde_json::from_slice(&std::fs::read(&states[0]).unwrap()).unwrap();
    v["shard"]["count"] = Value::from(u64::MAX);
    let huge = dir.path().join("huge-count.state.json");
    std::fs::write(&huge, serde_json::to_vec(&v).unwrap()).unwrap();
    let started = std::time::Instant::now();
    let out = score(&["metrics", "merge", s(&huge)]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("missing shards 1/{}, 2/", u64::MAX))
            && err.contains(&format!("and {} more", u64::MAX - 11)),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    v["shard"] = serde_json::json!({"index": 7, "count": 0});
    std::fs::write(&huge, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = score(&["metrics", "merge", s(&huge)]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("K/N"), "{}", stderr(&out));

    // A shard scored with another detection rule is refused, naming both rules.
    let other = dir.path().join("other-rule.state.json");
    ok(score(&[
        "metrics",
        "--pred",
        s(&pred),
        "--gt",
        s(&gt),
        "--shard",
        "2/3",
        "--min-leak-area",
        "40px",
        "--state",
        s(&other),
    ]));
    let out = score(&["metrics", "merge", s(&states[0]), s(&states[1]), s(&other)]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("minimum leak area") && err.contains("40px") && err.contains("0.5%"),
        "{err}"
    );
    // A bad rule names the value and the accepted forms.
    let out = score(&[
        "metrics",
        "--pred",
        s(&pred),
        "--gt",
        s(&gt),
        "--min-leak-area",
        "5%%",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("\"5%%\"") && err.contains("\"0.5%\""), "{err}");
}

#[test]
fn compare_scores_systems_on_common_frames_and_writes_tables_and_plots() {
    let formats = fixtures().join("formats");
    let dir = tempfile::tempdir().unwrap();
    let (json, csv, md, plots) = (
        dir.path().join("c.json"),
        dir.path().join("c.csv"),
        dir.path().join("c.md"),
        dir.path().join("plots"),
    );
    let xmempp = format!("XMem++={}", s(&formats.join("xmempp")));
    let xmem = format!("XMem={}", s(&formats.join("xmem")));
    let soft = format!("soft={}", s(&formats.join("soft_la")));
    let out = ok(score(&[
        "compare",
        "--gt",
        s(&formats.join("gt")),
        "--pred",
        &xmem,
        "--pred",
        &xmempp,
        "--pred",
        &soft,
        "--exclude-annotated",
        s(&formats.join("annotations")),
        "--sort",
        "mae",
        "--json",
        s(&json),
        "--csv",
        s(&csv),
        "--markdown",
        s(&md),
        "--plots",
        s(&plots),
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("S-alpha") && stdout.contains("mDice"),
        "{stdout}"
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["frames"], 6);
    let columns: Vec<&str> = report["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "sm",
            "wfm",
            "mae",
            "em_mean",
            "iou_mean",
            "dice_mean",
            "leak_recall",
            "leak_fpr"
        ]
    );
    let systems = report["systems"].as_array().unwrap();
    // Sorted by MAE, lowest first.
    let maes: Vec<f64> = systems
        .iter()
        .map(|s| s["table"]["mae"].as_f64().unwrap())
        .collect();
    assert!(maes.windows(2).all(|w| w[0] <= w[1]), "{maes:?}");
    // XMem's palette ids and XMem++'s DAVIS RGB are the same masks: same row, tied best.
    let row = |name: &str| &systems.iter().find(|s| s["name"] == name).unwrap()["table"];
    assert_eq!(row("XMem"), row("XMem++"));
    for key in columns {
        let best: Vec<&str> = report["best"][key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        // Absent values (no leak-free frame: leak_fpr) have no best.
        let present = systems.iter().any(|s| !s["table"][key].is_null());
        assert_eq!(!best.is_empty(), present, "{key}");
        assert_eq!(best.contains(&"XMem"), best.contains(&"XMem++"), "{key}");
    }
    // The table equals what `metrics` reports for each system alone.
    let alone = dir.path().join("alone.json");
    ok(score(&[
        "metrics",
        "--pred",
        s(&formats.join("xmempp")),
        "--gt",
        s(&formats.join("gt")),
        "--exclude",
        "00000",
        "--json",
        s(&alone),
    ]));
    let alone: Value = serde_json::from_slice(&std::fs::read(&alone).unwrap()).unwrap();
    for key in [
        "sm",
        "wfm",
        "mae",
        "em_mean",
        "iou_mean",
        "dice_mean",
        "leak_recall",
        "leak_fpr",
    ] {
        assert_eq!(row("XMem++")[key], alone["video_mean"][key], "{key}");
    }
    assert!(row("XMem++")["leak_recall"].is_number());
    assert_eq!(
        report["per_video"]["cam_a"]["XMem++"]["iou_mean"],
        alone["per_video"]["cam_a"]["iou_mean"]
    );

    let csv = std::fs::read_to_string(&csv).unwrap();
    assert!(csv
        .starts_with("system,video,sm,wfm,mae,em_mean,iou_mean,dice_mean,leak_recall,leak_fpr\n"));
    assert_eq!(
        csv.lines().count(),
        1 + 3 + 3 * 2,
        "aggregate + per-video rows"
    );
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(
        md.contains("| system | S-alpha↑ |") && md.contains("**"),
        "{md}"
    );

    for (name, min_w) in [
        ("pr_curves.png", 800),
        ("fmeasure.png", 800),
        ("emeasure.png", 800),
        ("miou_per_video.png", 700),
        ("grid.png", 200),
    ] {
        let img = image::open(plots.join(name)).unwrap().into_rgb8();
        assert!(img.width() >= min_w, "{name}: {}", img.width());
        let inked = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
        assert!(inked > 1000, "{name}: only {inked} non-white pixels");
    }
}

#[test]
fn compare_refuses_systems_without_common_frames_and_bad_names() {
    let formats = fixtures().join("formats");
    let gt = formats.join("gt");
    let one = format!("a={}", s(&formats.join("xmem/cam_a")));
    let other = format!("b={}", s(&formats.join("xmem")));
    let out = score(&["compare", "--gt", s(&gt), "--pred", &one, "--pred", &other]);
    assert!(!out.status.success());
    let out = score(&["compare", "--gt", s(&gt), "--pred", "nodir"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("NAME=DIR"), "{}", stderr(&out));
    let dup = format!("a={}", s(&formats.join("xmem")));
    let out = score(&["compare", "--gt", s(&gt), "--pred", &dup, "--pred", &dup]);
    assert!(
        stderr(&out).contains("two systems are called"),
        "{}",
        stderr(&out)
    );
    let out = score(&["compare", "--gt", s(&gt), "--pred", &dup, "--sort", "nope"]);
    assert!(stderr(&out).contains("no such metric"), "{}", stderr(&out));
    // A grid of a million rows would be one picture of 170 million pixels' height.
    let dir = tempfile::tempdir().unwrap();
    let plots = dir.path().join("plots");
    let out = score(&[
        "compare",
        "--gt",
        s(&gt),
        "--pred",
        &dup,
        "--plots",
        s(&plots),
        "--grid-frames",
        "1000000",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("at most 200 rows"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn help_needs_no_libtorch_and_lists_the_commands() {
    let out = ok(score(&["--help"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("metrics") && text.contains("compare"),
        "{text}"
    );
}

#[test]
fn a_reader_that_closes_the_pipe_does_not_lose_the_json() {
    // `fgstp-score metrics … --json F | head -c0`: the table meets a closed pipe; it used to
    // panic ("failed printing to stdout") before writing F.
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("scores.json");
    let (pred, gt) = (fixtures().join("pred"), fixtures().join("gt"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_fgstp-score"))
        .args([
            "metrics",
            "--pred",
            s(&pred),
            "--gt",
            s(&gt),
            "--json",
            s(&json),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("fgstp-score runs");
    drop(child.stdout.take()); // the reader goes away before the table is printed
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(v.is_object(), "{v}");
}

#[test]
fn frames_named_twice_or_not_in_utf8_are_errors_not_silently_dropped() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let (pred, gt) = (dir.path().join("pred"), dir.path().join("gt"));
    for (from, to) in [
        (fixtures().join("pred"), &pred),
        (fixtures().join("gt"), &gt),
    ] {
        let (src, dst) = (from.join("blobs_a"), to.join("blobs_a"));
        std::fs::create_dir_all(&dst).unwrap();
        for f in ["00000.png", "00001.png"] {
            std::fs::copy(src.join(f), dst.join(f)).unwrap();
        }
    }
    ok(score(&["metrics", "--pred", s(&pred), "--gt", s(&gt)]));

    // A frame whose name is not UTF-8, in both folders: it was left out without a word.
    let bad = std::ffi::OsStr::from_bytes(b"bad\xff.png");
    for root in [&pred, &gt] {
        let video = root.join("blobs_a");
        std::fs::copy(video.join("00000.png"), video.join(bad)).unwrap();
    }
    let out = score(&["metrics", "--pred", s(&pred), "--gt", s(&gt)]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not UTF-8"), "{}", stderr(&out));
    for root in [&pred, &gt] {
        std::fs::remove_file(root.join("blobs_a").join(bad)).unwrap();
    }

    // The same frame twice (the one scored depended on the directory's order).
    let video = pred.join("blobs_a");
    std::fs::copy(video.join("00001.png"), video.join("00000.PNG")).unwrap();
    let out = score(&["metrics", "--pred", s(&pred), "--gt", s(&gt)]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("same frame (00000)"),
        "{}",
        stderr(&out)
    );
}
