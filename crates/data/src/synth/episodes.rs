//! `fgstp synth --episodes N`: one long video of one scene in which a leak comes and goes N
//! times, with leak-free stretches between, plus `episodes.json` saying when — the footage
//! a live monitor's tests replay.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::scene::{build_scene, render, LeakPlan, Plan};
use super::{to_grey8, write_frame, write_record, SynthConfig};
use crate::error::{DataError, Result};
use crate::video::VideoWriter;
use crate::video_scene::frame_stem;

/// Frames per episode (a leak-free stretch and a leak) at least.
pub const MIN_FRAMES_PER_EPISODE: usize = 12;

/// `episodes.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpisodesFile {
    pub fps: f64,
    pub frames: usize,
    pub width: u32,
    pub height: u32,
    /// File of frame `i` (0-based) in `images/`, `masks/`: `frame_{i+1:05}.png`; frame `i` of
    /// `video.mp4` is shown at `i / fps` seconds.
    pub frame_names: String,
    pub episodes: Vec<Episode>,
}

/// One leak episode, frames 0-based.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// The source releases gas from this frame …
    pub release_start: usize,
    /// … until before this one (then the gas dissipates).
    pub release_stop: usize,
    /// First and last frame whose mask is not empty.
    pub first_frame: usize,
    pub last_frame: usize,
    /// `first_frame / fps` and `(last_frame + 1) / fps`.
    pub start_s: f64,
    pub end_s: f64,
}

/// The release windows of `episodes` episodes over `frames` frames: the video is cut into equal
/// parts, each leak-free for its first 40% and leaking for the next 35%, so every episode is
/// followed by a leak-free stretch long enough for the gas to dissipate.
fn windows(frames: usize, episodes: usize) -> Vec<(i64, i64)> {
    let part = frames as f64 / episodes as f64;
    (0..episodes)
        .map(|e| {
            let start = e as f64 * part;
            (
                (start + 0.40 * part).round() as i64,
                (start + 0.75 * part).round() as i64,
            )
        })
        .collect()
}

/// Writes `out/{images,masks}/frame_NNNNN.png`, `out/video.mp4` (H.264, `fps` frames/s: the
/// frames are the same at any rate, only their timing changes),
/// `out/episodes.json` and `out/synth.toml`: scene 0 of `cfg` with a leak (from a pipe end or
/// a hidden source, as drawn) that comes and goes `episodes` times; distractors as `cfg`'s
/// shares draw them, except that there is no shutter frame (it would blank a frame of an
/// episode). `cfg.scenes` is not used. `progress` is called once per frame written.
pub fn generate_episodes(
    cfg: &SynthConfig,
    episodes: usize,
    fps: f64,
    out: &Path,
    progress: &(dyn Fn() + Sync),
) -> Result<EpisodesFile> {
    let config_error = DataError::Settings;
    let cfg = SynthConfig {
        scenes: cfg.scenes.max(3),
        ..cfg.clone()
    };
    cfg.validate().map_err(config_error)?;
    if episodes == 0 {
        return Err(config_error(
            "--episodes 0: a video with no leak episode; give at least 1".to_string(),
        ));
    }
    let needed = episodes.saturating_mul(MIN_FRAMES_PER_EPISODE);
    if cfg.frames < needed {
        return Err(config_error(format!(
            "--episodes {episodes} needs --frames of at least {needed} ({MIN_FRAMES_PER_EPISODE} per episode), not {}",
            cfg.frames
        )));
    }
    // Below 0.01 the MP4's time base cannot say the rate (the video would claim another).
    if !(0.01..=240.0).contains(&fps) {
        return Err(config_error(format!(
            "--fps must be in [0.01, 240] frames per second, not {fps}"
        )));
    }
    if cfg.bit_depth != 8 {
        return Err(config_error(format!(
            "--episodes writes an 8-bit video: --bit-depth {} is not supported with it",
            cfg.bit_depth
        )));
    }
    for dir in [out.join("images"), out.join("masks")] {
        std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
    }
    write_record(&cfg, out)?;
    let drawn = Plan::draw(&cfg, 0);
    let windows = windows(cfg.frames, episodes);
    let plan = Plan {
        leak: Some(LeakPlan {
            hidden_source: drawn.leak.as_ref().is_some_and(|l| l.hidden_source),
            windows: windows.clone(),
        }),
        nuc_frame: None,
        ..drawn
    };
    let scene = build_scene(&cfg, 0, &plan);
    let video_path = out.join("video.mp4");
    let mut video = VideoWriter::create(&video_path, cfg.width, cfg.height, fps)?;
    let mut gas_frames = Vec::with_capacity(cfg.frames);
    for t in 0..cfg.frames {
        let (pixels, mask) = render(&cfg, &scene, 0, t);
        write_frame(&cfg, out, &format!("{}.png", frame_stem(t)), &pixels, &mask)?;
        let grey = to_grey8(&pixels);
        let rgb = image::RgbImage::from_fn(cfg.width, cfg.height, |x, y| {
            let v = grey[(y * cfg.width + x) as usize];
            image::Rgb([v, v, v])
        });
        video.push_rgb(&rgb)?;
        gas_frames.push(mask.iter().any(|&m| m != 0));
        progress();
    }
    video.finish()?;

    let mut list = Vec::with_capacity(episodes);
    for (e, &(start, stop)) in windows.iter().enumerate() {
        // Gas from this release lasts until the next one starts (or the video ends).
        let until = windows
            .get(e + 1)
            .map_or(cfg.frames, |next| next.0 as usize);
        let with_gas: Vec<usize> = (start as usize..until).filter(|&t| gas_frames[t]).collect();
        let (Some(&first_frame), Some(&last_frame)) = (with_gas.first(), with_gas.last()) else {
            return Err(config_error(format!(
                "episode {e} released no visible gas: use more --frames or a larger --size"
            )));
        };
        list.push(Episode {
            release_start: start as usize,
            release_stop: stop as usize,
            first_frame,
            last_frame,
            start_s: first_frame as f64 / fps,
            end_s: (last_frame + 1) as f64 / fps,
        });
    }
    let file = EpisodesFile {
        fps,
        frames: cfg.frames,
        width: cfg.width,
        height: cfg.height,
        frame_names: "frame_{index + 1:05}.png".into(),
        episodes: list,
    };
    let path = out.join("episodes.json");
    let json = serde_json::to_string_pretty(&file).expect("episodes serialise");
    std::fs::write(&path, json + "\n").map_err(|e| DataError::io(&path, e))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn episodes_are_separated_by_leak_free_stretches() {
        let w = windows(120, 3);
        assert_eq!(w, [(16, 30), (56, 70), (96, 110)]);
        assert!(w.windows(2).all(|p| p[0].1 < p[1].0));
    }
}
