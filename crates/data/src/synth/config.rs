//! What the generator draws: its settings (`fgstp synth`'s flags, a run configuration's
//! `[synth]` table) and how they split scenes.

use serde::{Deserialize, Serialize};

/// Version of the generator recorded in `synth.toml`: a dataset made by another version is
/// other data even with the same settings.
pub const GENERATOR_VERSION: u32 = 2;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SynthConfig {
    /// Scenes in total, split into train / val / test (val and test get 15% each, at least one).
    pub scenes: usize,
    /// Frames per scene.
    pub frames: usize,
    pub width: u32,
    pub height: u32,
    pub seed: u64,
    /// Grey levels (of 255) the gas changes a pixel by at full opacity, before a per-scene
    /// factor of 0.7–1.3. The sensor noise is 1–2.5 levels, the background texture 12–24.
    pub contrast: f32,
    /// 8 (PNG L8) or 16 (PNG L16 raw counts, as a thermal camera would store).
    pub bit_depth: u8,
    /// Share of leak-free scenes (empty masks), spread evenly over train, val and test.
    pub negatives: f32,
    /// Share of leaking scenes whose leak starts during the video (empty masks before).
    pub onsets: f32,
    /// Share of leaking scenes whose leak stops during the video (the gas then dissipates).
    pub stops: f32,
    /// Up to this many pipe ends per scene that never leak (uniformly 0 to this many).
    pub idle_pipes: u32,
    /// Share of leaks that come from a point without visible equipment.
    pub hidden_sources: f32,
    /// Share of scenes with heat shimmer above a hot surface.
    pub shimmer: f32,
    /// Share of scenes with steam rising from a stack.
    pub steam: f32,
    /// Share of scenes with a person or a vehicle crossing.
    pub crossers: f32,
    /// Share of scenes with a flat-field correction (a shutter frame, then an offset).
    pub nuc: f32,
    /// Share of scenes with a short camera shake.
    pub shake: f32,
    /// Share of leak-free scenes that are twins: the leaking scene just before them shown
    /// again without its leak (same background, equipment, distractors and sensor noise), so
    /// that the only difference between the two is the gas.
    pub twins: f32,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            scenes: 12,
            frames: 24,
            width: 128,
            height: 128,
            seed: 2025,
            contrast: 35.0,
            bit_depth: 8,
            negatives: 0.33,
            onsets: 0.2,
            stops: 0.2,
            idle_pipes: 3,
            hidden_sources: 0.3,
            shimmer: 0.3,
            steam: 0.3,
            crossers: 0.5,
            nuc: 0.1,
            shake: 0.2,
            twins: 0.0,
        }
    }
}

/// The most scenes, or frames per scene, a generator run takes (far beyond any disk; a
/// larger count is a typing mistake).
const MAX_COUNT: usize = 1_000_000;

impl SynthConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.scenes < 3 {
            return Err(format!(
                "--scenes {} is too few: train, val and test need one scene each (at least 3)",
                self.scenes
            ));
        }
        if self.frames < 3 {
            return Err(format!(
                "--frames {} is too few: a sample needs 3 frames",
                self.frames
            ));
        }
        for (flag, value) in [("scenes", self.scenes), ("frames", self.frames)] {
            if value > MAX_COUNT {
                return Err(format!(
                    "--{flag} {value} is too many (at most {MAX_COUNT})"
                ));
            }
        }
        if self.width < 16 || self.height < 16 || self.width > 8192 || self.height > 8192 {
            return Err(format!(
                "--size {}x{} is out of range (16 to 8192 pixels a side)",
                self.width, self.height
            ));
        }
        if !(self.contrast.is_finite() && self.contrast >= 0.0) {
            return Err(format!(
                "--contrast {} must be a grey-level count ≥ 0",
                self.contrast
            ));
        }
        if self.bit_depth != 8 && self.bit_depth != 16 {
            return Err(format!("--bit-depth {} must be 8 or 16", self.bit_depth));
        }
        for (flag, share) in self.shares() {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("--{flag} {share} must be a share from 0 to 1"));
            }
        }
        if self.idle_pipes > 8 {
            return Err(format!(
                "--idle-pipes {} is too many (at most 8)",
                self.idle_pipes
            ));
        }
        Ok(())
    }

    /// The settings that are shares of scenes, with their flags.
    fn shares(&self) -> [(&'static str, f32); 10] {
        [
            ("negatives", self.negatives),
            ("onsets", self.onsets),
            ("stops", self.stops),
            ("hidden-sources", self.hidden_sources),
            ("shimmer", self.shimmer),
            ("steam", self.steam),
            ("crossers", self.crossers),
            ("nuc", self.nuc),
            ("shake", self.shake),
            ("twins", self.twins),
        ]
    }

    /// Whether scene `index` has no leak. Within each split, the k-th scene is leak-free when
    /// `(k + 1) · negatives` passes an integer that `k · negatives` had not: every split gets
    /// its share (rounded down), spread evenly rather than bunched.
    pub fn leak_free(&self, index: usize) -> bool {
        let share = f64::from(self.negatives);
        self.splits()
            .into_iter()
            .find(|(_, range)| range.contains(&index))
            .is_some_and(|(_, range)| {
                let k = (index - range.start) as f64;
                ((k + 1.0) * share).floor() > (k * share).floor()
            })
    }

    /// The leaking scene that scene `index` shows again without its leak, when `index` is a
    /// twin. Of a split's leak-free scenes the k-th is a twin when `(k + 1) · twins` passes an
    /// integer that `k · twins` had not (spread evenly, as [`Self::leak_free`]); its source is
    /// the scene before it, which must be a leaking scene of the same split.
    pub fn twin_of(&self, index: usize) -> Option<usize> {
        if !self.leak_free(index) {
            return None;
        }
        let (_, range) = self
            .splits()
            .into_iter()
            .find(|(_, range)| range.contains(&index))?;
        let source = index
            .checked_sub(1)
            .filter(|&i| range.contains(&i) && !self.leak_free(i))?;
        // The leak-free scenes before `index` in its split: ⌊(index − start) · negatives⌋.
        let k = ((index - range.start) as f64 * f64::from(self.negatives)).floor();
        let share = f64::from(self.twins);
        (((k + 1.0) * share).floor() > (k * share).floor()).then_some(source)
    }

    /// (split name, scene indices) in output order.
    pub fn splits(&self) -> Vec<(&'static str, std::ops::Range<usize>)> {
        let held_out = ((self.scenes as f64 * 0.15).round() as usize).max(1);
        let train = self.scenes - 2 * held_out;
        vec![
            ("train", 0..train),
            ("val", train..train + held_out),
            ("test", train + held_out..self.scenes),
        ]
    }
}
