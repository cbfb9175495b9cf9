//! What a running watch shows the dashboard ([`super::dashboard`]): each camera's latest
//! analysed frame and map, its state, its gas area second by second over the last hour, the
//! stats, an index of the events (this run's and those already in `events.jsonl`), and a
//! stream of updates for the page's live list. The engine writes it; the dashboard reads it,
//! and sends commands back (false positives) that the engine carries out between batches.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use chrono::{SecondsFormat, Utc};
use image::RgbImage;
use serde::Serialize;
use tokio::sync::broadcast;

use super::events::{EventRecord, RecordType};

/// Seconds of per-second gas area kept per camera.
const AREA_HISTORY: i64 = 3600;
/// Events kept in the index (the oldest are forgotten first; `events.jsonl` keeps them all).
const MAX_EVENTS: usize = 10_000;
/// Points of an event's area curve (thinned to every other point beyond this).
const MAX_AREA_POINTS: usize = 512;

/// A camera's latest analysed frame t and its gas probability map.
pub struct LiveFrame {
    /// Counts the camera's analysed frames from 1.
    pub seq: u64,
    pub image: RgbImage,
    pub prob: Vec<f32>,
    /// The map's (width, height).
    pub grid: (usize, usize),
    /// Pixels at or above it are tinted.
    pub threshold: f32,
}

/// A camera's state as the page shows it.
#[derive(Clone, Debug, Serialize)]
pub struct CameraState {
    pub state: String,
    pub detail: Option<String>,
}

#[derive(Default)]
struct CameraFeed {
    frame: Mutex<Option<Arc<LiveFrame>>>,
    /// The latest frame as a JPEG, made when the first viewer asks for it.
    jpeg: Mutex<Option<(u64, Arc<Vec<u8>>)>>,
    seq: AtomicU64,
    state: Mutex<Option<CameraState>>,
    /// (unix second, largest gas area % of the frame in that second), oldest first.
    area: Mutex<VecDeque<(i64, f32)>>,
}

/// The engine's reply to a mark of an event already marked (the API answers 409).
pub const ALREADY_MARKED: &str = "already marked a false positive";

/// A command from the dashboard, carried out by the engine's loop.
pub enum Command {
    /// Mark the event (its latest record) a false positive; the reply is the
    /// `false_positive` record written.
    FalsePositive {
        latest: Box<EventRecord>,
        reply: mpsc::Sender<Result<EventRecord, String>>,
    },
}

/// An event as the dashboard lists it.
#[derive(Clone, Debug)]
pub struct EventSummary {
    /// Its latest `new`, `update` or `end`.
    pub latest: EventRecord,
    /// (seconds from its start, area % of the frame) per record.
    pub area: Vec<[f64; 2]>,
    /// When it was marked a false positive.
    pub false_positive: Option<String>,
    pub learned_until: Option<String>,
    /// Order of the first record (higher: newer).
    serial: u64,
}

#[derive(Default)]
struct EventIndex {
    by_id: HashMap<String, EventSummary>,
    serial: u64,
}

impl EventIndex {
    fn take(&mut self, record: &EventRecord) -> Option<&EventSummary> {
        if record.kind == RecordType::FalsePositive {
            let summary = self.by_id.get_mut(&record.id)?;
            summary.false_positive = record.marked_utc.clone();
            summary.learned_until = record.learned_until.clone();
            return Some(summary);
        }
        self.serial += 1;
        let serial = self.serial;
        let summary = self
            .by_id
            .entry(record.id.clone())
            .or_insert_with(|| EventSummary {
                latest: record.clone(),
                area: Vec::new(),
                false_positive: None,
                learned_until: None,
                serial,
            });
        summary.latest = record.clone();
        summary.area.push([record.duration, record.area_pct]);
        if summary.area.len() > MAX_AREA_POINTS {
            let last = summary.area.pop();
            let kept: Vec<[f64; 2]> = summary.area.iter().copied().step_by(2).collect();
            summary.area = kept;
            summary.area.extend(last);
        }
        if self.by_id.len() > MAX_EVENTS {
            let oldest = self
                .by_id
                .values()
                .min_by_key(|s| s.serial)
                .map(|s| s.latest.id.clone());
            if let Some(oldest) = oldest {
                self.by_id.remove(&oldest);
            }
        }
        self.by_id.get(&record.id)
    }
}

/// The live state the dashboard serves.
pub struct LiveFeed {
    dir: PathBuf,
    cameras: BTreeMap<String, CameraFeed>,
    events: Mutex<EventIndex>,
    stats: Mutex<serde_json::Value>,
    /// (SSE event name, JSON data) for the page's live list.
    updates: broadcast::Sender<(&'static str, Arc<str>)>,
    commands: Mutex<mpsc::Sender<Command>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LiveFeed {
    /// A feed for `cameras` of a watch writing under `dir`, with the events already in
    /// `dir/events.jsonl`; and the receiving end of the dashboard's commands.
    pub fn new(dir: &Path, cameras: &[String]) -> (Arc<Self>, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel();
        let mut index = EventIndex::default();
        if let Ok(file) = std::fs::File::open(dir.join("events.jsonl")) {
            for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
                if let Ok(record) = serde_json::from_str::<EventRecord>(&line) {
                    index.take(&record);
                }
            }
        }
        let feed = Self {
            dir: dir.to_path_buf(),
            cameras: cameras
                .iter()
                .map(|c| (c.clone(), CameraFeed::default()))
                .collect(),
            events: Mutex::new(index),
            stats: Mutex::new(serde_json::json!({})),
            updates: broadcast::channel(1024).0,
            commands: Mutex::new(tx),
        };
        (Arc::new(feed), rx)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn camera_names(&self) -> impl Iterator<Item = &String> {
        self.cameras.keys()
    }

    pub fn has_camera(&self, name: &str) -> bool {
        self.cameras.contains_key(name)
    }

    fn publish(&self, name: &'static str, data: String) {
        // No page open: nobody to tell.
        let _ = self.updates.send((name, data.into()));
    }

    /// The stream of updates: `event` (an event's summary), `status`, `stats`.
    pub fn subscribe(&self) -> broadcast::Receiver<(&'static str, Arc<str>)> {
        self.updates.subscribe()
    }

    // The engine's side.

    /// A record written to `events.jsonl`.
    pub fn event(&self, record: &EventRecord) {
        let json = {
            let mut index = lock(&self.events);
            index.take(record).map(|s| self.summary_json(s))
        };
        if let Some(json) = json {
            self.publish("event", json.to_string());
        }
    }

    /// A camera's new state.
    pub fn status(&self, camera: &str, state: &str, detail: Option<&str>) {
        let Some(feed) = self.cameras.get(camera) else {
            return;
        };
        *lock(&feed.state) = Some(CameraState {
            state: state.to_string(),
            detail: detail.map(str::to_string),
        });
        let line = serde_json::json!({
            "camera": camera,
            "state": state,
            "detail": detail,
            "utc": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        });
        self.publish("status", line.to_string());
    }

    /// The stats as written to `stats.json` (camera → its numbers).
    pub fn stats(&self, stats: serde_json::Value) {
        *lock(&self.stats) = stats;
        self.publish("stats", self.stats_json().to_string());
    }

    /// A camera's latest analysed frame and map.
    pub fn frame(
        &self,
        camera: &str,
        image: RgbImage,
        prob: Vec<f32>,
        grid: (usize, usize),
        threshold: f32,
    ) {
        let Some(feed) = self.cameras.get(camera) else {
            return;
        };
        let gas = prob.iter().filter(|p| **p >= threshold).count();
        let pct = 100.0 * gas as f32 / prob.len().max(1) as f32;
        let second = Utc::now().timestamp();
        {
            let mut area = lock(&feed.area);
            match area.back_mut() {
                Some((s, v)) if *s == second => *v = v.max(pct),
                _ => area.push_back((second, pct)),
            }
            while area
                .front()
                .is_some_and(|(s, _)| second - s >= AREA_HISTORY)
            {
                area.pop_front();
            }
        }
        let seq = feed.seq.fetch_add(1, Ordering::Relaxed) + 1;
        *lock(&feed.frame) = Some(Arc::new(LiveFrame {
            seq,
            image,
            prob,
            grid,
            threshold,
        }));
    }

    // The dashboard's side.

    /// The camera's latest frame as a JPEG (`encode` makes it), made once per frame
    /// however many viewers ask.
    pub fn latest_jpeg(
        &self,
        camera: &str,
        encode: impl FnOnce(&LiveFrame) -> Option<Vec<u8>>,
    ) -> Option<(u64, Arc<Vec<u8>>)> {
        let feed = self.cameras.get(camera)?;
        let frame = lock(&feed.frame).clone()?;
        let mut cache = lock(&feed.jpeg);
        if let Some((seq, jpeg)) = cache.as_ref() {
            if *seq == frame.seq {
                return Some((*seq, jpeg.clone()));
            }
        }
        let jpeg = Arc::new(encode(&frame)?);
        *cache = Some((frame.seq, jpeg.clone()));
        Some((frame.seq, jpeg))
    }

    /// The number of the camera's latest analysed frame (0: none yet).
    pub fn latest_seq(&self, camera: &str) -> u64 {
        self.cameras
            .get(camera)
            .map_or(0, |f| f.seq.load(Ordering::Relaxed))
    }

    pub fn camera_state(&self, camera: &str) -> Option<CameraState> {
        lock(&self.cameras.get(camera)?.state).clone()
    }

    /// (unix second, gas area %) of the last `seconds`.
    pub fn area_history(&self, camera: &str, seconds: i64) -> Option<Vec<(i64, f32)>> {
        let feed = self.cameras.get(camera)?;
        let since = Utc::now().timestamp() - seconds;
        Some(
            lock(&feed.area)
                .iter()
                .filter(|(s, _)| *s > since)
                .copied()
                .collect(),
        )
    }

    /// `{"cameras": {name: stats}, "utc": …}`.
    pub fn stats_json(&self) -> serde_json::Value {
        serde_json::json!({
            "cameras": lock(&self.stats).clone(),
            "utc": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        })
    }

    /// The event `id`'s summary.
    pub fn event_summary(&self, id: &str) -> Option<EventSummary> {
        lock(&self.events).by_id.get(id).cloned()
    }

    /// The summaries that `keep` accepts, newest first, at most `limit`.
    pub fn events(&self, keep: impl Fn(&EventSummary) -> bool, limit: usize) -> Vec<EventSummary> {
        let index = lock(&self.events);
        let mut all: Vec<&EventSummary> = index.by_id.values().filter(|s| keep(s)).collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.serial));
        all.into_iter().take(limit).cloned().collect()
    }

    /// An event as the API and the page show it.
    pub fn summary_json(&self, s: &EventSummary) -> serde_json::Value {
        let r = &s.latest;
        let file = |folder: &str, ext: &str| {
            self.dir
                .join(folder)
                .join(format!("{}.{ext}", r.id))
                .is_file()
        };
        serde_json::json!({
            "id": r.id,
            "camera": r.camera,
            "type": r.kind,
            "false_positive": s.false_positive,
            "learned_until": s.learned_until,
            "start_utc": r.start_utc,
            "end_utc": r.end_utc,
            "duration": r.duration,
            "area_pct": r.area_pct,
            "peak_area_pct": r.peak_area_pct,
            "box": r.bbox,
            "zones": r.zones,
            "max_prob": r.max_prob,
            "end_reason": r.end_reason,
            "suspended_until": r.suspended_until,
            "snapshot": file("snapshots", "png"),
            "clip": file("clips", "mp4"),
            "area": s.area,
        })
    }

    /// Sends a command to the engine.
    pub fn command(&self, command: Command) -> bool {
        lock(&self.commands).send(command).is_ok()
    }
}
