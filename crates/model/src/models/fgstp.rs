//! FGSTP: per-frame encoder features, CTC correlation of frame t with t+1 and with t+2, the
//! three FSP refiners (shared by both pairs), the decoder on each pair, and a fusion of the two
//! pairs' finest maps.
//!
//! SLT-Net's short-term model ([`crate::models::slt_net`]) is the same network without FSP (its decoder
//! reads the correlation maps directly) under its own parameter names; `model.kind = "slt-net"`
//! builds this type in that form.

use anyhow::{ensure, Result};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use crate::config::{check_frames, Config, ModelKind};
use crate::models::slt_net;
use crate::nn::backbone::{Backbone, Features};
use crate::nn::ctc::Ctc;
use crate::nn::fsp::Fsp;
use crate::nn::layers::{conv2d, ConvInit, ConvSpec};
use crate::nn::pvt_v2::PvtV2Config;

/// FGSTP's outputs, all logits [B, 1, H, W] at input resolution.
#[derive(Debug)]
pub struct FgstpOutput {
    /// The decoder maps of the pair (t, t+1): NCD, RS5, RS4, RS3 (coarse to fine).
    pub pair_t1: [Tensor; 4],
    /// The decoder maps of the pair (t, t+2).
    pub pair_t2: [Tensor; 4],
    /// The fusion of both pairs' finest maps: the model's prediction for frame t.
    pub fused: Tensor,
}

impl FgstpOutput {
    /// All nine maps: pair (t, t+1), pair (t, t+2), fused.
    pub fn maps(&self) -> Vec<&Tensor> {
        self.pair_t1
            .iter()
            .chain(&self.pair_t2)
            .chain(std::iter::once(&self.fused))
            .collect()
    }
}

/// `fusion_conv`: three 3×3 convs (2 → 32 → 32 → 1) with biases and no activation between
/// them, on the two pairs' finest maps.
#[derive(Debug)]
struct Fusion([nn::Conv2D; 3]);

impl Fusion {
    fn new(vs: &nn::Path) -> Self {
        let c3 = ConvSpec::square(3).padding(1);
        let conv = |i: i64, c_in, c_out| conv2d(&(vs / i), c_in, c_out, c3, ConvInit::TorchDefault);
        Self([conv(0, 2, 32), conv(1, 32, 32), conv(2, 32, 1)])
    }

    /// Two maps [B, 1, H, W] → [B, 1, H, W]
    fn forward(&self, a: &Tensor, b: &Tensor) -> Tensor {
        self.0
            .iter()
            .fold(Tensor::cat(&[a, b], 1), |x, conv| conv.forward(&x))
    }
}

#[derive(Debug)]
pub struct Fgstp {
    pub backbone: Backbone,
    ctc: Ctc,
    /// FGSTP's refiners; SLT-Net has none.
    fsp: Option<[Fsp; 3]>,
    fusion: Fusion,
    cfg: Config,
}

impl Fgstp {
    /// Builds the model under `vs` (normally the VarStore root, so that variable names equal the
    /// reference's state-dict keys), initialised as the reference initialises it: FGSTP, or
    /// SLT-Net's short-term model for `kind = "slt-net"`.
    pub fn new(vs: &nn::Path, cfg: &Config) -> Result<Self> {
        Self::with_encoder(vs, cfg, &cfg.backbone.config())
    }

    /// As [`Fgstp::new`] with any PVTv2 configuration in place of `cfg.backbone`'s (tests use
    /// encoders smaller than b0).
    pub fn with_encoder(vs: &nn::Path, cfg: &Config, pvt: &PvtV2Config) -> Result<Self> {
        cfg.validate()?;
        let c = cfg.channel;
        let (encoder, ctc, fsp) = match cfg.kind {
            ModelKind::Fgstp => {
                let fsp = |i: usize| Fsp::new(&(vs / format!("fsp{}", i + 1)), c, cfg.fsp_groups);
                ("encoder", "ctc", Some([fsp(0), fsp(1), fsp(2)]))
            }
            ModelKind::SltNet => (slt_net::ENCODER_NAME, slt_net::CORRELATION_NAME, None),
            other => anyhow::bail!(
                "Fgstp::new builds model.kind \"fgstp\" or \"slt-net\", not {other:?}"
            ),
        };
        let mut backbone = Backbone::with_encoder_name(&(vs / "backbone"), encoder, pvt, c);
        backbone.encoder.pvt_mut().set_fused_attention(cfg.fused);
        Ok(Self {
            backbone,
            ctc: Ctc::new(&(vs / ctc), c, cfg.correlation_pools),
            fsp,
            fusion: Fusion::new(&(vs / "fusion_conv")),
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Device and dtype of the parameters (they follow `VarStore::set_device`/`set_kind`).
    fn device_kind(&self) -> (Device, Kind) {
        let probe = &self.fusion.0[0].ws;
        (probe.device(), probe.kind())
    }

    /// The reference freezes the backbone's BatchNorms at construction, but its `model.train()`
    /// undoes that: `freeze_backbone_bn = false` reproduces what it actually does.
    fn backbone_bn_train(&self, train: bool) -> bool {
        train && !self.cfg.freeze_backbone_bn
    }

    /// Whether frames (or pairs) go through as one batch: always with `joint_batches` in
    /// training; with `fused` wherever the BatchNorms involved use running statistics
    /// (`batch_statistics` false), so that every sample is still computed on its own.
    fn batches_jointly(&self, train: bool, batch_statistics: bool) -> bool {
        (train && self.cfg.joint_batches) || (!batch_statistics && self.cfg.fused)
    }

    /// The correlation at each scale, refined by FSP with frame t's own features added (FGSTP),
    /// or as it is (SLT-Net).
    fn refine(&self, corr: [Tensor; 3], current: &Features, bn_train: bool) -> Features {
        match &self.fsp {
            Some(fsp) => {
                std::array::from_fn(|i| fsp[i].forward_t(&(&corr[i] + &current[i]), bn_train))
            }
            None => corr,
        }
    }

    /// One frame [B, 3, H, W] → its encoder features. Streaming inference computes these once
    /// per frame and reuses them for every triplet containing the frame.
    pub fn encode(&self, frame: &Tensor, train: bool) -> Result<Features> {
        let (device, kind) = self.device_kind();
        check_frames(&self.cfg, &[frame], device, kind)?;
        Ok(self
            .backbone
            .encoder
            .forward_t(frame, self.backbone_bn_train(train)))
    }

    /// Frames t, t+1, t+2, each [B, 3, H, W] → the nine output maps.
    pub fn forward_t(&self, frames: [&Tensor; 3], train: bool) -> Result<FgstpOutput> {
        let (device, kind) = self.device_kind();
        check_frames(&self.cfg, &frames, device, kind)?;
        let bn_train = self.backbone_bn_train(train);
        let [f_t, f_t1, f_t2] = if !self.batches_jointly(train, bn_train) {
            // One encoder call per frame, as the reference (batch statistics are per call).
            frames.map(|frame| self.backbone.encoder.forward_t(frame, bn_train))
        } else {
            // With running statistics every encoder op treats samples independently, so the
            // three frames can go through as one batch: a third of the kernel launches and
            // larger matrix products; the values agree to float rounding, not bit for bit
            // (libtorch's kernels block a batch of 3 differently from 3 batches of 1). With
            // batch statistics (`joint_batches`) they are the three frames' together.
            let batch = frames[0].size()[0];
            let all = self
                .backbone
                .encoder
                .forward_t(&Tensor::cat(&frames, 0), bn_train);
            let [a, b, c] = all.map(|level| level.split(batch, 0));
            let frame = |k: usize| -> Features {
                [
                    a[k].shallow_clone(),
                    b[k].shallow_clone(),
                    c[k].shallow_clone(),
                ]
            };
            [frame(0), frame(1), frame(2)]
        };
        Ok(self.decode(&f_t, &f_t1, &f_t2, train))
    }

    /// As [`Fgstp::forward_t`] from the frames' precomputed [`Fgstp::encode`] features; the
    /// result is the same.
    pub fn forward_features(
        &self,
        f_t: &Features,
        f_t1: &Features,
        f_t2: &Features,
        train: bool,
    ) -> Result<FgstpOutput> {
        let size = |f: &Features| f.iter().map(|t| t.size()).collect::<Vec<_>>();
        let expected = size(f_t);
        ensure!(
            size(f_t1) == expected && size(f_t2) == expected,
            "features of frames t, t+1, t+2 differ in shape ({:?}, {:?}, {:?}); encode frames of one size",
            expected,
            size(f_t1),
            size(f_t2)
        );
        let (b, h, w) = match expected[0][..] {
            [b, _, h, w] => (b, h, w),
            _ => anyhow::bail!("features must be the three 4-D maps Fgstp::encode returns"),
        };
        let encoder_shapes: Vec<Vec<i64>> = [1, 2, 4]
            .iter()
            .map(|s| vec![b, self.cfg.channel, h / s, w / s])
            .collect();
        ensure!(
            expected == encoder_shapes,
            "features have shapes {expected:?}; this model's Fgstp::encode gives [B, {0}, H/8, W/8], \
             [B, {0}, H/16, W/16], [B, {0}, H/32, W/32]",
            self.cfg.channel
        );
        let (device, kind) = self.device_kind();
        for t in f_t.iter().chain(f_t1).chain(f_t2) {
            // Under autocast the features come out in the autocast dtype.
            let autocast = matches!(t.kind(), Kind::BFloat16 | Kind::Half);
            ensure!(
                t.device() == device && (t.kind() == kind || autocast),
                "features are {:?} on {:?} but the model is {kind:?} on {device:?}",
                t.kind(),
                t.device()
            );
        }
        self.cfg.check_input_size(h * 8, w * 8)?;
        Ok(self.decode(f_t, f_t1, f_t2, train))
    }

    fn decode(&self, f_t: &Features, f_t1: &Features, f_t2: &Features, train: bool) -> FgstpOutput {
        let (pair_t1, pair_t2) = if !self.batches_jointly(train, train) {
            // One pass per pair, as the reference (batch statistics are per pair).
            // The correlation's and FSP's own BatchNorms train with the model (the reference
            // freezes only the backbone's).
            let pair_t1 = self.refine(self.ctc.forward_t(f_t, f_t1, train), f_t, train);
            let pair_t2 = self.refine(self.ctc.forward_t(f_t, f_t2, train), f_t, train);
            let bn_train = self.backbone_bn_train(train);
            (
                self.backbone.decoder.forward_t(&pair_t1, bn_train),
                self.backbone.decoder.forward_t(&pair_t2, bn_train),
            )
        } else {
            // Both pairs share CTC, FSP and the decoder: one pass over a double batch (with
            // eval statistics each sample is computed on its own; with `joint_batches` the
            // statistics are the two pairs' together).
            let batch = f_t[0].size()[0];
            let both = |a: &Features, b: &Features| -> Features {
                std::array::from_fn(|i| Tensor::cat(&[&a[i], &b[i]], 0))
            };
            let current = both(f_t, f_t);
            let corr = self.ctc.forward_t(&current, &both(f_t1, f_t2), train);
            let refined = self.refine(corr, &current, train);
            let maps = self
                .backbone
                .decoder
                .forward_t(&refined, self.backbone_bn_train(train));
            let [m0, m1, m2, m3] = maps.map(|m| m.split(batch, 0));
            let pair = |k: usize| -> [Tensor; 4] {
                [&m0[k], &m1[k], &m2[k], &m3[k]].map(Tensor::shallow_clone)
            };
            (pair(0), pair(1))
        };
        let fused = self.fusion.forward(&pair_t1[3], &pair_t2[3]);
        FgstpOutput {
            pair_t1,
            pair_t2,
            fused,
        }
    }
}
