//! SLT-Net's short-term model (XuelianCheng/SLT-Net): FGSTP's network without FSP, under
//! SLT-Net's own state-dict keys, trained exactly as FGSTP (its `train_video.py`).

use fgstp_data::InputSpec;
use fgstp_model::checkpoint::key_layout::SLT_NET_PVT_PREFIX;
use fgstp_model::{ModelKind, Output};
use tch::Tensor;

use super::recipe::{About, Loss, Recipe};
use crate::loss::nine_map_structure_loss;
use crate::loss::LossTerms;
use crate::run_config::RunConfig;

pub struct SltNet;

const ABOUT: About = About {
    name: "slt-net",
    model: "SLT-Net, short-term: FGSTP's network without FSP",
    reference: "XuelianCheng/SLT-Net",
    config: "configs/slt-net.toml",
    lr_recipe: "Adam 1e-6, × 0.1 every 50 epochs, gradients clipped by value at 0.5",
};

impl Recipe for SltNet {
    fn about(&self) -> &'static About {
        &ABOUT
    }
    fn kind(&self) -> ModelKind {
        ModelKind::SltNet
    }
    fn input_spec(&self, _cfg: &RunConfig) -> InputSpec {
        InputSpec::default()
    }
    fn loss(&self, out: &Output, mask: &Tensor, terms: LossTerms, _progress: f64) -> Loss {
        nine_map_structure_loss(&out.maps(), mask, terms)
    }
    fn encoder_prefix(&self) -> &'static str {
        SLT_NET_PVT_PREFIX
    }
}
