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
use std::sync::{mpsc, Arc, Mutex};
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
    /// The encoded size: the frames', scaled down to what the encoder takes.
    size: (u32, u32),
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
        // Tinted once, and only when a clip takes the frame.
        let mut tinted = None;
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for (id, clip) in &mut self.open {
            if clip.until.is_some_and(|u| stream_time > u) {
                done.push(id.clone());
                continue;
            }
            if stream_time > clip.last_written {
                let tinted = tinted.get_or_insert_with(|| tint(image, prob, grid, self.threshold));
                match clip.writer.push_rgb(&fit(tinted, clip.size)) {
                    Ok(()) => clip.last_written = stream_time,
                    Err(e) => failed.push((id.clone(), anyhow::Error::new(e))),
                }
            }
        }
        let mut first_error = None;
        for (id, error) in failed {
            let error = self.abandon(&id, error);
            first_error.get_or_insert(error);
        }
        for id in done {
            if let Err(error) = self.finish(&id) {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// An event began (its first sighting at `start_time`): its clip starts with the kept frames
    /// from `pre_capture` seconds before.
    pub fn start(&mut self, id: &str, start_time: f64) -> Result<()> {
        let Some(last) = self.ring.back() else {
            return Ok(());
        };
        let (width, height) = last.image.dimensions();
        let path = self.dir.join(format!("{id}.mp4"));
        let Some(size) = clip_size(width, height) else {
            anyhow::bail!(
                "no clip {}: {width}x{height} frames are below the encoder's 16x16",
                path.display()
            );
        };
        let fps = self.fps();
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create the clips folder {}", self.dir.display()))?;
        let part = self.dir.join(format!("{id}.mp4.part"));
        let writer = VideoWriter::create(&part, size.0, size.1, fps)
            .with_context(|| format!("cannot start the clip {}", path.display()))?;
        self.open.insert(
            id.to_string(),
            OpenClip {
                writer,
                size,
                part,
                path,
                until: None,
                last_written: f64::NEG_INFINITY,
            },
        );
        let clip = self.open.get_mut(id).expect("just inserted");
        let mut written = Ok(());
        for kept in self
            .ring
            .iter()
            .filter(|k| k.stream_time >= start_time - self.pre)
        {
            let tinted = tint(&kept.image, &kept.prob, self.grid, self.threshold);
            written = clip.writer.push_rgb(&fit(&tinted, clip.size));
            if written.is_err() {
                break;
            }
            clip.last_written = kept.stream_time;
        }
        match written {
            Ok(()) => Ok(()),
            Err(e) => Err(self.abandon(id, anyhow::Error::new(e))),
        }
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
            let finished = clip
                .writer
                .finish()
                .map_err(anyhow::Error::new)
                .and_then(|()| Ok(std::fs::rename(&clip.part, &clip.path)?));
            if let Err(e) = finished {
                let _ = std::fs::remove_file(&clip.part);
                return Err(e.context(format!("cannot finish the clip {}", clip.path.display())));
            }
        }
        Ok(())
    }

    /// Drops a clip that could not be written (its partial file too), so that the other
    /// clips and the events go on; returns the error that names it.
    fn abandon(&mut self, id: &str, error: anyhow::Error) -> anyhow::Error {
        match self.open.remove(id) {
            Some(clip) => {
                drop(clip.writer);
                let _ = std::fs::remove_file(&clip.part);
                error.context(format!("the clip {} was dropped", clip.path.display()))
            }
            None => error,
        }
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

/// What the analysis hands a camera's clip thread, in order.
enum ClipCommand {
    Frame {
        stream_time: f64,
        image: RgbImage,
        prob: Vec<f32>,
        grid: (usize, usize),
    },
    Start {
        id: String,
        start_time: f64,
    },
    End {
        id: String,
        end_time: f64,
    },
    /// Finish every open clip, then answer.
    FinishAll(mpsc::SyncSender<()>),
}

/// Analysed frames that may wait for a camera's clip thread; when it falls further behind,
/// the analysis waits (and the camera's queue drops triplets, counted), so memory stays bounded.
const CLIP_QUEUE_FRAMES: usize = 32;

/// A camera's [`CameraClips`] on a thread of their own: a clip's start encodes its whole
/// pre-capture (seconds of frames) at once, which on the analysis thread held up the model
/// long enough for a real-time camera to drop triplets. Commands are carried out in the order
/// given, so the clips are the same as [`CameraClips`] writes; an error of the thread is
/// returned by the next call.
pub struct ClipWriter {
    commands: Option<mpsc::SyncSender<ClipCommand>>,
    thread: Option<std::thread::JoinHandle<()>>,
    error: Arc<Mutex<Option<anyhow::Error>>>,
}

impl ClipWriter {
    /// `clips` written on a new thread named after `camera`.
    pub fn spawn(camera: &str, mut clips: CameraClips) -> Result<Self> {
        let (commands, received) = mpsc::sync_channel::<ClipCommand>(CLIP_QUEUE_FRAMES);
        let error = Arc::new(Mutex::new(None));
        let failed = Arc::clone(&error);
        let thread = std::thread::Builder::new()
            .name(format!("clips-{camera}"))
            .spawn(move || {
                for command in received {
                    let done = match command {
                        ClipCommand::Frame {
                            stream_time,
                            image,
                            prob,
                            grid,
                        } => clips.frame(stream_time, &image, &prob, grid),
                        ClipCommand::Start { id, start_time } => clips.start(&id, start_time),
                        ClipCommand::End { id, end_time } => {
                            clips.end(&id, end_time);
                            Ok(())
                        }
                        ClipCommand::FinishAll(answer) => {
                            let done = clips.finish_all();
                            let _ = answer.send(());
                            done
                        }
                    };
                    if let Err(e) = done {
                        let mut first = failed.lock().unwrap_or_else(|e| e.into_inner());
                        first.get_or_insert(e);
                    }
                }
                // The analysis is gone (an error, a panic): what was written is kept.
                let _ = clips.finish_all();
            })
            .context("cannot start a clip thread")?;
        Ok(Self {
            commands: Some(commands),
            thread: Some(thread),
            error,
        })
    }

    /// Hands `command` over; an error the thread met since the last call comes back (the
    /// command is delivered all the same: a dropped clip does not stop the others).
    fn send(&self, command: ClipCommand) -> Result<()> {
        let earlier = self.error.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.commands
            .as_ref()
            .expect("commands are open until drop")
            .send(command)
            .map_err(|_| anyhow::anyhow!("the clip thread ended"))?;
        earlier.map_or(Ok(()), Err)
    }

    /// See [`CameraClips::frame`].
    pub fn frame(
        &self,
        stream_time: f64,
        image: &RgbImage,
        prob: &[f32],
        grid: (usize, usize),
    ) -> Result<()> {
        self.send(ClipCommand::Frame {
            stream_time,
            image: image.clone(),
            prob: prob.to_vec(),
            grid,
        })
    }

    /// See [`CameraClips::start`].
    pub fn start(&self, id: &str, start_time: f64) -> Result<()> {
        self.send(ClipCommand::Start {
            id: id.to_string(),
            start_time,
        })
    }

    /// See [`CameraClips::end`].
    pub fn end(&self, id: &str, end_time: f64) -> Result<()> {
        self.send(ClipCommand::End {
            id: id.to_string(),
            end_time,
        })
    }

    /// Finishes every open clip and waits until they are on disk; returns an error of the
    /// thread.
    pub fn finish_all(&self) -> Result<()> {
        let (answer, answered) = mpsc::sync_channel(1);
        self.send(ClipCommand::FinishAll(answer))?;
        answered
            .recv()
            .map_err(|_| anyhow::anyhow!("the clip thread ended"))?;
        match self.error.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for ClipWriter {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has finished the open clips.
        self.commands.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The largest frame OpenH264 encodes: 3840 on the long side, 2160 on the short one.
const MAX_CLIP_SIDES: (u32, u32) = (3840, 2160);

/// The size a `width`×`height` frame is encoded at in a clip: its own, or scaled down (the
/// aspect kept) to what the encoder takes; `None` below its 16×16.
fn clip_size(width: u32, height: u32) -> Option<(u32, u32)> {
    if width.min(height) < 16 {
        return None;
    }
    let (long, short) = (width.max(height), width.min(height));
    let scale = (f64::from(MAX_CLIP_SIDES.0) / f64::from(long))
        .min(f64::from(MAX_CLIP_SIDES.1) / f64::from(short))
        .min(1.0);
    let side = |v: u32| ((f64::from(v) * scale).floor() as u32).max(16);
    Some((side(width), side(height)))
}

/// `image` at `size` (unchanged when it already is; a camera that changed resolution while
/// a clip was open goes on at the clip's size).
fn fit(image: &RgbImage, size: (u32, u32)) -> std::borrow::Cow<'_, RgbImage> {
    if image.dimensions() == size {
        std::borrow::Cow::Borrowed(image)
    } else {
        std::borrow::Cow::Owned(fgstp_data::augment::resize_rgb_to(
            image,
            fgstp_data::ImageSize {
                width: size.0,
                height: size.1,
            },
        ))
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
            // A file renamed (a finished clip) or deleted since the listing is not in the way.
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            if let (true, Ok(modified)) = (meta.is_file(), meta.modified()) {
                files.push((modified, meta.len(), entry.path()));
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

    #[test]
    fn clips_take_frames_of_any_size_the_encoder_can_be_given() {
        assert_eq!(clip_size(320, 240), Some((320, 240)));
        assert_eq!(clip_size(4096, 2160), Some((3840, 2025)));
        assert_eq!(clip_size(3000, 4000), Some((2160, 2880)));
        assert_eq!(clip_size(4000, 20), Some((3840, 19)));
        assert_eq!(clip_size(4000, 40), Some((3840, 38)));
        assert_eq!(clip_size(15, 640), None);

        let dir = tempfile::tempdir().unwrap();
        let mut clips = CameraClips::new(&dir.path().join("clips"), 1.0, 0.5, 0.5, 0.5);
        let prob = vec![0.9f32; 4];
        // Too small for the encoder: no clip, an error that names it, and the clips go on.
        clips
            .frame(0.0, &RgbImage::new(8, 8), &prob, (2, 2))
            .unwrap();
        let err = format!("{:#}", clips.start("tiny", 0.0).unwrap_err());
        assert!(err.contains("tiny.mp4") && err.contains("16x16"), "{err}");
        assert!(clips.open.is_empty());
        // Wider than the encoder takes: scaled down. The camera then changes resolution while
        // the clip is open: its frames go in at the clip's size.
        for k in 1..4 {
            let t = f64::from(k) / 10.0;
            clips
                .frame(t, &RgbImage::new(4000, 40), &prob, (2, 2))
                .unwrap();
        }
        clips.start("wide", 0.1).unwrap();
        for k in 4..8 {
            let t = f64::from(k) / 10.0;
            clips
                .frame(t, &RgbImage::new(64, 48), &prob, (2, 2))
                .unwrap();
        }
        clips.end("wide", 0.5);
        clips.finish_all().unwrap();
        let info = fgstp_data::video::probe(&dir.path().join("clips/wide.mp4")).unwrap();
        assert_eq!((info.frames, info.width, info.height), (7, 3840, 38));
        assert!(!dir.path().join("clips/tiny.mp4.part").exists());
    }

    /// On its own thread the same clip comes out, and `finish_all` returns once the clip of an
    /// event still open is on disk; a clip that cannot be written is an error of a later call.
    #[test]
    fn the_clip_thread_writes_what_the_clips_would_write() {
        let dir = tempfile::tempdir().unwrap();
        let clips = CameraClips::new(&dir.path().join("clips"), 1.0, 1.0, 0.5, 0.5);
        let writer = ClipWriter::spawn("cam", clips).unwrap();
        let image = RgbImage::new(32, 32);
        let prob = vec![0.9f32; 4];
        for k in 0..100 {
            let t = k as f64 / 10.0;
            writer.frame(t, &image, &prob, (2, 2)).unwrap();
            if k == 35 {
                writer.start("e1", 3.0).unwrap();
            }
            if k == 55 {
                writer.end("e1", 5.0).unwrap();
            }
            if k == 80 {
                writer.start("e2", 8.0).unwrap();
            }
        }
        writer.finish_all().unwrap();
        let info = fgstp_data::video::probe(&dir.path().join("clips/e1.mp4")).unwrap();
        assert_eq!((info.frames, info.width, info.height), (41, 32, 32));
        // e2: from 7.0 s to the last frame, 9.9 s.
        let info = fgstp_data::video::probe(&dir.path().join("clips/e2.mp4")).unwrap();
        assert_eq!(info.frames, 30);

        // A folder where the clips folder should be cannot take a clip.
        let blocked = dir.path().join("blocked");
        std::fs::write(&blocked, b"a file").unwrap();
        let writer = ClipWriter::spawn(
            "cam",
            CameraClips::new(&blocked.join("clips"), 1.0, 1.0, 0.5, 0.5),
        )
        .unwrap();
        writer.frame(0.0, &image, &prob, (2, 2)).unwrap();
        writer.start("e3", 0.0).unwrap();
        let err = writer.finish_all().unwrap_err();
        assert!(format!("{err:#}").contains("blocked"), "{err:#}");
    }
}
