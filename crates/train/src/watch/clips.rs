//! Event clips: an H.264 video of the analysed frames with the mask tinted, from `pre_capture`
//! seconds before an event's start to `post_capture` seconds after its end, and the retention
//! of snapshots and clips.
//!
//! Each camera keeps its last analysed frames in a ring bounded in seconds (`pre_capture` plus
//! the longest a confirmation can take, `min_duration` + one second), so memory does not grow
//! with the length of a watch. A clip is written to `clips/<id>.mp4.part` and renamed when it
//! is complete.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use fgstp_data::video::VideoWriter;
use image::{GrayImage, RgbImage};

use crate::outputs::overlay;

/// Frame rate of a clip when the analysed frames do not tell (fewer than two).
const FALLBACK_CLIP_FPS: f64 = 15.0;

/// An analysed frame kept for clips.
struct Kept {
    stream_time: f64,
    image: RgbImage,
    /// Probability on the decision grid.
    prob: Vec<f32>,
}

struct OpenClip {
    writer: VideoWriter,
    part: PathBuf,
    path: PathBuf,
    /// Stream time up to which frames are added (set when the event ends).
    until: Option<f64>,
    last_written: f64,
}

/// One camera's clips.
pub struct CameraClips {
    dir: PathBuf,
    pre: f64,
    post: f64,
    keep: f64,
    threshold: f32,
    grid: (usize, usize),
    ring: VecDeque<Kept>,
    open: BTreeMap<String, OpenClip>,
}

impl CameraClips {
    /// Clips under `dir` (`clips/`); frames tinted where the probability is ≥ `threshold`.
    pub fn new(dir: &Path, pre: f64, post: f64, min_duration: f64, threshold: f32) -> Self {
        Self {
            dir: dir.to_path_buf(),
            pre,
            post,
            keep: pre + min_duration + 1.0,
            threshold,
            grid: (1, 1),
            ring: VecDeque::new(),
            open: BTreeMap::new(),
        }
    }

    /// Takes in an analysed frame: kept in the ring and added to the open clips; clips whose
    /// post-capture is over are finished.
    pub fn frame(
        &mut self,
        stream_time: f64,
        image: &RgbImage,
        prob: &[f32],
        grid: (usize, usize),
    ) -> Result<()> {
        // Frames of another size (the camera changed resolution) cannot go into one video.
        if self
            .ring
            .back()
            .is_some_and(|k| k.image.dimensions() != image.dimensions())
        {
            self.ring.clear();
        }
        self.grid = grid;
        self.ring.push_back(Kept {
            stream_time,
            image: image.clone(),
            prob: prob.to_vec(),
        });
        while self
            .ring
            .front()
            .is_some_and(|k| stream_time - k.stream_time > self.keep)
        {
            self.ring.pop_front();
        }
        let tinted = tint(image, prob, grid, self.threshold);
        let mut done = Vec::new();
        for (id, clip) in &mut self.open {
            if clip.until.is_some_and(|u| stream_time > u) {
                done.push(id.clone());
                continue;
            }
            if stream_time > clip.last_written {
                clip.writer.push_rgb(&tinted)?;
                clip.last_written = stream_time;
            }
        }
        for id in done {
            self.finish(&id)?;
        }
        Ok(())
    }

    /// An event began (its first sighting at `start_time`): its clip starts with the kept frames
    /// from `pre_capture` seconds before.
    pub fn start(&mut self, id: &str, start_time: f64) -> Result<()> {
        let Some(last) = self.ring.back() else {
            return Ok(());
        };
        let (width, height) = last.image.dimensions();
        let fps = self.fps();
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!("{id}.mp4"));
        let part = self.dir.join(format!("{id}.mp4.part"));
        let mut writer = VideoWriter::create(&part, width, height, fps)
            .with_context(|| format!("cannot start the clip {}", path.display()))?;
        let mut last_written = f64::NEG_INFINITY;
        for kept in self
            .ring
            .iter()
            .filter(|k| k.stream_time >= start_time - self.pre)
        {
            writer.push_rgb(&tint(&kept.image, &kept.prob, self.grid, self.threshold))?;
            last_written = kept.stream_time;
        }
        self.open.insert(
            id.to_string(),
            OpenClip {
                writer,
                part,
                path,
                until: None,
                last_written,
            },
        );
        Ok(())
    }

    /// The event ended at `end_time`: its clip goes on for `post_capture` seconds.
    pub fn end(&mut self, id: &str, end_time: f64) {
        if let Some(clip) = self.open.get_mut(id) {
            clip.until = Some(end_time + self.post);
        }
    }

    /// Finishes every open clip (the stream ended or the watch stops).
    pub fn finish_all(&mut self) -> Result<()> {
        let ids: Vec<String> = self.open.keys().cloned().collect();
        for id in ids {
            self.finish(&id)?;
        }
        Ok(())
    }

    fn finish(&mut self, id: &str) -> Result<()> {
        if let Some(clip) = self.open.remove(id) {
            clip.writer
                .finish()
                .with_context(|| format!("cannot finish the clip {}", clip.path.display()))?;
            std::fs::rename(&clip.part, &clip.path)?;
        }
        Ok(())
    }

    /// The analysed frame rate, from the kept frames' times.
    fn fps(&self) -> f64 {
        let mut gaps: Vec<f64> = self
            .ring
            .iter()
            .zip(self.ring.iter().skip(1))
            .map(|(a, b)| b.stream_time - a.stream_time)
            .filter(|g| *g > 0.0)
            .collect();
        if gaps.is_empty() {
            return FALLBACK_CLIP_FPS;
        }
        gaps.sort_by(f64::total_cmp);
        (1.0 / gaps[gaps.len() / 2]).clamp(0.1, 240.0)
    }
}

/// `image` with the pixels whose probability (on `grid`, scaled to the frame) is ≥ `threshold`
/// tinted.
pub fn tint(image: &RgbImage, prob: &[f32], (gw, gh): (usize, usize), threshold: f32) -> RgbImage {
    let (fw, fh) = (image.width(), image.height());
    let mask = GrayImage::from_fn(fw, fh, |x, y| {
        let gx = (x as usize * gw / fw as usize).min(gw - 1);
        let gy = (y as usize * gh / fh as usize).min(gh - 1);
        image::Luma(
            [if prob.get(gy * gw + gx).is_some_and(|p| *p >= threshold) {
                255
            } else {
                0
            }],
        )
    });
    overlay(image, &mask)
}

/// Deletes snapshots and clips older than `days` (when > 0), then the oldest until they take at
/// most `gigabytes` (when > 0). Returns how many files went.
pub fn apply_retention(out: &Path, days: f64, gigabytes: f64) -> Result<usize> {
    let mut files: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
    for sub in ["snapshots", "clips"] {
        let Ok(entries) = std::fs::read_dir(out.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let meta = entry.metadata()?;
            if meta.is_file() {
                files.push((meta.modified()?, meta.len(), entry.path()));
            }
        }
    }
    files.sort();
    let mut removed = 0;
    let now = SystemTime::now();
    if days > 0.0 {
        let limit = Duration::from_secs_f64(days * 86_400.0);
        files.retain(|(modified, _, path)| {
            let old = now.duration_since(*modified).is_ok_and(|age| age > limit);
            if old && std::fs::remove_file(path).is_ok() {
                removed += 1;
            }
            !old
        });
    }
    if gigabytes > 0.0 {
        let limit = (gigabytes * 1e9) as u64;
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        for (_, len, path) in &files {
            if total <= limit {
                break;
            }
            if std::fs::remove_file(path).is_ok() {
                removed += 1;
                total -= len;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_removes_by_size_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let snaps = dir.path().join("snapshots");
        std::fs::create_dir_all(&snaps).unwrap();
        for (k, name) in ["a.png", "b.png", "c.png"].iter().enumerate() {
            std::fs::write(snaps.join(name), vec![0u8; 400]).unwrap();
            // Distinct modification times, oldest first.
            let t = SystemTime::now() - Duration::from_secs(100 - k as u64 * 10);
            let f = std::fs::File::options()
                .write(true)
                .open(snaps.join(name))
                .unwrap();
            f.set_modified(t).unwrap();
        }
        // 1200 bytes, at most 900 kept: the oldest goes.
        assert_eq!(apply_retention(dir.path(), 0.0, 900e-9).unwrap(), 1);
        assert!(!snaps.join("a.png").exists() && snaps.join("c.png").exists());
        // Older than 50 s (in days): b (80 s) goes, c (70 s) too.
        assert_eq!(
            apply_retention(dir.path(), 60.0 / 86_400.0, 0.0).unwrap(),
            2
        );
    }

    #[test]
    fn a_clip_spans_pre_capture_before_the_start_to_post_capture_after_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut clips = CameraClips::new(&dir.path().join("clips"), 1.0, 1.0, 0.5, 0.5);
        let image = RgbImage::new(32, 32);
        let prob = vec![0.9f32; 4];
        // 10 frames per second; the event starts at 3.0 s, is confirmed at 3.5 s, ends at 5.0 s.
        let mut written = 0;
        for k in 0..100 {
            let t = k as f64 / 10.0;
            clips.frame(t, &image, &prob, (2, 2)).unwrap();
            if k == 35 {
                clips.start("e1", 3.0).unwrap();
            }
            if k == 55 {
                clips.end("e1", 5.0);
            }
            if let Some(clip) = clips.open.get("e1") {
                written = ((clip.last_written - 2.0) * 10.0).round() as i64 + 1;
            }
        }
        // From 2.0 s to 6.0 s: 41 frames, and the file is complete.
        assert_eq!(written, 41);
        let path = dir.path().join("clips/e1.mp4");
        assert!(path.exists() && !dir.path().join("clips/e1.mp4.part").exists());
        let info = fgstp_data::video::probe(&path).unwrap();
        assert_eq!((info.frames, info.width, info.height), (41, 32, 32));
        assert!((info.fps - 10.0).abs() < 1e-6, "{}", info.fps);
    }
}
