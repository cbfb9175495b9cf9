//! Synthetic infrared gas-leak videos in the dataset layout (`fgstp synth`).
//!
//! Each scene is a static thermal-looking background (a cold sky with drifting clouds above a
//! textured ground with warm and cold structures and pipes ending in flanges), seen by a camera
//! with fixed-pattern and temporal sensor noise and a slight sub-pixel jitter. What else a scene
//! holds is its [`Plan`], drawn from the config's shares:
//! - a leak, or none (`negatives`: leak-free scenes, spread evenly over train/val/test);
//! - where it comes from: the end of a pipe, or a point without visible equipment
//!   (`hidden_sources`); pipe ends that never leak stand beside it (`idle_pipes`), and
//!   leak-free scenes have pipe ends too, so that equipment alone never means gas;
//! - when: throughout, or starting (`onsets`) and/or stopping (`stops`) during the video —
//!   the source ramps up over two frames and the gas left after a stop dissipates over a few;
//! - distractors that change like gas but are not gas and never in the mask: heat shimmer
//!   above a hot surface (`shimmer`), steam from a stack, brighter, slower and more opaque
//!   than gas (`steam`), a person or a vehicle crossing (`crossers`), a flat-field
//!   correction's shutter frame followed by an offset (`nuc`), a short camera shake (`shake`).
//!
//! The gas density is simulated on a coarse grid ([`plume`]) and drawn as a faint emission
//! (warmer) or absorption (colder) layer, `contrast` grey levels at full opacity, with a fine
//! texture drifting with the wind. The mask of a frame is the gas density above a threshold,
//! seen through the same camera jitter; a shutter frame shows no scene and has an empty mask.
//!
//! At the default contrast (35 grey levels at full opacity) a plume is visible in a single
//! frame near its source; at low contrast (`--contrast 4`) it sinks into the sensor noise and
//! the background texture, and only its motion across frames gives it away. `--contrast 0`
//! renders the same scenes without visible gas (the masks stay where the gas would be).
//!
//! Output is a pure function of the config: every random draw comes from (seed, scene, frame),
//! so runs are byte-identical whatever the thread count. Scenes are simulated in parallel and
//! frames rendered and PNG-encoded in parallel.
//!
//! [`video`] also writes each scene as one MP4 (`fgstp synth --video`); [`episodes`] writes one
//! long video with leak episodes (`--episodes`); [`gallery`] one frame of each element;
//! [`prepare`] makes a run's generated dataset on first use.

pub mod episodes;
pub mod gallery;
mod noise;
mod plume;
pub mod prepare;
mod scene;
pub mod video;
use std::path::{Path, PathBuf};

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use scene::{build_scene, render};
pub use scene::{Crosser, LeakPlan, Plan, MASK_THRESHOLD};

/// Version of the generator recorded in `synth.toml`: a dataset made by another version is
/// other data even with the same settings.
pub const GENERATOR_VERSION: u32 = 2;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynthConfig {
    /// Scenes in total, split into train / val / test (val and test get 15% each, at least one).
    pub scenes: usize,
    /// Frames per scene.
    pub frames: usize,
    pub width: u32,
    pub height: u32,
    pub seed: u64,
    /// Grey levels (of 255) the gas changes a pixel by at full opacity, before a per-scene
    /// factor of 0.7–1.3. The sensor noise is 1–2.5 levels, the background texture 12–24.
    pub contrast: f32,
    /// 8 (PNG L8) or 16 (PNG L16 raw counts, as a thermal camera would store).
    pub bit_depth: u8,
    /// Share of leak-free scenes (empty masks), spread evenly over train, val and test.
    pub negatives: f32,
    /// Share of leaking scenes whose leak starts during the video (empty masks before).
    pub onsets: f32,
    /// Share of leaking scenes whose leak stops during the video (the gas then dissipates).
    pub stops: f32,
    /// Up to this many pipe ends per scene that never leak (uniformly 0 to this many).
    pub idle_pipes: u32,
    /// Share of leaks that come from a point without visible equipment.
    pub hidden_sources: f32,
    /// Share of scenes with heat shimmer above a hot surface.
    pub shimmer: f32,
    /// Share of scenes with steam rising from a stack.
    pub steam: f32,
    /// Share of scenes with a person or a vehicle crossing.
    pub crossers: f32,
    /// Share of scenes with a flat-field correction (a shutter frame, then an offset).
    pub nuc: f32,
    /// Share of scenes with a short camera shake.
    pub shake: f32,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            scenes: 12,
            frames: 24,
            width: 128,
            height: 128,
            seed: 2025,
            contrast: 35.0,
            bit_depth: 8,
            negatives: 0.33,
            onsets: 0.2,
            stops: 0.2,
            idle_pipes: 3,
            hidden_sources: 0.3,
            shimmer: 0.3,
            steam: 0.3,
            crossers: 0.5,
            nuc: 0.1,
            shake: 0.2,
        }
    }
}

impl SynthConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.scenes < 3 {
            return Err(format!(
                "--scenes {} is too few: train, val and test need one scene each (at least 3)",
                self.scenes
            ));
        }
        if self.frames < 3 {
            return Err(format!(
                "--frames {} is too few: a sample needs 3 frames",
                self.frames
            ));
        }
        if self.width < 16 || self.height < 16 || self.width > 8192 || self.height > 8192 {
            return Err(format!(
                "--size {}x{} is out of range (16 to 8192 pixels a side)",
                self.width, self.height
            ));
        }
        if !(self.contrast.is_finite() && self.contrast >= 0.0) {
            return Err(format!(
                "--contrast {} must be a grey-level count ≥ 0",
                self.contrast
            ));
        }
        if self.bit_depth != 8 && self.bit_depth != 16 {
            return Err(format!("--bit-depth {} must be 8 or 16", self.bit_depth));
        }
        for (flag, share) in self.shares() {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("--{flag} {share} must be a share from 0 to 1"));
            }
        }
        if self.idle_pipes > 8 {
            return Err(format!(
                "--idle-pipes {} is too many (at most 8)",
                self.idle_pipes
            ));
        }
        Ok(())
    }

    /// The settings that are shares of scenes, with their flags.
    fn shares(&self) -> [(&'static str, f32); 9] {
        [
            ("negatives", self.negatives),
            ("onsets", self.onsets),
            ("stops", self.stops),
            ("hidden-sources", self.hidden_sources),
            ("shimmer", self.shimmer),
            ("steam", self.steam),
            ("crossers", self.crossers),
            ("nuc", self.nuc),
            ("shake", self.shake),
        ]
    }

    /// Whether scene `index` has no leak. Within each split, the k-th scene is leak-free when
    /// `(k + 1) · negatives` passes an integer that `k · negatives` had not: every split gets
    /// its share (rounded down), spread evenly rather than bunched.
    pub fn leak_free(&self, index: usize) -> bool {
        let share = f64::from(self.negatives);
        self.splits()
            .into_iter()
            .find(|(_, range)| range.contains(&index))
            .is_some_and(|(_, range)| {
                let k = (index - range.start) as f64;
                ((k + 1.0) * share).floor() > (k * share).floor()
            })
    }

    /// (split name, scene indices) in output order.
    pub fn splits(&self) -> Vec<(&'static str, std::ops::Range<usize>)> {
        let held_out = ((self.scenes as f64 * 0.15).round() as usize).max(1);
        let train = self.scenes - 2 * held_out;
        vec![
            ("train", 0..train),
            ("val", train..train + held_out),
            ("test", train + held_out..self.scenes),
        ]
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct SynthReport {
    pub frames: usize,
    pub scenes: usize,
    pub root: PathBuf,
}

fn encode_png(path: &Path, w: u32, h: u32, data: &[u8], color: ExtendedColorType) -> Result<()> {
    let mut buf = Vec::with_capacity(data.len() / 2);
    PngEncoder::new_with_quality(&mut buf, CompressionType::Fast, FilterType::Sub)
        .write_image(data, w, h, color)
        .map_err(|e| DataError::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    std::fs::write(path, buf).map_err(|e| DataError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Writes a frame's image (8 or 16 bits, as `cfg` says) and mask as `<dir>/{images,masks}/<name>`.
fn write_frame(
    cfg: &SynthConfig,
    dir: &Path,
    name: &str,
    pixels: &[f32],
    mask: &[u8],
) -> Result<()> {
    let (w, h) = (cfg.width, cfg.height);
    let image_path = dir.join("images").join(name);
    if cfg.bit_depth == 8 {
        encode_png(&image_path, w, h, &to_grey8(pixels), ExtendedColorType::L8)?;
    } else {
        // Raw counts of a 14-bit-ish sensor: an offset plus 20 counts per grey level.
        let bytes: Vec<u8> = pixels
            .iter()
            .flat_map(|&v| ((v * 20.0 + 6000.0).round().clamp(0.0, 65535.0) as u16).to_ne_bytes())
            .collect();
        encode_png(&image_path, w, h, &bytes, ExtendedColorType::L16)?;
    }
    encode_png(
        &dir.join("masks").join(name),
        w,
        h,
        mask,
        ExtendedColorType::L8,
    )
}

/// Grey levels as 8-bit pixels.
fn to_grey8(pixels: &[f32]) -> Vec<u8> {
    pixels
        .iter()
        .map(|&v| v.round().clamp(0.0, 255.0) as u8)
        .collect()
}

/// `out/synth.toml`: the settings and the generator version that produced the data.
fn write_record(cfg: &SynthConfig, out: &Path) -> Result<()> {
    let settings = toml::to_string(cfg).expect("the config serialises");
    std::fs::write(
        out.join("synth.toml"),
        format!(
            "# fgstp synth settings that produced this dataset\ngenerator = {GENERATOR_VERSION}\n{settings}"
        ),
    )
    .map_err(|e| DataError::Write {
        path: out.join("synth.toml"),
        reason: e.to_string(),
    })
}

/// Reads `synth.toml` as [`write_record`] wrote it: the generator version (1 when absent: the
/// generator before leak-free scenes and distractors) and the settings.
pub fn read_record(path: &Path) -> Result<(u32, SynthConfig)> {
    let unreadable = |reason: String| DataError::Config {
        path: path.to_path_buf(),
        reason: format!("unreadable generator settings ({reason})"),
    };
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
    let version = match table.remove("generator") {
        None => 1,
        Some(v) => v
            .as_integer()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| unreadable(format!("generator = {v} is not a version number")))?,
    };
    let cfg = table
        .try_into()
        .map_err(|e: toml::de::Error| unreadable(e.to_string()))?;
    Ok((version, cfg))
}

/// Writes `out/<split>/<scene>/{images,masks}/<frame>.png` and `out/synth.toml`.
/// `progress` is called once per frame written.
pub fn generate(
    cfg: &SynthConfig,
    out: &Path,
    progress: &(dyn Fn() + Sync),
) -> Result<SynthReport> {
    cfg.validate().map_err(|reason| DataError::Config {
        path: out.join("synth.toml"),
        reason,
    })?;
    let mk = |p: &Path| {
        std::fs::create_dir_all(p).map_err(|e| DataError::Write {
            path: p.to_path_buf(),
            reason: e.to_string(),
        })
    };
    mk(out)?;
    let mut dirs = Vec::with_capacity(cfg.scenes);
    for (split, range) in cfg.splits() {
        for index in range {
            let dir = out.join(split).join(format!("scene_{index:03}"));
            mk(&dir.join("images"))?;
            mk(&dir.join("masks"))?;
            dirs.push(dir);
        }
    }
    write_record(cfg, out)?;

    let scenes: Vec<_> = (0..cfg.scenes)
        .into_par_iter()
        .map(|i| build_scene(cfg, i, &Plan::draw(cfg, i)))
        .collect();
    let jobs: Vec<(usize, usize)> = (0..cfg.scenes)
        .flat_map(|s| (0..cfg.frames).map(move |t| (s, t)))
        .collect();
    jobs.par_iter().try_for_each(|&(s, t)| -> Result<()> {
        let (pixels, mask) = render(cfg, &scenes[s], s, t);
        write_frame(cfg, &dirs[s], &format!("{t:05}.png"), &pixels, &mask)?;
        progress();
        Ok(())
    })?;
    Ok(SynthReport {
        frames: jobs.len(),
        scenes: cfg.scenes,
        root: out.to_path_buf(),
    })
}
