//! The building blocks the models are made of: the PVTv2 encoder (`pvt_v2`) and the shared
//! [`backbone`] (encoder, RFB, decoder), FGSTP's CTC correlation (`ctc`) and FSP (`fsp`, with
//! its `difference_aware` block), the NCD + reverse-stage decoder (`ncd`, `reverse_stage`,
//! `decoder`), SLT-Net's NS blocks ([`ns_block`]), and the layer helpers they share (`layers`).

pub mod backbone;
pub(crate) mod ctc;
pub(crate) mod decoder;
pub(crate) mod difference_aware;
pub(crate) mod fsp;
pub(crate) mod layers;
pub(crate) mod ncd;
pub mod ns_block;
pub(crate) mod pvt_v2;
pub(crate) mod reverse_stage;
pub(crate) mod rfb;
