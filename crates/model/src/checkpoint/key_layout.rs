//! Which model a state dict fits, from its key names and shapes alone.

use std::collections::{BTreeSet, HashMap};

/// Key prefix of the PVTv2 encoder inside FGSTP and the single-frame model.
pub const PVT_PREFIX: &str = "backbone.encoder.pvtv2_en.";
/// Key prefix of the PVTv2 encoder inside ZoomNeXt.
pub const ZOOMNEXT_PVT_PREFIX: &str = "encoder.";
/// A ZoomNeXt RGPU temporal tensor whose shape, [2T, T], gives the clip length T.
const ZOOMNEXT_CLIP_KEY: &str = "hmu_5.fuse.0.temperal_proj_kv.weight";
/// Key prefix of the PVTv2 encoder inside every SLT-Net model.
pub const SLT_NET_PVT_PREFIX: &str = "backbone.feat_net.pvtv2_en.";

/// Which of SLT-Net's networks a state dict holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SltNetStage {
    /// The single-frame network (`backbone.feat_net.*` + `backbone.decoder.*`), e.g. its
    /// COD10K-pretrained `Net_epoch_cod10k.pth`.
    Image,
    /// The short-term model: `backbone.*`, `nlnet.nl_layer1..3.*`, `fusion_conv.*`.
    ShortTerm,
    /// The long-term model: `backbone.*`, `nlnet.NSB_1/2.*`, `first_conv.*`.
    LongTerm,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelLayout {
    /// FGSTP: `backbone.*` plus the temporal modules `ctc.*`, `fsp1..3.*`, `fusion_conv.*`.
    Fgstp,
    /// `backbone.encoder.*` + `backbone.decoder.*` without temporal modules: the single-frame
    /// (SINet-V2-style) model, which is also the layout of the COD10K-pretrained backbone.
    SingleFrame,
    /// Only `backbone.encoder.*` (an encoder-only export).
    EncoderOnly,
    /// ZoomNeXt (lartpang/ZoomNeXt): `encoder.*`, `tra_*`, `siu_*`, `hmu_*`, `normalizer.*`,
    /// `predictor.*`. `frames`: the clip length its temporal branch was built for (1: an image
    /// model, whose temporal tensors the image model does not use; 5: the video model).
    ZoomNext {
        frames: Option<i64>,
    },
    /// The official PVTv2 ImageNet release: no prefix, `patch_embed1.*`, `block1.*`, `head.*`.
    PvtV2Official {
        has_head: bool,
    },
    /// SLT-Net (Cheng et al., CVPR 2022): its encoder is `backbone.feat_net.*`.
    SltNet {
        stage: SltNetStage,
    },
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvtInfo {
    /// `b0`..`b5`, `b2_li`, or `None` if the widths/depths match no released variant.
    pub variant: Option<&'static str>,
    pub widths: [usize; 4],
    pub depths: [usize; 4],
    pub mlp_ratios: [usize; 4],
    /// The "linear" (`_li`) attention: a 1×1 spatial-reduction conv in the last stage.
    pub linear: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub layout: ModelLayout,
    pub pvt: Option<PvtInfo>,
    /// Key prefix the PVTv2 tensors were found under (`""` for the official release).
    pub pvt_prefix: Option<&'static str>,
}

impl Detected {
    /// One line for `fgstp weights inspect`.
    pub fn describe(&self) -> String {
        let encoder = match &self.pvt {
            Some(pvt) => {
                let name = match pvt.variant {
                    Some(v) => format!("PVTv2-{v}"),
                    None => "PVTv2 (no released variant)".to_string(),
                };
                format!(
                    "{name} encoder (widths {:?}, depths {:?}, mlp ratios {:?})",
                    pvt.widths, pvt.depths, pvt.mlp_ratios
                )
            }
            None => "no recognisable PVTv2 encoder".to_string(),
        };
        match &self.layout {
            ModelLayout::Fgstp => format!("FGSTP full model; {encoder}"),
            ModelLayout::SingleFrame => format!(
                "single-frame model / COD10K-pretrained backbone (backbone.encoder + \
                 backbone.decoder, SINet-V2 layout); {encoder}"
            ),
            ModelLayout::EncoderOnly => format!("encoder only (backbone.encoder.*); {encoder}"),
            ModelLayout::ZoomNext { frames } => {
                let model = match frames {
                    Some(1) => "ZoomNeXt image model (model.kind = \"zoomnext\"; it carries T = 1 \
                                temporal-branch tensors hmu_*.fuse.0.temperal_proj*, which the image \
                                model loads and does not use)"
                        .to_string(),
                    Some(t) => format!(
                        "ZoomNeXt video model, {t} frames per clip (model.kind = \"zoomnext-video\")"
                    ),
                    None => "ZoomNeXt (no temporal branch found)".to_string(),
                };
                if self.pvt.is_some() {
                    format!("{model}; {encoder}")
                } else {
                    format!(
                        "{model} with a non-PVTv2 encoder (ResNet/EfficientNet variants are not \
                         supported)"
                    )
                }
            }
            ModelLayout::PvtV2Official { has_head } => format!(
                "official PVTv2 ImageNet checkpoint ({}); {encoder}",
                if *has_head {
                    "with a head.* classifier"
                } else {
                    "no head"
                }
            ),
            ModelLayout::SltNet { stage } => {
                let what = match stage {
                    SltNetStage::Image => {
                        "SLT-Net single-frame network (backbone.feat_net + backbone.decoder)"
                    }
                    SltNetStage::ShortTerm => "SLT-Net short-term model (model.kind = \"slt-net\")",
                    SltNetStage::LongTerm => {
                        "SLT-Net long-term model (model.kind = \"slt-net-long\")"
                    }
                };
                format!("{what}; {encoder}")
            }
            ModelLayout::Unknown => {
                "not an FGSTP, SLT-Net, single-frame or PVTv2 layout".to_string()
            }
        }
    }
}

/// A released PVTv2 variant: (name, stage widths, depths, mlp ratios, linear attention).
pub type PvtVariant = (&'static str, [usize; 4], [usize; 4], [usize; 4], bool);

/// The variants of the PVTv2 release (as in the reference's `lib/pvt_v2.py`).
pub const PVT_VARIANTS: [PvtVariant; 7] = [
    ("b0", [32, 64, 160, 256], [2, 2, 2, 2], [8, 8, 4, 4], false),
    ("b1", [64, 128, 320, 512], [2, 2, 2, 2], [8, 8, 4, 4], false),
    ("b2", [64, 128, 320, 512], [3, 4, 6, 3], [8, 8, 4, 4], false),
    (
        "b2_li",
        [64, 128, 320, 512],
        [3, 4, 6, 3],
        [8, 8, 4, 4],
        true,
    ),
    (
        "b3",
        [64, 128, 320, 512],
        [3, 4, 18, 3],
        [8, 8, 4, 4],
        false,
    ),
    (
        "b4",
        [64, 128, 320, 512],
        [3, 8, 27, 3],
        [8, 8, 4, 4],
        false,
    ),
    (
        "b5",
        [64, 128, 320, 512],
        [3, 6, 40, 3],
        [4, 4, 4, 4],
        false,
    ),
];

/// Reads the PVTv2 structure under `prefix`, if the four patch embeddings are there.
pub fn pvt_info(shapes: &HashMap<&str, &[i64]>, prefix: &str) -> Option<PvtInfo> {
    let dim0 = |key: String| -> Option<usize> {
        shapes
            .get(key.as_str())
            .and_then(|s| s.first())
            .and_then(|&d| usize::try_from(d).ok())
    };
    let mut widths = [0usize; 4];
    let mut depths = [0usize; 4];
    let mut mlp_ratios = [0usize; 4];
    for stage in 0..4 {
        widths[stage] = dim0(format!("{prefix}patch_embed{}.proj.weight", stage + 1))?;
        let block_prefix = format!("{prefix}block{}.", stage + 1);
        let blocks: BTreeSet<usize> = shapes
            .keys()
            .filter_map(|k| k.strip_prefix(block_prefix.as_str()))
            .filter_map(|rest| rest.split('.').next()?.parse().ok())
            .collect();
        depths[stage] = blocks.len();
        let hidden = dim0(format!("{block_prefix}0.mlp.fc1.weight")).unwrap_or(0);
        mlp_ratios[stage] = hidden.checked_div(widths[stage]).unwrap_or(0);
    }
    let linear = shapes
        .get(format!("{prefix}block4.0.attn.sr.weight").as_str())
        .is_some_and(|s| s.len() == 4 && s[2] == 1 && s[3] == 1);
    let variant = PVT_VARIANTS
        .iter()
        .find(|(_, w, d, m, li)| *w == widths && *d == depths && *m == mlp_ratios && *li == linear)
        .map(|(name, ..)| *name);
    Some(PvtInfo {
        variant,
        widths,
        depths,
        mlp_ratios,
        linear,
    })
}

/// Detects the layout of a state dict from (key, shape) pairs.
pub fn detect<'a>(entries: impl IntoIterator<Item = (&'a str, &'a [i64])>) -> Detected {
    let shapes: HashMap<&str, &[i64]> = entries.into_iter().collect();
    let has = |prefix: &str| shapes.keys().any(|k| k.starts_with(prefix));
    let temporal = has("ctc.") && has("fsp1.") && has("fusion_conv.");
    let slt_net_stage = if has("nlnet.NSB_1.") || has("first_conv.") {
        SltNetStage::LongTerm
    } else if has("nlnet.nl_layer1.") {
        SltNetStage::ShortTerm
    } else {
        SltNetStage::Image
    };
    let (layout, pvt_prefix) = if has("backbone.feat_net.") {
        (
            ModelLayout::SltNet {
                stage: slt_net_stage,
            },
            Some(SLT_NET_PVT_PREFIX),
        )
    } else if temporal && has("backbone.") {
        (ModelLayout::Fgstp, Some(PVT_PREFIX))
    } else if has("backbone.encoder.") && has("backbone.decoder.") {
        (ModelLayout::SingleFrame, Some(PVT_PREFIX))
    } else if has("backbone.encoder.") {
        (ModelLayout::EncoderOnly, Some(PVT_PREFIX))
    } else if has("siu_5.") && has("hmu_5.") && has("predictor.") {
        let frames = shapes
            .get(ZOOMNEXT_CLIP_KEY)
            .and_then(|s| (s.len() == 2 && s[1].checked_mul(2) == Some(s[0])).then_some(s[1]));
        (ModelLayout::ZoomNext { frames }, Some(ZOOMNEXT_PVT_PREFIX))
    } else if has("patch_embed1.") && has("block1.") {
        (
            ModelLayout::PvtV2Official {
                has_head: has("head."),
            },
            Some(""),
        )
    } else {
        (ModelLayout::Unknown, None)
    };
    let pvt = pvt_prefix.and_then(|prefix| pvt_info(&shapes, prefix));
    Detected {
        layout,
        pvt,
        pvt_prefix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Key → shape of a PVTv2 encoder under `prefix` (the official release's layout), built from
    /// the architecture's definition, not from [`PVT_VARIANTS`]' detection logic.
    fn pvt_shapes(
        prefix: &str,
        widths: [i64; 4],
        depths: [usize; 4],
        mlp: [i64; 4],
        linear: bool,
    ) -> Vec<(String, Vec<i64>)> {
        let sr = [8, 4, 2, 1];
        let mut out = Vec::new();
        let mut cin = 3;
        for s in 0..4 {
            let (c, k) = (widths[s], if s == 0 { 7 } else { 3 });
            out.push((
                format!("{prefix}patch_embed{}.proj.weight", s + 1),
                vec![c, cin, k, k],
            ));
            for j in 0..depths[s] {
                let p = format!("{prefix}block{}.{j}.", s + 1);
                out.push((format!("{p}attn.kv.weight"), vec![2 * c, c]));
                out.push((format!("{p}mlp.fc1.weight"), vec![c * mlp[s], c]));
                if linear {
                    out.push((format!("{p}attn.sr.weight"), vec![c, c, 1, 1]));
                } else if sr[s] > 1 {
                    out.push((format!("{p}attn.sr.weight"), vec![c, c, sr[s], sr[s]]));
                }
            }
            cin = c;
        }
        out
    }

    fn detect_owned(entries: &[(String, Vec<i64>)]) -> Detected {
        detect(entries.iter().map(|(k, s)| (k.as_str(), s.as_slice())))
    }

    #[test]
    fn every_released_pvt_v2_variant_is_recognised_in_both_layouts() {
        let wide = [64, 128, 320, 512];
        let cases = [
            ("b0", [32, 64, 160, 256], [2, 2, 2, 2], [8, 8, 4, 4], false),
            ("b1", wide, [2, 2, 2, 2], [8, 8, 4, 4], false),
            ("b2", wide, [3, 4, 6, 3], [8, 8, 4, 4], false),
            ("b2_li", wide, [3, 4, 6, 3], [8, 8, 4, 4], true),
            ("b3", wide, [3, 4, 18, 3], [8, 8, 4, 4], false),
            ("b4", wide, [3, 8, 27, 3], [8, 8, 4, 4], false),
            ("b5", wide, [3, 6, 40, 3], [4, 4, 4, 4], false),
        ];
        for (name, widths, depths, mlp, linear) in cases {
            let mut official = pvt_shapes("", widths, depths, mlp, linear);
            official.push(("head.weight".into(), vec![1000, widths[3]]));
            let d = detect_owned(&official);
            assert_eq!(
                d.layout,
                ModelLayout::PvtV2Official { has_head: true },
                "{name}"
            );
            assert_eq!(d.pvt.as_ref().and_then(|p| p.variant), Some(name), "{name}");

            let mut fgstp = pvt_shapes(PVT_PREFIX, widths, depths, mlp, linear);
            for key in [
                "ctc.conv1.conv.weight",
                "fsp1.expand_conv.conv.weight",
                "fusion_conv.0.weight",
            ] {
                fgstp.push((key.into(), vec![1]));
            }
            let d = detect_owned(&fgstp);
            assert_eq!(d.layout, ModelLayout::Fgstp, "{name}");
            assert_eq!(d.pvt.and_then(|p| p.variant), Some(name), "{name}");
        }
    }

    #[test]
    fn single_frame_encoder_only_and_unknown_layouts() {
        let mut single = pvt_shapes(
            PVT_PREFIX,
            [32, 64, 160, 256],
            [2, 2, 2, 2],
            [8, 8, 4, 4],
            false,
        );
        single.push((
            "backbone.decoder.NCD.conv5.weight".into(),
            vec![1, 96, 1, 1],
        ));
        assert_eq!(detect_owned(&single).layout, ModelLayout::SingleFrame);
        single.pop();
        assert_eq!(detect_owned(&single).layout, ModelLayout::EncoderOnly);
        let other = vec![("conv.weight".to_string(), vec![4, 3, 3, 3])];
        let d = detect_owned(&other);
        assert_eq!((d.layout, d.pvt), (ModelLayout::Unknown, None));
    }

    #[test]
    fn slt_net_layouts_are_told_apart_and_their_encoder_read() {
        let with = |extra: &[&str]| {
            let mut keys = pvt_shapes(
                SLT_NET_PVT_PREFIX,
                [64, 128, 320, 512],
                [3, 6, 40, 3],
                [4, 4, 4, 4],
                false,
            );
            keys.push((
                "backbone.decoder.NCD.conv5.weight".into(),
                vec![1, 96, 1, 1],
            ));
            keys.extend(extra.iter().map(|k| (k.to_string(), vec![1])));
            detect_owned(&keys)
        };
        let short = with(&["nlnet.nl_layer1.out_conv.weight", "fusion_conv.0.weight"]);
        let long = with(&["nlnet.NSB_1.query_conv.weight", "first_conv.weight"]);
        let image = with(&[]);
        for (d, stage) in [
            (&short, SltNetStage::ShortTerm),
            (&long, SltNetStage::LongTerm),
            (&image, SltNetStage::Image),
        ] {
            assert_eq!(d.layout, ModelLayout::SltNet { stage });
            assert_eq!(d.pvt_prefix, Some(SLT_NET_PVT_PREFIX));
            assert_eq!(d.pvt.as_ref().and_then(|p| p.variant), Some("b5"));
        }
        assert!(short.describe().contains("\"slt-net\""));
        assert!(long.describe().contains("\"slt-net-long\""));
    }

    #[test]
    fn non_standard_widths_are_described_without_a_variant() {
        let d = detect_owned(&pvt_shapes(
            "",
            [2, 4, 10, 16],
            [2, 2, 2, 2],
            [8, 8, 4, 4],
            false,
        ));
        let pvt = d.pvt.unwrap();
        assert_eq!(
            (pvt.variant, pvt.widths, pvt.depths),
            (None, [2, 4, 10, 16], [2, 2, 2, 2])
        );
    }
}
