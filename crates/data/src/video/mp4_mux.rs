//! H.264 in MP4 that browsers and FFmpeg play.
//!
//! - Codec: OpenH264, Constrained Baseline (CAVLC, no B-frames), 4:2:0, BT.601 limited range
//!   (signalled in the stream's VUI), fixed QP (no rate control, no skipped frames: one
//!   frame in, one frame out), an IDR every ~2 seconds (seekable).
//! - Odd sizes: 4:2:0 H.264 cannot crop a single pixel, so a frame with an odd width or height
//!   is padded to even by repeating its last column/row, and the video *is* that even size
//!   (the track header says so too): every player shows the same picture, one duplicated
//!   column/row wider/taller than the source. (Recording the odd size in the track header
//!   instead would make players rescale the whole picture by a fraction of a pixel.)
//! - Timing: the frame rate becomes an exact fraction (30000/1001 stays 30000/1001, 9 stays 9:
//!   continued fractions, denominators up to 100000) and every sample lasts one frame period
//!   in a timescale that is a multiple of its numerator.
//! - Layout: `ftyp`, `moov`, `mdat` ("faststart": players start before the download ends).
//!   Samples are spooled to a temporary file beside the output while encoding (memory does
//!   not grow with the video's length), then `ftyp`+`moov`+`mdat` are written to a second
//!   temporary file that is renamed over the output on [`VideoWriter::finish`]: a crash or an
//!   error never leaves a half-written video under the output's name.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use image::{GrayImage, RgbImage};

use super::error::VideoError;
use super::h264_encode::Encoder;
use super::yuv::Yuv420;

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriterOptions {
    /// H.264 quantiser, 0 (best) to 51. 20 keeps masks and overlays visually lossless at a
    /// modest size; 12-16 for near-lossless archives.
    pub qp: u8,
    /// Frames between IDR (key) frames; `None`: about two seconds.
    pub keyframe_interval: Option<u32>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            qp: 20,
            keyframe_interval: None,
        }
    }
}

/// Writes frames as H.264 in MP4 (see the module docs for the format choices).
pub struct VideoWriter {
    path: PathBuf,
    width: u32,
    height: u32,
    coded_width: u32,
    coded_height: u32,
    timescale: u32,
    frame_duration: u32,
    fps: f64,
    encoder: Encoder,
    spool_path: PathBuf,
    spool: Option<BufWriter<File>>,
    spool_len: u64,
    sizes: Vec<u32>,
    /// 1-based numbers of IDR samples.
    sync: Vec<u32>,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    finished: bool,
}

impl VideoWriter {
    /// Starts `path` (written on [`finish`](Self::finish)) for `width` x `height` frames at
    /// `fps` frames per second, with the default [`WriterOptions`].
    pub fn create(
        path: impl AsRef<Path>,
        width: u32,
        height: u32,
        fps: f64,
    ) -> Result<Self, VideoError> {
        Self::create_with(path, width, height, fps, WriterOptions::default())
    }

    pub fn create_with(
        path: impl AsRef<Path>,
        width: u32,
        height: u32,
        fps: f64,
        options: WriterOptions,
    ) -> Result<Self, VideoError> {
        let path = path.as_ref().to_path_buf();
        let fail = |reason: String| VideoError::Write {
            path: path.clone(),
            reason,
        };
        if !(fps.is_finite() && fps > 0.0 && fps <= 1000.0) {
            return Err(fail(format!(
                "the frame rate {fps} is not between 0 and 1000 frames per second"
            )));
        }
        if width < 16 || height < 16 || width.max(height) > 3840 || width.min(height) > 2160 {
            return Err(fail(format!(
                "{width}x{height} frames cannot be encoded: OpenH264 takes 16x16 up to 3840x2160 (or 2160x3840)"
            )));
        }
        if options.qp > 51 {
            return Err(fail(format!(
                "QP {} is above H.264's maximum of 51",
                options.qp
            )));
        }
        let (num, den) = rational(fps);
        let scale = 1000u32.div_ceil(num).max(1);
        let (timescale, frame_duration) = (num * scale, den * scale);
        let coded_width = width + width % 2;
        let coded_height = height + height % 2;
        let keyframe_interval = options
            .keyframe_interval
            .unwrap_or_else(|| (2.0 * fps).round().clamp(1.0, 600.0) as u32)
            .max(1);
        let encoder = Encoder::new(
            coded_width,
            coded_height,
            fps,
            options.qp,
            keyframe_interval,
        )
        .map_err(fail)?;
        let name = path
            .file_name()
            .map_or_else(|| "video.mp4".into(), |n| n.to_string_lossy().into_owned());
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let spool_path = dir.join(format!(".{name}.{}.frames.tmp", std::process::id()));
        let spool = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&spool_path)
            .map_err(|e| fail(format!("cannot create {}: {e}", spool_path.display())))?;
        Ok(Self {
            path,
            width,
            height,
            coded_width,
            coded_height,
            timescale,
            frame_duration,
            fps,
            encoder,
            spool_path,
            spool: Some(BufWriter::new(spool)),
            spool_len: 0,
            sizes: Vec::new(),
            sync: Vec::new(),
            sps: None,
            pps: None,
            finished: false,
        })
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> usize {
        self.sizes.len()
    }

    /// The size of the encoded picture: the frame size rounded up to even.
    pub fn coded_size(&self) -> (u32, u32) {
        (self.coded_width, self.coded_height)
    }

    pub fn push_rgb(&mut self, frame: &RgbImage) -> Result<(), VideoError> {
        self.check_size(frame.width(), frame.height())?;
        self.push_yuv(Yuv420::from_rgb(frame))
    }

    /// Grey frames (masks): 0-255 maps to video black-white, chroma neutral.
    pub fn push_gray(&mut self, frame: &GrayImage) -> Result<(), VideoError> {
        self.check_size(frame.width(), frame.height())?;
        self.push_yuv(Yuv420::from_gray(frame))
    }

    fn check_size(&self, width: u32, height: u32) -> Result<(), VideoError> {
        if (width, height) != (self.width, self.height) {
            return Err(VideoError::FrameSize {
                path: self.path.clone(),
                index: self.frames(),
                width,
                height,
                video_width: self.width,
                video_height: self.height,
            });
        }
        Ok(())
    }

    fn push_yuv(&mut self, yuv: Yuv420) -> Result<(), VideoError> {
        let yuv = if (yuv.width, yuv.height) == (self.coded_width, self.coded_height) {
            yuv
        } else {
            yuv.pad_to(self.coded_width, self.coded_height)
        };
        let index = self.frames();
        let millis = (index as f64 * 1000.0 / self.fps).round() as i64;
        let (nals, idr) = self
            .encoder
            .encode(&yuv, millis)
            .map_err(|r| self.write_error(format!("frame {}: {r}", index + 1)))?;
        let mut size = 0u32;
        let spool = self.spool.as_mut().expect("spool open until finish");
        for nal in nals {
            match nal.first().map(|h| h & 31) {
                Some(7) => {
                    self.sps.get_or_insert(nal);
                    continue;
                }
                Some(8) => {
                    self.pps.get_or_insert(nal);
                    continue;
                }
                // Access unit delimiters and empty units carry nothing for MP4.
                Some(9) | None => continue,
                _ => {}
            }
            let len = nal.len() as u32;
            let io = spool
                .write_all(&len.to_be_bytes())
                .and_then(|_| spool.write_all(&nal));
            io.map_err(|e| VideoError::Write {
                path: self.path.clone(),
                reason: format!("cannot write {}: {e}", self.spool_path.display()),
            })?;
            size += 4 + len;
        }
        if size == 0 {
            return Err(self.write_error(format!(
                "the encoder produced no picture for frame {}",
                index + 1
            )));
        }
        if idr {
            self.sync.push(index as u32 + 1);
        }
        self.sizes.push(size);
        self.spool_len += size as u64;
        Ok(())
    }

    fn write_error(&self, reason: String) -> VideoError {
        VideoError::Write {
            path: self.path.clone(),
            reason,
        }
    }

    /// Writes the MP4 (moov before mdat) and moves it into place.
    pub fn finish(mut self) -> Result<(), VideoError> {
        let result = self.write_file();
        self.finished = true;
        let _ = std::fs::remove_file(&self.spool_path);
        result
    }

    fn write_file(&mut self) -> Result<(), VideoError> {
        if self.sizes.is_empty() {
            return Err(
                self.write_error("no frames were pushed; a video needs at least one".into())
            );
        }
        let (Some(sps), Some(pps)) = (self.sps.clone(), self.pps.clone()) else {
            return Err(self.write_error("the encoder produced no parameter sets (SPS/PPS)".into()));
        };
        let mut spool = self.spool.take().expect("spool open until finish");
        spool.flush().map_err(|e| {
            self.write_error(format!("cannot write {}: {e}", self.spool_path.display()))
        })?;
        let mut spool = spool
            .into_inner()
            .map_err(|e| self.write_error(e.to_string()))?;

        let ftyp = ftyp_box();
        let large_mdat = self.spool_len + 8 > u32::MAX as u64;
        let mdat_header: u64 = if large_mdat { 16 } else { 8 };
        // moov's size does not depend on the offset value (stco vs co64 is chosen by the
        // largest offset, which is the single chunk's: just after moov).
        let moov_len = self.moov_box(&sps, &pps, 0).len() as u64;
        let data_start = ftyp.len() as u64 + moov_len + mdat_header;
        let moov = self.moov_box(&sps, &pps, data_start);
        debug_assert_eq!(moov.len() as u64, moov_len);

        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // Written whole or not at all: into a temporary file next to the target, synced, then
        // persisted over it.
        let mut write = || -> std::io::Result<()> {
            let mut temporary = tempfile::Builder::new();
            // The permissions `File::create` gives (0o666 less the umask), not 0o600.
            #[cfg(unix)]
            temporary.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
            let mut out = BufWriter::new(temporary.tempfile_in(dir)?);
            out.write_all(&ftyp)?;
            out.write_all(&moov)?;
            if large_mdat {
                out.write_all(&1u32.to_be_bytes())?;
                out.write_all(b"mdat")?;
                out.write_all(&(self.spool_len + 16).to_be_bytes())?;
            } else {
                out.write_all(&((self.spool_len + 8) as u32).to_be_bytes())?;
                out.write_all(b"mdat")?;
            }
            spool.seek(SeekFrom::Start(0))?;
            let copied = std::io::copy(&mut (&mut spool).take(self.spool_len), &mut out)?;
            if copied != self.spool_len {
                return Err(std::io::Error::other(
                    "the frame spool is shorter than written",
                ));
            }
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.as_file().sync_all()?;
            file.persist(&self.path)?;
            Ok(())
        };
        write().map_err(|e| self.write_error(e.to_string()))
    }

    fn moov_box(&self, sps: &[u8], pps: &[u8], data_start: u64) -> Vec<u8> {
        let n = self.sizes.len() as u32;
        let media_duration = n as u64 * self.frame_duration as u64;
        const MOVIE_TIMESCALE: u32 = 1000;
        let movie_duration = (media_duration as u128 * MOVIE_TIMESCALE as u128)
            .div_ceil(self.timescale as u128) as u64;
        let (w, h) = (self.coded_width, self.coded_height);

        let mut mvhd = full(0, 0);
        mvhd.extend(0u32.to_be_bytes()); // creation
        mvhd.extend(0u32.to_be_bytes()); // modification
        mvhd.extend(MOVIE_TIMESCALE.to_be_bytes());
        mvhd.extend((movie_duration.min(u32::MAX as u64) as u32).to_be_bytes());
        mvhd.extend(0x0001_0000u32.to_be_bytes()); // rate 1.0
        mvhd.extend(0x0100u16.to_be_bytes()); // volume 1.0
        mvhd.extend([0u8; 10]);
        mvhd.extend(unity_matrix());
        mvhd.extend([0u8; 24]);
        mvhd.extend(2u32.to_be_bytes()); // next track id

        let mut tkhd = full(0, 3); // enabled, in movie
        tkhd.extend(0u32.to_be_bytes());
        tkhd.extend(0u32.to_be_bytes());
        tkhd.extend(1u32.to_be_bytes()); // track id
        tkhd.extend(0u32.to_be_bytes());
        tkhd.extend((movie_duration.min(u32::MAX as u64) as u32).to_be_bytes());
        tkhd.extend([0u8; 8]);
        tkhd.extend(0u16.to_be_bytes()); // layer
        tkhd.extend(0u16.to_be_bytes()); // alternate group
        tkhd.extend(0u16.to_be_bytes()); // volume
        tkhd.extend(0u16.to_be_bytes());
        tkhd.extend(unity_matrix());
        tkhd.extend((w << 16).to_be_bytes());
        tkhd.extend((h << 16).to_be_bytes());

        let mut mdhd = full(0, 0);
        mdhd.extend(0u32.to_be_bytes());
        mdhd.extend(0u32.to_be_bytes());
        mdhd.extend(self.timescale.to_be_bytes());
        mdhd.extend((media_duration.min(u32::MAX as u64) as u32).to_be_bytes());
        mdhd.extend(0x55C4u16.to_be_bytes()); // language "und"
        mdhd.extend(0u16.to_be_bytes());

        let mut hdlr = full(0, 0);
        hdlr.extend(0u32.to_be_bytes());
        hdlr.extend(b"vide");
        hdlr.extend([0u8; 12]);
        hdlr.extend(b"VideoHandler\0");

        let mut vmhd = full(0, 1);
        vmhd.extend([0u8; 8]);

        let mut dref = full(0, 0);
        dref.extend(1u32.to_be_bytes());
        dref.extend(boxed(b"url ", full(0, 1)));
        let dinf = boxed(b"dinf", boxed(b"dref", dref));

        let mut avcc = vec![1, sps[1], sps[2], sps[3], 0xFF, 0xE1];
        avcc.extend((sps.len() as u16).to_be_bytes());
        avcc.extend(sps);
        avcc.push(1);
        avcc.extend((pps.len() as u16).to_be_bytes());
        avcc.extend(pps);

        let mut avc1 = vec![0u8; 6];
        avc1.extend(1u16.to_be_bytes()); // data reference index
        avc1.extend([0u8; 16]);
        avc1.extend((w as u16).to_be_bytes());
        avc1.extend((h as u16).to_be_bytes());
        avc1.extend(0x0048_0000u32.to_be_bytes()); // 72 dpi
        avc1.extend(0x0048_0000u32.to_be_bytes());
        avc1.extend(0u32.to_be_bytes());
        avc1.extend(1u16.to_be_bytes()); // frames per sample
        let mut compressor = [0u8; 32];
        let label = b"fgstp OpenH264";
        compressor[0] = label.len() as u8;
        compressor[1..1 + label.len()].copy_from_slice(label);
        avc1.extend(compressor);
        avc1.extend(0x0018u16.to_be_bytes()); // depth
        avc1.extend((-1i16).to_be_bytes());
        avc1.extend(boxed(b"avcC", avcc));

        let mut stsd = full(0, 0);
        stsd.extend(1u32.to_be_bytes());
        stsd.extend(boxed(b"avc1", avc1));

        let mut stts = full(0, 0);
        stts.extend(1u32.to_be_bytes());
        stts.extend(n.to_be_bytes());
        stts.extend(self.frame_duration.to_be_bytes());

        let mut stss = full(0, 0);
        stss.extend((self.sync.len() as u32).to_be_bytes());
        for s in &self.sync {
            stss.extend(s.to_be_bytes());
        }

        let mut stsz = full(0, 0);
        stsz.extend(0u32.to_be_bytes());
        stsz.extend(n.to_be_bytes());
        for s in &self.sizes {
            stsz.extend(s.to_be_bytes());
        }

        // All samples in one chunk, right after moov.
        let mut stsc = full(0, 0);
        stsc.extend(1u32.to_be_bytes());
        stsc.extend(1u32.to_be_bytes());
        stsc.extend(n.to_be_bytes());
        stsc.extend(1u32.to_be_bytes());

        let offsets = if data_start > u32::MAX as u64 {
            let mut co64 = full(0, 0);
            co64.extend(1u32.to_be_bytes());
            co64.extend(data_start.to_be_bytes());
            boxed(b"co64", co64)
        } else {
            let mut stco = full(0, 0);
            stco.extend(1u32.to_be_bytes());
            stco.extend((data_start as u32).to_be_bytes());
            boxed(b"stco", stco)
        };

        let stbl = [
            boxed(b"stsd", stsd),
            boxed(b"stts", stts),
            boxed(b"stss", stss),
            boxed(b"stsz", stsz),
            boxed(b"stsc", stsc),
            offsets,
        ]
        .concat();
        let minf = [boxed(b"vmhd", vmhd), dinf, boxed(b"stbl", stbl)].concat();
        let mdia = [
            boxed(b"mdhd", mdhd),
            boxed(b"hdlr", hdlr),
            boxed(b"minf", minf),
        ]
        .concat();
        let trak = [boxed(b"tkhd", tkhd), boxed(b"mdia", mdia)].concat();
        boxed(
            b"moov",
            [boxed(b"mvhd", mvhd), boxed(b"trak", trak)].concat(),
        )
    }
}

impl Drop for VideoWriter {
    fn drop(&mut self) {
        if !self.finished {
            // Abandoned: leave nothing behind (the output itself was never touched).
            self.spool = None;
            let _ = std::fs::remove_file(&self.spool_path);
        }
    }
}

fn boxed(kind: &[u8; 4], body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend(((body.len() + 8) as u32).to_be_bytes());
    out.extend(kind);
    out.extend(body);
    out
}

fn full(version: u8, flags: u32) -> Vec<u8> {
    let mut v = vec![version];
    v.extend(&flags.to_be_bytes()[1..]);
    v
}

fn unity_matrix() -> Vec<u8> {
    [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

fn ftyp_box() -> Vec<u8> {
    let mut body = b"isom".to_vec();
    body.extend(0x200u32.to_be_bytes());
    for brand in [b"isom", b"iso2", b"avc1", b"mp41"] {
        body.extend(brand);
    }
    boxed(b"ftyp", body)
}

/// The closest fraction num/den to `fps` with den <= 100000 (continued fractions).
pub(crate) fn rational(fps: f64) -> (u32, u32) {
    let (mut h0, mut h1, mut k0, mut k1) = (0u64, 1u64, 1u64, 0u64);
    let mut x = fps;
    for _ in 0..32 {
        let a = x.floor();
        let (h2, k2) = (a as u64 * h1 + h0, a as u64 * k1 + k0);
        if k2 > 100_000 || h2 > u32::MAX as u64 / 2000 {
            break;
        }
        (h0, h1, k0, k1) = (h1, h2, k1, k2);
        if (h1 as f64 / k1 as f64 - fps).abs() <= fps * 1e-9 {
            break;
        }
        let frac = x - a;
        if frac < 1e-12 {
            break;
        }
        x = 1.0 / frac;
    }
    (h1.max(1) as u32, k1.max(1) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rates_become_exact_fractions() {
        assert_eq!(rational(30000.0 / 1001.0), (30000, 1001));
        assert_eq!(rational(9.0), (9, 1));
        assert_eq!(rational(25.0), (25, 1));
        assert_eq!(rational(12.5), (25, 2));
        assert_eq!(rational(24000.0 / 1001.0), (24000, 1001));
        assert_eq!(rational(29.97), (2997, 100));
    }
}
