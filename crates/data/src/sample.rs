//! Which frame triplets form the samples of a split.
//!
//! A sample is a frame `t` of one video with two neighbours; the model reads (t, n1, n2) and
//! predicts the mask of `t`.
//!
//! - **Training** (as the reference): t = 0..n-3 with neighbours (t+1, t+2), and only frames
//!   that have a mask (unannotated frames still serve as neighbours).
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

use rand::rngs::ChaCha8Rng;
use rand::SeedableRng;

use crate::config::Protocol;
use crate::layout::Split;

/// One sample: indices into `split.scenes[scene].frames`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleRef {
    pub scene: usize,
    /// Current frame, then its two neighbours.
    pub frames: [usize; 3],
    /// Whether frame `frames[0]` has a mask.
    pub supervised: bool,
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
                });
            }
        }
    }
    out
}

/// The evaluation / inference samples under `protocol`, in video order.
pub fn evaluation_samples(split: &Split, protocol: Protocol) -> Vec<SampleRef> {
    let mut out = Vec::new();
    for (s, scene) in split.scenes.iter().enumerate() {
        let n = scene.frames.len();
        let last = match protocol {
            Protocol::Full => n,
            Protocol::Reference => n.saturating_sub(2),
        };
        for t in 0..last {
            let [a, b] = match protocol {
                Protocol::Full => neighbours(t, n),
                Protocol::Reference => [t + 1, t + 2],
            };
            out.push(SampleRef {
                scene: s,
                frames: [t, a, b],
                supervised: scene.frames[t].mask.is_some(),
            });
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
}
