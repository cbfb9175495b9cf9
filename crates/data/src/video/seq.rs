//! FLIR `.seq` files: radiometric 16-bit frames as a run of FFF records.
//!
//! # The layout relied on
//! (From the public ExifTool FLIR notes and tools built on them, e.g. flirpy and Thermimage;
//! FLIR does not publish the format.)
//!
//! A `.seq` file is FFF records one after another, one per frame. A record starts with a
//! 64-byte header:
//!
//! | offset | field |
//! | --- | --- |
//! | 0x00 | `"FFF\0"` |
//! | 0x04 | creator, 16 bytes of text |
//! | 0x14 | u32 format version, 100-199; its byte order is the record's |
//! | 0x18 | u32 offset of the record directory, from the record start |
//! | 0x1c | u32 number of directory entries |
//!
//! The directory has 32-byte entries: u16 type at 0x00 (0 = unused, 1 = raw thermal data,
//! 0x20 = camera info, ...), u16 subtype at 0x02 (for raw data: 1 big-endian, 2 little-endian,
//! 3 PNG), u32 offset (from the record start) at 0x0c and u32 length at 0x10.
//!
//! The raw-data entry points at a 32-byte header — u16 byte-order mark (2 when read in the
//! right order), u16 width, u16 height, ... — followed by the pixels: either `width x height`
//! uint16 in that byte order, or a PNG (8-byte PNG signature) holding a 16-bit grey image.
//! Cameras writing PNG usually store the 16-bit values byte-swapped; which way a file goes is
//! decided once per file, from its first frame, by which reading is smoother (sum of
//! horizontal neighbour differences): thermal scenes are smooth, swapped bytes are not.
//!
//! The camera-info entry (type 0x20) carries the frame rate as a u16 at 0x464 (0 when the
//! camera does not say); failing that, the frame rate comes from the capture times at 0x384
//! (u32 seconds, u32 whose low 16 bits are milliseconds) of the first and the last frame,
//! and it is reported as 0 when neither is there.
//!
//! The next record starts where this one's last entry ends (some writers pad: the reader
//! then searches forward for the next `FFF\0` with a valid header). Frames compressed with
//! JPEG-LS (`.csq` files) are refused with the way out.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageBuffer, ImageFormat, Luma};

use super::error::VideoError;
use super::format::Codec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Raw { big_endian: bool },
    Png,
}

#[derive(Debug, Clone, Copy)]
struct FrameRef {
    /// Offset and length of the pixel bytes (after the raw-data header).
    offset: u64,
    len: u32,
    width: u16,
    height: u16,
    encoding: Encoding,
}

pub(crate) struct Seq {
    path: PathBuf,
    file: File,
    frames: Vec<FrameRef>,
    /// Set when the last record is cut off: frames beyond `frames.len()` are lost.
    cut_off: Option<String>,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    png: bool,
    /// PNG frames: swap the bytes of each value (decided from frame 0).
    png_swapped: Option<bool>,
    buf: Vec<u8>,
}

/// Longest gap searched for the next record when one does not follow directly.
const MAX_GAP: u64 = 1 << 20;

struct Record {
    end: u64,
    raw: Option<(u64, u32, u16)>,
    camera_info: Option<(u64, u32)>,
}

fn u16_at(b: &[u8], at: usize, big: bool) -> u16 {
    let v = [b[at], b[at + 1]];
    if big {
        u16::from_be_bytes(v)
    } else {
        u16::from_le_bytes(v)
    }
}
fn u32_at(b: &[u8], at: usize, big: bool) -> u32 {
    let v = b[at..at + 4].try_into().unwrap();
    if big {
        u32::from_be_bytes(v)
    } else {
        u32::from_le_bytes(v)
    }
}

fn read_at(file: &mut File, at: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    file.seek(SeekFrom::Start(at))?;
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Reads the record header and directory at `pos`. `Ok(None)`: no valid record there.
fn read_record(
    file: &mut File,
    pos: u64,
    file_len: u64,
) -> std::io::Result<Option<Result<Record, String>>> {
    let mut head = [0u8; 0x40];
    if read_at(file, pos, &mut head)? < 0x40 || &head[0..4] != b"FFF\0" {
        return Ok(None);
    }
    let big = match (u32_at(&head, 0x14, false), u32_at(&head, 0x14, true)) {
        (v, _) if (100..200).contains(&v) => false,
        (_, v) if (100..200).contains(&v) => true,
        _ => return Ok(None),
    };
    let dir_offset = u32_at(&head, 0x18, big) as u64;
    let entries = u32_at(&head, 0x1c, big) as u64;
    if entries > 4096 {
        return Ok(Some(Err(format!(
            "the record at byte {pos} lists {entries} entries"
        ))));
    }
    let dir_end = pos + dir_offset + entries * 0x20;
    if dir_end > file_len {
        return Ok(Some(Err(format!(
            "the record at byte {pos} is cut off by the end of the file (its directory ends at byte {dir_end})"
        ))));
    }
    let mut dir = vec![0u8; (entries * 0x20) as usize];
    read_at(file, pos + dir_offset, &mut dir)?;
    let mut record = Record {
        end: dir_end.max(pos + 0x40),
        raw: None,
        camera_info: None,
    };
    for e in dir.chunks_exact(0x20) {
        let kind = u16_at(e, 0, big);
        if kind == 0 {
            continue;
        }
        let subtype = u16_at(e, 2, big);
        let offset = pos + u32_at(e, 0x0c, big) as u64;
        let len = u32_at(e, 0x10, big);
        record.end = record.end.max(offset + len as u64);
        match kind {
            1 if record.raw.is_none() => record.raw = Some((offset, len, subtype)),
            0x20 if record.camera_info.is_none() => record.camera_info = Some((offset, len)),
            _ => {}
        }
    }
    Ok(Some(Ok(record)))
}

impl Seq {
    pub fn open(path: &Path) -> Result<Self, VideoError> {
        let mut file = File::open(path).map_err(|e| VideoError::io(path, e))?;
        let file_len = file.metadata().map_err(|e| VideoError::io(path, e))?.len();
        let io = |e| VideoError::io(path, e);
        let corrupt = |r: String| VideoError::corrupt(path, "FLIR SEQ", r);
        let mut frames = Vec::new();
        let mut cut_off = None;
        let mut camera_infos = Vec::new();
        let mut pos = 0u64;
        loop {
            let record = match read_record(&mut file, pos, file_len).map_err(io)? {
                Some(Ok(r)) => r,
                Some(Err(reason)) => {
                    cut_off = Some(reason);
                    break;
                }
                None if pos >= file_len => break,
                None => {
                    // Not directly here: look for the next record a little further on.
                    match find_next(&mut file, pos, file_len).map_err(io)? {
                        Some(next) => {
                            pos = next;
                            continue;
                        }
                        None => {
                            if frames.is_empty() {
                                return Err(corrupt(format!("no valid FFF record at byte {pos}")));
                            }
                            break;
                        }
                    }
                }
            };
            let Some((offset, len, subtype)) = record.raw else {
                pos = record.end;
                continue;
            };
            if offset + len as u64 > file_len || len < 32 {
                cut_off = Some(format!(
                    "frame {} ({len} bytes at byte {offset}) is cut off by the end of the file ({file_len} bytes)",
                    frames.len() + 1
                ));
                break;
            }
            let mut head = [0u8; 40];
            read_at(&mut file, offset, &mut head).map_err(io)?;
            // The mark reads 2 in the right byte order.
            let big = match (u16_at(&head, 0, false), u16_at(&head, 0, true)) {
                (2, _) => false,
                (_, 2) => true,
                _ => subtype == 1,
            };
            let width = u16_at(&head, 2, big);
            let height = u16_at(&head, 4, big);
            let pixels = &head[32..40];
            let encoding = if pixels.starts_with(b"\x89PNG\r\n\x1a\n") {
                Encoding::Png
            } else if pixels.starts_with(&[0xFF, 0xD8, 0xFF]) {
                return Err(VideoError::unsupported(
                    path,
                    "FLIR SEQ/CSQ",
                    "JPEG-LS compressed thermal frames (a .csq recording)",
                    "export it from FLIR Tools/Thermal Studio as a .seq with raw or PNG frames, or as 16-bit TIFF/PNG frames; ffmpeg cannot read it either",
                ));
            } else if len as u64 - 32 == width as u64 * height as u64 * 2 {
                Encoding::Raw { big_endian: big }
            } else {
                return Err(corrupt(format!(
                    "frame {}'s raw data is {} bytes, neither a PNG nor {width}x{height} 16-bit pixels",
                    frames.len() + 1,
                    len - 32
                )));
            };
            frames.push(FrameRef {
                offset: offset + 32,
                len: len - 32,
                width,
                height,
                encoding,
            });
            // The first and the latest camera-info records (frame rate, capture times).
            if let Some(ci) = record.camera_info {
                if camera_infos.len() < 2 {
                    camera_infos.push(ci);
                } else {
                    camera_infos[1] = ci;
                }
            }
            pos = record.end;
        }
        let first = *frames.first().ok_or_else(|| {
            corrupt(
                cut_off
                    .clone()
                    .unwrap_or_else(|| "it holds no thermal frame (no raw-data record)".into()),
            )
        })?;
        if let Some((i, f)) = frames
            .iter()
            .enumerate()
            .find(|(_, f)| (f.width, f.height) != (first.width, first.height))
        {
            return Err(corrupt(format!(
                "frame {} is {}x{} but frame 1 is {}x{}",
                i + 1,
                f.width,
                f.height,
                first.width,
                first.height
            )));
        }
        let fps = frame_rate(&mut file, &camera_infos, frames.len()).map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            png: frames.iter().any(|f| f.encoding == Encoding::Png),
            frames,
            cut_off,
            width: first.width as u32,
            height: first.height as u32,
            fps,
            png_swapped: None,
            buf: Vec::new(),
        })
    }

    pub fn codec(&self) -> Codec {
        if self.png {
            Codec::FlirPng
        } else {
            Codec::FlirRaw
        }
    }

    pub fn len(&self) -> usize {
        self.frames.len() + usize::from(self.cut_off.is_some())
    }

    pub fn frame(&mut self, index: usize) -> Result<DynamicImage, VideoError> {
        let Some(&frame) = self.frames.get(index) else {
            return Err(VideoError::Truncated {
                path: self.path.clone(),
                container: "FLIR SEQ".into(),
                codec: self.codec().to_string(),
                decoded: self.frames.len(),
                total: self.len(),
                reason: self.cut_off.clone().unwrap_or_default(),
            });
        };
        let mut pixels = self.read_pixels(index, frame)?;
        if frame.encoding == Encoding::Png {
            let swapped = match self.png_swapped {
                Some(s) => s,
                None => {
                    let first = if index == 0 {
                        pixels.clone()
                    } else {
                        self.read_pixels(0, self.frames[0])?
                    };
                    let s = swapped_is_smoother(&first, self.width as usize);
                    self.png_swapped = Some(s);
                    s
                }
            };
            if swapped {
                pixels.iter_mut().for_each(|v| *v = v.swap_bytes());
            }
        }
        let img: ImageBuffer<Luma<u16>, Vec<u16>> =
            ImageBuffer::from_raw(self.width, self.height, pixels)
                .expect("pixel count checked when read");
        Ok(DynamicImage::ImageLuma16(img))
    }

    fn read_pixels(&mut self, index: usize, frame: FrameRef) -> Result<Vec<u16>, VideoError> {
        self.buf.resize(frame.len as usize, 0);
        self.file
            .seek(SeekFrom::Start(frame.offset))
            .and_then(|_| self.file.read_exact(&mut self.buf))
            .map_err(|e| VideoError::io(&self.path, e))?;
        let damaged = |reason: String| VideoError::Truncated {
            path: self.path.clone(),
            container: "FLIR SEQ".into(),
            codec: self.codec().to_string(),
            decoded: index,
            total: self.len(),
            reason: format!("frame {} is damaged: {reason}", index + 1),
        };
        match frame.encoding {
            Encoding::Raw { big_endian } => Ok(self
                .buf
                .chunks_exact(2)
                .map(|c| {
                    if big_endian {
                        u16::from_be_bytes([c[0], c[1]])
                    } else {
                        u16::from_le_bytes([c[0], c[1]])
                    }
                })
                .collect()),
            Encoding::Png => {
                let img = image::load_from_memory_with_format(&self.buf, ImageFormat::Png)
                    .map_err(|e| damaged(e.to_string()))?;
                if (img.width(), img.height()) != (self.width, self.height) {
                    return Err(damaged(format!(
                        "its PNG is {}x{} but the record says {}x{}",
                        img.width(),
                        img.height(),
                        self.width,
                        self.height
                    )));
                }
                Ok(match img {
                    DynamicImage::ImageLuma16(g) => g.into_raw(),
                    other => other.to_luma16().into_raw(),
                })
            }
        }
    }
}

/// True when reading each value byte-swapped gives the smoother picture.
fn swapped_is_smoother(pixels: &[u16], width: usize) -> bool {
    let roughness = |swap: bool| -> u64 {
        pixels
            .chunks_exact(width.max(1))
            .map(|row| {
                row.windows(2)
                    .map(|p| {
                        let (a, b) = if swap {
                            (p[0].swap_bytes(), p[1].swap_bytes())
                        } else {
                            (p[0], p[1])
                        };
                        a.abs_diff(b) as u64
                    })
                    .sum::<u64>()
            })
            .sum()
    };
    roughness(true) < roughness(false)
}

/// Searches forward from `from` for a valid FFF record start.
fn find_next(file: &mut File, from: u64, file_len: u64) -> std::io::Result<Option<u64>> {
    let end = (from + MAX_GAP).min(file_len);
    let mut chunk = vec![0u8; 64 << 10];
    let mut pos = from + 1;
    while pos + 4 <= end {
        let n = read_at(file, pos, &mut chunk)?;
        if n < 4 {
            break;
        }
        for i in 0..n - 3 {
            if &chunk[i..i + 4] == b"FFF\0" {
                let at = pos + i as u64;
                if let Some(Ok(_)) = read_record(file, at, file_len)? {
                    return Ok(Some(at));
                }
            }
        }
        pos += (n - 3) as u64;
    }
    Ok(None)
}

/// The camera's frame rate, else one from the first and last capture times, else 0.
fn frame_rate(file: &mut File, infos: &[(u64, u32)], frames: usize) -> std::io::Result<f64> {
    let mut read_info = |&(offset, len): &(u64, u32)| -> std::io::Result<Option<(u16, f64)>> {
        if len < 0x466 {
            return Ok(None);
        }
        let mut b = vec![0u8; 0x466];
        if read_at(file, offset, &mut b)? < b.len() {
            return Ok(None);
        }
        let big = u16_at(&b, 0, false) != 2 && u16_at(&b, 0, true) == 2;
        let rate = u16_at(&b, 0x464, big);
        let seconds = u32_at(&b, 0x384, big) as f64;
        let millis = (u32_at(&b, 0x388, big) & 0xffff) as f64;
        Ok(Some((rate, seconds + millis / 1000.0)))
    };
    let first = match infos.first() {
        Some(i) => read_info(i)?,
        None => None,
    };
    let Some((rate, t0)) = first else {
        return Ok(0.0);
    };
    if rate > 0 {
        return Ok(rate as f64);
    }
    if let (Some(last), true) = (infos.get(1), frames > 1) {
        if let Some((_, t1)) = read_info(last)? {
            if t1 > t0 {
                return Ok((frames - 1) as f64 / (t1 - t0));
            }
        }
    }
    Ok(0.0)
}
