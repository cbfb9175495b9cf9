//! Frames of an H.264 track in MP4, on demand, in display order.
//!
//! Samples are fed to the decoder in decode order; each decoded picture carries its sample's
//! number, so it is placed by the container's composition time, whatever order OpenH264 hands
//! pictures out in. Pictures decoded ahead of the one asked for wait in `pending` (at most the
//! stream's reorder depth). A request behind the decoder, or far ahead of it, restarts at the
//! latest sync sample (IDR) that precedes it in both decode and display order.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::VideoError;
use super::h264::{self, AvcConfig, Decoder, Picture, Sps};
use super::mp4::{codec_name, Mp4Video, Sample};
use super::yuv::{ColorSpace, Yuv420};

/// More decoded-but-not-yet-shown pictures than any conforming stream needs (the DPB holds 16).
const MAX_PENDING: usize = 32;

pub(crate) struct H264Track {
    path: PathBuf,
    container: &'static str,
    file: File,
    file_len: u64,
    samples: Vec<Sample>,
    /// display index -> sample (decode) index, and back.
    sample_of: Vec<usize>,
    display_of: Vec<usize>,
    config: AvcConfig,
    pub color: ColorSpace,
    pub width: u32,
    pub height: u32,
    decoder: Option<Decoder>,
    /// Next sample (decode order) to feed.
    next_sample: usize,
    /// The decoder was drained after the last sample.
    drained: bool,
    /// Samples fed to a decoder so far (re-decodes after a seek count again).
    pub decoded: usize,
    /// Decoded pictures by display index, waiting to be asked for.
    pending: BTreeMap<usize, Arc<Yuv420>>,
    /// Display indices below this are never kept (already handed out or skipped).
    keep_from: usize,
    /// Set when the stream breaks: frames at or after `decoded` cannot be produced.
    broken: Option<(usize, String)>,
    annex_b: Vec<u8>,
    sample_buf: Vec<u8>,
    outputs: Vec<Picture>,
}

/// What `probe` needs, without a decoder.
pub(crate) struct TrackHeader {
    pub width: u32,
    pub height: u32,
}

/// Checks codec and parameter sets; refuses what OpenH264 cannot decode.
pub(crate) fn check(path: &Path, video: &Mp4Video) -> Result<(AvcConfig, Sps), VideoError> {
    let container = video.container;
    if !matches!(&video.fourcc, b"avc1" | b"avc3") {
        let mut detail = String::new();
        if matches!(&video.fourcc, b"hvc1" | b"hev1") {
            detail =
                "(FLIR and phone cameras record HEVC when set to H.265/'high efficiency')".into();
        }
        return Err(VideoError::unsupported(
            path,
            container,
            codec_name(&video.fourcc),
            detail,
        ));
    }
    let avcc = video.avcc.as_deref().ok_or_else(|| {
        VideoError::corrupt(
            path,
            container,
            "its H.264 track has no 'avcC' box (parameter sets)",
        )
    })?;
    let config = AvcConfig::parse(avcc).map_err(|r| VideoError::corrupt(path, container, r))?;
    let first = config.sps.first().ok_or_else(|| {
        VideoError::corrupt(
            path,
            container,
            "its 'avcC' box holds no SPS (H.264 sequence parameter set)",
        )
    })?;
    let sps = Sps::parse(first).map_err(|r| VideoError::corrupt(path, container, r))?;
    if let Some(reason) = sps.unsupported_reason() {
        return Err(VideoError::unsupported(path, container, reason, ""));
    }
    if config.pps.is_empty() {
        return Err(VideoError::corrupt(
            path,
            container,
            "its 'avcC' box holds no PPS (H.264 picture parameter set)",
        ));
    }
    Ok((config, sps))
}

pub(crate) fn header(path: &Path, video: &Mp4Video) -> Result<TrackHeader, VideoError> {
    let (_, sps) = check(path, video)?;
    Ok(TrackHeader {
        width: sps.width,
        height: sps.height,
    })
}

impl H264Track {
    pub fn open(path: &Path, video: Mp4Video) -> Result<Self, VideoError> {
        let (config, sps) = check(path, &video)?;
        let file = File::open(path).map_err(|e| VideoError::io(path, e))?;
        let mut sample_of: Vec<usize> = (0..video.samples.len()).collect();
        // Stable: equal composition times keep decode order.
        sample_of.sort_by_key(|&s| video.samples[s].cts);
        let mut display_of = vec![0; sample_of.len()];
        for (d, &s) in sample_of.iter().enumerate() {
            display_of[s] = d;
        }
        Ok(Self {
            path: path.to_path_buf(),
            container: video.container,
            file,
            file_len: video.file_len,
            samples: video.samples,
            sample_of,
            display_of,
            config,
            color: sps.color,
            width: sps.width,
            height: sps.height,
            decoder: None,
            next_sample: 0,
            drained: false,
            decoded: 0,
            pending: BTreeMap::new(),
            keep_from: 0,
            broken: None,
            annex_b: Vec::new(),
            sample_buf: Vec::new(),
            outputs: Vec::new(),
        })
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    fn truncated(&self, decoded: usize, reason: &str) -> VideoError {
        VideoError::Truncated {
            path: self.path.clone(),
            container: self.container.into(),
            codec: "H.264".into(),
            decoded,
            total: self.samples.len(),
            reason: reason.into(),
        }
    }

    /// The picture shown at `index` (display order).
    pub fn frame(&mut self, index: usize) -> Result<Arc<Yuv420>, VideoError> {
        if let Some((decoded, reason)) = &self.broken {
            if index >= *decoded {
                return Err(self.truncated(*decoded, reason));
            }
        }
        if let Some(pic) = self.take(index) {
            return Ok(pic);
        }
        // Every picture shown at or after `keep_from` is either pending, still held by the
        // decoder (B-frame reordering: its sample may already have been fed) or not decoded
        // yet, so going on forward finds it; restart only to go back, or to skip ahead when a
        // later key frame is closer.
        let restart = self.restart_point(index);
        let continue_forward =
            self.decoder.is_some() && index >= self.keep_from && restart <= self.next_sample;
        if !continue_forward {
            self.restart(restart)?;
        }
        self.keep_from = self.keep_from.max(index);
        loop {
            if let Some(pic) = self.take(index) {
                return Ok(pic);
            }
            if self.next_sample >= self.samples.len() && !self.drained {
                self.drained = true;
                let decoder = self.decoder.as_mut().expect("restart() made a decoder");
                decoder.drain(&mut self.outputs);
                self.take_outputs();
                continue;
            }
            if self.next_sample >= self.samples.len() {
                let decoded = self.first_missing_from(self.samples.len());
                let reason = "the decoder produced no picture for it (a damaged or missing frame)";
                self.broken = Some((decoded.min(index), reason.into()));
                return Err(self.truncated(decoded.min(index), reason));
            }
            if let Err((failed, reason)) = self.feed_next() {
                // Frames from the failing sample on (in display order) are lost; what was
                // decoded before it (some still held by the decoder) is still handed out.
                if let Some(decoder) = self.decoder.as_mut() {
                    decoder.drain(&mut self.outputs);
                }
                self.take_outputs();
                let decoded = self.first_missing_from(failed);
                self.broken = Some((decoded, reason.clone()));
                if let Some(pic) = self.take(index) {
                    return Ok(pic);
                }
                return Err(self.truncated(decoded, &reason));
            }
            if self.pending.len() > MAX_PENDING {
                let reason = format!(
                    "the decoder returned {MAX_PENDING} pictures without the one shown next (frame {})",
                    index + 1
                );
                self.broken = Some((index, reason.clone()));
                return Err(self.truncated(index, &reason));
            }
        }
    }

    /// The first display index whose sample is at or after `sample` in decode order and was
    /// not decoded: every earlier display index is available (handed out or pending).
    fn first_missing_from(&self, sample: usize) -> usize {
        let lost = self.samples.len().min(sample);
        let first_lost = (lost..self.samples.len())
            .map(|s| self.display_of[s])
            .min()
            .unwrap_or(self.samples.len());
        // Pictures the decoder swallowed before the failure count as lost too.
        (0..first_lost)
            .find(|&d| {
                d >= self.keep_from && self.sample_of[d] < lost && !self.pending.contains_key(&d)
            })
            .unwrap_or(first_lost)
    }

    fn take(&mut self, index: usize) -> Option<Arc<Yuv420>> {
        let pic = self.pending.remove(&index)?;
        // Everything shown before it will not be asked for by a forward reader.
        self.pending = self.pending.split_off(&index);
        Some(pic)
    }

    /// The latest sync sample at or before `index`'s sample in decode order whose picture is
    /// shown no later than `index` (so `index` does not lean on anything before it).
    fn restart_point(&self, index: usize) -> usize {
        let target = self.sample_of[index];
        (0..=target)
            .rev()
            .find(|&s| self.samples[s].sync && self.display_of[s] <= index)
            .unwrap_or(0)
    }

    fn restart(&mut self, sample: usize) -> Result<(), VideoError> {
        self.decoder = None;
        let decoder = Decoder::new().map_err(|r| self.truncated(0, &r))?;
        self.decoder = Some(decoder);
        self.next_sample = sample;
        self.drained = false;
        self.pending.clear();
        self.keep_from = self.display_of[sample];
        // Parameter sets go in front of the first access unit.
        self.annex_b = self.config.annex_b_parameter_sets();
        Ok(())
    }

    /// Reads and decodes the next sample; moves its (and any other ready) pictures to pending.
    /// On failure: the sample that failed and why.
    fn feed_next(&mut self) -> Result<(), (usize, String)> {
        let s = self.next_sample;
        let sample = self.samples[s];
        if sample.offset.saturating_add(sample.size as u64) > self.file_len {
            return Err((
                s,
                format!(
                    "frame data ({} bytes at byte {}) lies past the end of the file ({} bytes)",
                    sample.size, sample.offset, self.file_len
                ),
            ));
        }
        self.sample_buf.resize(sample.size as usize, 0);
        self.file
            .seek(SeekFrom::Start(sample.offset))
            .and_then(|_| self.file.read_exact(&mut self.sample_buf))
            .map_err(|e| (s, format!("cannot read frame data: {e}")))?;
        h264::length_prefixed_to_annex_b(
            &self.sample_buf,
            self.config.length_size,
            &mut self.annex_b,
        )
        .map_err(|r| (s, r))?;
        self.next_sample += 1;
        self.decoded += 1;
        let decoder = self.decoder.as_mut().expect("restart() made a decoder");
        let result = decoder.decode(&self.annex_b, s as u64 + 1, &mut self.outputs);
        self.annex_b.clear();
        self.take_outputs();
        result.map_err(|state| (s, h264::describe_state(state)))
    }

    /// Moves decoded pictures to `pending` under their display index.
    fn take_outputs(&mut self) {
        for pic in self.outputs.drain(..) {
            let Some(sample) = (pic.tag as usize).checked_sub(1) else {
                continue;
            };
            let Some(&display) = self.display_of.get(sample) else {
                continue;
            };
            if display >= self.keep_from {
                self.pending.insert(display, Arc::new(pic.yuv));
            }
        }
    }
}
