//! Which frame triplets form the samples of a split.
//!
//! A sample is a frame `t` of one video with two neighbours; the model reads (t, n1, n2) and
//! predicts the mask of `t`.
//!
//! - **Training** (as the reference): t = 0..n-3 with neighbours (t+1, t+2), and only frames
//!   that have a mask (unannotated frames still serve as neighbours); with
//!   `data.train_protocol = "full"` every annotated frame, with the neighbours below.
//! - **Evaluation / inference, `protocol = "full"`** (default): every frame gets a sample.
//!   Neighbour k (k = 1, 2) is t+k when that frame exists, else t−k — the temporal distance
//!   of each branch is kept and only its direction flips at the end of the video: frame n−2
//!   reads (n−2, n−1, n−4), frame n−1 reads (n−1, n−2, n−3). A 3-frame video, where t±2 does
//!   not exist for its middle frame, falls back to distance 1 (frame 1 reads (1, 2, 0)).
//! - **`protocol = "reference"`**: exactly the reference's frame set, t = 0..n-3 with
//!   (t+1, t+2); the last two frames of every video get no sample.
//!
//! Samples without a mask are flagged `supervised = false`: inference still predicts them,
//! metrics skip them.
//!
//! Models that read one frame or clips ([`crate::inputs`]) train on every annotated frame, or on
//! clips of consecutive annotated frames (both references build clips from the run of annotated
//! frames; for densely annotated videos these are consecutive frames), and `protocol =
//! "reference"` evaluates the frames their reference does ([`ReferenceFrames`]).

use rand::rngs::ChaCha8Rng;
use rand::SeedableRng;

use crate::config::Protocol;
use crate::dataset::Split;
use crate::inputs::{ClipStarts, ReferenceFrames, TrainSamples};

/// One sample: indices into `split.scenes[scene].frames`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRef {
    pub scene: usize,
    /// Current frame, then its two neighbours (for a clip: its first frame and that frame's
    /// neighbours).
    pub frames: [usize; 3],
    /// Whether frame `frames[0]` (for a clip: every frame of it) has a mask.
    pub supervised: bool,
    /// A clip sample's frames in order; empty for other samples.
    pub clip: Vec<usize>,
}

impl SampleRef {
    /// The frames this sample decodes, in model order: the clip, frame t alone, or the triplet.
    pub fn read_frames(&self, train: TrainSamples) -> Vec<usize> {
        match train {
            TrainSamples::Clips { .. } => self.clip.clone(),
            TrainSamples::Frames => vec![self.frames[0]],
            TrainSamples::Triplets => self.frames.to_vec(),
        }
    }
}

/// The two neighbours of frame `t` in a video of `n ≥ 3` frames (see the module docs).
pub fn neighbours(t: usize, n: usize) -> [usize; 2] {
    assert!(n >= 3 && t < n, "frame {t} of a {n}-frame video");
    let pick = |k: usize| {
        // Prefer distance k forward, then backward, then shorter distances.
        (1..=k)
            .rev()
            .flat_map(|d| [t.checked_add(d).filter(|&i| i < n), t.checked_sub(d)])
            .flatten()
            .next()
            .expect("a video of at least 3 frames has another frame")
    };
    let first = pick(1);
    let mut second = pick(2);
    if second == first {
        // Only possible when distance 2 exists neither way: take the frame on the other side.
        second = (0..n).find(|&i| i != t && i != first).expect("n >= 3");
    }
    [first, second]
}

/// The training samples (reference frame set, annotated frames only).
pub fn training_samples(split: &Split) -> Vec<SampleRef> {
    let mut out = Vec::new();
    for (s, scene) in split.scenes.iter().enumerate() {
        let n = scene.frames.len();
        for t in 0..n.saturating_sub(2) {
            if scene.frames[t].mask.is_some() {
                out.push(SampleRef {
                    scene: s,
                    frames: [t, t + 1, t + 2],
                    supervised: true,
                    clip: Vec::new(),
                });
            }
        }
    }
    out
}

/// The training samples of `data.train_protocol = "full"` for a model that reads triplets:
/// every annotated frame, with the neighbours [`evaluation_samples`] gives it under
/// `protocol = "full"` (the last two frames of a video look backwards).
pub fn training_samples_every_frame(split: &Split) -> Vec<SampleRef> {
    evaluation_samples(split, Protocol::Full)
        .into_iter()
        .filter(|sample| sample.supervised)
        .collect()
}

/// The training samples of a model that reads `train` (see [`TrainSamples`]).
pub fn training_samples_for(split: &Split, train: TrainSamples) -> Vec<SampleRef> {
    let (len, starts) = match train {
        TrainSamples::Triplets => return training_samples(split),
        TrainSamples::Frames => (1, ClipStarts::EveryFrame),
        TrainSamples::Clips { len, starts } => (len.max(1), starts),
    };
    let mut out = Vec::new();
    for (s, scene) in split.scenes.iter().enumerate() {
        let n = scene.frames.len();
        let annotated: Vec<usize> = (0..n).filter(|&i| scene.frames[i].mask.is_some()).collect();
        for start in clip_starts(annotated.len(), len, starts) {
            let clip = annotated[start..start + len].to_vec();
            let [a, b] = neighbours(clip[0], n);
            out.push(SampleRef {
                scene: s,
                frames: [clip[0], a, b],
                supervised: true,
                clip: if matches!(train, TrainSamples::Frames) {
                    Vec::new()
                } else {
                    clip
                },
            });
        }
    }
    out
}

/// Start positions of `len`-frame clips in a run of `count` frames (none if it is shorter).
pub fn clip_starts(count: usize, len: usize, starts: ClipStarts) -> Vec<usize> {
    if len == 0 || count < len {
        return Vec::new();
    }
    match starts {
        ClipStarts::EveryFrame => (0..=count - len).collect(),
        ClipStarts::StrideTwice => {
            let stride = if len > 1 { len - 1 } else { 1 };
            (0..count)
                .step_by(stride)
                .map(|clip_idx| (clip_idx * stride).min(count - len))
                .collect()
        }
    }
}

/// The evaluation / inference samples under `protocol`, in video order (FGSTP's reference
/// frame set).
pub fn evaluation_samples(split: &Split, protocol: Protocol) -> Vec<SampleRef> {
    evaluation_samples_for(split, protocol, ReferenceFrames::DropLastTwo)
}

/// The evaluation / inference samples under `protocol`, in video order; `reference` says which
/// frames `protocol = "reference"` keeps. Every sample carries frame t's neighbours: the
/// reference's (t+1, t+2) under FGSTP's reference protocol, [`neighbours`] otherwise.
pub fn evaluation_samples_for(
    split: &Split,
    protocol: Protocol,
    reference: ReferenceFrames,
) -> Vec<SampleRef> {
    let mut out = Vec::new();
    for (s, scene) in split.scenes.iter().enumerate() {
        let n = scene.frames.len();
        for t in 0..n {
            let annotated = scene.frames[t].mask.is_some();
            let (keep, [a, b]) = match (protocol, reference) {
                (Protocol::Full, _) => (true, neighbours(t, n)),
                (Protocol::Reference, ReferenceFrames::DropLastTwo) => (t + 2 < n, [t + 1, t + 2]),
                (Protocol::Reference, ReferenceFrames::Annotated) => (annotated, neighbours(t, n)),
            };
            if keep {
                out.push(SampleRef {
                    scene: s,
                    frames: [t, a, b],
                    supervised: annotated,
                    clip: Vec::new(),
                });
            }
        }
    }
    out
}

/// The random generator of one draw: a pure function of (seed, epoch, index), so batches do
/// not depend on thread count or scheduling.
pub fn rng_for(seed: u64, epoch: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // ChaCha's 64-bit stream id separates epochs; the word position separates samples
    // (each sample uses far fewer than 2^32 words).
    rng.set_stream(epoch);
    rng.set_word_pos(u128::from(index) << 32);
    rng
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_neighbours_keep_their_distance() {
        assert_eq!(neighbours(0, 10), [1, 2]);
        assert_eq!(neighbours(7, 10), [8, 9]);
        assert_eq!(neighbours(8, 10), [9, 6]);
        assert_eq!(neighbours(9, 10), [8, 7]);
        assert_eq!(neighbours(1, 3), [2, 0]);
        assert_eq!(neighbours(2, 3), [1, 0]);
        assert_eq!(neighbours(0, 3), [1, 2]);
        assert_eq!(neighbours(2, 4), [3, 0]);
    }

    #[test]
    fn clip_starts_follow_each_reference() {
        assert_eq!(clip_starts(12, 10, ClipStarts::EveryFrame), [0, 1, 2]);
        assert_eq!(
            clip_starts(9, 10, ClipStarts::EveryFrame),
            Vec::<usize>::new()
        );
        // ZoomNeXt, T = 5 (stride 4): range(0, 20, 4) → starts 0, 16, then 32, 48, 64 clamped
        // to 15.
        assert_eq!(
            clip_starts(20, 5, ClipStarts::StrideTwice),
            [0, 15, 15, 15, 15]
        );
        assert_eq!(
            clip_starts(40, 5, ClipStarts::StrideTwice),
            [0, 16, 32, 35, 35, 35, 35, 35, 35, 35]
        );
        assert_eq!(clip_starts(5, 5, ClipStarts::StrideTwice), [0, 0]);
        assert_eq!(clip_starts(3, 1, ClipStarts::StrideTwice), [0, 1, 2]);
    }
}
