//! Sharded evaluation for job arrays: N = 3 separate `fgstp` processes, each scoring a third of
//! the videos and writing its exact metric state, merge into a JSON byte-identical to the
//! unsharded run — for `fgstp eval` (a tiny trained model) and for `fgstp metrics` (any
//! system's PNGs). A shard writes only its own videos' files, so rerunning one replaces only
//! those.

use crate::common;
use common::{fgstp, ok, s, shared_scratch_dir, synth_64};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

fn merge(states: &[PathBuf], json: &Path) {
    let mut args = vec!["metrics", "merge"];
    args.extend(states.iter().map(|p| s(p)));
    args.extend(["--json", s(json)]);
    ok(fgstp(&args));
}

#[test]
fn metrics_shards_in_three_processes_merge_to_the_unsharded_json() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../metrics/tests/fixtures");
    let (pred, gt) = (fixtures.join("pred"), fixtures.join("gt"));
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.json");
    ok(fgstp(&[
        "metrics",
        "--pred",
        s(&pred),
        "--gt",
        s(&gt),
        "--json",
        s(&whole),
    ]));
    let states: Vec<PathBuf> = (0..3)
        .map(|k| {
            let state = dir.path().join(format!("{k}.json"));
            let shard = format!("{k}/3");
            ok(fgstp(&[
                "metrics",
                "--pred",
                s(&pred),
                "--gt",
                s(&gt),
                "--shard",
                &shard,
                "--state",
                s(&state),
            ]));
            state
        })
        .collect();
    let merged = dir.path().join("merged.json");
    merge(&states, &merged);
    assert_eq!(
        std::fs::read(&merged).unwrap(),
        std::fs::read(&whole).unwrap()
    );
}

/// Every file under `dir`, with its bytes and modification time.
pub(crate) fn files(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
                let rel = path.strip_prefix(dir).unwrap().to_path_buf();
                out.insert(rel, (std::fs::read(&path).unwrap(), modified));
            }
        }
    }
    out
}

/// A tiny trained run and its data, made once: 5 scenes of 3 frames (the training split has 3
/// videos, one per shard; scored here: the model's quality does not matter, only that shards
/// add up).
pub(crate) struct TinyRun {
    pub data: PathBuf,
    pub config: PathBuf,
    pub weights: PathBuf,
}

pub(crate) fn tiny_run() -> &'static TinyRun {
    static RUN: OnceLock<TinyRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let root = shared_scratch_dir();
        let data = root.join("data");
        synth_64(&data, 5, 3, 5, &[]);
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
epochs = 1
batch_size = 4
device = "cpu"
threads = 1
[eval]
every = 1
[log]
progress = false
"#,
                data.display()
            ),
        )
        .unwrap();
        let run = root.join("run");
        ok(fgstp(&[
            "train",
            "--config",
            s(&config),
            "--run-dir",
            s(&run),
        ]));
        TinyRun {
            data,
            config,
            weights: run.join("best.safetensors"),
        }
    })
}

/// `after` holds the same files and bytes as `before`, and the files of exactly one video
/// (`<kind>/<video>/…`) were written again.
pub(crate) fn assert_one_video_rewritten(
    before: &BTreeMap<PathBuf, (Vec<u8>, SystemTime)>,
    after: &BTreeMap<PathBuf, (Vec<u8>, SystemTime)>,
) {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    let mut rewritten = std::collections::BTreeSet::new();
    for (path, (bytes, modified)) in after {
        assert_eq!(bytes, &before[path].0, "{}: same content", path.display());
        if *modified != before[path].1 {
            rewritten.insert(path.components().nth(1).unwrap().as_os_str().to_owned());
        }
    }
    assert_eq!(
        rewritten.len(),
        1,
        "only one video's files were rewritten: {rewritten:?}"
    );
}

#[test]
fn eval_shards_merge_to_the_unsharded_json_and_write_only_their_videos() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let TinyRun {
        data,
        config,
        weights,
    } = tiny_run();
    let eval = |extra: &[&str]| {
        // One libtorch thread: on a busy 2-core machine, two spin against each other (10x slower).
        let mut args = vec![
            "--threads",
            "1",
            "eval",
            "--config",
            s(config),
            "--weights",
            s(weights),
            "--split",
            "train",
        ];
        args.extend_from_slice(extra);
        ok(fgstp(&args))
    };
    let (whole_json, whole_out) = (root.join("whole.json"), root.join("whole-out"));
    eval(&["--json", s(&whole_json), "--output", s(&whole_out)]);
    let videos = std::fs::read_dir(whole_out.join("maps")).unwrap().count();
    assert_eq!(videos, 3, "three videos, one per shard");

    let shard_out = root.join("shard-out");
    let states: Vec<PathBuf> = (0..3)
        .map(|k| {
            let state = root.join(format!("shard{k}.state.json"));
            let shard = format!("{k}/3");
            eval(&[
                "--shard",
                &shard,
                "--state",
                s(&state),
                "--output",
                s(&shard_out),
            ]);
            state
        })
        .collect();
    let merged = root.join("merged.json");
    merge(&states, &merged);
    assert_eq!(
        std::fs::read_to_string(&merged).unwrap(),
        std::fs::read_to_string(&whole_json).unwrap(),
        "merged shards == unsharded eval, byte for byte"
    );
    // The shards together wrote exactly what the unsharded run wrote.
    let whole_files = files(&whole_out);
    let before = files(&shard_out);
    assert_eq!(
        before.iter().map(|(p, (b, _))| (p, b)).collect::<Vec<_>>(),
        whole_files
            .iter()
            .map(|(p, (b, _))| (p, b))
            .collect::<Vec<_>>()
    );

    // Rerunning shard 1 rewrites its own video's files and nothing else.
    std::thread::sleep(std::time::Duration::from_millis(20));
    eval(&[
        "--shard",
        "1/3",
        "--state",
        s(&states[1]),
        "--output",
        s(&shard_out),
    ]);
    assert_one_video_rewritten(&before, &files(&shard_out));
    merge(&states, &merged);
    assert_eq!(
        std::fs::read(&merged).unwrap(),
        std::fs::read(&whole_json).unwrap()
    );

    // `fgstp metrics` reads the eval output folder directly (its maps/, and its masks/ for the
    // detection areas): the SOD metrics and the detection rates agree with eval's exactly
    // (eval's J&F thresholds the float probability instead).
    let from_folder = root.join("from-folder.json");
    ok(fgstp(&[
        "metrics",
        "--pred",
        s(&whole_out),
        "--gt",
        s(&data.join("train")),
        "--json",
        s(&from_folder),
    ]));
    let a: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&from_folder).unwrap()).unwrap();
    let b: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&whole_json).unwrap()).unwrap();
    for key in [
        "sm",
        "wfm",
        "mae",
        "em_mean",
        "iou_mean",
        "dice_mean",
        "fm_max",
        "leak_recall",
        "leak_fpr",
    ] {
        assert_eq!(a["video_mean"][key], b["video_mean"][key], "{key}");
    }
    for key in ["leak_recall", "leak_fpr"] {
        assert_eq!(a["overall"][key], b["overall"][key], "{key}");
    }
}

#[test]
fn a_bad_shard_is_named() {
    let out = fgstp(&[
        "metrics", "--pred", "/tmp", "--gt", "/tmp", "--shard", "3/3",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 <= K < N"));
}
