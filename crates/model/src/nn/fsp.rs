//! FSP: fine-grained refinement of a correlation map, in groups. The map is expanded to
//! `groups` chunks of `channel/2` channels; a chain of 3×3 conv blocks processes them in turn,
//! each passing a "fork" to the next and emitting an output and a gate; the gates, pooled and
//! turned into a channel softmax, weight the concatenated outputs; a 3×3 conv + BN maps back to
//! `channel` and a ReLU closes the residual.
//!
//! ZoomNeXt's RGPU is the same module with, before that last conv, its difference-aware temporal
//! operation ([`Fsp::rgpu`]); its conv + BN is named `fuse.1` instead of `BNReLU`.

use tch::nn::{self, Module};
use tch::Tensor;

use crate::nn::difference_aware::DifferenceAware;
use crate::nn::layers::{conv2d, ConvBnRelu, ConvInit, ConvSpec};

#[derive(Debug)]
pub struct Fsp {
    expand_conv: ConvBnRelu,
    gate_reduce: nn::Conv2D,
    gate_expand: nn::Conv2D,
    /// `interact.{0..groups-1}`: the first takes one chunk, the others a chunk and the previous
    /// fork; the last emits only an output and a gate.
    interact: Vec<ConvBnRelu>,
    fuse: ConvBnRelu,
    /// ZoomNeXt's RGPU only (`fuse.0`).
    temporal: Option<DifferenceAware>,
    groups: i64,
}

impl Fsp {
    /// `groups` ≥ 2. The reference's FGSTP asks for 6 with a misspelled keyword and so gets the
    /// default, which is also 6.
    pub fn new(vs: &nn::Path, channel: i64, groups: i64) -> Self {
        Self::with_fuse(vs, channel, groups, &(vs / "BNReLU"), None)
    }

    /// ZoomNeXt's RGPU (`hmu_*`) for clips of `frames` frames (1: the image model, whose temporal
    /// operation is the identity but still has its tensors). Reference: `groups` 6.
    pub fn rgpu(vs: &nn::Path, channel: i64, groups: i64, frames: i64) -> Self {
        let fuse_vs = vs / "fuse";
        let temporal = DifferenceAware::new(&(&fuse_vs / 0), frames);
        Self::with_fuse(vs, channel, groups, &(&fuse_vs / 1), Some(temporal))
    }

    fn with_fuse(
        vs: &nn::Path,
        channel: i64,
        groups: i64,
        fuse_vs: &nn::Path,
        temporal: Option<DifferenceAware>,
    ) -> Self {
        let hidden = channel / 2;
        let expanded = hidden * groups;
        let conv3 = ConvSpec::square(3).padding(1);
        let interact_vs = vs / "interact";
        let interact = (0..groups)
            .map(|i| {
                let c_in = if i == 0 { hidden } else { 2 * hidden };
                let c_out = if i == groups - 1 {
                    2 * hidden
                } else {
                    3 * hidden
                };
                ConvBnRelu::new(&(&interact_vs / i), c_in, c_out, conv3, true)
            })
            .collect();
        let gate_vs = vs / "gate_genator";
        Self {
            expand_conv: ConvBnRelu::new(
                &(vs / "expand_conv"),
                channel,
                expanded,
                ConvSpec::square(1),
                true,
            ),
            gate_reduce: conv2d(
                &(&gate_vs / 1),
                expanded,
                hidden,
                ConvSpec::square(1),
                ConvInit::TorchDefault,
            ),
            gate_expand: conv2d(
                &(&gate_vs / 3),
                hidden,
                expanded,
                ConvSpec::square(1),
                ConvInit::TorchDefault,
            ),
            interact,
            fuse: ConvBnRelu::new(fuse_vs, expanded, channel, conv3, false),
            temporal,
            groups,
        }
    }

    /// [B, channel, H, W] → [B, channel, H, W]
    pub fn forward_t(&self, xs: &Tensor, bn_train: bool) -> Tensor {
        let chunks = self
            .expand_conv
            .forward_t(xs, bn_train)
            .chunk(self.groups, 1);
        let mut outs = Vec::with_capacity(chunks.len());
        let mut gates = Vec::with_capacity(chunks.len());
        let mut fork: Option<Tensor> = None;
        for (i, (chunk, block)) in chunks.iter().zip(&self.interact).enumerate() {
            let input = match &fork {
                Some(fork) => Tensor::cat(&[chunk, fork], 1),
                None => chunk.shallow_clone(),
            };
            let ys = block.forward_t(&input, bn_train);
            let (out, gate) = if i + 1 < chunks.len() {
                let [out, next_fork, gate]: [Tensor; 3] =
                    ys.chunk(3, 1).try_into().expect("3 chunks");
                fork = Some(next_fork);
                (out, gate)
            } else {
                let [out, gate]: [Tensor; 2] = ys.chunk(2, 1).try_into().expect("2 chunks");
                (out, gate)
            };
            outs.push(out);
            gates.push(gate);
        }
        let gate = self
            .gate_expand
            .forward(
                &self
                    .gate_reduce
                    .forward(&Tensor::cat(&gates, 1).adaptive_avg_pool2d([1, 1]))
                    .relu(),
            )
            .softmax(1, None);
        let mixed = Tensor::cat(&outs, 1) * gate;
        let mixed = match &self.temporal {
            Some(temporal) => temporal.forward(&mixed),
            None => mixed,
        };
        let out = self.fuse.forward_t(&mixed, bn_train);
        (out + xs).relu()
    }
}
