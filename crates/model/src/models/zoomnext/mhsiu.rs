//! ZoomNeXt's multi-head scale integration unit (MHSIU, the reference's `siu_*`): the features of the
//! large (1.5×) and small (0.5×) zoom scales are brought to the medium (1×) scale's size — adaptive
//! max + average pooling for the large one, bilinear resizing for the small one — and the three are
//! mixed per position by softmax weights computed in `groups` channel groups ("heads").

use tch::nn::{self, Module};
use tch::Tensor;

use crate::nn::layers::{conv2d, ConvBnRelu, ConvInit, ConvSpec};

#[derive(Debug)]
pub struct Mhsiu {
    conv_l_pre: ConvBnRelu,
    conv_s_pre: ConvBnRelu,
    conv_l: ConvBnRelu,
    conv_m: ConvBnRelu,
    conv_s: ConvBnRelu,
    conv_lms: ConvBnRelu,
    initial_merge: ConvBnRelu,
    /// `trans.0`, `trans.1`: per-head 1×1 then 3×3 conv blocks; `trans.2`: a plain 1×1 conv (with
    /// bias) to the three scale weights.
    trans: [ConvBnRelu; 2],
    trans_out: nn::Conv2D,
    groups: i64,
}

impl Mhsiu {
    /// `dim` channels per scale, `groups` heads (`dim` divisible by `groups`; reference: 64 and 4).
    pub fn new(vs: &nn::Path, dim: i64, groups: i64) -> Self {
        let conv3 = ConvSpec::square(3).padding(1);
        let one = ConvSpec::square(1);
        let cbr =
            |name: &str, c_in, c_out, spec| ConvBnRelu::new(&(vs / name), c_in, c_out, spec, true);
        let head = dim / groups;
        let trans_vs = vs / "trans";
        Self {
            conv_l_pre: cbr("conv_l_pre", dim, dim, conv3),
            conv_s_pre: cbr("conv_s_pre", dim, dim, conv3),
            conv_l: cbr("conv_l", dim, dim, conv3),
            conv_m: cbr("conv_m", dim, dim, conv3),
            conv_s: cbr("conv_s", dim, dim, conv3),
            conv_lms: cbr("conv_lms", 3 * dim, 3 * dim, one),
            initial_merge: cbr("initial_merge", 3 * dim, 3 * dim, one),
            trans: [
                ConvBnRelu::new(&(&trans_vs / 0), 3 * head, head, one, true),
                ConvBnRelu::new(&(&trans_vs / 1), head, head, conv3, true),
            ],
            trans_out: conv2d(&(&trans_vs / 2), head, 3, one, ConvInit::TorchDefault),
            groups,
        }
    }

    /// [N, 3·heads·d, H, W], channels ordered (scale, head, d) → [N·heads, 3, d, H, W]: one batch
    /// entry per head.
    fn split_heads(&self, xs: &Tensor) -> Tensor {
        let (n, c, h, w) = xs.size4().expect("4-D");
        let d = c / (3 * self.groups);
        xs.view([n, 3, self.groups, d, h, w])
            .permute([0, 2, 1, 3, 4, 5])
            .reshape([n * self.groups, 3, d, h, w])
    }

    /// Large [N, dim, Hl, Wl], medium [N, dim, H, W], small [N, dim, Hs, Ws] → [N, dim, H, W].
    pub fn forward_t(
        &self,
        large: &Tensor,
        medium: &Tensor,
        small: &Tensor,
        bn_train: bool,
    ) -> Tensor {
        let (n, dim, h, w) = medium.size4().expect("4-D");
        let large = self.conv_l_pre.forward_t(large, bn_train);
        let large = large.adaptive_max_pool2d([h, w]).0 + large.adaptive_avg_pool2d([h, w]);
        let small = self
            .conv_s_pre
            .forward_t(small, bn_train)
            .upsample_bilinear2d([h, w], false, None, None);
        let lms = Tensor::cat(
            &[
                self.conv_l.forward_t(&large, bn_train),
                self.conv_m.forward_t(medium, bn_train),
                self.conv_s.forward_t(&small, bn_train),
            ],
            1,
        );
        // Per head: the three scales' weights at every position, softmax over the scales.
        let head = dim / self.groups;
        let attn = self
            .split_heads(&self.conv_lms.forward_t(&lms, bn_train))
            .reshape([n * self.groups, 3 * head, h, w]);
        let attn = self.trans[1].forward_t(&self.trans[0].forward_t(&attn, bn_train), bn_train);
        let attn = self.trans_out.forward(&attn).softmax(1, None).unsqueeze(2);
        let merged = self.split_heads(&self.initial_merge.forward_t(&lms, bn_train));
        (attn * merged)
            .sum_dim_intlist(&[1i64][..], false, None)
            .reshape([n, dim, h, w])
    }
}
