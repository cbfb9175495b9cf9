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

/// The most memory one scene may take while it is drawn (scenes are drawn a few at a time).
pub(crate) const MAX_SCENE_MEMORY: u64 = 2_000_000_000;

/// Frame border drawn but not shown, so that jitter and shake never look outside the world.
pub(crate) const MARGIN: usize = 8;

/// World pixels per cell of the plume simulation: about 80 cells across the larger side.
pub(crate) fn grid_cell(w: usize, h: usize) -> f32 {
    (w.max(h) as f32 / 80.0).max(1.0)
}

/// The plume simulation's grid (cells across, down) for a `w`×`h` frame.
pub(crate) fn grid_size(w: usize, h: usize) -> (usize, usize) {
    let cell = grid_cell(w, h);
    let (ww, wh) = (w + 2 * MARGIN, h + 2 * MARGIN);
    (
        (ww as f32 / cell).ceil() as usize + 2,
        (wh as f32 / cell).ceil() as usize + 2,
    )
}

/// Bytes one scene holds while it is drawn: the gas and steam densities of every frame on the
/// simulation grid, and a few full-size images (background, grain, scratch).
pub(crate) fn scene_memory(width: u32, height: u32, frames: usize) -> u64 {
    let (gw, gh) = grid_size(width as usize, height as usize);
    let plumes = 2 * 4 * (gw * gh) as u64 * frames as u64;
    let margin = 2 * MARGIN as u64;
    let images = 4 * 4 * (u64::from(width) + margin) * (u64::from(height) + margin);
    plumes + images
}

impl SynthConfig {
    /// Checks the settings; errors name `fgstp synth`'s flags (`--scenes`).
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.check(&|flag| match flag {
            "size" => "--size".to_string(),
            _ => format!("--{flag}"),
        })
    }

    /// Checks the settings; errors name a run configuration's keys (`synth.scenes`).
    pub fn validate_keys(&self) -> std::result::Result<(), String> {
        self.check(&|flag| match flag {
            "size" => "synth.width × synth.height".to_string(),
            _ => format!("synth.{}", flag.replace('-', "_")),
        })
    }

    /// The checks, with `name` turning a flag's name (`bit-depth`) into what the user wrote.
    fn check(&self, name: &dyn Fn(&str) -> String) -> std::result::Result<(), String> {
        if self.scenes < 3 {
            return Err(format!(
                "{} {} is too few: train, val and test need one scene each (at least 3)",
                name("scenes"),
                self.scenes
            ));
        }
        if self.frames < 3 {
            return Err(format!(
                "{} {} is too few: a sample needs 3 frames",
                name("frames"),
                self.frames
            ));
        }
        for (flag, value) in [("scenes", self.scenes), ("frames", self.frames)] {
            if value > MAX_COUNT {
                return Err(format!(
                    "{} {value} is too many (at most {MAX_COUNT})",
                    name(flag)
                ));
            }
        }
        if self.width < 16 || self.height < 16 || self.width > 8192 || self.height > 8192 {
            return Err(format!(
                "{} {}x{} is out of range (16 to 8192 pixels a side)",
                name("size"),
                self.width,
                self.height
            ));
        }
        let scene_bytes = scene_memory(self.width, self.height, self.frames);
        if scene_bytes > MAX_SCENE_MEMORY {
            return Err(format!(
                "{} {} at {}x{} needs about {:.1} GB of memory per scene while it is drawn \
                 (the plume of every frame, the background at full size); at most {:.1} GB: \
                 fewer frames or a smaller size",
                name("frames"),
                self.frames,
                self.width,
                self.height,
                scene_bytes as f64 / 1e9,
                MAX_SCENE_MEMORY as f64 / 1e9
            ));
        }
        // synth.toml keeps the seed as a TOML integer, which is signed.
        if i64::try_from(self.seed).is_err() {
            return Err(format!(
                "{} {} is too large (at most {})",
                name("seed"),
                self.seed,
                i64::MAX
            ));
        }
        if !(self.contrast.is_finite() && self.contrast >= 0.0) {
            return Err(format!(
                "{} {} must be a grey-level count ≥ 0",
                name("contrast"),
                self.contrast
            ));
        }
        if self.bit_depth != 8 && self.bit_depth != 16 {
            return Err(format!(
                "{} {} must be 8 or 16",
                name("bit-depth"),
                self.bit_depth
            ));
        }
        for (flag, share) in self.shares() {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!(
                    "{} {share} must be a share from 0 to 1",
                    name(flag)
                ));
            }
        }
        if self.idle_pipes > 8 {
            return Err(format!(
                "{} {} is too many (at most 8)",
                name("idle-pipes"),
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

#[cfg(test)]
mod tests {
    use super::super::{read_record, write_record};
    use super::*;

    #[test]
    fn errors_name_the_flag_or_the_key_as_the_user_wrote_it() {
        let cfg = SynthConfig {
            idle_pipes: 9,
            ..SynthConfig::default()
        };
        assert!(cfg.validate().unwrap_err().starts_with("--idle-pipes 9"));
        assert!(cfg
            .validate_keys()
            .unwrap_err()
            .starts_with("synth.idle_pipes 9"));
    }

    #[test]
    fn seeds_that_synth_toml_cannot_keep_and_scenes_that_do_not_fit_in_memory_are_refused() {
        let seed = |seed| SynthConfig {
            seed,
            ..SynthConfig::default()
        };
        assert!(seed(i64::MAX as u64).validate().is_ok());
        let error = seed(u64::MAX).validate().unwrap_err();
        assert!(
            error.contains("--seed") && error.contains("too large"),
            "{error}"
        );
        // A record with the largest seed reads back as written.
        let dir = tempfile::tempdir().unwrap();
        write_record(&seed(i64::MAX as u64), dir.path()).unwrap();
        let (_, back) = read_record(&dir.path().join("synth.toml")).unwrap();
        assert_eq!(back.seed, i64::MAX as u64);

        let frames = |frames, side| SynthConfig {
            frames,
            width: side,
            height: side,
            ..SynthConfig::default()
        };
        // About 68 KB a frame at 128×128: 29 000 frames fit in 2 GB, 40 000 do not.
        assert!(frames(29_000, 128).validate().is_ok());
        let error = frames(40_000, 128).validate().unwrap_err();
        assert!(
            error.contains("--frames 40000") && error.contains("GB"),
            "{error}"
        );
        assert!(frames(3, 8192).validate().is_ok());
    }
}
