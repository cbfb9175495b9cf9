//! The models, one file (or folder) each, and [`Model`]: one entry point for either kind of
//! model, chosen by `Config::kind`. Beside them, what works on any kind: streaming predictions
//! over a video with the feature cache ([`feature_cache`]), multiply-accumulate counts
//! ([`complexity`]), and which model a checkpoint fits ([`matching`]).

pub mod clips;
pub mod complexity;
pub mod feature_cache;
pub(crate) mod fgstp;
pub mod matching;
pub(crate) mod sinet_v2;
pub(crate) mod slt_net;
pub(crate) mod slt_net_long;
pub mod zoomnext;

use anyhow::{ensure, Result};
use tch::nn;
use tch::Tensor;

use crate::config::{Config, ModelKind};
use crate::models::fgstp::{Fgstp, FgstpOutput};
use crate::models::sinet_v2::{SinetV2, SinetV2Output};
use crate::models::slt_net_long::{SltNetLong, SltNetLongOutput};
use crate::models::zoomnext::{ZoomNext, ZoomNextConfig};

/// Multiply-accumulates of one forward per sample at `height × width` (see
/// [`complexity::forward_macs`]; with `feature_cache`, the per-frame part counted once).
pub fn forward_macs(cfg: &Config, height: i64, width: i64, feature_cache: bool) -> Result<i64> {
    if cfg.kind.is_zoomnext() {
        return zoomnext::macs::forward_macs(cfg, height, width);
    }
    complexity::forward_macs(cfg, height, width, feature_cache)
}

#[derive(Debug)]
pub enum Model {
    Fgstp(Box<Fgstp>),
    SinetV2(Box<SinetV2>),
    /// ZoomNeXt, image or video (`model.kind` "zoomnext" / "zoomnext-video").
    ZoomNext(Box<ZoomNext>, Config),
    SltNetLong(Box<SltNetLong>),
}

#[derive(Debug)]
pub enum Output {
    Fgstp(FgstpOutput),
    SinetV2(SinetV2Output),
    /// ZoomNeXt's one logit map per frame, [B·frames, 1, H, W].
    ZoomNext(Tensor),
    SltNetLong(SltNetLongOutput),
}

impl Output {
    /// The map that is the model's prediction for frame t (logits [B, 1, H, W]).
    pub fn prediction(&self) -> &Tensor {
        match self {
            Self::Fgstp(out) => &out.fused,
            Self::SinetV2(out) => out.prediction(),
            Self::ZoomNext(logits) => logits,
            Self::SltNetLong(out) => out.prediction(),
        }
    }

    /// Every output map (FGSTP and SLT-Net: pair (t, t+1) ×4, pair (t, t+2) ×4, fused;
    /// SINet-V2 and the long-term SLT-Net: 4).
    pub fn maps(&self) -> Vec<&Tensor> {
        match self {
            Self::Fgstp(out) => out.maps(),
            Self::SinetV2(out) => out.maps.iter().collect(),
            Self::ZoomNext(logits) => vec![logits],
            Self::SltNetLong(out) => out.maps.iter().collect(),
        }
    }
}

impl Model {
    /// Builds the configured model under `vs` (normally the VarStore root).
    pub fn new(vs: &nn::Path, cfg: &Config) -> Result<Self> {
        Ok(match cfg.kind {
            // SLT-Net's short-term model is FGSTP's network without FSP.
            ModelKind::Fgstp | ModelKind::SltNet => Self::Fgstp(Box::new(Fgstp::new(vs, cfg)?)),
            ModelKind::SinetV2 => Self::SinetV2(Box::new(SinetV2::new(vs, cfg)?)),
            ModelKind::Zoomnext | ModelKind::ZoomnextVideo => {
                let zoomnext_cfg = ZoomNextConfig::from_model_config(cfg)?;
                Self::ZoomNext(Box::new(ZoomNext::new(vs, &zoomnext_cfg)?), cfg.clone())
            }
            ModelKind::SltNetLong => Self::SltNetLong(Box::new(SltNetLong::new(vs, cfg)?)),
        })
    }

    pub fn config(&self) -> &Config {
        match self {
            Self::Fgstp(m) => m.config(),
            Self::SinetV2(m) => m.config(),
            Self::ZoomNext(_, cfg) => cfg,
            Self::SltNetLong(m) => m.config(),
        }
    }

    /// `frames`: t, t+1, t+2 for FGSTP and SLT-Net, t alone for SINet-V2; for the long-term
    /// SLT-Net frame t as [B, 4, 256, 448] (RGB + its short-term prediction), run as a clip of one
    /// frame like the reference's test script does (see `ModelKind::frames`), or clips
    /// [B, T, 4, 256, 448] as its training does (maps [B·T, 1, H, W]); for ZoomNeXt the
    /// small, medium and large zoom scales (see `ModelKind::inputs`, `zoomnext::zoom_sizes`).
    pub fn forward_t(&self, frames: &[&Tensor], train: bool) -> Result<Output> {
        let needed = self.config().kind.inputs();
        ensure!(
            frames.len() == needed,
            "this model takes {needed} frame(s) per sample, got {}",
            frames.len()
        );
        Ok(match self {
            Self::Fgstp(m) => Output::Fgstp(m.forward_t([frames[0], frames[1], frames[2]], train)?),
            Self::SinetV2(m) => Output::SinetV2(m.forward_t(frames[0], train)?),
            Self::ZoomNext(m, _) => {
                Output::ZoomNext(m.forward_t([frames[0], frames[1], frames[2]], train)?)
            }
            Self::SltNetLong(m) => {
                let size = frames[0].size();
                let clip = match size.len() {
                    4 => frames[0].unsqueeze(1),
                    5 => frames[0].shallow_clone(),
                    _ => anyhow::bail!(
                        "the long-term SLT-Net takes frame t as [batch, 4, 256, 448] (RGB + its \
                         short-term prediction) or clips [batch, frames, 4, 256, 448], got shape \
                         {size:?}"
                    ),
                };
                Output::SltNetLong(m.forward_t(&clip, train)?)
            }
        })
    }
}
