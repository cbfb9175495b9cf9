//! H.264 bitstream plumbing (avcC, SPS, Annex B) and the OpenH264 decoder.
//!
//! MP4 stores H.264 as length-prefixed NAL units with the parameter sets (SPS/PPS) in the
//! `avcC` box; OpenH264 wants Annex B (start codes, parameter sets in-band). [`Decoder`] tags
//! each access unit with a number, and every picture comes out with the tag of the access
//! unit it was decoded from, so the caller places it by the container's composition time
//! whatever order OpenH264 releases pictures in (its reordering guesses from POC LSBs).
//! Pictures OpenH264 still holds at the end of the stream are taken with [`Decoder::drain`].
//! (Draining after every access unit would be simpler but leaks picture buffers: OpenH264
//! 2.6's `FlushFrame` does not release a flushed picture's reference in single-threaded
//! mode, and decoding stops with "out of memory" after a few B-frames.)

use std::ffi::c_void;
use std::ptr::null_mut;

use openh264_sys2::{
    source::APILoader, ISVCDecoder, SBufferInfo, SDecodingParam, SVideoProperty,
    DECODER_OPTION_ERROR_CON_IDC, DECODER_OPTION_NUM_OF_FRAMES_REMAINING_IN_BUFFER,
    DECODER_OPTION_TRACE_LEVEL, ERROR_CON_DISABLE, VIDEO_BITSTREAM_AVC, WELS_LOG_QUIET,
};

use super::yuv::{ColorSpace, Matrix, Yuv420};

/// The parsed `avcC` box (AVCDecoderConfigurationRecord).
#[derive(Debug, Clone)]
pub(crate) struct AvcConfig {
    /// Bytes of each NAL unit's length prefix (1, 2 or 4).
    pub length_size: usize,
    pub sps: Vec<Vec<u8>>,
    pub pps: Vec<Vec<u8>>,
}

impl AvcConfig {
    pub fn parse(b: &[u8]) -> Result<Self, String> {
        let short = || "its 'avcC' box (H.264 parameter sets) is cut short".to_string();
        if b.len() < 7 || b[0] != 1 {
            return Err("its 'avcC' box (H.264 parameter sets) is not version 1".into());
        }
        let length_size = (b[4] & 3) as usize + 1;
        if length_size == 3 {
            return Err(
                "its 'avcC' box gives 3-byte NAL lengths, which H.264 does not allow".into(),
            );
        }
        let mut pos = 5;
        let read_sets = |count: usize, pos: &mut usize| -> Result<Vec<Vec<u8>>, String> {
            let mut sets = Vec::with_capacity(count);
            for _ in 0..count {
                let len = u16::from_be_bytes(
                    b.get(*pos..*pos + 2).ok_or_else(short)?.try_into().unwrap(),
                ) as usize;
                *pos += 2;
                sets.push(b.get(*pos..*pos + len).ok_or_else(short)?.to_vec());
                *pos += len;
            }
            Ok(sets)
        };
        let n_sps = (b[5] & 31) as usize;
        pos += 1;
        let sps = read_sets(n_sps, &mut pos)?;
        let n_pps = *b.get(pos).ok_or_else(short)? as usize;
        pos += 1;
        let pps = read_sets(n_pps, &mut pos)?;
        Ok(Self {
            length_size,
            sps,
            pps,
        })
    }

    /// SPS and PPS as Annex B, fed before the first access unit after a (re)start.
    pub fn annex_b_parameter_sets(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for nal in self.sps.iter().chain(&self.pps) {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        }
        out
    }
}

/// Appends a length-prefixed access unit to `out` as Annex B.
pub(crate) fn length_prefixed_to_annex_b(
    sample: &[u8],
    length_size: usize,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let mut pos = 0;
    while pos < sample.len() {
        let Some(prefix) = sample.get(pos..pos + length_size) else {
            return Err(format!(
                "a NAL length prefix at byte {pos} of {} is cut short",
                sample.len()
            ));
        };
        let len = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        pos += length_size;
        let Some(nal) = sample.get(pos..pos + len) else {
            return Err(format!(
                "a NAL unit of {len} bytes at byte {pos} runs past the sample's {} bytes",
                sample.len()
            ));
        };
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
        pos += len;
    }
    Ok(())
}

/// What the decoder needs to know from the sequence parameter set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sps {
    pub profile_idc: u8,
    pub chroma_format_idc: u32,
    pub bit_depth_luma: u32,
    pub bit_depth_chroma: u32,
    pub frame_mbs_only: bool,
    /// Cropped (displayed) size.
    pub width: u32,
    pub height: u32,
    pub color: ColorSpace,
}

pub(crate) fn profile_name(profile_idc: u8) -> &'static str {
    match profile_idc {
        66 => "Baseline",
        77 => "Main",
        88 => "Extended",
        100 => "High",
        110 => "High 10",
        122 => "High 4:2:2",
        244 => "High 4:4:4 Predictive",
        44 => "CAVLC 4:4:4 Intra",
        83 | 86 => "Scalable",
        118 | 128 => "Multiview",
        _ => "unknown",
    }
}

/// Exp-Golomb bit reader over an RBSP (emulation prevention bytes removed).
struct Bits {
    data: Vec<u8>,
    pos: usize,
}

impl Bits {
    fn new(nal_payload: &[u8]) -> Self {
        let mut data = Vec::with_capacity(nal_payload.len());
        let mut zeros = 0;
        for &b in nal_payload {
            if zeros >= 2 && b == 3 {
                zeros = 0;
                continue;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            data.push(b);
        }
        Self { data, pos: 0 }
    }
    fn bit(&mut self) -> Result<u32, String> {
        let byte = *self
            .data
            .get(self.pos / 8)
            .ok_or("its SPS (H.264 sequence parameter set) is cut short")?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(bit as u32)
    }
    fn bits(&mut self, n: u32) -> Result<u32, String> {
        (0..n).try_fold(0, |acc, _| Ok((acc << 1) | self.bit()?))
    }
    fn flag(&mut self) -> Result<bool, String> {
        Ok(self.bit()? == 1)
    }
    fn ue(&mut self) -> Result<u32, String> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err("its SPS has an invalid Exp-Golomb code".into());
            }
        }
        Ok(((1u64 << zeros) - 1 + self.bits(zeros)? as u64) as u32)
    }
    fn se(&mut self) -> Result<i32, String> {
        let k = self.ue()? as i64;
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) } as i32)
    }
}

impl Sps {
    /// Parses an SPS NAL unit (with its 1-byte NAL header).
    pub fn parse(nal: &[u8]) -> Result<Self, String> {
        if nal.is_empty() || nal[0] & 31 != 7 {
            return Err("its first parameter set is not an SPS".into());
        }
        let mut r = Bits::new(&nal[1..]);
        let profile_idc = r.bits(8)? as u8;
        r.bits(16)?; // constraint flags, level
        r.ue()?; // sps id
        let (mut chroma_format_idc, mut bit_depth_luma, mut bit_depth_chroma) = (1, 8, 8);
        if matches!(
            profile_idc,
            100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
        ) {
            chroma_format_idc = r.ue()?;
            if chroma_format_idc == 3 {
                r.flag()?; // separate colour planes
            }
            // Saturating: a camera's nonsense must not overflow (the depth is refused later).
            bit_depth_luma = r.ue()?.saturating_add(8);
            bit_depth_chroma = r.ue()?.saturating_add(8);
            r.flag()?; // qpprime_y_zero_transform_bypass
            if r.flag()? {
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.flag()? {
                        let size = if i < 6 { 16 } else { 64 };
                        let (mut last, mut next) = (8i32, 8i32);
                        for _ in 0..size {
                            if next != 0 {
                                let delta = i64::from(r.se()?);
                                next = (i64::from(last) + delta + 256).rem_euclid(256) as i32;
                            }
                            if next != 0 {
                                last = next;
                            }
                        }
                    }
                }
            }
        }
        r.ue()?; // log2_max_frame_num - 4
        match r.ue()? {
            0 => {
                r.ue()?;
            }
            1 => {
                r.flag()?;
                r.se()?;
                r.se()?;
                let n = r.ue()?;
                if n > 255 {
                    return Err("its SPS has an invalid POC cycle".into());
                }
                for _ in 0..n {
                    r.se()?;
                }
            }
            _ => {}
        }
        r.ue()?; // max_num_ref_frames
        r.flag()?; // gaps allowed
        let width_mbs = r.ue()? + 1;
        let height_map_units = r.ue()? + 1;
        if width_mbs > 1024 || height_map_units > 1024 {
            return Err(format!(
                "its SPS gives an impossible size of {width_mbs}x{height_map_units} macroblocks"
            ));
        }
        let frame_mbs_only = r.flag()?;
        if !frame_mbs_only {
            r.flag()?; // mb_adaptive_frame_field
        }
        r.flag()?; // direct_8x8_inference
        let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0, 0, 0, 0);
        if r.flag()? {
            crop_l = r.ue()?;
            crop_r = r.ue()?;
            crop_t = r.ue()?;
            crop_b = r.ue()?;
        }
        let mut color = ColorSpace::default();
        if r.flag()? {
            // VUI: only the video signal type matters here.
            if r.flag()? && r.bits(8)? == 255 {
                r.bits(32)?; // extended sample aspect ratio
            }
            if r.flag()? {
                r.flag()?; // overscan appropriate
            }
            if r.flag()? {
                r.bits(3)?; // video format
                color.full_range = r.flag()?;
                if r.flag()? {
                    r.bits(16)?; // primaries, transfer
                    color.matrix = match r.bits(8)? {
                        1 => Matrix::Bt709,
                        9 | 10 => Matrix::Bt2020,
                        _ => Matrix::Bt601,
                    };
                }
            }
        }
        let (sub_w, sub_h) = match chroma_format_idc {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let field_factor = if frame_mbs_only { 1 } else { 2 };
        let crop_unit_x = sub_w;
        let crop_unit_y = sub_h * field_factor;
        let full_w = width_mbs * 16;
        let full_h = height_map_units * 16 * field_factor;
        let crop = |unit: u32, a: u32, b: u32| unit.saturating_mul(a.saturating_add(b));
        let width = full_w.saturating_sub(crop(crop_unit_x, crop_l, crop_r));
        let height = full_h.saturating_sub(crop(crop_unit_y, crop_t, crop_b));
        Ok(Self {
            profile_idc,
            chroma_format_idc,
            bit_depth_luma,
            bit_depth_chroma,
            frame_mbs_only,
            width,
            height,
            color,
        })
    }

    /// Why OpenH264 cannot decode this stream, if it cannot: it decodes progressive 8-bit 4:2:0
    /// (Baseline, Main and High profiles, CAVLC or CABAC, B-frames).
    pub fn unsupported_reason(&self) -> Option<String> {
        let profile = format!(
            "H.264 {} profile (profile_idc {})",
            profile_name(self.profile_idc),
            self.profile_idc
        );
        if self.chroma_format_idc != 1 {
            let chroma = match self.chroma_format_idc {
                0 => "4:0:0 (monochrome)",
                2 => "4:2:2",
                _ => "4:4:4",
            };
            return Some(format!(
                "{profile} with {chroma} chroma; fgstp decodes 4:2:0 only"
            ));
        }
        if self.bit_depth_luma != 8 || self.bit_depth_chroma != 8 {
            return Some(format!(
                "{profile} with {}-bit samples; fgstp decodes 8-bit H.264 only",
                self.bit_depth_luma
            ));
        }
        if !self.frame_mbs_only {
            return Some(format!(
                "{profile}, interlaced (field/MBAFF coding); fgstp decodes progressive H.264 only"
            ));
        }
        None
    }
}

/// One decoded picture and the tag of the access unit it came from.
pub(crate) struct Picture {
    pub tag: u64,
    pub yuv: Yuv420,
}

/// The OpenH264 decoder, single-threaded, error concealment off (a damaged frame is an error,
/// not a smeared picture).
pub(crate) struct Decoder {
    raw: *mut ISVCDecoder,
}

// The decoder object is plain heap state owned by this handle; OpenH264 keeps no
// thread-local state for a single-threaded decoder.
unsafe impl Send for Decoder {}

impl Decoder {
    pub fn new() -> Result<Self, String> {
        let mut raw: *mut ISVCDecoder = null_mut();
        // SAFETY: WelsCreateDecoder writes a fresh decoder pointer (or fails); every vtable
        // call below goes through that pointer while this handle owns it.
        unsafe {
            if APILoader::WelsCreateDecoder(&mut raw) != 0 || raw.is_null() {
                return Err("OpenH264 could not create a decoder".into());
            }
            let decoder = Self { raw };
            let vt = &**raw;
            let param = SDecodingParam {
                eEcActiveIdc: ERROR_CON_DISABLE,
                sVideoProperty: SVideoProperty {
                    size: std::mem::size_of::<SVideoProperty>() as u32,
                    eVideoBsType: VIDEO_BITSTREAM_AVC,
                },
                ..Default::default()
            };
            if (vt.Initialize.ok_or("OpenH264 decoder has no Initialize")?)(raw, &param) != 0 {
                return Err("OpenH264 could not initialise a decoder".into());
            }
            let set = vt.SetOption.ok_or("OpenH264 decoder has no SetOption")?;
            let mut quiet = if std::env::var_os("FGSTP_H264_DEBUG").is_some() {
                15
            } else {
                WELS_LOG_QUIET
            };
            set(
                raw,
                DECODER_OPTION_TRACE_LEVEL,
                (&raw mut quiet).cast::<c_void>(),
            );
            let mut no_concealment = ERROR_CON_DISABLE;
            set(
                raw,
                DECODER_OPTION_ERROR_CON_IDC,
                (&raw mut no_concealment).cast::<c_void>(),
            );
            Ok(decoder)
        }
    }

    /// Decodes one access unit (Annex B) tagged `tag` (> 0) and appends the picture OpenH264
    /// releases, if any. Returns OpenH264's error bits when it reports a problem.
    pub fn decode(&mut self, annex_b: &[u8], tag: u64, out: &mut Vec<Picture>) -> Result<(), i32> {
        let mut dst: [*mut u8; 3] = [null_mut(); 3];
        let mut info = SBufferInfo {
            uiInBsTimeStamp: tag,
            ..Default::default()
        };
        // SAFETY: src/len describe a live slice; dst and info are valid out-parameters; the
        // returned plane pointers are read (copied) before the next call into the decoder.
        let state = unsafe {
            let vt = &**self.raw;
            let decode = vt
                .DecodeFrameNoDelay
                .expect("OpenH264 vtable has DecodeFrameNoDelay");
            decode(
                self.raw,
                annex_b.as_ptr(),
                annex_b.len() as i32,
                dst.as_mut_ptr(),
                &mut info,
            )
        };
        if info.iBufferStatus == 1 {
            out.push(copy_picture(&dst, &info));
        }
        if state != 0 {
            return Err(state);
        }
        Ok(())
    }

    /// Takes every picture OpenH264 still holds back; only at the end of the stream (see the
    /// module docs).
    pub fn drain(&mut self, out: &mut Vec<Picture>) {
        // SAFETY: as in `decode`.
        unsafe {
            let vt = &**self.raw;
            let (Some(get), Some(flush)) = (vt.GetOption, vt.FlushFrame) else {
                return;
            };
            for _ in 0..64 {
                let mut remaining: i32 = 0;
                get(
                    self.raw,
                    DECODER_OPTION_NUM_OF_FRAMES_REMAINING_IN_BUFFER,
                    (&raw mut remaining).cast::<c_void>(),
                );
                if remaining <= 0 {
                    break;
                }
                let mut dst: [*mut u8; 3] = [null_mut(); 3];
                let mut info = SBufferInfo::default();
                flush(self.raw, dst.as_mut_ptr(), &mut info);
                if info.iBufferStatus != 1 {
                    break;
                }
                out.push(copy_picture(&dst, &info));
            }
        }
    }
}

fn copy_picture(dst: &[*mut u8; 3], info: &SBufferInfo) -> Picture {
    // SAFETY: OpenH264 reported a ready picture: dst holds three planes of the given size and
    // strides (chroma half size, rounded up), valid until the next decoder call.
    unsafe {
        let buf = info.UsrData.sSystemBuffer;
        let (w, h) = (buf.iWidth.max(0) as usize, buf.iHeight.max(0) as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let plane = |p: *mut u8, stride: i32, pw: usize, ph: usize| {
            let mut out = Vec::with_capacity(pw * ph);
            for row in 0..ph {
                let start = p.add(row * stride as usize);
                out.extend_from_slice(std::slice::from_raw_parts(start, pw));
            }
            out
        };
        Picture {
            tag: info.uiOutYuvTimeStamp,
            yuv: Yuv420 {
                width: w as u32,
                height: h as u32,
                y: plane(dst[0], buf.iStride[0], w, h),
                u: plane(dst[1], buf.iStride[1], cw, ch),
                v: plane(dst[2], buf.iStride[1], cw, ch),
            },
        }
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: raw came from WelsCreateDecoder and is released exactly once.
        unsafe {
            if let Some(uninit) = (**self.raw).Uninitialize {
                uninit(self.raw);
            }
            APILoader::WelsDestroyDecoder(self.raw);
        }
    }
}

/// Describes OpenH264's DECODING_STATE bits.
pub(crate) fn describe_state(state: i32) -> String {
    let names = [
        (0x01, "frame pending"),
        (0x02, "reference lost"),
        (0x04, "bitstream error"),
        (0x08, "dependent layer lost"),
        (0x10, "no parameter sets"),
        (0x20, "data error concealed"),
        (0x40, "reference list null"),
        (0x1000, "invalid argument"),
        (0x2000, "initialisation expected"),
        (0x4000, "out of memory"),
        (0x8000, "dst buffer needs expansion"),
    ];
    let found: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| state & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    if found.is_empty() {
        format!("decoder state {state:#x}")
    } else {
        format!("the H.264 decoder reports {}", found.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annex_b_conversion_and_cut_short_units() {
        let mut out = Vec::new();
        length_prefixed_to_annex_b(&[0, 0, 0, 2, 0x65, 0xAA, 0, 0, 0, 1, 0x41], 4, &mut out)
            .unwrap();
        assert_eq!(out, [0, 0, 0, 1, 0x65, 0xAA, 0, 0, 0, 1, 0x41]);
        assert!(length_prefixed_to_annex_b(&[0, 0, 0, 9, 0x65], 4, &mut out).is_err());
    }

    /// Bits written MSB first, with Exp-Golomb codes.
    #[derive(Default)]
    struct BitWriter(Vec<bool>);

    impl BitWriter {
        fn bits(&mut self, value: u64, n: u32) -> &mut Self {
            self.0.extend((0..n).rev().map(|i| value >> i & 1 == 1));
            self
        }
        fn ue(&mut self, value: u64) -> &mut Self {
            let n = 64 - (value + 1).leading_zeros();
            self.bits(0, n - 1).bits(value + 1, n)
        }
        fn bytes(&self) -> Vec<u8> {
            self.0
                .chunks(8)
                .map(|c| {
                    c.iter()
                        .enumerate()
                        .fold(0u8, |b, (i, &v)| b | u8::from(v) << (7 - i))
                })
                .collect()
        }
    }

    #[test]
    fn an_sps_with_extreme_values_is_an_error_or_a_size_never_a_panic() {
        // High profile, 4:2:0, bit depths of 2^32 − 2 + 8, a scaling list whose deltas are the
        // largest codes, then the stream ends.
        let mut w = BitWriter::default();
        w.bits(0x67, 8).bits(100, 8).bits(0, 16).ue(0).ue(1);
        w.ue(u64::from(u32::MAX) - 1).ue(u64::from(u32::MAX) - 1);
        w.bits(0, 1).bits(1, 1).bits(1, 1);
        for _ in 0..3 {
            w.ue(u64::from(u32::MAX) - 1);
        }
        assert!(Sps::parse(&w.bytes()).is_err());

        // Baseline profile with a crop of 2^32 − 2 on every side: a size of 0, not an overflow.
        let mut w = BitWriter::default();
        w.bits(0x67, 8).bits(66, 8).bits(0, 16).ue(0);
        w.ue(0).ue(0).ue(0).ue(1); // frame num, POC type 0 and its length, 1 reference
        w.bits(0, 1).ue(19).ue(14).bits(1, 1).bits(1, 1); // no gaps, 320x240, frame MBs, 8x8
        w.bits(1, 1);
        for _ in 0..4 {
            w.ue(u64::from(u32::MAX) - 1);
        }
        w.bits(0, 1).bits(1, 8); // no VUI, stop bit
        let sps = Sps::parse(&w.bytes()).unwrap();
        assert_eq!((sps.width, sps.height), (0, 0));
    }

    #[test]
    fn exp_golomb() {
        // 1 -> 0, 010 -> 1, 011 -> 2, 00100 -> 3
        let mut r = Bits::new(&[0b1010_0110, 0b0100_0000]);
        assert_eq!(
            (
                r.ue().unwrap(),
                r.ue().unwrap(),
                r.ue().unwrap(),
                r.ue().unwrap()
            ),
            (0, 1, 2, 3)
        );
    }
}
