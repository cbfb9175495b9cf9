//! Decoder (SINet-V2 style): NCD gives a coarse map from the three feature maps, then three
//! reverse stages (RS5 on 1/32, RS4 on 1/16, RS3 on 1/8) refine it from coarse to fine.

use tch::nn;
use tch::Tensor;

use crate::nn::layers::interpolate_bilinear;
use crate::nn::ncd::Ncd;
use crate::nn::reverse_stage::ReverseStage;

#[derive(Debug)]
pub struct Decoder {
    ncd: Ncd,
    rs5: ReverseStage,
    rs4: ReverseStage,
    rs3: ReverseStage,
}

/// `F.interpolate(x, scale_factor=s, mode="bilinear")` (align_corners false).
fn resize(xs: &Tensor, scale: f64) -> Tensor {
    interpolate_bilinear(xs, scale, false)
}

impl Decoder {
    pub fn new(vs: &nn::Path, channel: i64) -> Self {
        Self {
            ncd: Ncd::new(&(vs / "NCD"), channel),
            rs5: ReverseStage::new(&(vs / "RS5"), channel),
            rs4: ReverseStage::new(&(vs / "RS4"), channel),
            rs3: ReverseStage::new(&(vs / "RS3"), channel),
        }
    }

    /// A parameter whose device and dtype are the decoder's.
    pub(crate) fn probe_parameter(&self) -> &Tensor {
        self.ncd.probe_parameter()
    }

    /// Feature maps at 1/8, 1/16, 1/32 of an H×W input, [B, C, ·, ·] each → four logit maps
    /// [B, 1, H, W]: the NCD map and the RS5, RS4, RS3 refinements (the last is the finest).
    pub fn forward_t(&self, feats: &[Tensor; 3], bn_train: bool) -> [Tensor; 4] {
        let [x8, x16, x32] = feats;
        let s_g = self.ncd.forward_t(x32, x16, x8, bn_train); // 1/8
        let guidance_g = resize(&s_g, 0.25); // 1/32
        let s_5 = self.rs5.forward(x32, &guidance_g) + &guidance_g;
        let guidance_5 = resize(&s_5, 2.0); // 1/16
        let s_4 = self.rs4.forward(x16, &guidance_5) + &guidance_5;
        let guidance_4 = resize(&s_4, 2.0); // 1/8
        let s_3 = self.rs3.forward(x8, &guidance_4) + &guidance_4;
        [
            resize(&s_g, 8.0),
            resize(&s_5, 32.0),
            resize(&s_4, 16.0),
            resize(&s_3, 8.0),
        ]
    }
}
