//! RFB (receptive field block, the reference's `RFB_modified`): reduces a PVTv2 stage map to
//! `channel` channels through four branches of growing receptive field (1×1; 1×k, k×1 and a
//! 3×3 conv dilated by k for k = 3, 5, 7), a 3×3 fusion conv and a 1×1 residual, then a ReLU.

use tch::nn;
use tch::Tensor;

use crate::nn::layers::{BasicConv2d, ConvSpec};

#[derive(Debug)]
pub struct Rfb {
    branches: [Vec<BasicConv2d>; 4],
    conv_cat: BasicConv2d,
    conv_res: BasicConv2d,
}

impl Rfb {
    pub fn new(vs: &nn::Path, c_in: i64, c_out: i64) -> Self {
        let branch = |i: usize, k: i64| {
            let bvs = vs / format!("branch{i}");
            let mut convs = vec![BasicConv2d::new(
                &(&bvs / 0),
                c_in,
                c_out,
                ConvSpec::square(1),
            )];
            if k > 1 {
                let row = ConvSpec {
                    k: [1, k],
                    padding: [0, k / 2],
                    ..ConvSpec::square(1)
                };
                let col = ConvSpec {
                    k: [k, 1],
                    padding: [k / 2, 0],
                    ..ConvSpec::square(1)
                };
                let dilated = ConvSpec::square(3).padding(k).dilation(k);
                convs.push(BasicConv2d::new(&(&bvs / 1), c_out, c_out, row));
                convs.push(BasicConv2d::new(&(&bvs / 2), c_out, c_out, col));
                convs.push(BasicConv2d::new(&(&bvs / 3), c_out, c_out, dilated));
            }
            convs
        };
        Self {
            branches: [branch(0, 1), branch(1, 3), branch(2, 5), branch(3, 7)],
            conv_cat: BasicConv2d::new(
                &(vs / "conv_cat"),
                4 * c_out,
                c_out,
                ConvSpec::square(3).padding(1),
            ),
            conv_res: BasicConv2d::new(&(vs / "conv_res"), c_in, c_out, ConvSpec::square(1)),
        }
    }

    /// [B, c_in, H, W] → [B, c_out, H, W]
    pub fn forward_t(&self, xs: &Tensor, bn_train: bool) -> Tensor {
        let branch_outs: Vec<Tensor> = self
            .branches
            .iter()
            .map(|convs| {
                convs
                    .iter()
                    .fold(xs.shallow_clone(), |x, conv| conv.forward_t(&x, bn_train))
            })
            .collect();
        let cat = self
            .conv_cat
            .forward_t(&Tensor::cat(&branch_outs, 1), bn_train);
        (cat + self.conv_res.forward_t(xs, bn_train)).relu()
    }
}
