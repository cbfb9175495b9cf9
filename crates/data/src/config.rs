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
    /// Side of the square model input, pixels (reference: 352).
    pub train_size: u32,
    /// Evaluation/inference batch size (reference `test.py`: 16).
    pub eval_batch_size: usize,
    /// Decode/augment threads; 0 = all cores. Batches do not depend on it.
    pub threads: usize,
    /// Batches prepared ahead of the consumer (bounded queue depth, at least 1).
    pub prefetch: usize,
    /// Which frames get an evaluation/inference sample (training always follows the reference).
    pub protocol: Protocol,
    /// How 16-bit frames (thermal cameras) become 8-bit.
    pub sixteen_bit: SixteenBit,
    /// Random flip, rotation, colour enhancement and mask salt-and-pepper for training.
    pub augment: bool,
    /// Shuffle training samples every epoch.
    pub shuffle: bool,
}

/// What a training stream needs beyond [`DataConfig`]: in a run configuration these are
/// `train.batch_size` and `train.seed`, the only keys for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainSampling {
    /// Samples per batch (reference: 6).
    pub batch_size: usize,
    /// Seed of the shuffle and of every augmentation draw (reference: 2025).
    pub seed: u64,
}

impl Default for TrainSampling {
    /// The reference's `train.py`.
    fn default() -> Self {
        TrainSampling {
            batch_size: 6,
            seed: 2025,
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
            train_size: 352,
            eval_batch_size: 16,
            threads: 0,
            prefetch: 2,
            protocol: Protocol::Full,
            sixteen_bit: SixteenBit::PerVideo,
            augment: true,
            shuffle: true,
        }
    }
}

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
        if self.train_size < 8 {
            return bad(format!(
                "train_size = {} is too small (at least 8)",
                self.train_size
            ));
        }
        if self.eval_batch_size == 0 {
            return bad("eval_batch_size must be at least 1".into());
        }
        if self.prefetch == 0 {
            return bad("prefetch must be at least 1 (batches prepared ahead)".into());
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
    /// Exactly the reference's frame set: frames 0..n-2 of every video, the last two never
    /// evaluated.
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
