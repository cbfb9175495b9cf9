//! Multiply-accumulates of one ZoomNeXt forward, counted from the architecture as PyTorch's
//! `torch.utils.flop_counter` counts them (it reports FLOPs = 2 × MACs): convolutions (bias not
//! counted), linear layers and the matrix products of the attention and of the temporal
//! operation's einsums. Normalisations, activations, pooling, resampling and elementwise products
//! are not counted.
//!
//! The PVTv2 part is the count FGSTP's uses ([`PvtV2Config::macs`](crate::nn::pvt_v2::PvtV2Config::macs)).

use super::{ZoomNextConfig, MID_DIM};

/// A map size (height, width).
type Hw = (i64, i64);

fn area((h, w): Hw) -> i64 {
    h * w
}

/// MACs of a convolution `c_in → c_out`, `k × k` kernel, producing an `out`-sized map.
fn conv(out: Hw, c_in: i64, c_out: i64, k: i64) -> i64 {
    area(out) * c_out * c_in * k * k
}

/// SimpleASPP from `c_in` channels on an `hw` map.
fn simple_aspp(hw: Hw, c_in: i64) -> i64 {
    let c = MID_DIM;
    conv(hw, c_in, 2 * c, 1)
        + 3 * conv(hw, c, c, 3)
        + conv((1, 1), c, c, 1)
        + conv(hw, 5 * c, c, 1)
        + conv(hw, c, c, 3)
}

/// MHSIU at the medium scale's `hw`, the large and small scales' maps at `large` and `small`.
fn mhsiu(hw: Hw, large: Hw, small: Hw, heads: i64) -> i64 {
    let (c, d) = (MID_DIM, MID_DIM / heads);
    conv(large, c, c, 3) + conv(small, c, c, 3)  // conv_l_pre, conv_s_pre
        + 3 * conv(hw, c, c, 3)                  // conv_l, conv_m, conv_s
        + 2 * conv(hw, 3 * c, 3 * c, 1)          // conv_lms, initial_merge
        + heads * (conv(hw, 3 * d, d, 1) + conv(hw, d, d, 3) + conv(hw, d, 3, 1))
    // trans
}

/// RGPU (FSP + the temporal operation) on an `hw` map of one frame, for clips of `frames` frames
/// (the temporal part per frame: its clip's share divided by T).
fn rgpu(hw: Hw, groups: i64, frames: i64) -> i64 {
    let (c, h) = (MID_DIM, MID_DIM / 2);
    let fsp = conv(hw, c, groups * h, 1)
        + conv(hw, h, 3 * h, 3)
        + (groups - 2) * conv(hw, 2 * h, 3 * h, 3)
        + conv(hw, 2 * h, 2 * h, 3)
        + 2 * groups * h * h                     // gate (on 1×1)
        + conv(hw, groups * h, c, 3);
    let e = groups * h; // channels the temporal operation works on
    let temporal = if frames > 1 {
        // Per clip: kv (T → 2T per channel and position), the two einsums (C·C·H·W per time step
        // each), the two 3×3 convs over the time axis (C images of T channels).
        let t = frames;
        let per_clip =
            e * area(hw) * t * 2 * t + 2 * t * e * e * area(hw) + 2 * e * conv(hw, t, t, 3);
        per_clip / t
    } else {
        0
    };
    fsp + temporal
}

/// MACs of one forward of one frame whose zoom scales (small, medium, large) are `scales`
/// (height, width); for the video model the frame's share of its clip.
pub fn frame_macs(cfg: &ZoomNextConfig, scales: [(i64, i64); 3]) -> i64 {
    let dims = cfg.encoder.embed_dims;
    let encoded = scales.map(|hw| cfg.encoder.macs(hw));
    let encoder: i64 = encoded.iter().map(|(macs, _)| macs).sum();
    let [small, medium, large] = encoded.map(|(_, sizes)| sizes);
    // Transitions: SimpleASPP at 1/32, 3×3 conv blocks at 1/16, 1/8, 1/4, for each scale.
    let transitions: i64 = [small, medium, large]
        .iter()
        .map(|s| {
            simple_aspp(s[3], dims[3])
                + conv(s[2], dims[2], MID_DIM, 3)
                + conv(s[1], dims[1], MID_DIM, 3)
                + conv(s[0], dims[0], MID_DIM, 3)
        })
        .sum();
    let levels: i64 = (0..4)
        .map(|stage| {
            mhsiu(medium[stage], large[stage], small[stage], cfg.siu_groups)
                + rgpu(medium[stage], cfg.hmu_groups, cfg.frames)
        })
        .sum();
    let (h, w) = medium[0];
    let head = conv((2 * h, 2 * w), MID_DIM, MID_DIM, 3)   // tra_1
        + conv((4 * h, 4 * w), MID_DIM, 32, 3)                // predictor.1
        + conv((4 * h, 4 * w), 32, 1, 1); // predictor.2
    encoder + transitions + levels + head
}

/// MACs of one forward per sample at a `height × width` base size: one frame (image model) or
/// one clip (video model), each frame at its three zoom scales.
pub fn forward_macs(cfg: &crate::config::Config, height: i64, width: i64) -> anyhow::Result<i64> {
    let zoom = super::ZoomNextConfig::from_model_config(cfg)?;
    let scales =
        super::zoom_sizes(height as usize, width as usize).map(|(h, w)| (h as i64, w as i64));
    Ok(frame_macs(&zoom, scales) * cfg.kind.frames() as i64)
}
