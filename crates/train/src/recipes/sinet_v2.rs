//! The single-frame baseline (the paper's SINet-V2 row): FGSTP's own encoder and decoder on
//! frame t alone, its four maps trained with the structure loss.

use fgstp_data::InputSpec;
use fgstp_model::checkpoint::key_layout::PVT_PREFIX;
use fgstp_model::{ModelKind, Output};
use tch::Tensor;

use super::recipe::{Loss, Recipe};
use crate::loss::summed_structure_loss;
use crate::run_config::{BceWeighting, RunConfig};

pub struct SinetV2;

impl Recipe for SinetV2 {
    fn kind(&self) -> ModelKind {
        ModelKind::SinetV2
    }
    fn name(&self) -> &'static str {
        "sinet-v2"
    }
    fn model(&self) -> &'static str {
        "SINet-V2: FGSTP's encoder and decoder on frame t alone"
    }
    fn reference(&self) -> &'static str {
        "GeekEagle/FGSTP (its single-frame row)"
    }
    fn config(&self) -> &'static str {
        "configs/gasvid.toml"
    }
    fn lr_recipe(&self) -> &'static str {
        "FGSTP's (configs/gasvid.toml with model.kind = \"sinet-v2\")"
    }
    fn input_spec(&self, _cfg: &RunConfig) -> InputSpec {
        InputSpec::default()
    }
    fn loss(&self, out: &Output, mask: &Tensor, bce: BceWeighting, _progress: f64) -> Loss {
        summed_structure_loss(&out.maps(), mask, bce)
    }
    fn encoder_prefix(&self) -> &'static str {
        PVT_PREFIX
    }
}
