//! One analysed frame's probability map → the regions that may be gas: hysteresis thresholds,
//! ignore masks, 8-connected regions with a minimum area.

use super::zones::PixelMask;

/// A connected region of the frame's gas mask.
#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    /// Row-major pixel indices.
    pub pixels: Vec<u32>,
    /// `[x0, y0, x1, y1]`, inclusive.
    pub bbox: [u32; 4],
    pub centroid: [f64; 2],
    pub max_prob: f32,
    pub mean_prob: f32,
}

impl Region {
    pub fn area(&self) -> usize {
        self.pixels.len()
    }
}

/// What makes pixels gas and regions count.
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    pub start: f32,
    pub stop: f32,
    /// Pixels.
    pub min_area: usize,
}

/// The gas mask of one `(width, height)` frame with hysteresis: a pixel is gas when its
/// probability is at least `start`, or at least `stop` and connected (8-neighbours, through
/// pixels ≥ `stop`) to a pixel that is ≥ `start` or that `keep` holds (the pixels of leaks
/// already being tracked, so an ongoing leak needs only the lower threshold). Pixels of
/// `ignore` never count. Regions smaller than `min_area` pixels are dropped.
pub fn find_regions(
    prob: &[f32],
    (width, height): (usize, usize),
    Thresholds {
        start,
        stop,
        min_area,
    }: Thresholds,
    keep: Option<&PixelMask>,
    ignore: Option<&PixelMask>,
) -> Vec<Region> {
    debug_assert_eq!(prob.len(), width * height);
    let n = width * height;
    let candidate = |i: usize| prob[i] >= stop && !ignore.is_some_and(|m| m.get(i));
    let seed = |i: usize| candidate(i) && (prob[i] >= start || keep.is_some_and(|m| m.get(i)));
    let mut visited = vec![false; n];
    let mut regions = Vec::new();
    let mut stack = Vec::new();
    for first in 0..n {
        if visited[first] || !seed(first) {
            continue;
        }
        // Everything ≥ stop connected to this seed.
        let mut pixels = Vec::new();
        visited[first] = true;
        stack.push(first);
        while let Some(i) = stack.pop() {
            pixels.push(i as u32);
            let (x, y) = (i % width, i / width);
            for dy in -1i64..=1 {
                for dx in -1i64..=1 {
                    let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                    if (dx, dy) == (0, 0)
                        || nx < 0
                        || ny < 0
                        || nx >= width as i64
                        || ny >= height as i64
                    {
                        continue;
                    }
                    let j = ny as usize * width + nx as usize;
                    if !visited[j] && candidate(j) {
                        visited[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        if pixels.len() < min_area.max(1) {
            continue;
        }
        pixels.sort_unstable();
        regions.push(describe(pixels, prob, width));
    }
    regions
}

/// The region made of `pixels` (sorted, row-major).
pub(super) fn describe(pixels: Vec<u32>, prob: &[f32], width: usize) -> Region {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    let (mut sx, mut sy, mut sp) = (0f64, 0f64, 0f64);
    let mut max_prob = 0f32;
    for &i in &pixels {
        let (x, y) = (i % width as u32, i / width as u32);
        x0 = x0.min(x);
        y0 = y0.min(y);
        x1 = x1.max(x);
        y1 = y1.max(y);
        sx += f64::from(x);
        sy += f64::from(y);
        let p = prob[i as usize];
        sp += f64::from(p);
        max_prob = max_prob.max(p);
    }
    let n = pixels.len() as f64;
    Region {
        bbox: [x0, y0, x1, y1],
        centroid: [sx / n, sy / n],
        max_prob,
        mean_prob: (sp / n) as f32,
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(rows: &[&str]) -> (Vec<f32>, usize, usize) {
        let (w, h) = (rows[0].len(), rows.len());
        let prob = rows
            .iter()
            .flat_map(|r| {
                r.bytes().map(|b| match b {
                    b'#' => 0.9,
                    b'+' => 0.4,
                    _ => 0.0,
                })
            })
            .collect();
        (prob, w, h)
    }

    #[test]
    fn hysteresis_grows_seeds_through_the_lower_threshold_only() {
        let (prob, w, h) = map(&[
            "#++.....", //
            "..+.....", "......++", "........",
        ]);
        let t = Thresholds {
            start: 0.5,
            stop: 0.3,
            min_area: 1,
        };
        let regions = find_regions(&prob, (w, h), t, None, None);
        // The right-hand pair never reaches 0.5: not gas.
        assert_eq!(regions.len(), 1);
        assert_eq!(regions[0].pixels, vec![0, 1, 2, 10]);
        assert_eq!(regions[0].bbox, [0, 0, 2, 1]);
        assert!((regions[0].max_prob - 0.9).abs() < 1e-6);
        // A tracked leak keeps its pixels at the lower threshold.
        let mut keep = PixelMask::new(w, h);
        keep.set(2 * w + 6);
        let regions = find_regions(&prob, (w, h), t, Some(&keep), None);
        assert_eq!(regions.len(), 2);
        assert_eq!(regions[1].pixels, vec![22, 23]);
    }

    #[test]
    fn ignored_pixels_and_small_regions_do_not_count() {
        let (prob, w, h) = map(&[
            "##......", //
            "##...#..", "........",
        ]);
        let mut ignore = PixelMask::new(w, h);
        ignore.set(0);
        let t = Thresholds {
            start: 0.5,
            stop: 0.3,
            min_area: 2,
        };
        let regions = find_regions(&prob, (w, h), t, None, Some(&ignore));
        assert_eq!(
            regions.len(),
            1,
            "the single pixel is below the minimum area"
        );
        assert_eq!(regions[0].pixels, vec![1, 8, 9]);
    }
}
