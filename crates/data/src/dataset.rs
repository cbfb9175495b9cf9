//! The on-disk layout (the reference's, GasVid):
//!
//! ```text
//! ROOT/<split>/<scene>/images/<frame>.{jpg,jpeg,png,tif,tiff}
//! ROOT/<split>/<scene>/masks/<frame>.png          (same stem; any subset of the frames)
//! ```
//!
//! or, for a scene recorded as one video file (see [`crate::video_scene`]):
//!
//! ```text
//! ROOT/<split>/<scene>/video.mp4                   (or video.avi, video.seq: read by content)
//! ROOT/<split>/<scene>/masks/frame_00001.png       (1-based frame numbers, any subset)
//! ```
//!
//! A scene with both `images/` and a video reads `images/` (`fgstp synth --video` writes the
//! video beside the frames, for viewing). Opening a split lists and checks it (file names,
//! frame counts, sizes from the image or video headers); pixels are only decoded when a sample
//! is built, or by [`Split::verify_pixels`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use image::{ColorType, DynamicImage, ImageDecoder, ImageReader, RgbImage};
use rayon::prelude::*;

use crate::config::SixteenBit;
use crate::decode::{is_sixteen_bit, load_raw, raw_range, to_rgb8};
use crate::error::{DataError, Result};
use crate::natural_order::natural_cmp;
use crate::video_scene::{color_of, find_video, frame_index, frame_stem, DecodePool, VideoFrames};

const FRAME_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "tif", "tiff"];

/// Whether a scene must have a `masks/` folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Masks {
    /// Training and evaluation: `masks/` must exist (it may hold masks for only some frames).
    Required,
    /// Inference: `masks/` may be absent.
    Optional,
}

/// One frame of a video and its mask, if annotated.
#[derive(Debug, Clone)]
pub struct Frame {
    /// File name in `images/`, e.g. `00012.png`; in a video scene `frame_00001` (1-based).
    pub name: String,
    /// The file holding the frame's pixels: its image, or the scene's video file.
    pub image: PathBuf,
    pub mask: Option<PathBuf>,
    /// Pixel format from the file header.
    pub color: ColorType,
}

impl Frame {
    /// The frame's name without its extension, which outputs are named after: `00012` for
    /// `images/00012.png`, `frame_00001` for the first frame of a video.
    pub fn stem(&self) -> &str {
        split_stem(&self.name).0
    }
}

/// One video: its frames in natural order (or the video file's order), all of one size.
#[derive(Debug)]
pub struct Scene {
    pub name: String,
    /// The scene folder (for a video file given directly to `infer`: that file).
    pub dir: PathBuf,
    pub frames: Vec<Frame>,
    pub width: u32,
    pub height: u32,
    /// Raw 16-bit range over all frames, computed on first use (`sixteen_bit = "per-video"`).
    pub(crate) video_range: OnceLock<(u16, u16)>,
    /// Set when the frames come from one video file rather than `images/`.
    video: Option<VideoFrames>,
}

impl Scene {
    /// The video file the frames come from, if they do.
    pub fn video(&self) -> Option<&VideoFrames> {
        self.video.as_ref()
    }

    /// Frame `index` as stored: 8-bit gray/RGB, or 16-bit as the camera wrote it.
    pub fn load_raw_frame(&self, index: usize) -> Result<Arc<DynamicImage>> {
        match &self.video {
            Some(video) => video.frame(index),
            None => load_raw(&self.frames[index].image).map(Arc::new),
        }
    }

    pub fn mask_count(&self) -> usize {
        self.frames.iter().filter(|f| f.mask.is_some()).count()
    }

    /// Frame `index` as 8-bit RGB, 16-bit frames mapped by `mode`.
    pub fn load_frame(&self, index: usize, mode: SixteenBit) -> Result<RgbImage> {
        let img = self.load_raw_frame(index)?;
        if !is_sixteen_bit(&img) {
            return Ok(to_rgb8(&img, None));
        }
        let range = match mode {
            SixteenBit::PerFrame => None,
            SixteenBit::Fixed { min, max } => Some((min, max)),
            SixteenBit::PerVideo => Some(self.video_range()?),
        };
        Ok(to_rgb8(&img, range))
    }

    /// Raw min–max over all 16-bit frames of the scene, computed once and cached. For a video
    /// file this is one pass over the whole file before its first frame is used.
    pub fn video_range(&self) -> Result<(u16, u16)> {
        if let Some(&r) = self.video_range.get() {
            return Ok(r);
        }
        if let Some(video) = &self.video {
            let range = video.raw_range(self.frames.len())?.unwrap_or((0, u16::MAX));
            let _ = self.video_range.set(range);
            return Ok(range);
        }
        let ranges: Vec<Result<Option<(u16, u16)>>> = self
            .frames
            .par_iter()
            .map(|f| load_raw(&f.image).map(|img| raw_range(&img)))
            .collect();
        let mut lo = u16::MAX;
        let mut hi = u16::MIN;
        for r in ranges {
            if let Some((a, b)) = r? {
                lo = lo.min(a);
                hi = hi.max(b);
            }
        }
        let range = if lo > hi { (0, u16::MAX) } else { (lo, hi) };
        // Another thread may have filled it meanwhile, with the same value.
        let _ = self.video_range.set(range);
        Ok(range)
    }

    /// Distinct pixel formats of the scene's frames, in order of first appearance (a video's
    /// from its codec).
    pub fn colors(&self) -> Vec<ColorType> {
        let mut out: Vec<ColorType> = Vec::new();
        for f in &self.frames {
            if !out.contains(&f.color) {
                out.push(f.color);
            }
        }
        out
    }
}

/// One split (`train`, `val`, `test`, …): its scenes in natural order.
#[derive(Debug)]
pub struct Split {
    pub name: String,
    pub dir: PathBuf,
    pub scenes: Vec<Scene>,
}

impl Split {
    /// Lists and checks `root/name`. Errors name the first problem found and what to do.
    pub fn open(root: &Path, name: &str, masks: Masks) -> Result<Split> {
        Self::open_in(root, name, masks, &DecodePool::new())
    }

    fn open_in(root: &Path, name: &str, masks: Masks, pool: &Arc<DecodePool>) -> Result<Split> {
        let dir = root.join(name);
        if !dir.is_dir() {
            return Err(DataError::MissingSplit { path: dir });
        }
        let mut scene_dirs = Vec::new();
        for (entry_name, path) in list_dir(&dir)? {
            if path.is_dir() {
                scene_dirs.push((entry_name, path));
            }
        }
        if scene_dirs.is_empty() {
            return Err(DataError::EmptySplit { path: dir });
        }
        scene_dirs.sort_by(|a, b| natural_cmp(&a.0, &b.0));
        // Header reads are independent, so scenes are scanned in parallel; the error reported
        // is the first in natural order, as a sequential scan would give.
        let scenes = scene_dirs
            .into_par_iter()
            .map(|(scene, path)| open_scene(scene, path, masks, pool))
            .collect::<Vec<_>>()
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        Ok(Split {
            name: name.to_string(),
            dir,
            scenes,
        })
    }

    /// New footage for inference, in any of four shapes: a video file (MP4, AVI, FLIR .seq;
    /// one scene named after the file's stem, frames `frame_00001`, …), a dataset split
    /// (`<scene>/images/<frame>` or `<scene>/video.*`), one scene (`images/<frame>` or
    /// `video.*`, optional `masks/`), or a plain folder of frames (one video). Masks are
    /// optional.
    pub fn open_footage(input: &Path) -> Result<Split> {
        let pool = DecodePool::new();
        if input.is_file() {
            let name = input
                .file_stem()
                .map_or_else(|| "video".to_string(), |n| n.to_string_lossy().into_owned());
            let scene = open_video(
                name.clone(),
                input.to_path_buf(),
                input.to_path_buf(),
                None,
                &pool,
            )?;
            return Ok(Split {
                name,
                dir: input.to_path_buf(),
                scenes: vec![scene],
            });
        }
        if !input.is_dir() {
            return Err(DataError::MissingInput {
                path: input.to_path_buf(),
            });
        }
        // `.` or `cam/..` name no folder: the resolved path does (and has the parent).
        let resolved;
        let input = match input.file_name() {
            Some(_) => input,
            None => {
                resolved = input
                    .canonicalize()
                    .map_err(|e| DataError::unreadable(input, e))?;
                resolved.as_path()
            }
        };
        let name = input
            .file_name()
            .map_or_else(|| "input".to_string(), |n| n.to_string_lossy().into_owned());
        let one_scene = |scene: Scene| Split {
            name: name.clone(),
            dir: input.to_path_buf(),
            scenes: vec![scene],
        };
        if input.join("images").is_dir() || find_video(input)?.is_some() {
            return open_scene(name.clone(), input.to_path_buf(), Masks::Optional, &pool)
                .map(one_scene);
        }
        let mut has_scenes = false;
        for (_, path) in list_dir(input)? {
            if path.is_dir() && (path.join("images").is_dir() || find_video(&path)?.is_some()) {
                has_scenes = true;
                break;
            }
        }
        if has_scenes {
            let root = input.parent().unwrap_or(Path::new("."));
            return Split::open_in(root, &name, Masks::Optional, &pool);
        }
        open_frames(
            name.clone(),
            input.to_path_buf(),
            input.to_path_buf(),
            Masks::Optional,
        )
        .map(one_scene)
    }

    pub fn frame_count(&self) -> usize {
        self.scenes.iter().map(|s| s.frames.len()).sum()
    }

    pub fn mask_count(&self) -> usize {
        self.scenes.iter().map(Scene::mask_count).sum()
    }

    /// Decodes every frame and mask once (truncated or corrupt files show up only then).
    /// `progress` is called once per decoded file or video frame, from worker threads.
    pub fn verify_pixels(&self, progress: &(dyn Fn() + Sync)) -> Result<()> {
        let files: Vec<(&Path, bool)> = self
            .scenes
            .iter()
            .flat_map(|s| {
                let images = s.video.is_none();
                s.frames.iter().flat_map(move |f| {
                    images
                        .then_some((f.image.as_path(), false))
                        .into_iter()
                        .chain(f.mask.as_deref().map(|m| (m, true)))
                })
            })
            .collect();
        // Each video is read in order by one thread; videos and files in parallel.
        let videos: Vec<&VideoFrames> = self.scenes.iter().filter_map(Scene::video).collect();
        let video_results: Vec<Result<()>> =
            videos.par_iter().map(|v| v.verify(progress)).collect();
        video_results.into_iter().collect::<Result<()>>()?;
        let results: Vec<Result<()>> = files
            .par_iter()
            .map(|&(path, is_mask)| {
                let r = if is_mask {
                    crate::decode::load_mask(path).map(drop)
                } else {
                    crate::decode::load_raw(path).map(drop)
                };
                progress();
                r
            })
            .collect();
        results.into_iter().collect()
    }

    /// Number of files [`Split::verify_pixels`] decodes.
    pub fn file_count(&self) -> usize {
        self.frame_count() + self.mask_count()
    }
}

/// Non-hidden entries of a folder as (file name, path). Names that are not UTF-8 are errors,
/// since they could not be ordered or matched to masks reliably.
fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(DataError::io(
                &path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "file name is not valid UTF-8; rename it",
                ),
            ));
        };
        if !name.starts_with('.') {
            out.push((name, path));
        }
    }
    Ok(out)
}

fn split_stem(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i + 1..]),
        _ => (name, ""),
    }
}

fn open_scene(name: String, dir: PathBuf, masks: Masks, pool: &Arc<DecodePool>) -> Result<Scene> {
    let images_dir = dir.join("images");
    if images_dir.is_dir() {
        return open_frames(name, dir, images_dir, masks);
    }
    let Some(video) = find_video(&dir)? else {
        return Err(DataError::MissingImages { path: images_dir });
    };
    let masks_dir = dir.join("masks");
    let masks_dir = if masks_dir.is_dir() {
        Some(masks_dir)
    } else if masks == Masks::Required {
        return Err(DataError::MissingMasks { path: masks_dir });
    } else {
        None
    };
    open_video(name, dir, video, masks_dir, pool)
}

/// A scene whose frames are the frames of `video`; masks (if any) in `masks_dir`, named
/// `frame_00001.png` after the 1-based frame number.
fn open_video(
    name: String,
    dir: PathBuf,
    video: PathBuf,
    masks_dir: Option<PathBuf>,
    pool: &Arc<DecodePool>,
) -> Result<Scene> {
    let frames_of = VideoFrames::open(&video, Arc::clone(pool))?;
    let info = frames_of.info().clone();
    if info.frames < 3 {
        return Err(DataError::TooFewFrames {
            path: video,
            count: info.frames,
        });
    }
    let color = color_of(&info);
    let mut frames: Vec<Frame> = (0..info.frames)
        .map(|i| Frame {
            name: frame_stem(i),
            image: video.clone(),
            mask: None,
            color,
        })
        .collect();
    if let Some(masks_dir) = masks_dir {
        let mut mask_files = list_dir(&masks_dir)?;
        mask_files.sort_by(|a, b| natural_cmp(&a.0, &b.0));
        for (file, path) in mask_files {
            let (stem, ext) = split_stem(&file);
            if path.is_dir() || !ext.eq_ignore_ascii_case("png") {
                return Err(DataError::NotAMask { path });
            }
            let Some(frame) = frame_index(stem).and_then(|i| frames.get_mut(i)) else {
                return Err(DataError::MaskNotAVideoFrame {
                    path,
                    video,
                    frames: info.frames,
                });
            };
            if let Some(other) = frame.mask.replace(path.clone()) {
                return Err(DataError::DuplicateFrame { path, other });
            }
            let (mw, mh, _) = read_header(&path)?;
            if (mw, mh) != (info.width, info.height) {
                return Err(DataError::MaskSizeMismatch {
                    path,
                    width: mw,
                    height: mh,
                    frame: video,
                    frame_width: info.width,
                    frame_height: info.height,
                });
            }
        }
    }
    Ok(Scene {
        name,
        dir,
        frames,
        width: info.width,
        height: info.height,
        video_range: OnceLock::new(),
        video: Some(frames_of),
    })
}

/// A scene whose frames are the files of `images_dir` (masks, if any, in `dir/masks`).
fn open_frames(name: String, dir: PathBuf, images_dir: PathBuf, masks: Masks) -> Result<Scene> {
    let mut files = list_dir(&images_dir)?;
    files.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    let mut by_stem: HashMap<String, usize> = HashMap::new();
    let mut frames = Vec::with_capacity(files.len());
    for (file, path) in files {
        let (stem, ext) = split_stem(&file);
        if path.is_dir() || !FRAME_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()) {
            return Err(DataError::NotAFrame { path });
        }
        if let Some(&other) = by_stem.get(stem) {
            let other: &Frame = &frames[other];
            return Err(DataError::DuplicateFrame {
                path,
                other: other.image.clone(),
            });
        }
        by_stem.insert(stem.to_string(), frames.len());
        frames.push(Frame {
            name: file.clone(),
            image: path,
            mask: None,
            color: ColorType::L8,
        });
    }
    if frames.len() < 3 {
        return Err(DataError::TooFewFrames {
            path: images_dir,
            count: frames.len(),
        });
    }

    let masks_dir = dir.join("masks");
    if masks_dir.is_dir() {
        let mut mask_files = list_dir(&masks_dir)?;
        mask_files.sort_by(|a, b| natural_cmp(&a.0, &b.0));
        for (file, path) in mask_files {
            let (stem, ext) = split_stem(&file);
            if path.is_dir() || !ext.eq_ignore_ascii_case("png") {
                return Err(DataError::NotAMask { path });
            }
            match by_stem.get(stem) {
                Some(&i) => frames[i].mask = Some(path),
                None => {
                    return Err(DataError::MaskWithoutFrame {
                        path,
                        stem: stem.to_string(),
                        images: images_dir,
                    })
                }
            }
        }
    } else if masks == Masks::Required {
        return Err(DataError::MissingMasks { path: masks_dir });
    }

    let (width, height) = check_sizes(&mut frames)?;
    Ok(Scene {
        name,
        dir,
        frames,
        width,
        height,
        video_range: OnceLock::new(),
        video: None,
    })
}

/// Reads every header: frame sizes must agree, masks must match their frame.
fn check_sizes(frames: &mut [Frame]) -> Result<(u32, u32)> {
    let mut first: Option<(PathBuf, u32, u32)> = None;
    for frame in frames.iter_mut() {
        let (w, h, color) = read_header(&frame.image)?;
        frame.color = color;
        match &first {
            None => first = Some((frame.image.clone(), w, h)),
            Some((first_path, fw, fh)) if (w, h) != (*fw, *fh) => {
                return Err(DataError::FrameSizeMismatch {
                    path: frame.image.clone(),
                    width: w,
                    height: h,
                    first: first_path.clone(),
                    first_width: *fw,
                    first_height: *fh,
                })
            }
            Some(_) => {}
        }
        if let Some(mask) = &frame.mask {
            let (mw, mh, _) = read_header(mask)?;
            if (mw, mh) != (w, h) {
                return Err(DataError::MaskSizeMismatch {
                    path: mask.clone(),
                    width: mw,
                    height: mh,
                    frame: frame.image.clone(),
                    frame_width: w,
                    frame_height: h,
                });
            }
        }
    }
    let (_, w, h) = first.expect("a scene has at least 3 frames");
    Ok((w, h))
}

/// Size and pixel format from the file header, without decoding the pixels.
pub fn read_header(path: &Path) -> Result<(u32, u32, ColorType)> {
    let reader = ImageReader::open(path)
        .and_then(ImageReader::with_guessed_format)
        .map_err(|e| DataError::unreadable(path, e))?;
    let decoder = reader
        .into_decoder()
        .map_err(|e| DataError::unreadable(path, e))?;
    let (w, h) = decoder.dimensions();
    let color = decoder.color_type();
    crate::decode::check_supported(path, color)?;
    Ok((w, h, color))
}
