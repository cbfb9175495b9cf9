//! ZoomNeXt (lartpang/ZoomNeXt), image and video: each frame at three zoom scales (OpenCV
//! resizes of the uint8 frame), one logit map per frame, BCE plus the uncertainty-aware term,
//! albumentations-style augmentation, and its own batch-normalised evaluation ([`eval`]).

pub mod eval;

use std::sync::atomic::AtomicBool;

use anyhow::Result;
use fgstp_data::{
    AugmentStyle, ClipStarts, EvalLoader, InputSpec, MaskFormat, PixelFormat, ReferenceFrames,
    TrainSamples,
};
use fgstp_model::checkpoint::key_layout::ZOOMNEXT_PVT_PREFIX;
use fgstp_model::models::zoomnext::{is_temporal_key, zoom_sizes, VIDEO_CLIP_FRAMES};
use fgstp_model::{Model, ModelKind, Output};
use tch::{Device, Kind, Reduction, Tensor};

use super::recipe::{About, FrameSink, Loss, Recipe};
use crate::loss::LossTerms;
use crate::run_config::RunConfig;

/// The image model: one annotated frame per sample.
pub struct ZoomNextImage;
/// The video model: clips of 5 frames, started as the authors' loader starts them.
pub struct ZoomNextVideo;

/// ZoomNeXt's loss: mean BCE with logits, plus its uncertainty-aware term
/// `mean(1 − (2σ(x) − 1)²)` weighted by a cosine ramp from 0 (first step) to 1 (last),
/// `(1 − cos(π·progress)) / 2`. Returns the two terms (the second already weighted).
pub fn zoomnext_loss(logits: &Tensor, mask: &Tensor, progress: f64) -> (Tensor, Tensor) {
    let bce = logits.binary_cross_entropy_with_logits::<Tensor>(mask, None, None, Reduction::Mean);
    let certainty = (logits.sigmoid() * 2.0 - 1.0).pow_tensor_scalar(2);
    let ramp = (1.0 - (std::f64::consts::PI * progress.clamp(0.0, 1.0)).cos()) / 2.0;
    let ual = (-certainty + 1.0).mean(Kind::Float) * ramp;
    (bce, ual)
}

/// The three zoom scales of the configured base size, small to large.
fn zoom_pyramid(cfg: &RunConfig) -> PixelFormat {
    let size = cfg.data.train_size;
    let sizes =
        zoom_sizes(size.height as usize, size.width as usize).map(|(h, w)| (h as u32, w as u32));
    PixelFormat::ZoomPyramid { sizes }
}

fn loss(out: &Output, mask: &Tensor, progress: f64) -> Loss {
    let maps = out.maps();
    let (bce, ual) = zoomnext_loss(maps[0], mask, progress);
    (&bce + &ual, vec![("bce", bce), ("uncertainty", ual)])
}

fn reference_evaluation(
    model: &Model,
    device: Device,
    loader: &EvalLoader,
    cfg: &RunConfig,
    stop: &AtomicBool,
    on_frame: &mut FrameSink<'_>,
) -> Option<Result<bool>> {
    // Normalised over each batch, batches across videos: see `eval`.
    Some(eval::predict_split(
        model,
        device,
        loader,
        cfg.data.eval_batch_size,
        stop,
        on_frame,
    ))
}

/// The facts both ZoomNeXt kinds share.
macro_rules! zoomnext_common {
    () => {
        fn loss(&self, out: &Output, mask: &Tensor, _terms: LossTerms, progress: f64) -> Loss {
            loss(out, mask, progress)
        }
        fn encoder_prefix(&self) -> &'static str {
            ZOOMNEXT_PVT_PREFIX
        }
        fn reference_evaluation(
            &self,
            model: &Model,
            device: Device,
            loader: &EvalLoader,
            cfg: &RunConfig,
            stop: &AtomicBool,
            on_frame: &mut FrameSink<'_>,
        ) -> Option<Result<bool>> {
            reference_evaluation(model, device, loader, cfg, stop, on_frame)
        }
        /// The authors' `skip_unmatched_shape`: an image checkpoint's temporal tensors, made
        /// for one frame, do not fit the video model.
        fn skips_mismatched_pretrained(&self, key: &str) -> bool {
            is_temporal_key(key)
        }
    };
}

const IMAGE: About = About {
    name: "zoomnext",
    model: "ZoomNeXt, image: one frame at three zoom scales",
    reference: "lartpang/ZoomNeXt",
    config: "configs/zoomnext.toml",
    lr_recipe: "Adam 1e-4, × 0.1 after 2/3 of all iterations",
};

impl Recipe for ZoomNextImage {
    zoomnext_common!();
    fn about(&self) -> &'static About {
        &IMAGE
    }
    fn kind(&self) -> ModelKind {
        ModelKind::Zoomnext
    }
    fn input_spec(&self, cfg: &RunConfig) -> InputSpec {
        InputSpec {
            train: TrainSamples::Frames,
            pixels: zoom_pyramid(cfg),
            masks: MaskFormat::OpenCvLinear,
            augment: AugmentStyle::AlbumentationsImage,
            reference_frames: ReferenceFrames::Annotated,
            prior: false,
        }
    }
}

const VIDEO: About = About {
    name: "zoomnext-video",
    model: "ZoomNeXt, video: clips of 5 frames, each at three zoom scales",
    reference: "lartpang/ZoomNeXt",
    config: "configs/zoomnext-video.toml",
    lr_recipe: "Adam 1e-4 constant; 0.1× for the pretrained image model's parameters",
};

impl Recipe for ZoomNextVideo {
    zoomnext_common!();
    fn about(&self) -> &'static About {
        &VIDEO
    }
    fn kind(&self) -> ModelKind {
        ModelKind::ZoomnextVideo
    }
    fn input_spec(&self, cfg: &RunConfig) -> InputSpec {
        InputSpec {
            train: TrainSamples::Clips {
                len: VIDEO_CLIP_FRAMES as usize,
                starts: ClipStarts::StrideTwice,
            },
            pixels: zoom_pyramid(cfg),
            masks: MaskFormat::OpenCvLinear,
            augment: AugmentStyle::AlbumentationsClip,
            reference_frames: ReferenceFrames::Annotated,
            prior: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use fgstp_model::ModelKind;

    use crate::run_config::{LrSchedule, RunConfig};

    fn configs() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs")
    }

    #[test]
    fn the_shipped_configs_hold_the_authors_recipes() {
        let zoom = RunConfig::load(&configs().join("zoomnext.toml"), &[]).unwrap();
        assert_eq!(zoom.model.kind, ModelKind::Zoomnext);
        assert_eq!(zoom.train.lr_schedule, LrSchedule::IterationStep);
        assert_eq!(zoom.train.frozen, ["encoder.patch_embed1.*"]);
        assert_eq!(zoom.train.param_groups[0].lr_factor, 0.1);
        assert_eq!((zoom.train.clip, zoom.data.drop_last), (0.0, true));
        let video = RunConfig::load(&configs().join("zoomnext-video.toml"), &[]).unwrap();
        assert_eq!(video.model.kind, ModelKind::ZoomnextVideo);
        assert_eq!(video.train.lr_schedule, LrSchedule::Constant);
        assert_eq!(video.train.param_groups.len(), 2);
    }

    #[test]
    fn a_base_size_off_the_prediction_grid_is_named() {
        let zoom = RunConfig::load(
            &configs().join("gasvid.toml"),
            &[
                "model.kind=\"zoomnext\"".into(),
                "data.train_size=66".into(),
            ],
        )
        .unwrap_err();
        assert!(format!("{zoom:#}").contains("multiple of 4"), "{zoom:#}");
    }
}
