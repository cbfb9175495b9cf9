//! The building blocks the models are made of: the PVTv2 encoder ([`pvt_v2`]) and the shared
//! [`backbone`] (encoder, RFB, decoder), FGSTP's CTC correlation ([`ctc`]) and FSP ([`fsp`],
//! with its [`difference_aware`] block), the NCD + reverse-stage decoder ([`ncd`],
//! [`reverse_stage`], [`decoder`]), SLT-Net's NS blocks ([`ns_block`]), and the layer helpers
//! they share ([`layers`]).

pub mod backbone;
pub mod ctc;
pub mod decoder;
pub mod difference_aware;
pub mod fsp;
pub mod layers;
pub mod ncd;
pub mod ns_block;
pub mod pvt_v2;
pub mod reverse_stage;
pub mod rfb;
