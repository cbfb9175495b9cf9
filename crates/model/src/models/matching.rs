//! Which model a checkpoint fits: the layout detected from its keys ([`crate::checkpoint::key_layout`]) is
//! confirmed by building that model (kind and PVTv2 variant) and planning a load into it, key by
//! key and shape by shape.

use anyhow::Result;

use crate::checkpoint::key_layout::{SltNetStage, PVT_PREFIX};
use crate::checkpoint::{plan_load, Detected, LoadOptions, LoadPlan, ModelLayout, StateDict};
use crate::{Config, Model, ModelKind, PvtV2Variant};

/// How to load a file of this layout, for the inspect output.
pub fn load_hint(detected: &Detected) -> Option<&'static str> {
    use ModelLayout as L;
    Some(match detected.layout {
        L::Fgstp => "loads strictly into an FGSTP model of this encoder variant",
        L::SingleFrame => {
            "loads strictly into the single-frame model, or partially into FGSTP's backbone"
        }
        L::EncoderOnly => "loads partially into an FGSTP or single-frame model",
        L::PvtV2Official { .. } => {
            "loads partially into the encoder: keys prefixed backbone.encoder.pvtv2_en., head.* dropped"
        }
        L::SltNet {
            stage: SltNetStage::ShortTerm,
        } => "loads strictly into a short-term SLT-Net (model.kind = \"slt-net\") of this encoder variant",
        L::SltNet {
            stage: SltNetStage::LongTerm,
        } => "loads strictly into a long-term SLT-Net (model.kind = \"slt-net-long\")",
        L::SltNet {
            stage: SltNetStage::Image,
        } => "loads partially into SLT-Net's backbone (as its --pretrained_cod10k does)",
        L::ZoomNext { .. } => {
            "loads strictly into a ZoomNeXt model of this kind and encoder variant (an image \
             checkpoint into the video model: its T = 1 temporal tensors are skipped, as the \
             authors load it)"
        }
        L::Unknown => return None,
    })
}

/// The file compared key by key and shape by shape with a freshly built model of the detected
/// kind and encoder variant (default hyper-parameters, e.g. 32 decoder channels).
pub struct ModelCheck {
    /// The model built, e.g. "FGSTP model with PVTv2-b0".
    pub model: String,
    pub plan: LoadPlan,
}

pub fn check_against_model(sd: &StateDict, detected: &Detected) -> Result<Option<ModelCheck>> {
    let Some(variant) = detected.pvt.as_ref().and_then(|p| p.variant) else {
        return Ok(None);
    };
    let Some(backbone) = PvtV2Variant::ALL.into_iter().find(|v| v.name() == variant) else {
        return Ok(None); // b2_li: fgstp builds no linear-attention encoder
    };
    let (kind, opts, model) = match detected.layout {
        ModelLayout::Fgstp => (ModelKind::Fgstp, LoadOptions::strict(), "FGSTP"),
        ModelLayout::SingleFrame => (ModelKind::SinetV2, LoadOptions::strict(), "single-frame"),
        ModelLayout::PvtV2Official { .. } => (
            ModelKind::SinetV2,
            LoadOptions::pvt_v2_imagenet(),
            "the encoder of the FGSTP/single-frame",
        ),
        ModelLayout::SltNet { stage } => match stage {
            SltNetStage::ShortTerm => (
                ModelKind::SltNet,
                LoadOptions::strict(),
                "short-term SLT-Net",
            ),
            SltNetStage::LongTerm => (
                ModelKind::SltNetLong,
                LoadOptions::strict(),
                "long-term SLT-Net",
            ),
            SltNetStage::Image => (
                ModelKind::SltNet,
                LoadOptions::partial(),
                "the backbone of the short-term SLT-Net",
            ),
        },
        ModelLayout::ZoomNext { frames } => match frames {
            Some(t) if t > 1 => (
                ModelKind::ZoomnextVideo,
                LoadOptions::strict(),
                "ZoomNeXt video",
            ),
            _ => (ModelKind::Zoomnext, LoadOptions::strict(), "ZoomNeXt image"),
        },
        ModelLayout::EncoderOnly | ModelLayout::Unknown => return Ok(None),
    };
    let cfg = Config {
        kind,
        backbone,
        ..Config::default()
    };
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    tch::no_grad(|| Model::new(&vs.root(), &cfg))?;
    let mut plan = plan_load(&vs, sd, &opts)?;
    match detected.layout {
        // Only the encoder can come from an ImageNet checkpoint.
        ModelLayout::PvtV2Official { .. } => {
            plan.report.missing.retain(|k| k.starts_with(PVT_PREFIX))
        }
        // SLT-Net's single-frame network is its short-term model's backbone.
        ModelLayout::SltNet {
            stage: SltNetStage::Image,
        } => plan.report.missing.retain(|k| k.starts_with("backbone.")),
        _ => {}
    }
    Ok(Some(ModelCheck {
        model: format!("{model} model with PVTv2-{variant}"),
        plan,
    }))
}

fn first_few(names: &[String]) -> String {
    let mut s = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 3 {
        s.push_str(", ...");
    }
    s
}

pub fn describe(check: &ModelCheck) -> String {
    let r = &check.plan.report;
    if check.plan.is_exact() {
        let mut s = format!(
            "every key and shape matches fgstp's {} ({} variables",
            check.model,
            r.loaded.len()
        );
        if !r.ignored.is_empty() {
            s.push_str(&format!(", {} BatchNorm counters ignored", r.ignored.len()));
        }
        if !r.dropped.is_empty() {
            s.push_str(&format!(
                ", {} dropped: {}",
                r.dropped.len(),
                first_few(&r.dropped)
            ));
        }
        return s + ")";
    }
    let mut problems = Vec::new();
    if !r.missing.is_empty() {
        problems.push(format!(
            "{} missing ({})",
            r.missing.len(),
            first_few(&r.missing)
        ));
    }
    if !r.skipped.is_empty() {
        problems.push(format!(
            "{} not in the model ({})",
            r.skipped.len(),
            first_few(&r.skipped)
        ));
    }
    if let Some(first) = check.plan.mismatched.first() {
        problems.push(format!(
            "{} shape mismatches (first: {first})",
            check.plan.mismatched.len()
        ));
    }
    format!(
        "differs from fgstp's {}: {}",
        check.model,
        problems.join("; ")
    )
}
