//! SLT-Net's long-term model (the reference's `lib/long_term_model.py`): a 1×1 `first_conv`
//! turns RGB + the short-term model's prediction (4 channels) into 3, the encoder (PVTv2 + RFBs)
//! runs on every frame of the clip, two NS blocks ([`crate::nn::ns_block`]) relate the clip's 1/16
//! features across space and time, and the NCD + reverse-stage decoder gives four maps per frame.
//!
//! State-dict keys: `backbone.feat_net.*`, `backbone.decoder.*` (as the short-term model, whose
//! checkpoint initialises them in the reference's training), `nlnet.NSB_1.*`, `nlnet.NSB_2.*`,
//! `first_conv.*`. The reference saves it through `nn.DataParallel`: its files have a `module.`
//! prefix, which the checkpoint reader strips.
//!
//! # Input and the two-stage pipeline
//! A clip [B, T, 4, 256, 448]: channels 0–2 RGB in [0, 1] (the reference's loader resizes to
//! 256×448 and applies `ToTensor` only — no mean/std normalisation), channel 3 the short-term
//! prediction of that frame in [0, 1]. The prediction is the one `test_video.py` saved: the fused
//! map upsampled to the frame's size, sigmoid, min-max normalised, written as an 8-bit PNG, read
//! back as grey levels, resized to 256×448 and divided by 255. (The reference also accepts 3
//! channels, skipping `first_conv`, and 1 channel, repeated to 3; so does [`SltNetLong`].)
//!
//! The input size is fixed at 256×448: the NS blocks' LayerNorm has the shape [8, 16, 28].
//!
//! The clip length T: training (`train_video_long_term.py`) uses clips of 10 consecutive frames,
//! [B, 10, 4, H, W]. Its test script (`test_video_long_term.py`) stacks a clip's frames as
//! [T, 1, 4, H, W] — the clip becomes the batch and every frame is a clip of one, related only
//! to itself in the NS blocks; so at test time each frame's prediction depends on that frame
//! (and its prior) alone, and which clips the script cuts does not change any prediction.
//! [`crate::Model`] runs this model that way: one frame [B, 4, H, W] per sample.

use anyhow::{bail, ensure, Result};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use crate::config::{Config, ModelKind};
use crate::models::slt_net::ENCODER_NAME;
use crate::nn::backbone::Backbone;
use crate::nn::layers::{conv2d, ConvInit, ConvSpec};
use crate::nn::ns_block::NsBlock;
use crate::nn::pvt_v2::PvtV2Config;

/// Four logit maps [B·T, 1, H, W] (frame-major: index b·T + t), NCD, RS5, RS4, RS3; the last is
/// the prediction (the reference's test script uses `preds[-1]`).
#[derive(Debug)]
pub struct SltNetLongOutput {
    pub maps: [Tensor; 4],
}

impl SltNetLongOutput {
    pub fn prediction(&self) -> &Tensor {
        &self.maps[3]
    }
}

#[derive(Debug)]
pub struct SltNetLong {
    pub backbone: Backbone,
    ns_blocks: [NsBlock; 2],
    first_conv: nn::Conv2D,
    cfg: Config,
}

impl SltNetLong {
    pub fn new(vs: &nn::Path, cfg: &Config) -> Result<Self> {
        Self::with_encoder(vs, cfg, &cfg.backbone.config())
    }

    /// As [`SltNetLong::new`] with any PVTv2 configuration in place of `cfg.backbone`'s.
    pub fn with_encoder(vs: &nn::Path, cfg: &Config, pvt: &PvtV2Config) -> Result<Self> {
        cfg.validate()?;
        ensure!(
            cfg.kind == ModelKind::SltNetLong,
            "SltNetLong::new needs model.kind = \"slt-net-long\", got {:?}",
            cfg.kind
        );
        let c = cfg.channel;
        let nlnet = vs / "nlnet";
        Ok(Self {
            backbone: Backbone::with_encoder_name(&(vs / "backbone"), ENCODER_NAME, pvt, c),
            ns_blocks: [
                NsBlock::new(&(&nlnet / "NSB_1"), c),
                NsBlock::new(&(&nlnet / "NSB_2"), c),
            ],
            first_conv: conv2d(
                &(vs / "first_conv"),
                4,
                3,
                ConvSpec::square(1),
                ConvInit::TorchDefault,
            ),
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn device_kind(&self) -> (Device, Kind) {
        (self.first_conv.ws.device(), self.first_conv.ws.kind())
    }

    /// A clip [B, T, C, 256, 448] (C = 4: RGB + prior; 3: RGB; 1: grey) → four maps per frame.
    pub fn forward_t(&self, clip: &Tensor, train: bool) -> Result<SltNetLongOutput> {
        let size = clip.size();
        let [b, t, c, h, w] = size[..] else {
            bail!(
                "the long-term SLT-Net takes a clip [batch, frames, channels, 256, 448], got shape \
                 {size:?}"
            );
        };
        ensure!(
            matches!(c, 1 | 3 | 4),
            "clip has {c} channels per frame; the long-term SLT-Net takes 4 (RGB + the short-term \
             prediction), 3 (RGB) or 1"
        );
        ensure!(b > 0 && t > 0, "empty clip {size:?}");
        self.cfg.check_input_size(h, w)?;
        let (device, kind) = self.device_kind();
        ensure!(
            clip.device() == device && clip.kind() == kind,
            "clip is {:?} on {:?} but the model is {kind:?} on {device:?}",
            clip.kind(),
            clip.device()
        );
        let frames = clip.reshape([b * t, c, h, w]);
        let frames = match c {
            4 => self.first_conv.forward(&frames),
            1 => frames.repeat([1, 3, 1, 1]),
            _ => frames,
        };
        let bn_train = train && !self.cfg.freeze_backbone_bn;
        let [f8, f16, f32] = self.backbone.encoder.forward_t(&frames, bn_train);
        let features = f16.reshape([b, t, self.cfg.channel, h / 16, w / 16]);
        let [nsb_1, nsb_2] = &self.ns_blocks;
        let high_1 = nsb_1.forward(&features)? + &features;
        let high_2 = nsb_2.forward(&high_1)? + &high_1;
        // The reference adds the block input once more on top of the two residual blocks.
        let f16 = (&features + high_2).reshape([b * t, self.cfg.channel, h / 16, w / 16]);
        Ok(SltNetLongOutput {
            maps: self.backbone.decoder.forward_t(&[f8, f16, f32], bn_train),
        })
    }
}
