//! SLT-Net's NS block (neighbourhood search, from PNS-Net): attention of every position of every
//! frame of a clip over a dilated 7×7 window in every frame of the clip, on the 1/16 features.
//!
//! The reference computes the two core steps with a CUDA extension (`PNS`: `sa.cu`, with a serial
//! CPU twin `reference.cpp`). Here they are plain libtorch ops ([`relevance`] and
//! [`aggregation`]: im2col + einsum) with the kernels' exact semantics:
//! * the neighbours of (frame t, h, w) are (frame s, h + i·dil, w + j·dil) for every frame s of
//!   the clip and i, j ∈ −3..=3, stored at index s·49 + (i+3)·7 + (j+3);
//! * a neighbour off the map has relevance **0** (the kernels write 0 there, over the −∞ the
//!   Python wrapper fills the buffer with), so it still takes part in the softmax;
//! * the aggregation weighs the neighbours' values with the **raw** relevance / √8, not its
//!   softmax (off-map neighbours add nothing);
//! * the softmax only feeds the gate: the maximum over all four heads and all T·49 entries.
//!
//! The four heads (8 channels each) use dilations 1, 3, 5, 7. Every head's query goes through
//! the same `LayerNorm([8, 16, 28])`, which fixes the feature map at 16×28 — a 256×448 input.

use anyhow::{ensure, Result};
use tch::nn;
use tch::Tensor;

/// Window radius of every head (7×7 neighbourhood).
pub const RADIUS: i64 = 3;
/// Dilation of head i.
pub const DILATIONS: [i64; 4] = [1, 3, 5, 7];
/// Channels per head (the reference's `d_k` = `d_v`).
pub const HEAD_CHANNELS: i64 = 8;
pub const HEADS: i64 = 4;
/// The query LayerNorm's shape: (channels per head, height, width) of the 1/16 feature map.
pub const NORM_SHAPE: [i64; 3] = [8, 16, 28];
/// PyTorch's default LayerNorm epsilon (the reference builds it without one).
const NORM_EPS: f64 = 1e-5;

/// Relevance of every position to its neighbours: `query`, `key` [B, T, C, H, W] →
/// [B, T, T·D², H, W] with D = 2·radius + 1; entry s·D² + i·D + j at (t, h, w) is
/// ⟨query[t, :, h, w], key[s, :, h + (i − radius)·dil, w + (j − radius)·dil]⟩, 0 off the map.
pub fn relevance(query: &Tensor, key: &Tensor, radius: i64, dilation: i64) -> Tensor {
    let (b, t, _, h, w) = query.size5().expect("query is [B, T, C, H, W]");
    let d = 2 * radius + 1;
    // Zero padding gives the off-map neighbours a zero key, hence relevance 0.
    let keys = neighbourhoods(key, radius, dilation); // [B, T, C, D², H, W]
    Tensor::einsum("btchw,bscnhw->btsnhw", &[query, &keys], None::<&[i64]>).reshape([
        b,
        t,
        t * d * d,
        h,
        w,
    ])
}

/// Weighted sum of the neighbours' values: `weight` [B, T, T·D², H, W] (as [`relevance`] lays it
/// out), `value` [B, T, C, H, W] → [B, T, C, H, W]. Off-map neighbours contribute nothing.
pub fn aggregation(weight: &Tensor, value: &Tensor, radius: i64, dilation: i64) -> Tensor {
    let (b, t, _, h, w) = value.size5().expect("value is [B, T, C, H, W]");
    let d = 2 * radius + 1;
    let values = neighbourhoods(value, radius, dilation); // [B, T, C, D², H, W]
    let weight = weight.reshape([b, t, t, d * d, h, w]);
    Tensor::einsum("btsnhw,bscnhw->btchw", &[&weight, &values], None::<&[i64]>)
}

/// [B, T, C, H, W] → [B, T, C, D², H, W]: for each position, its D×D dilated window (zeros off
/// the map), window index i·D + j for row offset i and column offset j.
fn neighbourhoods(xs: &Tensor, radius: i64, dilation: i64) -> Tensor {
    let (b, t, c, h, w) = xs.size5().expect("[B, T, C, H, W]");
    let d = 2 * radius + 1;
    let pad = radius * dilation;
    xs.reshape([b * t, c, h, w])
        .im2col([d, d], [dilation, dilation], [pad, pad], [1, 1])
        .reshape([b, t, c, d * d, h, w])
}

/// A 1×1×1 `nn.Conv3d` without bias, kept in its state-dict shape [out, in, 1, 1, 1] and applied
/// frame by frame.
#[derive(Debug)]
struct PointwiseConv3d {
    ws: Tensor,
}

impl PointwiseConv3d {
    fn new(vs: &nn::Path, c_in: i64, c_out: i64) -> Self {
        // nn.Conv3d's default init: kaiming-uniform (a = √5), bound 1/√fan_in.
        let bound = 1.0 / (c_in as f64).sqrt();
        let ws = vs.var(
            "weight",
            &[c_out, c_in, 1, 1, 1],
            nn::Init::Uniform {
                lo: -bound,
                up: bound,
            },
        );
        Self { ws }
    }

    /// [B, T, C_in, H, W] → [B, T, C_out, H, W]
    fn forward(&self, xs: &Tensor) -> Tensor {
        let (b, t, c, h, w) = xs.size5().expect("[B, T, C, H, W]");
        let weight = self.ws.flatten(2, -1).unsqueeze(-1); // [out, in, 1, 1]
        xs.reshape([b * t, c, h, w])
            .conv2d(&weight, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1)
            .reshape([b, t, -1, h, w])
    }
}

/// The reference's `NS_Block(channels_in)`: 4 heads of 8 channels.
#[derive(Debug)]
pub struct NsBlock {
    query_conv: PointwiseConv3d,
    key_conv: PointwiseConv3d,
    value_conv: PointwiseConv3d,
    output_linear: PointwiseConv3d,
    /// `bn`: despite its name a LayerNorm over [8, 16, 28], shared by the four heads.
    norm_weight: Tensor,
    norm_bias: Tensor,
}

impl NsBlock {
    pub fn new(vs: &nn::Path, channels_in: i64) -> Self {
        let inner = HEADS * HEAD_CHANNELS;
        let norm = vs / "bn";
        Self {
            query_conv: PointwiseConv3d::new(&(vs / "query_conv"), channels_in, inner),
            key_conv: PointwiseConv3d::new(&(vs / "key_conv"), channels_in, inner),
            value_conv: PointwiseConv3d::new(&(vs / "value_conv"), channels_in, inner),
            output_linear: PointwiseConv3d::new(&(vs / "output_Linear"), inner, channels_in),
            norm_weight: norm.var("weight", &NORM_SHAPE, nn::Init::Const(1.0)),
            norm_bias: norm.var("bias", &NORM_SHAPE, nn::Init::Const(0.0)),
        }
    }

    /// Features of a clip, [B, T, C, 16, 28] → [B, T, C, 16, 28] (the block's output only; the
    /// reference adds the residual outside).
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let size = xs.size();
        ensure!(
            size.len() == 5 && size[3..] == NORM_SHAPE[1..],
            "NS block input has shape {size:?}; it needs [B, T, C, {}, {}] (its LayerNorm has the \
             fixed shape {NORM_SHAPE:?}, the 1/16 map of a 256×448 frame)",
            NORM_SHAPE[1],
            NORM_SHAPE[2]
        );
        let query = self.query_conv.forward(xs);
        let key = self.key_conv.forward(xs);
        let value = self.value_conv.forward(xs);
        let scale = (HEAD_CHANNELS as f64).sqrt();
        let mut gate: Option<Tensor> = None;
        let mut aggregated = Vec::with_capacity(HEADS as usize);
        for (head, &dilation) in DILATIONS.iter().enumerate() {
            let channels = |t: &Tensor| t.narrow(2, head as i64 * HEAD_CHANNELS, HEAD_CHANNELS);
            let q = channels(&query).layer_norm(
                NORM_SHAPE,
                Some(&self.norm_weight),
                Some(&self.norm_bias),
                NORM_EPS,
                false,
            );
            let rel = relevance(&q, &channels(&key), RADIUS, dilation) / scale;
            // The gate: max over heads of the max over this head's T·49 softmax entries.
            let head_max = rel.softmax(2, None).amax(2, false); // [B, T, H, W]
            gate = Some(match gate {
                Some(g) => g.maximum(&head_max),
                None => head_max,
            });
            aggregated.push(aggregation(&rel, &channels(&value), RADIUS, dilation));
        }
        let gate = gate.expect("four heads");
        let out = self.output_linear.forward(&Tensor::cat(&aggregated, 2));
        Ok(out * gate.unsqueeze(2))
    }
}
