//! What `fgstp eval` and `fgstp infer` write for each frame, in parallel trees so that each
//! can be handed to other tools as is (e.g. `fgstp metrics --pred OUT/masks --gt SPLIT`):
//!
//! - `masks/[<video>/]<frame>.png` — the binary mask (0/255) by the [`MaskRule`]: by default
//!   probability `> 0.5` (the pixels frame-level detection counts), or `test.py`'s rule;
//! - `maps/[<video>/]<frame>.png` — the min-max normalised probability (what the SOD metrics score);
//! - `overlays/[<video>/]<frame>.png` — the frame with the mask tinted red (same rule);
//! - `prob/[<video>/]<frame>.npy` — float32 `[H, W]` sigmoid probabilities (`--save-prob`).

use anyhow::{Context, Result};
use image::{GrayImage, ImageFormat, Rgb, RgbImage};
use npyz::WriterBuilder;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use fgstp_metrics::{to_binary_mask, to_gray_map};

/// Which pixels `masks/` and `overlays/` mark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MaskRule {
    /// Probability `> 0.5`: a frame the model sees no leak in stays empty (footage,
    /// monitoring), and the marked pixels are the predicted area of `leak_recall`/`leak_fpr`.
    #[default]
    Probability,
    /// The reference `test.py`'s saved masks: the probability min-max normalised over the
    /// frame, `> 0.5` (every frame whose map is not constant marks pixels).
    Normalised,
}

impl MaskRule {
    /// The 0/255 mask of a probability map.
    pub fn mask(self, probability: &[f32]) -> Vec<u8> {
        match self {
            MaskRule::Probability => probability
                .iter()
                .map(|&p| if p > 0.5 { 255 } else { 0 })
                .collect(),
            MaskRule::Normalised => to_binary_mask(probability),
        }
    }
}

impl FromStr for MaskRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "probability" => Ok(MaskRule::Probability),
            "normalised" => Ok(MaskRule::Normalised),
            _ => Err(format!(
                "{s:?}: write probability (probability > 0.5) or normalised (test.py: min-max \
                 normalised > 0.5)"
            )),
        }
    }
}

impl fmt::Display for MaskRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MaskRule::Probability => "probability",
            MaskRule::Normalised => "normalised",
        })
    }
}

/// The images written for one frame, for whoever also wants them (e.g. as video frames).
pub struct Written {
    pub mask: GrayImage,
    pub overlay: RgbImage,
}

pub struct Outputs {
    root: PathBuf,
    pub maps: bool,
    pub prob: bool,
    pub mask: MaskRule,
}

impl Outputs {
    pub fn new(root: &Path, maps: bool, prob: bool, mask: MaskRule) -> Self {
        Self {
            root: root.to_path_buf(),
            maps,
            prob,
            mask,
        }
    }

    fn path(&self, kind: &str, video: Option<&str>, stem: &str, ext: &str) -> Result<PathBuf> {
        let mut dir = self.root.join(kind);
        if let Some(video) = video {
            dir.push(video);
        }
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(dir.join(format!("{stem}.{ext}")))
    }

    /// Writes everything for one frame. `image` is the frame at its original size.
    pub fn write(
        &self,
        video: Option<&str>,
        stem: &str,
        prob: &[f32],
        image: &RgbImage,
    ) -> Result<Written> {
        let (w, h) = image.dimensions();
        let mask = GrayImage::from_raw(w, h, self.mask.mask(prob))
            .context("probability map of the wrong size")?;
        // Each file is written whole or not at all (a rerun shard replaces its files cleanly):
        // into a temporary file next to it, synced, then persisted over it.
        let save = |path: PathBuf, write: &dyn Fn(&Path) -> Result<()>| {
            (|| -> Result<()> {
                let mut temporary = tempfile::Builder::new();
                // The permissions `File::create` gives (0o666 less the umask), not 0o600.
                #[cfg(unix)]
                temporary.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
                let tmp = temporary.tempfile_in(path.parent().unwrap_or(Path::new(".")))?;
                write(tmp.path())?;
                std::fs::File::open(tmp.path())?.sync_all()?;
                tmp.persist(&path)?;
                Ok(())
            })()
            .with_context(|| format!("cannot write {}", path.display()))
        };
        let png = |path: PathBuf, img: &dyn Fn(&Path) -> image::ImageResult<()>| {
            save(path, &|tmp| Ok(img(tmp)?))
        };
        png(self.path("masks", video, stem, "png")?, &|p| {
            mask.save_with_format(p, ImageFormat::Png)
        })?;
        if self.maps {
            let map = GrayImage::from_raw(w, h, to_gray_map(prob)).expect("same size as the mask");
            png(self.path("maps", video, stem, "png")?, &|p| {
                map.save_with_format(p, ImageFormat::Png)
            })?;
        }
        let overlay = overlay(image, &mask);
        png(self.path("overlays", video, stem, "png")?, &|p| {
            overlay.save_with_format(p, ImageFormat::Png)
        })?;
        if self.prob {
            save(self.path("prob", video, stem, "npy")?, &|p| {
                write_npy(p, prob, h as u64, w as u64)
            })?;
        }
        Ok(Written { mask, overlay })
    }
}

/// The frame with the masked pixels tinted red (half opacity), for looking at results.
pub fn overlay(image: &RgbImage, mask: &GrayImage) -> RgbImage {
    let mut out = image.clone();
    for (pixel, m) in out.pixels_mut().zip(mask.pixels()) {
        if m.0[0] > 127 {
            let Rgb([r, g, b]) = *pixel;
            *pixel = Rgb([
                ((u16::from(r) + 255) / 2) as u8,
                (u16::from(g) / 2) as u8,
                (u16::from(b) / 2) as u8,
            ]);
        }
    }
    out
}

/// A float32 `[rows, cols]` array in NumPy's `.npy` format.
fn write_npy(path: &Path, data: &[f32], rows: u64, cols: u64) -> Result<()> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut writer = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&[rows, cols])
        .writer(file)
        .begin_nd()?;
    writer.extend(data.iter().copied())?;
    writer.finish()?;
    Ok(())
}

/// The output name of a frame: its file name without the extension.
pub fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_masks_stay_empty_where_normalised_masks_mark_pixels() {
        let leak_free = [0.1f32, 0.2, 0.3, 0.4];
        assert_eq!(MaskRule::Probability.mask(&leak_free), [0, 0, 0, 0]);
        assert_eq!(MaskRule::Normalised.mask(&leak_free), [0, 0, 255, 255]);
        let leak = [0.1f32, 0.5, 0.51, 0.9];
        assert_eq!(MaskRule::Probability.mask(&leak), [0, 0, 255, 255]);
        assert_eq!(MaskRule::default(), MaskRule::Probability);
        for rule in [MaskRule::Probability, MaskRule::Normalised] {
            assert_eq!(rule.to_string().parse::<MaskRule>(), Ok(rule));
        }
        let err = "normalized".parse::<MaskRule>().unwrap_err();
        assert!(
            err.contains("\"normalized\"") && err.contains("probability"),
            "{err}"
        );
    }
}
