//! FGSTP (Zhao & Du, ICIP 2025): frames t, t+1, t+2 → each pair's four deep-supervision maps
//! and the fused map, trained on nine of them with the structure loss.

use fgstp_data::InputSpec;
use fgstp_model::checkpoint::key_layout::PVT_PREFIX;
use fgstp_model::{ModelKind, Output};
use tch::Tensor;

use super::recipe::{About, Loss, Recipe};
use crate::loss::nine_map_structure_loss;
use crate::loss::LossTerms;
use crate::run_config::RunConfig;

pub struct Fgstp;

const ABOUT: About = About {
    name: "fgstp",
    model: "FGSTP: PVTv2, RFB, correlation (CTC), FSP, NCD + reverse attention, fused pairs",
    reference: "GeekEagle/FGSTP",
    config: "configs/gasvid.toml",
    lr_recipe: "Adam 1e-4, × 0.1 every 45 epochs, gradients clipped by value at 0.5",
};

impl Recipe for Fgstp {
    fn about(&self) -> &'static About {
        &ABOUT
    }
    fn kind(&self) -> ModelKind {
        ModelKind::Fgstp
    }
    fn input_spec(&self, _cfg: &RunConfig) -> InputSpec {
        InputSpec::default()
    }
    fn loss(&self, out: &Output, mask: &Tensor, terms: LossTerms, _progress: f64) -> Loss {
        nine_map_structure_loss(&out.maps(), mask, terms)
    }
    fn encoder_prefix(&self) -> &'static str {
        PVT_PREFIX
    }
}
