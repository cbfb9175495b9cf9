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
//!   correction's shutter frame followed by an offset (`nuc`), a short camera shake (`shake`);
//! - whether a leak-free scene is a twin (`twins`): the leaking scene before it again, the gas
//!   taken out and everything else (sensor noise included) the same.
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

mod config;
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

use crate::error::{DataError, Result};
pub use config::{SynthConfig, GENERATOR_VERSION};
use scene::{build_scene, render};
pub use scene::{Crosser, LeakPlan, Plan, MASK_THRESHOLD};

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
    cfg.validate().map_err(DataError::Settings)?;
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

    // A twin is its source scene with the gas taken out, rendered with the source's noise.
    let drawn_as: Vec<usize> = (0..cfg.scenes)
        .map(|i| cfg.twin_of(i).unwrap_or(i))
        .collect();
    // Scenes are drawn a few at a time and dropped once written: a scene holds the plume of
    // every frame, so all of them at once would take (scenes × frames) of memory.
    let scene_bytes = config::scene_memory(cfg.width, cfg.height, cfg.frames).max(1);
    let batch = (2 * rayon::current_num_threads())
        .min((config::MAX_SCENE_MEMORY / scene_bytes) as usize)
        .max(1);
    for first in (0..cfg.scenes).step_by(batch) {
        let indices = first..(first + batch).min(cfg.scenes);
        let scenes: Vec<_> = indices
            .clone()
            .into_par_iter()
            .map(|i| {
                let source = drawn_as[i];
                let scene = build_scene(cfg, source, &Plan::draw(cfg, source));
                if source == i {
                    scene
                } else {
                    scene.without_gas()
                }
            })
            .collect();
        let jobs: Vec<(usize, usize)> = indices
            .flat_map(|s| (0..cfg.frames).map(move |t| (s, t)))
            .collect();
        jobs.par_iter().try_for_each(|&(s, t)| -> Result<()> {
            let (pixels, mask) = render(cfg, &scenes[s - first], drawn_as[s], t);
            write_frame(cfg, &dirs[s], &format!("{t:05}.png"), &pixels, &mask)?;
            progress();
            Ok(())
        })?;
    }
    Ok(SynthReport {
        frames: cfg.scenes * cfg.frames,
        scenes: cfg.scenes,
        root: out.to_path_buf(),
    })
}
