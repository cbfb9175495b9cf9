//! Multiply-accumulates of one forward pass, counted from the architecture: convolutions,
//! linear layers and the attention/correlation matrix products — what PyTorch's
//! `torch.utils.flop_counter` counts (it reports FLOPs = 2 × MACs). Normalisations,
//! activations, pooling and resampling are not counted (they are memory-bound and small).

use anyhow::{bail, Result};

use crate::nn::pvt_v2::PvtV2Config;
use crate::{Config, ModelKind};

/// A feature map size.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Hw(i64, i64);

impl Hw {
    fn n(self) -> i64 {
        self.0 * self.1
    }
    fn pooled(self, k: i64) -> Hw {
        Hw(self.0 / k, self.1 / k)
    }
}

/// MACs of a (same-size, unless noted) convolution `c_in → c_out` with a `kh × kw` kernel.
fn conv(hw_out: Hw, c_in: i64, c_out: i64, kh: i64, kw: i64, groups: i64) -> i64 {
    hw_out.n() * c_out * (c_in / groups) * kh * kw
}

/// MACs of the PVTv2 encoder on an `hw` input ([`PvtV2Config::macs`]), and its stage sizes.
fn pvt_v2(v: &PvtV2Config, hw: Hw) -> (i64, [Hw; 4]) {
    let (macs, sizes) = v.macs((hw.0, hw.1));
    (macs, sizes.map(|(h, w)| Hw(h, w)))
}

/// RFB (receptive field block) from `c_in` to `c` channels on a map of size `hw`.
fn rfb(hw: Hw, c_in: i64, c: i64) -> i64 {
    let branch =
        |k: i64| conv(hw, c, c, 1, k, 1) + conv(hw, c, c, k, 1, 1) + conv(hw, c, c, 3, 3, 1);
    5 * conv(hw, c_in, c, 1, 1, 1) // four branch entries + the residual
        + branch(3) + branch(5) + branch(7)
        + conv(hw, 4 * c, c, 3, 3, 1)
}

/// CTC at one scale: the non-local correlation on the 2c-channel concatenation, its output
/// conv, and the reduction back to c channels.
fn ctc_scale(hw: Hw, c: i64, pool: i64) -> i64 {
    let c2 = 2 * c;
    let m = hw.pooled(pool).n();
    conv(hw, c2, c, 1, 1, 1)        // g (then max-pooled)
        + hw.n() * m * c2           // θ·φᵀ
        + hw.n() * m * c            // softmax(θφᵀ)·g
        + conv(hw, c, c2, 1, 1, 1)  // W
        + conv(hw, 2 * c2, c2, 1, 1, 1) // out_conv
        + conv(hw, c2, c, 3, 3, 1) // conv1..3
}

/// FSP with `groups` groups of `c / 2` hidden channels.
fn fsp(hw: Hw, c: i64, groups: i64) -> i64 {
    let h = c / 2;
    let interact = conv(hw, h, 3 * h, 3, 3, 1)
        + (groups - 2) * conv(hw, 2 * h, 3 * h, 3, 3, 1)
        + conv(hw, 2 * h, 2 * h, 3, 3, 1);
    conv(hw, c, groups * h, 1, 1, 1) + interact + 2 * groups * h * h // gate (on 1×1)
        + conv(hw, groups * h, c, 3, 3, 1)
}

/// Neighbour-connection decoder and the three reverse stages, on RFB maps at 1/8, 1/16, 1/32.
fn decoder(s8: Hw, s16: Hw, s32: Hw, c: i64) -> i64 {
    let up16 = Hw(2 * s32.0, 2 * s32.1);
    let up8 = Hw(2 * up16.0, 2 * up16.1);
    let ncd = 2 * conv(up16, c, c, 3, 3, 1)     // conv_upsample1, 4
        + 2 * conv(up8, c, c, 3, 3, 1)          // conv_upsample2, 3
        + conv(up8, 2 * c, 2 * c, 3, 3, 1)      // conv_upsample5
        + conv(up16, 2 * c, 2 * c, 3, 3, 1)     // conv_concat2
        + 2 * conv(up8, 3 * c, 3 * c, 3, 3, 1)  // conv_concat3, conv4
        + conv(up8, 3 * c, 1, 1, 1, 1); // conv5
    let reverse_stage = |hw: Hw| {
        [1, 4, 32]
            .iter()
            .map(|g| conv(hw, c + g, c, 3, 3, 1) + conv(hw, c, 1, 3, 3, 1))
            .sum::<i64>()
    };
    ncd + reverse_stage(s32) + reverse_stage(s16) + reverse_stage(s8)
}

/// MACs per sample of one forward at `height × width`. With `feature_cache`, the per-frame
/// part (encoder + RFB) is counted once, as in streaming inference; otherwise once per frame
/// of the triplet, as in training and the reference. The kinds built from FGSTP's modules; the
/// others count in their own files ([`super::forward_macs`] dispatches).
pub fn forward_macs(cfg: &Config, height: i64, width: i64, feature_cache: bool) -> Result<i64> {
    let c = cfg.channel;
    // Encoder + RFBs of one frame, and the RFB map sizes at 1/8, 1/16, 1/32.
    let per_frame = || {
        let (encoder, [_, s8, s16, s32]) = pvt_v2(&cfg.backbone.config(), Hw(height, width));
        let dims = cfg.backbone.config().embed_dims;
        let macs = encoder + rfb(s8, dims[1], c) + rfb(s16, dims[2], c) + rfb(s32, dims[3], c);
        (macs, [s8, s16, s32])
    };
    Ok(match cfg.kind {
        ModelKind::SinetV2 => {
            let (frame, [s8, s16, s32]) = per_frame();
            frame + decoder(s8, s16, s32, c)
        }
        ModelKind::Fgstp | ModelKind::SltNet => {
            let (frame, [s8, s16, s32]) = per_frame();
            let pools = cfg.correlation_pools;
            let refinement = if cfg.kind == ModelKind::Fgstp {
                fsp(s8, c, cfg.fsp_groups)
                    + fsp(s16, c, cfg.fsp_groups)
                    + fsp(s32, c, cfg.fsp_groups)
            } else {
                0 // SLT-Net decodes the correlation maps directly
            };
            let pair = ctc_scale(s8, c, pools[0])
                + ctc_scale(s16, c, pools[1])
                + ctc_scale(s32, c, pools[2])
                + refinement
                + decoder(s8, s16, s32, c);
            let hw = Hw(height, width);
            let fusion =
                conv(hw, 2, c, 3, 3, 1) + conv(hw, c, c, 3, 3, 1) + conv(hw, c, 1, 3, 3, 1);
            let frames = if feature_cache { 1 } else { 3 };
            frames * frame + 2 * pair + fusion
        }
        ModelKind::SltNetLong => {
            // One frame per sample (a clip of one, as the reference's test script runs it):
            // first_conv (RGB + prior → 3 channels), the single-frame network, and the two NS
            // blocks on the 1/16 map: query/key/value/output 1×1 convs and, per head, relevance
            // and aggregation over the T·49 neighbours of a 7×7 window.
            let (frame, [s8, s16, s32]) = per_frame();
            let (t, heads, head_dim) = (1, 4, c / 4);
            let ns_block = 4 * t * s16.n() * c * c + 2 * heads * t * t * 49 * s16.n() * head_dim;
            conv(Hw(height, width), 4, 3, 1, 1, 1) + frame + decoder(s8, s16, s32, c) + 2 * ns_block
        }
        other => bail!(
            "model.kind {other:?} counts its multiply-accumulates in its own model file \
             (models::forward_macs dispatches)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PvtV2Variant;

    /// FLOPs (2 × MACs) of one reference forward, batch 1, three frames each encoded once per
    /// triplet, from `torch.utils.flop_counter` on the reference model
    /// (`scripts/reference/count_reference_flops.py REF_CHECKOUT b0:256 b5:352`).
    #[test]
    fn counts_what_pytorchs_flop_counter_counts_on_the_reference() {
        for (variant, size, reference_flops) in [
            (PvtV2Variant::B0, 256, 8_722_771_968i64),
            (PvtV2Variant::B5, 352, 190_011_265_920),
        ] {
            let cfg = Config {
                backbone: variant,
                ..Config::default()
            };
            let ours = 2 * forward_macs(&cfg, size, size, false).unwrap();
            assert_eq!(
                ours, reference_flops,
                "{variant:?} at {size}: ours {ours}, PyTorch's {reference_flops}"
            );
        }
    }

    /// SLT-Net's short- and long-term models at full size, as `torch.utils.flop_counter` counted
    /// them on the reference (scripts/fixtures/make_slt_net_fixture.py --flops; the NS ops through its
    /// PyTorch port, since the counter cannot see the CUDA extension).
    #[test]
    fn counts_what_pytorchs_flop_counter_counts_on_slt_net() {
        let short = Config {
            kind: ModelKind::SltNet,
            ..Config::default()
        };
        assert_eq!(
            2 * forward_macs(&short, 352, 352, false).unwrap(),
            188_973_037_440
        );
        let long = Config {
            kind: ModelKind::SltNetLong,
            ..Config::default()
        };
        assert_eq!(
            2 * forward_macs(&long, 256, 448, false).unwrap(),
            57_372_499_968
        );
    }

    #[test]
    fn the_feature_cache_saves_two_encoder_passes() {
        let cfg = Config::default();
        let (cached, uncached) = (
            forward_macs(&cfg, 352, 352, true).unwrap(),
            forward_macs(&cfg, 352, 352, false).unwrap(),
        );
        assert!(uncached > 2 * cached, "{uncached} vs {cached}");
    }
}
