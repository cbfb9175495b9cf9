//! The long-term SLT-Net's fourth input channel: the short-term model's prediction of each frame,
//! read from the 8-bit maps a short-term run wrote (the two-stage pipeline of the reference's
//! `test_video.py` → `test_video_long_term.py`).
//!
//! `data.prior_dir` names the folder; `{split}` in it becomes the split's name. The map of frame
//! `<stem>.<ext>` of scene `<scene>` is `<prior_dir>/<scene>/<stem>.png` — what `fgstp infer
//! --save-maps` writes under `maps/` for a split — or, for footage of one video, also
//! `<prior_dir>/<stem>.png`. It is read as PIL's `convert("L")` (gray levels; RGB maps through
//! PIL's luma) at any size; the streams resize it like a mask.

use std::path::{Path, PathBuf};

use image::GrayImage;

use crate::dataset::{Scene, Split};
use crate::decode::{load_raw, pil_luma};
use crate::error::{DataError, Result};

/// `prior_dir` with `{split}` replaced by `split`.
pub fn prior_root(prior_dir: &str, split: &str) -> PathBuf {
    PathBuf::from(prior_dir.replace("{split}", split))
}

/// The prior map file of frame `frame` of `scene`: the first of the two places that exists.
pub fn prior_path(root: &Path, scene: &Scene, frame: usize) -> Result<PathBuf> {
    // The frame's own stem (`frame_00001` in a video scene, whose frames share one file).
    let stem = scene.frames[frame].stem();
    let image = &scene.frames[frame].image;
    let per_scene = root.join(&scene.name).join(format!("{stem}.png"));
    if per_scene.is_file() {
        return Ok(per_scene);
    }
    let flat = root.join(format!("{stem}.png"));
    if flat.is_file() {
        return Ok(flat);
    }
    // A video's frame is named with its number after the file.
    let frame = match scene.video() {
        Some(_) => PathBuf::from(format!("{} ({stem})", image.display())),
        None => image.clone(),
    };
    Err(DataError::MissingPrior {
        path: per_scene,
        other: flat,
        frame,
    })
}

/// The prior of frame `frame` of `scene` in `split`, as 8-bit gray (PIL's `convert("L")`).
pub fn load_prior(
    prior_dir: &str,
    split: &Split,
    scene: &Scene,
    frame: usize,
) -> Result<GrayImage> {
    let path = prior_path(&prior_root(prior_dir, &split.name), scene, frame)?;
    let img = load_raw(&path)?;
    Ok(match img {
        image::DynamicImage::ImageLuma8(gray) => gray,
        other => {
            let rgb = other.to_rgb8();
            GrayImage::from_fn(rgb.width(), rgb.height(), |x, y| {
                let p = rgb.get_pixel(x, y);
                image::Luma([pil_luma(p[0], p[1], p[2])])
            })
        }
    })
}
