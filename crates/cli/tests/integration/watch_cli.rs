//! `fgstp watch` on files and folders of frames, through the binary: the output files, the
//! cameras' states, stopping, a camera that cannot be opened, and a previous run's open events.
//! The model is a tiny FGSTP (b0, 64 px) trained for one epoch: these tests check the engine,
//! not what the model finds (the detection rules are unit-tested on maps in the train crate).

use crate::common;
use common::{ok, s, shared_scratch_dir, stderr, synth_64, FGSTP};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `fgstp --threads 1 ARGS`.
pub(crate) fn fgstp(args: &[&str]) -> Output {
    common::fgstp(&[&["--threads", "1"], args].concat())
}

pub(crate) struct Fixture {
    pub root: PathBuf,
    pub config: PathBuf,
    pub weights: PathBuf,
    /// One scene with two leak episodes: `video.mp4`, `images/`.
    pub episodes: PathBuf,
}

pub(crate) fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = shared_scratch_dir();
        let data = root.join("data");
        synth_64(&data, 4, 6, 3, &[]);
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
threads = 1
[train]
epochs = 1
batch_size = 2
device = "cpu"
threads = 1
[eval]
at_start = false
[log]
progress = false
tensorboard = false
images = 0
[watch.events]
min_area = 1
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
        let episodes = root.join("episodes");
        ok(fgstp(&[
            "synth",
            "--out",
            s(&episodes),
            "--episodes",
            "2",
            "--frames",
            "40",
            "--size",
            "96x64",
            "--seed",
            "31",
        ]));
        Fixture {
            config: run.join("config.toml"),
            weights: run.join("last.safetensors"),
            root,
            episodes,
        }
    })
}

/// The fixture episode's frames, in order.
fn episode_frames(f: &Fixture) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(f.episodes.join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
}

pub(crate) fn watch_args<'a>(f: &'a Fixture, out: &'a Path) -> Vec<&'a str> {
    vec![
        "watch",
        "--config",
        s(&f.config),
        "--weights",
        s(&f.weights),
        "--out",
        s(out),
    ]
}

/// `fgstp --threads 1 watch … --camera pipe=- --raw RAW` with `bytes` on its standard input.
fn watch_stdin(f: &Fixture, out: &Path, raw: &str, bytes: &[u8]) -> Output {
    use std::io::Write;
    let mut args = vec!["--threads", "1"];
    args.extend(watch_args(f, out));
    args.extend(["--camera", "pipe=-", "--raw", raw]);
    let mut child = Command::new(FGSTP)
        .args(&args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    child.wait_with_output().unwrap()
}

/// Thresholds so low that the tiny model's whole frame is gas: one event per camera, from its
/// first frame to the end of its stream.
pub(crate) const WHOLE_FRAME_IS_GAS: [&str; 4] = [
    "--set",
    "watch.events.start_threshold=1e-6",
    "--set",
    "watch.events.stop_threshold=1e-6",
];

pub(crate) fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub(crate) fn states(out: &Path, camera: &str) -> Vec<String> {
    json_lines(&out.join("status.jsonl"))
        .iter()
        .filter(|l| l["camera"] == camera)
        .map(|l| l["state"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_video_file_and_a_folder_of_frames_are_analysed_in_full_and_their_events_are_whole() {
    let f = fixture();
    let out = f.root.join("two-cameras");
    let video = format!("pump={}", s(&f.episodes.join("video.mp4")));
    let folder = format!("flange={}", s(&f.episodes.join("images")));
    let mut args = watch_args(f, &out);
    args.extend(["--camera", &video, "--camera", &folder]);
    args.extend(WHOLE_FRAME_IS_GAS);
    let log = stderr(&ok(fgstp(&args)));
    assert!(log.contains("watching 2 camera(s)"), "{log}");

    // Read as fast as they decode, nothing is skipped: every frame with two successors is
    // decided.
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("stats.json")).unwrap()).unwrap();
    for camera in ["pump", "flange"] {
        let c = &stats[camera];
        assert_eq!(c["frames"], 40, "{stats}");
        assert_eq!(c["analysed"], 38, "{stats}");
        assert_eq!(c["skipped"], 0, "{stats}");
        assert_eq!(c["state"], "ended");
        assert!(c["latency_p95"].as_f64().unwrap() >= c["latency_p50"].as_f64().unwrap());
        assert_eq!(states(&out, camera), ["online", "ended"], "{camera}");
    }
    // Every event that starts ends, once, after its updates; its snapshot and clip are there.
    let records = json_lines(&out.join("events.jsonl"));
    let news: Vec<&serde_json::Value> = records.iter().filter(|r| r["type"] == "new").collect();
    assert_eq!(news.len(), 2, "{records:?}");
    for new in &news {
        assert_eq!(new["start_frame"], 0);
        // Confirmed after min_duration (1 s) at 30 frames/s.
        assert_eq!(new["frame"], 30);
        let id = new["id"].as_str().unwrap();
        let end = records
            .iter()
            .find(|r| r["id"] == id && r["type"] == "end")
            .unwrap();
        assert_eq!(end["end_reason"], "stopped");
        assert_eq!(end["end_frame"], 37);
        // The clip: every analysed frame from pre_capture (5 s) before the start to the end.
        let clip = out.join("clips").join(format!("{id}.mp4"));
        let info = fgstp_data::video::probe(&clip).unwrap();
        assert_eq!((info.frames, info.width, info.height), (38, 96, 64), "{id}");
    }
    for new in records.iter().filter(|r| r["type"] == "new") {
        let id = &new["id"];
        let of_it: Vec<&serde_json::Value> = records.iter().filter(|r| &r["id"] == id).collect();
        assert_eq!(of_it.last().unwrap()["type"], "end", "{id}");
        assert_eq!(of_it.iter().filter(|r| r["type"] == "end").count(), 1);
        assert!(out
            .join("snapshots")
            .join(format!("{}.png", id.as_str().unwrap()))
            .exists());
    }
}

#[test]
fn a_camera_that_cannot_be_opened_is_reported_and_the_others_keep_running() {
    let f = fixture();
    let out = f.root.join("one-bad-camera");
    let good = format!("good={}", s(&f.episodes.join("video.mp4")));
    let bad = format!("bad={}", s(&f.root.join("no-such-video.mp4")));
    let mut args = watch_args(f, &out);
    args.extend(["--camera", &bad, "--camera", &good]);
    let log = stderr(&ok(fgstp(&args)));
    assert!(
        log.contains("camera bad: ") && log.contains("no-such-video.mp4"),
        "{log}"
    );
    assert_eq!(states(&out, "bad"), ["error"]);
    assert_eq!(states(&out, "good"), ["online", "ended"]);

    // Mistakes in the cameras themselves stop before anything runs.
    for (camera, message) in [
        ("no-equals-sign", "NAME=SOURCE"),
        ("bad name=x.mp4", "letters, digits"),
    ] {
        let mut args = watch_args(f, &out);
        args.extend(["--camera", camera]);
        let out = fgstp(&args);
        assert!(!out.status.success());
        assert!(stderr(&out).contains(message), "{}", stderr(&out));
    }
}

#[test]
fn ctrl_c_ends_the_open_events_as_stopped_and_exits_cleanly() {
    let f = fixture();
    let out = f.root.join("ctrl-c");
    let video = format!("pump={}", s(&f.episodes.join("images")));
    let mut args = vec!["--threads", "1"];
    args.extend(watch_args(f, &out));
    // A followed folder never ends by itself.
    args.extend(["--camera", &video, "--follow"]);
    let child = Command::new(FGSTP)
        .args(&args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !std::fs::read_to_string(out.join("status.jsonl")).is_ok_and(|t| t.contains("online")) {
        assert!(start.elapsed() < Duration::from_secs(60), "never online");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let done = child.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", stderr(&done));
    assert_eq!(states(&out, "pump").last().unwrap(), "stopped");
    for end in json_lines(&out.join("events.jsonl"))
        .iter()
        .filter(|r| r["type"] == "end")
    {
        assert!(["gone", "stopped", "merged"].contains(&end["end_reason"].as_str().unwrap()));
    }
}

#[test]
fn events_a_killed_run_left_open_are_ended_as_interrupted_at_the_next_start() {
    let f = fixture();
    let out = f.root.join("after-a-crash");
    std::fs::create_dir_all(&out).unwrap();
    // An open event, another that ended, and a line cut off by the crash.
    let open = r#"{"type":"new","id":"20261206T100000Z-pump-1","camera":"pump","start_utc":"2026-12-06T10:00:00.000Z","start_time":1.0,"start_frame":30,"frame":32,"duration":0.5,"area_px":40,"area_pct":0.6,"peak_area_px":40,"peak_area_pct":0.6,"box":[1.0,2.0,3.0,4.0],"centroid":[2.0,3.0],"zones":[],"max_prob":0.9,"mean_prob":0.7}"#;
    let closed_new = open.replace("pump-1", "pump-2");
    let closed_end = closed_new
        .replace(r#""type":"new""#, r#""type":"end""#)
        .replace(
            r#""mean_prob":0.7}"#,
            r#""mean_prob":0.7,"end_reason":"gone"}"#,
        );
    std::fs::write(
        out.join("events.jsonl"),
        format!("{open}\n{closed_new}\n{closed_end}\n{{\"type\":\"upd"),
    )
    .unwrap();
    let video = format!("pump={}", s(&f.episodes.join("video.mp4")));
    let mut args = watch_args(f, &out);
    args.extend(["--camera", &video]);
    let log = stderr(&ok(fgstp(&args)));
    assert!(log.contains("1 event(s) a previous run left open"), "{log}");
    let text = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let ends: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["id"] == "20261206T100000Z-pump-1" && r["type"] == "end")
        .collect();
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0]["end_reason"], "interrupted");
    assert_eq!(ends[0]["end_frame"], 32);
    // Nothing else of the old run is touched.
    assert_eq!(
        records
            .iter()
            .filter(|r| r["id"] == "20261206T100000Z-pump-2" && r["type"] == "end")
            .count(),
        1
    );
}

#[test]
fn raw_frames_on_standard_input_are_a_camera() {
    let f = fixture();
    let out = f.root.join("stdin");
    // The episode's frames as 16-bit gray, back to back, as `ffmpeg -f rawvideo` writes them.
    let mut bytes = Vec::new();
    let names = episode_frames(f);
    for name in &names {
        let gray = image::open(name).unwrap().to_luma8();
        assert_eq!(gray.dimensions(), (96, 64));
        for v in gray.as_raw() {
            bytes.extend((7000 + 8 * u16::from(*v)).to_le_bytes());
        }
    }
    ok(watch_stdin(f, &out, "96x64:gray16le@15", &bytes));
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("stats.json")).unwrap()).unwrap();
    let pipe = &stats["pipe"];
    assert_eq!(pipe["frames"], 40, "{stats}");
    // A live source keeps only the latest triplets: each is analysed or counted as skipped.
    assert_eq!(
        pipe["analysed"].as_u64().unwrap() + pipe["skipped"].as_u64().unwrap(),
        38,
        "{stats}"
    );
    assert_eq!(states(&out, "pipe"), ["online", "ended"]);

    // Without --raw, or with a stream cut inside a frame: clear errors.
    let mut args = watch_args(f, &out);
    args.extend(["--camera", "pipe=-"]);
    let log = stderr(&fgstp(&args));
    assert!(log.contains("needs --raw WxH:FORMAT"), "{log}");
    ok(watch_stdin(
        f,
        &out,
        "96x64:gray8",
        &vec![0u8; 96 * 64 * 3 + 10],
    ));
    let status = std::fs::read_to_string(out.join("status.jsonl")).unwrap();
    assert!(
        status.contains("standard input ended inside frame 3 (10 of 6144 bytes)"),
        "{status}"
    );
}

#[test]
fn a_16_bit_stream_whose_range_jumps_pauses_its_decisions_and_goes_on() {
    let f = fixture();
    let out = f.root.join("stdin-range-jump");
    // The episode as 16-bit gray; from frame 20 a hot object (a flare lit, a hot exhaust) in
    // one corner: the running range widens at once and the rest of the frame darkens.
    let mut bytes = Vec::new();
    let names = episode_frames(f);
    for (k, name) in names.iter().enumerate() {
        let gray = image::open(name).unwrap().to_luma8();
        for (i, v) in gray.as_raw().iter().enumerate() {
            let hot = k >= 20 && i % 96 < 8 && i / 96 < 8;
            let value = if hot {
                40_000
            } else {
                7000 + 8 * u16::from(*v)
            };
            bytes.extend(value.to_le_bytes());
        }
    }
    let mut args = vec!["--threads", "1"];
    args.extend(watch_args(f, &out));
    args.extend(["--camera", "pipe=-", "--raw", "96x64:gray16le@15"]);
    args.extend(["--set", "data.sixteen_bit=\"per-video\""]);
    let mut child = Command::new(FGSTP)
        .args(&args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
    }
    let done = child.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", stderr(&done));
    // Whichever triplets were analysed or dropped, the jump pauses the decisions, and the
    // stream goes on to its end.
    let lines = json_lines(&out.join("status.jsonl"));
    let paused: Vec<&serde_json::Value> = lines.iter().filter(|l| l["state"] == "paused").collect();
    assert_eq!(paused.len(), 1, "{lines:?}");
    assert_eq!(paused[0]["detail"], "whole-frame change");
    assert_eq!(states(&out, "pipe").last().unwrap(), "ended");
    let stats: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("stats.json")).unwrap()).unwrap();
    assert_eq!(stats["pipe"]["frames"], 40, "{stats}");
}

/// A camera serving MJPEG (`multipart/x-mixed-replace`) on 127.0.0.1, frames looping at about
/// 15 per second, to `user:secret` only; stopped and restarted on the same port by the tests.
struct MjpegCamera {
    port: u16,
    frames: std::sync::Arc<Vec<Vec<u8>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MjpegCamera {
    fn start(port: u16, frames: std::sync::Arc<Vec<Vec<u8>>>) -> Self {
        use std::io::{BufRead, BufReader, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, jpegs) = (stop.clone(), frames.clone());
        let thread = std::thread::spawn(move || {
            let mut handlers = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let Ok((conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let (flag, jpegs) = (flag.clone(), jpegs.clone());
                handlers.push(std::thread::spawn(move || serve(conn, &jpegs, &flag)));
            }
            for h in handlers {
                let _ = h.join();
            }
        });
        /// One client: Basic auth as user:secret, then the frames until stopped.
        fn serve(
            mut conn: std::net::TcpStream,
            jpegs: &[Vec<u8>],
            stop: &std::sync::atomic::AtomicBool,
        ) {
            conn.set_nonblocking(false).unwrap();
            let mut request = Vec::new();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                request.push(line.trim_end().to_string());
            }
            // "user:secret" in Basic auth.
            let expected = "Authorization: Basic dXNlcjpzZWNyZXQ=";
            if !request.iter().any(|l| l.eq_ignore_ascii_case(expected)) {
                let _ = conn.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
                return;
            }
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n",
            );
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                let jpeg = &jpegs[k % jpegs.len()];
                let head = format!(
                    "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                    jpeg.len()
                );
                if conn.write_all(head.as_bytes()).is_err()
                    || conn.write_all(jpeg).is_err()
                    || conn.write_all(b"\r\n").is_err()
                {
                    break;
                }
                k += 1;
                std::thread::sleep(Duration::from_millis(66));
            }
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
        Self {
            port,
            frames,
            stop,
            thread: Some(thread),
        }
    }

    fn kill(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    fn restart(&mut self) {
        self.kill();
        *self = Self::start(self.port, self.frames.clone());
    }
}

impl Drop for MjpegCamera {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `camera`'s states in `out/status.jsonl` end with `state`; the time it took.
pub(crate) fn wait_for_state(out: &Path, camera: &str, state: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let now = std::fs::read_to_string(out.join("status.jsonl"))
            .ok()
            .and_then(|_| states(out, camera).last().cloned());
        if now.as_deref() == Some(state) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{camera} not {state} within {limit:?}: {:?}",
            std::fs::read_to_string(out.join("status.jsonl")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn an_mjpeg_camera_that_goes_away_is_offline_within_the_stall_timeout_and_back_online_after() {
    let f = fixture();
    let mut jpegs = Vec::new();
    let names = episode_frames(f);
    for name in &names {
        let mut bytes = std::io::Cursor::new(Vec::new());
        image::open(name)
            .unwrap()
            .write_to(&mut bytes, image::ImageFormat::Jpeg)
            .unwrap();
        jpegs.push(bytes.into_inner());
    }
    let mut camera = MjpegCamera::start(0, std::sync::Arc::new(jpegs));
    let out = f.root.join("mjpeg");
    let url = format!("cam=http://user:secret@127.0.0.1:{}/stream", camera.port);
    let wrong = format!("locked=http://user:guess@127.0.0.1:{}/stream", camera.port);
    let mut args = vec!["--threads", "1"];
    args.extend(watch_args(f, &out));
    args.extend(["--camera", &url, "--camera", &wrong]);
    args.extend(["--set", "watch.stall_timeout=2"]);
    let child = Command::new(FGSTP)
        .args(&args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_state(&out, "cam", "online", Duration::from_secs(60));

    camera.kill();
    let took = wait_for_state(&out, "cam", "offline", Duration::from_secs(10));
    assert!(
        took <= Duration::from_secs(3),
        "offline after {took:?} (stall_timeout 2 s)"
    );
    assert!(states(&out, "cam").contains(&"reconnecting".to_string()));

    camera.restart();
    let took = wait_for_state(&out, "cam", "online", Duration::from_secs(20));
    assert!(
        took <= Duration::from_secs(10),
        "online {took:?} after the camera's return"
    );
    // Analysed again after the break.
    let start = Instant::now();
    while !std::fs::read_to_string(out.join("stats.json")).is_ok_and(|t| {
        serde_json::from_str::<serde_json::Value>(&t)
            .is_ok_and(|v| v["cam"]["analysed"].as_u64().unwrap_or(0) >= 3)
    }) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nothing analysed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let done = child.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{} after SIGINT\n{}",
        done.status,
        stderr(&done)
    );
    // The wrong password is named as such; no password is ever written or printed.
    let status = std::fs::read_to_string(out.join("status.jsonl")).unwrap();
    assert!(
        status.contains("refused the credentials (HTTP 401)"),
        "{status}"
    );
    let stats = std::fs::read_to_string(out.join("stats.json")).unwrap();
    for text in [&status, &stats, &stderr(&done)] {
        assert!(
            !text.contains("secret") && !text.contains("guess"),
            "{text}"
        );
    }
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert!(stats["cam"]["reconnects"].as_u64().unwrap() >= 1, "{stats}");
    assert!(
        stats["cam"]["analysed"].as_u64().unwrap() > 0,
        "{stats}\n{}",
        stderr(&done)
    );
}

#[test]
fn a_camera_that_changes_resolution_starts_its_decisions_over() {
    let f = fixture();
    let frames = f.root.join("resized-frames");
    std::fs::create_dir_all(&frames).unwrap();
    let names = episode_frames(f);
    for (k, name) in names.iter().enumerate() {
        let img = image::open(name).unwrap();
        // The second half at another size.
        let img = if k < 20 {
            img
        } else {
            img.resize_exact(80, 48, image::imageops::FilterType::Triangle)
        };
        img.save(frames.join(name.file_name().unwrap())).unwrap();
    }
    let out = f.root.join("resized");
    let camera = format!("cam={}", s(&frames));
    let mut args = watch_args(f, &out);
    args.extend(["--camera", &camera]);
    args.extend(WHOLE_FRAME_IS_GAS);
    args.extend(["--set", "watch.events.min_duration=0.1"]);
    ok(fgstp(&args));
    let status = std::fs::read_to_string(out.join("status.jsonl")).unwrap();
    assert!(
        status.contains("resolution changed from 96x64 to 80x48"),
        "{status}"
    );
    let ends: Vec<String> = json_lines(&out.join("events.jsonl"))
        .iter()
        .filter(|r| r["type"] == "end")
        .map(|r| r["end_reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ends, ["resolution_changed", "stopped"]);
}

#[test]
fn the_feature_cache_gives_the_probabilities_of_the_whole_model() {
    let f = fixture();
    let video = format!("pump={}", s(&f.episodes.join("video.mp4")));
    let run = |name: &str, extra: &[&str]| {
        let out = f.root.join(name);
        let mut args = watch_args(f, &out);
        args.extend(["--camera", &video]);
        args.extend(WHOLE_FRAME_IS_GAS);
        args.extend(["--set", "watch.events.update_interval=0.05"]);
        args.extend(extra);
        ok(fgstp(&args));
        json_lines(&out.join("events.jsonl"))
    };
    let (cached, whole) = (run("cached", &[]), run("uncached", &["--no-feature-cache"]));
    assert_eq!(cached.len(), whole.len());
    assert!(cached.len() >= 5, "{cached:?}");
    for (a, b) in cached.iter().zip(&whole) {
        assert_eq!((&a["type"], &a["frame"]), (&b["type"], &b["frame"]));
        for key in ["max_prob", "mean_prob"] {
            let (x, y) = (a[key].as_f64().unwrap(), b[key].as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-5,
                "{key}: {x} with the cache, {y} without"
            );
        }
    }
}
