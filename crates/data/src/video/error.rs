//! Video errors. Each names the file, what was found in it (container, codec) and what to do.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// The `ffmpeg` lines every "cannot read this" message offers: re-encode to what fgstp reads,
/// or split into frames (which every fgstp command also reads).
pub(crate) fn conversion_hint(path: &Path) -> String {
    let input = shell_quote(path);
    let stem = path
        .file_stem()
        .map_or_else(|| "video".into(), |s| s.to_string_lossy().into_owned());
    format!(
        "convert it to H.264 in MP4 with `ffmpeg -i {input} -c:v libx264 -pix_fmt yuv420p {stem}-h264.mp4`, \
         or to frames with `mkdir -p {stem}/images && ffmpeg -i {input} {stem}/images/frame_%05d.png`"
    )
}

fn shell_quote(path: &Path) -> String {
    let text = path.display().to_string();
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// "frames 1-N are readable; " for a file that breaks after N frames, nothing when none is.
fn readable_frames(decoded: usize) -> String {
    match decoded {
        0 => String::new(),
        1 => "frame 1 is readable; ".to_string(),
        n => format!("frames 1-{n} are readable; "),
    }
}

/// Everything that can go wrong reading or writing a video file.
#[derive(Debug, Error)]
pub enum VideoError {
    // Not a `source`: the message carries the cause, and a chain would print it twice.
    #[error("cannot read {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },

    /// One picture where a video was expected.
    #[error("{path} is a single still image, not a video: give the folder that holds the frames (the video's images, in natural order) instead")]
    StillImage { path: PathBuf },

    /// A container or codec fgstp recognises but does not decode (HEVC, MPEG-4 Part 2, AV1,
    /// Matroska, FLIR .csq, ...).
    #[error("{path} is {container} with {codec}, which fgstp does not decode{detail}: {hint}", hint = conversion_hint(.path))]
    Unsupported {
        path: PathBuf,
        container: String,
        codec: String,
        /// Extra context starting with "; " (or empty).
        detail: String,
    },

    /// The first bytes match no format fgstp knows.
    #[error("{path} is not a video fgstp reads (its first bytes are {magic}{guess}); fgstp reads H.264 MP4/MOV, AVI (MJPEG or uncompressed) and FLIR .seq: {hint}", hint = conversion_hint(.path))]
    UnknownFormat {
        path: PathBuf,
        /// The first bytes, in hex.
        magic: String,
        /// What the bytes or the extension suggest, starting with ", " (or empty).
        guess: String,
    },

    /// The headers are unreadable or inconsistent, so not even the frame count is known.
    #[error("{path} ({container}) is damaged: {reason}; if it was cut off while recording, try `ffmpeg -i {path} -c copy {fixed}`, otherwise re-export it", fixed = repaired_name(.path))]
    Corrupt {
        path: PathBuf,
        container: String,
        reason: String,
    },

    /// The file breaks part-way: frames `0..decoded` are readable, the rest are not.
    #[error("{path} ({container}, {codec}) breaks after {decoded} of {total} frames: {reason}; the file is truncated or damaged: re-copy or re-export it ({readable}`ffmpeg -i {path} -c copy {fixed}` may rescue the rest)", fixed = repaired_name(.path), readable = readable_frames(*.decoded))]
    Truncated {
        path: PathBuf,
        container: String,
        codec: String,
        decoded: usize,
        total: usize,
        reason: String,
    },

    #[error("frame index {index} is out of range: {path} has {frames} frames (0-based indices 0-{last})", last = .frames.saturating_sub(1))]
    OutOfRange {
        path: PathBuf,
        index: usize,
        frames: usize,
    },

    #[error("cannot write video {path}: {reason}")]
    Write { path: PathBuf, reason: String },

    #[error("cannot write video {path}: frame {index} is {width}x{height} but the video is {video_width}x{video_height}; resize the frame or start another video")]
    FrameSize {
        path: PathBuf,
        index: usize,
        width: u32,
        height: u32,
        video_width: u32,
        video_height: u32,
    },
}

fn repaired_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map_or_else(|| "video".into(), |s| s.to_string_lossy().into_owned());
    format!("{stem}-fixed.mp4")
}

impl VideoError {
    pub(crate) fn io(path: &Path, error: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            error,
        }
    }

    pub(crate) fn corrupt(path: &Path, container: &str, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            path: path.to_path_buf(),
            container: container.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(
        path: &Path,
        container: &str,
        codec: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        let detail = detail.into();
        Self::Unsupported {
            path: path.to_path_buf(),
            container: container.into(),
            codec: codec.into(),
            detail: if detail.is_empty() {
                detail
            } else {
                format!("; {detail}")
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_the_cause_once_and_no_empty_frame_range() {
        let io = VideoError::io(
            Path::new("v.mp4"),
            std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
        );
        let chain = format!("{:#}", anyhow::Error::new(io));
        assert_eq!(chain.matches("gone").count(), 1, "{chain}");
        let truncated = |decoded| {
            VideoError::Truncated {
                path: "v.mp4".into(),
                container: "MP4".into(),
                codec: "H.264".into(),
                decoded,
                total: 9,
                reason: "cut".into(),
            }
            .to_string()
        };
        assert!(!truncated(0).contains("frames 1-0"), "{}", truncated(0));
        assert!(
            truncated(0).contains("re-export it (`ffmpeg"),
            "{}",
            truncated(0)
        );
        assert!(
            truncated(1).contains("(frame 1 is readable; "),
            "{}",
            truncated(1)
        );
        assert!(
            truncated(4).contains("(frames 1-4 are readable; "),
            "{}",
            truncated(4)
        );
    }
}
