//! The watch loop: a decode thread per camera hands model triplets over through a
//! latest-frame-wins slot (at most `watch.queue_depth`, default 2, waiting; older ones are
//! dropped and counted); the main thread takes one due triplet per camera, runs them through
//! the model in one batch, and turns each camera's map into events ([`super::events`]),
//! written under the output folder:
//!
//! - `events.jsonl` — one [`EventRecord`] per line, appended and flushed line by line;
//! - `snapshots/<id>.png` — the event's largest-area frame with the mask tinted;
//! - `clips/<id>.mp4` — the event's analysed frames with the mask tinted, from `pre_capture`
//!   seconds before its start to `post_capture` after its end, encoded on a thread per camera
//!   ([`super::clips::ClipWriter`]);
//! - `status.jsonl` — each camera's state changes (`online`, `offline`, `paused`, `ended`);
//! - `stats.json` — per camera, rewritten every `stats_interval`: frames in, triplets analysed
//!   and skipped per second, latency from the arrival of a triplet's last frame to its
//!   decision (p50, p95), state.
//!
//! FGSTP decides frame t from frames t, t+1, t+2: a decision comes two frames after the frame
//! it is about (at 15 frames/s, 133 ms), plus the measured latency.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use fgstp_data::augment::{normalisation_table, normalise_into, resize_rgb_to};
use fgstp_data::ImageSize;
use image::RgbImage;
use serde::Serialize;

use super::analyser::{Analyser, Due};
use super::clips::{apply_retention, tint, CameraClips, ClipWriter};
use super::dashboard::Dashboard;
use super::events::{whole_frame_change, EventRecord, EventTracker, Observation, RecordType};
use super::feed::{Command, LiveFeed, ALREADY_MARKED};
use super::mqtt::MqttPublisher;
use super::source::{self, FrameSource};
use super::suspend::Suspensions;
use super::zones::CameraAreas;
use crate::run_config::watch::{CameraConfig, WatchConfig};
use crate::trained_run::LoadedModel;

/// Model inputs of three consecutive frames of one camera.
struct Triplet {
    /// Frame t (decided), its pixels for the snapshot.
    image: RgbImage,
    /// The three frames' model inputs, `[3, H, W]` each.
    inputs: [Vec<f32>; 3],
    frame: u64,
    stream_time: f64,
    utc: DateTime<Utc>,
    /// When frame t+2 (the last the decision needs) arrived.
    arrived: Instant,
    whole_frame_change: bool,
}

/// What a camera's decode thread shares with the main loop.
#[derive(Default)]
struct Shared {
    slot: Mutex<SlotState>,
    frames_in: AtomicU64,
    skipped: AtomicU64,
    live: source::LiveStatus,
}

#[derive(Default)]
struct SlotState {
    queue: VecDeque<Triplet>,
    /// The stream ended (`Some(None)`) or failed (`Some(Some(error))`).
    ended: Option<Option<String>>,
    last_frame: Option<Instant>,
}

/// Per-camera bookkeeping of the main loop.
struct CameraRun {
    name: String,
    shared: Arc<Shared>,
    tracker: Option<EventTracker>,
    /// The camera's zones and ignore masks as configured.
    zones_and_ignore: (Vec<super::zones::ZoneConfig>, Vec<super::zones::Polygon>),
    state: &'static str,
    analysed: u64,
    latencies: VecDeque<f64>,
    /// (time, frames in, analysed, skipped) at the last stats write.
    last_stats: (Instant, u64, u64, u64),
    rates: (f64, f64, f64),
    /// Its stream ended (or failed) and its events were ended.
    finished: bool,
    /// When its source was opened.
    started: Instant,
    clips: ClipWriter,
}

/// What a watch run did.
#[derive(Debug, Default, Serialize)]
pub struct WatchReport {
    pub cameras: usize,
    pub analysed: u64,
    pub skipped: u64,
    pub events: u64,
}

/// A false positive's region, not alerted until `until`.
#[derive(Clone)]
struct Learned {
    camera: String,
    bbox: [f64; 4],
    zones: Vec<String>,
    until: DateTime<Utc>,
}

/// Output files of a run, and the dashboard's feed (when it is served).
struct Outputs {
    dir: PathBuf,
    events: File,
    status: File,
    suspensions: Suspensions,
    feed: Option<Arc<LiveFeed>>,
    /// The false positives learned (this run's, and earlier runs' still in force).
    learned: Vec<Learned>,
}

impl Outputs {
    fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir.join("snapshots"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let append = |name: &str| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
                .with_context(|| format!("cannot open {}", dir.join(name).display()))
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            events: append("events.jsonl")?,
            status: append("status.jsonl")?,
            suspensions: Suspensions::load(dir),
            feed: None,
            learned: learned_false_positives(dir),
        })
    }

    fn event(&mut self, record: &EventRecord) -> Result<()> {
        let mut record = record.clone();
        if record.kind != RecordType::FalsePositive {
            record.suspended_until = self.suspensions.until_text(&record.camera);
        }
        // One write per line: the line is never interleaved with another writer's.
        let line = format!("{}\n", serde_json::to_string(&record)?);
        self.events.write_all(line.as_bytes())?;
        self.events.flush()?;
        if let Some(feed) = &self.feed {
            feed.event(&record);
        }
        Ok(())
    }

    fn status(&mut self, camera: &str, state: &str, detail: Option<&str>) -> Result<()> {
        let mut line = serde_json::json!({
            "utc": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            "camera": camera,
            "state": state,
        });
        if let Some(detail) = detail {
            line["detail"] = detail.into();
        }
        // One write per line, as the events: a reader never sees half a line (`writeln!` on
        // the file issues a write per formatted piece).
        self.status.write_all(format!("{line}\n").as_bytes())?;
        self.status.flush()?;
        if let Some(feed) = &self.feed {
            feed.status(camera, state, detail);
        }
        Ok(())
    }
}

/// The false positives in `dir/events.jsonl` whose region is still suppressed.
fn learned_false_positives(dir: &Path) -> Vec<Learned> {
    let Ok(file) = File::open(dir.join("events.jsonl")) else {
        return Vec::new();
    };
    let now = Utc::now();
    std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str::<EventRecord>(&line).ok())
        .filter(|r| r.kind == RecordType::FalsePositive)
        .filter_map(|r| {
            let until = DateTime::parse_from_rfc3339(r.learned_until.as_deref()?).ok()?;
            let until = until.with_timezone(&Utc);
            (until > now).then_some(Learned {
                camera: r.camera,
                bbox: r.bbox,
                zones: r.zones,
                until,
            })
        })
        .collect()
}

/// Ends, as `interrupted`, the events a previous run left open in `events.jsonl` (it was
/// killed or crashed before it could end them). Returns how many.
pub fn close_interrupted_events(dir: &Path) -> Result<usize> {
    let path = dir.join("events.jsonl");
    let Ok(file) = File::open(&path) else {
        return Ok(0);
    };
    let mut open: BTreeMap<String, EventRecord> = BTreeMap::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        // A line cut off by the crash is not a record.
        let Ok(record) = serde_json::from_str::<EventRecord>(&line) else {
            continue;
        };
        match record.kind {
            RecordType::End => {
                open.remove(&record.id);
            }
            RecordType::FalsePositive => {}
            RecordType::New | RecordType::Update => {
                open.insert(record.id.clone(), record);
            }
        }
    }
    if open.is_empty() {
        return Ok(0);
    }
    let mut out = OpenOptions::new().append(true).open(&path)?;
    // A cut-off last line gets its own line ended first.
    let bytes = std::fs::read(&path)?;
    if bytes.last().is_some_and(|b| *b != b'\n') {
        writeln!(out)?;
    }
    for (_, mut record) in open.iter().map(|(k, r)| (k, r.clone())) {
        record.kind = RecordType::End;
        record.end_reason = Some("interrupted".into());
        record.end_frame = Some(record.frame);
        record.end_time = Some(record.start_time + record.duration);
        record.end_utc = None;
        out.write_all(format!("{}\n", serde_json::to_string(&record)?).as_bytes())?;
    }
    out.flush()?;
    Ok(open.len())
}

/// Watches `cameras` with `model` until every stream ends or `stop` is raised; writes under
/// `out`, and publishes it to MQTT when `watch.mqtt.url` is set. A camera whose source cannot
/// be opened is reported and left out; the others go on.
pub fn watch(
    model: &LoadedModel,
    cfg: &WatchConfig,
    cameras: &[CameraConfig],
    follow: bool,
    raw: Option<source::RawFormat>,
    out: &Path,
    stop: &Arc<AtomicBool>,
) -> Result<WatchReport> {
    let interrupted = close_interrupted_events(out)?;
    if interrupted > 0 {
        eprintln!(
            "{} event(s) a previous run left open ended as interrupted",
            interrupted
        );
    }
    let mut files = Outputs::open(out)?;
    let names: Vec<String> = cameras.iter().map(|c| c.name.clone()).collect();
    let (dashboard, commands) = if cfg.http.listen.is_empty() {
        (None, None)
    } else {
        let (feed, commands) = LiveFeed::new(out, &names);
        files.feed = Some(feed.clone());
        let dashboard = Dashboard::start(&cfg.http, feed, files.suspensions.clone())?;
        (Some(dashboard), Some(commands))
    };
    let publisher = if cfg.mqtt.url.is_empty() {
        None
    } else {
        let names = cameras.iter().map(|c| c.name.clone()).collect();
        Some(MqttPublisher::start(
            &cfg.mqtt,
            out,
            names,
            cfg.stats_interval,
            files.suspensions.clone(),
        )?)
    };
    let report = watch_cameras(
        model,
        cfg,
        cameras,
        Inputs {
            follow,
            raw,
            commands,
        },
        out,
        stop,
        files,
    );
    if let Some(dashboard) = dashboard {
        dashboard.finish();
    }
    if let Some(publisher) = publisher {
        publisher.finish();
    }
    report
}

/// How the cameras are read, and the dashboard's commands.
struct Inputs {
    follow: bool,
    raw: Option<source::RawFormat>,
    commands: Option<std::sync::mpsc::Receiver<Command>>,
}

fn watch_cameras(
    model: &LoadedModel,
    cfg: &WatchConfig,
    cameras: &[CameraConfig],
    inputs: Inputs,
    out: &Path,
    stop: &Arc<AtomicBool>,
    mut files: Outputs,
) -> Result<WatchReport> {
    let Inputs {
        follow,
        raw,
        commands,
    } = inputs;
    // The longest a confirmation can take after a leak's start (for the clips' pre-capture).
    let confirm_span = cfg.events.min_duration
        + if cfg.detect_fps > 0.0 {
            cfg.events.confirm_window as f64 / cfg.detect_fps
        } else {
            0.0
        };
    let retention = cfg.retention_days > 0.0 || cfg.retention_gb > 0.0;
    let mut last_retention: Option<Instant> = None;
    let mut analyser = Analyser::new(model, cameras.len())?;
    let size = model.cfg.data.train_size;
    let wake = Arc::new((Mutex::new(()), Condvar::new()));
    let mut runs = Vec::new();
    let mut threads = Vec::new();
    for cam in cameras {
        let shared = Arc::new(Shared::default());
        let options = source::SourceOptions {
            realtime: cfg.realtime,
            follow,
            raw,
            sixteen_bit: model.cfg.data.sixteen_bit,
            live: shared.live.clone(),
        };
        let source = match source::open(&cam.source, &options) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("camera {}: {e:#}", cam.name);
                files.status(&cam.name, "error", Some(&format!("{e:#}")))?;
                continue;
            }
        };
        let handle = spawn_decoder(
            cam.name.clone(),
            source,
            Arc::clone(&shared),
            Arc::clone(&wake),
            Arc::clone(stop),
            size,
            cfg.detect_fps,
            cfg.change_delta,
            cfg.events.change_fraction,
            // A file or folder read as fast as it decodes waits for the model instead of
            // dropping triplets; a paced, followed, piped or live source keeps only the latest.
            !cfg.realtime && !follow && cam.source != "-" && !source::is_live(&cam.source),
            cfg.queue_depth,
        )?;
        threads.push(handle);
        runs.push(CameraRun {
            name: cam.name.clone(),
            shared,
            tracker: None,
            zones_and_ignore: (cam.zones.clone(), cam.ignore.clone()),
            state: "starting",
            analysed: 0,
            latencies: VecDeque::new(),
            last_stats: (Instant::now(), 0, 0, 0),
            rates: (0.0, 0.0, 0.0),
            finished: false,
            started: Instant::now(),
            clips: ClipWriter::spawn(
                &cam.name,
                CameraClips::new(
                    &out.join("clips"),
                    cfg.pre_capture,
                    cfg.post_capture,
                    confirm_span,
                    cfg.events.start_threshold,
                ),
            )?,
        });
    }
    let mut report = WatchReport {
        cameras: runs.len(),
        ..WatchReport::default()
    };
    let mut last_stats = Instant::now();
    let stall = Duration::from_secs_f64(cfg.stall_timeout);
    loop {
        if stop.load(Ordering::Relaxed) {
            for run in runs.iter_mut().filter(|r| !r.finished) {
                run.finished = true;
                finish_camera(run, &mut files, "stopped")?;
                files.status(&run.name, "stopped", None)?;
            }
            break;
        }
        // One due triplet per camera.
        let mut batch: Vec<(usize, Triplet)> = Vec::new();
        let now = Instant::now();
        for (k, run) in runs.iter_mut().enumerate() {
            if run.finished {
                continue;
            }
            let mut slot = run.shared.slot.lock().unwrap_or_else(|e| e.into_inner());
            let triplet = slot.queue.pop_front();
            let drained = slot.queue.is_empty();
            let ended = slot.ended.clone();
            let last_frame = slot.last_frame;
            drop(slot);
            if let Some(t) = triplet {
                batch.push((k, t));
            } else if let (Some(ended), true) = (ended, drained) {
                run.finished = true;
                finish_camera(run, &mut files, "stopped")?;
                let state = if ended.is_some() { "error" } else { "ended" };
                files.status(&run.name, state, ended.as_deref())?;
                run.state = "ended";
                continue;
            }
            // A stream is offline after stall_timeout without a frame (its open events end as
            // stream_lost: a leak seen again after the break is a new event); reconnecting
            // while its source tries again; online while frames come.
            let fresh = last_frame.map(|t| now.saturating_duration_since(t) <= stall);
            let started = Instant::now().saturating_duration_since(run.started) > stall;
            let (_, reconnecting) = run.shared.live.get();
            let state = match (fresh, reconnecting, run.state) {
                (Some(false), _, s) | (None, _, s @ ("starting" | "reconnecting"))
                    if s != "offline" && (fresh.is_some() || started) =>
                {
                    Some(("offline", None))
                }
                (_, Some(reason), "starting" | "online" | "paused") => {
                    Some(("reconnecting", Some(reason)))
                }
                (Some(true), None, "starting" | "offline" | "reconnecting") => {
                    Some(("online", None))
                }
                _ => None,
            };
            if let Some((state, detail)) = state {
                if state == "offline" {
                    finish_camera(run, &mut files, "stream_lost")?;
                }
                files.status(&run.name, state, detail.as_deref())?;
                run.state = state;
            }
        }
        if let Some(commands) = &commands {
            while let Ok(command) = commands.try_recv() {
                carry_out(command, cfg, &mut runs, &mut files)?;
            }
        }
        if batch.is_empty() {
            if runs.iter().all(|r| r.finished) {
                break;
            }
            let (lock, cv) = &*wake;
            let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            let _ = cv.wait_timeout(guard, Duration::from_millis(100));
        } else {
            analyse(
                &mut analyser,
                cfg,
                &mut runs,
                batch,
                &mut files,
                &mut report,
            )?;
        }
        if retention && last_retention.is_none_or(|t| t.elapsed() > Duration::from_secs(3600)) {
            match apply_retention(out, cfg.retention_days, cfg.retention_gb) {
                Ok(0) => {}
                Ok(removed) => {
                    eprintln!("retention: {removed} old snapshot(s) and clip(s) deleted")
                }
                // Tried again in an hour; the watch goes on.
                Err(e) => eprintln!("retention: {e:#}"),
            }
            last_retention = Some(Instant::now());
        }
        if last_stats.elapsed().as_secs_f64() >= cfg.stats_interval {
            write_stats(out, &mut runs, &files)?;
            last_stats = Instant::now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for handle in threads {
        let _ = handle.join();
    }
    write_stats(out, &mut runs, &files)?;
    report.skipped = runs
        .iter()
        .map(|r| r.shared.skipped.load(Ordering::Relaxed))
        .sum();
    Ok(report)
}

/// A dashboard's command, between two batches.
fn carry_out(
    command: Command,
    cfg: &WatchConfig,
    runs: &mut [CameraRun],
    files: &mut Outputs,
) -> Result<()> {
    match command {
        Command::FalsePositive { latest, reply } => {
            // Checked here, where marks are made one after another: two requests (a double
            // click, a retry after a timeout) both pass the dashboard's check.
            let marked = files
                .feed
                .as_ref()
                .and_then(|feed| feed.event_summary(&latest.id))
                .is_some_and(|s| s.false_positive.is_some());
            if marked {
                let _ = reply.send(Err(ALREADY_MARKED.to_string()));
                return Ok(());
            }
            let now = Utc::now();
            let mut record = *latest;
            record.kind = RecordType::FalsePositive;
            record.marked_utc = Some(now.to_rfc3339_opts(SecondsFormat::Millis, true));
            record.suspended_until = None;
            let learned = cfg.learn_false_positives.then(|| Learned {
                camera: record.camera.clone(),
                bbox: record.bbox,
                zones: record.zones.clone(),
                until: now
                    + chrono::Duration::milliseconds((cfg.false_positive_hold * 1000.0) as i64),
            });
            record.learned_until = learned
                .as_ref()
                .map(|l| l.until.to_rfc3339_opts(SecondsFormat::Millis, true));
            files.event(&record)?;
            if let Some(learned) = learned {
                // Its region is left out from now on; the event itself, if still open, ends.
                if let Some(run) = runs.iter_mut().find(|r| r.name == record.camera) {
                    if let Some(tracker) = run.tracker.as_mut() {
                        tracker.suppress(learned.bbox, &learned.zones, learned.until);
                        if let Some(end) = tracker.end_event(&record.id, "false_positive") {
                            // A clip that could not be written is reported, as in
                            // `analyse`; it does not end the watch.
                            let ended = run
                                .clips
                                .end(&end.id, end.end_time.unwrap_or(end.start_time));
                            report_media_failure(&run.name, ended);
                            files.event(&end)?;
                        }
                    }
                }
                files.learned.retain(|l| l.until > now);
                files.learned.push(learned);
            }
            let _ = reply.send(Ok(record));
        }
    }
    Ok(())
}

/// Ends the camera's open events with `reason`, and their clips.
fn finish_camera(run: &mut CameraRun, files: &mut Outputs, reason: &str) -> Result<()> {
    if let Some(tracker) = run.tracker.as_mut() {
        for record in tracker.finish(reason) {
            files.event(&record)?;
        }
    }
    report_media_failure(&run.name, run.clips.finish_all());
    Ok(())
}

/// A snapshot or a clip that cannot be written (a frame size the encoder refuses, a full
/// disk) is reported and left out: the events, the other clips and the other cameras go on.
fn report_media_failure(camera: &str, result: Result<()>) {
    if let Err(e) = result {
        eprintln!("camera {camera}: {e:#}");
    }
}

/// Runs a batch (one triplet per camera) through the model and takes the maps in.
fn analyse(
    analyser: &mut Analyser,
    cfg: &WatchConfig,
    runs: &mut [CameraRun],
    batch: Vec<(usize, Triplet)>,
    files: &mut Outputs,
    report: &mut WatchReport,
) -> Result<()> {
    let due: Vec<Due> = batch
        .iter()
        .map(|(k, t)| Due {
            camera: *k,
            frame: t.frame,
            inputs: &t.inputs,
        })
        .collect();
    let logits = tch::no_grad(|| analyser.logits(&due))?;
    drop(due);
    let prob = logits.sigmoid().to_device(tch::Device::Cpu);
    let (gh, gw) = (prob.size()[2] as usize, prob.size()[3] as usize);
    for (row, (k, triplet)) in batch.into_iter().enumerate() {
        let map = Vec::<f32>::try_from(prob.get(row as i64).flatten(0, -1))?;
        let run = &mut runs[k];
        let frame_size = (
            triplet.image.width() as usize,
            triplet.image.height() as usize,
        );
        // A camera that changes resolution: its events end (their boxes and areas are in the
        // old frame's pixels) and decisions start over at the new size.
        if let Some(old) = run.tracker.as_ref().map(|t| t.frame_size()) {
            if old != frame_size {
                finish_camera(run, files, "resolution_changed")?;
                run.tracker = None;
                files.status(
                    &run.name,
                    "online",
                    Some(&format!(
                        "resolution changed from {}x{} to {}x{}",
                        old.0, old.1, frame_size.0, frame_size.1
                    )),
                )?;
            }
        }
        let tracker = run.tracker.get_or_insert_with(|| {
            let (zones, ignore) = &run.zones_and_ignore;
            let areas = CameraAreas::new(zones, ignore, frame_size, (gw, gh));
            let mut tracker =
                EventTracker::new(&run.name, cfg.events.clone(), areas, (gw, gh), frame_size);
            for learned in files.learned.iter().filter(|l| l.camera == run.name) {
                tracker.suppress(learned.bbox, &learned.zones, learned.until);
            }
            tracker
        });
        let decisions = tracker.observe(&Observation {
            frame: triplet.frame,
            stream_time: triplet.stream_time,
            utc: triplet.utc,
            prob: &map,
            whole_frame_change: triplet.whole_frame_change,
        });
        run.analysed += 1;
        report.analysed += 1;
        run.latencies
            .push_back(triplet.arrived.elapsed().as_secs_f64());
        if run.latencies.len() > 512 {
            run.latencies.pop_front();
        }
        // Only an online camera pauses (and a paused one resumes): triplets still queued when
        // a stream broke do not make a reconnecting or offline camera look online.
        let paused = if decisions.paused { "paused" } else { "online" };
        if paused != run.state && matches!(run.state, "online" | "paused") {
            files.status(
                &run.name,
                paused,
                decisions.paused.then_some("whole-frame change"),
            )?;
            run.state = paused;
        }
        for id in &decisions.new_peaks {
            let path = files.dir.join("snapshots").join(format!("{id}.png"));
            let written = write_snapshot(
                &triplet.image,
                &map,
                (gw, gh),
                cfg.events.start_threshold,
                &path,
            );
            report_media_failure(&run.name, written);
        }
        let kept = run
            .clips
            .frame(triplet.stream_time, &triplet.image, &map, (gw, gh));
        report_media_failure(&run.name, kept);
        let shown = files.feed.clone();
        for record in &decisions.records {
            match record.kind {
                RecordType::New => {
                    report.events += 1;
                    let started = run.clips.start(&record.id, record.start_time);
                    report_media_failure(&run.name, started);
                }
                RecordType::End => {
                    let end = record.end_time.unwrap_or(triplet.stream_time);
                    report_media_failure(&run.name, run.clips.end(&record.id, end));
                }
                RecordType::Update | RecordType::FalsePositive => {}
            }
            files.event(record)?;
        }
        if let Some(feed) = shown {
            feed.frame(
                &run.name,
                triplet.image,
                map,
                (gw, gh),
                cfg.events.start_threshold,
            );
        }
    }
    Ok(())
}

/// Frame t with the gas mask (`prob` ≥ `threshold` on the decision grid, scaled to the frame)
/// tinted, as a PNG.
fn write_snapshot(
    image: &RgbImage,
    prob: &[f32],
    grid: (usize, usize),
    threshold: f32,
    path: &Path,
) -> Result<()> {
    let tmp = path.with_extension("png.tmp");
    tint(image, prob, grid, threshold)
        .save_with_format(&tmp, image::ImageFormat::Png)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[derive(Serialize)]
struct CameraStats {
    state: &'static str,
    frames: u64,
    analysed: u64,
    skipped: u64,
    input_fps: f64,
    analysed_fps: f64,
    skipped_fps: f64,
    /// Seconds from the arrival of a triplet's last frame to its decision.
    latency_p50: Option<f64>,
    latency_p95: Option<f64>,
    /// Times a live source tried to get its stream back (every attempt).
    reconnects: u64,
    /// Frames of a live source dropped as damaged (undecodable, or waiting for the key frame
    /// after lost packets).
    damaged: u64,
}

fn percentile(values: &VecDeque<f64>, q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v: Vec<f64> = values.iter().copied().collect();
    v.sort_by(f64::total_cmp);
    Some(v[((v.len() - 1) as f64 * q).round() as usize])
}

fn write_stats(out: &Path, runs: &mut [CameraRun], files: &Outputs) -> Result<()> {
    let now = Instant::now();
    let mut all = BTreeMap::new();
    for run in runs.iter_mut() {
        let frames = run.shared.frames_in.load(Ordering::Relaxed);
        let skipped = run.shared.skipped.load(Ordering::Relaxed);
        let (t0, f0, a0, s0) = run.last_stats;
        let dt = (now - t0).as_secs_f64();
        if dt >= 0.5 {
            run.rates = (
                (frames - f0) as f64 / dt,
                (run.analysed - a0) as f64 / dt,
                (skipped - s0) as f64 / dt,
            );
            run.last_stats = (now, frames, run.analysed, skipped);
        }
        all.insert(
            run.name.clone(),
            CameraStats {
                state: run.state,
                frames,
                analysed: run.analysed,
                skipped,
                input_fps: run.rates.0,
                analysed_fps: run.rates.1,
                skipped_fps: run.rates.2,
                latency_p50: percentile(&run.latencies, 0.5),
                latency_p95: percentile(&run.latencies, 0.95),
                reconnects: run.shared.live.get().0,
                damaged: run.shared.live.damaged(),
            },
        );
    }
    let path = out.join("stats.json");
    let tmp = out.join("stats.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&all)?)?;
    std::fs::rename(tmp, path)?;
    if let Some(feed) = &files.feed {
        let mut value = serde_json::to_value(&all)?;
        for (camera, stats) in value.as_object_mut().into_iter().flatten() {
            stats["suspended_until"] = files.suspensions.until_text(camera).into();
        }
        feed.stats(value);
    }
    Ok(())
}

/// A camera's decode thread: reads frames, keeps the last three, and hands a triplet over
/// when one is due (`detect_fps`; 0: every frame).
#[allow(clippy::too_many_arguments)]
fn spawn_decoder(
    name: String,
    mut source: Box<dyn FrameSource>,
    shared: Arc<Shared>,
    wake: Arc<(Mutex<()>, Condvar)>,
    stop: Arc<AtomicBool>,
    size: ImageSize,
    detect_fps: f64,
    change_delta: f32,
    change_fraction: f64,
    lossless: bool,
    // Triplets that may wait; a newer one pushes the oldest out (`watch.queue_depth`).
    depth: usize,
) -> Result<std::thread::JoinHandle<()>> {
    let table = normalisation_table();
    let (h, w) = size.hw();
    Ok(std::thread::Builder::new()
        .name(format!("watch-{name}"))
        .spawn(move || {
            // (frame index, stream time, image, model input, gray at the model size, changed)
            type Held = (u64, f64, RgbImage, Vec<f32>, Vec<f32>, bool);
            let mut window: VecDeque<Held> = VecDeque::new();
            let mut next_due = f64::NEG_INFINITY;
            let mut change_pending = false;
            let stopped = || stop.load(Ordering::Relaxed);
            let end = |error: Option<String>| {
                shared.slot.lock().unwrap_or_else(|e| e.into_inner()).ended = Some(error);
                wake.1.notify_all();
            };
            // A decoder that panics on a camera's data (a codec's or an image format's bug)
            // ends this camera with an error, as a failed read does: the camera does not
            // stay silently offline, and the watch does not wait for it forever.
            let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loop {
                if stopped() {
                    return end(None);
                }
                let frame = match source.next_frame(&stopped) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => return end(None),
                    Err(e) => return end(Some(format!("{e:#}"))),
                };
                let arrived = Instant::now();
                shared.frames_in.fetch_add(1, Ordering::Relaxed);
                shared
                    .slot
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .last_frame = Some(arrived);
                let resized = resize_rgb_to(&frame.image, size);
                let mut input = vec![0f32; 3 * h as usize * w as usize];
                normalise_into(&resized, &table, &mut input);
                let gray: Vec<f32> = resized
                    .pixels()
                    .map(|p| (f32::from(p[0]) + f32::from(p[1]) + f32::from(p[2])) / 765.0)
                    .collect();
                let changed = window.back().is_some_and(|prev| {
                    whole_frame_change(&prev.4, &gray, change_delta, change_fraction)
                });
                // A gap in the frame numbers (a lost frame) starts the window over.
                if window.back().is_some_and(|prev| prev.0 + 1 != frame.index) {
                    window.clear();
                }
                window.push_back((
                    frame.index,
                    frame.stream_time,
                    frame.image,
                    input,
                    gray,
                    changed,
                ));
                if window.len() > 3 {
                    window.pop_front();
                }
                // A whole-frame change between two analysed triplets (not due, or dropped)
                // still pauses the decisions.
                change_pending |= changed;
                if window.len() < 3 || window[0].1 < next_due {
                    continue;
                }
                if detect_fps > 0.0 {
                    next_due = window[0].1 + 1.0 / detect_fps - 1e-9;
                }
                let triplet = Triplet {
                    image: window[0].2.clone(),
                    inputs: [
                        window[0].3.clone(),
                        window[1].3.clone(),
                        window[2].3.clone(),
                    ],
                    frame: window[0].0,
                    stream_time: window[0].1,
                    utc: Utc::now(),
                    arrived,
                    whole_frame_change: change_pending || window.iter().any(|f| f.5),
                };
                change_pending = false;
                let mut slot = shared.slot.lock().unwrap_or_else(|e| e.into_inner());
                while lossless && slot.queue.len() >= depth && !stopped() {
                    // Waiting for the model is not a stalled stream.
                    slot.last_frame = Some(Instant::now());
                    drop(slot);
                    std::thread::sleep(Duration::from_millis(2));
                    slot = shared.slot.lock().unwrap_or_else(|e| e.into_inner());
                }
                slot.queue.push_back(triplet);
                while slot.queue.len() > depth {
                    let dropped = slot.queue.pop_front().expect("queue is over its depth");
                    if let Some(next) = slot.queue.front_mut() {
                        next.whole_frame_change |= dropped.whole_frame_change;
                    }
                    shared.skipped.fetch_add(1, Ordering::Relaxed);
                }
                drop(slot);
                wake.1.notify_all();
            }));
            if let Err(panic) = decoded {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                end(Some(format!("the frame decoder failed ({what})")));
            }
        })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source whose decoder has a bug that the camera's data reaches.
    struct PanickingSource;

    impl FrameSource for PanickingSource {
        fn next_frame(&mut self, _stop: &dyn Fn() -> bool) -> Result<Option<source::SourceFrame>> {
            panic!("a codec bug")
        }
    }

    #[test]
    fn a_decoder_that_panics_ends_its_camera_with_an_error() {
        let shared = Arc::new(Shared {
            slot: Mutex::new(SlotState::default()),
            frames_in: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            live: source::LiveStatus::default(),
        });
        let decoder = spawn_decoder(
            "cam".into(),
            Box::new(PanickingSource),
            Arc::clone(&shared),
            Arc::new((Mutex::new(()), Condvar::new())),
            Arc::new(AtomicBool::new(false)),
            ImageSize::square(32),
            0.0,
            0.1,
            0.5,
            false,
            2,
        )
        .unwrap();
        decoder.join().expect("the panic is caught in the thread");
        let ended = shared.slot.lock().unwrap().ended.clone();
        assert_eq!(
            ended,
            Some(Some("the frame decoder failed (a codec bug)".to_string()))
        );
    }
}
