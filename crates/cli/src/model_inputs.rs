//! What each model kind reads from the data, as the data crate's [`InputSpec`]: the model crate
//! and the data crate do not know each other, so the mapping lives here.
//!
//! | kind | training sample | pixels | masks | augmentation | `protocol = "reference"` |
//! | --- | --- | --- | --- | --- | --- |
//! | fgstp, slt-net, sinet-v2 | triplet (t, t+1, t+2) | Pillow resize, ImageNet mean/std | Pillow resize | FGSTP's PIL set | frames 0 … n−3 |
//! | zoomnext | annotated frame | 3 zoom scales, OpenCV resize of the uint8 frame, / 255 | > 0, OpenCV float resize | albumentations (image) | annotated frames |
//! | zoomnext-video | clip of 5 (ZoomNeXt's starts) | as zoomnext | as zoomnext | albumentations (video) | annotated frames |
//! | slt-net-long | clip of `train.clip_frames` (every start) | Pillow resize to 256×448, / 255, + prior | Pillow resize | shared flip/rotation (off in its recipe) | frames 0 … n−3 |

use fgstp_data::{
    AugmentStyle, ClipStarts, InputSpec, MaskFormat, PixelFormat, ReferenceFrames, TrainSamples,
};
use fgstp_model::models::zoomnext::{zoom_sizes, VIDEO_CLIP_FRAMES};
use fgstp_model::ModelKind;

use crate::run_config::RunConfig;

/// The data a run's model reads.
pub fn input_spec(cfg: &RunConfig) -> InputSpec {
    let size = cfg.data.train_size;
    let zoom = || {
        let sizes = zoom_sizes(size.height as usize, size.width as usize)
            .map(|(h, w)| (h as u32, w as u32));
        PixelFormat::ZoomPyramid { sizes }
    };
    match cfg.model.kind {
        ModelKind::Fgstp | ModelKind::SltNet | ModelKind::SinetV2 => InputSpec::default(),
        ModelKind::Zoomnext => InputSpec {
            train: TrainSamples::Frames,
            pixels: zoom(),
            masks: MaskFormat::OpenCvLinear,
            augment: AugmentStyle::ZoomNextImage,
            reference_frames: ReferenceFrames::Annotated,
            prior: false,
        },
        ModelKind::ZoomnextVideo => InputSpec {
            train: TrainSamples::Clips {
                len: VIDEO_CLIP_FRAMES as usize,
                starts: ClipStarts::ZoomNextReference,
            },
            pixels: zoom(),
            masks: MaskFormat::OpenCvLinear,
            augment: AugmentStyle::ZoomNextVideo,
            reference_frames: ReferenceFrames::Annotated,
            prior: false,
        },
        ModelKind::SltNetLong => InputSpec {
            train: TrainSamples::Clips {
                len: cfg.train.clip_frames,
                starts: ClipStarts::EveryFrame,
            },
            pixels: PixelFormat::UnitRange,
            masks: MaskFormat::Pillow,
            augment: AugmentStyle::Reference,
            reference_frames: ReferenceFrames::DropLastTwo,
            prior: true,
        },
    }
}

/// Frames per training sample the model's forward sees as a clip dimension: the long-term
/// SLT-Net's training batches `[B·T, 4, H, W]` become `[B, T, 4, H, W]`.
pub fn training_clip(cfg: &RunConfig) -> Option<usize> {
    (cfg.model.kind == ModelKind::SltNetLong).then_some(cfg.train.clip_frames)
}
