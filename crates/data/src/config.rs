//! The `[data]` part of a run configuration.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// Where the data is and how it is streamed. Every field has a default matching the reference
/// (`train.py`/`test.py` of GeekEagle/FGSTP) unless its doc says otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Dataset root holding one folder per split (reference: `./datasets/GasVid`).
    pub root: PathBuf,
    /// Split folder names under `root`.
    pub train_split: String,
    pub val_split: String,
    pub test_split: String,
    /// Model input size: a side (square, reference: 352) or `[height, width]` (the long-term
    /// SLT-Net's fixed `[256, 448]`). For ZoomNeXt the base (1×) zoom scale.
    pub train_size: ImageSize,
    /// Evaluation/inference batch size (reference `test.py`: 16).
    pub eval_batch_size: usize,
    /// Decode/augment threads; 0 = all cores. Batches do not depend on it.
    pub threads: usize,
    /// Batches prepared ahead of the consumer (bounded queue depth, at least 1).
    pub prefetch: usize,
    /// Which frames get an evaluation/inference sample (training: `train_protocol`).
    pub protocol: Protocol,
    /// Which frames get a training sample, for the models sampled as FGSTP's reference samples
    /// (FGSTP, SINet-V2, short-term SLT-Net; ZoomNeXt and the long-term SLT-Net build their own
    /// clips): `reference` (default), frames 0..n-3 with (t+1, t+2), so a video's last two
    /// frames are never learned and the backward neighbours that `protocol = "full"` gives them
    /// at evaluation are never seen in training; `full`: every annotated frame, with the
    /// neighbours of `protocol = "full"`.
    pub train_protocol: Protocol,
    /// How 16-bit frames (thermal cameras) become 8-bit.
    pub sixteen_bit: SixteenBit,
    /// Random flip, rotation, colour enhancement and mask salt-and-pepper for training.
    pub augment: bool,
    /// With `augment`, the share of training samples whose frames are inverted (255 − v, drawn
    /// per sample after the reference's draws, which stay as they are): a plume that absorbs
    /// becomes one that emits and the other way round, so that a short training sees both
    /// polarities of gas and of every distractor alike. The reference's transforms only (FGSTP,
    /// SINet-V2, short-term SLT-Net); 0 = never (the reference).
    pub invert_polarity: f64,
    /// With `augment`, one colour enhancement (brightness, contrast, colour, sharpness) for the
    /// three frames of a sample, frame t's draw, instead of the reference's one per frame: the
    /// change from frame to frame is then the scene's own (a moving plume against still
    /// equipment), not a brightness jump of up to 3× between neighbours. The reference's
    /// transforms only (FGSTP, SINet-V2, short-term SLT-Net); `false` = the reference.
    pub clip_enhance: bool,
    /// Shuffle training samples every epoch.
    pub shuffle: bool,
    /// Leave out the last, incomplete training batch of an epoch (ZoomNeXt's loader does).
    pub drop_last: bool,
    /// The long-term SLT-Net's 4th input channel: a folder of the short-term model's 8-bit maps,
    /// `<prior_dir>/<scene>/<frame stem>.png` (for a single video also `<prior_dir>/<frame
    /// stem>.png`). `{split}` in the path is replaced by the split being read, so one setting
    /// serves training and evaluation, e.g. `"priors/{split}/maps"` after `fgstp infer
    /// --save-maps --output priors/<split>` of a short-term model on each split.
    pub prior_dir: Option<String>,
}

/// A model input size, written as a side (`352`, square) or as `[height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSize {
    pub height: u32,
    pub width: u32,
}

impl ImageSize {
    pub const fn square(side: u32) -> Self {
        Self {
            height: side,
            width: side,
        }
    }

    /// `(height, width)` as libtorch sizes.
    pub fn hw(self) -> (i64, i64) {
        (i64::from(self.height), i64::from(self.width))
    }

    /// Pixels of one plane.
    pub fn area(self) -> usize {
        self.height as usize * self.width as usize
    }
}

impl From<u32> for ImageSize {
    fn from(side: u32) -> Self {
        Self::square(side)
    }
}

impl PartialEq<u32> for ImageSize {
    fn eq(&self, side: &u32) -> bool {
        *self == Self::square(*side)
    }
}

impl std::fmt::Display for ImageSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}×{}", self.height, self.width)
    }
}

impl Serialize for ImageSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if self.height == self.width {
            s.serialize_u32(self.height)
        } else {
            [self.height, self.width].serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for ImageSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Side(u32),
            HeightWidth([u32; 2]),
        }
        match Written::deserialize(d) {
            Ok(Written::Side(side)) => Ok(Self::square(side)),
            Ok(Written::HeightWidth([height, width])) => Ok(Self { height, width }),
            Err(_) => Err(serde::de::Error::custom(
                "expected a side in pixels (e.g. 352) or [height, width] (e.g. [256, 448])",
            )),
        }
    }
}

/// What a training stream needs beyond [`DataConfig`]: in a run configuration these are
/// `train.batch_size` and `train.seed`, the only keys for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainSampling {
    /// Samples per batch (reference: 6).
    pub batch_size: usize,
    /// Seed of the shuffle and of every augmentation draw (reference: 2025).
    pub seed: u64,
    /// What an empty (leak-free) training mask goes through.
    pub empty_masks: EmptyMasks,
}

/// How training treats a frame whose mask is empty (a leak-free frame; `train.empty_masks`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmptyMasks {
    /// As the reference: the augmentation's salt-and-pepper sets ⌊0.0015·H·W⌋ random mask
    /// pixels (about half of them to gas), and the structure loss keeps its IoU term.
    #[default]
    Reference,
    /// Leak-free stays leak-free: no salt-and-pepper on an empty mask, and the structure loss
    /// charges the frame for the area it marks (BCE plus `Σp / (Σp + K)` in place of the IoU
    /// term; `train.false_area_scale`, `train.false_area_from_epoch`).
    LeakFree,
}

impl Default for TrainSampling {
    /// The reference's `train.py`.
    fn default() -> Self {
        TrainSampling {
            batch_size: 6,
            seed: 2025,
            empty_masks: EmptyMasks::Reference,
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            root: PathBuf::from("data/synth"),
            train_split: "train".into(),
            val_split: "val".into(),
            test_split: "test".into(),
            train_size: ImageSize::square(352),
            eval_batch_size: 16,
            threads: 0,
            prefetch: 2,
            protocol: Protocol::Full,
            train_protocol: Protocol::Reference,
            sixteen_bit: SixteenBit::PerVideo,
            augment: true,
            invert_polarity: 0.0,
            clip_enhance: false,
            shuffle: true,
            drop_last: false,
            prior_dir: None,
        }
    }
}

/// Largest side of the model input (`train_size`).
const MAX_TRAIN_SIDE: u32 = 4096;
/// Most frames per inference batch.
const MAX_EVAL_BATCH: usize = 1024;
/// Most decode/augment threads (each holds a stack and its batch's buffers).
const MAX_THREADS: usize = 256;
/// Most batches prepared ahead.
const MAX_PREFETCH: usize = 64;

impl DataConfig {
    /// Parses a TOML table with the fields above; unknown keys are errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        let cfg: DataConfig = toml::from_str(text).map_err(|e| DataError::Config {
            path: origin.to_path_buf(),
            reason: e.to_string(),
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Checks the values that serde cannot.
    pub fn validate(&self, origin: &Path) -> Result<()> {
        let bad = |reason: String| {
            Err(DataError::Config {
                path: origin.to_path_buf(),
                reason,
            })
        };
        if self.train_size.height < 8 || self.train_size.width < 8 {
            return bad(format!(
                "train_size = {} is too small (at least 8 on each side)",
                self.train_size
            ));
        }
        // Beyond any model input in use (the paper: 352; SLT-Net's long-term model 256×448):
        // a larger size is a typing mistake that would ask for gigabytes per sample.
        if self.train_size.height > MAX_TRAIN_SIDE || self.train_size.width > MAX_TRAIN_SIDE {
            return bad(format!(
                "train_size = {} is too large (at most {MAX_TRAIN_SIDE} on each side)",
                self.train_size
            ));
        }
        if self.eval_batch_size == 0 || self.eval_batch_size > MAX_EVAL_BATCH {
            return bad(format!(
                "eval_batch_size = {} must be 1 to {MAX_EVAL_BATCH}",
                self.eval_batch_size
            ));
        }
        if self.threads > MAX_THREADS {
            return bad(format!(
                "threads = {} is too many (at most {MAX_THREADS}; 0: one per core)",
                self.threads
            ));
        }
        if !(0.0..=1.0).contains(&self.invert_polarity) {
            return bad(format!(
                "invert_polarity = {} must be a share between 0 and 1",
                self.invert_polarity
            ));
        }
        // Every slot of the queue is reserved up front, and each holds a batch once full.
        if self.prefetch == 0 || self.prefetch > MAX_PREFETCH {
            return bad(format!(
                "prefetch = {} must be 1 to {MAX_PREFETCH} (batches prepared ahead)",
                self.prefetch
            ));
        }
        if let SixteenBit::Fixed { min, max } = self.sixteen_bit {
            if min >= max {
                return bad(format!(
                    "sixteen_bit = {{ fixed = {{ min = {min}, max = {max} }} }} needs min < max"
                ));
            }
        }
        Ok(())
    }

    /// The thread count to use (resolves 0 to the number of cores).
    pub fn resolved_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// Which frames of a video get an evaluation/inference sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// Every frame; the last two frames of a video take earlier frames as neighbours
    /// (see [`crate::sample::neighbours`]).
    #[default]
    Full,
    /// Exactly the reference's frame set: for FGSTP, SLT-Net and SINet-V2 frames 0..n-2 of
    /// every video, the last two never evaluated; for ZoomNeXt the annotated frames (see
    /// [`crate::inputs::ReferenceFrames`]).
    Reference,
}

/// Mapping of 16-bit frames to the 8-bit range the model was trained on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SixteenBit {
    /// Min–max over all frames of the video: keeps the frame-to-frame changes (the motion cue
    /// of a faint plume) that per-frame stretching would partly normalise away. For a scene
    /// stored as one 16-bit video file (AVI, FLIR SEQ) this takes one pass over the whole file
    /// when the scene's first frame is loaded (cached for the scene's lifetime), so the result
    /// equals that of the same frames as 16-bit PNGs.
    #[default]
    PerVideo,
    /// Min–max of each frame on its own (what most thermal viewers show).
    PerFrame,
    /// A fixed raw range, clipped: `sixteen_bit = { fixed = { min = 7000, max = 9000 } }`.
    Fixed { min: u16, max: u16 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_threads_and_queues_beyond_any_use_are_refused_before_allocating() {
        let check = |set: &dyn Fn(&mut DataConfig)| {
            let mut cfg = DataConfig::default();
            set(&mut cfg);
            cfg.validate(Path::new("c.toml"))
                .err()
                .map(|e| e.to_string())
        };
        assert_eq!(check(&|_| {}), None);
        let refused = [
            (check(&|c| c.prefetch = 100_000_000_000), "prefetch"),
            (check(&|c| c.prefetch = 0), "prefetch"),
            (check(&|c| c.threads = 1_000_000), "threads"),
            (check(&|c| c.eval_batch_size = 1 << 40), "eval_batch_size"),
            (
                check(&|c| c.train_size = ImageSize::square(100_000)),
                "train_size",
            ),
        ];
        for (error, key) in refused {
            let error = error.unwrap_or_else(|| panic!("{key} accepted"));
            assert!(error.contains(key) && error.contains("c.toml"), "{error}");
        }
        assert_eq!(check(&|c| c.prefetch = 64), None);
        assert_eq!(check(&|c| c.train_size = ImageSize::square(4096)), None);
    }
}
