//! What a model reads, as the data crate needs to know it: which frames make a training sample,
//! how a frame's pixels become model inputs, how masks are resized, which augmentations apply
//! and which frames the reference evaluates. The data crate knows no models; the run
//! configuration derives an [`InputSpec`] from the model kind's recipe (`fgstp_train::recipes`).

/// The frames of one training sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainSamples {
    /// Frame t with t+1 and t+2, t annotated, t = 0 … n−3 (FGSTP, SLT-Net, SINet-V2).
    Triplets,
    /// Every annotated frame alone (ZoomNeXt's image model).
    Frames,
    /// Clips of `len` consecutive frames, all annotated; where they start is `starts`.
    Clips { len: usize, starts: ClipStarts },
}

/// Where training clips start in a video's run of annotated frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipStarts {
    /// Every frame that has `len − 1` annotated frames after it (the long-term SLT-Net's
    /// `VideoFinetuneDataset`).
    EveryFrame,
    /// The stride applied twice, as ZoomNeXt's `VideoTrainDataset` does: with stride s = len − 1 it loops
    /// `clip_idx in range(0, L, s)` and starts each clip at `clip_idx · s` — the stride applied
    /// twice —, a start past the end clamped to L − len. So clips start at 0, s², 2s², … and
    /// the video's last clip repeats (⌈L / s⌉ clips in all).
    StrideTwice,
}

/// How a frame's pixels become model inputs (after augmentation, at the original size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// Pillow's bilinear resize to `train_size`, then ImageNet mean/std: one `[3, H, W]` input
    /// (FGSTP, SLT-Net's short-term model, SINet-V2).
    ImageNet,
    /// Pillow's bilinear resize to `train_size`, then `/ 255` (torchvision's `ToTensor` only):
    /// one `[3, H, W]` input, `[4, H, W]` with the prior (the long-term SLT-Net).
    UnitRange,
    /// OpenCV's INTER_LINEAR of the uint8 frame to each of three sizes (height, width), then
    /// `/ 255`: three inputs `[3, h_i, w_i]` (ZoomNeXt's zoom scales, small to large).
    ZoomPyramid { sizes: [(u32, u32); 3] },
}

impl PixelFormat {
    /// Model inputs per frame.
    pub fn inputs(self) -> usize {
        match self {
            Self::ZoomPyramid { .. } => 3,
            Self::ImageNet | Self::UnitRange => 1,
        }
    }
}

/// How a training mask reaches the loss's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskFormat {
    /// The binarised 0/255 mask through Pillow's bilinear resize, `/ 255` (soft edges; the
    /// reference's `ToTensor` of a resized PIL mask).
    Pillow,
    /// ZoomNeXt's: `mask > 0` as float {0, 1}, OpenCV's float INTER_LINEAR resize (soft edges).
    OpenCvLinear,
}

/// The training augmentations (when `data.augment` is on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AugmentStyle {
    /// The FGSTP/SLT-Net reference's PIL set ([`crate::augment`]): shared flip and rotation,
    /// per-frame colour enhancement, salt-and-pepper on the mask. Clips get the shared flip and
    /// rotation only (the long-term SLT-Net's own, disabled, `cv_random_flip`/`randomRotation`).
    Reference,
    /// ZoomNeXt's albumentations set, image model ([`crate::albumentations`]).
    AlbumentationsImage,
    /// ZoomNeXt's albumentations set, video model: per clip and per frame.
    AlbumentationsClip,
}

/// The frames `protocol = "reference"` evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceFrames {
    /// FGSTP's and SLT-Net's `test.py`: frames 0 … n−3 (the last two have no (t+1, t+2)).
    DropLastTwo,
    /// ZoomNeXt's test datasets: the frames that have a mask.
    Annotated,
}

/// Everything the data streams need to know about the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSpec {
    pub train: TrainSamples,
    pub pixels: PixelFormat,
    pub masks: MaskFormat,
    pub augment: AugmentStyle,
    pub reference_frames: ReferenceFrames,
    /// A fourth channel after RGB: the short-term SLT-Net's prediction of the frame, read from
    /// `data.prior_dir` ([`crate::prior`]) and treated like a mask (geometry, Pillow resize, / 255).
    pub prior: bool,
}

impl Default for InputSpec {
    /// FGSTP's.
    fn default() -> Self {
        Self {
            train: TrainSamples::Triplets,
            pixels: PixelFormat::ImageNet,
            masks: MaskFormat::Pillow,
            augment: AugmentStyle::Reference,
            reference_frames: ReferenceFrames::DropLastTwo,
            prior: false,
        }
    }
}

impl InputSpec {
    /// Frames of one training sample.
    pub fn frames_per_sample(&self) -> usize {
        match self.train {
            TrainSamples::Triplets => 3,
            TrainSamples::Frames => 1,
            TrainSamples::Clips { len, .. } => len,
        }
    }
}
