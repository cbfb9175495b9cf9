//! Tiny on-disk datasets for the tests.

use std::path::{Path, PathBuf};

use image::{GrayImage, ImageBuffer, Luma, Rgb, RgbImage};

pub const W: u32 = 40;
pub const H: u32 = 30;

/// A frame whose pixels encode (frame index, x, y), so order and flips are visible.
pub fn frame_image(index: usize, w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            (index * 20 % 256) as u8,
            (x * 255 / w.max(1)) as u8,
            (y * 255 / h.max(1)) as u8,
        ])
    })
}

/// A mask with a block in the left half.
pub fn mask_image(w: u32, h: u32) -> GrayImage {
    GrayImage::from_fn(w, h, |x, y| {
        Luma([if x < w / 2 && y > h / 4 && y < 3 * h / 4 {
            255
        } else {
            0
        }])
    })
}

pub struct SceneSpec<'a> {
    pub name: &'a str,
    pub frames: Vec<String>,
    /// Indices of `frames` that get a mask.
    pub masked: Vec<usize>,
}

impl<'a> SceneSpec<'a> {
    pub fn full(name: &'a str, n: usize) -> Self {
        SceneSpec {
            name,
            frames: (0..n).map(|i| format!("{i:04}.png")).collect(),
            masked: (0..n).collect(),
        }
    }
}

/// Writes `root/<split>/<scene>/{images,masks}` for the given scenes.
pub fn write_split(root: &Path, split: &str, scenes: &[SceneSpec]) -> PathBuf {
    for scene in scenes {
        let dir = root.join(split).join(scene.name);
        std::fs::create_dir_all(dir.join("images")).unwrap();
        std::fs::create_dir_all(dir.join("masks")).unwrap();
        for (i, name) in scene.frames.iter().enumerate() {
            frame_image(i, W, H)
                .save(dir.join("images").join(name))
                .unwrap();
            if scene.masked.contains(&i) {
                let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
                mask_image(W, H)
                    .save(dir.join("masks").join(format!("{stem}.png")))
                    .unwrap();
            }
        }
    }
    root.join(split)
}

/// A 16-bit grayscale frame with values `lo..=hi` across its width.
pub fn gray16(lo: u16, hi: u16, w: u32, h: u32) -> ImageBuffer<Luma<u16>, Vec<u16>> {
    ImageBuffer::from_fn(w, h, |x, _| {
        Luma([lo + ((u32::from(hi - lo) * x) / (w - 1)) as u16])
    })
}
