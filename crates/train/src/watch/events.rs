//! From one camera's analysed frames to leak events: regions ([`super::regions`]) are tracked
//! across frames by overlap, a track becomes a leak event once it is confirmed, and the event
//! ends when the leak has been gone for `cutoff` seconds.
//!
//! The rules, per analysed triplet (decided frame t):
//!
//! - **Tracks.** Each region is matched to the tracks whose last pixels it overlaps. A region
//!   that overlaps none starts a track. A region that overlaps several joins the one that leads:
//!   a confirmed event before an unconfirmed track, then the oldest. Several regions that join
//!   one track (a leak split by the wind, or by an obstacle) are that track's observation
//!   together. So a leak keeps its id when it splits; when two leaks merge, the merged leak keeps
//!   the leading one's id and the others end (`end_reason` `"merged"`, `merged_into` the id).
//! - **Confirmation.** A track becomes an event (`new`) when it was seen in at least
//!   `confirm_hits` (M) of its last `confirm_window` (N) analysed triplets and for at least
//!   `min_duration` (T) seconds of stream time since it was first seen, touches one of
//!   `required_zones` (when set), and is not within `cooldown` seconds of the end of an event
//!   it overlaps (a leak that flickers off and on is one alert, not many).
//! - **Updates** (`update`) at most every `update_interval` seconds while the event goes on.
//! - **End** (`end`, `end_reason` `"gone"`) once the track has not been seen for `cutoff`
//!   seconds; the end time is the last time it was seen. [`EventTracker::finish`] ends the open
//!   events with another reason (`"stopped"`, `"stream_lost"`).
//! - **Whole-frame changes** (a NUC flash, a pan, a gain jump: the caller measures them) pause
//!   decisions for `change_pause` analysed triplets: nothing is matched, confirmed or ended, and
//!   the pause does not count towards `cutoff`.

use std::collections::{BTreeSet, VecDeque};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

pub use crate::run_config::watch::EventRules;

use super::regions::{find_regions, Region, Thresholds};
use super::zones::{CameraAreas, PixelMask};

/// One analysed triplet of a camera, as the tracker sees it.
pub struct Observation<'a> {
    /// The frame the triplet decides (t), counted from 0 in the stream.
    pub frame: u64,
    /// Its time in the stream, seconds.
    pub stream_time: f64,
    /// When it arrived.
    pub utc: DateTime<Utc>,
    /// Gas probability per pixel of the decision grid (row-major).
    pub prob: &'a [f32],
    /// Whether more than `change_fraction` of the frame changed at once at this frame
    /// ([`whole_frame_change`]).
    pub whole_frame_change: bool,
}

/// What kind of record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordType {
    New,
    Update,
    End,
    /// A person marked the event a false positive (the dashboard, the API): a copy of its
    /// latest record with `marked_utc` and, when learned, `learned_until`.
    FalsePositive,
}

/// One line of `events.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    #[serde(rename = "type")]
    pub kind: RecordType,
    pub id: String,
    pub camera: String,
    pub start_utc: String,
    /// Stream time of the start, seconds.
    pub start_time: f64,
    pub start_frame: u64,
    /// The frame this record is about (the last one seen for `end`).
    pub frame: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_utc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_frame: Option<u64>,
    /// Seconds of stream time from the start to this record (to the end for `end`).
    pub duration: f64,
    /// In pixels of the camera's frame and as a percentage of it.
    pub area_px: u64,
    pub area_pct: f64,
    pub peak_area_px: u64,
    pub peak_area_pct: f64,
    /// `[x0, y0, x1, y1]` in the camera frame's pixels.
    #[serde(rename = "box")]
    pub bbox: [f64; 4],
    pub centroid: [f64; 2],
    pub zones: Vec<String>,
    pub max_prob: f32,
    pub mean_prob: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    /// The camera's alerts were muted until then when this record was written
    /// (`<prefix>/<camera>/suspend` on MQTT).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspended_until: Option<String>,
    /// `false_positive`: when it was marked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marked_utc: Option<String>,
    /// `false_positive`: gas in the event's box and zones is not alerted until then
    /// (`watch.learn_false_positives`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned_until: Option<String>,
}

/// What the tracker decided for one observation.
#[derive(Debug, Default)]
pub struct Decisions {
    pub records: Vec<EventRecord>,
    /// Events whose largest area so far is at this frame (the caller keeps its snapshot).
    pub new_peaks: Vec<String>,
    /// Whether decisions are paused by a whole-frame change.
    pub paused: bool,
}

struct OpenEvent {
    id: String,
    start_utc: DateTime<Utc>,
    start_time: f64,
    start_frame: u64,
    peak_area: usize,
    max_prob: f32,
    /// Sum and count of the regions' mean probabilities, for the event's mean.
    prob_sum: f64,
    prob_count: u64,
    zones: BTreeSet<String>,
    last_update: f64,
}

struct Track {
    /// Order of creation (lower = older).
    serial: u64,
    first_seen: f64,
    first_frame: u64,
    first_utc: DateTime<Utc>,
    last_seen: f64,
    last_frame: u64,
    last_utc: DateTime<Utc>,
    /// Hits over the last `confirm_window` analysed triplets, newest last.
    history: VecDeque<bool>,
    /// The last pixels seen (the regions joined).
    pixels: Vec<u32>,
    region: Region,
    event: Option<OpenEvent>,
}

/// A false positive's place (its box, within its zones), not alerted until `until`.
struct Suppressed {
    pixels: PixelMask,
    until: DateTime<Utc>,
}

/// An ended event's place and time, for `cooldown`.
struct Ended {
    pixels: PixelMask,
    at: f64,
}

/// One camera's tracks and events.
pub struct EventTracker {
    camera: String,
    rules: EventRules,
    areas: CameraAreas,
    grid: (usize, usize),
    frame_size: (usize, usize),
    min_area: usize,
    tracks: Vec<Track>,
    ended: Vec<Ended>,
    suppressed: Vec<Suppressed>,
    serial: u64,
    events_started: u64,
    pause_left: usize,
    /// Stream time of the last observation (a pause shifts the tracks' clocks by its length).
    last_time: Option<f64>,
}

impl EventTracker {
    /// A tracker for `camera`, deciding on a `grid` (width, height) probability map of frames of
    /// `frame_size` pixels.
    pub fn new(
        camera: &str,
        rules: EventRules,
        areas: CameraAreas,
        grid: (usize, usize),
        frame_size: (usize, usize),
    ) -> Self {
        let grid_pixels = (grid.0 * grid.1) as u64;
        let min_area = rules.min_area.min_pixels(grid_pixels) as usize;
        Self {
            camera: camera.to_string(),
            rules,
            areas,
            grid,
            frame_size,
            min_area,
            tracks: Vec::new(),
            ended: Vec::new(),
            suppressed: Vec::new(),
            serial: 0,
            events_started: 0,
            pause_left: 0,
            last_time: None,
        }
    }

    /// The camera frame size (width, height) the tracker was made for.
    pub fn frame_size(&self) -> (usize, usize) {
        self.frame_size
    }

    /// Whether an event is open.
    pub fn has_open_events(&self) -> bool {
        self.tracks.iter().any(|t| t.event.is_some())
    }

    /// Learns a false positive: gas within `bbox` (camera frame pixels) and, when it had
    /// zones, within those zones, is left out of the regions until `until`.
    pub fn suppress(&mut self, bbox: [f64; 4], zones: &[String], until: DateTime<Utc>) {
        let (gw, gh) = self.grid;
        let (fw, fh) = self.frame_size;
        let to_grid = |v: f64, frame: usize, grid: usize| {
            ((v * grid as f64 / frame as f64).max(0.0) as usize).min(grid)
        };
        let (x0, x1) = (to_grid(bbox[0], fw, gw), to_grid(bbox[2].ceil(), fw, gw));
        let (y0, y1) = (to_grid(bbox[1], fh, gh), to_grid(bbox[3].ceil(), fh, gh));
        let in_zones: Vec<&PixelMask> = self
            .areas
            .zones
            .iter()
            .filter(|(name, _)| zones.contains(name))
            .map(|(_, mask)| mask)
            .collect();
        let mut pixels = PixelMask::new(gw, gh);
        for y in y0..y1 {
            for x in x0..x1 {
                let i = y * gw + x;
                if in_zones.is_empty() || in_zones.iter().any(|m| m.get(i)) {
                    pixels.set(i);
                }
            }
        }
        self.suppressed.push(Suppressed { pixels, until });
    }

    /// Ends the open event `id` with `reason` now (a false positive); its end record.
    pub fn end_event(&mut self, id: &str, reason: &str) -> Option<EventRecord> {
        let k = self
            .tracks
            .iter()
            .position(|t| t.event.as_ref().is_some_and(|e| e.id == id))?;
        let track = self.tracks.remove(k);
        let event = track.event.as_ref().expect("an open event");
        let mut record = self.record(RecordType::End, &track, event, track.last_frame);
        record.end_reason = Some(reason.to_string());
        Some(record)
    }

    /// The ignore mask with the false positives still suppressed at `utc` added.
    fn ignored(&mut self, utc: DateTime<Utc>) -> Option<PixelMask> {
        self.suppressed.retain(|s| s.until > utc);
        if self.suppressed.is_empty() {
            return None;
        }
        let (w, h) = self.grid;
        let mut mask = self
            .areas
            .ignore
            .clone()
            .unwrap_or_else(|| PixelMask::new(w, h));
        for s in &self.suppressed {
            for i in 0..w * h {
                if s.pixels.get(i) {
                    mask.set(i);
                }
            }
        }
        Some(mask)
    }

    /// Takes in one analysed triplet.
    pub fn observe(&mut self, obs: &Observation) -> Decisions {
        let mut out = Decisions::default();
        let elapsed = self
            .last_time
            .map_or(0.0, |t| (obs.stream_time - t).max(0.0));
        self.last_time = Some(obs.stream_time);
        if obs.whole_frame_change {
            self.pause_left = self.rules.change_pause.max(1);
        }
        if self.pause_left > 0 {
            self.pause_left -= 1;
            // The pause does not count towards cutoff or confirmation.
            for track in &mut self.tracks {
                track.last_seen += elapsed;
                track.first_seen += elapsed;
            }
            out.paused = true;
            return out;
        }
        let (w, h) = self.grid;
        let mut keep = PixelMask::new(w, h);
        for track in &self.tracks {
            for &i in &track.pixels {
                keep.set(i as usize);
            }
        }
        let with_suppressed = self.ignored(obs.utc);
        let regions = find_regions(
            obs.prob,
            (w, h),
            Thresholds {
                start: self.rules.start_threshold,
                stop: self.rules.stop_threshold,
                min_area: self.min_area,
            },
            Some(&keep),
            with_suppressed.as_ref().or(self.areas.ignore.as_ref()),
        );

        // Which track each region joins.
        let mut joined: Vec<Vec<Region>> = (0..self.tracks.len()).map(|_| Vec::new()).collect();
        // Absorbed track → the track that took it over.
        let mut absorbed: std::collections::BTreeMap<usize, usize> = Default::default();
        let mut fresh: Vec<Region> = Vec::new();
        for region in regions {
            let overlapping: Vec<usize> = (0..self.tracks.len())
                .filter(|&k| overlaps(&self.tracks[k].pixels, &region.pixels))
                .collect();
            let Some(&leader) = overlapping.iter().min_by_key(|&&k| {
                let t = &self.tracks[k];
                (t.event.is_none(), t.serial)
            }) else {
                fresh.push(region);
                continue;
            };
            for &k in overlapping.iter().filter(|&&k| k != leader) {
                absorbed.entry(k).or_insert(leader);
            }
            joined[leader].push(region);
        }
        // A track that leads somewhere is not absorbed.
        absorbed.retain(|&k, _| joined[k].is_empty());

        let now = obs.stream_time;
        let mut keep_tracks = Vec::with_capacity(self.tracks.len() + fresh.len());
        let tracks = std::mem::take(&mut self.tracks);
        let leaders: Vec<Option<String>> = tracks
            .iter()
            .map(|t| t.event.as_ref().map(|e| e.id.clone()))
            .collect();
        for (k, (mut track, parts)) in tracks.into_iter().zip(joined).enumerate() {
            if let Some(&leader) = absorbed.get(&k) {
                if let Some(event) = &track.event {
                    let mut record = self.record(RecordType::End, &track, event, track.last_frame);
                    record.end_reason = Some("merged".into());
                    record.merged_into = leaders[leader].clone();
                    out.records.push(record);
                    self.remember_end(&track, now);
                }
                continue;
            }
            let hit = !parts.is_empty();
            track.history.push_back(hit);
            while track.history.len() > self.rules.confirm_window {
                track.history.pop_front();
            }
            if hit {
                let region = union(parts, obs.prob, w);
                track.pixels = region.pixels.clone();
                track.region = region;
                track.last_seen = now;
                track.last_frame = obs.frame;
                track.last_utc = obs.utc;
            }
            if now - track.last_seen >= self.rules.cutoff && !hit {
                if let Some(event) = &track.event {
                    let mut record = self.record(RecordType::End, &track, event, track.last_frame);
                    record.end_reason = Some("gone".into());
                    out.records.push(record);
                    self.remember_end(&track, now);
                }
                continue;
            }
            if track.event.is_none() && !track.history.iter().any(|h| *h) {
                continue; // a candidate that did not come back
            }
            self.advance(&mut track, hit, obs, &mut out);
            keep_tracks.push(track);
        }
        for region in fresh {
            self.serial += 1;
            let mut track = Track {
                serial: self.serial,
                first_seen: now,
                first_frame: obs.frame,
                first_utc: obs.utc,
                last_seen: now,
                last_frame: obs.frame,
                last_utc: obs.utc,
                history: VecDeque::from([true]),
                pixels: region.pixels.clone(),
                region,
                event: None,
            };
            self.advance(&mut track, true, obs, &mut out);
            keep_tracks.push(track);
        }
        self.tracks = keep_tracks;
        self.ended.retain(|e| now - e.at < self.rules.cooldown);
        out
    }

    /// Confirmation, statistics and updates of a track seen (`hit`) or not at `obs`.
    fn advance(&mut self, track: &mut Track, hit: bool, obs: &Observation, out: &mut Decisions) {
        let now = obs.stream_time;
        if track.event.is_none() {
            let hits = track.history.iter().filter(|h| **h).count();
            let zones = self.areas.zones_of(&track.pixels);
            let zone_ok = self.rules.required_zones.is_empty()
                || zones.iter().any(|z| self.rules.required_zones.contains(z));
            let cooling = self.ended.iter().any(|e| {
                now - e.at < self.rules.cooldown
                    && track.pixels.iter().any(|&i| e.pixels.get(i as usize))
            });
            if hit
                && hits >= self.rules.confirm_hits
                && now - track.first_seen >= self.rules.min_duration
                && zone_ok
                && !cooling
            {
                self.events_started += 1;
                let id = format!(
                    "{}-{}-{}",
                    track.first_utc.format("%Y%m%dT%H%M%SZ"),
                    self.camera,
                    self.events_started
                );
                track.event = Some(OpenEvent {
                    id,
                    start_utc: track.first_utc,
                    start_time: track.first_seen,
                    start_frame: track.first_frame,
                    peak_area: 0,
                    max_prob: 0.0,
                    prob_sum: 0.0,
                    prob_count: 0,
                    zones: BTreeSet::new(),
                    last_update: now,
                });
                self.take_in(track, out);
                let event = track.event.as_ref().expect("just set");
                out.records
                    .push(self.record(RecordType::New, track, event, obs.frame));
            }
            return;
        }
        if hit {
            self.take_in(track, out);
        }
        let event = track.event.as_mut().expect("confirmed");
        if now - event.last_update >= self.rules.update_interval {
            event.last_update = now;
            let event = track.event.as_ref().expect("confirmed");
            out.records
                .push(self.record(RecordType::Update, track, event, obs.frame));
        }
    }

    /// Adds the track's current region to its event's statistics.
    fn take_in(&self, track: &mut Track, out: &mut Decisions) {
        let zones = self.areas.zones_of(&track.pixels);
        let region = &track.region;
        let event = track.event.as_mut().expect("an event");
        if region.area() > event.peak_area {
            event.peak_area = region.area();
            out.new_peaks.push(event.id.clone());
        }
        event.max_prob = event.max_prob.max(region.max_prob);
        event.prob_sum += f64::from(region.mean_prob);
        event.prob_count += 1;
        event.zones.extend(zones);
    }

    /// Keeps an ended event's pixels for `cooldown` seconds from `now` (when its end was
    /// decided).
    fn remember_end(&mut self, track: &Track, now: f64) {
        let (w, h) = self.grid;
        let mut pixels = PixelMask::new(w, h);
        for &i in &track.pixels {
            pixels.set(i as usize);
        }
        self.ended.push(Ended { pixels, at: now });
    }

    /// Ends every open event with `reason` (`"stopped"`, `"stream_lost"`, …) at its last
    /// sighting, and forgets the tracks.
    pub fn finish(&mut self, reason: &str) -> Vec<EventRecord> {
        let tracks = std::mem::take(&mut self.tracks);
        tracks
            .iter()
            .filter_map(|t| {
                let event = t.event.as_ref()?;
                let mut record = self.record(RecordType::End, t, event, t.last_frame);
                record.end_reason = Some(reason.to_string());
                Some(record)
            })
            .collect()
    }

    fn record(
        &self,
        kind: RecordType,
        track: &Track,
        event: &OpenEvent,
        frame: u64,
    ) -> EventRecord {
        let (gw, gh) = self.grid;
        let (fw, fh) = self.frame_size;
        let (sx, sy) = (fw as f64 / gw as f64, fh as f64 / gh as f64);
        let frame_pixels = (fw * fh) as f64;
        let to_frame = |n: usize| (n as f64 * sx * sy).round() as u64;
        let area_px = to_frame(track.region.area());
        let peak_px = to_frame(event.peak_area);
        let b = track.region.bbox;
        let ended = kind == RecordType::End;
        let end_time = track.last_seen;
        let duration = if ended {
            end_time - event.start_time
        } else {
            self.last_time.unwrap_or(end_time) - event.start_time
        };
        EventRecord {
            kind,
            id: event.id.clone(),
            camera: self.camera.clone(),
            start_utc: event.start_utc.to_rfc3339_opts(SecondsFormat::Millis, true),
            start_time: event.start_time,
            start_frame: event.start_frame,
            frame,
            end_utc: ended.then(|| track.last_utc.to_rfc3339_opts(SecondsFormat::Millis, true)),
            end_time: ended.then_some(end_time),
            end_frame: ended.then_some(track.last_frame),
            duration: duration.max(0.0),
            area_px,
            area_pct: 100.0 * area_px as f64 / frame_pixels,
            peak_area_px: peak_px,
            peak_area_pct: 100.0 * peak_px as f64 / frame_pixels,
            bbox: [
                f64::from(b[0]) * sx,
                f64::from(b[1]) * sy,
                (f64::from(b[2]) + 1.0) * sx,
                (f64::from(b[3]) + 1.0) * sy,
            ],
            centroid: [
                (track.region.centroid[0] + 0.5) * sx,
                (track.region.centroid[1] + 0.5) * sy,
            ],
            zones: event.zones.iter().cloned().collect(),
            max_prob: event.max_prob,
            mean_prob: (event.prob_sum / event.prob_count.max(1) as f64) as f32,
            end_reason: None,
            merged_into: None,
            suspended_until: None,
            marked_utc: None,
            learned_until: None,
        }
    }
}

fn overlaps(a: &[u32], b: &[u32]) -> bool {
    // Both sorted.
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Equal => return true,
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
        }
    }
    false
}

/// Several regions joined as one observation.
fn union(parts: Vec<Region>, prob: &[f32], width: usize) -> Region {
    if parts.len() == 1 {
        return parts.into_iter().next().expect("one part");
    }
    let mut pixels: Vec<u32> = parts.into_iter().flat_map(|r| r.pixels).collect();
    pixels.sort_unstable();
    pixels.dedup();
    super::regions::describe(pixels, prob, width)
}

/// Whether more than `fraction` of the pixels changed by more than `delta` (on a 0–1 scale)
/// between two frames of the same size (gray, 0–1): a NUC flash, a pan, a gain jump.
pub fn whole_frame_change(previous: &[f32], current: &[f32], delta: f32, fraction: f64) -> bool {
    if previous.len() != current.len() || current.is_empty() {
        return false;
    }
    let changed = previous
        .iter()
        .zip(current)
        .filter(|(a, b)| (*a - *b).abs() > delta)
        .count();
    changed as f64 > fraction * current.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use fgstp_metrics::MinLeakArea;

    const W: usize = 16;
    const H: usize = 8;

    /// A map with gas (0.9) in the given rectangles `[x0, y0, x1, y1]` (exclusive ends).
    fn map(rects: &[[usize; 4]]) -> Vec<f32> {
        let mut prob = vec![0.0; W * H];
        for r in rects {
            for y in r[1]..r[3] {
                for x in r[0]..r[2] {
                    prob[y * W + x] = 0.9;
                }
            }
        }
        prob
    }

    fn tracker(rules: EventRules) -> EventTracker {
        EventTracker::new(
            "cam1",
            rules,
            CameraAreas::new(&[], &[], (W * 10, H * 10), (W, H)),
            (W, H),
            (W * 10, H * 10),
        )
    }

    fn rules() -> EventRules {
        EventRules {
            min_area: MinLeakArea::Pixels(2),
            confirm_hits: 3,
            confirm_window: 5,
            min_duration: 1.0,
            cutoff: 2.0,
            cooldown: 5.0,
            update_interval: 1.0,
            ..EventRules::default()
        }
    }

    #[test]
    fn a_false_positive_ends_its_event_and_its_box_is_not_alerted_until_the_hold_ends() {
        let mut t = tracker(rules());
        let leak = map(&[[2, 2, 6, 6]]);
        let records = run(&mut t, &vec![leak.clone(); 4], 0);
        let new = records.iter().find(|r| r.kind == RecordType::New).unwrap();
        // Marked: the event ends now; its box (frame pixels) is held for 10 s of wall time.
        let end = t.end_event(&new.id, "false_positive").unwrap();
        assert_eq!(
            (end.kind, end.end_reason.as_deref()),
            (RecordType::End, Some("false_positive"))
        );
        assert!(t.end_event(&new.id, "false_positive").is_none());
        let hold_until = DateTime::from_timestamp(1_800_000_000 + 20, 0).unwrap();
        t.suppress(new.bbox, &new.zones, hold_until);
        // The same gas while held: nothing; gas elsewhere still is a leak.
        let held = run(&mut t, &vec![leak.clone(); 8], 4);
        assert!(held.is_empty(), "{held:?}");
        let elsewhere = run(&mut t, &vec![map(&[[2, 2, 6, 6], [10, 2, 14, 6]]); 4], 12);
        let news: Vec<_> = elsewhere
            .iter()
            .filter(|r| r.kind == RecordType::New)
            .collect();
        assert_eq!(news.len(), 1, "{elsewhere:?}");
        assert!(news[0].bbox[0] >= 100.0, "{:?}", news[0].bbox);
        // After the hold the box alerts again (frames 16… are at 1_800_000_016 s and on).
        let after = run(&mut t, &vec![map(&[[2, 2, 6, 6], [10, 2, 14, 6]]); 12], 16);
        assert!(
            after
                .iter()
                .any(|r| r.kind == RecordType::New && r.bbox[0] < 100.0),
            "{after:?}"
        );
    }

    #[test]
    fn a_false_positive_in_a_zone_is_held_in_that_zone_only() {
        use crate::run_config::watch::ZoneConfig;
        // Zone "left": x < 80 of a 160×80 frame (grid x < 8).
        let zone = ZoneConfig {
            name: "left".into(),
            polygon: vec![[0.0, 0.0], [80.0, 0.0], [80.0, 80.0], [0.0, 80.0]],
        };
        let areas = CameraAreas::new(&[zone], &[], (W * 10, H * 10), (W, H));
        let mut t = EventTracker::new("cam1", rules(), areas, (W, H), (W * 10, H * 10));
        let until = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        // A box across both halves, marked in zone "left": the right half still alerts.
        t.suppress([0.0, 0.0, 160.0, 80.0], &["left".to_string()], until);
        let records = run(&mut t, &vec![map(&[[2, 2, 14, 6]]); 6], 0);
        let new = records.iter().find(|r| r.kind == RecordType::New).unwrap();
        assert!(new.bbox[0] >= 80.0, "{:?}", new.bbox);
    }

    /// Feeds `maps` at 2 triplets per second; returns every record.
    fn run(t: &mut EventTracker, maps: &[Vec<f32>], start: u64) -> Vec<EventRecord> {
        let mut out = Vec::new();
        for (k, prob) in maps.iter().enumerate() {
            let frame = start + k as u64;
            let obs = Observation {
                frame,
                stream_time: frame as f64 * 0.5,
                utc: DateTime::from_timestamp(1_800_000_000 + frame as i64, 0).unwrap(),
                prob,
                whole_frame_change: false,
            };
            out.extend(t.observe(&obs).records);
        }
        out
    }

    fn kinds(records: &[EventRecord]) -> Vec<(RecordType, String)> {
        records.iter().map(|r| (r.kind, r.id.clone())).collect()
    }

    #[test]
    fn a_leak_is_confirmed_after_m_of_n_and_t_then_ends_after_the_cutoff() {
        let mut t = tracker(rules());
        let gas = map(&[[2, 2, 5, 5]]);
        let empty = map(&[]);
        // Seen at 0, 0.5, 1.0 s: 3 hits and 1 s → new at frame 2.
        let mut maps = vec![gas.clone(); 8];
        maps.extend(vec![empty.clone(); 6]);
        let records = run(&mut t, &maps, 0);
        let new = &records[0];
        assert_eq!(new.kind, RecordType::New);
        assert_eq!((new.start_frame, new.start_time, new.frame), (0, 0.0, 2));
        assert_eq!(new.area_px, 900, "9 grid pixels of 10×10 frame pixels");
        assert_eq!(new.bbox, [20.0, 20.0, 50.0, 50.0]);
        // Updates at most every second, then the end 2 s after the last sighting (frame 7).
        let end = records.last().unwrap();
        assert_eq!(end.kind, RecordType::End);
        assert_eq!(end.end_reason.as_deref(), Some("gone"));
        assert_eq!((end.end_frame, end.end_time), (Some(7), Some(3.5)));
        assert_eq!(end.duration, 3.5);
        let updates = records
            .iter()
            .filter(|r| r.kind == RecordType::Update)
            .count();
        assert!((2..=4).contains(&updates), "{updates} updates");
        assert!(
            records.iter().all(|r| r.id == new.id),
            "one leak, one event"
        );
    }

    #[test]
    fn flicker_below_m_of_n_and_short_leaks_raise_nothing() {
        let mut t = tracker(rules());
        let gas = map(&[[2, 2, 5, 5]]);
        let empty = map(&[]);
        // 2 of every 5: never 3 of the last 5.
        let pattern = [&gas, &empty, &empty, &gas, &empty];
        let maps: Vec<Vec<f32>> = (0..20).map(|k| pattern[k % 5].clone()).collect();
        assert!(run(&mut t, &maps, 0).is_empty());
        // A single pixel is below the minimum area.
        let speck = map(&[[8, 4, 9, 5]]);
        assert!(run(&mut t, &vec![speck; 10], 100).is_empty());
    }

    #[test]
    fn a_leak_that_comes_back_within_the_cooldown_is_not_a_new_alert() {
        let mut t = tracker(rules());
        let gas = map(&[[2, 2, 5, 5]]);
        let empty = map(&[]);
        let mut maps = vec![gas.clone(); 4];
        maps.extend(vec![empty.clone(); 5]); // ends at frame 3 + 2 s
        maps.extend(vec![gas.clone(); 6]); // back at 4.5 s: within 5 s of the end
        maps.extend(vec![empty.clone(); 5]);
        maps.extend(vec![empty.clone(); 12]); // cooldown over
        maps.extend(vec![gas.clone(); 6]);
        let records = run(&mut t, &maps, 0);
        let news: Vec<u64> = records
            .iter()
            .filter(|r| r.kind == RecordType::New)
            .map(|r| r.start_frame)
            .collect();
        assert_eq!(news.len(), 2, "{:?}", kinds(&records));
        // The leak back at frames 9–14 falls in the cooldown; the one from frame 32 is new.
        assert_eq!(news[1], 32, "{news:?}");
    }

    #[test]
    fn a_split_leak_keeps_its_id_and_merged_leaks_keep_the_older_one() {
        let mut t = tracker(rules());
        // One plume, then two pieces of it.
        let one = map(&[[2, 2, 8, 5]]);
        let split = map(&[[2, 2, 4, 5], [6, 2, 8, 5]]);
        let mut maps = vec![one.clone(); 4];
        maps.extend(vec![split.clone(); 4]);
        let records = run(&mut t, &maps, 0);
        assert_eq!(
            records.iter().filter(|r| r.kind == RecordType::New).count(),
            1,
            "{:?}",
            kinds(&records)
        );
        assert!(records.iter().all(|r| r.kind != RecordType::End));

        // Two leaks, the left one older; they grow into one.
        let mut t = tracker(rules());
        let left = map(&[[1, 1, 3, 3]]);
        let both = map(&[[1, 1, 3, 3], [10, 1, 12, 3]]);
        let merged = map(&[[1, 1, 12, 3]]);
        let mut maps = vec![left.clone(); 4];
        maps.extend(vec![both.clone(); 4]);
        maps.extend(vec![merged.clone(); 2]);
        let records = run(&mut t, &maps, 0);
        let news: Vec<&EventRecord> = records
            .iter()
            .filter(|r| r.kind == RecordType::New)
            .collect();
        assert_eq!(news.len(), 2, "{:?}", kinds(&records));
        let end = records
            .iter()
            .find(|r| r.kind == RecordType::End)
            .expect("the younger one ends");
        assert_eq!(end.id, news[1].id);
        assert_eq!(end.end_reason.as_deref(), Some("merged"));
        assert_eq!(end.merged_into.as_deref(), Some(news[0].id.as_str()));
    }

    #[test]
    fn a_whole_frame_change_is_more_than_the_fraction_of_pixels_moving_at_once() {
        let dark = vec![0.2f32; 100];
        let mut flash = vec![0.9f32; 100];
        assert!(whole_frame_change(&dark, &flash, 0.1, 0.5));
        // A plume over 30% of the frame is not one.
        flash[30..].fill(0.2);
        assert!(!whole_frame_change(&dark, &flash, 0.1, 0.5));
        // Another size (a camera that changed resolution) is not compared.
        assert!(!whole_frame_change(&dark, &dark[..50], 0.1, 0.5));
    }

    #[test]
    fn required_zones_ignore_masks_and_whole_frame_changes() {
        let zone = super::super::zones::ZoneConfig {
            name: "valve".into(),
            polygon: vec![[100.0, 0.0], [160.0, 0.0], [160.0, 80.0], [100.0, 80.0]],
        };
        let ignore = vec![vec![[0.0, 0.0], [40.0, 0.0], [40.0, 80.0], [0.0, 80.0]]];
        let areas = CameraAreas::new(&[zone], &ignore, (W * 10, H * 10), (W, H));
        let mut t = EventTracker::new(
            "cam1",
            EventRules {
                required_zones: vec!["valve".into()],
                ..rules()
            },
            areas,
            (W, H),
            (W * 10, H * 10),
        );
        // In the ignore mask, and outside the required zone: nothing.
        assert!(run(&mut t, &vec![map(&[[0, 0, 4, 4]]); 8], 0).is_empty());
        assert!(run(&mut t, &vec![map(&[[5, 0, 8, 4]]); 8], 20).is_empty());
        // In the zone: an event that lists it.
        let records = run(&mut t, &vec![map(&[[11, 2, 14, 5]]); 4], 40);
        assert_eq!(records[0].zones, vec!["valve"]);

        // A whole-frame change pauses decisions; the pause does not end the event.
        let mut t = tracker(EventRules {
            change_pause: 6,
            ..rules()
        });
        let gas = map(&[[2, 2, 5, 5]]);
        run(&mut t, &vec![gas.clone(); 4], 0);
        let empty = map(&[]);
        let obs = Observation {
            frame: 4,
            stream_time: 2.0,
            utc: DateTime::from_timestamp(1_800_000_004, 0).unwrap(),
            prob: &empty,
            whole_frame_change: true,
        };
        assert!(t.observe(&obs).paused);
        let records = run(&mut t, &vec![empty.clone(); 5], 5);
        assert!(records.is_empty(), "paused: {:?}", kinds(&records));
        assert!(t.has_open_events());
        let records = run(&mut t, &vec![gas.clone(); 2], 10);
        assert!(records.iter().all(|r| r.kind != RecordType::End));
        let stopped = t.finish("stopped");
        assert_eq!(stopped.len(), 1);
        assert_eq!(stopped[0].end_reason.as_deref(), Some("stopped"));
    }
}
