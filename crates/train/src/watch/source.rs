//! Where a camera's frames come from: a video file, or a folder that a camera's software fills.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use fgstp_data::natural_order::natural_cmp;
use fgstp_data::video::VideoReader;
use image::RgbImage;

/// Frame rate assumed when a source does not say (thermal cameras mostly record 30 frames/s).
pub const FALLBACK_FPS: f64 = 30.0;

/// One frame as it arrived.
pub struct SourceFrame {
    pub image: RgbImage,
    /// Counted from 0 in the stream.
    pub index: u64,
    /// Seconds into the stream.
    pub stream_time: f64,
}

/// A camera's stream of frames.
pub trait FrameSource: Send {
    /// The next frame; `None` when the stream has ended. Waits for it (a followed folder, a
    /// paced file).
    fn next_frame(&mut self, stop: &dyn Fn() -> bool) -> Result<Option<SourceFrame>>;
}

/// Opens `source`: a video file (the formats `fgstp infer` reads) or a folder of frames.
/// `realtime` paces a file at its frame rate; `follow` keeps watching a folder for new frames.
pub fn open(source: &str, realtime: bool, follow: bool) -> Result<Box<dyn FrameSource>> {
    let path = Path::new(source);
    if path.is_dir() {
        return Ok(Box::new(FolderSource::new(path, follow, realtime)));
    }
    if !path.exists() {
        bail!("{source}: no such file or folder (a camera source is a video file or a folder of frames)");
    }
    let reader = VideoReader::open(path).with_context(|| format!("cannot open {source}"))?;
    let fps = match reader.info().fps {
        f if f > 0.0 => f,
        _ => FALLBACK_FPS,
    };
    Ok(Box::new(VideoSource {
        reader,
        next: 0,
        fps,
        realtime,
        started: None,
    }))
}

struct VideoSource {
    reader: VideoReader,
    next: usize,
    fps: f64,
    realtime: bool,
    started: Option<Instant>,
}

impl FrameSource for VideoSource {
    fn next_frame(&mut self, stop: &dyn Fn() -> bool) -> Result<Option<SourceFrame>> {
        if self.next >= self.reader.info().frames {
            return Ok(None);
        }
        let index = self.next;
        let stream_time = index as f64 / self.fps;
        if self.realtime {
            let started = *self.started.get_or_insert_with(Instant::now);
            let due = started + Duration::from_secs_f64(stream_time);
            while Instant::now() < due && !stop() {
                std::thread::sleep((due - Instant::now()).min(Duration::from_millis(50)));
            }
        }
        let image = self
            .reader
            .frame(index)
            .with_context(|| format!("{}: frame {index}", self.reader.path().display()))?
            .to_rgb8();
        self.next += 1;
        Ok(Some(SourceFrame {
            image,
            index: index as u64,
            stream_time,
        }))
    }
}

/// A folder of frames (PNG, JPEG, TIFF) read in natural order of their names. With `follow`
/// it waits for new ones; a file is read once a later one exists or it has not changed for
/// half a second (a camera may still be writing it).
struct FolderSource {
    dir: PathBuf,
    follow: bool,
    realtime: bool,
    done: Vec<PathBuf>,
    next: u64,
    started: Instant,
}

impl FolderSource {
    fn new(dir: &Path, follow: bool, realtime: bool) -> Self {
        Self {
            dir: dir.to_path_buf(),
            follow,
            realtime,
            done: Vec::new(),
            next: 0,
            started: Instant::now(),
        }
    }

    fn pending(&self) -> Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .with_context(|| format!("cannot read {}", self.dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(
                        e.to_ascii_lowercase().as_str(),
                        "png" | "jpg" | "jpeg" | "tif" | "tiff"
                    )
                })
            })
            .collect();
        files.sort_by(|a, b| natural_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
        let last_done = self.done.last().cloned();
        Ok(files
            .into_iter()
            .filter(|p| {
                last_done.as_ref().is_none_or(|d| {
                    natural_cmp(&p.to_string_lossy(), &d.to_string_lossy())
                        == std::cmp::Ordering::Greater
                })
            })
            .collect())
    }
}

impl FrameSource for FolderSource {
    fn next_frame(&mut self, stop: &dyn Fn() -> bool) -> Result<Option<SourceFrame>> {
        loop {
            let pending = self.pending()?;
            let ready = match pending.as_slice() {
                [] => None,
                [only] if self.follow => {
                    let settled = std::fs::metadata(only)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > Duration::from_millis(500));
                    settled.then(|| only.clone())
                }
                [first, ..] => Some(first.clone()),
            };
            if let Some(path) = ready {
                let image = image::open(&path)
                    .with_context(|| format!("cannot read the frame {}", path.display()))?
                    .to_rgb8();
                self.done.push(path);
                if self.done.len() > 4 {
                    self.done.remove(0);
                }
                let index = self.next;
                self.next += 1;
                let stream_time = if self.realtime || self.follow {
                    self.started.elapsed().as_secs_f64()
                } else {
                    index as f64 / FALLBACK_FPS
                };
                return Ok(Some(SourceFrame {
                    image,
                    index,
                    stream_time,
                }));
            }
            if !self.follow || stop() {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
