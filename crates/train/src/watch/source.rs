//! Where a camera's frames come from: a video file, a folder that a camera's software fills, raw
//! frames on standard input (from any ffmpeg or GStreamer pipeline), an RTSP camera (H.264,
//! [`super::rtsp`]) or MJPEG over HTTP (`multipart/x-mixed-replace`, which many thermal cameras
//! serve). Live streams are reconnected with a capped exponential backoff when they break
//! ([`Reconnecting`]).
//!
//! 16-bit frames become the model's 8-bit range as `data.sixteen_bit` says: `"per-frame"` and
//! `{ fixed = … }` as in training; `"per-video"` — the whole video's range, unknown while it
//! streams — becomes a **running range** ([`RunningRange`]): widened at once to any frame's
//! minimum and maximum (nothing is clipped), narrowed towards each frame's by 5% per frame (a
//! range that shrank after a hot object left is taken in over about 60 frames).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use fgstp_data::decode::{raw_range, to_rgb8};
use fgstp_data::natural_order::natural_cmp;
use fgstp_data::video::VideoReader;
use fgstp_data::SixteenBit;
use image::{DynamicImage, RgbImage};

pub use super::live::redact;
use super::live::{LiveConnection, LivePicture};

/// Frame rate assumed when a source does not say (thermal cameras mostly record 30 frames/s).
pub const FALLBACK_FPS: f64 = 30.0;

/// One frame as it arrived.
#[derive(Debug)]
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

/// How a source's frames are read.
#[derive(Clone, Debug)]
pub struct SourceOptions {
    /// Pace files and folders at their frame rate.
    pub realtime: bool,
    /// Keep watching folders for new frames.
    pub follow: bool,
    /// The layout of raw frames on standard input (`-`).
    pub raw: Option<RawFormat>,
    pub sixteen_bit: SixteenBit,
    /// What a live source tells the engine (reconnections).
    pub live: LiveStatus,
}

/// A live source's connection state, shared with the engine.
#[derive(Clone, Debug, Default)]
pub struct LiveStatus {
    inner: std::sync::Arc<std::sync::Mutex<(u64, Option<String>)>>,
    damaged: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl LiveStatus {
    /// Reconnection attempts so far, and why the stream is down (`None` while connected).
    pub fn get(&self) -> (u64, Option<String>) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Frames dropped as damaged: undecodable, or waiting for the key frame after a loss.
    pub fn damaged(&self) -> u64 {
        self.damaged.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count_damaged(&self) {
        self.damaged
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn reconnecting(&self, reason: String) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.0 += 1;
        s.1 = Some(reason);
    }

    fn connected(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).1 = None;
    }
}

/// Whether `source` is a live camera (RTSP, MJPEG over HTTP): it never waits for the model.
pub fn is_live(source: &str) -> bool {
    ["rtsp://", "rtsps://", "http://", "https://"]
        .iter()
        .any(|scheme| source.starts_with(scheme))
}

/// Opens `source`: `-` (raw frames on standard input, `options.raw`), an `rtsp://` or `http://`
/// (MJPEG) camera, a folder of frames or a video file (the formats `fgstp infer` reads).
pub fn open(source: &str, options: &SourceOptions) -> Result<Box<dyn FrameSource>> {
    let path = Path::new(source);
    let range = RunningRange::new(options.sixteen_bit);
    if source == "-" {
        let Some(format) = options.raw else {
            bail!("a camera reading standard input (-) needs --raw WxH:FORMAT[@FPS], e.g. --raw 320x240:gray16le@30");
        };
        return Ok(Box::new(RawSource {
            format,
            input: Box::new(std::io::stdin()),
            next: 0,
            range,
        }));
    }
    if source.starts_with("http://") {
        return Ok(Box::new(Reconnecting::new(
            source.to_string(),
            |url| Ok(Box::new(MjpegStream::connect(url)?)),
            range,
            options.live.clone(),
        )));
    }
    if source.starts_with("rtsp://") {
        return Ok(Box::new(Reconnecting::new(
            source.to_string(),
            |url| Ok(Box::new(super::rtsp::RtspStream::connect(url)?)),
            range,
            options.live.clone(),
        )));
    }
    if source.starts_with("rtsps://") {
        bail!(
            "{}: RTSP over TLS is not supported; use the camera's rtsp:// stream",
            redact(source)
        );
    }
    if source.starts_with("https://") {
        bail!(
            "{}: HTTPS cameras are not supported; use the camera's http:// stream",
            redact(source)
        );
    }
    let (realtime, follow) = (options.realtime, options.follow);
    if path.is_dir() {
        return Ok(Box::new(FolderSource::new(
            path,
            follow,
            realtime,
            range,
            options.live.clone(),
        )));
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
        range,
    }))
}

struct VideoSource {
    reader: VideoReader,
    next: usize,
    fps: f64,
    realtime: bool,
    started: Option<Instant>,
    range: RunningRange,
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
        let frame = self
            .reader
            .frame(index)
            .with_context(|| format!("{}: frame {index}", self.reader.path().display()))?;
        let image = self.range.to_rgb8(&frame);
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
/// half a second (a camera may still be writing it). A followed folder's file that cannot be
/// read as a frame is skipped and counted as damaged (a camera's software may leave a broken
/// one behind); in a folder that is not followed it is an error.
struct FolderSource {
    dir: PathBuf,
    follow: bool,
    realtime: bool,
    done: Vec<PathBuf>,
    next: u64,
    started: Instant,
    range: RunningRange,
    live: LiveStatus,
}

impl FolderSource {
    fn new(
        dir: &Path,
        follow: bool,
        realtime: bool,
        range: RunningRange,
        live: LiveStatus,
    ) -> Self {
        Self {
            dir: dir.to_path_buf(),
            follow,
            realtime,
            done: Vec::new(),
            next: 0,
            started: Instant::now(),
            range,
            live,
        }
    }

    /// `path` is taken: later files come after it.
    fn mark_done(&mut self, path: PathBuf) {
        self.done.push(path);
        if self.done.len() > 4 {
            self.done.remove(0);
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
                let frame = match fgstp_data::decode::load_raw(&path) {
                    Ok(frame) => frame,
                    Err(e) if self.follow => {
                        eprintln!(
                            "{}: skipped, not readable as a frame: {e:#}",
                            path.display()
                        );
                        self.live.count_damaged();
                        self.mark_done(path);
                        // A gap in the numbers: no triplet spans the skipped frame.
                        self.next += 1;
                        continue;
                    }
                    Err(e) => {
                        return Err(e)
                            .with_context(|| format!("cannot read the frame {}", path.display()))
                    }
                };
                let image = self.range.to_rgb8(&frame);
                self.mark_done(path);
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

/// The layout of raw frames on standard input: `WxH:gray8|gray16le|rgb24[@FPS]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RawFormat {
    pub width: u32,
    pub height: u32,
    pub pixel: RawPixel,
    /// Frames per second of the stream (its timestamps); 30 when not given.
    pub fps: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawPixel {
    Gray8,
    Gray16Le,
    Rgb24,
}

impl RawFormat {
    fn frame_bytes(&self) -> usize {
        let bytes = match self.pixel {
            RawPixel::Gray8 => 1,
            RawPixel::Gray16Le => 2,
            RawPixel::Rgb24 => 3,
        };
        self.width as usize * self.height as usize * bytes
    }
}

impl std::str::FromStr for RawFormat {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        let usage = || {
            format!(
                "--raw {text:?}: expected WxH:FORMAT[@FPS], FORMAT gray8, gray16le or rgb24 \
                 (e.g. 320x240:gray16le@30)"
            )
        };
        let (size, rest) = text.split_once(':').with_context(usage)?;
        let (pixel, fps) = match rest.split_once('@') {
            Some((p, f)) => (p, Some(f)),
            None => (rest, None),
        };
        let (w, h) = size.split_once('x').with_context(usage)?;
        let (width, height): (u32, u32) = (
            w.parse().with_context(usage)?,
            h.parse().with_context(usage)?,
        );
        if width == 0 || height == 0 || width > 16384 || height > 16384 {
            bail!("{}: the size must be 1–16384 pixels each way", usage());
        }
        let pixel = match pixel {
            "gray8" => RawPixel::Gray8,
            "gray16le" => RawPixel::Gray16Le,
            "rgb24" => RawPixel::Rgb24,
            _ => bail!(usage()),
        };
        let fps = match fps {
            Some(f) => f
                .parse::<f64>()
                .ok()
                .filter(|f| *f > 0.0 && f.is_finite())
                .with_context(usage)?,
            None => FALLBACK_FPS,
        };
        Ok(Self {
            width,
            height,
            pixel,
            fps,
        })
    }
}

/// Raw frames back to back on a byte stream (standard input).
struct RawSource {
    format: RawFormat,
    input: Box<dyn Read + Send>,
    next: u64,
    range: RunningRange,
}

impl FrameSource for RawSource {
    fn next_frame(&mut self, _stop: &dyn Fn() -> bool) -> Result<Option<SourceFrame>> {
        let f = self.format;
        let mut bytes = vec![0u8; f.frame_bytes()];
        let mut filled = 0;
        while filled < bytes.len() {
            let n = self
                .input
                .read(&mut bytes[filled..])
                .context("cannot read standard input")?;
            if n == 0 {
                if filled == 0 {
                    return Ok(None);
                }
                bail!(
                    "standard input ended inside frame {} ({filled} of {} bytes): the stream is \
                     not {}x{} {:?}",
                    self.next,
                    bytes.len(),
                    f.width,
                    f.height,
                    f.pixel
                );
            }
            filled += n;
        }
        let frame = match f.pixel {
            RawPixel::Gray8 => DynamicImage::ImageLuma8(
                image::GrayImage::from_raw(f.width, f.height, bytes).context("frame size")?,
            ),
            RawPixel::Rgb24 => DynamicImage::ImageRgb8(
                RgbImage::from_raw(f.width, f.height, bytes).context("frame size")?,
            ),
            RawPixel::Gray16Le => {
                let values: Vec<u16> = bytes
                    .chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]))
                    .collect();
                DynamicImage::ImageLuma16(
                    image::ImageBuffer::from_raw(f.width, f.height, values)
                        .context("frame size")?,
                )
            }
        };
        let index = self.next;
        self.next += 1;
        Ok(Some(SourceFrame {
            image: self.range.to_rgb8(&frame),
            index,
            stream_time: index as f64 / f.fps,
        }))
    }
}

/// 16-bit frames to 8-bit RGB for a stream (see the module docs).
#[derive(Clone, Debug)]
pub struct RunningRange {
    mode: SixteenBit,
    range: Option<(f64, f64)>,
}

/// How far a running range moves towards a narrower frame range per frame.
const RANGE_ADAPTATION: f64 = 0.05;

impl RunningRange {
    pub fn new(mode: SixteenBit) -> Self {
        Self { mode, range: None }
    }

    /// The raw range `frame` is stretched over (16-bit frames only).
    pub fn update(&mut self, frame: &DynamicImage) -> Option<(u16, u16)> {
        let (lo, hi) = raw_range(frame)?;
        Some(match self.mode {
            SixteenBit::Fixed { min, max } => (min, max),
            SixteenBit::PerFrame => (lo, hi),
            SixteenBit::PerVideo => {
                let (lo, hi) = (f64::from(lo), f64::from(hi));
                let (a, b) = match self.range {
                    None => (lo, hi),
                    Some((a, b)) => (
                        if lo < a {
                            lo
                        } else {
                            a + (lo - a) * RANGE_ADAPTATION
                        },
                        if hi > b {
                            hi
                        } else {
                            b + (hi - b) * RANGE_ADAPTATION
                        },
                    ),
                };
                self.range = Some((a, b));
                (a.floor() as u16, b.ceil() as u16)
            }
        })
    }

    pub fn to_rgb8(&mut self, frame: &DynamicImage) -> RgbImage {
        let range = self.update(frame);
        to_rgb8(frame, range)
    }
}

/// Longest wait between two reconnection attempts: a camera that comes back is online again
/// within this, the connection and its first key frame.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// First wait after a stream breaks.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

type Connect = fn(&str) -> Result<Box<dyn LiveConnection>>;

/// A live camera (RTSP, MJPEG over HTTP), reconnected whenever its stream breaks or ends:
/// waits of 250 ms, doubling up to 5 s, until the stream is back or the watch stops. Frame
/// numbers go on across reconnections and damaged frames with a gap (so no triplet spans one);
/// the stream time is the time since the watch started.
struct Reconnecting {
    url: String,
    connect: Connect,
    range: RunningRange,
    live: LiveStatus,
    stream: Option<Box<dyn LiveConnection>>,
    next: u64,
    started: Instant,
    backoff: Duration,
}

impl Reconnecting {
    fn new(url: String, connect: Connect, range: RunningRange, live: LiveStatus) -> Self {
        Self {
            url,
            connect,
            range,
            live,
            stream: None,
            next: 0,
            started: Instant::now(),
            backoff: FIRST_BACKOFF,
        }
    }

    fn fail(&mut self, reason: String, stop: &dyn Fn() -> bool) {
        self.stream = None;
        self.live.reconnecting(reason);
        // A gap in the numbers: the next triplet starts after the break.
        self.next += 1;
        let until = Instant::now() + self.backoff;
        while Instant::now() < until && !stop() {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}

impl FrameSource for Reconnecting {
    fn next_frame(&mut self, stop: &dyn Fn() -> bool) -> Result<Option<SourceFrame>> {
        loop {
            if stop() {
                return Ok(None);
            }
            if self.stream.is_none() {
                match (self.connect)(&self.url) {
                    Ok(stream) => self.stream = Some(stream),
                    Err(e) => {
                        self.fail(format!("{e:#}"), stop);
                        continue;
                    }
                }
            }
            let stream = self.stream.as_mut().expect("connected");
            match stream.next_picture(stop) {
                Ok(Some(LivePicture::Image(frame))) => {
                    self.live.connected();
                    self.backoff = FIRST_BACKOFF;
                    let index = self.next;
                    self.next += 1;
                    return Ok(Some(SourceFrame {
                        image: self.range.to_rgb8(&frame),
                        index,
                        stream_time: self.started.elapsed().as_secs_f64(),
                    }));
                }
                // Skipped, and the numbers leave a gap.
                Ok(Some(LivePicture::Damaged)) => {
                    self.live.count_damaged();
                    self.next += 1;
                }
                Ok(None) if stop() => return Ok(None),
                Ok(None) => self.fail("the stream ended".into(), stop),
                Err(e) => self.fail(format!("{e:#}"), stop),
            }
        }
    }
}

impl LiveConnection for MjpegStream {
    fn next_picture(&mut self, stop: &dyn Fn() -> bool) -> Result<Option<LivePicture>> {
        Ok(self
            .next_jpeg(stop)?
            .map(|bytes| match image::load_from_memory(&bytes) {
                Ok(frame) => LivePicture::Image(frame),
                Err(_) => LivePicture::Damaged,
            }))
    }
}

/// One HTTP connection to an MJPEG stream.
struct MjpegStream {
    reader: std::io::BufReader<Box<dyn Read + Send + Sync>>,
    boundary: String,
}

impl MjpegStream {
    fn connect(url: &str) -> Result<Self> {
        let shown = redact(url);
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout_read(Duration::from_secs(5))
            .build();
        let response = match agent.get(url).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, _)) if code == 401 || code == 403 => {
                bail!("{shown}: the camera refused the credentials (HTTP {code})")
            }
            Err(ureq::Error::Status(code, _)) => bail!("{shown}: HTTP {code}"),
            // ureq's transport errors name the URL with its password: they are not passed on.
            Err(ureq::Error::Transport(t)) => bail!("{shown}: cannot connect ({})", t.kind()),
        };
        let content_type = response.content_type().to_string();
        let Some(boundary) = response
            .header("content-type")
            .and_then(|v| {
                v.split(';')
                    .find_map(|p| p.trim().strip_prefix("boundary="))
            })
            .map(|b| b.trim_matches('"').trim_start_matches("--").to_string())
        else {
            bail!("{shown}: not an MJPEG stream (Content-Type {content_type}, expected multipart/x-mixed-replace with a boundary)");
        };
        Ok(Self {
            reader: std::io::BufReader::new(response.into_reader()),
            boundary,
        })
    }

    /// The next part's bytes; `None` at the end of the stream (or when `stop` says so while
    /// looking for it).
    fn next_jpeg(&mut self, stop: &dyn Fn() -> bool) -> Result<Option<Vec<u8>>> {
        let marker = format!("--{}", self.boundary);
        let end_marker = format!("{marker}--");
        let mut line = Vec::new();
        // Up to the boundary line, past what the previous part left (a CRLF) or a preamble.
        let mut skipped = 0;
        loop {
            if stop() {
                return Ok(None);
            }
            if !read_line_bounded(&mut self.reader, &mut line)? {
                return Ok(None);
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            if text == marker {
                break;
            }
            if text == end_marker {
                return Ok(None);
            }
            skipped += line.len();
            if skipped > MAX_MJPEG_GAP {
                bail!(
                    "no MJPEG boundary ({marker}) in {} KiB of the stream",
                    MAX_MJPEG_GAP >> 10
                );
            }
        }
        // The part's headers.
        let mut length: Option<usize> = None;
        for _ in 0..=MAX_MJPEG_HEADERS {
            if !read_line_bounded(&mut self.reader, &mut line)? {
                return Ok(None);
            }
            let text = String::from_utf8_lossy(&line);
            let header = text.trim_end();
            if header.is_empty() {
                let Some(length) = length.filter(|n| *n <= 64 << 20) else {
                    bail!("an MJPEG part without a usable Content-Length");
                };
                return self.read_part_body(length, stop);
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().ok();
                }
            }
        }
        bail!("an MJPEG part with more than {MAX_MJPEG_HEADERS} header lines")
    }

    /// A part's `length` bytes, read a piece at a time: a stop is heeded between pieces, and a
    /// part still incomplete after [`MJPEG_PART_DEADLINE`] is a broken stream (reconnected),
    /// where a byte now and then (each read well within the connection's read timeout) would
    /// hold the camera, and a stop, for as long as the sender likes.
    fn read_part_body(
        &mut self,
        length: usize,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<Vec<u8>>> {
        let started = Instant::now();
        let mut bytes = vec![0u8; length];
        let mut filled = 0;
        while filled < length {
            if stop() {
                return Ok(None);
            }
            if started.elapsed() > MJPEG_PART_DEADLINE {
                bail!(
                    "an MJPEG part of {length} bytes still incomplete after {} s ({filled} \
                     received)",
                    MJPEG_PART_DEADLINE.as_secs()
                );
            }
            let end = (filled + MJPEG_PIECE).min(length);
            match self.reader.read(&mut bytes[filled..end])? {
                0 => bail!("the MJPEG stream ended inside a part ({filled} of {length} bytes)"),
                n => filled += n,
            }
        }
        Ok(Some(bytes))
    }
}

/// Longest a part's body may take to arrive.
const MJPEG_PART_DEADLINE: Duration = Duration::from_secs(30);
/// Bytes read at a time from a part's body.
const MJPEG_PIECE: usize = 64 << 10;

/// Longest line of a part's boundary or headers (a camera's are well under 1 KiB).
const MAX_MJPEG_LINE: usize = 8 << 10;
/// Header lines of one part, at most.
const MAX_MJPEG_HEADERS: usize = 64;
/// Bytes skipped at most while looking for the next boundary.
const MAX_MJPEG_GAP: usize = 1 << 20;

/// Reads one line (through its `\n`) into `line`, at most [`MAX_MJPEG_LINE`] bytes; `false` at
/// the end of the stream. A longer line is an error, not an ever-growing buffer.
fn read_line_bounded(reader: &mut impl std::io::BufRead, line: &mut Vec<u8>) -> Result<bool> {
    use std::io::BufRead;
    line.clear();
    let read = reader
        .by_ref()
        .take(MAX_MJPEG_LINE as u64)
        .read_until(b'\n', line)?;
    if read == MAX_MJPEG_LINE && line.last() != Some(&b'\n') {
        bail!(
            "a line of the MJPEG stream is longer than {} KiB",
            MAX_MJPEG_LINE >> 10
        );
    }
    Ok(read > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray16(values: &[u16]) -> DynamicImage {
        DynamicImage::ImageLuma16(
            image::ImageBuffer::from_raw(values.len() as u32, 1, values.to_vec()).unwrap(),
        )
    }

    #[test]
    fn a_running_range_widens_at_once_and_narrows_slowly() {
        let mut r = RunningRange::new(SixteenBit::PerVideo);
        assert_eq!(r.update(&gray16(&[7000, 8000])), Some((7000, 8000)));
        // A hot object: taken in at once, nothing clipped.
        assert_eq!(r.update(&gray16(&[7000, 12000])), Some((7000, 12000)));
        // It leaves: the top comes down by 5% of the gap per frame.
        assert_eq!(r.update(&gray16(&[7000, 8000])), Some((7000, 11800)));
        for _ in 0..200 {
            r.update(&gray16(&[7000, 8000]));
        }
        assert_eq!(r.update(&gray16(&[7000, 8000])), Some((7000, 8001)));
        // 8-bit frames have no range; the other modes follow data.sixteen_bit.
        let rgb = DynamicImage::ImageRgb8(RgbImage::new(2, 1));
        assert_eq!(r.update(&rgb), None);
        let mut fixed = RunningRange::new(SixteenBit::Fixed { min: 1, max: 9 });
        assert_eq!(fixed.update(&gray16(&[0, 100])), Some((1, 9)));
        let mut per_frame = RunningRange::new(SixteenBit::PerFrame);
        assert_eq!(per_frame.update(&gray16(&[5, 100])), Some((5, 100)));
    }

    #[test]
    fn credentials_never_show() {
        assert_eq!(
            redact("http://admin:s3cret@10.0.0.5:8080/video.mjpg"),
            "http://***@10.0.0.5:8080/video.mjpg"
        );
        assert_eq!(redact("http://10.0.0.5/x"), "http://10.0.0.5/x");
        assert_eq!(redact("rtsp://u:p@h"), "rtsp://***@h");
        assert_eq!(redact("rtsp://u@h/p"), "rtsp://***@h/p");
        // A typed password with '/' or '@' in it (not escaped) is hidden all the same.
        assert_eq!(redact("rtsp://u:pa/ss@h/p"), "rtsp://***@h/p");
        assert_eq!(
            redact("rtsp://u:p@ss@h:554/p?x=1"),
            "rtsp://***@h:554/p?x=1"
        );
        assert_eq!(redact("http://h/a?mail=x@y"), "http://h/a?mail=x@y");
    }

    #[test]
    fn a_followed_folder_skips_a_frame_that_does_not_decode_and_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        let frame = RgbImage::from_pixel(4, 4, image::Rgb([9, 9, 9]));
        frame.save(dir.path().join("f1.png")).unwrap();
        std::fs::write(dir.path().join("f2.png"), b"not a png").unwrap();
        frame.save(dir.path().join("f10.png")).unwrap();
        // The last file is read once it has not changed for half a second.
        let old = std::time::SystemTime::now() - Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(dir.path().join("f10.png"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let live = LiveStatus::default();
        let range = || RunningRange::new(SixteenBit::PerFrame);
        let mut followed = FolderSource::new(dir.path(), true, false, range(), live.clone());
        let stop_when_idle = || true;
        let first = followed.next_frame(&stop_when_idle).unwrap().unwrap();
        let next = followed.next_frame(&stop_when_idle).unwrap().unwrap();
        // f2 skipped: a gap in the numbers, so that no triplet spans it.
        assert_eq!((first.index, next.index), (0, 2));
        assert_eq!(live.damaged(), 1);
        assert!(followed.next_frame(&stop_when_idle).unwrap().is_none());
        // A folder that is not followed stops at it, naming it.
        let mut recorded =
            FolderSource::new(dir.path(), false, false, range(), LiveStatus::default());
        recorded.next_frame(&stop_when_idle).unwrap().unwrap();
        let err = format!("{:#}", recorded.next_frame(&stop_when_idle).unwrap_err());
        assert!(err.contains("f2.png"), "{err}");
    }

    fn mjpeg(bytes: Vec<u8>) -> MjpegStream {
        MjpegStream {
            reader: std::io::BufReader::new(Box::new(std::io::Cursor::new(bytes))),
            boundary: "frame".into(),
        }
    }

    #[test]
    fn an_mjpeg_stream_is_read_part_by_part_with_bounded_lines() {
        let never = || false;
        let mut good = b"preamble\r\n--frame\r\nContent-Type: image/jpeg\r\n".to_vec();
        good.extend(b"Content-Length: 3\r\n\r\nabc\r\n--frame--\r\n");
        let mut stream = mjpeg(good.clone());
        assert_eq!(stream.next_jpeg(&never).unwrap().unwrap(), b"abc");
        assert!(stream.next_jpeg(&never).unwrap().is_none());
        // Asked to stop while looking for a boundary.
        assert!(mjpeg(good).next_jpeg(&|| true).unwrap().is_none());
        // A line without end, lines without a boundary, endless headers: errors, not memory.
        let endless_line = vec![b'x'; 64 << 10];
        let err = mjpeg(endless_line).next_jpeg(&never).unwrap_err();
        assert!(err.to_string().contains("longer than 8 KiB"), "{err}");
        let no_boundary = b"noise\r\n".repeat(200_000);
        let err = mjpeg(no_boundary).next_jpeg(&never).unwrap_err();
        assert!(err.to_string().contains("no MJPEG boundary"), "{err}");
        let mut headers = b"--frame\r\n".to_vec();
        headers.extend(b"X-Junk: 1\r\n".repeat(100));
        let err = mjpeg(headers).next_jpeg(&never).unwrap_err();
        assert!(err.to_string().contains("header lines"), "{err}");
        // A part cut off is an error naming how much came.
        let cut = b"--frame\r\nContent-Length: 10\r\n\r\nabc".to_vec();
        let err = mjpeg(cut).next_jpeg(&never).unwrap_err();
        assert!(err.to_string().contains("3 of 10 bytes"), "{err}");
    }

    /// Hands out one byte per read, as a camera (or anyone) trickling a part would.
    struct Trickle {
        bytes: std::io::Cursor<Vec<u8>>,
        reads: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    impl std::io::Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let n = buf.len().min(1);
            self.bytes.read(&mut buf[..n])
        }
    }

    #[test]
    fn a_stop_is_heeded_inside_a_trickled_part() {
        let mut part = b"--frame\r\nContent-Length: 100000\r\n\r\n".to_vec();
        part.extend(vec![0u8; 100_000]);
        let reads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut stream = MjpegStream {
            reader: std::io::BufReader::new(Box::new(Trickle {
                bytes: std::io::Cursor::new(part),
                reads: reads.clone(),
            })),
            boundary: "frame".into(),
        };
        // Asked to stop once the body has begun: it returns without the other 99 900 bytes.
        let count = || reads.load(std::sync::atomic::Ordering::Relaxed);
        let stop = || count() > 200;
        assert!(stream.next_jpeg(&stop).unwrap().is_none());
        assert!(count() < 300, "{} reads", count());
    }

    #[test]
    fn raw_frames_are_read_back_to_back_and_a_cut_frame_is_an_error() {
        let format: RawFormat = "2x1:gray16le@10".parse().unwrap();
        assert_eq!((format.width, format.height, format.fps), (2, 1, 10.0));
        for bad in ["2x1", "0x1:gray8", "2x1:yuv", "2x1:gray8@0", "ax1:gray8"] {
            assert!(bad.parse::<RawFormat>().is_err(), "{bad}");
        }
        let mut bytes = Vec::new();
        for v in [100u16, 200, 100, 300] {
            bytes.extend(v.to_le_bytes());
        }
        bytes.push(7); // a cut-off third frame
        let mut source = RawSource {
            format,
            input: Box::new(std::io::Cursor::new(bytes)),
            next: 0,
            range: RunningRange::new(SixteenBit::PerFrame),
        };
        let never = || false;
        let first = source.next_frame(&never).unwrap().unwrap();
        assert_eq!((first.index, first.stream_time), (0, 0.0));
        assert_eq!(first.image.get_pixel(1, 0)[0], 255);
        let second = source.next_frame(&never).unwrap().unwrap();
        assert_eq!((second.index, second.stream_time), (1, 0.1));
        let err = source.next_frame(&never).unwrap_err().to_string();
        assert!(err.contains("inside frame 2 (1 of 4 bytes)"), "{err}");
    }
}
