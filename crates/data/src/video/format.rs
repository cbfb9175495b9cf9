//! What a video file is: its container and codec (own file so that the readers can name them
//! without depending on the module that dispatches to them).

use std::fmt;

/// The container a video was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Container {
    /// ISO base media: MP4, and QuickTime MOV.
    Mp4,
    Avi,
    /// FLIR `.seq`: FFF records.
    FlirSeq,
}

/// The codec (or pixel layout) of the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    Mjpeg,
    /// Uncompressed 8-bit grey.
    Gray8,
    /// Uncompressed 16-bit grey.
    Gray16,
    /// Uncompressed BGR (24/32-bit) or 8-bit palette.
    Bgr,
    /// FLIR raw uint16.
    FlirRaw,
    /// FLIR PNG-compressed uint16.
    FlirPng,
}

impl fmt::Display for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mp4 => "MP4",
            Self::Avi => "AVI",
            Self::FlirSeq => "FLIR SEQ",
        })
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::H264 => "H.264",
            Self::Mjpeg => "Motion JPEG",
            Self::Gray8 => "uncompressed 8-bit grey",
            Self::Gray16 => "uncompressed 16-bit grey",
            Self::Bgr => "uncompressed RGB",
            Self::FlirRaw => "raw 16-bit thermal",
            Self::FlirPng => "PNG-compressed 16-bit thermal",
        })
    }
}
