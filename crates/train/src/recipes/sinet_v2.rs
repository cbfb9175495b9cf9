//! The single-frame baseline (the paper's SINet-V2 row): FGSTP's own encoder and decoder on
//! frame t alone, its four maps trained with the structure loss.

use fgstp_data::InputSpec;
use fgstp_model::checkpoint::key_layout::PVT_PREFIX;
use fgstp_model::{ModelKind, Output};
use tch::Tensor;

use super::recipe::{About, Loss, Recipe};
use crate::loss::summed_structure_loss;
use crate::loss::LossTerms;
use crate::run_config::RunConfig;

pub struct SinetV2;

const ABOUT: About = About {
    name: "sinet-v2",
    model: "SINet-V2: FGSTP's encoder and decoder on frame t alone",
    reference: "GeekEagle/FGSTP (its single-frame row)",
    config: "configs/gasvid.toml",
    lr_recipe: "FGSTP's (configs/gasvid.toml with model.kind = \"sinet-v2\")",
};

impl Recipe for SinetV2 {
    fn about(&self) -> &'static About {
        &ABOUT
    }
    fn kind(&self) -> ModelKind {
        ModelKind::SinetV2
    }
    fn input_spec(&self, _cfg: &RunConfig) -> InputSpec {
        InputSpec::default()
    }
    fn loss(&self, out: &Output, mask: &Tensor, terms: LossTerms, _progress: f64) -> Loss {
        summed_structure_loss(&out.maps(), mask, terms)
    }
    fn encoder_prefix(&self) -> &'static str {
        PVT_PREFIX
    }
}
