//! Euclidean feature transform with the nearest-point choice of `scipy.ndimage.
//! distance_transform_edt(..., return_indices=True)`: Maurer, Qi & Raghavan (PAMI 2003),
//! first along columns, then along rows. Where several foreground pixels are equally near,
//! which one is picked changes the weighted F-measure, so the ties are broken as scipy's
//! implementation breaks them: along a column the upper pixel wins; along a row a candidate
//! is dropped from the lower envelope only when strictly hidden, and the scan keeps the
//! earlier candidate when two are equally near.

/// For every pixel, the linear index of its nearest pixel with `is_site` (itself for a
/// site). Returns `None` when there is no site at all.
pub(crate) fn nearest_site<T: Copy>(
    pixels: &[T],
    is_site: impl Fn(T) -> bool,
    width: usize,
    height: usize,
) -> Option<Vec<u32>> {
    const NONE: i32 = -1;
    // Pass 1, along each column: the nearest site row, the upper one on a tie.
    let mut column_site = vec![NONE; width * height];
    let mut above = vec![NONE; width];
    for r in 0..height {
        let row = &pixels[r * width..(r + 1) * width];
        for c in 0..width {
            if is_site(row[c]) {
                above[c] = r as i32;
            }
            column_site[r * width + c] = above[c];
        }
    }
    let mut below = vec![NONE; width];
    for r in (0..height).rev() {
        let row = &pixels[r * width..(r + 1) * width];
        for c in 0..width {
            if is_site(row[c]) {
                below[c] = r as i32;
            }
            let i = r * width + c;
            let up = column_site[i];
            let down = below[c];
            let r = r as i32;
            column_site[i] = match (up, down) {
                (NONE, d) => d,
                (u, NONE) => u,
                (u, d) => {
                    if r - u <= d - r {
                        u
                    } else {
                        d
                    }
                }
            };
        }
    }
    if above.iter().all(|&a| a == NONE) {
        return None;
    }

    // Pass 2, along each row: the lower envelope of the parabolas of the column sites.
    let mut nearest = vec![0u32; width * height];
    let mut stack: Vec<(i64, i64)> = Vec::with_capacity(width); // (site row, site column)
    for r in 0..height {
        let ri = r as i64;
        let sites = &column_site[r * width..(r + 1) * width];
        stack.clear();
        for (c, &sr) in sites.iter().enumerate() {
            if sr == NONE {
                continue;
            }
            let (fr, fc) = (sr as i64, c as i64);
            let w = (fr - ri) * (fr - ri);
            while stack.len() >= 2 {
                let (r1, c1) = stack[stack.len() - 1];
                let (r2, c2) = stack[stack.len() - 2];
                let a = c1 - c2;
                let b = fc - c1;
                let cab = a + b;
                let u = (r2 - ri) * (r2 - ri);
                let v = (r1 - ri) * (r1 - ri);
                if cab * v - b * u - a * w - a * b * cab <= 0 {
                    break;
                }
                stack.pop();
            }
            stack.push((fr, fc));
        }
        let mut l = 0;
        for c in 0..width {
            let ci = c as i64;
            let dist = |(sr, sc): (i64, i64)| (sc - ci) * (sc - ci) + (sr - ri) * (sr - ri);
            let mut d1 = dist(stack[l]);
            while l + 1 < stack.len() {
                let d2 = dist(stack[l + 1]);
                if d1 <= d2 {
                    break;
                }
                d1 = d2;
                l += 1;
            }
            let (sr, sc) = stack[l];
            nearest[r * width + c] = (sr as usize * width + sc as usize) as u32;
        }
    }
    Some(nearest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force: the nearest site, any of the equally near ones.
    fn nearest_distance2(site: &[bool], width: usize, i: usize) -> i64 {
        let (r, c) = ((i / width) as i64, (i % width) as i64);
        site.iter()
            .enumerate()
            .filter(|(_, &s)| s)
            .map(|(j, _)| {
                let (sr, sc) = ((j / width) as i64, (j % width) as i64);
                (sr - r) * (sr - r) + (sc - c) * (sc - c)
            })
            .min()
            .unwrap()
    }

    #[test]
    fn finds_a_nearest_site_everywhere() {
        let (w, h) = (23, 17);
        let mut state = 12345u64;
        for density in [1u64, 5, 30, 90] {
            let site: Vec<bool> = (0..w * h)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (state >> 33) % 100 < density
                })
                .collect();
            let Some(nearest) = nearest_site(&site, |s| s, w, h) else {
                continue;
            };
            for (i, &j) in nearest.iter().enumerate() {
                let j = j as usize;
                assert!(site[j]);
                let (r, c) = ((i / w) as i64, (i % w) as i64);
                let (sr, sc) = ((j / w) as i64, (j % w) as i64);
                let d2 = (sr - r) * (sr - r) + (sc - c) * (sc - c);
                assert_eq!(d2, nearest_distance2(&site, w, i), "pixel {i}");
            }
        }
    }

    #[test]
    fn no_site_gives_none() {
        assert!(nearest_site(&[false; 12], |s| s, 4, 3).is_none());
    }

    #[test]
    fn breaks_ties_as_scipy() {
        // scipy.ndimage.distance_transform_edt(~site, return_indices=True) on this 5x5 image
        // (sites at (0,0), (0,4), (4,2)) gives these nearest sites for the centre row.
        let mut site = vec![false; 25];
        site[0] = true;
        site[4] = true;
        site[22] = true;
        let nearest = nearest_site(&site, |s| s, 5, 5).unwrap();
        let centre_row: Vec<u32> = nearest[10..15].to_vec();
        assert_eq!(centre_row, SCIPY_CENTRE_ROW);
    }

    const SCIPY_CENTRE_ROW: [u32; 5] = [0, 0, 22, 22, 4];
}
