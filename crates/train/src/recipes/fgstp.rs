//! FGSTP (Zhao & Du, ICIP 2025): frames t, t+1, t+2 → each pair's four deep-supervision maps
//! and the fused map, trained on nine of them with the structure loss.

use fgstp_data::InputSpec;
use fgstp_model::checkpoint::key_layout::PVT_PREFIX;
use fgstp_model::{ModelKind, Output};
use tch::Tensor;

use super::recipe::{Loss, Recipe};
use crate::loss::nine_map_structure_loss;
use crate::run_config::{BceWeighting, RunConfig};

pub struct Fgstp;

impl Recipe for Fgstp {
    fn kind(&self) -> ModelKind {
        ModelKind::Fgstp
    }
    fn name(&self) -> &'static str {
        "fgstp"
    }
    fn model(&self) -> &'static str {
        "FGSTP: PVTv2, RFB, correlation (CTC), FSP, NCD + reverse attention, fused pairs"
    }
    fn reference(&self) -> &'static str {
        "GeekEagle/FGSTP"
    }
    fn config(&self) -> &'static str {
        "configs/gasvid.toml"
    }
    fn lr_recipe(&self) -> &'static str {
        "Adam 1e-4, × 0.1 every 45 epochs, gradients clipped by value at 0.5"
    }
    fn input_spec(&self, _cfg: &RunConfig) -> InputSpec {
        InputSpec::default()
    }
    fn loss(&self, out: &Output, mask: &Tensor, bce: BceWeighting, _progress: f64) -> Loss {
        nine_map_structure_loss(&out.maps(), mask, bce)
    }
    fn encoder_prefix(&self) -> &'static str {
        PVT_PREFIX
    }
}
