//! How a clip model (ZoomNeXt's video model) covers a whole video with clips of T frames, as its
//! reference's `VideoTestDataset` (main_for_video.py) does: consecutive clips from frame 0, the last one shifted
//! back to end on the last frame; where two clips overlap, the prediction of the later clip is the
//! one kept (the reference counts each frame's appearances and scores it at its last one).

use anyhow::{ensure, Result};

/// Clips covering `frames` frames with `clip_len` frames each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipPlan {
    /// Each clip's frame indices, in order (always `clip_len` of them).
    pub clips: Vec<Vec<usize>>,
    /// For every frame of the video: (clip, position in that clip) whose prediction is kept.
    pub keep: Vec<(usize, usize)>,
}

/// Plans the clips of a `frames`-frame video for a model taking `clip_len` frames at a time.
///
/// Clips start at 0, T, 2T, …; a clip that would run past the end starts at `frames − T` instead
/// (so it overlaps the previous one) and is the last. A video shorter than one clip (which the
/// reference rejects with an assertion) is filled cyclically — frames 0, 1, …, 0, 1, … — the rule
/// the reference's dataset code has for that case; each frame's kept prediction is then its last
/// occurrence.
pub fn plan_clips(frames: usize, clip_len: usize) -> Result<ClipPlan> {
    ensure!(clip_len > 0, "clip length must be at least 1");
    ensure!(frames > 0, "a video needs at least one frame");
    let mut clips: Vec<Vec<usize>> = Vec::new();
    if frames < clip_len {
        clips.push((0..clip_len).map(|i| i % frames).collect());
    } else {
        let mut start = 0;
        while start < frames {
            let first = start.min(frames - clip_len);
            clips.push((first..first + clip_len).collect());
            start = first + clip_len;
        }
    }
    let mut keep = vec![(0, 0); frames];
    for (c, clip) in clips.iter().enumerate() {
        for (position, &frame) in clip.iter().enumerate() {
            keep[frame] = (c, position);
        }
    }
    Ok(ClipPlan { clips, keep })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starts(plan: &ClipPlan) -> Vec<usize> {
        plan.clips.iter().map(|c| c[0]).collect()
    }

    #[test]
    fn exact_multiple_has_no_overlap() {
        let plan = plan_clips(10, 5).unwrap();
        assert_eq!(starts(&plan), [0, 5]);
        assert_eq!(plan.keep[4], (0, 4));
        assert_eq!(plan.keep[5], (1, 0));
        assert_eq!(plan.keep[9], (1, 4));
    }

    #[test]
    fn last_clip_is_shifted_back_and_wins_the_overlap() {
        // 12 frames: [0..5), [5..10), then [7..12) rather than [10..15).
        let plan = plan_clips(12, 5).unwrap();
        assert_eq!(starts(&plan), [0, 5, 7]);
        assert_eq!(plan.clips[2], [7, 8, 9, 10, 11]);
        // Frames 7, 8, 9 are in clips 1 and 2: clip 2's prediction is kept.
        assert_eq!(
            &plan.keep[5..],
            &[(1, 0), (1, 1), (2, 0), (2, 1), (2, 2), (2, 3), (2, 4)]
        );
        assert_eq!(plan.keep[0..5], [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4)]);
    }

    #[test]
    fn one_clip_long_video_and_single_frames() {
        assert_eq!(starts(&plan_clips(5, 5).unwrap()), [0]);
        assert_eq!(starts(&plan_clips(6, 5).unwrap()), [0, 1]);
        let single = plan_clips(3, 1).unwrap();
        assert_eq!(single.clips, [vec![0], vec![1], vec![2]]);
        assert_eq!(single.keep, [(0, 0), (1, 0), (2, 0)]);
    }

    #[test]
    fn short_video_is_filled_cyclically() {
        let plan = plan_clips(2, 5).unwrap();
        assert_eq!(plan.clips, [vec![0, 1, 0, 1, 0]]);
        assert_eq!(plan.keep, [(0, 4), (0, 3)]);
    }

    #[test]
    fn every_frame_is_kept_from_a_clip_that_contains_it() {
        for frames in 1..40 {
            for clip_len in 1..8 {
                let plan = plan_clips(frames, clip_len).unwrap();
                assert!(plan.clips.iter().all(|c| c.len() == clip_len));
                for (frame, &(c, p)) in plan.keep.iter().enumerate() {
                    assert_eq!(plan.clips[c][p], frame);
                    // ... and from the last clip containing it.
                    assert!(plan.clips[c + 1..]
                        .iter()
                        .all(|later| !later.contains(&frame)));
                }
            }
        }
        assert!(plan_clips(0, 5).is_err() && plan_clips(5, 0).is_err());
    }
}
