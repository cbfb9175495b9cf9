//! A scene whose frames are one video file instead of a folder of images.
//!
//! ```text
//! <scene>/video.mp4                 (any name `video.*`: the format is read from the bytes)
//! <scene>/masks/frame_00001.png     (optional subset; 1-based, zero-padded like ffmpeg's %05d)
//! ```
//!
//! Frame *i* (0-based) of the video is called `frame_%05d` of *i* + 1, the name
//! `ffmpeg -i video.mp4 images/frame_%05d.png` and `fgstp frames` give the file of that frame, so
//! a mask drawn on an extracted frame fits the video as is.
//!
//! # Decoding on demand, in bounded memory
//! Frames are decoded when asked for. The readers and recently decoded frames of all video
//! scenes of a split live in one [`DecodePool`]: at most [`DecodePool::MAX_IDLE_READERS`] idle
//! readers (each holding an open file, a decoder and a ring of [`crate::video::RING`] frames) and
//! at most [`DecodePool::MAX_FRAMES`] decoded frames (and [`DecodePool::MAX_BYTES`]), least
//! recently used first out. Nothing grows with a video's length except the container index (a
//! few bytes per frame) and the scene's frame list.
//!
//! One thread at a time decodes a given video (H.264 decodes in order anyway); others wait
//! for it, then usually find their frame in the pool. A request a little ahead of the reader
//! (up to [`WALK`] frames) decodes forward and keeps every frame on the way, which is what
//! the triplet window and the parallel frame loading of a batch ask for next; anything else
//! is a seek (H.264: restart at the preceding key frame; AVI, SEQ: read that frame alone).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use image::{ColorType, DynamicImage};

use crate::decode::raw_range;
use crate::error::{DataError, Result};
use crate::video::{Codec, VideoError, VideoInfo, VideoReader};

/// The file stem that marks a scene's video: `video.mp4`, `video.avi`, `video.seq`, ….
pub const VIDEO_STEM: &str = "video";

/// A request at most this many frames ahead of the reader decodes forward and keeps the
/// frames on the way; further ahead, the reader seeks.
pub const WALK: usize = 32;

/// The name of frame `index` (0-based) of a video: `frame_00001` for index 0.
pub fn frame_stem(index: usize) -> String {
    format!("frame_{:05}", index + 1)
}

/// The 0-based frame index a mask or frame stem names (`frame_00001` → 0); `None` unless the
/// stem is exactly what [`frame_stem`] writes.
pub fn frame_index(stem: &str) -> Option<usize> {
    let digits = stem.strip_prefix("frame_")?;
    let number: usize = digits.parse().ok()?;
    let index = number.checked_sub(1)?;
    (frame_stem(index) == stem).then_some(index)
}

/// The video file of a scene folder (a file whose stem is `video`), if it has one. Two of
/// them are an error: which one is meant cannot be guessed.
pub fn find_video(dir: &Path) -> Result<Option<PathBuf>> {
    let mut found: Option<PathBuf> = None;
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| DataError::io(dir, e))?.path();
        let is_video = path
            .file_stem()
            .is_some_and(|s| s.eq_ignore_ascii_case(VIDEO_STEM))
            && path.extension().is_some()
            && path.is_file();
        if !is_video {
            continue;
        }
        if let Some(first) = &found {
            let (a, b) = if first < &path {
                (first.clone(), path)
            } else {
                (path, first.clone())
            };
            return Err(DataError::TwoVideos { path: a, other: b });
        }
        found = Some(path);
    }
    Ok(found)
}

/// The pixel format frames of `info` come out in (for listings; MJPEG may also be grey).
pub fn color_of(info: &VideoInfo) -> ColorType {
    match info.codec {
        Codec::Gray8 => ColorType::L8,
        Codec::Gray16 | Codec::FlirRaw | Codec::FlirPng => ColorType::L16,
        Codec::H264 | Codec::Mjpeg | Codec::Bgr => ColorType::Rgb8,
    }
}

/// Readers and decoded frames shared by the video scenes of a split (see the module docs).
#[derive(Default)]
pub struct DecodePool {
    readers: Mutex<Vec<IdleReader>>,
    frames: Mutex<FrameCache>,
}

struct IdleReader {
    video: usize,
    /// The frame after the last one this reader handed out.
    next: usize,
    reader: VideoReader,
}

#[derive(Default)]
struct FrameCache {
    entries: HashMap<(usize, usize), Cached>,
    bytes: usize,
    clock: u64,
}

struct Cached {
    used: u64,
    image: Arc<DynamicImage>,
}

/// A poisoned lock only means another thread panicked mid-update of a cache; what it holds is
/// still consistent enough to use (at worst a frame is decoded again).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl DecodePool {
    /// Idle readers kept (the rest are closed).
    pub const MAX_IDLE_READERS: usize = 8;
    /// Decoded frames kept: enough for an evaluation batch of 16 triplets (18 frames), the
    /// overlays that trail them and a training batch's frames, with room to spare.
    pub const MAX_FRAMES: usize = 96;
    /// …and at most this many bytes of them (large frames keep fewer).
    pub const MAX_BYTES: usize = 256 << 20;

    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn cached(&self, video: usize, index: usize) -> Option<Arc<DynamicImage>> {
        let mut cache = lock(&self.frames);
        cache.clock += 1;
        let now = cache.clock;
        let entry = cache.entries.get_mut(&(video, index))?;
        entry.used = now;
        Some(Arc::clone(&entry.image))
    }

    fn keep(&self, video: usize, index: usize, image: Arc<DynamicImage>) {
        let mut cache = lock(&self.frames);
        cache.clock += 1;
        let used = cache.clock;
        let bytes = image.as_bytes().len();
        if let Some(old) = cache.entries.insert((video, index), Cached { used, image }) {
            cache.bytes -= old.image.as_bytes().len();
        }
        cache.bytes += bytes;
        while cache.entries.len() > Self::MAX_FRAMES
            || (cache.bytes > Self::MAX_BYTES && cache.entries.len() > 1)
        {
            let oldest = *cache
                .entries
                .iter()
                .min_by_key(|(_, c)| c.used)
                .map(|(k, _)| k)
                .expect("not empty");
            let gone = cache.entries.remove(&oldest).expect("present");
            cache.bytes -= gone.image.as_bytes().len();
        }
    }

    fn forget(&self, video: usize) {
        lock(&self.readers).retain(|r| r.video != video);
        let mut cache = lock(&self.frames);
        let mut freed = 0;
        cache.entries.retain(|&(v, _), c| {
            if v == video {
                freed += c.image.as_bytes().len();
            }
            v != video
        });
        cache.bytes -= freed;
    }

    fn take_reader(&self, video: usize) -> Option<(VideoReader, usize)> {
        let mut readers = lock(&self.readers);
        let at = readers.iter().rposition(|r| r.video == video)?;
        let r = readers.remove(at);
        Some((r.reader, r.next))
    }

    fn put_reader(&self, video: usize, next: usize, reader: VideoReader) {
        let mut readers = lock(&self.readers);
        readers.push(IdleReader {
            video,
            next,
            reader,
        });
        if readers.len() > Self::MAX_IDLE_READERS {
            readers.remove(0);
        }
    }

    /// Decoded frames held right now (for tests and measurements).
    pub fn frames_held(&self) -> usize {
        lock(&self.frames).entries.len()
    }

    /// Idle readers held right now.
    pub fn readers_held(&self) -> usize {
        lock(&self.readers).len()
    }
}

/// The frames of one video file, decoded on demand through a [`DecodePool`].
pub struct VideoFrames {
    path: PathBuf,
    info: VideoInfo,
    /// Unique id of this video in its pool.
    id: usize,
    pool: Arc<DecodePool>,
    /// Held while a reader of this video decodes.
    decoding: Mutex<()>,
    decoded: AtomicUsize,
}

impl std::fmt::Debug for VideoFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoFrames")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Drop for VideoFrames {
    fn drop(&mut self) {
        self.pool.forget(self.id);
    }
}

impl VideoFrames {
    /// Opens `path` (headers only: container, codec, size, frame count, rate).
    pub fn open(path: &Path, pool: Arc<DecodePool>) -> Result<Self> {
        static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
        let reader = VideoReader::open(path)?;
        let info = reader.info().clone();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        pool.put_reader(id, 0, reader);
        Ok(Self {
            path: path.to_path_buf(),
            info,
            id,
            pool,
            decoding: Mutex::new(()),
            decoded: AtomicUsize::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// The pool this video decodes through (shared by the scenes of a split).
    pub fn pool(&self) -> &DecodePool {
        &self.pool
    }

    pub fn len(&self) -> usize {
        self.info.frames
    }

    pub fn is_empty(&self) -> bool {
        self.info.frames == 0
    }

    /// `H.264 MP4, 30 fps` and the like, for listings.
    pub fn describe(&self) -> String {
        let fps = if self.info.fps > 0.0 {
            // 30 stays "30", 30000/1001 becomes "29.97".
            format!("{} fps", (self.info.fps * 100.0).round() / 100.0)
        } else {
            "no frame rate".into()
        };
        format!("{} {}, {fps}", self.info.codec, self.info.container)
    }

    /// Coded frames the decoders of this video went through so far (seeks included): reading
    /// forward, with small look-backs, keeps it at the number of frames read.
    pub fn decode_count(&self) -> usize {
        self.decoded.load(Ordering::Relaxed)
    }

    /// Frame `index` (0-based) as decoded: `Rgb8`, `Luma8` or `Luma16`.
    pub fn frame(&self, index: usize) -> Result<Arc<DynamicImage>> {
        if index >= self.info.frames {
            return Err(VideoError::OutOfRange {
                path: self.path.clone(),
                index,
                frames: self.info.frames,
            }
            .into());
        }
        if let Some(image) = self.pool.cached(self.id, index) {
            return Ok(image);
        }
        let _decoding = lock(&self.decoding);
        // Whoever held the lock before may have decoded it.
        if let Some(image) = self.pool.cached(self.id, index) {
            return Ok(image);
        }
        let (mut reader, next) = match self.pool.take_reader(self.id) {
            Some(r) => r,
            None => (VideoReader::open(&self.path)?, 0),
        };
        let before = reader.decode_count();
        // H.264 decodes the frames on the way anyway; AVI and SEQ frames stand alone.
        let walk = self.info.codec == Codec::H264 && next <= index && index - next < WALK;
        let first = if walk { next } else { index };
        let mut result = Ok(None);
        for i in first..=index {
            match reader.frame(i) {
                Ok(image) => {
                    let image = Arc::new(image);
                    self.pool.keep(self.id, i, Arc::clone(&image));
                    result = Ok(Some(image));
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.decoded
            .fetch_add(reader.decode_count() - before, Ordering::Relaxed);
        self.pool.put_reader(self.id, index + 1, reader);
        Ok(result?.expect("the loop ran at least once"))
    }

    /// Min and max over every pixel of the first `frames` frames of a 16-bit video (all of
    /// them, unless the scene was cut short at a break), `None` for 8-bit ones. Reads them
    /// once, in order, with a reader of its own (see [`crate::SixteenBit::PerVideo`]).
    pub fn raw_range(&self, frames: usize) -> Result<Option<(u16, u16)>> {
        if self.info.bit_depth != 16 {
            return Ok(None);
        }
        let mut reader = VideoReader::open(&self.path)?;
        let mut range: Option<(u16, u16)> = None;
        for frame in reader.frames().take(frames) {
            if let Some((lo, hi)) = raw_range(&frame?) {
                range = Some(range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
            }
        }
        self.decoded
            .fetch_add(reader.decode_count(), Ordering::Relaxed);
        Ok(range)
    }

    /// Decodes every frame once, in order (a damaged file shows up only then); `progress` is
    /// called once per frame.
    pub fn verify(&self, progress: &(dyn Fn() + Sync)) -> Result<()> {
        let mut reader = VideoReader::open(&self.path)?;
        for frame in reader.frames() {
            frame?;
            progress();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_names_are_one_based_and_zero_padded_like_ffmpeg() {
        assert_eq!(frame_stem(0), "frame_00001");
        assert_eq!(frame_stem(99_999), "frame_100000");
        assert_eq!(frame_index("frame_00001"), Some(0));
        assert_eq!(frame_index("frame_00120"), Some(119));
        assert_eq!(frame_index("frame_100000"), Some(99_999));
        for bad in [
            "frame_00000",
            "frame_1",
            "frame_0001",
            "frame_000001",
            "00001",
            "frame_0000a",
            "frame_+0001",
        ] {
            assert_eq!(frame_index(bad), None, "{bad}");
        }
    }
}
