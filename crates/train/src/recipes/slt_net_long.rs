//! SLT-Net's long-term model: RGB plus the short-term model's prediction, clips of
//! `train.clip_frames` frames at 256×448, its four maps trained with the hybrid E-loss.

use fgstp_data::{
    AugmentStyle, ClipStarts, InputSpec, MaskFormat, PixelFormat, ReferenceFrames, TrainSamples,
};
use fgstp_model::checkpoint::key_layout::SLT_NET_PVT_PREFIX;
use fgstp_model::{ModelKind, Output};
use tch::Tensor;

use super::recipe::{About, Loss, Recipe};
use crate::loss::summed_hybrid_e_loss;
use crate::loss::LossTerms;
use crate::run_config::RunConfig;

pub struct SltNetLong;

const ABOUT: About = About {
    name: "slt-net-long",
    model: "SLT-Net, long-term: RGB + the short-term prediction, NS blocks over clips",
    reference: "XuelianCheng/SLT-Net",
    config: "configs/slt-net-long.toml",
    lr_recipe: "SLT-Net's AdamW 1e-5 under cyclic cosine restarts (period 5, × 1.2, down to 1e-7)",
};

impl Recipe for SltNetLong {
    fn about(&self) -> &'static About {
        &ABOUT
    }
    fn kind(&self) -> ModelKind {
        ModelKind::SltNetLong
    }
    fn input_spec(&self, cfg: &RunConfig) -> InputSpec {
        InputSpec {
            train: TrainSamples::Clips {
                len: cfg.train.clip_frames,
                starts: ClipStarts::EveryFrame,
            },
            pixels: PixelFormat::UnitRange,
            masks: MaskFormat::Pillow,
            augment: AugmentStyle::Reference,
            reference_frames: ReferenceFrames::DropLastTwo,
            prior: true,
        }
    }
    fn training_clip(&self, cfg: &RunConfig) -> Option<usize> {
        Some(cfg.train.clip_frames)
    }
    fn loss(&self, out: &Output, mask: &Tensor, terms: LossTerms, _progress: f64) -> Loss {
        summed_hybrid_e_loss(&out.maps(), mask, terms)
    }
    fn encoder_prefix(&self) -> &'static str {
        SLT_NET_PVT_PREFIX
    }
}
