//! Small building blocks shared by the FGSTP components, each initialised like its PyTorch
//! counterpart in the reference and named so that VarStore paths equal its state-dict keys.

use tch::nn::{self, Init, Module, ModuleT};
use tch::Tensor;

/// Geometry of a 2-D convolution; `k`, `stride`, `padding`, `dilation` are (height, width).
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    pub k: [i64; 2],
    pub stride: [i64; 2],
    pub padding: [i64; 2],
    pub dilation: [i64; 2],
    pub groups: i64,
    pub bias: bool,
}

impl ConvSpec {
    /// A square `k`×`k` convolution with stride 1, no padding, and a bias (nn.Conv2d defaults).
    pub fn square(k: i64) -> Self {
        Self {
            k: [k, k],
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
            bias: true,
        }
    }
    pub fn stride(self, s: i64) -> Self {
        Self {
            stride: [s, s],
            ..self
        }
    }
    pub fn padding(self, p: i64) -> Self {
        Self {
            padding: [p, p],
            ..self
        }
    }
    pub fn dilation(self, d: i64) -> Self {
        Self {
            dilation: [d, d],
            ..self
        }
    }
    pub fn groups(self, g: i64) -> Self {
        Self { groups: g, ..self }
    }
    pub fn no_bias(self) -> Self {
        Self {
            bias: false,
            ..self
        }
    }
}

/// How a convolution's parameters start out.
#[derive(Debug, Clone, Copy)]
pub enum ConvInit {
    /// `nn.Conv2d`'s own: kaiming-uniform with a = √5 (bound 1/√fan_in) for the weight and
    /// uniform(±1/√fan_in) for the bias.
    TorchDefault,
    /// PVTv2's `_init_weights`: normal(0, √(2/fan_out)) with fan_out = k·k·out/groups, zero bias.
    FanOutNormal,
    /// All zeros (the non-local blocks' `W`, so that at start the block is the identity).
    Zeros,
}

pub fn conv2d(vs: &nn::Path, c_in: i64, c_out: i64, spec: ConvSpec, init: ConvInit) -> nn::Conv2D {
    let receptive = spec.k[0] * spec.k[1];
    let (ws_init, bs_init) = match init {
        ConvInit::TorchDefault => {
            let bound = 1.0 / ((c_in / spec.groups * receptive) as f64).sqrt();
            let uniform = Init::Uniform {
                lo: -bound,
                up: bound,
            };
            (uniform, uniform)
        }
        ConvInit::FanOutNormal => {
            let fan_out = receptive * c_out / spec.groups;
            (
                Init::Randn {
                    mean: 0.0,
                    stdev: (2.0 / fan_out as f64).sqrt(),
                },
                Init::Const(0.0),
            )
        }
        ConvInit::Zeros => (Init::Const(0.0), Init::Const(0.0)),
    };
    let config = nn::ConvConfigND::<[i64; 2]> {
        stride: spec.stride,
        padding: spec.padding,
        dilation: spec.dilation,
        groups: spec.groups,
        bias: spec.bias,
        ws_init,
        bs_init,
        padding_mode: nn::PaddingMode::Zeros,
    };
    nn::conv(vs, c_in, c_out, spec.k, config)
}

/// `nn.Linear` as PVTv2 initialises it: trunc_normal(std 0.02) weight, zero bias. timm truncates
/// at ±2 in absolute value, i.e. ±100 σ, so a plain normal has the same distribution.
pub fn pvt_linear(vs: &nn::Path, c_in: i64, c_out: i64) -> nn::Linear {
    let config = nn::LinearConfig {
        ws_init: Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        },
        bs_init: Some(Init::Const(0.0)),
        bias: true,
    };
    nn::linear(vs, c_in, c_out, config)
}

/// `nn.LayerNorm(dim, eps)` over the last dimension, weight 1 and bias 0.
pub fn layer_norm(vs: &nn::Path, dim: i64, eps: f64) -> nn::LayerNorm {
    nn::layer_norm(
        vs,
        vec![dim],
        nn::LayerNormConfig {
            eps,
            ..Default::default()
        },
    )
}

/// `nn.BatchNorm2d`'s defaults, which every BatchNorm of the models keeps.
const BATCH_NORM_MOMENTUM: f64 = 0.1;
const BATCH_NORM_EPS: f64 = 1e-5;

/// `nn.BatchNorm2d(c)`: weight 1, bias 0, running mean 0 / var 1, eps 1e-5, momentum 0.1.
pub fn batch_norm2d(vs: &nn::Path, c: i64) -> nn::BatchNorm {
    let config = nn::BatchNormConfig {
        ws_init: Init::Const(1.0),
        bs_init: Init::Const(0.0),
        momentum: BATCH_NORM_MOMENTUM,
        eps: BATCH_NORM_EPS,
        ..Default::default()
    };
    nn::batch_norm2d(vs, c, config)
}

/// `bn` over `xs`; with batch statistics in distributed training with SyncBatchNorm on
/// ([`crate::runtime::distributed::set_sync_batch_norm`]), those of every rank's batch.
pub fn batch_norm_t(bn: &nn::BatchNorm, xs: &Tensor, train: bool) -> Tensor {
    use crate::runtime::distributed::{
        record_sync_failure, sync_batch_norm, sync_batch_norm_group,
    };
    match sync_batch_norm_group() {
        Some(group) if train => sync_batch_norm(
            &group,
            xs,
            bn.ws.as_ref(),
            bn.bs.as_ref(),
            &bn.running_mean,
            &bn.running_var,
            BATCH_NORM_MOMENTUM,
            BATCH_NORM_EPS,
        )
        // The forward cannot fail here: the failure (a lost peer) is kept for training to
        // report after the forward, which goes on with this rank's own statistics.
        .unwrap_or_else(|e| {
            record_sync_failure(e);
            bn.forward_t(xs, train)
        }),
        _ => bn.forward_t(xs, train),
    }
}

/// Convolution without bias, BatchNorm and an optional ReLU (the reference's `ConvBNReLU`).
#[derive(Debug)]
pub struct ConvBnRelu {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
    relu: bool,
}

impl ConvBnRelu {
    pub fn new(vs: &nn::Path, c_in: i64, c_out: i64, spec: ConvSpec, relu: bool) -> Self {
        let conv = conv2d(
            &(vs / "conv"),
            c_in,
            c_out,
            spec.no_bias(),
            ConvInit::TorchDefault,
        );
        Self {
            conv,
            bn: batch_norm2d(&(vs / "bn"), c_out),
            relu,
        }
    }

    /// `bn_train`: BatchNorm uses (and updates) batch statistics instead of running ones.
    pub fn forward_t(&self, xs: &Tensor, bn_train: bool) -> Tensor {
        let ys = batch_norm_t(&self.bn, &self.conv.forward(xs), bn_train);
        if self.relu {
            ys.relu()
        } else {
            ys
        }
    }
}

/// Convolution without bias followed by BatchNorm (the reference's `BasicConv2d`). It defines
/// a ReLU it never applies, so there is none here.
#[derive(Debug)]
pub struct BasicConv2d(ConvBnRelu);

impl BasicConv2d {
    pub fn new(vs: &nn::Path, c_in: i64, c_out: i64, spec: ConvSpec) -> Self {
        Self(ConvBnRelu::new(vs, c_in, c_out, spec, false))
    }

    pub fn forward_t(&self, xs: &Tensor, bn_train: bool) -> Tensor {
        self.0.forward_t(xs, bn_train)
    }
}

/// Bilinear resampling by a scale factor, as `F.interpolate(x, scale_factor=s, mode="bilinear")`
/// does it: output size floor(in·s), and the factor itself (not in/out) maps output to input
/// coordinates when `align_corners` is false.
pub fn interpolate_bilinear(xs: &Tensor, scale: f64, align_corners: bool) -> Tensor {
    xs.upsample_bilinear2d_vec(None::<&[i64]>, align_corners, [scale, scale])
}
