//! Deterministic noise: every value is a pure function of (seed, coordinates), so scenes and
//! frames can be generated in any order on any number of threads.

pub(crate) fn hash(seed: u64, x: i32, y: i32, z: i32) -> f32 {
    let mut h = seed
        ^ (x as u32 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (y as u32 as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ (z as u32 as u64).wrapping_mul(0x1656_67B1_9E37_79F9);
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^= h >> 33;
    (h >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
}

pub(crate) fn smooth(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

/// Value noise in [-1, 1] over (x, y, z), smooth at lattice scale 1.
pub(crate) fn value_noise(seed: u64, x: f32, y: f32, z: f32) -> f32 {
    let (x0, y0, z0) = (x.floor(), y.floor(), z.floor());
    let (tx, ty, tz) = (smooth(x - x0), smooth(y - y0), smooth(z - z0));
    let (ix, iy, iz) = (x0 as i32, y0 as i32, z0 as i32);
    let lerp = |a: f32, b: f32, t: f32| a + (b - a) * t;
    let plane = |iz: i32| {
        let a = lerp(hash(seed, ix, iy, iz), hash(seed, ix + 1, iy, iz), tx);
        let b = lerp(
            hash(seed, ix, iy + 1, iz),
            hash(seed, ix + 1, iy + 1, iz),
            tx,
        );
        lerp(a, b, ty)
    };
    lerp(plane(iz), plane(iz + 1), tz)
}

/// Fractal value noise: `octaves` octaves from feature size `scale` (pixels), roughly [-1, 1].
pub(crate) fn fractal(seed: u64, x: f32, y: f32, z: f32, scale: f32, octaves: u32) -> f32 {
    let (mut sum, mut amp, mut freq, mut norm) = (0.0, 1.0, 1.0 / scale, 0.0);
    for o in 0..octaves {
        sum += amp
            * value_noise(
                seed.wrapping_add(u64::from(o) * 7919),
                x * freq,
                y * freq,
                z,
            );
        norm += amp;
        amp *= 0.5;
        freq *= 2.0;
    }
    sum / norm
}

/// Bilinear sample of a `w`×`h` grid at (x, y); 0 outside.
pub(crate) fn bilinear(grid: &[f32], w: usize, h: usize, x: f32, y: f32) -> f32 {
    if !(x >= 0.0 && y >= 0.0) {
        return 0.0;
    }
    let (x0, y0) = (x as usize, y as usize);
    if x0 + 1 >= w || y0 + 1 >= h {
        return 0.0;
    }
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let i = y0 * w + x0;
    let top = grid[i] + (grid[i + 1] - grid[i]) * fx;
    let bottom = grid[i + w] + (grid[i + w + 1] - grid[i + w]) * fx;
    top + (bottom - top) * fy
}
