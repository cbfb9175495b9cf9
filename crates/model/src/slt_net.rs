//! SLT-Net's short-term model (Cheng et al., CVPR 2022, "Implicit Motion Handling for Video
//! Camouflaged Object Detection"; the reference is `lib/short_term_model.py` of
//! XuelianCheng/SLT-Net): per-frame encoder features (PVTv2 + RFBs), the non-local correlation
//! pyramid of frame t with t+1 and with t+2, the NCD + reverse-stage decoder on each pair's
//! correlation, and a 2 → 32 → 32 → 1 fusion of the two pairs' finest maps.
//!
//! It is FGSTP without FSP and without adding frame t's own features to the correlation: the
//! decoder reads the correlation maps directly. Modules are FGSTP's; the VarStore names are
//! SLT-Net's state-dict keys: `backbone.feat_net.{pvtv2_en,rfb2_1,rfb3_1,rfb4_1}.*`,
//! `backbone.decoder.{NCD,RS5,RS4,RS3}.*`, `nlnet.{nl_layer1..3,conv1..3}.*`, `fusion_conv.{0,1,2}.*`.
//!
//! Input: frames t, t+1, t+2, each [B, 3, H, W], ImageNet-normalised RGB (the reference's
//! `Resize((S, S))`, `ToTensor`, `Normalize`; S = 352 in its scripts), H and W multiples of 32
//! and at least 256 (the 1/32 correlation pools 8×8). Its test script (`test_video.py`) takes the
//! fused map, upsamples it to the frame's size (bilinear), applies a sigmoid and min-max
//! normalises it per frame; those 8-bit maps are the long-term model's priors.

use anyhow::{ensure, Result};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use crate::backbone::{Backbone, Features};
use crate::config::{check_frames, Config, ModelKind};
use crate::ctc::Ctc;
use crate::layers::{conv2d, ConvInit, ConvSpec};
use crate::pvt_v2::PvtV2Config;

/// The encoder's name inside `backbone` in SLT-Net's checkpoints.
pub const ENCODER_NAME: &str = "feat_net";

/// The short-term model's outputs, all logits [B, 1, H, W] at input resolution, in the order the
/// reference returns them.
#[derive(Debug)]
pub struct SltNetOutput {
    /// Decoder maps of the pair (t, t+1): NCD, RS5, RS4, RS3 (coarse to fine).
    pub out12: [Tensor; 4],
    /// Decoder maps of the pair (t, t+2).
    pub out13: [Tensor; 4],
    /// The fusion of both pairs' finest maps: the prediction for frame t.
    pub fused: Tensor,
}

impl SltNetOutput {
    /// All nine maps: pair (t, t+1), pair (t, t+2), fused.
    pub fn maps(&self) -> Vec<&Tensor> {
        self.out12
            .iter()
            .chain(&self.out13)
            .chain(std::iter::once(&self.fused))
            .collect()
    }
}

/// `fusion_conv`: three 3×3 convs (2 → 32 → 32 → 1) with biases and no activation between them.
#[derive(Debug)]
pub(crate) struct Fusion([nn::Conv2D; 3]);

impl Fusion {
    pub(crate) fn new(vs: &nn::Path) -> Self {
        let c3 = ConvSpec::square(3).padding(1);
        let conv = |i: i64, c_in, c_out| conv2d(&(vs / i), c_in, c_out, c3, ConvInit::TorchDefault);
        Self([conv(0, 2, 32), conv(1, 32, 32), conv(2, 32, 1)])
    }

    /// Two maps [B, 1, H, W] → [B, 1, H, W]
    pub(crate) fn forward(&self, a: &Tensor, b: &Tensor) -> Tensor {
        self.0
            .iter()
            .fold(Tensor::cat(&[a, b], 1), |x, conv| conv.forward(&x))
    }

    fn probe_parameter(&self) -> &Tensor {
        &self.0[0].ws
    }
}

#[derive(Debug)]
pub struct SltNet {
    pub backbone: Backbone,
    nlnet: Ctc,
    fusion: Fusion,
    cfg: Config,
}

impl SltNet {
    /// Builds the model under `vs` (normally the VarStore root, so that variable names equal the
    /// reference's state-dict keys), initialised as the reference initialises it.
    pub fn new(vs: &nn::Path, cfg: &Config) -> Result<Self> {
        Self::with_encoder(vs, cfg, &cfg.backbone.config())
    }

    /// As [`SltNet::new`] with any PVTv2 configuration in place of `cfg.backbone`'s.
    pub fn with_encoder(vs: &nn::Path, cfg: &Config, pvt: &PvtV2Config) -> Result<Self> {
        cfg.validate()?;
        ensure!(
            cfg.kind == ModelKind::SltNet,
            "SltNet::new needs model.kind = \"slt-net\", got {:?}",
            cfg.kind
        );
        let c = cfg.channel;
        Ok(Self {
            backbone: Backbone::with_encoder_name(&(vs / "backbone"), ENCODER_NAME, pvt, c),
            nlnet: Ctc::new(&(vs / "nlnet"), c, cfg.correlation_pools),
            fusion: Fusion::new(&(vs / "fusion_conv")),
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Device and dtype of the parameters (they follow `VarStore::set_device`/`set_kind`).
    fn device_kind(&self) -> (Device, Kind) {
        let probe = self.fusion.probe_parameter();
        (probe.device(), probe.kind())
    }

    /// The reference freezes the backbone's BatchNorms at construction, but its `model.train()`
    /// undoes that: `freeze_backbone_bn = false` reproduces what it actually does.
    fn backbone_bn_train(&self, train: bool) -> bool {
        train && !self.cfg.freeze_backbone_bn
    }

    /// One frame [B, 3, H, W] → its encoder features (RFB maps at 1/8, 1/16, 1/32). Video
    /// inference computes these once per frame and reuses them in every triplet containing it.
    pub fn encode(&self, frame: &Tensor, train: bool) -> Result<Features> {
        let (device, kind) = self.device_kind();
        check_frames(&self.cfg, &[frame], device, kind)?;
        Ok(self
            .backbone
            .encoder
            .forward_t(frame, self.backbone_bn_train(train)))
    }

    /// Frames t, t+1, t+2, each [B, 3, H, W] → the nine output maps.
    pub fn forward_t(&self, frames: [&Tensor; 3], train: bool) -> Result<SltNetOutput> {
        let (device, kind) = self.device_kind();
        check_frames(&self.cfg, &frames, device, kind)?;
        let bn_train = self.backbone_bn_train(train);
        let [f_t, f_t1, f_t2] =
            frames.map(|frame| self.backbone.encoder.forward_t(frame, bn_train));
        Ok(self.decode(&f_t, &f_t1, &f_t2, train))
    }

    /// As [`SltNet::forward_t`] from the frames' [`SltNet::encode`] features; the result is the
    /// same.
    pub fn forward_features(
        &self,
        f_t: &Features,
        f_t1: &Features,
        f_t2: &Features,
        train: bool,
    ) -> Result<SltNetOutput> {
        let shapes = |f: &Features| f.iter().map(|t| t.size()).collect::<Vec<_>>();
        let expected = shapes(f_t);
        let (b, h, w) = match expected[0][..] {
            [b, _, h, w] => (b, h, w),
            _ => anyhow::bail!("features must be the three 4-D maps SltNet::encode returns"),
        };
        let encoder_shapes: Vec<Vec<i64>> = [1, 2, 4]
            .iter()
            .map(|s| vec![b, self.cfg.channel, h / s, w / s])
            .collect();
        ensure!(
            expected == encoder_shapes && shapes(f_t1) == expected && shapes(f_t2) == expected,
            "features of frames t, t+1, t+2 have shapes {expected:?}, {:?}, {:?}; SltNet::encode \
             gives [B, {c}, H/8, W/8], [B, {c}, H/16, W/16], [B, {c}, H/32, W/32] for frames of \
             one size",
            shapes(f_t1),
            shapes(f_t2),
            c = self.cfg.channel
        );
        let (device, kind) = self.device_kind();
        for t in f_t.iter().chain(f_t1).chain(f_t2) {
            ensure!(
                t.device() == device && t.kind() == kind,
                "features are {:?} on {:?} but the model is {kind:?} on {device:?}",
                t.kind(),
                t.device()
            );
        }
        self.cfg.check_input_size(h * 8, w * 8)?;
        Ok(self.decode(f_t, f_t1, f_t2, train))
    }

    fn decode(
        &self,
        f_t: &Features,
        f_t1: &Features,
        f_t2: &Features,
        train: bool,
    ) -> SltNetOutput {
        let bn_train = self.backbone_bn_train(train);
        // nlnet's own BatchNorms train with the model (the reference freezes only backbone.*).
        let corr12 = self.nlnet.forward_t(f_t, f_t1, train);
        let corr13 = self.nlnet.forward_t(f_t, f_t2, train);
        let out12 = self.backbone.decoder.forward_t(&corr12, bn_train);
        let out13 = self.backbone.decoder.forward_t(&corr13, bn_train);
        let fused = self.fusion.forward(&out12[3], &out13[3]);
        SltNetOutput {
            out12,
            out13,
            fused,
        }
    }
}
