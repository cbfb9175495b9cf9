//! Synthetic infrared gas-leak videos in the dataset layout (`fgstp synth`).
//!
//! Each scene is a static thermal-looking background (a cold sky with drifting clouds above a
//! textured ground with warm and cold structures), seen by a camera with fixed-pattern and
//! temporal sensor noise and a slight sub-pixel jitter. A leak source releases gas whose
//! density is simulated on a coarse grid: advected by a wind that wobbles, by divergence-free
//! turbulence (the curl of moving noise) and by buoyancy, diffused, decaying, and fed by a
//! flickering source. The gas is drawn as a faint emission (warmer) or absorption (colder)
//! layer, `contrast` grey levels at full opacity, with a fine texture drifting with the wind.
//! Distractors: clouds, a warm object crossing the scene, and in some scenes steam rising from
//! a stack (drawn like gas, but not in the mask). The mask of a frame is the gas density above
//! a threshold, seen through the same camera jitter.
//!
//! At the default contrast (35 grey levels at full opacity) a plume is visible in a single
//! frame near its source; at low contrast (`--contrast 4`) it sinks into the sensor noise and
//! the background texture, and only its motion across frames gives it away.
//!
//! Output is a pure function of the config: every random draw comes from (seed, scene, frame),
//! so runs are byte-identical whatever the thread count. Scenes are simulated in parallel and
//! frames rendered and PNG-encoded in parallel.
//!
//! [`video`] also writes each scene as one MP4 (`fgstp synth --video`); [`prepare`] makes a
//! run's generated dataset on first use.

pub mod prepare;
pub mod video;

use std::path::{Path, PathBuf};

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};
use rand::rngs::ChaCha8Rng;
use rand::RngExt;
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::sample::rng_for;

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
        }
    }
}

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
        Ok(())
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

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct SynthReport {
    pub frames: usize,
    pub scenes: usize,
    pub root: PathBuf,
}

// ---------------------------------------------------------------------------------------------
// Noise

fn hash(seed: u64, x: i32, y: i32, z: i32) -> f32 {
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

fn smooth(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

/// Value noise in [-1, 1] over (x, y, z), smooth at lattice scale 1.
fn value_noise(seed: u64, x: f32, y: f32, z: f32) -> f32 {
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
fn fractal(seed: u64, x: f32, y: f32, z: f32, scale: f32, octaves: u32) -> f32 {
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
fn bilinear(grid: &[f32], w: usize, h: usize, x: f32, y: f32) -> f32 {
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

// ---------------------------------------------------------------------------------------------
// Plume simulation

/// A gas (or steam) release, in grid cells and frames.
struct Release {
    source: (f32, f32),
    radius: f32,
    wind_speed: f32,
    wind_angle: f32,
    wobble: f32,
    turbulence: f32,
    buoyancy: f32,
    decay: f32,
    seed: u64,
}

/// Density on a `gw`×`gh` grid for each of `frames` frames (after a warm-up).
fn simulate(r: &Release, gw: usize, gh: usize, frames: usize) -> Vec<Vec<f32>> {
    const WARMUP: usize = 40;
    let mut rho = vec![0f32; gw * gh];
    let mut next = vec![0f32; gw * gh];
    let mut psi = vec![0f32; gw * gh];
    let mut out = Vec::with_capacity(frames);
    let turb_scale = 6.0f32;
    for step in 0..WARMUP + frames {
        let t = step as f32;
        let angle = r.wind_angle + r.wobble * value_noise(r.seed ^ 0xA11CE, t / 20.0, 0.5, 0.5);
        let (wx, wy) = (
            r.wind_speed * angle.cos(),
            r.wind_speed * angle.sin() - r.buoyancy,
        );
        // Stream function of the turbulence; its curl is divergence-free.
        for j in 0..gh {
            for i in 0..gw {
                psi[j * gw + i] = fractal(r.seed, i as f32, j as f32, t / 12.0, turb_scale, 2);
            }
        }
        let amp = r.turbulence * turb_scale / 2.0;
        for j in 0..gh {
            for i in 0..gw {
                let (il, ir) = (i.saturating_sub(1), (i + 1).min(gw - 1));
                let (ju, jd) = (j.saturating_sub(1), (j + 1).min(gh - 1));
                let vx = wx + amp * (psi[jd * gw + i] - psi[ju * gw + i]);
                let vy = wy - amp * (psi[j * gw + ir] - psi[j * gw + il]);
                // Semi-Lagrangian: the density arriving here came from upstream.
                next[j * gw + i] = bilinear(&rho, gw, gh, i as f32 - vx, j as f32 - vy);
            }
        }
        // Diffusion, decay, and the flickering source.
        let puff = 0.55 + 0.45 * value_noise(r.seed ^ 0xF11C, t / 3.0, 0.0, 0.0);
        let reach = (r.radius * 2.5).ceil() as i64;
        for j in 0..gh {
            for i in 0..gw {
                let c = next[j * gw + i];
                let (il, ir) = (i.saturating_sub(1), (i + 1).min(gw - 1));
                let (ju, jd) = (j.saturating_sub(1), (j + 1).min(gh - 1));
                let lap =
                    next[j * gw + il] + next[j * gw + ir] + next[ju * gw + i] + next[jd * gw + i]
                        - 4.0 * c;
                rho[j * gw + i] = (c + 0.08 * lap) * r.decay;
            }
        }
        let (sx, sy) = r.source;
        for dj in -reach..=reach {
            for di in -reach..=reach {
                let (i, j) = (sx.round() as i64 + di, sy.round() as i64 + dj);
                if i < 0 || j < 0 || i >= gw as i64 || j >= gh as i64 {
                    continue;
                }
                let d2 =
                    ((i as f32 - sx).powi(2) + (j as f32 - sy).powi(2)) / (r.radius * r.radius);
                let v = puff * (-d2).exp();
                let cell = &mut rho[j as usize * gw + i as usize];
                *cell = cell.max(v);
            }
        }
        if step >= WARMUP {
            out.push(rho.clone());
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Scenes

/// Everything about one scene that does not change from frame to frame, plus the simulated
/// densities.
struct Scene {
    /// World = frame plus a margin on every side, so jitter never looks outside it.
    ww: usize,
    wh: usize,
    background: Vec<f32>,
    clouds: Vec<f32>,
    /// Clouds are zero from this world row down.
    cloud_rows: f32,
    cloud_speed: f32,
    /// Fine texture of the gas layer, drifting with the wind.
    grain: Vec<f32>,
    grain_drift: (f32, f32),
    column_noise: Vec<f32>,
    noise_sigma: f32,
    jitter: Vec<(f32, f32)>,
    object: Option<Mover>,
    cell: f32,
    gw: usize,
    gh: usize,
    gas: Vec<Vec<f32>>,
    gas_gain: f32,
    steam: Option<Vec<Vec<f32>>>,
    steam_gain: f32,
}

struct Mover {
    start: (f32, f32),
    velocity: (f32, f32),
    radii: (f32, f32),
    warmth: f32,
}

const MARGIN: usize = 4;
/// Density above which a pixel is gas in the mask.
pub const MASK_THRESHOLD: f32 = 0.1;

fn build_scene(cfg: &SynthConfig, index: usize) -> Scene {
    let seed = cfg.seed;
    let mut rng = rng_for(seed, 0, index as u64);
    let (w, h) = (cfg.width as usize, cfg.height as usize);
    let (ww, wh) = (w + 2 * MARGIN, h + 2 * MARGIN);
    let size = w.max(h) as f32;
    let noise_seed: u64 = rng.random();

    // Background: sky above a horizon, textured ground, a few structures.
    let horizon = rng.random_range(0.15..0.45) * wh as f32;
    let sky_level = rng.random_range(30.0..70.0f32);
    let ground_level = rng.random_range(95.0..150.0f32);
    let texture = rng.random_range(12.0..24.0f32);
    let mut background = vec![0f32; ww * wh];
    for y in 0..wh {
        for x in 0..ww {
            let (xf, yf) = (x as f32, y as f32);
            let ground = ground_level
                + texture * fractal(noise_seed, xf, yf, 0.0, size / 5.0, 5)
                + (yf - horizon) * 0.08;
            let sky = sky_level + 10.0 * (yf / horizon.max(1.0));
            let t = smooth(((yf - horizon) / 3.0 + 0.5).clamp(0.0, 1.0));
            background[y * ww + x] = sky + (ground - sky) * t;
        }
    }
    let structures = rng.random_range(2..6);
    for _ in 0..structures {
        let (cx, cy) = (
            rng.random_range(0.0..ww as f32),
            rng.random_range(horizon..wh as f32),
        );
        let (rw, rh) = if rng.random_bool(0.5) {
            (
                rng.random_range(0.1..0.3) * size,
                rng.random_range(0.01..0.03) * size,
            ) // pipe
        } else {
            (
                rng.random_range(0.05..0.15) * size,
                rng.random_range(0.05..0.2) * size,
            ) // tank
        };
        let warmth = rng.random_range(-35.0..45.0f32);
        paint_box(&mut background, ww, wh, (cx, cy), (rw, rh), warmth);
    }

    // Clouds: a soft texture over the sky, drifting sideways.
    let cloud_speed = rng.random_range(-0.6..0.6f32);
    let cloud_amp = rng.random_range(4.0..14.0f32);
    let cloud_seed: u64 = rng.random();
    let mut clouds = vec![0f32; ww * wh];
    for y in 0..wh {
        let fade = smooth((1.0 - y as f32 / horizon.max(1.0)).clamp(0.0, 1.0));
        if fade == 0.0 {
            continue;
        }
        for x in 0..ww {
            let n = fractal(cloud_seed, x as f32, y as f32 * 2.0, 0.0, size / 3.0, 3);
            clouds[y * ww + x] = cloud_amp * fade * n.max(0.0) * 2.0;
        }
    }

    // The camera.
    let noise_sigma = rng.random_range(1.0..2.5f32);
    let column_noise: Vec<f32> = (0..w).map(|_| rng.random_range(-1.0..1.0f32)).collect();
    let mut jitter = Vec::with_capacity(cfg.frames);
    let (mut jx, mut jy) = (0f32, 0f32);
    for _ in 0..cfg.frames {
        jx = (0.6 * jx + rng.random_range(-0.5..0.5f32)).clamp(-1.5, 1.5);
        jy = (0.6 * jy + rng.random_range(-0.5..0.5f32)).clamp(-1.5, 1.5);
        jitter.push((jx, jy));
    }

    // A warm object crossing the scene (most scenes).
    let object = rng.random_bool(0.6).then(|| {
        let speed = rng.random_range(0.004..0.015) * size;
        let dir = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        Mover {
            start: (
                rng.random_range(0.1..0.9) * ww as f32,
                rng.random_range(horizon..wh as f32 * 0.95),
            ),
            velocity: (dir * speed, rng.random_range(-0.2..0.2) * speed),
            radii: (
                rng.random_range(0.02..0.06) * size,
                rng.random_range(0.03..0.08) * size,
            ),
            warmth: rng.random_range(25.0..60.0f32),
        }
    });

    // The leak, simulated on a coarse grid.
    let cell = (size / 80.0).max(1.0);
    let (gw, gh) = (
        (ww as f32 / cell).ceil() as usize + 2,
        (wh as f32 / cell).ceil() as usize + 2,
    );
    let source = (
        rng.random_range(0.25..0.75) * ww as f32 / cell,
        rng.random_range(0.4..0.85) * wh as f32 / cell,
    );
    let gas_release = Release {
        source,
        radius: rng.random_range(0.02..0.04) * size / cell,
        wind_speed: rng.random_range(0.4..1.0),
        wind_angle: rng.random_range(0.0..std::f32::consts::TAU),
        wobble: rng.random_range(0.3..1.0),
        turbulence: rng.random_range(0.2..0.5),
        buoyancy: rng.random_range(0.0..0.25),
        decay: rng.random_range(0.985..0.995),
        seed: rng.random(),
    };
    let gas = simulate(&gas_release, gw, gh, cfg.frames);
    let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    let gas_gain = sign * cfg.contrast * rng.random_range(0.7..1.3f32);

    // Steam from a stack in some scenes: looks like gas, moves up fast, is not gas.
    let steam = rng.random_bool(0.3).then(|| {
        let stack = (
            rng.random_range(0.1..0.9) * ww as f32,
            rng.random_range(horizon + 0.1 * wh as f32..wh as f32 * 0.9),
        );
        let stack_width = 0.03 * size;
        paint_box(
            &mut background,
            ww,
            wh,
            (stack.0, stack.1 + 0.1 * size),
            (stack_width, 0.1 * size),
            25.0,
        );
        let release = Release {
            source: (stack.0 / cell, stack.1 / cell),
            radius: 1.5,
            wind_speed: rng.random_range(0.1..0.4),
            wind_angle: rng.random_range(0.0..std::f32::consts::TAU),
            wobble: 0.3,
            turbulence: 0.5,
            buoyancy: rng.random_range(0.6..1.0),
            decay: 0.96,
            seed: rng.random(),
        };
        simulate(&release, gw, gh, cfg.frames)
    });
    // Steam is dense and bright whatever the gas contrast.
    let steam_gain = rng.random_range(25.0..40.0f32);

    let grain_seed: u64 = rng.random();
    let mut grain = vec![0f32; ww * wh];
    for y in 0..wh {
        for x in 0..ww {
            grain[y * ww + x] = fractal(grain_seed, x as f32, y as f32, 0.0, 3.0, 2);
        }
    }
    let drift = gas_release.wind_speed * cell;
    let grain_drift = (
        drift * gas_release.wind_angle.cos(),
        drift * gas_release.wind_angle.sin() - gas_release.buoyancy * cell,
    );

    Scene {
        ww,
        wh,
        background,
        clouds,
        cloud_rows: horizon + 1.0,
        cloud_speed,
        grain,
        grain_drift,
        column_noise,
        noise_sigma,
        jitter,
        object,
        cell,
        gw,
        gh,
        gas,
        gas_gain,
        steam,
        steam_gain,
    }
}

/// Adds `warmth` inside a soft-edged box centred at `c` with half-sizes `r`.
fn paint_box(img: &mut [f32], w: usize, h: usize, c: (f32, f32), r: (f32, f32), warmth: f32) {
    let (x0, x1) = (
        (c.0 - r.0 - 2.0).max(0.0) as usize,
        ((c.0 + r.0 + 2.0) as usize).min(w),
    );
    let (y0, y1) = (
        (c.1 - r.1 - 2.0).max(0.0) as usize,
        ((c.1 + r.1 + 2.0) as usize).min(h),
    );
    for y in y0..y1 {
        for x in x0..x1 {
            let dx = (x as f32 - c.0).abs() - r.0;
            let dy = (y as f32 - c.1).abs() - r.1;
            let inside = (0.5 - dx.max(dy)).clamp(0.0, 1.0);
            img[y * w + x] += warmth * inside;
        }
    }
}

/// One frame: intensities in grey levels (0–255 scale, unclipped) and the mask.
fn render(cfg: &SynthConfig, scene: &Scene, index: usize, t: usize) -> (Vec<f32>, Vec<u8>) {
    let (w, h) = (cfg.width as usize, cfg.height as usize);
    let (jx, jy) = scene.jitter[t];
    let tf = t as f32;
    let mut rng: ChaCha8Rng = rng_for(cfg.seed, 1 + t as u64, index as u64);
    let noise = Normal::new(0.0f32, scene.noise_sigma).expect("positive sigma");
    let mut pixels = vec![0f32; w * h];
    let mut mask = vec![0u8; w * h];
    let gas = &scene.gas[t];
    let steam = scene.steam.as_ref().map(|s| &s[t]);
    let (gdx, gdy) = (scene.grain_drift.0 * tf, scene.grain_drift.1 * tf);
    for y in 0..h {
        let wy = y as f32 + MARGIN as f32 + jy;
        for x in 0..w {
            let wx = x as f32 + MARGIN as f32 + jx;
            let mut v = bilinear(&scene.background, scene.ww, scene.wh, wx, wy);
            if wy < scene.cloud_rows {
                let cx = (wx + scene.cloud_speed * tf).rem_euclid(scene.ww as f32 - 1.0);
                v += bilinear(&scene.clouds, scene.ww, scene.wh, cx, wy);
            }
            if let Some(m) = &scene.object {
                let (ox, oy) = (m.start.0 + m.velocity.0 * tf, m.start.1 + m.velocity.1 * tf);
                let d = ((wx - ox) / m.radii.0).powi(2) + ((wy - oy) / m.radii.1).powi(2);
                if d < 1.3 {
                    v += m.warmth * ((1.3 - d) / 0.5).min(1.0);
                }
            }
            let (gx, gy) = (wx / scene.cell, wy / scene.cell);
            let rho = bilinear(gas, scene.gw, scene.gh, gx, gy);
            let steam_rho = steam.map_or(0.0, |s| bilinear(s, scene.gw, scene.gh, gx, gy));
            // Most pixels see neither gas nor steam: skip their texture and opacity.
            if rho > 1e-4 || steam_rho > 1e-4 {
                let gx_grain = (wx - gdx).rem_euclid(scene.ww as f32 - 1.0);
                let gy_grain = (wy - gdy).rem_euclid(scene.wh as f32 - 1.0);
                let grain = (1.0
                    + 0.6 * bilinear(&scene.grain, scene.ww, scene.wh, gx_grain, gy_grain))
                .max(0.0);
                if steam_rho > 1e-4 {
                    v += scene.steam_gain * (1.0 - (-2.5 * steam_rho * grain).exp());
                }
                v += scene.gas_gain * (1.0 - (-2.0 * rho * grain).exp());
            }
            v += scene.column_noise[x] + noise.sample(&mut rng);
            pixels[y * w + x] = v;
            mask[y * w + x] = if rho > MASK_THRESHOLD { 255 } else { 0 };
        }
    }
    (pixels, mask)
}

fn encode_png(path: &Path, w: u32, h: u32, data: &[u8], color: ExtendedColorType) -> Result<()> {
    let mut buf = Vec::with_capacity(data.len() / 2);
    PngEncoder::new_with_quality(&mut buf, CompressionType::Fast, FilterType::Sub)
        .write_image(data, w, h, color)
        .map_err(|e| DataError::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    std::fs::write(path, buf).map_err(|e| DataError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Writes `out/<split>/<scene>/{images,masks}/<frame>.png` and `out/synth.toml`.
/// `progress` is called once per frame written.
pub fn generate(
    cfg: &SynthConfig,
    out: &Path,
    progress: &(dyn Fn() + Sync),
) -> Result<SynthReport> {
    cfg.validate().map_err(|reason| DataError::Config {
        path: out.join("synth.toml"),
        reason,
    })?;
    let mk = |p: &Path| {
        std::fs::create_dir_all(p).map_err(|e| DataError::Write {
            path: p.to_path_buf(),
            reason: e.to_string(),
        })
    };
    mk(out)?;
    let mut dirs = Vec::with_capacity(cfg.scenes);
    for (split, range) in cfg.splits() {
        for index in range {
            let dir = out.join(split).join(format!("scene_{index:03}"));
            mk(&dir.join("images"))?;
            mk(&dir.join("masks"))?;
            dirs.push(dir);
        }
    }
    let settings = toml::to_string(cfg).expect("the config serialises");
    std::fs::write(
        out.join("synth.toml"),
        format!("# fgstp synth settings that produced this dataset\n{settings}"),
    )
    .map_err(|e| DataError::Write {
        path: out.join("synth.toml"),
        reason: e.to_string(),
    })?;

    let scenes: Vec<Scene> = (0..cfg.scenes)
        .into_par_iter()
        .map(|i| build_scene(cfg, i))
        .collect();
    let jobs: Vec<(usize, usize)> = (0..cfg.scenes)
        .flat_map(|s| (0..cfg.frames).map(move |t| (s, t)))
        .collect();
    jobs.par_iter().try_for_each(|&(s, t)| -> Result<()> {
        let (pixels, mask) = render(cfg, &scenes[s], s, t);
        let name = format!("{t:05}.png");
        let (w, h) = (cfg.width, cfg.height);
        let image_path = dirs[s].join("images").join(&name);
        if cfg.bit_depth == 8 {
            let bytes: Vec<u8> = pixels
                .iter()
                .map(|&v| v.round().clamp(0.0, 255.0) as u8)
                .collect();
            encode_png(&image_path, w, h, &bytes, ExtendedColorType::L8)?;
        } else {
            // Raw counts of a 14-bit-ish sensor: an offset plus 20 counts per grey level.
            let bytes: Vec<u8> = pixels
                .iter()
                .flat_map(|&v| {
                    ((v * 20.0 + 6000.0).round().clamp(0.0, 65535.0) as u16).to_ne_bytes()
                })
                .collect();
            encode_png(&image_path, w, h, &bytes, ExtendedColorType::L16)?;
        }
        encode_png(
            &dirs[s].join("masks").join(&name),
            w,
            h,
            &mask,
            ExtendedColorType::L8,
        )?;
        progress();
        Ok(())
    })?;
    Ok(SynthReport {
        frames: jobs.len(),
        scenes: cfg.scenes,
        root: out.to_path_buf(),
    })
}
