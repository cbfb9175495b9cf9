//! The single-frame network FGSTP builds on (SINet-V2 style, the reference's `Backbone`):
//! encoder = PVTv2 + three RFBs, decoder = NCD + three reverse stages.

use tch::nn;
use tch::Tensor;

use crate::nn::decoder::Decoder;
use crate::nn::pvt_v2::{PvtV2, PvtV2Config, PvtV2Variant};
use crate::nn::rfb::Rfb;

/// One frame's encoder features: RFB maps [B, channel, H/s, W/s] for s = 8, 16, 32.
pub type Features = [Tensor; 3];

#[derive(Debug)]
pub struct Encoder {
    pvtv2_en: PvtV2,
    rfb2_1: Rfb,
    rfb3_1: Rfb,
    rfb4_1: Rfb,
}

impl Encoder {
    /// The RFB input widths follow the variant's stage widths (b0: 64/160/256, else 128/320/512).
    pub fn new(vs: &nn::Path, variant: PvtV2Variant, channel: i64) -> Self {
        Self::from_config(vs, &variant.config(), channel)
    }

    /// As [`Encoder::new`] for any PVTv2 configuration (e.g. a smaller one for tests).
    pub fn from_config(vs: &nn::Path, pvt_cfg: &PvtV2Config, channel: i64) -> Self {
        let [_, c8, c16, c32] = pvt_cfg.embed_dims;
        Self {
            pvtv2_en: PvtV2::new(&(vs / "pvtv2_en"), pvt_cfg),
            rfb2_1: Rfb::new(&(vs / "rfb2_1"), c8, channel),
            rfb3_1: Rfb::new(&(vs / "rfb3_1"), c16, channel),
            rfb4_1: Rfb::new(&(vs / "rfb4_1"), c32, channel),
        }
    }

    pub fn pvt(&self) -> &PvtV2 {
        &self.pvtv2_en
    }

    pub fn pvt_mut(&mut self) -> &mut PvtV2 {
        &mut self.pvtv2_en
    }

    /// [B, 3, H, W] → features at 1/8, 1/16, 1/32. `bn_train`: the RFBs' BatchNorms use batch
    /// statistics.
    pub fn forward_t(&self, frame: &Tensor, bn_train: bool) -> Features {
        let [_, x8, x16, x32] = self.pvtv2_en.forward(frame);
        [
            self.rfb2_1.forward_t(&x8, bn_train),
            self.rfb3_1.forward_t(&x16, bn_train),
            self.rfb4_1.forward_t(&x32, bn_train),
        ]
    }
}

#[derive(Debug)]
pub struct Backbone {
    pub encoder: Encoder,
    pub decoder: Decoder,
}

impl Backbone {
    pub fn new(vs: &nn::Path, variant: PvtV2Variant, channel: i64) -> Self {
        Self::with_encoder_name(vs, "encoder", &variant.config(), channel)
    }

    /// The same network with the encoder under `vs/<encoder_name>`: SLT-Net's checkpoints name
    /// it `feat_net` where FGSTP's say `encoder`.
    pub fn with_encoder_name(
        vs: &nn::Path,
        encoder_name: &str,
        pvt_cfg: &PvtV2Config,
        channel: i64,
    ) -> Self {
        Self {
            encoder: Encoder::from_config(&(vs / encoder_name), pvt_cfg, channel),
            decoder: Decoder::new(&(vs / "decoder"), channel),
        }
    }

    /// [B, 3, H, W] → the decoder's four logit maps [B, 1, H, W] (NCD, RS5, RS4, RS3).
    pub fn forward_t(&self, frame: &Tensor, bn_train: bool) -> [Tensor; 4] {
        self.decoder
            .forward_t(&self.encoder.forward_t(frame, bn_train), bn_train)
    }
}
