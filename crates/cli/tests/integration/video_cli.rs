//! Video files through the `fgstp` binary, on the research-loop tests' tiny configuration (b0
//! encoder, 64 px) and a few generated videos (`fgstp synth --video`): `infer` on a video gives
//! the bytes `infer` gives on the frames `fgstp frames` extracts from it; the overlay and mask
//! videos read back in FFmpeg (PyAV); a video cut off part-way is reported as "N of M frames"
//! after its readable frames are written; a dataset of video scenes trains, validates and
//! evaluates exactly like the same frames as PNGs; `data check` reads video scenes.

use crate::common;
use common::{fgstp, ok, s, shared_scratch_dir, synth_64};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const FRAMES: usize = 12;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Generated videos (3 scenes of 12 frames, 64×64, each also as `video.mp4`), the tiny
/// config, and weights after one training step: made once for the whole test binary.
struct Fixture {
    root: PathBuf,
    data: PathBuf,
    weights: PathBuf,
}

fn config_text(data: &Path) -> String {
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
    )
}

fn write_config(path: &Path, data: &Path) -> PathBuf {
    std::fs::write(path, config_text(data)).unwrap();
    path.to_path_buf()
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = shared_scratch_dir();
        let data = root.join("data");
        synth_64(&data, 3, FRAMES, 3, &["--video"]);
        let config = write_config(&root.join("tiny.toml"), &data);
        let run = root.join("run");
        ok(fgstp(&[
            "train",
            "--config",
            s(&config),
            "--run-dir",
            s(&run),
            "--stop-after-steps",
            "1",
            "--set",
            "eval.at_start=false",
        ]));
        Fixture {
            weights: run.join("last.safetensors"),
            root,
            data,
        }
    })
}

fn test_video() -> PathBuf {
    fixture().data.join("test/scene_002/video.mp4")
}

fn infer(input: &Path, output: &Path, extra: &[&str]) -> Output {
    let f = fixture();
    let config = f.root.join("tiny.toml");
    let mut args = vec![
        "infer",
        "--config",
        s(&config),
        "--weights",
        s(&f.weights),
        "--input",
        s(input),
        "--output",
        s(output),
    ];
    args.extend_from_slice(extra);
    fgstp(&args)
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&path).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn names(dir: &Path) -> Vec<String> {
    files(dir).into_iter().map(|(n, _)| n).collect()
}

fn frame_names(n: usize, ext: &str) -> Vec<String> {
    (1..=n).map(|i| format!("frame_{i:05}.{ext}")).collect()
}

/// Frame count, size and rate of a video as FFmpeg (PyAV) decodes it, the lowest PSNR of a
/// decoded frame against the PNG of the same position in `pngs` (sorted by name), and for
/// each decoded frame the position of the PNG it is closest to.
fn read_back(video: &Path, pngs: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts");
    let code = r#"
import sys, os, json, av, numpy as np
from PIL import Image
c = av.open(sys.argv[1]); s = c.streams.video[0]
pngs = [np.asarray(Image.open(os.path.join(sys.argv[2], p)).convert("RGB"), np.float64)
        for p in sorted(os.listdir(sys.argv[2]))]
def psnr(a, b):
    mse = ((a[:b.shape[0], :b.shape[1]] - b) ** 2).mean()
    return 99.0 if mse == 0 else float(10 * np.log10(255 ** 2 / mse))
same, closest = [], []
for i, f in enumerate(c.decode(s)):
    got = f.to_ndarray(format="rgb24").astype(np.float64)
    scores = [psnr(got, p) for p in pngs]
    same.append(scores[i] if i < len(pngs) else 0.0)
    closest.append(int(np.argmax(scores)))
r = s.average_rate
print(json.dumps({"frames": len(same), "width": s.codec_context.width, "height": s.codec_context.height,
                  "num": r.numerator, "den": r.denominator, "min_psnr": min(same), "closest": closest}))
"#;
    let out = Command::new(script.join("pytools"))
        .arg("-c")
        .arg(code)
        .arg(video)
        .arg(pngs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn infer_on_a_video_writes_what_infer_on_its_extracted_frames_writes() {
    let f = fixture();
    let from_video = f.root.join("infer-video");
    ok(infer(&test_video(), &from_video, &["--save-prob"]));
    let extracted = f.root.join("extracted");
    let out = ok(fgstp(&["frames", s(&test_video()), s(&extracted)]));
    assert!(
        text(&out.stdout).contains("wrote 12 of 12 frames"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(names(&extracted.join("images")), frame_names(FRAMES, "png"));
    let from_frames = f.root.join("infer-frames");
    ok(infer(&extracted, &from_frames, &["--save-prob"]));
    for kind in ["masks", "overlays", "prob"] {
        let ext = if kind == "prob" { "npy" } else { "png" };
        let a = files(&from_video.join(kind));
        assert_eq!(
            a.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
            frame_names(FRAMES, ext),
            "{kind}: one file per frame, named frame_00001 …"
        );
        assert!(
            a == files(&from_frames.join(kind)),
            "{kind} differ between the video and its frames"
        );
    }
}

#[test]
fn overlay_and_mask_videos_read_back_in_ffmpeg_with_count_size_and_rate() {
    let f = fixture();
    let out_dir = f.root.join("infer-videos");
    let (overlay, mask) = (out_dir.join("overlay.mp4"), out_dir.join("mask.mp4"));
    let out = ok(infer(
        &test_video(),
        &out_dir,
        &["--overlay-video", s(&overlay), "--mask-video", s(&mask)],
    ));
    assert!(
        text(&out.stderr).contains("at 30 frames/s"),
        "{}",
        text(&out.stderr)
    );
    for (video, pngs, min_psnr) in [(&overlay, "overlays", 28.0), (&mask, "masks", 20.0)] {
        let got = read_back(video, &out_dir.join(pngs));
        assert_eq!(got["frames"], FRAMES, "{pngs}: {got}");
        assert_eq!(
            (got["width"].as_u64(), got["height"].as_u64()),
            (Some(64), Some(64))
        );
        assert_eq!(
            (got["num"].as_u64(), got["den"].as_u64()),
            (Some(30), Some(1)),
            "the source's rate is kept: {got}"
        );
        assert!(
            got["min_psnr"].as_f64().unwrap() > min_psnr,
            "{pngs}: the video holds the written frames: {got}"
        );
    }
    // Overlays differ from frame to frame (sensor noise): each decoded frame is closest to
    // the overlay of its own position, so they are in order.
    let got = read_back(&overlay, &out_dir.join("overlays"));
    let order: Vec<usize> = (0..FRAMES).collect();
    assert_eq!(got["closest"], serde_json::json!(order), "{got}");

    // A folder of frames has no rate: the fallback, said so; --fps sets one.
    let extracted = f.root.join("extracted-for-fps");
    ok(fgstp(&["frames", s(&test_video()), s(&extracted)]));
    let out = ok(infer(
        &extracted,
        &f.root.join("infer-fps"),
        &["--overlay-video", s(&f.root.join("fallback.mp4"))],
    ));
    assert!(
        text(&out.stderr)
            .contains("at 30 frames/s (the source gives no frame rate; set one with --fps)"),
        "{}",
        text(&out.stderr)
    );
    let rate = f.root.join("rate.mp4");
    ok(infer(
        &extracted,
        &f.root.join("infer-rate"),
        &["--overlay-video", s(&rate), "--fps", "12.5"],
    ));
    let got = read_back(&rate, &f.root.join("infer-rate/overlays"));
    assert_eq!(
        (got["num"].as_u64(), got["den"].as_u64()),
        (Some(25), Some(2))
    );

    // One video per file: a split of two is refused with the way out.
    let split = f.root.join("two-videos");
    for scene in ["a", "b"] {
        std::fs::create_dir_all(split.join(scene)).unwrap();
        std::fs::copy(test_video(), split.join(scene).join("video.mp4")).unwrap();
    }
    let out = infer(
        &split,
        &f.root.join("infer-split"),
        &["--overlay-video", s(&f.root.join("split.mp4"))],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("give one of them as --input"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_video_cut_off_part_way_writes_its_readable_frames_and_exits_with_n_of_m() {
    let f = fixture();
    let bytes = std::fs::read(test_video()).unwrap();
    let cut = f.root.join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() * 7 / 10]).unwrap();
    let out_dir = f.root.join("infer-cut");
    let overlay = out_dir.join("overlay.mp4");
    let out = infer(&cut, &out_dir, &["--overlay-video", s(&overlay)]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "a broken video must fail: {err}");
    let readable: usize = err
        .split("breaks after ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `breaks after N`: {err}"));
    assert!((3..FRAMES).contains(&readable), "{err}");
    assert!(
        err.contains(&format!("{readable} of {FRAMES} frames")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "incomplete: {readable} of the input's {FRAMES} frames"
        )),
        "{err}"
    );
    // Every readable frame is written, predicted as in a video of that length: the same bytes
    // as infer on the frames `fgstp frames` gets out of the cut file (which fails the same way).
    assert_eq!(names(&out_dir.join("masks")), frame_names(readable, "png"));
    let extracted = f.root.join("extracted-cut");
    let out = fgstp(&["frames", s(&cut), s(&extracted)]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&format!("wrote {readable} of the {FRAMES} selected frames")),
        "{}",
        text(&out.stderr)
    );
    let from_frames = f.root.join("infer-cut-frames");
    ok(infer(&extracted, &from_frames, &[]));
    assert!(files(&out_dir.join("masks")) == files(&from_frames.join("masks")));
    assert!(files(&out_dir.join("overlays")) == files(&from_frames.join("overlays")));
    // The overlay video holds those frames, in order.
    let got = read_back(&overlay, &out_dir.join("overlays"));
    assert_eq!(got["frames"], readable);
    let order: Vec<usize> = (0..readable).collect();
    assert_eq!(got["closest"], serde_json::json!(order), "{got}");
}

/// `data` with every scene as `video.mp4` + masks only (as the video was written by synth).
fn video_dataset(to: &Path) {
    let f = fixture();
    for split in ["train", "val", "test"] {
        for entry in std::fs::read_dir(f.data.join(split)).unwrap() {
            let scene = entry.unwrap().path();
            let dest = to.join(split).join(scene.file_name().unwrap());
            std::fs::create_dir_all(dest.join("masks")).unwrap();
            std::fs::copy(scene.join("video.mp4"), dest.join("video.mp4")).unwrap();
            for (name, bytes) in files(&scene.join("masks")) {
                std::fs::write(dest.join("masks").join(name), bytes).unwrap();
            }
        }
    }
}

#[test]
fn a_dataset_of_video_scenes_trains_and_evaluates_like_its_frames() {
    let f = fixture();
    let videos = f.root.join("as-videos");
    video_dataset(&videos);
    // The same scenes as PNG frames: what `fgstp frames` extracts, with the same masks.
    let pngs = f.root.join("as-pngs");
    video_dataset(&pngs);
    for split in ["train", "val", "test"] {
        for entry in std::fs::read_dir(pngs.join(split)).unwrap() {
            let scene = entry.unwrap().path();
            ok(fgstp(&["frames", s(&scene.join("video.mp4")), s(&scene)]));
            std::fs::remove_file(scene.join("video.mp4")).unwrap();
        }
    }
    let out = ok(fgstp(&["data", "check", s(&videos)]));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("from video.mp4 (H.264 MP4, 30 fps)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok: 3 split(s), 3 scenes, 36 frames, 36 masks; every file decodes"),
        "{stdout}"
    );

    let run = |root: &Path, name: &str| -> PathBuf {
        let config = write_config(&f.root.join(format!("{name}.toml")), root);
        let dir = f.root.join(name);
        ok(fgstp(&[
            "train",
            "--config",
            s(&config),
            "--run-dir",
            s(&dir),
            "--stop-after-steps",
            "3",
        ]));
        let json = dir.join("test.json");
        ok(fgstp(&[
            "eval",
            "--config",
            s(&config),
            "--weights",
            s(&dir.join("last.safetensors")),
            "--json",
            s(&json),
            "--output",
            s(&dir.join("test")),
        ]));
        dir
    };
    let (a, b) = (run(&videos, "run-videos"), run(&pngs, "run-pngs"));
    for file in ["losses.jsonl", "metrics.jsonl", "test.json"] {
        let (x, y) = (
            std::fs::read_to_string(a.join(file)).unwrap(),
            std::fs::read_to_string(b.join(file)).unwrap(),
        );
        assert!(!x.trim().is_empty(), "{file} is empty");
        assert_eq!(x, y, "{file} differs between video scenes and PNG frames");
    }
    let masks = |dir: &Path| files(&dir.join("test/masks/scene_002"));
    assert_eq!(masks(&a), masks(&b));
    assert_eq!(
        names(&a.join("test/masks/scene_002")),
        frame_names(FRAMES, "png")
    );
}

#[test]
fn data_check_and_frames_name_what_is_wrong_with_a_video() {
    let f = fixture();
    let root = f.root.join("check-cut");
    video_dataset(&root);
    let video = root.join("val/scene_001/video.mp4");
    let bytes = std::fs::read(&video).unwrap();
    std::fs::write(&video, &bytes[..bytes.len() / 2]).unwrap();
    let out = fgstp(&["data", "check", s(&root)]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("scene_001/video.mp4") && err.contains(&format!("of {FRAMES} frames")),
        "{err}"
    );
    // --quick reads headers only.
    ok(fgstp(&["data", "check", s(&root), "--quick"]));

    // `frames`: selection keeps the video's frame numbers; a filled folder needs --force.
    let out_dir = f.root.join("frames-some");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["frames", s(&test_video()), s(&out_dir)]
            .iter()
            .map(|a| a.to_string())
            .collect();
        v.extend(extra.iter().map(|a| a.to_string()));
        v
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        fgstp(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    ok(run(&["--every", "3", "--start", "2", "--end", "9"]));
    assert_eq!(
        names(&out_dir.join("images")),
        ["frame_00002.png", "frame_00005.png", "frame_00008.png"]
    );
    let out = run(&[]);
    assert!(!out.status.success() && text(&out.stderr).contains("--force"));
    ok(run(&["--force", "--start", "12"]));
    let out = run(&["--force", "--start", "13"]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("past the video's last frame (12)"),
        "{}",
        text(&out.stderr)
    );
    // Not a video: named, with the conversion command.
    let not_video = f.root.join("notes.mp4");
    std::fs::write(&not_video, b"these are not the frames you are looking for").unwrap();
    let out = fgstp(&["frames", s(&not_video), s(&f.root.join("frames-none"))]);
    let err = text(&out.stderr);
    assert!(
        !out.status.success() && err.contains("notes.mp4") && err.contains("ffmpeg"),
        "{err}"
    );
}
