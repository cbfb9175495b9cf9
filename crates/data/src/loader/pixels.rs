//! The pixels of one frame as the model reads them: decoding, the per-kind augmentation draws
//! ([`AugmentStyle`]) and the per-kind pixel pipelines ([`PixelFormat`], [`MaskFormat`]), each
//! frame or mask as channel-major `f32` blocks.

use crate::albumentations::FrameDraw;
use crate::augment::{
    mask_into, normalise_into, resize_mask_to, resize_rgb_to, unit_range_into, AugmentDraw,
};
use crate::config::{DataConfig, EmptyMasks};
use crate::dataset::Split;
use crate::decode::{load_mask, load_mask_nonzero};
use crate::error::{DataError, Result};
use crate::inputs::{AugmentStyle, InputSpec, MaskFormat, PixelFormat, TrainSamples};
use crate::opencv::{resize_linear_f32, zoom_pyramid};
use crate::prior::load_prior;
use crate::sample::{rng_for, SampleRef};
use rand::RngExt;

/// Shared state of a loader.
pub(super) struct Source {
    pub(super) split: Split,
    pub(super) samples: Vec<SampleRef>,
    pub(super) cfg: DataConfig,
    pub(super) spec: InputSpec,
    pub(super) table: [[f32; 256]; 3],
    pub(super) empty_masks: EmptyMasks,
}

/// The random choices of one training sample.
#[derive(Debug, Clone)]
pub(super) enum SampleDraw {
    /// FGSTP's (also for the identity).
    Reference(AugmentDraw),
    /// ZoomNeXt's, one per frame read.
    Albumentations(Vec<FrameDraw>),
}

/// How one frame is augmented.
#[derive(Clone, Copy)]
pub(super) enum FrameAugment<'a> {
    None,
    /// FGSTP's draw, frame slot `slot` (0 = t), with colour and mask salt-and-pepper.
    Reference(&'a AugmentDraw, usize),
    /// FGSTP's shared flip and rotation only (clips).
    Geometry(&'a AugmentDraw),
    Albumentations(&'a FrameDraw),
}

impl SampleDraw {
    pub(super) fn for_frame(&self, spec: &InputSpec, f: usize) -> FrameAugment<'_> {
        match self {
            Self::Reference(draw) => match spec.train {
                TrainSamples::Clips { .. } => FrameAugment::Geometry(draw),
                _ => FrameAugment::Reference(draw, f.min(2)),
            },
            Self::Albumentations(draws) => draws
                .get(f)
                .map_or(FrameAugment::None, FrameAugment::Albumentations),
        }
    }
}

impl Source {
    /// The model inputs of frame `frame` of scene `scene` (see [`PixelFormat`]), each a
    /// channel-major block.
    pub(super) fn frame_inputs(
        &self,
        scene: usize,
        frame: usize,
        aug: FrameAugment,
    ) -> Result<Vec<Vec<f32>>> {
        let scene_ref = &self.split.scenes[scene];
        let img = scene_ref.load_frame(frame, self.cfg.sixteen_bit)?;
        let img = match aug {
            FrameAugment::None => img,
            FrameAugment::Reference(draw, slot) => draw.frame(img, slot),
            FrameAugment::Geometry(draw) => draw.geometry_rgb(img),
            FrameAugment::Albumentations(draw) => draw.frame(img),
        };
        let size = self.cfg.train_size;
        let plane = size.area();
        Ok(match self.spec.pixels {
            PixelFormat::ImageNet => {
                let mut out = vec![0f32; 3 * plane];
                normalise_into(&resize_rgb_to(&img, size), &self.table, &mut out);
                vec![out]
            }
            PixelFormat::UnitRange => {
                let channels = if self.spec.prior { 4 } else { 3 };
                let mut out = vec![0f32; channels * plane];
                unit_range_into(&resize_rgb_to(&img, size), &mut out[..3 * plane]);
                if self.spec.prior {
                    let dir = self.cfg.prior_dir.as_deref().ok_or(DataError::NoPriorDir)?;
                    let prior = load_prior(dir, &self.split, scene_ref, frame)?;
                    let prior = match aug {
                        FrameAugment::Reference(draw, _) | FrameAugment::Geometry(draw) => {
                            draw.geometry_mask(prior)
                        }
                        FrameAugment::Albumentations(draw) => draw.mask(prior),
                        FrameAugment::None => prior,
                    };
                    mask_into(&resize_mask_to(&prior, size), &mut out[3 * plane..]);
                }
                vec![out]
            }
            PixelFormat::ZoomPyramid { sizes } => zoom_pyramid(&img, sizes)?.to_vec(),
        })
    }

    /// The training mask of frame `frame`, resized to the input size (`[1, H, W]`).
    pub(super) fn frame_mask(
        &self,
        scene: usize,
        frame: usize,
        aug: FrameAugment,
    ) -> Result<Vec<f32>> {
        let scene_ref = &self.split.scenes[scene];
        // Training samples only read annotated frames.
        let path = scene_ref.frames[frame]
            .mask
            .as_deref()
            .expect("training samples are annotated");
        let size = self.cfg.train_size;
        match self.spec.masks {
            MaskFormat::Pillow => {
                let mask = load_mask(path)?;
                let leak_free = mask.iter().all(|&v| v == 0);
                let mask = match aug {
                    FrameAugment::Reference(draw, _)
                        if self.empty_masks == EmptyMasks::LeakFree && leak_free =>
                    {
                        draw.geometry_mask(mask)
                    }
                    FrameAugment::Reference(draw, _) => draw.mask(mask),
                    FrameAugment::Geometry(draw) => draw.geometry_mask(mask),
                    FrameAugment::Albumentations(draw) => draw.mask(mask),
                    FrameAugment::None => mask,
                };
                let mut out = vec![0f32; size.area()];
                mask_into(&resize_mask_to(&mask, size), &mut out);
                Ok(out)
            }
            MaskFormat::OpenCvLinear => {
                let mask = load_mask_nonzero(path)?;
                let mask = match aug {
                    FrameAugment::Albumentations(draw) => draw.mask(mask),
                    FrameAugment::Reference(draw, _) | FrameAugment::Geometry(draw) => {
                        draw.geometry_mask(mask)
                    }
                    FrameAugment::None => mask,
                };
                let (w, h) = mask.dimensions();
                let values: Vec<f32> = mask.iter().map(|&v| f32::from(v) / 255.0).collect();
                resize_linear_f32(
                    &values,
                    (h as usize, w as usize),
                    (size.height as usize, size.width as usize),
                )
            }
        }
    }

    /// Shapes `[C, h, w]` of the model inputs of one frame.
    pub(super) fn input_shapes(&self) -> Vec<[i64; 3]> {
        let (h, w) = self.cfg.train_size.hw();
        match self.spec.pixels {
            PixelFormat::ImageNet => vec![[3, h, w]],
            PixelFormat::UnitRange => vec![[if self.spec.prior { 4 } else { 3 }, h, w]],
            PixelFormat::ZoomPyramid { sizes } => sizes
                .iter()
                .map(|&(h, w)| [3, i64::from(h), i64::from(w)])
                .collect(),
        }
    }

    /// The draw of training sample `index` in `epoch` (the identity without `augment`).
    pub(super) fn draw(&self, seed: u64, epoch: u64, index: usize) -> SampleDraw {
        if !self.cfg.augment {
            return SampleDraw::Reference(AugmentDraw::none());
        }
        let mut rng = rng_for(seed, epoch, index as u64);
        match self.spec.augment {
            AugmentStyle::Reference => {
                let mut draw = AugmentDraw::draw(&mut rng);
                // After the reference's draws, so that they stay the reference's.
                if self.cfg.invert_polarity > 0.0 {
                    draw.invert = rng.random_bool(self.cfg.invert_polarity);
                }
                if self.cfg.clip_enhance {
                    draw.enhance = [draw.enhance[0]; 3];
                }
                SampleDraw::Reference(draw)
            }
            AugmentStyle::AlbumentationsImage => SampleDraw::Albumentations(
                (0..self.spec.frames_per_sample())
                    .map(|_| FrameDraw::image(&mut rng))
                    .collect(),
            ),
            AugmentStyle::AlbumentationsClip => {
                SampleDraw::Albumentations(FrameDraw::clip(&mut rng, self.spec.frames_per_sample()))
            }
        }
    }
}
