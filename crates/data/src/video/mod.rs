//! Camera video files: read frames on demand, write H.264 MP4.
//!
//! # Reading
//! The format comes from the file's first bytes, never from its extension:
//!
//! | container | codecs read | frames come out as |
//! | --- | --- | --- |
//! | MP4 / MOV (`ftyp`) | H.264, any profile of 8-bit progressive 4:2:0 (Baseline, Main, High; CAVLC or CABAC; B-frames) | `Rgb8` |
//! | AVI (`RIFF....AVI `) | MJPEG; uncompressed 8-bit grey, 8-bit palette, 24/32-bit BGR, 16-bit grey | `Rgb8`, `Luma8`, `Luma16` |
//! | FLIR `.seq` (`FFF\0` records) | raw uint16 (either byte order), PNG-compressed uint16 | `Luma16` |
//!
//! Everything else — HEVC/H.265, MPEG-4 Part 2, AV1 and other codecs in MP4, Matroska/WebM,
//! FLIR `.csq`/`.ats`, unknown bytes, a damaged header — is one [`VideoError`] that names the
//! file, what was found and an `ffmpeg` line converting it to something fgstp reads. A file
//! that breaks part-way gives its frames up to the break, then [`VideoError::Truncated`]
//! ("breaks after N of M frames").
//!
//! ```no_run
//! use fgstp_data::video::VideoReader;
//! # fn main() -> Result<(), fgstp_data::video::VideoError> {
//! let mut video = VideoReader::open("leak.mp4".as_ref())?;
//! let info = video.info().clone(); // container, codec, size, frames, fps, bit depth
//! for frame in video.frames() {
//!     let frame = frame?; // image::DynamicImage, display order
//! }
//! # Ok(()) }
//! ```
//!
//! # Memory and random access
//! [`VideoReader::frame`] decodes on demand. Reading forward decodes each frame once; the last
//! [`RING`] frames handed out are kept, so looking back a few frames (a sliding window of
//! triplets) costs nothing; any other jump restarts decoding at the preceding key frame
//! (H.264) or reads the frame directly (AVI, SEQ: every frame stands alone). Memory is that
//! ring, the decoder's reference pictures and the container index (a few bytes per frame):
//! it does not grow with the video's length.
//!
//! # Writing
//! [`VideoWriter`] writes H.264 (Constrained Baseline) in MP4 with the index first, exact
//! frame rates and even sizes (see [`mp4_mux`] for the choices).
//!
//! # Limits worth knowing
//! - MP4: the first video track is read; edit lists and the track's rotation matrix are
//!   ignored (every coded frame is a frame, pixels as coded); fragmented MP4 is refused.
//! - H.264 decoding is OpenH264's: 8-bit progressive 4:2:0 (interlaced, 4:2:2/4:4:4 and
//!   10-bit streams are refused with the conversion command).
//! - MJPEG frames without Huffman tables decode when they carry the usual `AVI1` marker.
//! - `FGSTP_H264_DEBUG=1` makes OpenH264 print its log to stderr.

mod avi;
mod error;
mod format;
mod h264;
mod h264_encode;
pub mod h264_live;
mod h264_track;
mod mp4;
pub mod mp4_mux;
mod seq;
mod sniff;
pub mod yuv;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::{DynamicImage, GrayImage};

pub use error::VideoError;
pub use format::{Codec, Container};
pub use mp4_mux::{VideoWriter, WriterOptions};
pub use yuv::{ColorSpace, Matrix, Yuv420};

use sniff::Sniffed;

/// Frames kept after they are handed out, for cheap look-backs.
pub const RING: usize = 8;

/// What a video holds, from its headers.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    pub container: Container,
    pub codec: Codec,
    pub width: u32,
    pub height: u32,
    /// Frame count from the container (a damaged file may deliver fewer).
    pub frames: usize,
    /// Frames per second; 0 when the file does not say (some FLIR recordings).
    pub fps: f64,
    /// 8 or 16.
    pub bit_depth: u8,
}

/// Reads a video's headers (and, for FLIR SEQ, each record's directory) without decoding.
pub fn probe(path: &Path) -> Result<VideoInfo, VideoError> {
    let (sniffed, head) = sniff::sniff_file(path)?;
    match sniffed {
        Sniffed::Mp4 => {
            let video = mp4::open(path)?;
            let header = h264_track::header(path, &video)?;
            Ok(VideoInfo {
                container: Container::Mp4,
                codec: Codec::H264,
                width: header.width,
                height: header.height,
                frames: video.samples.len(),
                fps: video.fps,
                bit_depth: 8,
            })
        }
        Sniffed::Avi => Ok(Source::Avi(avi::Avi::open(path)?).info()),
        Sniffed::FlirFff => Ok(Source::Seq(seq::Seq::open(path)?).info()),
        other => Err(sniff::refuse(path, other, &head)),
    }
}

enum Source {
    H264(Box<h264_track::H264Track>),
    Avi(avi::Avi),
    Seq(seq::Seq),
}

impl Source {
    fn info(&self) -> VideoInfo {
        match self {
            Self::H264(t) => VideoInfo {
                container: Container::Mp4,
                codec: Codec::H264,
                width: t.width,
                height: t.height,
                frames: t.len(),
                fps: 0.0,
                bit_depth: 8,
            },
            Self::Avi(a) => VideoInfo {
                container: Container::Avi,
                codec: a.codec(),
                width: a.width,
                height: a.height,
                frames: a.len(),
                fps: a.fps,
                bit_depth: a.bit_depth(),
            },
            Self::Seq(s) => VideoInfo {
                container: Container::FlirSeq,
                codec: s.codec(),
                width: s.width,
                height: s.height,
                frames: s.len(),
                fps: s.fps,
                bit_depth: 16,
            },
        }
    }
}

#[derive(Clone)]
enum Decoded {
    Yuv(Arc<Yuv420>),
    Image(Arc<DynamicImage>),
}

/// Frames of one video file, decoded on demand (see the module docs).
pub struct VideoReader {
    path: PathBuf,
    info: VideoInfo,
    /// Frames read from the file (AVI, SEQ) or fed to the decoder (H.264), re-reads included.
    decoded: usize,
    source: Source,
    color: ColorSpace,
    ring: VecDeque<(usize, Decoded)>,
}

impl VideoReader {
    pub fn open(path: &Path) -> Result<Self, VideoError> {
        let (sniffed, head) = sniff::sniff_file(path)?;
        let (source, fps) = match sniffed {
            Sniffed::Mp4 => {
                let video = mp4::open(path)?;
                let fps = video.fps;
                (
                    Source::H264(Box::new(h264_track::H264Track::open(path, video)?)),
                    fps,
                )
            }
            Sniffed::Avi => {
                let avi = avi::Avi::open(path)?;
                let fps = avi.fps;
                (Source::Avi(avi), fps)
            }
            Sniffed::FlirFff => {
                let seq = seq::Seq::open(path)?;
                let fps = seq.fps;
                (Source::Seq(seq), fps)
            }
            other => return Err(sniff::refuse(path, other, &head)),
        };
        let mut info = source.info();
        info.fps = fps;
        let color = match &source {
            Source::H264(t) => t.color,
            _ => ColorSpace::default(),
        };
        Ok(Self {
            path: path.to_path_buf(),
            info,
            decoded: 0,
            source,
            color,
            ring: VecDeque::with_capacity(RING + 1),
        })
    }

    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The frame shown at `index` (0-based, display order): `Rgb8` (H.264, MJPEG, RGB),
    /// `Luma8` (8-bit grey, grey MJPEG) or `Luma16` (16-bit grey, FLIR).
    pub fn frame(&mut self, index: usize) -> Result<DynamicImage, VideoError> {
        Ok(match self.decoded(index)? {
            Decoded::Yuv(yuv) => DynamicImage::ImageRgb8(yuv.to_rgb(self.color)),
            Decoded::Image(img) => (*img).clone(),
        })
    }

    /// For H.264 sources: the decoded 4:2:0 planes exactly as the decoder produced them
    /// (bit-exact across conforming decoders, so comparable with FFmpeg's), else `None`.
    pub fn frame_yuv(&mut self, index: usize) -> Result<Option<Arc<Yuv420>>, VideoError> {
        Ok(match self.decoded(index)? {
            Decoded::Yuv(yuv) => Some(yuv),
            Decoded::Image(_) => None,
        })
    }

    /// The luma plane of an H.264 frame (coded values), or the frame as 8-bit grey otherwise.
    pub fn frame_luma(&mut self, index: usize) -> Result<GrayImage, VideoError> {
        Ok(match self.decoded(index)? {
            Decoded::Yuv(yuv) => yuv.luma(),
            Decoded::Image(img) => img.to_luma8(),
        })
    }

    /// How many coded frames were decoded so far, re-decodes after a seek included: reading
    /// forward (with small look-backs) decodes each frame once, so this stays at the number of
    /// frames read.
    pub fn decode_count(&self) -> usize {
        self.decoded
    }

    /// The colour conversion used for H.264 frames (from the stream's VUI, else BT.601 limited).
    pub fn color_space(&self) -> ColorSpace {
        self.color
    }

    fn decoded(&mut self, index: usize) -> Result<Decoded, VideoError> {
        if index >= self.info.frames {
            return Err(VideoError::OutOfRange {
                path: self.path.clone(),
                index,
                frames: self.info.frames,
            });
        }
        if let Some((_, d)) = self.ring.iter().find(|(i, _)| *i == index) {
            return Ok(d.clone());
        }
        let decoded = match &mut self.source {
            Source::H264(t) => {
                let frame = t.frame(index);
                self.decoded = t.decoded;
                Decoded::Yuv(frame?)
            }
            Source::Avi(a) => {
                self.decoded += 1;
                Decoded::Image(Arc::new(a.frame(index)?))
            }
            Source::Seq(s) => {
                self.decoded += 1;
                Decoded::Image(Arc::new(s.frame(index)?))
            }
        };
        if self.ring.len() == RING {
            self.ring.pop_front();
        }
        self.ring.push_back((index, decoded.clone()));
        Ok(decoded)
    }

    /// Every frame in display order; stops after the first error (which it yields).
    pub fn frames(&mut self) -> Frames<'_> {
        Frames {
            reader: self,
            next: 0,
            failed: false,
        }
    }
}

/// Iterator over a video's frames, see [`VideoReader::frames`].
pub struct Frames<'a> {
    reader: &'a mut VideoReader,
    next: usize,
    failed: bool,
}

impl Iterator for Frames<'_> {
    type Item = Result<DynamicImage, VideoError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next >= self.reader.info.frames {
            return None;
        }
        let result = self.reader.frame(self.next);
        self.next += 1;
        self.failed = result.is_err();
        Some(result)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.reader.info.frames.saturating_sub(self.next);
        (0, Some(left))
    }
}
