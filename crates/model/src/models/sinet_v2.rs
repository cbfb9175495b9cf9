//! The single-frame baseline (the paper's SINet-V2 comparison row): FGSTP's encoder and decoder
//! on frame t alone, with the same `backbone.*` parameters, so that a checkpoint of either model
//! initialises the other's backbone and "temporal vs single-frame" is measured like for like.

use anyhow::{ensure, Result};
use tch::nn;
use tch::{Device, Kind, Tensor};

use crate::config::{check_frames, Config, ModelKind};
use crate::nn::backbone::Backbone;

/// The four decoder maps, logits [B, 1, H, W] at input resolution, coarse to fine.
#[derive(Debug)]
pub struct SinetV2Output {
    /// NCD, RS5, RS4, RS3. The last (RS3) is the prediction, as in SINet-V2.
    pub maps: [Tensor; 4],
}

impl SinetV2Output {
    pub fn prediction(&self) -> &Tensor {
        &self.maps[3]
    }
}

#[derive(Debug)]
pub struct SinetV2 {
    pub backbone: Backbone,
    cfg: Config,
}

impl SinetV2 {
    pub fn new(vs: &nn::Path, cfg: &Config) -> Result<Self> {
        cfg.validate()?;
        ensure!(
            cfg.kind == ModelKind::SinetV2,
            "SinetV2::new needs model.kind = \"sinet-v2\", got {:?}",
            cfg.kind
        );
        let mut backbone = Backbone::new(&(vs / "backbone"), cfg.backbone, cfg.channel);
        backbone.encoder.pvt_mut().set_fused_attention(cfg.fused);
        Ok(Self {
            backbone,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn device_kind(&self) -> (Device, Kind) {
        let probe = self.backbone.decoder.probe_parameter();
        (probe.device(), probe.kind())
    }

    /// One frame [B, 3, H, W] → the four maps. With `freeze_backbone_bn` every BatchNorm of
    /// this model stays in eval mode during training.
    pub fn forward_t(&self, frame: &Tensor, train: bool) -> Result<SinetV2Output> {
        let (device, kind) = self.device_kind();
        check_frames(&self.cfg, &[frame], device, kind)?;
        let bn_train = train && !self.cfg.freeze_backbone_bn;
        Ok(SinetV2Output {
            maps: self.backbone.forward_t(frame, bn_train),
        })
    }
}
