//! A small AVI (RIFF) reader: the first video stream, MJPEG or uncompressed.
//!
//! Layout read: `RIFF AVI ` holds `LIST hdrl` (`avih`, then one `LIST strl` per stream with
//! `strh` — type, rate/scale, length — and `strf`, a BITMAPINFOHEADER for video), `LIST movi`
//! (the frames as `NNdc`/`NNdb` chunks, NN = stream number, possibly grouped in `LIST rec `)
//! and optionally `idx1` (16-byte entries: chunk id, flags, offset, size; offsets count from
//! the `movi` fourcc or, in some files, from the file start — told apart by looking). OpenDML
//! files (> 1 GB) continue in `RIFF AVIX` pieces, each with its own `movi`; those and files
//! without `idx1` are indexed by walking the `movi` lists (chunk headers only).
//!
//! Pixels: MJPEG (`MJPG` and kin; decoded by the `image` crate), 8-bit grey (`Y800`, `Y8  `,
//! `GREY`, or 8-bit BI_RGB whose palette is a grey ramp; another palette gives RGB), 24/32-bit
//! BI_RGB (BGR, rows padded to 4 bytes, bottom-up when the height is positive), 16-bit grey
//! (`Y16 `, FFmpeg's `Y1\0\x10` little-endian and `\x10\01Y` big-endian). A zero-size video
//! chunk repeats the previous frame (AVI's dropped-frame convention).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use image::{DynamicImage, GrayImage, ImageBuffer, ImageFormat, Luma, RgbImage};

use super::error::VideoError;
use super::format::Codec;

#[derive(Debug, Clone, PartialEq)]
enum Pixels {
    Mjpeg,
    Gray8,
    Palette(Vec<[u8; 3]>),
    Bgr24,
    Bgrx32,
    Gray16 { big_endian: bool },
}

pub(crate) struct Avi {
    path: PathBuf,
    file: File,
    file_len: u64,
    pixels: Pixels,
    pub width: u32,
    pub height: u32,
    bottom_up: bool,
    /// BI_RGB rows are padded to 4 bytes; FOURCC formats are packed.
    dib_rows: bool,
    pub fps: f64,
    /// Frames the headers announce (0 when the writer never filled it in).
    declared: usize,
    /// (data offset, size) per frame.
    index: Vec<(u64, u32)>,
    /// Why the index ends early, when a chunk is cut off by the end of the file.
    cut_off: Option<String>,
    buf: Vec<u8>,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn fourcc_text(t: &[u8]) -> String {
    t.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '?'
            }
        })
        .collect::<String>()
        .trim_end()
        .to_string()
}

struct StreamHeader {
    kind: [u8; 4],
    handler: [u8; 4],
    scale: u32,
    rate: u32,
    length: u32,
    format: Vec<u8>,
}

impl Avi {
    pub fn open(path: &Path) -> Result<Self, VideoError> {
        let mut file = File::open(path).map_err(|e| VideoError::io(path, e))?;
        let file_len = file.metadata().map_err(|e| VideoError::io(path, e))?.len();
        let corrupt = |r: String| VideoError::corrupt(path, "AVI", r);
        let read_at = |file: &mut File, at: u64, n: usize| -> Result<Vec<u8>, VideoError> {
            let mut b = vec![0u8; n];
            file.seek(SeekFrom::Start(at))
                .and_then(|_| file.read_exact(&mut b))
                .map_err(|e| VideoError::io(path, e))?;
            Ok(b)
        };

        // Top level: RIFF AVI, then any RIFF AVIX pieces.
        let mut hdrl: Option<Vec<u8>> = None;
        let mut movi: Vec<(u64, u64)> = Vec::new();
        let mut idx1: Option<(u64, u32)> = None;
        let mut odml_total = 0u32;
        let mut riff_pos = 0u64;
        while riff_pos + 12 <= file_len {
            let head = read_at(&mut file, riff_pos, 12)?;
            if &head[0..4] != b"RIFF" {
                break;
            }
            let riff_end = (riff_pos + 8 + le32(&head, 4) as u64).min(file_len);
            let mut pos = riff_pos + 12;
            while pos + 8 <= riff_end {
                let ck = read_at(&mut file, pos, 12.min((file_len - pos) as usize))?;
                let id = &ck[0..4];
                let size = le32(&ck, 4) as u64;
                let data = pos + 8;
                if id == b"LIST" && ck.len() >= 12 && size >= 4 {
                    let kind = &ck[8..12];
                    let end = (data + size).min(file_len);
                    if kind == b"hdrl" {
                        if size > 16 << 20 {
                            return Err(corrupt(format!("its header list is {size} bytes")));
                        }
                        hdrl = Some(read_at(&mut file, data + 4, (end - data - 4) as usize)?);
                    } else if kind == b"movi" {
                        movi.push((data + 4, end));
                    }
                } else if id == b"idx1" && data + size <= file_len {
                    idx1 = Some((data, size as u32));
                }
                pos = data + size + (size & 1);
            }
            riff_pos = riff_end + (riff_end & 1);
        }
        let hdrl = hdrl.ok_or_else(|| {
            corrupt("it has no header list ('hdrl'): the file is truncated or not an AVI".into())
        })?;

        // Streams.
        let mut streams = Vec::new();
        for (id, body) in chunks(&hdrl) {
            if id == *b"LIST" && body.len() >= 4 && &body[0..4] == b"strl" {
                let mut header = None;
                let mut format = Vec::new();
                for (cid, cbody) in chunks(&body[4..]) {
                    if cid == *b"strh" && cbody.len() >= 36 {
                        header = Some(StreamHeader {
                            kind: cbody[0..4].try_into().unwrap(),
                            handler: cbody[4..8].try_into().unwrap(),
                            scale: le32(cbody, 20),
                            rate: le32(cbody, 24),
                            length: le32(cbody, 32),
                            format: Vec::new(),
                        });
                    } else if cid == *b"strf" {
                        format = cbody.to_vec();
                    }
                }
                if let Some(mut h) = header {
                    h.format = format;
                    streams.push(h);
                }
            } else if id == *b"LIST" && body.len() >= 12 && &body[0..4] == b"odml" {
                for (cid, cbody) in chunks(&body[4..]) {
                    if cid == *b"dmlh" && cbody.len() >= 4 {
                        odml_total = le32(cbody, 0);
                    }
                }
            }
        }
        let (stream_no, video) = streams
            .iter()
            .enumerate()
            .find(|(_, s)| &s.kind == b"vids")
            .ok_or_else(|| {
                corrupt(format!(
                    "it has no video stream ({} other streams)",
                    streams.len()
                ))
            })?;
        let bmp = &video.format;
        if bmp.len() < 40 {
            return Err(corrupt(
                "its video format ('strf') is not a BITMAPINFOHEADER".into(),
            ));
        }
        let width = le32(bmp, 4) as i32;
        let raw_height = le32(bmp, 8) as i32;
        let bit_count = le16(bmp, 14);
        let compression: [u8; 4] = bmp[16..20].try_into().unwrap();
        let colors_used = le32(bmp, 32) as usize;
        let is_rgb =
            compression == [0; 4] || compression == *b"RGB " || compression == [3, 0, 0, 0];
        let pixels = match (&compression, bit_count) {
            (b"MJPG" | b"mjpg" | b"AVRn" | b"LJPG" | b"JPEG" | b"jpeg" | b"dmb1" | b"MJLS", _) => {
                if &compression == b"MJLS" {
                    return Err(VideoError::unsupported(path, "AVI", "JPEG-LS", ""));
                }
                Pixels::Mjpeg
            }
            (b"Y800" | b"Y8  " | b"GREY" | b"Y8\0\0", 8) => Pixels::Gray8,
            (b"Y16 " | b"Y1\0\x10", 16) => Pixels::Gray16 { big_endian: false },
            (b"\x10\x001Y" | b"b16g", 16) => Pixels::Gray16 { big_endian: true },
            (_, 8) if is_rgb => {
                let n = if colors_used == 0 {
                    256
                } else {
                    colors_used.min(256)
                };
                let header_len = le32(bmp, 0) as usize;
                let table = bmp.get(header_len..).unwrap_or(&[]);
                let palette: Vec<[u8; 3]> = table
                    .chunks_exact(4)
                    .take(n)
                    .map(|c| [c[2], c[1], c[0]])
                    .collect();
                let grey = palette.is_empty()
                    || palette.iter().enumerate().all(|(i, c)| {
                        c[0] as usize == i && c[1] as usize == i && c[2] as usize == i
                    });
                if grey {
                    Pixels::Gray8
                } else {
                    Pixels::Palette(palette)
                }
            }
            (_, 24) if is_rgb => Pixels::Bgr24,
            (_, 32) if is_rgb => Pixels::Bgrx32,
            _ => {
                let codec = if is_rgb {
                    format!("uncompressed {bit_count}-bit RGB")
                } else {
                    let name = fourcc_text(&compression);
                    let known = match name.to_ascii_uppercase().as_str() {
                        "H264" | "X264" | "AVC1" => " (H.264 in AVI)",
                        "XVID" | "DIVX" | "DX50" | "FMP4" | "MP4V" => " (MPEG-4 Part 2)",
                        "HEVC" | "H265" | "HVC1" => " (H.265/HEVC)",
                        "YUY2" | "UYVY" | "I420" | "YV12" | "NV12" => " (uncompressed YUV)",
                        "FFV1" => " (FFV1 lossless)",
                        _ => "",
                    };
                    format!("'{name}'{known} video, {bit_count} bits per pixel")
                };
                return Err(VideoError::unsupported(path, "AVI", codec, ""));
            }
        };
        if width <= 0 || raw_height == 0 || width > 1 << 16 || raw_height.unsigned_abs() > 1 << 16 {
            return Err(corrupt(format!(
                "its frame size {width}x{raw_height} is impossible"
            )));
        }
        let rgb_layout = matches!(pixels, Pixels::Bgr24 | Pixels::Bgrx32 | Pixels::Palette(_))
            || (matches!(pixels, Pixels::Gray8) && is_rgb);
        let bottom_up = rgb_layout && raw_height > 0;
        let fps = if video.scale > 0 {
            video.rate as f64 / video.scale as f64
        } else {
            0.0
        };
        let _ = video.handler;

        // Index: idx1 for a single-piece file, otherwise walk the movi lists.
        let tag = format!("{stream_no:02}");
        let is_frame = |id: &[u8]| {
            id.len() == 4
                && &id[0..2] == tag.as_bytes()
                && (&id[2..4] == b"dc" || &id[2..4] == b"db")
        };
        let mut index = Vec::new();
        let mut cut_off = None;
        let mut used_idx1 = false;
        if let (Some((at, size)), 1) = (idx1, movi.len()) {
            let table = read_at(&mut file, at, size as usize)?;
            let entries: Vec<(&[u8], u64, u32)> = table
                .chunks_exact(16)
                .filter(|e| is_frame(&e[0..4]))
                .map(|e| (&e[0..4], le32(e, 8) as u64, le32(e, 12)))
                .collect();
            if let Some(&(id, first, _)) = entries.first() {
                // Offsets count from the 'movi' fourcc (usual) or from the file start.
                let relative = movi[0].0 - 4;
                let base = [relative, 0].into_iter().find(|&base| {
                    let mut probe = [0u8; 4];
                    file.seek(SeekFrom::Start(base + first)).is_ok()
                        && file.read_exact(&mut probe).is_ok()
                        && probe == id
                });
                if let Some(base) = base {
                    index = entries
                        .iter()
                        .map(|&(_, off, size)| (base + off + 8, size))
                        .collect();
                    used_idx1 = true;
                }
            }
        }
        if !used_idx1 {
            for &(start, end) in &movi {
                walk_movi(
                    &mut file,
                    start,
                    end,
                    file_len,
                    &is_frame,
                    &mut index,
                    &mut cut_off,
                    0,
                )
                .map_err(|e| VideoError::io(path, e))?;
                if cut_off.is_some() {
                    break;
                }
            }
        }
        let declared = (video.length as usize).max(odml_total as usize);
        Ok(Self {
            path: path.to_path_buf(),
            file,
            file_len,
            pixels,
            width: width as u32,
            height: raw_height.unsigned_abs(),
            bottom_up,
            dib_rows: rgb_layout,
            fps,
            declared,
            index,
            cut_off,
            buf: Vec::new(),
        })
    }

    pub fn codec(&self) -> Codec {
        match self.pixels {
            Pixels::Mjpeg => Codec::Mjpeg,
            Pixels::Gray8 => Codec::Gray8,
            Pixels::Palette(_) | Pixels::Bgr24 | Pixels::Bgrx32 => Codec::Bgr,
            Pixels::Gray16 { .. } => Codec::Gray16,
        }
    }

    pub fn bit_depth(&self) -> u8 {
        if matches!(self.pixels, Pixels::Gray16 { .. }) {
            16
        } else {
            8
        }
    }

    /// The frame count: the headers' when they announce more than the index holds (a cut-off
    /// file), else the index's.
    pub fn len(&self) -> usize {
        let known = self.index.len() + usize::from(self.cut_off.is_some());
        known.max(self.declared)
    }

    fn truncated(&self, reason: String) -> VideoError {
        VideoError::Truncated {
            path: self.path.clone(),
            container: "AVI".into(),
            codec: self.codec().to_string(),
            decoded: self.index.len(),
            total: self.len(),
            reason,
        }
    }

    pub fn frame(&mut self, index: usize) -> Result<DynamicImage, VideoError> {
        if index >= self.index.len() {
            let reason = self.cut_off.clone().unwrap_or_else(|| {
                format!(
                    "the headers announce {} frames but the file holds {}",
                    self.len(),
                    self.index.len()
                )
            });
            return Err(self.truncated(reason));
        }
        // A zero-size chunk repeats the last frame with data.
        let Some(source) = (0..=index).rev().find(|&i| self.index[i].1 > 0) else {
            return Err(VideoError::corrupt(
                &self.path,
                "AVI",
                format!("frame {} and all before it are empty", index + 1),
            ));
        };
        let (offset, size) = self.index[source];
        if offset + size as u64 > self.file_len {
            let reason = format!(
                "frame {} ({size} bytes at byte {offset}) lies past the end of the file",
                source + 1
            );
            let mut e = self.truncated(reason);
            if let VideoError::Truncated { decoded, .. } = &mut e {
                *decoded = source;
            }
            return Err(e);
        }
        self.buf.resize(size as usize, 0);
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.read_exact(&mut self.buf))
            .map_err(|e| VideoError::io(&self.path, e))?;
        self.decode(source)
    }

    fn decode(&self, index: usize) -> Result<DynamicImage, VideoError> {
        let (w, h) = (self.width as usize, self.height as usize);
        let bad = |reason: String| VideoError::Truncated {
            path: self.path.clone(),
            container: "AVI".into(),
            codec: self.codec().to_string(),
            decoded: index,
            total: self.len(),
            reason: format!("frame {} is damaged: {reason}", index + 1),
        };
        let data = &self.buf;
        // Rows: unpadded for FOURCC formats, padded to 4 bytes for BI_RGB; the chunk size tells.
        let rows = |bytes_per_pixel: usize| -> Result<(usize, usize), VideoError> {
            let tight = w * bytes_per_pixel;
            let padded = tight.div_ceil(4) * 4;
            // The layout's own rule, unless the chunk size matches exactly the other one.
            let stride = match (self.dib_rows, data.len()) {
                (true, n) if n == tight * h && n != padded * h => tight,
                (true, _) => padded,
                (false, n) if n == padded * h && n != tight * h => padded,
                (false, _) => tight,
            };
            if data.len() < stride * (h - 1) + tight {
                return Err(bad(format!(
                    "{} bytes where a {w}x{h} frame needs {}",
                    data.len(),
                    tight * h
                )));
            }
            Ok((stride, tight))
        };
        let row_start = |y: usize, stride: usize| {
            if self.bottom_up {
                (h - 1 - y) * stride
            } else {
                y * stride
            }
        };
        Ok(match &self.pixels {
            Pixels::Mjpeg => {
                let img = image::load_from_memory_with_format(data, ImageFormat::Jpeg)
                    .map_err(|e| bad(e.to_string()))?;
                match img {
                    DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) => img,
                    other => DynamicImage::ImageRgb8(other.to_rgb8()),
                }
            }
            Pixels::Gray8 => {
                let (stride, tight) = rows(1)?;
                let mut out = Vec::with_capacity(w * h);
                for y in 0..h {
                    let s = row_start(y, stride);
                    out.extend_from_slice(&data[s..s + tight]);
                }
                DynamicImage::ImageLuma8(GrayImage::from_raw(self.width, self.height, out).unwrap())
            }
            Pixels::Palette(palette) => {
                let (stride, tight) = rows(1)?;
                let mut out = Vec::with_capacity(w * h * 3);
                for y in 0..h {
                    let s = row_start(y, stride);
                    for &i in &data[s..s + tight] {
                        out.extend_from_slice(palette.get(i as usize).unwrap_or(&[0, 0, 0]));
                    }
                }
                DynamicImage::ImageRgb8(RgbImage::from_raw(self.width, self.height, out).unwrap())
            }
            Pixels::Bgr24 | Pixels::Bgrx32 => {
                let bpp = if self.pixels == Pixels::Bgr24 { 3 } else { 4 };
                let (stride, tight) = rows(bpp)?;
                let mut out = Vec::with_capacity(w * h * 3);
                for y in 0..h {
                    let s = row_start(y, stride);
                    for px in data[s..s + tight].chunks_exact(bpp) {
                        out.extend_from_slice(&[px[2], px[1], px[0]]);
                    }
                }
                DynamicImage::ImageRgb8(RgbImage::from_raw(self.width, self.height, out).unwrap())
            }
            Pixels::Gray16 { big_endian } => {
                let (stride, tight) = rows(2)?;
                let mut out = Vec::with_capacity(w * h);
                for y in 0..h {
                    let s = row_start(y, stride);
                    out.extend(data[s..s + tight].chunks_exact(2).map(|c| {
                        if *big_endian {
                            u16::from_be_bytes([c[0], c[1]])
                        } else {
                            u16::from_le_bytes([c[0], c[1]])
                        }
                    }));
                }
                let img: ImageBuffer<Luma<u16>, Vec<u16>> =
                    ImageBuffer::from_raw(self.width, self.height, out).unwrap();
                DynamicImage::ImageLuma16(img)
            }
        })
    }
}

/// Sub-chunks of a list body: (id, body), stopping at anything cut short.
fn chunks(mut data: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 8 {
        let id: [u8; 4] = data[0..4].try_into().unwrap();
        let size = le32(data, 4) as usize;
        let Some(body) = data.get(8..8 + size) else {
            break;
        };
        out.push((id, body));
        let next = 8 + size + (size & 1);
        data = data.get(next..).unwrap_or(&[]);
    }
    out
}

/// Lists nested deeper than this in `movi` are skipped: writers nest one level (`rec `), and a
/// file that nests without end must not exhaust the stack.
const MAX_MOVI_DEPTH: u32 = 4;

/// Walks a `movi` list (and the `rec ` lists in it, `depth` levels down), recording this
/// stream's frame chunks.
#[allow(clippy::too_many_arguments)]
fn walk_movi(
    file: &mut File,
    start: u64,
    end: u64,
    file_len: u64,
    is_frame: &dyn Fn(&[u8]) -> bool,
    index: &mut Vec<(u64, u32)>,
    cut_off: &mut Option<String>,
    depth: u32,
) -> std::io::Result<()> {
    let mut pos = start;
    while pos + 8 <= end {
        let mut head = [0u8; 12];
        file.seek(SeekFrom::Start(pos))?;
        let n = file.read(&mut head)?;
        if n < 8 {
            break;
        }
        let size = le32(&head, 4) as u64;
        let data = pos + 8;
        if &head[0..4] == b"LIST" && depth < MAX_MOVI_DEPTH {
            walk_movi(
                file,
                data + 4,
                (data + size).min(end),
                file_len,
                is_frame,
                index,
                cut_off,
                depth + 1,
            )?;
            if cut_off.is_some() {
                return Ok(());
            }
        } else if is_frame(&head[0..4]) {
            if data + size > file_len {
                *cut_off = Some(format!(
                    "frame {} ({size} bytes at byte {data}) is cut off by the end of the file ({file_len} bytes)",
                    index.len() + 1
                ));
                return Ok(());
            }
            index.push((data, size as u32));
        }
        pos = data + size + (size & 1);
    }
    Ok(())
}
