//! Reverse stage with group-reversal attention (GRA, from SINet-V2): refines a coarse map `y`
//! using a feature map `x`, attending to what the coarse map has *not* found yet (1 − σ(y)).

use tch::nn::{self, Module};
use tch::Tensor;

use crate::nn::layers::{conv2d, ConvInit, ConvSpec};

/// One group-reversal attention block: `x` is split into `groups` channel chunks, the map `y`
/// is placed after each chunk, a 3×3 conv + ReLU updates `x` residually and a 3×3 conv scores
/// a residual update of `y`.
#[derive(Debug)]
pub struct Gra {
    conv: nn::Conv2D,
    score: nn::Conv2D,
    groups: i64,
}

impl Gra {
    /// `channel / subchannel` groups, as the reference derives them.
    pub fn new(vs: &nn::Path, channel: i64, subchannel: i64) -> Self {
        let groups = channel / subchannel;
        let c3 = ConvSpec::square(3).padding(1);
        Self {
            conv: conv2d(
                &(vs / "conv" / 0),
                channel + groups,
                channel,
                c3,
                ConvInit::TorchDefault,
            ),
            score: conv2d(&(vs / "score"), channel, 1, c3, ConvInit::TorchDefault),
            groups,
        }
    }

    /// `x` [B, C, H, W], `y` [B, 1, H, W] → (x', y') of the same shapes.
    pub fn forward(&self, x: &Tensor, y: &Tensor) -> (Tensor, Tensor) {
        let (b, c, h, w) = x.size4().expect("4-D features");
        // [x_0, y, x_1, y, …]: interleave through a [B, groups, C/groups + 1, H, W] view.
        let chunks = x.reshape([b, self.groups, c / self.groups, h, w]);
        let maps = y.unsqueeze(1).expand([b, self.groups, 1, h, w], false);
        let interleaved = Tensor::cat(&[chunks, maps], 2).reshape([b, c + self.groups, h, w]);
        let x = x + self.conv.forward(&interleaved).relu();
        let y = y + self.score.forward(&x);
        (x, y)
    }
}

#[derive(Debug)]
pub struct ReverseStage {
    weak_gra: Gra,
    medium_gra: Gra,
    strong_gra: Gra,
}

impl ReverseStage {
    /// Groups: 1 (weak), channel/8 (medium), channel (strong) — 1, 4, 32 for channel 32.
    pub fn new(vs: &nn::Path, channel: i64) -> Self {
        Self {
            weak_gra: Gra::new(&(vs / "weak_gra"), channel, channel),
            medium_gra: Gra::new(&(vs / "medium_gra"), channel, 8),
            strong_gra: Gra::new(&(vs / "strong_gra"), channel, 1),
        }
    }

    /// `x` [B, C, H, W], coarse logits `y` [B, 1, H, W] → the refinement of `y`, [B, 1, H, W].
    pub fn forward(&self, x: &Tensor, y: &Tensor) -> Tensor {
        let reverse = -y.sigmoid() + 1.0;
        let (x, y) = self.weak_gra.forward(x, &reverse);
        let (x, y) = self.medium_gra.forward(&x, &y);
        self.strong_gra.forward(&x, &y).1
    }
}
