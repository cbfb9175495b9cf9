//! NCD (neighbour connection decoder, from SINet-V2): aggregates the three feature maps from
//! coarse to fine with ×2 bilinear upsampling (align_corners = true) and element-wise products
//! between neighbouring levels, into a one-channel coarse map at 1/8 of the input.

use tch::nn::{self, Module};
use tch::Tensor;

use crate::nn::layers::{conv2d, interpolate_bilinear, BasicConv2d, ConvInit, ConvSpec};

#[derive(Debug)]
pub struct Ncd {
    conv_upsample: [BasicConv2d; 5],
    conv_concat2: BasicConv2d,
    conv_concat3: BasicConv2d,
    conv4: BasicConv2d,
    conv5: nn::Conv2D,
}

fn up2(xs: &Tensor) -> Tensor {
    interpolate_bilinear(xs, 2.0, true)
}

impl Ncd {
    pub fn new(vs: &nn::Path, channel: i64) -> Self {
        let c3 = ConvSpec::square(3).padding(1);
        let basic = |name: &str, c: i64| BasicConv2d::new(&(vs / name), c, c, c3);
        Self {
            conv_upsample: [
                basic("conv_upsample1", channel),
                basic("conv_upsample2", channel),
                basic("conv_upsample3", channel),
                basic("conv_upsample4", channel),
                basic("conv_upsample5", 2 * channel),
            ],
            conv_concat2: basic("conv_concat2", 2 * channel),
            conv_concat3: basic("conv_concat3", 3 * channel),
            conv4: basic("conv4", 3 * channel),
            conv5: conv2d(
                &(vs / "conv5"),
                3 * channel,
                1,
                ConvSpec::square(1),
                ConvInit::TorchDefault,
            ),
        }
    }

    pub(crate) fn probe_parameter(&self) -> &Tensor {
        &self.conv5.ws
    }

    /// `coarse` [B, C, h, w], `middle` [B, C, 2h, 2w], `fine` [B, C, 4h, 4w] → [B, 1, 4h, 4w]
    pub fn forward_t(
        &self,
        coarse: &Tensor,
        middle: &Tensor,
        fine: &Tensor,
        bn_train: bool,
    ) -> Tensor {
        let [up1, up2_, up3, up4, up5] = &self.conv_upsample;
        let coarse_up = up2(coarse);
        let middle_1 = up1.forward_t(&coarse_up, bn_train) * middle;
        let fine_1 = up2_.forward_t(&up2(&middle_1), bn_train)
            * up3.forward_t(&up2(middle), bn_train)
            * fine;

        let middle_2 = Tensor::cat(&[middle_1, up4.forward_t(&coarse_up, bn_train)], 1);
        let middle_2 = self.conv_concat2.forward_t(&middle_2, bn_train);

        let fine_2 = Tensor::cat(&[fine_1, up5.forward_t(&up2(&middle_2), bn_train)], 1);
        let fine_2 = self.conv_concat3.forward_t(&fine_2, bn_train);

        self.conv5.forward(&self.conv4.forward_t(&fine_2, bn_train))
    }
}
