//! The model configuration (the `[model]` table of a run configuration) and the input checks
//! that turn what would be a libtorch shape error deep inside the network into a clear message.

use anyhow::{bail, ensure, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::nn::pvt_v2::PvtV2Variant;
use crate::runtime::precision::Precision;

/// Frames per clip of ZoomNeXt's video model (the authors' `configs/vcod_finetune.py`:
/// `num_frames = 5`).
pub const ZOOMNEXT_CLIP_FRAMES: i64 = 5;

/// The only input size (height, width) the long-term SLT-Net accepts: its NS blocks' LayerNorm
/// fixes the 1/16 feature map at 16×28.
pub const SLT_NET_LONG_INPUT: (i64, i64) = (256, 448);

/// Which network to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// FGSTP: three frames (t, t+1, t+2) → 4 + 4 deep-supervision maps and the fused map.
    Fgstp,
    /// The single-frame baseline (the paper's SINet-V2 row): FGSTP's own encoder and decoder on
    /// frame t alone, same `backbone.*` parameters.
    SinetV2,
    /// ZoomNeXt's image model (lartpang/ZoomNeXt): one frame at three zoom scales → one map.
    Zoomnext,
    /// ZoomNeXt's video model: clips of 5 frames, each at three zoom scales → one map per frame.
    ZoomnextVideo,
    /// SLT-Net's short-term model: frames (t, t+1, t+2) → 4 + 4 maps and the fused map, with
    /// SLT-Net's own state-dict keys (see `slt_net`).
    SltNet,
    /// SLT-Net's long-term model: RGB + the short-term prediction → 4 maps, 256×448 only (see
    /// `slt_net_long`). Runs one frame per sample, as the reference's test script does.
    SltNetLong,
}

impl ModelKind {
    /// Frames per sample: 3 for FGSTP and SLT-Net, 1 for the single-frame baseline and the
    /// long-term SLT-Net (each frame with its short-term prediction, as its test script runs it).
    pub fn frames(self) -> usize {
        match self {
            Self::Fgstp | Self::SltNet => 3,
            Self::SinetV2 | Self::SltNetLong | Self::Zoomnext => 1,
            Self::ZoomnextVideo => ZOOMNEXT_CLIP_FRAMES as usize,
        }
    }

    /// Input tensors of one `Model::forward_t`: the frames for FGSTP, SINet-V2 and SLT-Net; for
    /// ZoomNeXt the three zoom scales (small, medium, large) of the sample's frames, each
    /// [B·frames, 3, h, w].
    pub fn inputs(self) -> usize {
        match self {
            Self::Zoomnext | Self::ZoomnextVideo => 3,
            other => other.frames(),
        }
    }

    /// ZoomNeXt, image or video.
    pub fn is_zoomnext(self) -> bool {
        matches!(self, Self::Zoomnext | Self::ZoomnextVideo)
    }

    /// Whether video inference can encode each frame once and reuse its features in every
    /// triplet containing it (the streaming API's feature cache): FGSTP and SLT-Net.
    pub fn has_feature_cache(self) -> bool {
        matches!(self, Self::Fgstp | Self::SltNet)
    }

    /// Whether the model has the correlation pyramid, whose pools bound the input size.
    fn has_correlation(self) -> bool {
        matches!(self, Self::Fgstp | Self::SltNet)
    }
}

/// Model hyper-parameters. Every field has the reference's value as its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// "fgstp", "sinet-v2", "slt-net", "slt-net-long", "zoomnext" or "zoomnext-video"
    /// (`fgstp kinds` lists them).
    pub kind: ModelKind,
    /// PVTv2 encoder size, "b0" … "b5" (the paper: b5).
    pub backbone: PvtV2Variant,
    /// Width of the RFB outputs, the correlation, FSP and decoder features (reference: 32).
    pub channel: i64,
    /// Max-pool sizes of the correlation's keys/values on the 1/8, 1/16 and 1/32 maps
    /// (reference: 2, 4, 8, which needs inputs of at least 256 px; smaller pools allow smaller
    /// inputs for quick CPU runs).
    pub correlation_pools: [i64; 3],
    /// Groups of each FSP module (reference: 6 — its constructor passes the value under a
    /// misspelled keyword, so the default of 6 applies). For ZoomNeXt: the groups of its RGPUs
    /// (`hmu_groups`, the same module; reference: 6).
    pub fsp_groups: i64,
    /// Keep the backbone's BatchNorms in eval mode while training (running statistics are used
    /// and not updated). The reference means to do this but its `model.train()` undoes it;
    /// `false` reproduces what it actually does.
    pub freeze_backbone_bn: bool,
    /// "fp32-strict", "tf32" (libtorch's defaults) or "bf16" (autocast); see
    /// [`Precision`]. On the CPU, fp32-strict and tf32 are the same.
    pub precision: Precision,
    /// A faster order of computation: attention through libtorch's fused
    /// `scaled_dot_product_attention`; the three frames of a triplet through the encoder as one
    /// batch wherever its BatchNorms use running statistics (inference, and training with
    /// `freeze_backbone_bn`); both pairs through correlation, refinement and decoder as one
    /// batch in inference (ZoomNeXt: the encoder's attention only; long-term SLT-Net: none). Outputs
    /// agree with the reference's order to float rounding (about 1e-6 in probability), not bit
    /// for bit; false keeps the reference's order exactly.
    pub fused: bool,
    /// FGSTP and SLT-Net's short-term model, training: the three frames of a triplet through
    /// the encoder as one batch and both pairs through correlation, refinement and decoder as
    /// one batch, so that each BatchNorm's batch statistics cover all of them (the reference
    /// computes them per frame and per pair). Fewer, larger kernels: faster where the inputs are
    /// small; a different training, not the reference's. Inference is unchanged.
    pub joint_batches: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            kind: ModelKind::Fgstp,
            backbone: PvtV2Variant::B5,
            channel: 32,
            correlation_pools: [2, 4, 8],
            fsp_groups: 6,
            freeze_backbone_bn: true,
            precision: Precision::Tf32,
            fused: false,
            joint_batches: false,
        }
    }
}

/// Feature strides of the three maps the correlation works on.
const FEATURE_STRIDES: [i64; 3] = [8, 16, 32];

impl Config {
    /// Checks what the network needs of its hyper-parameters.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.channel > 0 && self.channel % 8 == 0,
            "model.channel = {} must be a positive multiple of 8 (the reverse stages split it into \
             channel/8 groups; the reference uses 32)",
            self.channel
        );
        ensure!(
            self.correlation_pools.iter().all(|&p| p >= 1),
            "model.correlation_pools = {:?}: every pool size must be at least 1 (reference: [2, 4, 8])",
            self.correlation_pools
        );
        ensure!(
            self.fsp_groups >= 2,
            "model.fsp_groups = {} must be at least 2 (reference: 6)",
            self.fsp_groups
        );
        ensure!(
            !self.joint_batches || self.kind.has_correlation(),
            "model.joint_batches batches the frames and pairs of \"fgstp\" and \"slt-net\"; \
             model.kind {:?} has none: remove it",
            self.kind
        );
        Ok(())
    }

    /// The smallest input side this configuration accepts: a multiple of 32 large enough that
    /// each correlation pool fits in its feature map.
    pub fn min_input_size(&self) -> i64 {
        if self.kind.is_zoomnext() {
            // The 0.5× zoom scale must fit the encoder.
            return 2 * self.backbone.config().min_input_side();
        }
        let mut multiple = 1;
        if self.kind.has_correlation() {
            for (pool, stride) in self.correlation_pools.iter().zip(FEATURE_STRIDES) {
                // smallest k with 32k/stride ≥ pool
                let k = (pool * stride + 31) / 32;
                multiple = multiple.max(k);
            }
        }
        32 * multiple
    }

    /// Checks that training at `height`×`width` works: the frames go through the network and
    /// the prediction comes out at the mask's size.
    pub fn check_train_size(&self, height: i64, width: i64) -> Result<()> {
        self.check_input_size(height, width)?;
        if self.kind.is_zoomnext() {
            ensure!(
                height % 4 == 0 && width % 4 == 0,
                "data.train_size = {height}×{width}: ZoomNeXt predicts at 4 × its encoder's 1/4 \
                 map, so the base size must be a multiple of 4 on each side for the prediction to \
                 match the mask (the reference uses 384)"
            );
        }
        Ok(())
    }

    /// Checks that `height`×`width` frames can go through the network.
    pub fn check_input_size(&self, height: i64, width: i64) -> Result<()> {
        if self.kind.is_zoomnext() {
            // No multiple-of-32 rule: ZoomNeXt resizes its inputs to three scales itself.
            let min = self.min_input_size();
            ensure!(
                height >= min && width >= min,
                "input {height}×{width} is too small for ZoomNeXt: its 0.5× zoom scale must be at least \
                 {} px for the encoder, so the minimum base size is {min}×{min} (the reference uses \
                 384×384)",
                min / 2
            );
            return Ok(());
        }
        if self.kind == ModelKind::SltNetLong {
            let (h, w) = SLT_NET_LONG_INPUT;
            ensure!(
                (height, width) == (h, w),
                "input {height}×{width}: the long-term SLT-Net takes {h}×{w} (height × width) frames \
                 only — its NS blocks' LayerNorm has the fixed shape {:?}, the 1/16 feature map of \
                 a {h}×{w} frame; resize the frames to {h}×{w} as the reference's loader does",
                crate::nn::ns_block::NORM_SHAPE
            );
            return Ok(());
        }
        if height % 32 != 0 || width % 32 != 0 {
            bail!(
                "input {height}×{width}: height and width must be multiples of 32 (the encoder \
                 halves the map five times and the decoder doubles it back); resize the frames, \
                 e.g. to 352×352"
            );
        }
        let min = self.min_input_size();
        if height < min || width < min {
            let detail = match self.kind {
                ModelKind::Fgstp | ModelKind::SltNet => {
                    let (i, pool, stride) = self
                        .correlation_pools
                        .iter()
                        .zip(FEATURE_STRIDES)
                        .enumerate()
                        .map(|(i, (&p, s))| (i, p, s))
                        .find(|&(_, p, s)| height / s < p || width / s < p)
                        .unwrap_or((0, 1, 32));
                    format!(
                        ": its 1/{stride} feature map ({}×{}) is smaller than correlation pool {} of size {pool}",
                        height / stride,
                        width / stride,
                        i + 1
                    )
                }
                _ => String::new(),
            };
            bail!(
                "input {height}×{width} is too small for this model{detail}; the minimum is {min}×{min} \
                 (use larger frames{})",
                if self.kind.has_correlation() { " or smaller model.correlation_pools" } else { "" }
            );
        }
        Ok(())
    }
}

/// Checks frames against the model: [B, 3, H, W], all alike, on the model's device and dtype.
pub(crate) fn check_frames(
    cfg: &Config,
    frames: &[&Tensor],
    device: Device,
    kind: Kind,
) -> Result<(i64, i64)> {
    ensure!(!frames.is_empty(), "no input frames");
    let first = frames[0].size();
    for (i, frame) in frames.iter().enumerate() {
        let size = frame.size();
        ensure!(
            size.len() == 4 && size[1] == 3,
            "frame {i} has shape {size:?}; expected [batch, 3, height, width] (RGB, normalised)"
        );
        ensure!(
            size == first,
            "frame {i} has shape {size:?} but frame 0 has {first:?}; all frames must match"
        );
        ensure!(
            frame.device() == device,
            "frame {i} is on {:?} but the model is on {device:?}; move the input (or the model) first",
            frame.device()
        );
        ensure!(
            frame.kind() == kind,
            "frame {i} has dtype {:?} but the model's parameters are {kind:?}",
            frame.kind()
        );
    }
    let (h, w) = (first[2], first[3]);
    cfg.check_input_size(h, w)?;
    Ok((h, w))
}
