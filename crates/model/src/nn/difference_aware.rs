//! ZoomNeXt's difference-aware temporal operation (the reference's `DifferenceAwareOps`, the first
//! module of each RGPU's `fuse`): for T frames of a clip flattened into the batch, the
//! frame-to-previous-frame differences of the features attend over channels, per time step, and a
//! small conv stack over the T axis turns the result into a residual for every frame.
//!
//! With T = 1 (the image model) it is the identity, but its tensors still exist (with T = 1
//! shapes): the authors' image checkpoints carry them.

use tch::nn::{self, Init, Module};
use tch::Tensor;

use crate::nn::layers::{conv2d, ConvInit, ConvSpec};

/// PyTorch's `nn.LayerNorm` default epsilon (the reference normalises the differences over time with
/// an affine-free `LayerNorm(num_frames)`).
const TIME_NORM_EPS: f64 = 1e-5;

#[derive(Debug)]
pub struct DifferenceAware {
    frames: i64,
    /// `temperal_proj_kv` (sic): T → 2T, no bias — keys and values from the normalised differences.
    kv: nn::Linear,
    /// `temperal_proj.0` / `.2` (sic): 3×3 convs over the T axis (frames as channels), ReLU between.
    proj_in: nn::Conv2D,
    proj_out: nn::Conv2D,
}

impl DifferenceAware {
    /// Under `vs` (an RGPU's `fuse.0`), for clips of `frames` frames (1 for the image model).
    /// Initialised as the reference: PyTorch's defaults, except the last conv, which starts at zero so
    /// that a video model fine-tuned from an image checkpoint starts as that image model.
    pub fn new(vs: &nn::Path, frames: i64) -> Self {
        let bound = 1.0 / (frames as f64).sqrt();
        let kv = nn::linear(
            vs / "temperal_proj_kv",
            frames,
            2 * frames,
            nn::LinearConfig {
                ws_init: Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
                bs_init: None,
                bias: false,
            },
        );
        let proj_vs = vs / "temperal_proj";
        let conv3 = ConvSpec::square(3).padding(1).no_bias();
        Self {
            frames,
            kv,
            proj_in: conv2d(
                &(&proj_vs / 0),
                frames,
                frames,
                conv3,
                ConvInit::TorchDefault,
            ),
            proj_out: conv2d(&(&proj_vs / 2), frames, frames, conv3, ConvInit::Zeros),
        }
    }

    /// [B·T, C, H, W] (frames of a clip adjacent, clip-major) → the same shape. The caller checks
    /// that the batch is a multiple of T.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let t = self.frames;
        if t == 1 {
            return xs.shallow_clone();
        }
        let (bt, c, h, w) = xs.size4().expect("RGPU features are 4-D");
        let b = bt / t;
        // [B, C, H, W, T]
        let frames = xs.view([b, t, c, h, w]).permute([0, 2, 3, 4, 1]);
        // Frame t-1 minus frame t (cyclically: the last frame minus frame 0 at t = 0), normalised
        // over time.
        let diff = (frames.roll([1], [-1]) - &frames).layer_norm(
            [t],
            None::<Tensor>,
            None::<Tensor>,
            TIME_NORM_EPS,
            false,
        );
        let kv = self.kv.forward(&diff).chunk(2, -1);
        let (keys, values) = (&kv[0], &kv[1]);
        // Channel-to-channel attention per time step, all positions merged: [B, C, C, T].
        let scores = Tensor::einsum("bxhwt,byhwt->bxyt", &[&diff, keys], None::<i64>)
            * ((h * w) as f64).powf(-0.5);
        let mixed = Tensor::einsum(
            "bxyt,byhwt->bxhwt",
            &[&scores.softmax(2, None), values],
            None::<i64>,
        );
        // Time as channels, one "image" per (clip, channel): [B·C, T, H, W].
        let over_time = mixed.permute([0, 1, 4, 2, 3]).reshape([b * c, t, h, w]);
        let residual = self
            .proj_out
            .forward(&self.proj_in.forward(&over_time).relu())
            .view([b, c, t, h, w])
            .permute([0, 2, 1, 3, 4])
            .reshape([bt, c, h, w]);
        xs + residual
    }
}
