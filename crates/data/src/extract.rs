//! A video's frames as a dataset scene's `images/` (`fgstp frames`), so that footage can be
//! labelled and trained on.
//!
//! Frames are written as `OUT/images/frame_00001.png` … after their 1-based number in the video
//! (the names `ffmpeg -i VIDEO frame_%05d.png` gives), whatever `--every`/`--start` select, so
//! a mask drawn on an extracted frame also fits the video itself as a video scene
//! (`<scene>/video.mp4` + `masks/frame_NNNNN.png`). Pixels are written as decoded: 8-bit RGB
//! (H.264, MJPEG, BGR), 8-bit grey, or 16-bit grey PNG for 16-bit sources (raw counts, no
//! stretch), so that reading the PNGs gives exactly what reading the video gives.

use std::path::{Path, PathBuf};

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{DynamicImage, ImageEncoder};

use crate::error::{DataError, Result};
use crate::video::{VideoError, VideoInfo, VideoReader};
use crate::video_scene::frame_stem;

/// Which frames to write: 1-based numbers `start..=end`, every `every`-th from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameSelection {
    pub start: usize,
    /// Inclusive; `None`: the last frame.
    pub end: Option<usize>,
    pub every: usize,
}

impl Default for FrameSelection {
    fn default() -> Self {
        Self {
            start: 1,
            end: None,
            every: 1,
        }
    }
}

impl FrameSelection {
    /// The 0-based frame indices selected from a video of `frames` frames.
    pub fn indices(&self, frames: usize) -> Result<Vec<usize>, String> {
        if self.every == 0 {
            return Err("--every must be at least 1".into());
        }
        if self.start == 0 {
            return Err("--start is a 1-based frame number (the first frame is 1)".into());
        }
        if self.start > frames {
            return Err(format!(
                "--start {} is past the video's last frame ({frames})",
                self.start
            ));
        }
        let end = self.end.unwrap_or(frames);
        if end < self.start {
            return Err(format!(
                "--end {end} is before --start {}: nothing to write",
                self.start
            ));
        }
        let end = end.min(frames);
        Ok((self.start - 1..end).step_by(self.every).collect())
    }
}

/// What [`extract_frames`] wrote.
#[derive(Debug)]
pub struct Extracted {
    pub info: VideoInfo,
    /// `OUT/images`.
    pub images: PathBuf,
    /// Frames selected.
    pub selected: usize,
    /// Frames written (all selected ones, unless the video breaks).
    pub written: usize,
    /// 1-based numbers of the first and last frame written.
    pub first: Option<usize>,
    pub last: Option<usize>,
    /// Set when the video breaks part-way: the frames before the break are written, the
    /// rest are not (the caller must not report success).
    pub broken: Option<VideoError>,
}

/// Writes the frames `selection` picks from `video` to `out/images/frame_NNNNN.png`.
/// `on_start(selected)` is called once the count is known, `progress` once per frame written.
pub fn extract_frames(
    video: &Path,
    out: &Path,
    selection: &FrameSelection,
    on_start: impl FnOnce(usize),
    progress: &dyn Fn(),
) -> Result<Extracted> {
    let mut reader = VideoReader::open(video)?;
    let info = reader.info().clone();
    let indices = selection
        .indices(info.frames)
        .map_err(|reason| DataError::FrameSelection {
            video: video.to_path_buf(),
            reason,
        })?;
    let images = out.join("images");
    std::fs::create_dir_all(&images).map_err(|e| DataError::Write {
        path: images.clone(),
        reason: e.to_string(),
    })?;
    on_start(indices.len());
    let mut done = Extracted {
        info,
        images,
        selected: indices.len(),
        written: 0,
        first: None,
        last: None,
        broken: None,
    };
    for index in indices {
        let frame = match reader.frame(index) {
            Ok(frame) => frame,
            Err(e @ VideoError::Truncated { .. }) => {
                done.broken = Some(e);
                break;
            }
            Err(e) => return Err(e.into()),
        };
        let path = done.images.join(format!("{}.png", frame_stem(index)));
        write_png(&path, &frame)?;
        done.written += 1;
        done.first.get_or_insert(index + 1);
        done.last = Some(index + 1);
        progress();
    }
    Ok(done)
}

/// A PNG of the frame's own pixel format (RGB, grey or 16-bit grey).
pub fn write_png(path: &Path, frame: &DynamicImage) -> Result<()> {
    let fail = |reason: String| DataError::Write {
        path: path.to_path_buf(),
        reason,
    };
    let mut buf = Vec::new();
    PngEncoder::new_with_quality(&mut buf, CompressionType::Fast, FilterType::Adaptive)
        .write_image(
            frame.as_bytes(),
            frame.width(),
            frame.height(),
            frame.color().into(),
        )
        .map_err(|e| fail(e.to_string()))?;
    std::fs::write(path, buf).map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_is_one_based_inclusive_and_stepped() {
        let all = FrameSelection::default();
        assert_eq!(all.indices(4).unwrap(), vec![0, 1, 2, 3]);
        let some = FrameSelection {
            start: 2,
            end: Some(9),
            every: 3,
        };
        assert_eq!(some.indices(20).unwrap(), vec![1, 4, 7]);
        // An end past the video is clipped to its last frame.
        let long = FrameSelection {
            start: 3,
            end: Some(100),
            every: 1,
        };
        assert_eq!(long.indices(5).unwrap(), vec![2, 3, 4]);
        for bad in [
            FrameSelection { every: 0, ..all },
            FrameSelection { start: 0, ..all },
            FrameSelection { start: 6, ..all },
            FrameSelection {
                start: 3,
                end: Some(2),
                every: 1,
            },
        ] {
            assert!(bad.indices(5).is_err(), "{bad:?}");
        }
    }
}
