//! CTC: the correlation volume between the current frame and a neighbour, at three scales.
//!
//! At each scale the two frames' RFB maps are concatenated and passed through a non-local block
//! (the reference's `_NonLocalBlockND` built with `bn_layer=False` inside `Correalation`) whose
//! keys and values are max-pooled by that scale's pool size, then concatenated with its input,
//! reduced by a 1×1 `out_conv`, and brought back to `channel` channels by a 3×3 conv + BN.

use tch::nn::{self, Module};
use tch::Tensor;

use crate::nn::layers::{conv2d, BasicConv2d, ConvInit, ConvSpec};

/// Non-local attention where every position attends to the max-pooled map: theta is the input
/// itself, phi its max-pool, g a 1×1 conv followed by the same max-pool. No 1/√d scaling before
/// the softmax. `W` starts at zero, so at initialisation the block is the identity.
#[derive(Debug)]
pub struct NonLocalBlock {
    g: nn::Conv2D,
    w: nn::Conv2D,
    channels: i64,
    inter_channels: i64,
    pool: i64,
}

impl NonLocalBlock {
    pub fn new(vs: &nn::Path, channels: i64, pool: i64) -> Self {
        let inter_channels = (channels / 2).max(1);
        Self {
            g: conv2d(
                &(vs / "g" / 0),
                channels,
                inter_channels,
                ConvSpec::square(1),
                ConvInit::TorchDefault,
            ),
            w: conv2d(
                &(vs / "W"),
                inter_channels,
                channels,
                ConvSpec::square(1),
                ConvInit::Zeros,
            ),
            channels,
            inter_channels,
            pool,
        }
    }

    fn max_pool(&self, xs: &Tensor) -> Tensor {
        let k = [self.pool, self.pool];
        xs.max_pool2d(k, k, [0, 0], [1, 1], false)
    }

    /// [B, C, H, W] → [B, C, H, W]
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let (b, _, h, w) = xs.size4().expect("4-D input");
        // [B, P, C/2] with P = (H/pool)·(W/pool)
        let g_x = self
            .max_pool(&self.g.forward(xs))
            .reshape([b, self.inter_channels, -1])
            .permute([0, 2, 1]);
        // [B, H·W, C]
        let theta = xs.reshape([b, self.channels, -1]).permute([0, 2, 1]);
        // [B, C, P]
        let phi = self.max_pool(xs).reshape([b, self.channels, -1]);
        let affinity = theta.matmul(&phi).softmax(-1, None); // [B, H·W, P]
        let y = affinity
            .matmul(&g_x)
            .permute([0, 2, 1])
            .reshape([b, self.inter_channels, h, w]);
        self.w.forward(&y) + xs
    }
}

/// The reference's `Correalation`: a non-local block, concatenated with its input, 1×1 conv.
#[derive(Debug)]
pub struct Correlation {
    nonlocal: NonLocalBlock,
    out_conv: nn::Conv2D,
}

impl Correlation {
    pub fn new(vs: &nn::Path, channels: i64, pool: i64) -> Self {
        Self {
            nonlocal: NonLocalBlock::new(&(vs / "nonlocals" / 0), channels, pool),
            out_conv: conv2d(
                &(vs / "out_conv"),
                2 * channels,
                channels,
                ConvSpec::square(1),
                ConvInit::TorchDefault,
            ),
        }
    }

    /// [B, C, H, W] → [B, C, H, W]
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        self.out_conv.forward(&Tensor::cat(
            &[xs.shallow_clone(), self.nonlocal.forward(xs)],
            1,
        ))
    }
}

/// Cross-frame temporal correlation at the three RFB scales (1/8, 1/16, 1/32 of the input).
#[derive(Debug)]
pub struct Ctc {
    correlations: [Correlation; 3],
    convs: [BasicConv2d; 3],
}

impl Ctc {
    /// `pools`: max-pool sizes of the non-local keys/values per scale (reference: 2, 4, 8).
    pub fn new(vs: &nn::Path, channel: i64, pools: [i64; 3]) -> Self {
        let correlation = |i: usize| {
            Correlation::new(&(vs / format!("nl_layer{}", i + 1)), 2 * channel, pools[i])
        };
        let conv = |i: usize| {
            BasicConv2d::new(
                &(vs / format!("conv{}", i + 1)),
                2 * channel,
                channel,
                ConvSpec::square(3).padding(1),
            )
        };
        Self {
            correlations: [correlation(0), correlation(1), correlation(2)],
            convs: [conv(0), conv(1), conv(2)],
        }
    }

    /// Current-frame and neighbour features (three maps [B, channel, H/s, W/s], s = 8, 16, 32)
    /// → the correlation features, same shapes.
    pub fn forward_t(
        &self,
        current: &[Tensor; 3],
        neighbour: &[Tensor; 3],
        bn_train: bool,
    ) -> [Tensor; 3] {
        std::array::from_fn(|i| {
            let pair = Tensor::cat(&[&current[i], &neighbour[i]], 1);
            self.convs[i].forward_t(&self.correlations[i].forward(&pair), bn_train)
        })
    }
}
