//! `fgstp synth --video`: every generated scene also as one H.264 MP4, `<scene>/video.mp4`, for
//! demos and tests of the video paths.
//!
//! The frames and masks are renamed to `frame_00001.png` … (1-based, the names a video's
//! frames have in fgstp), so each scene reads the same from `images/` as from the video: move
//! `images/` away and the scene is a video scene with its masks in place. The video holds the
//! frames as fgstp reads them (16-bit scenes stretched per video to 8 bits: H.264 here is
//! 8-bit), compressed at the writer's default quality, so its pixels are close to, not equal
//! to, the PNGs'.

use std::path::Path;

use rayon::prelude::*;

use crate::config::SixteenBit;
use crate::dataset::{Masks, Split};
use crate::error::{DataError, Result};
use crate::synth::SynthConfig;
use crate::video::VideoWriter;
use crate::video_scene::frame_stem;

/// Frame rate of the generated videos (a typical thermal camera's).
pub const SYNTH_FPS: f64 = 30.0;

/// Writes `<scene>/video.mp4` for every scene of the dataset [`crate::synth::generate`] wrote
/// to `root` with `cfg`, then renames its frames and masks to `frame_NNNNN.png`. `progress`
/// is called once per frame encoded. Returns the number of videos.
pub fn write_scene_videos(
    root: &Path,
    cfg: &SynthConfig,
    progress: &(dyn Fn() + Sync),
) -> Result<usize> {
    let mut scenes = Vec::new();
    for (split, _) in cfg.splits() {
        scenes.extend(Split::open(root, split, Masks::Optional)?.scenes);
    }
    scenes.par_iter().try_for_each(|scene| -> Result<()> {
        let path = scene.dir.join("video.mp4");
        let mut writer = VideoWriter::create(&path, scene.width, scene.height, SYNTH_FPS)?;
        for index in 0..scene.frames.len() {
            writer.push_rgb(&scene.load_frame(index, SixteenBit::PerVideo)?)?;
            progress();
        }
        writer.finish()?;
        for (index, frame) in scene.frames.iter().enumerate() {
            let name = format!("{}.png", frame_stem(index));
            rename(&frame.image, &scene.dir.join("images").join(&name))?;
            if let Some(mask) = &frame.mask {
                rename(mask, &scene.dir.join("masks").join(&name))?;
            }
        }
        Ok(())
    })?;
    Ok(scenes.len())
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| DataError::Write {
        path: to.to_path_buf(),
        reason: e.to_string(),
    })
}
