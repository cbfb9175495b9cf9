//! ZoomNeXt (Pang et al., "ZoomNeXt: A Unified Collaborative Pyramid Network for Camouflaged Object
//! Detection", TPAMI 2024; public code lartpang/ZoomNeXt) with its PVTv2 encoder, as the image
//! model (`model.kind = "zoomnext"`) and the video model (`"zoomnext-video"`, T = 5 frames of a clip
//! flattened into the batch).
//!
//! Each frame comes at three zoom scales (0.5×, 1×, 1.5× of the base size, see [`pyramid`]). The
//! pixel normaliser (mean/std *buffers*, loaded from the checkpoint) and the shared PVTv2 encoder
//! turn each scale into four maps (1/4 … 1/32); per level a transition conv brings them to 64
//! channels (SimpleASPP at 1/32), an MHSIU merges the three scales at the medium scale's size, and
//! an RGPU refines the sum of that and the upsampled coarser result — top-down from 1/32 to 1/4.
//! The RGPU is FGSTP's FSP (`Fsp::rgpu`) plus, in the video model, a difference-aware temporal
//! operation across the T frames of each clip. Two ×2 bilinear upsamplings with a conv block
//! between them give one logit map at 4 × the medium scale's 1/4 map (the input size when it is
//! a multiple of 4).
//!
//! VarStore names are the reference's state-dict keys (`encoder.block3.0.attn.kv.weight`,
//! `siu_5.conv_lms.conv.weight`, `hmu_2.fuse.0.temperal_proj_kv.weight`, `normalizer.mean`, …),
//! so the authors' checkpoints load as they are ([`load_checkpoint`]).

pub mod macs;
pub mod mhsiu;
pub mod pyramid;
pub mod simple_aspp;

use anyhow::{bail, ensure, Result};
use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Tensor};

use crate::checkpoint::{
    key_layout, load_into, plan_load, LoadMode, LoadOptions, LoadReport, StateDict,
};
use crate::config::{Config, ModelKind};
use crate::nn::fsp::Fsp;
use crate::nn::layers::{conv2d, interpolate_bilinear, ConvBnRelu, ConvInit, ConvSpec};
use crate::nn::pvt_v2::{PvtV2, PvtV2Config, PvtV2Variant};

pub use super::clips::{plan_clips, ClipPlan};
pub use pyramid::{zoom_sizes, ZOOM_SCALES};

use mhsiu::Mhsiu;
use simple_aspp::SimpleAspp;

pub use crate::config::ZOOMNEXT_CLIP_FRAMES as VIDEO_CLIP_FRAMES;
/// Width of every decoder map. The reference's constructor takes it as `mid_dim` but hard-codes 64
/// where it builds `tra_1` and the predictor, so 64 is the only width that runs.
pub const MID_DIM: i64 = 64;
/// MHSIU heads (the reference's `siu_groups` default).
pub const DEFAULT_SIU_GROUPS: i64 = 4;
/// RGPU groups (the reference's `hmu_groups` default).
pub const DEFAULT_HMU_GROUPS: i64 = 6;

/// The reference's `PixelNormalizer` defaults (ImageNet), used until a checkpoint's buffers are
/// loaded.
const DEFAULT_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const DEFAULT_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// ZoomNeXt hyper-parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoomNextConfig {
    /// The PVTv2 encoder (the authors release b2–b5; b5 in the paper).
    pub encoder: PvtV2Config,
    /// MHSIU heads (reference: 4); must divide 64.
    pub siu_groups: i64,
    /// RGPU groups (reference: 6), at least 2.
    pub hmu_groups: i64,
    /// Frames per clip: 1 for the image model, 5 for the video model.
    pub frames: i64,
    /// `model.fused`: the encoder's attention through libtorch's fused
    /// `scaled_dot_product_attention` (one kernel, no attention matrix in memory); outputs agree
    /// with the reference's order to float rounding. False keeps the reference's order exactly.
    pub fused: bool,
}

impl ZoomNextConfig {
    /// The image model with the reference's defaults.
    pub fn image(backbone: PvtV2Variant) -> Self {
        Self {
            encoder: backbone.config(),
            siu_groups: DEFAULT_SIU_GROUPS,
            hmu_groups: DEFAULT_HMU_GROUPS,
            frames: 1,
            fused: false,
        }
    }

    /// The video model (T = 5) with the reference's defaults.
    pub fn video(backbone: PvtV2Variant) -> Self {
        Self {
            frames: VIDEO_CLIP_FRAMES,
            ..Self::image(backbone)
        }
    }

    /// From a run's `[model]` table: `kind` "zoomnext" or "zoomnext-video", `backbone`, and
    /// `fsp_groups` as the RGPU group count (the RGPU is the FSP module), `fused`.
    pub fn from_model_config(cfg: &Config) -> Result<Self> {
        let base = match cfg.kind {
            ModelKind::Zoomnext => Self::image(cfg.backbone),
            ModelKind::ZoomnextVideo => Self::video(cfg.backbone),
            other => bail!(
                "ZoomNeXt needs model.kind = \"zoomnext\" or \"zoomnext-video\", got {other:?}"
            ),
        };
        Ok(Self {
            hmu_groups: cfg.fsp_groups,
            fused: cfg.fused,
            ..base
        })
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.siu_groups > 0 && MID_DIM % self.siu_groups == 0,
            "ZoomNeXt: siu_groups = {} must divide {MID_DIM} (reference: 4)",
            self.siu_groups
        );
        ensure!(
            self.hmu_groups >= 2,
            "ZoomNeXt: the RGPU group count (model.fsp_groups) = {} must be at least 2 (reference: 6)",
            self.hmu_groups
        );
        ensure!(
            self.frames >= 1,
            "ZoomNeXt: frames per clip = {} must be at least 1",
            self.frames
        );
        Ok(())
    }
}

/// `(x - mean) / std` with per-channel mean/std that are buffers of the checkpoint (not trained,
/// not constants): `normalizer.mean`, `normalizer.std`, each [3, 1, 1]. Inputs are RGB in [0, 1].
#[derive(Debug)]
struct PixelNormalizer {
    mean: Tensor,
    std: Tensor,
}

impl PixelNormalizer {
    fn new(vs: &nn::Path) -> Self {
        let buffer = |name: &str, values: [f32; 3]| {
            let mut t = vs.zeros_no_train(name, &[3, 1, 1]);
            let init = Tensor::from_slice(&values)
                .view([3, 1, 1])
                .to_device(t.device());
            tch::no_grad(|| t.copy_(&init));
            t
        };
        Self {
            mean: buffer("mean", DEFAULT_MEAN),
            std: buffer("std", DEFAULT_STD),
        }
    }

    fn forward(&self, xs: &Tensor) -> Tensor {
        (xs - &self.mean) / &self.std
    }
}

/// Per-frame features: the four MHSIU outputs (1/32, 1/16, 1/8, 1/4 of the medium scale), each
/// [N, 64, h, w]. They depend on the frame alone, so overlapping clips can share them — equal to
/// float rounding only when computed in a batch of other frames (libtorch's kernels sum in a
/// batch-size dependent order), which moves the logits by ~3e-5.
pub type ScaleFeatures = [Tensor; 4];

#[derive(Debug)]
pub struct ZoomNext {
    normalizer: PixelNormalizer,
    encoder: PvtV2,
    /// `tra_5`.
    aspp: SimpleAspp,
    /// `tra_4`, `tra_3`, `tra_2`: 3×3 conv blocks on the 1/16, 1/8, 1/4 maps.
    tra: [ConvBnRelu; 3],
    /// `siu_5` … `siu_2`.
    siu: [Mhsiu; 4],
    /// `hmu_5` … `hmu_2`.
    hmu: [Fsp; 4],
    /// `tra_1.1` (after a ×2 upsampling).
    tra_1: ConvBnRelu,
    /// `predictor.1` (after another ×2 upsampling) and `predictor.2`.
    predictor: ConvBnRelu,
    predictor_out: nn::Conv2D,
    cfg: ZoomNextConfig,
}

impl ZoomNext {
    /// Builds the model under `vs` (normally the VarStore root, so that variable names are the
    /// reference's state-dict keys), initialised as the reference initialises it (PyTorch's defaults,
    /// PVTv2's own init in the encoder, ImageNet mean/std in the normaliser).
    pub fn new(vs: &nn::Path, cfg: &ZoomNextConfig) -> Result<Self> {
        cfg.validate()?;
        let c = MID_DIM;
        let [c4, c8, c16, c32] = cfg.encoder.embed_dims;
        let conv3 = ConvSpec::square(3).padding(1);
        let siu = |level: usize| Mhsiu::new(&(vs / format!("siu_{level}")), c, cfg.siu_groups);
        let hmu = |level: usize| {
            Fsp::rgpu(
                &(vs / format!("hmu_{level}")),
                c,
                cfg.hmu_groups,
                cfg.frames,
            )
        };
        let tra = |level: usize, c_in| {
            ConvBnRelu::new(&(vs / format!("tra_{level}")), c_in, c, conv3, true)
        };
        Ok(Self {
            normalizer: PixelNormalizer::new(&(vs / "normalizer")),
            encoder: {
                let mut encoder = PvtV2::new(&(vs / "encoder"), &cfg.encoder);
                encoder.set_fused_attention(cfg.fused);
                encoder
            },
            aspp: SimpleAspp::new(&(vs / "tra_5"), c32, c),
            tra: [tra(4, c16), tra(3, c8), tra(2, c4)],
            siu: [siu(5), siu(4), siu(3), siu(2)],
            hmu: [hmu(5), hmu(4), hmu(3), hmu(2)],
            tra_1: ConvBnRelu::new(&(vs / "tra_1" / 1), c, c, conv3, true),
            predictor: ConvBnRelu::new(&(vs / "predictor" / 1), c, 32, conv3, true),
            predictor_out: conv2d(
                &(vs / "predictor" / 2),
                32,
                1,
                ConvSpec::square(1),
                ConvInit::TorchDefault,
            ),
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &ZoomNextConfig {
        &self.cfg
    }

    /// Device and dtype of the parameters (they follow `VarStore::set_device`/`set_kind`).
    fn device_kind(&self) -> (Device, Kind) {
        (self.predictor_out.ws.device(), self.predictor_out.ws.kind())
    }

    /// Checks the three scales (small, medium, large): each [N, 3, h, w] RGB in [0, 1], one N (a
    /// multiple of the clip length if `whole_clips`), large enough for the encoder, on the model's
    /// device and dtype. Returns N.
    fn check_scales(&self, scales: [&Tensor; 3], whole_clips: bool, bn_train: bool) -> Result<i64> {
        let (device, kind) = self.device_kind();
        let names = ["small (0.5×)", "medium (1×)", "large (1.5×)"];
        let n = scales[0].size().first().copied().unwrap_or(0);
        for (name, t) in names.iter().zip(scales) {
            let size = t.size();
            ensure!(
                size.len() == 4 && size[1] == 3 && size[2] > 0 && size[3] > 0,
                "ZoomNeXt: the {name} scale has shape {size:?}; expected [batch, 3, height, width] \
                 (RGB in [0, 1], see fgstp_data::opencv::zoom_pyramid)"
            );
            ensure!(
                size[0] == n,
                "ZoomNeXt: the {name} scale has batch {} but the small scale has {n}; the three scales \
                 are views of the same frames",
                size[0]
            );
            for (side, what) in [(size[2], "height"), (size[3], "width")] {
                if let Some((stage, map, sr)) = self.cfg.encoder.too_small_for(side) {
                    bail!(
                        "ZoomNeXt: the {name} scale's {what} is {side} px; its 1/{} encoder map ({map} px) \
                         is smaller than the PVTv2 attention's spatial reduction ({sr} px) — every scale \
                         needs at least {} px, i.e. a base size of at least {} px",
                        4 << stage,
                        self.cfg.encoder.min_input_side(),
                        min_base_size(&self.cfg.encoder)
                    );
                }
            }
            ensure!(
                t.device() == device && t.kind() == kind,
                "ZoomNeXt: the {name} scale is {:?} on {:?} but the model is {kind:?} on {device:?}",
                t.kind(),
                t.device()
            );
        }
        let t = self.cfg.frames;
        ensure!(
            n > 0 && (!whole_clips || n % t == 0),
            "ZoomNeXt video model: batch {n} is not a whole number of {t}-frame clips (frames of a clip \
             go next to each other, clip after clip)"
        );
        ensure!(
            !bn_train || n >= 2,
            "ZoomNeXt: training-mode BatchNorm needs a batch of at least 2 (SimpleASPP's global branch is \
             1×1 per frame)"
        );
        Ok(n)
    }

    /// The per-frame part of the network: scales (small, medium, large), each [N, 3, h, w] in [0, 1],
    /// any N frames → the MHSIU outputs of the four levels.
    pub fn scale_features(&self, scales: [&Tensor; 3], bn_train: bool) -> Result<ScaleFeatures> {
        self.check_scales(scales, false, bn_train)?;
        Ok(self.per_frame(scales, bn_train))
    }

    fn per_frame(&self, scales: [&Tensor; 3], bn_train: bool) -> ScaleFeatures {
        let [small, medium, large] =
            scales.map(|x| self.encoder.forward(&self.normalizer.forward(x)));
        // Level 5 (1/32) goes through SimpleASPP, levels 4..2 through a 3×3 conv block.
        let transit = |level: usize, x: &Tensor| match level {
            0 => self.aspp.forward_t(x, bn_train),
            _ => self.tra[level - 1].forward_t(x, bn_train),
        };
        std::array::from_fn(|level| {
            let stage = 3 - level; // encoder maps are ordered 1/4 … 1/32
            let [l, m, s] = [&large, &medium, &small].map(|maps| transit(level, &maps[stage]));
            self.siu[level].forward_t(&l, &m, &s, bn_train)
        })
    }

    /// The clip part: per-frame features (N a multiple of the clip length) → logits [N, 1, H, W].
    pub fn decode(&self, features: &ScaleFeatures, bn_train: bool) -> Result<Tensor> {
        let n = features[0].size()[0];
        ensure!(
            n % self.cfg.frames == 0 && features.iter().all(|f| f.size()[0] == n),
            "ZoomNeXt: features of {n} frames are not whole {}-frame clips",
            self.cfg.frames
        );
        let mut x = self.hmu[0].forward_t(&features[0], bn_train);
        for (lms, hmu) in features.iter().zip(&self.hmu).skip(1) {
            let (_, _, h, w) = lms.size4()?;
            let coarser = x.upsample_bilinear2d([h, w], false, None, None);
            x = hmu.forward_t(&(lms + coarser), bn_train);
        }
        let x = self
            .tra_1
            .forward_t(&interpolate_bilinear(&x, 2.0, false), bn_train);
        let x = self
            .predictor
            .forward_t(&interpolate_bilinear(&x, 2.0, false), bn_train);
        Ok(self.predictor_out.forward(&x))
    }

    /// Scales (small, medium, large), each [N, 3, h, w] RGB in [0, 1] (N = clips × frames per clip,
    /// frames of a clip adjacent) → logits [N, 1, H, W] (H, W: 4 × the medium scale's 1/4 map).
    /// `bn_train`: BatchNorms on batch statistics (the reference's `model.train()`; its encoder has
    /// no BatchNorm).
    pub fn forward_t(&self, scales: [&Tensor; 3], bn_train: bool) -> Result<Tensor> {
        self.check_scales(scales, true, bn_train)?;
        self.decode(&self.per_frame(scales, bn_train), bn_train)
    }
}

/// The smallest base size (the 1× scale's side) whose 0.5× scale the encoder still takes: 58 px
/// for the released PVTv2s (the reference trains and tests at 384).
pub fn min_base_size(encoder: &PvtV2Config) -> i64 {
    2 * encoder.min_input_side()
}

/// Whether a state-dict key belongs to an RGPU's temporal branch (`hmu_*.fuse.0.temperal_proj*`),
/// whose shapes depend on the clip length.
pub fn is_temporal_key(key: &str) -> bool {
    key.contains(".temperal_proj")
}

/// What [`load_checkpoint`] did.
#[derive(Debug, Clone, Default)]
pub struct ZoomNextLoadReport {
    pub report: LoadReport,
    /// Temporal-branch tensors of the file made for another clip length (an image checkpoint, T = 1,
    /// into the video model, or the other way round): not loaded, exactly as the authors'
    /// `load_weight(..., skip_unmatched_shape=True)` skips them when main_for_video.py fine-tunes
    /// from an image checkpoint. The model keeps its own (initial) temporal branch, whose last conv
    /// is zero: the temporal operation starts as the identity.
    pub skipped_temporal: Vec<String>,
    /// Loaded tensors the forward never uses: the temporal branch of the image model, which the
    /// authors' image checkpoints carry (and which an exported image model carries back).
    pub unused: Vec<String>,
}

impl ZoomNextLoadReport {
    pub fn summary(&self) -> String {
        let mut s = self.report.summary();
        if !self.skipped_temporal.is_empty() {
            s.push_str(&format!(
                "; {} temporal-branch tensors of another clip length not loaded (the model's temporal \
                 branch starts as the identity)",
                self.skipped_temporal.len()
            ));
        }
        if !self.unused.is_empty() {
            s.push_str(&format!(
                "; {} temporal-branch tensors loaded but unused by the image model",
                self.unused.len()
            ));
        }
        s
    }
}

/// Loads a ZoomNeXt checkpoint (a state dict of the authors' `PvtV2B*_ZoomNeXt` /
/// `videoPvtV2B5_ZoomNeXt`, `module.`-prefixed or nested as [`StateDict`] allows) into the model
/// built on `vs`: every other tensor must match a variable by name and shape, and every variable
/// must be filled, except temporal-branch tensors made for another clip length (see
/// [`ZoomNextLoadReport::skipped_temporal`]).
pub fn load_checkpoint(
    vs: &mut VarStore,
    sd: &StateDict,
    model: &ZoomNext,
) -> Result<ZoomNextLoadReport> {
    let variables = vs.variables();
    let skipped_temporal: Vec<String> = sd
        .iter()
        .filter(|(key, t)| {
            is_temporal_key(key) && variables.get(*key).is_some_and(|v| v.size() != t.size())
        })
        .map(|(key, _)| key.to_string())
        .collect();
    let opts = LoadOptions {
        mode: if skipped_temporal.is_empty() {
            LoadMode::Strict
        } else {
            LoadMode::Partial
        },
        drop_prefixes: skipped_temporal.clone(),
        ..LoadOptions::default()
    };
    let plan = plan_load(vs, sd, &opts)?;
    let missing_other: Vec<&String> = plan
        .report
        .missing
        .iter()
        .filter(|name| !skipped_temporal.contains(name))
        .collect();
    ensure!(
        plan.report.skipped.is_empty() && missing_other.is_empty(),
        "not a checkpoint of this ZoomNeXt model ({}): {} file tensors are not in the model (e.g. {:?}), \
         {} model variables are not in the file (e.g. {:?}); `fgstp weights inspect` names the model a \
         file fits",
        describe(&model.cfg),
        plan.report.skipped.len(),
        plan.report.skipped.first(),
        missing_other.len(),
        missing_other.first()
    );
    let report = load_into(vs, sd, &opts)?;
    let unused = if model.cfg.frames == 1 {
        report
            .loaded
            .iter()
            .filter(|k| is_temporal_key(k))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    Ok(ZoomNextLoadReport {
        report,
        skipped_temporal,
        unused,
    })
}

/// An official PVTv2 ImageNet checkpoint (`pvt_v2_b*.pth`, no prefix, `head.*`) into the encoder,
/// as the reference's `pretrained=True` does: keys prefixed with `encoder.`, the head dropped, the
/// rest of the model left as initialised.
pub fn pvt_v2_imagenet_options() -> LoadOptions {
    LoadOptions {
        mode: LoadMode::Partial,
        prefix_map: vec![(String::new(), key_layout::ZOOMNEXT_PVT_PREFIX.to_string())],
        drop_prefixes: vec!["head.".to_string()],
    }
}

fn describe(cfg: &ZoomNextConfig) -> String {
    if cfg.frames == 1 {
        "image model".to_string()
    } else {
        format!("video model, {} frames per clip", cfg.frames)
    }
}
