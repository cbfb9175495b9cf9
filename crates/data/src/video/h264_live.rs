//! Decoding a live H.264 stream (an RTSP camera): access units arrive one by one in Annex B
//! form with the parameter sets in-band before each key frame, and a picture is wanted for
//! each as soon as it is decoded.
//!
//! A stream can lose packets or carry damaged ones. A damaged access unit is an error here
//! (OpenH264's concealment is off), and every later frame predicts from a broken picture
//! until the next key frame: [`LiveH264Decoder`] refuses frames until one arrives
//! ([`LiveH264Decoder::resync`]) and counts what it dropped on the way.

use image::RgbImage;

use super::h264::{describe_state, Decoder, Picture, Sps};
use super::yuv::ColorSpace;

/// What became of one access unit.
#[derive(Debug)]
pub enum LiveFrame {
    /// A decoded picture.
    Picture(RgbImage),
    /// Nothing to show yet (OpenH264 holds the picture back, or the access unit carried only
    /// parameter sets).
    Pending,
    /// Dropped while waiting for a key frame after damage or loss.
    Dropped,
}

/// One stream's decoder. Frames are refused until the first key frame (a stream joined
/// mid-way starts with frames that predict from pictures never received).
pub struct LiveH264Decoder {
    decoder: Decoder,
    color: ColorSpace,
    awaiting_key_frame: bool,
    next_tag: u64,
    pictures: Vec<Picture>,
}

impl LiveH264Decoder {
    pub fn new() -> Result<Self, String> {
        Ok(Self {
            decoder: Decoder::new()?,
            color: ColorSpace::default(),
            awaiting_key_frame: true,
            next_tag: 1,
            pictures: Vec::new(),
        })
    }

    /// From now on, frames are dropped until the next key frame (after lost packets).
    pub fn resync(&mut self) {
        self.awaiting_key_frame = true;
    }

    /// Whether frames are being dropped until a key frame.
    pub fn awaiting_key_frame(&self) -> bool {
        self.awaiting_key_frame
    }

    /// Decodes one access unit (Annex B). `key_frame`: the sender marked it as a random
    /// access point. An `Err` is a damaged access unit; the decoder then waits for the next
    /// key frame by itself. A stream in a form fgstp does not decode (10-bit, interlaced,
    /// 4:2:2) is an `Err` at every key frame, naming what it is.
    pub fn decode(&mut self, annex_b: &[u8], key_frame: bool) -> Result<LiveFrame, String> {
        if let Some(sps) = nal_units(annex_b).find(|n| n.first().map(|b| b & 31) == Some(7)) {
            let sps = Sps::parse(sps).inspect_err(|_| self.resync())?;
            if let Some(reason) = sps.unsupported_reason() {
                self.resync();
                return Err(format!("the camera sends {reason}"));
            }
            self.color = sps.color;
        }
        if self.awaiting_key_frame {
            if !key_frame {
                return Ok(LiveFrame::Dropped);
            }
            self.awaiting_key_frame = false;
        }
        let tag = self.next_tag;
        self.next_tag += 1;
        self.pictures.clear();
        if let Err(state) = self.decoder.decode(annex_b, tag, &mut self.pictures) {
            self.resync();
            return Err(format!("damaged H.264 frame ({})", describe_state(state)));
        }
        Ok(match self.pictures.pop() {
            Some(picture) => LiveFrame::Picture(picture.yuv.to_rgb(self.color)),
            None => LiveFrame::Pending,
        })
    }
}

/// The NAL units of an Annex B buffer (without their start codes).
fn nal_units(annex_b: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= annex_b.len() {
        if annex_b[i] == 0 && annex_b[i + 1] == 0 && annex_b[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&s| {
            // The next start code, with a leading zero byte when it is a 4-byte one.
            let mut e = s - 3;
            while e > 0 && annex_b[e - 1] == 0 {
                e -= 1;
            }
            e
        })
        .chain(std::iter::once(annex_b.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .map(move |(s, e)| &annex_b[s..e.max(s)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::video::h264_encode::Encoder;
    use crate::video::Yuv420;
    use image::Rgb;

    #[test]
    fn nal_units_are_split_at_3_and_4_byte_start_codes() {
        let stream = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        let units: Vec<&[u8]> = nal_units(&stream).collect();
        assert_eq!(units, vec![&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 5]]);
    }

    /// Access units of an encoded clip, as Annex B, with the key-frame flag.
    fn encoded_clip(frames: u32) -> Vec<(Vec<u8>, bool)> {
        let mut encoder = Encoder::new(64, 48, 10.0, 24, 4).unwrap();
        (0..frames)
            .map(|i| {
                let img = RgbImage::from_fn(64, 48, |x, y| {
                    Rgb([((x + 3 * i) % 256) as u8, (y * 4) as u8, 128])
                });
                let (nals, key) = encoder
                    .encode(&Yuv420::from_rgb(&img), i as i64 * 100)
                    .unwrap();
                let mut unit = Vec::new();
                for nal in nals {
                    unit.extend_from_slice(&[0, 0, 0, 1]);
                    unit.extend_from_slice(&nal);
                }
                (unit, key)
            })
            .collect()
    }

    #[test]
    fn frames_before_the_first_key_frame_and_after_damage_are_dropped_until_the_next() {
        let units = encoded_clip(12);
        assert!(
            units[0].1 && units[4].1 && !units[1].1,
            "key frames every 4"
        );
        let mut decoder = LiveH264Decoder::new().unwrap();
        // Joined mid-way: frames 1-3 predict from a picture never received.
        for (data, key) in &units[1..4] {
            assert!(matches!(decoder.decode(data, *key), Ok(LiveFrame::Dropped)));
        }
        assert!(matches!(
            decoder.decode(&units[4].0, true),
            Ok(LiveFrame::Picture(_))
        ));
        // A truncated access unit is an error, and the next frames wait for key frame 8.
        let (cut, key) = &units[5];
        let cut = &cut[..cut.len() / 2];
        let damaged = decoder.decode(cut, *key);
        assert!(damaged.is_err(), "{damaged:?}");
        assert!(decoder.awaiting_key_frame());
        for (data, key) in &units[6..8] {
            assert!(matches!(decoder.decode(data, *key), Ok(LiveFrame::Dropped)));
        }
        for (data, key) in &units[8..12] {
            assert!(matches!(
                decoder.decode(data, *key),
                Ok(LiveFrame::Picture(_))
            ));
        }
    }
}
