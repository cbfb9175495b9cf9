//! A small ISO base media (MP4/MOV) reader: the first video track's sample table.
//!
//! Only the boxes needed to find every video sample are read: `moov/trak/mdia` (`mdhd`
//! timescale, `hdlr` handler) and `minf/stbl` (`stsd` sample entry with its `avcC`, `stts`
//! durations, `ctts` composition offsets, `stss` sync samples, `stsz`/`stz2` sizes, `stsc`
//! sample-to-chunk, `stco`/`co64` chunk offsets). Samples are listed in decode order; display
//! order is their composition time (decode time + `ctts` offset). Edit lists are ignored: every
//! sample is a frame (players that honour an edit list may hide frames it trims; encoders put
//! one there to shift B-frame delay, which trims nothing). Fragmented MP4 (`moof`) is refused.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::error::VideoError;

/// One coded frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub offset: u64,
    pub size: u32,
    /// Composition (display) time in track timescale units.
    pub cts: i64,
    pub sync: bool,
}

/// The first video track of an MP4/MOV file.
#[derive(Debug)]
pub(crate) struct Mp4Video {
    /// "MP4" or "QuickTime MOV" (from the major brand), for messages.
    pub container: &'static str,
    /// Sample entry type: `avc1`, `avc3`, `hvc1`, `mp4v`, ...
    pub fourcc: [u8; 4],
    pub fps: f64,
    /// Decode order.
    pub samples: Vec<Sample>,
    /// The `avcC` box body (H.264 decoder configuration), when present.
    pub avcc: Option<Vec<u8>>,
    pub file_len: u64,
}

/// Longest `moov` we load (the index of a multi-hour recording is a few tens of MB).
const MAX_MOOV: u64 = 512 << 20;

fn fourcc_text(t: &[u8]) -> String {
    t.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '?'
            }
        })
        .collect()
}

/// Iterates the boxes of a byte range: (type, body).
struct Boxes<'a> {
    data: &'a [u8],
}

impl<'a> Iterator for Boxes<'a> {
    type Item = Result<([u8; 4], &'a [u8]), String>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.data.len() < 8 {
            return None;
        }
        let size32 = u32::from_be_bytes(self.data[0..4].try_into().unwrap()) as u64;
        let kind: [u8; 4] = self.data[4..8].try_into().unwrap();
        let (header, size) = match size32 {
            0 => (8, self.data.len() as u64),
            1 => {
                if self.data.len() < 16 {
                    self.data = &[];
                    return Some(Err(format!("box '{}' is cut short", fourcc_text(&kind))));
                }
                (16, u64::from_be_bytes(self.data[8..16].try_into().unwrap()))
            }
            n => (8, n),
        };
        if size < header as u64 || size > self.data.len() as u64 {
            self.data = &[];
            return Some(Err(format!(
                "box '{}' claims {size} bytes but {} remain",
                fourcc_text(&kind),
                self.data.len()
            )));
        }
        let body = &self.data[header..size as usize];
        self.data = &self.data[size as usize..];
        Some(Ok((kind, body)))
    }
}

fn boxes(data: &[u8]) -> Boxes<'_> {
    Boxes { data }
}

fn find<'a>(data: &'a [u8], kind: &[u8; 4]) -> Result<Option<&'a [u8]>, String> {
    for b in boxes(data) {
        let (k, body) = b?;
        if &k == kind {
            return Ok(Some(body));
        }
    }
    Ok(None)
}

/// Big-endian field reader over a box body; running off the end is an error, not a panic.
struct Be<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Be<'a> {
    fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, pos: 0, what }
    }
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.pos + n > self.data.len() {
            return Err(format!("'{}' box is cut short", self.what));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.bytes(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.bytes(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.bytes(8)?.try_into().unwrap()))
    }
    /// A full box's version (flags skipped).
    fn version(&mut self) -> Result<u8, String> {
        let v = self.u8()?;
        self.bytes(3)?;
        Ok(v)
    }
    /// An entry count, checked against the bytes left so a corrupt count cannot allocate GBs.
    fn count(&mut self, entry_bytes: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n.saturating_mul(entry_bytes) > self.data.len() - self.pos {
            return Err(format!(
                "'{}' box lists {n} entries but holds fewer",
                self.what
            ));
        }
        Ok(n)
    }
}

/// Reads the file's box structure and the first video track's sample table.
pub(crate) fn open(path: &Path) -> Result<Mp4Video, VideoError> {
    let mut file = File::open(path).map_err(|e| VideoError::io(path, e))?;
    let file_len = file.metadata().map_err(|e| VideoError::io(path, e))?.len();
    let mut pos = 0u64;
    let mut container = "MP4";
    let mut moov: Option<Vec<u8>> = None;
    let mut saw_mdat = false;
    let mut fragmented = false;
    let corrupt = |reason: String| VideoError::corrupt(path, "MP4", reason);
    while pos.saturating_add(8) <= file_len {
        file.seek(SeekFrom::Start(pos))
            .map_err(|e| VideoError::io(path, e))?;
        let mut head = [0u8; 16];
        let got = read_up_to(&mut file, &mut head).map_err(|e| VideoError::io(path, e))?;
        let size32 = u32::from_be_bytes(head[0..4].try_into().unwrap()) as u64;
        let kind: [u8; 4] = head[4..8].try_into().unwrap();
        let (header, size) = match size32 {
            0 => (8, file_len - pos),
            1 if got >= 16 => (16, u64::from_be_bytes(head[8..16].try_into().unwrap())),
            1 => {
                return Err(corrupt(format!(
                    "box '{}' is cut short",
                    fourcc_text(&kind)
                )))
            }
            n => (8, n),
        };
        if size < header {
            return Err(corrupt(format!(
                "box '{}' at byte {pos} has an impossible size {size}",
                fourcc_text(&kind)
            )));
        }
        match &kind {
            b"ftyp" if got >= 12 && &head[8..12] == b"qt  " => container = "QuickTime MOV",
            b"moov" => {
                if pos.saturating_add(size) > file_len {
                    return Err(corrupt(format!(
                        "its index ('moov' box, {size} bytes at byte {pos}) runs past the end of the file ({file_len} bytes): the file is truncated"
                    )));
                }
                if size - header > MAX_MOOV {
                    return Err(corrupt(format!(
                        "its index ('moov' box) is {size} bytes, more than fgstp reads"
                    )));
                }
                let mut body = vec![0u8; (size - header) as usize];
                file.seek(SeekFrom::Start(pos + header))
                    .map_err(|e| VideoError::io(path, e))?;
                file.read_exact(&mut body)
                    .map_err(|e| VideoError::io(path, e))?;
                moov = Some(body);
            }
            b"mdat" => saw_mdat = true,
            b"moof" => fragmented = true,
            _ => {}
        }
        pos = pos.saturating_add(size);
    }
    let Some(moov) = moov else {
        let reason = if saw_mdat {
            "it has video data ('mdat') but no index ('moov' box), which MP4 writers add when recording stops: the recording was cut off"
        } else {
            "it has no 'moov' box (the MP4 index): the file is truncated or not an MP4"
        };
        return Err(VideoError::corrupt(path, container, reason));
    };
    let corrupt = |reason: String| VideoError::corrupt(path, container, reason);
    let mut found = None;
    let mut handlers = Vec::new();
    for b in boxes(&moov) {
        let (kind, body) = b.map_err(corrupt)?;
        if &kind != b"trak" {
            continue;
        }
        let mdia = find(body, b"mdia").map_err(corrupt)?.unwrap_or(&[]);
        let handler = find(mdia, b"hdlr")
            .map_err(corrupt)?
            .and_then(|h| h.get(8..12))
            .map(|h| [h[0], h[1], h[2], h[3]])
            .unwrap_or(*b"????");
        if &handler == b"vide" {
            found = Some(mdia);
            break;
        }
        handlers.push(fourcc_text(&handler));
    }
    let Some(mdia) = found else {
        if fragmented {
            return Err(VideoError::unsupported(
                path,
                &format!("fragmented {container}"),
                "its video",
                "(fragments, 'moof' boxes, are not read)",
            ));
        }
        return Err(corrupt(format!(
            "it has no video track (tracks: {})",
            if handlers.is_empty() {
                "none".into()
            } else {
                handlers.join(", ")
            }
        )));
    };
    let mut video = parse_track(mdia).map_err(corrupt)?;
    if video.samples.is_empty() && fragmented {
        return Err(VideoError::unsupported(
            path,
            &format!("fragmented {container}"),
            codec_name(&video.fourcc),
            "(fragments, 'moof' boxes, are not read)",
        ));
    }
    video.container = container;
    video.file_len = file_len;
    Ok(video)
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// A human name for a sample entry type.
pub(crate) fn codec_name(fourcc: &[u8; 4]) -> String {
    match fourcc {
        b"avc1" | b"avc2" | b"avc3" | b"avc4" => "H.264/AVC".into(),
        b"hvc1" | b"hev1" => "H.265/HEVC".into(),
        b"mp4v" => "MPEG-4 Part 2 video".into(),
        b"av01" => "AV1".into(),
        b"vp08" => "VP8".into(),
        b"vp09" => "VP9".into(),
        b"mjpa" | b"mjpb" | b"jpeg" => "Motion JPEG".into(),
        b"apcn" | b"apch" | b"apcs" | b"apco" | b"ap4h" | b"ap4x" => "Apple ProRes".into(),
        b"s263" | b"h263" => "H.263".into(),
        b"encv" => "encrypted video".into(),
        b"raw " | b"2vuy" | b"yuv2" => "uncompressed video".into(),
        other => format!("'{}' video", fourcc_text(other)),
    }
}

fn parse_track(mdia: &[u8]) -> Result<Mp4Video, String> {
    let mdhd = find(mdia, b"mdhd")?.ok_or("the video track has no 'mdhd' box")?;
    let mut r = Be::new(mdhd, "mdhd");
    let timescale = match r.version()? {
        1 => {
            r.u64()?;
            r.u64()?;
            r.u32()?
        }
        _ => {
            r.u32()?;
            r.u32()?;
            r.u32()?
        }
    };
    if timescale == 0 {
        return Err("the video track's timescale is 0".into());
    }
    let minf = find(mdia, b"minf")?.ok_or("the video track has no 'minf' box")?;
    let stbl = find(minf, b"stbl")?.ok_or("the video track has no 'stbl' box")?;

    // Sample description: codec, size, avcC.
    let stsd = find(stbl, b"stsd")?.ok_or("the video track has no 'stsd' box")?;
    let mut r = Be::new(stsd, "stsd");
    r.version()?;
    if r.u32()? == 0 {
        return Err("the video track has no sample description".into());
    }
    let (fourcc, entry) = boxes(&stsd[8..])
        .next()
        .ok_or("the video track's sample description is empty")??;
    // VisualSampleEntry: 6 reserved, data_reference_index, 16 bytes predefined/reserved,
    // width, height, resolutions, reserved, frame_count, compressorname[32], depth, -1
    // (78 bytes after the box header), then codec boxes. The size comes from the SPS.
    let avcc = match entry.get(78..) {
        Some(children) => find(children, b"avcC").ok().flatten().map(<[u8]>::to_vec),
        None => None,
    };

    // Sizes.
    let sizes: Vec<u32> = if let Some(stsz) = find(stbl, b"stsz")? {
        let mut r = Be::new(stsz, "stsz");
        r.version()?;
        let fixed = r.u32()?;
        if fixed != 0 {
            let n = r.u32()? as usize;
            if n > 20_000_000 {
                return Err(format!("'stsz' lists {n} samples"));
            }
            vec![fixed; n]
        } else {
            let n = r.count(4)?;
            (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?
        }
    } else if let Some(stz2) = find(stbl, b"stz2")? {
        let mut r = Be::new(stz2, "stz2");
        r.version()?;
        r.bytes(3)?;
        let bits = r.u8()?;
        let n = r.u32()? as usize;
        let need = (n * bits as usize).div_ceil(8);
        let data = r.bytes(need)?;
        match bits {
            4 => (0..n)
                .map(|i| ((data[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 15) as u32)
                .collect(),
            8 => data.iter().map(|&b| b as u32).collect(),
            16 => data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
                .collect(),
            other => return Err(format!("'stz2' has field size {other}")),
        }
    } else {
        return Err("the video track has no sample sizes ('stsz')".into());
    };
    let count = sizes.len();

    // Chunk offsets and the sample-to-chunk map give each sample's file offset.
    let chunk_offsets: Vec<u64> = if let Some(stco) = find(stbl, b"stco")? {
        let mut r = Be::new(stco, "stco");
        r.version()?;
        let n = r.count(4)?;
        (0..n)
            .map(|_| r.u32().map(u64::from))
            .collect::<Result<_, _>>()?
    } else if let Some(co64) = find(stbl, b"co64")? {
        let mut r = Be::new(co64, "co64");
        r.version()?;
        let n = r.count(8)?;
        (0..n).map(|_| r.u64()).collect::<Result<_, _>>()?
    } else {
        return Err("the video track has no chunk offsets ('stco')".into());
    };
    let stsc = find(stbl, b"stsc")?.ok_or("the video track has no 'stsc' box")?;
    let mut r = Be::new(stsc, "stsc");
    r.version()?;
    let n = r.count(12)?;
    let mut runs = Vec::with_capacity(n);
    for _ in 0..n {
        let first_chunk = r.u32()? as usize;
        let per_chunk = r.u32()? as usize;
        r.u32()?;
        if first_chunk == 0 {
            return Err("'stsc' names chunk 0 (chunks count from 1)".into());
        }
        runs.push((first_chunk - 1, per_chunk));
    }
    let mut offsets = Vec::with_capacity(count);
    'chunks: for (run_index, &(first, per_chunk)) in runs.iter().enumerate() {
        let end = runs
            .get(run_index + 1)
            .map_or(chunk_offsets.len(), |r| r.0.min(chunk_offsets.len()));
        for &chunk_offset in chunk_offsets.get(first..end).unwrap_or(&[]) {
            let mut at = chunk_offset;
            for _ in 0..per_chunk {
                if offsets.len() == count {
                    break 'chunks;
                }
                offsets.push(at);
                // Saturating: an offset past any file is refused when the sample is read.
                at = at.saturating_add(sizes[offsets.len() - 1] as u64);
            }
        }
    }
    if offsets.len() < count {
        return Err(format!(
            "its chunk table places only {} of {count} samples",
            offsets.len()
        ));
    }

    // Decode times, then composition offsets.
    let mut deltas = Vec::with_capacity(count);
    if let Some(stts) = find(stbl, b"stts")? {
        let mut r = Be::new(stts, "stts");
        r.version()?;
        let n = r.count(8)?;
        for _ in 0..n {
            let run = r.u32()? as usize;
            let delta = r.u32()?;
            let take = run.min(count - deltas.len());
            deltas.extend(std::iter::repeat_n(delta, take));
        }
    }
    let last = deltas.last().copied().unwrap_or(1);
    deltas.resize(count, last);
    let mut ctts = vec![0i64; count];
    if let Some(body) = find(stbl, b"ctts")? {
        let mut r = Be::new(body, "ctts");
        r.version()?;
        let n = r.count(8)?;
        let mut i = 0;
        for _ in 0..n {
            let run = r.u32()? as usize;
            // Version 0 is unsigned on paper, but writers store negative offsets there too.
            let offset = r.u32()? as i32 as i64;
            // A run is cut at the last sample (a file's run can claim 4 billion).
            let take = run.min(count - i);
            ctts[i..i + take].fill(offset);
            i += take;
        }
    }
    let mut sync = vec![true; count];
    if let Some(stss) = find(stbl, b"stss")? {
        let mut r = Be::new(stss, "stss");
        r.version()?;
        let n = r.count(4)?;
        sync.iter_mut().for_each(|s| *s = false);
        for _ in 0..n {
            let k = r.u32()? as usize;
            if (1..=count).contains(&k) {
                sync[k - 1] = true;
            }
        }
    }
    let mut dts = 0i64;
    let samples = (0..count)
        .map(|i| {
            let s = Sample {
                offset: offsets[i],
                size: sizes[i],
                cts: dts + ctts[i],
                sync: sync[i],
            };
            dts += deltas[i] as i64;
            s
        })
        .collect();
    Ok(Mp4Video {
        container: "MP4",
        fourcc,
        fps: frame_rate(&deltas, timescale),
        samples,
        avcc,
        file_len: 0,
    })
}

/// Frames per second: timescale / the usual frame duration (exact for constant-rate video,
/// e.g. 30000/1001), or frames / duration when durations vary.
fn frame_rate(deltas: &[u32], timescale: u32) -> f64 {
    if deltas.is_empty() {
        return 0.0;
    }
    let mut counts = std::collections::HashMap::new();
    for &d in deltas {
        *counts.entry(d).or_insert(0usize) += 1;
    }
    let (&common, &n) = counts.iter().max_by_key(|(_, &n)| n).unwrap();
    if common > 0 && n * 10 >= deltas.len() * 9 {
        return timescale as f64 / common as f64;
    }
    let total: u64 = deltas.iter().map(|&d| d as u64).sum();
    if total == 0 {
        0.0
    } else {
        deltas.len() as f64 * timescale as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_rate_is_exact_for_ntsc_and_falls_back_to_the_mean() {
        assert_eq!(frame_rate(&[1001; 10], 30000), 30000.0 / 1001.0);
        let mut d = vec![1001; 20];
        d[19] = 500;
        assert_eq!(frame_rate(&d, 30000), 30000.0 / 1001.0);
        assert_eq!(frame_rate(&[1, 3], 4), 2.0);
    }

    fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend(kind);
        out.extend(body);
        out
    }

    /// A video track's `mdia` children: one sample of 1 byte at the chunk offset given, and
    /// the `ctts` runs given.
    fn track(chunk_offset: u64, ctts_runs: &[u32]) -> Vec<u8> {
        let full = |rest: &[u8]| [&[0u8; 4][..], rest].concat(); // version and flags first
        let mdhd = full(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 232]);
        let stsd = full(&[&1u32.to_be_bytes()[..], &mp4_box(b"avc1", &[0; 78])].concat());
        let stsz = full(&[0, 0, 0, 1, 0, 0, 0, 1]);
        let stsc = full(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1]);
        let co64 = full(&[&1u32.to_be_bytes()[..], &chunk_offset.to_be_bytes()].concat());
        let mut ctts = full(&(ctts_runs.len() as u32).to_be_bytes());
        for run in ctts_runs {
            ctts.extend(run.to_be_bytes());
            ctts.extend(0u32.to_be_bytes());
        }
        let stbl = [
            mp4_box(b"stsd", &stsd),
            mp4_box(b"stsz", &stsz),
            mp4_box(b"stsc", &stsc),
            mp4_box(b"co64", &co64),
            mp4_box(b"ctts", &ctts),
        ]
        .concat();
        let minf = mp4_box(b"stbl", &stbl);
        [mp4_box(b"mdhd", &mdhd), mp4_box(b"minf", &minf)].concat()
    }

    #[test]
    fn a_sample_table_with_extreme_values_parses_quickly_without_overflow() {
        let ordinary = parse_track(&track(48, &[1])).unwrap();
        assert_eq!(ordinary.samples.len(), 1);
        // A chunk offset at the end of the 64-bit range and 1000 runs of 4 billion samples:
        // no overflow, no hour-long loop (the sample's offset is refused when it is read).
        let started = std::time::Instant::now();
        let extreme = parse_track(&track(u64::MAX, &[u32::MAX; 1000])).unwrap();
        assert_eq!(extreme.samples.len(), 1);
        assert!(started.elapsed().as_secs_f64() < 1.0);
    }

    #[test]
    fn top_level_boxes_with_impossible_64_bit_sizes_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let ftyp = mp4_box(b"ftyp", b"isom\0\0\0\0");
        for kind in [b"free", b"moov"] {
            for size in [u64::MAX, u64::MAX - 7] {
                let mut file = ftyp.clone();
                file.extend(1u32.to_be_bytes());
                file.extend(kind);
                file.extend(size.to_be_bytes());
                let path = dir.path().join("v.mp4");
                std::fs::write(&path, &file).unwrap();
                assert!(open(&path).is_err(), "{} {size}", fourcc_text(kind));
            }
        }
    }

    #[test]
    fn boxes_refuse_sizes_past_the_end() {
        let data = [0, 0, 0, 50, b'f', b'r', b'e', b'e', 0, 0];
        assert!(boxes(&data).next().unwrap().is_err());
    }
}
