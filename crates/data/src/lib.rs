//! Gas-leak video datasets streamed as frame triplets, the reference's augmentations, and a
//! synthetic gas-leak video generator.
//!
//! # Layout
//! `ROOT/<split>/<scene>/images/<frame>.{jpg,png,tif,tiff}` and
//! `ROOT/<split>/<scene>/masks/<frame>.png` (same stem; any subset of the frames), scenes and
//! frames in natural order ([`natural_order`]). [`Split::open`] lists and checks a split; every
//! problem is a [`DataError`] naming the file and what to do.
//!
//! A scene may instead be one video file, `<scene>/video.mp4` (or `.avi`, `.seq`: the format
//! is read from the bytes) with masks `masks/frame_00001.png` … named after the 1-based frame
//! number ([`video_scene`]). Its frames are decoded on demand in bounded memory, and
//! everything downstream ([`Scene::load_frame`], the streams) sees no difference.
//!
//! # Samples
//! A sample is a frame and two neighbours ([`sample`]): training follows the reference
//! (frames t, t+1, t+2, annotated t only); evaluation/inference gives every frame a sample
//! (`protocol = "full"`) or exactly the reference's set (`protocol = "reference"`).
//!
//! Other models (ZoomNeXt's zoom scales, clips, the long-term SLT-Net's prior channel) say what
//! they read with an [`InputSpec`] (`TrainLoader::open_with`, `EvalLoader::open_with`).
//!
//! # Streams
//! ```no_run
//! use fgstp_data::{DataConfig, EvalLoader, TrainLoader, TrainSampling};
//! # fn main() -> Result<(), fgstp_data::DataError> {
//! let cfg = DataConfig::default();
//! let train = TrainLoader::open(&cfg, TrainSampling::default())?;
//! for epoch in 0..2 {
//!     for batch in train.epoch(epoch) {
//!         let batch = batch?;
//!         // batch.frames: 3 tensors [B, 3, S, S] f32 (t, t+1, t+2), ImageNet-normalised
//!         // batch.mask:   [B, 1, S, S] f32 in [0, 1]
//!         // batch.samples: scene, frame names/indices, supervised, original size
//!     }
//! }
//! let val = EvalLoader::open(&cfg, &cfg.val_split)?;
//! for batch in val.batches() {
//!     let batch = batch?;
//!     // batch.frames: 3 tensors at the model size; batch.masks: Vec<Option<GrayImage>>,
//!     // binary (0/255) at each frame's original size, None where a frame has no mask.
//! }
//! # Ok(()) }
//! ```
//! Batches are built in parallel (`threads`) on a background producer that keeps up to
//! `prefetch` batches ready; every random draw derives from (seed, epoch, sample index), so a
//! seed gives the same batches whatever the thread count ([`loader`]).
//!
//! # Pixels
//! 8-bit frames are read as PIL's `convert("RGB")`; 16-bit frames are stretched to 8 bits per
//! video (default), per frame or over a fixed range ([`SixteenBit`]); masks are binarised at
//! half their maximum ([`decode`]). Training transforms: [`augment`].
//!
//! # Synthetic data
//! [`synth`] writes infrared-looking gas-leak videos in this layout (`fgstp synth`; with
//! `--video` also as MP4s, [`synth::video`]); [`synth::prepare`] makes one on first use as a
//! run's dataset.
//!
//! # Video files
//! [`video`] reads MP4 (H.264), AVI and FLIR SEQ files and writes H.264 MP4; [`extract`]
//! writes a video's frames as a scene's `images/` (`fgstp frames`).

pub mod albumentations;
pub mod augment;
pub mod config;
pub mod dataset;
pub mod decode;
pub mod error;
pub mod extract;
pub mod inputs;
pub mod loader;
pub mod natural_order;
pub mod opencv;
pub mod prior;
pub mod sample;
pub mod synth;
pub mod video;
pub mod video_scene;

pub use config::{DataConfig, EmptyMasks, ImageSize, Protocol, SixteenBit, TrainSampling};
pub use dataset::{Frame, Masks, Scene, Split};
pub use error::{DataError, Result};
pub use inputs::{
    AugmentStyle, ClipStarts, InputSpec, MaskFormat, PixelFormat, ReferenceFrames, TrainSamples,
};
pub use loader::{
    Batch, Batches, EvalBatch, EvalLoader, Evaluation, Loader, SampleInfo, Shard, Starvation,
    TrainLoader, Training,
};
pub use sample::SampleRef;
pub use synth::{generate, SynthConfig, SynthReport};
