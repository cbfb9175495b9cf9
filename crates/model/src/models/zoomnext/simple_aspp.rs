//! ZoomNeXt's SimpleASPP (`tra_5`): the 1/32 encoder map reduced to `out` channels by a cascade of
//! three dilated 3×3 convs on one half of a 1×1 projection and a global-average branch on the other
//! half, fused by a 1×1 and a 3×3 conv. Every conv is conv (no bias) + BatchNorm + ReLU.

use tch::Tensor;

use crate::nn::layers::{ConvBnRelu, ConvSpec};

/// The dilation (and padding) of the three cascaded 3×3 convs (the reference's default).
const DILATION: i64 = 3;

#[derive(Debug)]
pub struct SimpleAspp {
    conv1x1_1: ConvBnRelu,
    conv1x1_2: ConvBnRelu,
    conv3x3: [ConvBnRelu; 3],
    fuse: [ConvBnRelu; 2],
}

impl SimpleAspp {
    pub fn new(vs: &tch::nn::Path, c_in: i64, out: i64) -> Self {
        let cbr =
            |name: &str, c_in, c_out, spec| ConvBnRelu::new(&(vs / name), c_in, c_out, spec, true);
        let one = ConvSpec::square(1);
        let dilated = ConvSpec::square(3).dilation(DILATION).padding(DILATION);
        let fuse_vs = vs / "fuse";
        Self {
            conv1x1_1: cbr("conv1x1_1", c_in, 2 * out, one),
            conv1x1_2: cbr("conv1x1_2", out, out, one),
            conv3x3: [
                cbr("conv3x3_1", out, out, dilated),
                cbr("conv3x3_2", out, out, dilated),
                cbr("conv3x3_3", out, out, dilated),
            ],
            fuse: [
                ConvBnRelu::new(&(&fuse_vs / 0), 5 * out, out, one, true),
                ConvBnRelu::new(
                    &(&fuse_vs / 1),
                    out,
                    out,
                    ConvSpec::square(3).padding(1),
                    true,
                ),
            ],
        }
    }

    /// [N, c_in, H, W] → [N, out, H, W]
    pub fn forward_t(&self, xs: &Tensor, bn_train: bool) -> Tensor {
        let (_, _, h, w) = xs.size4().expect("encoder maps are 4-D");
        let halves = self.conv1x1_1.forward_t(xs, bn_train).chunk(2, 1);
        let (local, global) = (&halves[0], &halves[1]);
        let d1 = self.conv3x3[0].forward_t(local, bn_train);
        let d2 = self.conv3x3[1].forward_t(&d1, bn_train);
        let d3 = self.conv3x3[2].forward_t(&d2, bn_train);
        let pooled = self
            .conv1x1_2
            .forward_t(&global.mean_dim(&[2i64, 3][..], true, None), bn_train)
            .upsample_bilinear2d([h, w], false, None, None);
        let cat = Tensor::cat(&[&pooled, local, &d1, &d2, &d3], 1);
        self.fuse[1].forward_t(&self.fuse[0].forward_t(&cat, bn_train), bn_train)
    }
}
