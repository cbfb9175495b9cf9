//! Dataset errors. Each one names the file or folder at fault and says what to do about it.

use std::path::PathBuf;

use thiserror::Error;

use crate::video::VideoError;

/// Everything that can be wrong with a dataset on disk (or a data config).
#[derive(Debug, Error)]
pub enum DataError {
    #[error("split folder {path} does not exist: create it, or set the split name in the data config to one of the folders under {root}", root = .path.parent().map_or_else(|| ".".into(), |p| p.display().to_string()))]
    MissingSplit { path: PathBuf },

    #[error("input {path} does not exist: give a video file (MP4, AVI, FLIR .seq), a folder of frames, a scene folder (with images/ or video.mp4), or a dataset split (<scene>/images/ or <scene>/video.mp4)")]
    MissingInput { path: PathBuf },

    #[error("split {path} has no scene folders: put each video in <split>/<scene>/images/ (frames) or <split>/<scene>/video.mp4 (one video file), and its PNG masks in <split>/<scene>/masks/")]
    EmptySplit { path: PathBuf },

    #[error("{path} is missing: every scene needs an images/ folder holding its frames (.jpg, .png, .tif, .tiff), or one video file named video.* (video.mp4, video.avi, video.seq) beside masks/")]
    MissingImages { path: PathBuf },

    #[error("{path} is missing: every scene needs a masks/ folder with one PNG mask per annotated frame (same file stem as the frame)")]
    MissingMasks { path: PathBuf },

    #[error("{path} has {count} frame(s) but a sample needs 3 consecutive frames: add frames or remove the scene")]
    TooFewFrames { path: PathBuf, count: usize },

    #[error("{path} is {width}x{height} but {first} is {first_width}x{first_height}: all frames of a scene must have one size; resize them or split the scene")]
    FrameSizeMismatch {
        path: PathBuf,
        width: u32,
        height: u32,
        first: PathBuf,
        first_width: u32,
        first_height: u32,
    },

    #[error("mask {path} is {width}x{height} but its frame {frame} is {frame_width}x{frame_height}: a mask must have its frame's size")]
    MaskSizeMismatch {
        path: PathBuf,
        width: u32,
        height: u32,
        frame: PathBuf,
        frame_width: u32,
        frame_height: u32,
    },

    #[error("mask {path} has no frame: expected {stem}.jpg/.png/.tif/.tiff in {images}; add the frame or delete the mask")]
    MaskWithoutFrame {
        path: PathBuf,
        stem: String,
        images: PathBuf,
    },

    #[error("{path} is not a frame: images/ may hold only .jpg, .jpeg, .png, .tif and .tiff files; move it elsewhere")]
    NotAFrame { path: PathBuf },

    #[error("{path} is not a mask: masks/ may hold only .png files (same stem as the frame); move it elsewhere")]
    NotAMask { path: PathBuf },

    #[error("mask {path} names no frame of {video} ({frames} frames): masks of a video scene are named frame_00001.png … frame_{last:05}.png after the 1-based frame number, as `fgstp frames` and `ffmpeg -i VIDEO frame_%05d.png` name the frames; rename or delete it", last = .frames)]
    MaskNotAVideoFrame {
        path: PathBuf,
        video: PathBuf,
        frames: usize,
    },

    #[error("{path} and {other} are both a scene's video (video.*): keep one of them")]
    TwoVideos { path: PathBuf, other: PathBuf },

    /// A video file that cannot be read (or breaks part-way); the message names the file,
    /// what it holds and a conversion command.
    #[error(transparent)]
    Video(#[from] VideoError),

    #[error("{path} and {other} are the same frame (one stem, two files): keep only one of them")]
    DuplicateFrame { path: PathBuf, other: PathBuf },

    #[error("cannot read image {path}: {reason}; the file is truncated or not an image: re-export it or remove it (and its mask)")]
    Unreadable { path: PathBuf, reason: String },

    #[error("{path} has {pixels} pixels, which fgstp does not read: use 8-bit or 16-bit grayscale/RGB (PNG, TIFF) or JPEG")]
    UnsupportedPixels { path: PathBuf, pixels: String },

    // Not a `source`: the message carries the cause, and a chain would print it twice.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("split {path} has no annotated frame with two following frames, so there is nothing to train on: add masks (masks/<frame stem>.png)")]
    NoTrainingSamples { path: PathBuf },

    #[error("cannot start {threads} data threads: {reason}; lower `threads` in the data config")]
    Threads { threads: usize, reason: String },

    #[error("cannot write {path}: {reason}; check the output folder's permissions and free space")]
    Write { path: PathBuf, reason: String },

    #[error("prior {path} is missing (the short-term prediction of frame {frame}; also looked for {other}): run `fgstp infer --save-maps` of the short-term SLT-Net on this split and point data.prior_dir at its maps/ folder")]
    MissingPrior {
        path: PathBuf,
        other: PathBuf,
        frame: PathBuf,
    },

    #[error("the samples need the short-term predictions (data.prior_dir) but none is set: set data.prior_dir to the maps/ folder `fgstp infer --save-maps` of the short-term SLT-Net wrote")]
    NoPriorDir,

    #[error("split {path} has no clip of {len} consecutive annotated frames to train on: add masks, shorten the clips (train.clip_frames) or add longer videos")]
    NoTrainingClips { path: PathBuf, len: usize },

    #[error("{reason}")]
    Resize { reason: String },
    #[error("cannot take frames from {video}: {reason}")]
    FrameSelection { video: PathBuf, reason: String },

    #[error("data config {path}: {reason}")]
    Config { path: PathBuf, reason: String },

    /// Generator settings that cannot be used (the reason names the flag or key).
    #[error("{0}")]
    Settings(String),

    #[error("{root} was generated with other [synth] settings or by another version of the generator than the config asks for ({record} says {made_with}, the config {wanted}): delete {root} to regenerate it, or point data.root elsewhere")]
    GeneratedWithOtherSettings {
        root: PathBuf,
        record: PathBuf,
        /// The recorded and the configured settings, as `SynthConfig`'s `Debug` shows them.
        made_with: String,
        wanted: String,
    },
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            error: source,
        }
    }

    pub(crate) fn unreadable(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        DataError::Unreadable {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_says_its_cause_once() {
        let e = DataError::io(
            "a/b.png",
            std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"),
        );
        let chain = format!("{:#}", anyhow::Error::new(e));
        assert_eq!(chain, "a/b.png: not UTF-8");
    }
}
