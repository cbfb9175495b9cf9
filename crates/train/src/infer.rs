//! `fgstp infer` on new footage — a video file, a folder of frames, a scene or a split —
//! written frame by frame (and optionally as overlay and mask videos).
//!
//! A video that breaks part-way (cut off while copying, a damaged frame) is not passed off as
//! complete: its frames before the break are all predicted and written — the run restarts
//! that video as one of its readable length, skipping what is written, so the last readable
//! frames get the neighbours a video of that length gives them — and the report lists it
//! ("N of M frames"), for the command to exit non-zero.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use fgstp_data::dataset::Split;
use fgstp_data::video::{VideoError, VideoWriter};
use fgstp_data::DataError;
use fgstp_metrics::Shard;

use crate::evaluate::shard_split;
use crate::outputs::{MaskRule, Outputs, Written};
use crate::trained_run::LoadedModel;

/// Frame rate of the written videos when neither `--fps` nor the source gives one (frame
/// folders; FLIR files that record none). Thermal cameras mostly record 30 frames/s.
pub const FALLBACK_FPS: f64 = 30.0;

/// What to run on and what to write.
#[derive(Debug, Clone)]
pub struct InferOptions {
    pub input: PathBuf,
    pub output: PathBuf,
    pub save_prob: bool,
    /// Also write the 8-bit min-max maps (a short-term SLT-Net's are the long-term model's priors).
    pub save_maps: bool,
    /// Only this shard of the videos (job arrays).
    pub shard: Option<Shard>,
    pub overlay_video: Option<PathBuf>,
    pub mask_video: Option<PathBuf>,
    /// Frame rate of the written videos; `None`: the source's, else [`FALLBACK_FPS`].
    pub fps: Option<f64>,
    /// Which pixels masks/, overlays/ and the mask video mark.
    pub mask: MaskRule,
}

/// A video that broke part-way.
#[derive(Debug)]
pub struct Broken {
    pub scene: String,
    /// Frames before the break (all written when at least 3; a sample needs 3 frames).
    pub readable: usize,
    /// Frames the container announced.
    pub total: usize,
    /// Predictions written for it.
    pub written: usize,
    pub error: String,
}

/// What [`infer`] wrote.
#[derive(Debug)]
pub struct InferReport {
    /// Frames predicted and written.
    pub frames: usize,
    /// Frames the input holds (as announced by its files and containers).
    pub expected: usize,
    pub broken: Vec<Broken>,
    /// Frame rate of the written videos, and whether it is [`FALLBACK_FPS`].
    pub video_fps: Option<(f64, bool)>,
}

/// Predicts every frame of `options.input` and writes masks, overlays (and probabilities,
/// videos). `on_total(frames)` announces (and, after a break, corrects) the number of frames
/// to predict; `on_frame` is called once per frame written.
pub fn infer(
    model: &LoadedModel,
    options: &InferOptions,
    on_total: &dyn Fn(u64),
    on_frame: &dyn Fn(),
) -> Result<InferReport> {
    let mut split = open(options)?;
    let expected = split.frame_count();
    // One video given directly: flat outputs; a split: one folder per video.
    let per_video = split.scenes.iter().any(|scene| scene.dir != options.input);
    let mut videos = VideoOutputs::new(options, &split)?;
    let video_fps = videos.as_ref().map(|v| (v.fps, v.fallback));
    let outputs = Outputs::new(
        &options.output,
        options.save_maps,
        options.save_prob,
        options.mask,
    );
    let mut done: HashSet<(String, usize)> = HashSet::new();
    let mut broken: Vec<Broken> = Vec::new();
    loop {
        let names: Vec<String> = split.scenes.iter().map(|s| s.name.clone()).collect();
        let loader = model.loader_filtered(split, |s| {
            !done.contains(&(names[s.scene].clone(), s.frames[0]))
        })?;
        on_total((done.len() + loader.len()) as u64);
        let result = model.predict(&loader, |frame| {
            let stem = frame.scene.frames[frame.frame].stem();
            let video = per_video.then_some(frame.scene.name.as_str());
            let written = outputs.write(video, stem, &frame.prob, &frame.image()?)?;
            if let Some(videos) = &mut videos {
                videos.push(&written)?;
            }
            done.insert((frame.scene.name.clone(), frame.frame));
            on_frame();
            Ok(())
        });
        let Err(err) = result else { break };
        let Some((path, readable, total)) = truncation(&err) else {
            return Err(err);
        };
        let scene = loader
            .split()
            .scenes
            .iter()
            .find(|s| s.video().is_some_and(|v| v.path() == path));
        let Some(scene) = scene else { return Err(err) };
        if broken.iter().any(|b| b.scene == scene.name) {
            // Cut to its readable length it broke again: nothing more to rescue.
            return Err(err);
        }
        broken.push(Broken {
            scene: scene.name.clone(),
            readable,
            total,
            written: 0,
            error: format!("{:#}", err),
        });
        drop(loader);
        // Again, with each broken video cut to what it holds before the break.
        split = open(options)?;
        for b in &broken {
            cut(&mut split, &b.scene, b.readable);
        }
    }
    if let Some(videos) = videos {
        videos.finish()?;
    }
    let mut per_scene: BTreeMap<&str, usize> = BTreeMap::new();
    for (scene, _) in &done {
        *per_scene.entry(scene.as_str()).or_default() += 1;
    }
    for b in &mut broken {
        b.written = per_scene.get(b.scene.as_str()).copied().unwrap_or(0);
    }
    Ok(InferReport {
        frames: done.len(),
        expected,
        broken,
        video_fps,
    })
}

/// The footage at `options.input`, only the shard's videos when sharded.
fn open(options: &InferOptions) -> Result<Split> {
    let split = Split::open_footage(&options.input)?;
    Ok(match options.shard {
        Some(shard) => shard_split(split, shard),
        None => split,
    })
}

/// The video and its readable and announced frame counts, if `err` is a video breaking.
fn truncation(err: &anyhow::Error) -> Option<(PathBuf, usize, usize)> {
    err.chain().find_map(|e| {
        let video = match e.downcast_ref::<DataError>() {
            Some(DataError::Video(v)) => v,
            _ => e.downcast_ref::<VideoError>()?,
        };
        match video {
            VideoError::Truncated {
                path,
                decoded,
                total,
                ..
            } => Some((path.clone(), *decoded, *total)),
            _ => None,
        }
    })
}

/// Keeps the first `frames` frames of `scene` (drops it when too few are left for a sample).
fn cut(split: &mut Split, scene: &str, frames: usize) {
    if frames < 3 {
        split.scenes.retain(|s| s.name != scene);
    } else if let Some(s) = split.scenes.iter_mut().find(|s| s.name == scene) {
        s.frames.truncate(frames);
    }
}

/// `--overlay-video` and `--mask-video`.
struct VideoOutputs {
    overlay: Option<VideoWriter>,
    mask: Option<VideoWriter>,
    fps: f64,
    fallback: bool,
}

impl VideoOutputs {
    fn new(options: &InferOptions, split: &Split) -> Result<Option<Self>> {
        if options.overlay_video.is_none() && options.mask_video.is_none() {
            return Ok(None);
        }
        let [scene] = split.scenes.as_slice() else {
            bail!(
                "--overlay-video and --mask-video write one video, but {} holds {} videos: give one of them as --input (a video file, a scene folder or a folder of frames)",
                options.input.display(),
                split.scenes.len()
            );
        };
        let source = scene.video().map(|v| v.info().fps).filter(|&fps| fps > 0.0);
        let (fps, fallback) = match (options.fps, source) {
            (Some(fps), _) => (fps, false),
            (None, Some(fps)) => (fps, false),
            (None, None) => (FALLBACK_FPS, true),
        };
        let create = |path: &Option<PathBuf>| -> Result<Option<VideoWriter>> {
            Ok(match path {
                Some(path) => Some(create_parent_and(path, || {
                    VideoWriter::create(path, scene.width, scene.height, fps)
                })?),
                None => None,
            })
        };
        Ok(Some(Self {
            overlay: create(&options.overlay_video)?,
            mask: create(&options.mask_video)?,
            fps,
            fallback,
        }))
    }

    fn push(&mut self, written: &Written) -> Result<()> {
        if let Some(w) = &mut self.overlay {
            w.push_rgb(&written.overlay)?;
        }
        if let Some(w) = &mut self.mask {
            w.push_gray(&written.mask)?;
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        for writer in [self.overlay, self.mask].into_iter().flatten() {
            if writer.frames() > 0 {
                writer.finish()?;
            }
        }
        Ok(())
    }
}

fn create_parent_and<T>(path: &Path, make: impl FnOnce() -> Result<T, VideoError>) -> Result<T> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", parent.display()))?;
    }
    Ok(make()?)
}
