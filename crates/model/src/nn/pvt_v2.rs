//! PVTv2 (Pyramid Vision Transformer v2) encoder, variants b0–b5: four stages of an overlapping
//! patch embedding, transformer blocks with spatial-reduction attention and a depth-wise conv
//! in the MLP, and a LayerNorm. Returns the four stage maps at 1/4, 1/8, 1/16 and 1/32 of the
//! input.

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::Tensor;

use crate::nn::layers::{conv2d, layer_norm, pvt_linear, ConvInit, ConvSpec};

/// The epsilon of the per-block norms and the stage norms (`norm1..4`); the patch-embedding
/// norm and the attention's spatial-reduction norm keep PyTorch's default 1e-5.
const BLOCK_NORM_EPS: f64 = 1e-6;
const DEFAULT_NORM_EPS: f64 = 1e-5;

/// A PVTv2 size. The paper uses b5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PvtV2Variant {
    B0,
    B1,
    B2,
    B3,
    B4,
    B5,
}

impl PvtV2Variant {
    pub const ALL: [PvtV2Variant; 6] = [Self::B0, Self::B1, Self::B2, Self::B3, Self::B4, Self::B5];

    pub fn name(self) -> &'static str {
        match self {
            Self::B0 => "b0",
            Self::B1 => "b1",
            Self::B2 => "b2",
            Self::B3 => "b3",
            Self::B4 => "b4",
            Self::B5 => "b5",
        }
    }

    /// The hyper-parameters of the official PVTv2 model of this size.
    pub fn config(self) -> PvtV2Config {
        let wide = [64, 128, 320, 512];
        let (embed_dims, depths, mlp_ratios) = match self {
            Self::B0 => ([32, 64, 160, 256], [2, 2, 2, 2], [8, 8, 4, 4]),
            Self::B1 => (wide, [2, 2, 2, 2], [8, 8, 4, 4]),
            Self::B2 => (wide, [3, 4, 6, 3], [8, 8, 4, 4]),
            Self::B3 => (wide, [3, 4, 18, 3], [8, 8, 4, 4]),
            Self::B4 => (wide, [3, 8, 27, 3], [8, 8, 4, 4]),
            Self::B5 => (wide, [3, 6, 40, 3], [4, 4, 4, 4]),
        };
        PvtV2Config {
            embed_dims,
            num_heads: [1, 2, 5, 8],
            mlp_ratios,
            depths,
            sr_ratios: [8, 4, 2, 1],
        }
    }
}

impl std::fmt::Display for PvtV2Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Per-stage hyper-parameters (all variants use qkv bias, no dropout, no drop-path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PvtV2Config {
    pub embed_dims: [i64; 4],
    pub num_heads: [i64; 4],
    pub mlp_ratios: [i64; 4],
    pub depths: [usize; 4],
    pub sr_ratios: [i64; 4],
}

/// Side of a map after a convolution (PyTorch's floor rule).
fn conv_out(side: i64, kernel: i64, stride: i64, padding: i64) -> i64 {
    (side + 2 * padding - kernel) / stride + 1
}

impl PvtV2Config {
    /// The first stage (0-based) whose map along a `side`-pixel input axis is smaller than its
    /// attention's spatial-reduction kernel, with that map's side and the kernel; `None` if the
    /// input fits every stage.
    pub fn too_small_for(&self, side: i64) -> Option<(usize, i64, i64)> {
        let mut map = conv_out(side, 7, 4, 3);
        for (stage, &sr) in self.sr_ratios.iter().enumerate() {
            if map < sr.max(1) {
                return Some((stage, map, sr));
            }
            map = conv_out(map, 3, 2, 1);
        }
        None
    }

    /// The smallest input side every stage fits (29 px for the released PVTv2s).
    pub fn min_input_side(&self) -> i64 {
        (1..)
            .find(|&side| self.too_small_for(side).is_none())
            .expect("some side fits")
    }

    /// Multiply-accumulates of the encoder on a `(height, width)` input, counted as PyTorch's
    /// `torch.utils.flop_counter` counts them (convolutions, linear layers, the attention's
    /// matrix products), and the sizes of its four stage outputs (1/4 … 1/32).
    pub fn macs(&self, (height, width): (i64, i64)) -> (i64, [(i64, i64); 4]) {
        let mut macs = 0;
        let mut sizes = [(height, width); 4];
        let (mut size, mut c_in) = ((height, width), 3);
        let conv_size = |(h, w): (i64, i64), k, s, p| (conv_out(h, k, s, p), conv_out(w, k, s, p));
        for (stage, stage_size) in sizes.iter_mut().enumerate() {
            let c = self.embed_dims[stage];
            let (k, s) = if stage == 0 { (7, 4) } else { (3, 2) };
            size = conv_size(size, k, s, k / 2);
            let n = size.0 * size.1;
            macs += n * c * c_in * k * k;
            let sr = self.sr_ratios[stage];
            let kv_n = if sr > 1 {
                let (h, w) = conv_size(size, sr, sr, 0);
                h * w
            } else {
                n
            };
            let hidden = c * self.mlp_ratios[stage];
            let block = n * c * c                                  // q
                + if sr > 1 { kv_n * c * c * sr * sr } else { 0 }  // spatial reduction conv
                + kv_n * c * 2 * c                                 // kv
                + 2 * n * kv_n * c                                 // q·kᵀ and attn·v, all heads
                + n * c * c                                        // proj
                + 2 * n * c * hidden                               // fc1, fc2
                + n * hidden * 9; // depth-wise 3×3
            macs += block * self.depths[stage] as i64;
            *stage_size = size;
            c_in = c;
        }
        (macs, sizes)
    }
}

#[derive(Debug)]
struct OverlapPatchEmbed {
    proj: nn::Conv2D,
    norm: nn::LayerNorm,
}

impl OverlapPatchEmbed {
    fn new(vs: &nn::Path, patch: i64, stride: i64, c_in: i64, dim: i64) -> Self {
        let spec = ConvSpec::square(patch).stride(stride).padding(patch / 2);
        Self {
            proj: conv2d(&(vs / "proj"), c_in, dim, spec, ConvInit::FanOutNormal),
            norm: layer_norm(&(vs / "norm"), dim, DEFAULT_NORM_EPS),
        }
    }

    /// [B, C_in, H_in, W_in] → ([B, H·W, C], H, W)
    fn forward(&self, xs: &Tensor) -> (Tensor, i64, i64) {
        let xs = self.proj.forward(xs);
        let (_, _, h, w) = xs.size4().expect("conv output is 4-D");
        (self.norm.forward(&xs.flatten(2, -1).transpose(1, 2)), h, w)
    }
}

/// Multi-head attention whose keys/values come from a `sr_ratio`-times downsampled map.
#[derive(Debug)]
struct Attention {
    q: nn::Linear,
    kv: nn::Linear,
    proj: nn::Linear,
    /// Spatial reduction (strided conv + LayerNorm) when sr_ratio > 1.
    sr: Option<(nn::Conv2D, nn::LayerNorm)>,
    num_heads: i64,
    scale: f64,
}

impl Attention {
    fn new(vs: &nn::Path, dim: i64, num_heads: i64, sr_ratio: i64) -> Self {
        let sr = (sr_ratio > 1).then(|| {
            let spec = ConvSpec::square(sr_ratio).stride(sr_ratio);
            (
                conv2d(&(vs / "sr"), dim, dim, spec, ConvInit::FanOutNormal),
                layer_norm(&(vs / "norm"), dim, DEFAULT_NORM_EPS),
            )
        });
        Self {
            q: pvt_linear(&(vs / "q"), dim, dim),
            kv: pvt_linear(&(vs / "kv"), dim, 2 * dim),
            proj: pvt_linear(&(vs / "proj"), dim, dim),
            sr,
            num_heads,
            scale: ((dim / num_heads) as f64).powf(-0.5),
        }
    }

    /// [B, N=H·W, C] → [B, N, C]; `fused`: scaled_dot_product_attention instead of the
    /// reference's explicit product, softmax and product.
    fn forward(&self, xs: &Tensor, h: i64, w: i64, fused: bool) -> Tensor {
        let (b, n, c) = xs.size3().expect("tokens are 3-D");
        let head_dim = c / self.num_heads;
        // [B, heads, N, head_dim]
        let q = self
            .q
            .forward(xs)
            .reshape([b, n, self.num_heads, head_dim])
            .permute([0, 2, 1, 3]);
        let kv_source = match &self.sr {
            Some((sr, norm)) => {
                let map = xs.permute([0, 2, 1]).reshape([b, c, h, w]);
                norm.forward(&sr.forward(&map).reshape([b, c, -1]).permute([0, 2, 1]))
            }
            None => xs.shallow_clone(),
        };
        // [2, B, heads, N_kv, head_dim]
        let kv = self
            .kv
            .forward(&kv_source)
            .reshape([b, -1, 2, self.num_heads, head_dim])
            .permute([2, 0, 3, 1, 4]);
        let (k, v) = (kv.get(0), kv.get(1));
        let out = if fused {
            // One kernel for softmax(q·kᵀ·scale)·v: the same maths, rounded differently.
            Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                None::<Tensor>,
                0.0,
                false,
                self.scale,
                false,
            )
        } else {
            let attn = (q.matmul(&k.transpose(-2, -1)) * self.scale).softmax(-1, None);
            attn.matmul(&v)
        };
        self.proj.forward(&out.transpose(1, 2).reshape([b, n, c]))
    }
}

/// fc1 → 3×3 depth-wise conv on the token map → exact GELU → fc2.
#[derive(Debug)]
struct Mlp {
    fc1: nn::Linear,
    dwconv: nn::Conv2D,
    fc2: nn::Linear,
}

impl Mlp {
    fn new(vs: &nn::Path, dim: i64, hidden: i64) -> Self {
        let spec = ConvSpec::square(3).padding(1).groups(hidden);
        Self {
            fc1: pvt_linear(&(vs / "fc1"), dim, hidden),
            dwconv: conv2d(
                &(vs / "dwconv" / "dwconv"),
                hidden,
                hidden,
                spec,
                ConvInit::FanOutNormal,
            ),
            fc2: pvt_linear(&(vs / "fc2"), hidden, dim),
        }
    }

    fn forward(&self, xs: &Tensor, h: i64, w: i64) -> Tensor {
        let xs = self.fc1.forward(xs);
        let (b, _, c) = xs.size3().expect("tokens are 3-D");
        let map = self.dwconv.forward(&xs.transpose(1, 2).view([b, c, h, w]));
        self.fc2
            .forward(&map.flatten(2, -1).transpose(1, 2).gelu("none"))
    }
}

#[derive(Debug)]
struct Block {
    norm1: nn::LayerNorm,
    attn: Attention,
    norm2: nn::LayerNorm,
    mlp: Mlp,
}

impl Block {
    fn new(vs: &nn::Path, dim: i64, num_heads: i64, mlp_ratio: i64, sr_ratio: i64) -> Self {
        Self {
            norm1: layer_norm(&(vs / "norm1"), dim, BLOCK_NORM_EPS),
            attn: Attention::new(&(vs / "attn"), dim, num_heads, sr_ratio),
            norm2: layer_norm(&(vs / "norm2"), dim, BLOCK_NORM_EPS),
            mlp: Mlp::new(&(vs / "mlp"), dim, dim * mlp_ratio),
        }
    }

    fn forward(&self, xs: &Tensor, h: i64, w: i64, fused: bool) -> Tensor {
        let xs = xs + self.attn.forward(&self.norm1.forward(xs), h, w, fused);
        &xs + self.mlp.forward(&self.norm2.forward(&xs), h, w)
    }
}

#[derive(Debug)]
struct Stage {
    patch_embed: OverlapPatchEmbed,
    blocks: Vec<Block>,
    norm: nn::LayerNorm,
}

/// The PVTv2 encoder (no classification head). VarStore layout as the reference's
/// `pvtv2_en`: `patch_embed{i}`, `block{i}.{j}`, `norm{i}` for stages i = 1..4.
#[derive(Debug)]
pub struct PvtV2 {
    stages: Vec<Stage>,
    /// Attention through `scaled_dot_product_attention` (see [`PvtV2::set_fused_attention`]).
    fused_attention: bool,
}

impl PvtV2 {
    pub fn new(vs: &nn::Path, cfg: &PvtV2Config) -> Self {
        let stages = (0..4)
            .map(|i| {
                let dim = cfg.embed_dims[i];
                let (patch, stride, c_in) = if i == 0 {
                    (7, 4, 3)
                } else {
                    (3, 2, cfg.embed_dims[i - 1])
                };
                let patch_embed = OverlapPatchEmbed::new(
                    &(vs / format!("patch_embed{}", i + 1)),
                    patch,
                    stride,
                    c_in,
                    dim,
                );
                let blocks_vs = vs / format!("block{}", i + 1);
                let blocks = (0..cfg.depths[i])
                    .map(|j| {
                        let (heads, ratio, sr) =
                            (cfg.num_heads[i], cfg.mlp_ratios[i], cfg.sr_ratios[i]);
                        Block::new(&(&blocks_vs / j), dim, heads, ratio, sr)
                    })
                    .collect();
                let norm = layer_norm(&(vs / format!("norm{}", i + 1)), dim, BLOCK_NORM_EPS);
                Stage {
                    patch_embed,
                    blocks,
                    norm,
                }
            })
            .collect();
        Self {
            stages,
            fused_attention: false,
        }
    }

    /// Computes attention with libtorch's fused `scaled_dot_product_attention` (one kernel;
    /// equal to the reference's three ops to float rounding, not bit for bit).
    pub fn set_fused_attention(&mut self, fused: bool) {
        self.fused_attention = fused;
    }

    /// Stage `stage` (0-based)'s overlapping patch embedding: a map [B, C_in, H_in, W_in] →
    /// (tokens [B, H·W, C], H, W).
    pub fn embed_patches(&self, stage: usize, xs: &Tensor) -> (Tensor, i64, i64) {
        self.stages[stage].patch_embed.forward(xs)
    }

    /// Block `index` of stage `stage` (both 0-based) on the tokens [B, H·W, C] of an H×W map.
    pub fn block(&self, stage: usize, index: usize, tokens: &Tensor, h: i64, w: i64) -> Tensor {
        self.stages[stage].blocks[index].forward(tokens, h, w, self.fused_attention)
    }

    /// [B, 3, H, W] → four maps [B, C_i, H/s_i, W/s_i] for s = 4, 8, 16, 32 (C_i = embed_dims).
    pub fn forward(&self, xs: &Tensor) -> [Tensor; 4] {
        let b = xs.size()[0];
        let mut x = xs.shallow_clone();
        let mut outs = Vec::with_capacity(4);
        for stage in &self.stages {
            let (mut tokens, h, w) = stage.patch_embed.forward(&x);
            for block in &stage.blocks {
                tokens = block.forward(&tokens, h, w, self.fused_attention);
            }
            x = stage
                .norm
                .forward(&tokens)
                .reshape([b, h, w, -1])
                .permute([0, 3, 1, 2])
                .contiguous();
            outs.push(x.shallow_clone());
        }
        outs.try_into().expect("four stages")
    }
}
