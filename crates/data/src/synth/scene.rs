//! One scene: what it contains (a [`Plan`], drawn from the config's shares), its static parts
//! and simulated releases ([`Scene`]), and its frames ([`render`]).

use rand::rngs::ChaCha8Rng;
use rand::RngExt;
use rand_distr::{Distribution, Normal};

use super::config::{grid_cell, grid_size, SynthConfig, MARGIN};
use super::noise::{bilinear, fractal, smooth};
use super::plume::{simulate, Release, Schedule};
use crate::sample::rng_for;

/// Stream of the random draws that decide a scene's [`Plan`], apart from those that draw its
/// looks (stream 0) and its frames' noise (streams 1 + frame).
const PLAN_STREAM: u64 = u64::MAX;
/// Stream of the draws of the elements a plan adds (equipment, distractors, leak timing).
const ELEMENT_STREAM: u64 = u64::MAX - 1;

/// Density above which a pixel is gas in the mask.
pub const MASK_THRESHOLD: f32 = 0.1;

/// A person or a vehicle crossing the scene.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crosser {
    Person,
    Vehicle,
}

/// The leak of a scene.
#[derive(Clone, Debug, PartialEq)]
pub struct LeakPlan {
    /// The leak comes from a point without visible equipment (a crack in the ground or a
    /// wall) instead of the end of a pipe.
    pub hidden_source: bool,
    /// Frames in which the leak releases gas, `[start, stop)`; a leak running since before
    /// the video has a negative start, one that never stops a stop past the last frame.
    pub windows: Vec<(i64, i64)>,
}

/// What one scene contains.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// `None`: a leak-free scene (empty masks, same equipment and distractors).
    pub leak: Option<LeakPlan>,
    /// Pipe ends that never leak (besides the one that leaks, if any).
    pub idle_pipes: usize,
    pub shimmer: bool,
    pub steam: bool,
    pub crosser: Option<Crosser>,
    /// The frame a thermal camera's flat-field correction blanks, if any.
    pub nuc_frame: Option<usize>,
    /// The first frame of a short camera shake, if any.
    pub shake_from: Option<usize>,
}

impl Plan {
    /// Draws scene `index`'s plan from the config's shares. `leak_free` comes from
    /// [`SynthConfig::leak_free`], which spreads leak-free scenes evenly over the splits.
    pub fn draw(cfg: &SynthConfig, index: usize) -> Plan {
        let mut rng = rng_for(cfg.seed, PLAN_STREAM, index as u64);
        let frames = cfg.frames as i64;
        let mut chance = |p: f32| rng.random::<f32>() < p;
        let starts = chance(cfg.onsets);
        let stops = chance(cfg.stops);
        let hidden_source = chance(cfg.hidden_sources);
        let shimmer = chance(cfg.shimmer);
        let steam = chance(cfg.steam);
        let crosses = chance(cfg.crossers);
        let nuc = chance(cfg.nuc);
        let shake = chance(cfg.shake);
        let leak = (!cfg.leak_free(index)).then(|| {
            // Onsets and stops leave at least one frame with and one without gas.
            let start = if starts && frames >= 4 {
                rng.random_range(1..frames / 2)
            } else {
                -(super::plume::WARMUP as i64) - 1
            };
            let stop = if stops && frames >= 4 {
                rng.random_range((start.max(0) + 2).min(frames - 1)..frames)
            } else {
                i64::MAX
            };
            LeakPlan {
                hidden_source,
                windows: vec![(start, stop)],
            }
        });
        Plan {
            leak,
            idle_pipes: rng.random_range(0..=cfg.idle_pipes as usize),
            shimmer,
            steam,
            crosser: crosses.then(|| {
                if rng.random_bool(0.5) {
                    Crosser::Person
                } else {
                    Crosser::Vehicle
                }
            }),
            nuc_frame: (nuc && cfg.frames >= 2).then(|| rng.random_range(1..cfg.frames)),
            shake_from: shake.then(|| rng.random_range(0..cfg.frames.saturating_sub(1).max(1))),
        }
    }
}

/// Everything about one scene that does not change from frame to frame, plus the simulated
/// densities.
pub(crate) struct Scene {
    /// World = frame plus a margin on every side.
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
    /// Camera displacement per frame (sub-pixel jitter plus any shake), world pixels.
    jitter: Vec<(f32, f32)>,
    crosser: Option<Mover>,
    shimmer: Option<Shimmer>,
    nuc: Option<Nuc>,
    cell: f32,
    gw: usize,
    gh: usize,
    gas: Option<Vec<Vec<f32>>>,
    gas_gain: f32,
    steam: Option<Vec<Vec<f32>>>,
    steam_gain: f32,
    /// The grey level of dense steam.
    steam_level: f32,
}

struct Mover {
    kind: Crosser,
    start: (f32, f32),
    velocity: (f32, f32),
    /// Half width and half height.
    radii: (f32, f32),
    warmth: f32,
}

/// Hot air above a hot surface bends the light: the background behind it wobbles.
struct Shimmer {
    /// World box `(x0, y0, x1, y1)` of the shimmering air.
    area: (f32, f32, f32, f32),
    amplitude: f32,
    seed: u64,
}

/// The shutter of a flat-field correction: one frame shows the shutter (flat), the following
/// ones an offset.
struct Nuc {
    frame: usize,
    flat_level: f32,
    offset: f32,
}

pub(crate) fn build_scene(cfg: &SynthConfig, index: usize, plan: &Plan) -> Scene {
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

    // The leak's release parameters (drawn in every scene, so that a scene looks the same
    // whether or not its leak is switched on).
    let cell = grid_cell(w, h);
    let (gw, gh) = grid_size(w, h);
    let free_source = (
        rng.random_range(0.25..0.75) * ww as f32,
        rng.random_range(0.4..0.85) * wh as f32,
    );
    let mut gas_release = Release {
        source: (free_source.0 / cell, free_source.1 / cell),
        radius: rng.random_range(0.02..0.04) * size / cell,
        wind_speed: rng.random_range(0.4..1.0),
        wind_angle: rng.random_range(0.0..std::f32::consts::TAU),
        wobble: rng.random_range(0.3..1.0),
        turbulence: rng.random_range(0.2..0.5),
        buoyancy: rng.random_range(0.0..0.25),
        decay: rng.random_range(0.985..0.995),
        seed: rng.random(),
        schedule: Schedule::always(),
    };
    let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    let gas_gain = sign * cfg.contrast * rng.random_range(0.7..1.3f32);
    let grain_seed: u64 = rng.random();

    // Equipment, distractors and leak timing, drawn from their own stream.
    let mut rng = rng_for(seed, ELEMENT_STREAM, index as u64);

    // Pipes ending in a flange, one per leak at a pipe end and one per idle pipe: leak-free
    // scenes have the same pipe ends, so a pipe end alone never means gas.
    let leaking_pipe = plan.leak.as_ref().is_some_and(|l| !l.hidden_source);
    let pipe_ends = plan.idle_pipes + usize::from(leaking_pipe || plan.leak.is_none());
    let mut ends = Vec::with_capacity(pipe_ends);
    for p in 0..pipe_ends {
        // The first pipe of a leaking scene ends where its free source would be.
        let end = if p == 0 && leaking_pipe {
            free_source
        } else {
            (
                rng.random_range(0.15..0.85) * ww as f32,
                rng.random_range(horizon / wh as f32 + 0.1..0.9) * wh as f32,
            )
        };
        ends.push(paint_pipe_end(&mut background, ww, wh, size, end, &mut rng));
    }
    if leaking_pipe {
        gas_release.source = (ends[0].0 / cell, ends[0].1 / cell);
    }

    // Hot surface with shimmering air above it.
    let shimmer = plan.shimmer.then(|| {
        let (cx, cy) = (
            rng.random_range(0.2..0.8) * ww as f32,
            rng.random_range((horizon / wh as f32 + 0.2).min(0.8)..0.9) * wh as f32,
        );
        let (rw, rh) = (
            rng.random_range(0.08..0.18) * size,
            rng.random_range(0.02..0.05) * size,
        );
        paint_box(
            &mut background,
            ww,
            wh,
            (cx, cy),
            (rw, rh),
            rng.random_range(40.0..70.0f32),
        );
        let rise = rng.random_range(0.12..0.25) * size;
        Shimmer {
            area: (cx - rw, cy - rh - rise, cx + rw, cy - rh),
            amplitude: rng.random_range(0.6..1.5f32),
            seed: rng.random(),
        }
    });

    // A person or a vehicle crossing.
    let crosser = plan.crosser.map(|kind| {
        let dir = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        let (speed, radii, warmth) = match kind {
            Crosser::Person => (
                rng.random_range(0.006..0.015) * size,
                (
                    rng.random_range(0.015..0.025) * size,
                    rng.random_range(0.05..0.08) * size,
                ),
                rng.random_range(30.0..60.0f32),
            ),
            Crosser::Vehicle => (
                rng.random_range(0.02..0.04) * size,
                (
                    rng.random_range(0.08..0.14) * size,
                    rng.random_range(0.03..0.05) * size,
                ),
                rng.random_range(15.0..35.0f32),
            ),
        };
        // Half the way across the view when the video is half over.
        let mid = rng.random_range(0.2..0.8) * ww as f32;
        let start_x = mid - dir * speed * cfg.frames as f32 / 2.0;
        Mover {
            kind,
            start: (
                start_x,
                rng.random_range((horizon / wh as f32 + 0.1).min(0.8)..0.9) * wh as f32,
            ),
            velocity: (dir * speed, 0.0),
            radii,
            warmth,
        }
    });

    // A flat-field correction: the shutter frame, then a small offset.
    let nuc = plan.nuc_frame.map(|frame| Nuc {
        frame,
        flat_level: rng.random_range(80.0..140.0f32),
        offset: rng.random_range(2.0..5.0f32) * if rng.random_bool(0.5) { 1.0 } else { -1.0 },
    });

    // A short shake: two or three frames displaced by up to 3.5 pixels.
    if let Some(from) = plan.shake_from {
        let length = rng.random_range(2..=3usize);
        for (t, j) in jitter.iter_mut().enumerate().skip(from).take(length) {
            let angle = rng.random_range(0.0..std::f32::consts::TAU);
            let r = rng.random_range(2.0..3.5f32);
            j.0 += r * angle.cos();
            j.1 += r * angle.sin();
            debug_assert!(t < cfg.frames);
        }
    }

    // Steam from a stack: brighter, slower and more opaque than gas; never in the mask.
    let steam = plan.steam.then(|| {
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
            radius: 3.0,
            wind_speed: rng.random_range(0.05..0.2),
            wind_angle: rng.random_range(0.0..std::f32::consts::TAU),
            wobble: 0.3,
            turbulence: 0.3,
            buoyancy: rng.random_range(0.15..0.35),
            decay: 0.97,
            seed: rng.random(),
            schedule: Schedule::always(),
        };
        simulate(&release, gw, gh, cfg.frames)
    });
    // Well above the brightest plume of the usual contrasts (up to about 100 grey levels at
    // `contrast` 90): dense steam is near the sensor's top, as hot condensing vapour is.
    let steam_gain = rng.random_range(100.0..140.0f32);
    let steam_level = ground_level + steam_gain;

    let gas = plan.leak.as_ref().map(|leak| {
        gas_release.schedule = Schedule {
            windows: leak.windows.clone(),
        };
        simulate(&gas_release, gw, gh, cfg.frames)
    });

    let mut grain = vec![0f32; ww * wh];
    for y in 0..wh {
        for x in 0..ww {
            grain[y * ww + x] = fractal(grain_seed, x as f32, y as f32, 0.0, 3.0, 2);
        }
    }
    let (dx, dy) = gas_release.drift();
    let grain_drift = (dx * cell, dy * cell);

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
        crosser,
        shimmer,
        nuc,
        cell,
        gw,
        gh,
        gas,
        gas_gain,
        steam,
        steam_gain,
        steam_level,
    }
}

/// Paints a pipe that ends in a flange at `end` (world pixels), coming from the left, the
/// right or below; returns where gas leaking from it starts (just past the flange).
fn paint_pipe_end(
    img: &mut [f32],
    w: usize,
    h: usize,
    size: f32,
    end: (f32, f32),
    rng: &mut ChaCha8Rng,
) -> (f32, f32) {
    let thickness = rng.random_range(0.012..0.022) * size;
    let length = rng.random_range(0.15..0.35) * size;
    let warmth = if rng.random_bool(0.7) {
        rng.random_range(15.0..40.0f32)
    } else {
        rng.random_range(-30.0..-12.0f32)
    };
    let flange = (thickness * 1.8, thickness * 0.6);
    let (ex, ey) = end;
    match rng.random_range(0..3) {
        0 | 1 => {
            let dir = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            // Horizontal pipe ending at x = ex, coming from the side opposite to `dir`.
            paint_box(
                img,
                w,
                h,
                (ex - dir * length / 2.0, ey),
                (length / 2.0, thickness),
                warmth,
            );
            paint_box(img, w, h, (ex, ey), (flange.1, flange.0), warmth * 1.3);
            (ex + dir * (flange.1 + 1.0), ey)
        }
        _ => {
            // Vertical pipe rising from below to y = ey.
            paint_box(
                img,
                w,
                h,
                (ex, ey + length / 2.0),
                (thickness, length / 2.0),
                warmth,
            );
            paint_box(img, w, h, (ex, ey), (flange.0, flange.1), warmth * 1.3);
            (ex, ey - flange.1 - 1.0)
        }
    }
}

/// Adds `warmth` inside a soft-edged box centred at `c` with half-sizes `r`.
fn paint_box(img: &mut [f32], w: usize, h: usize, c: (f32, f32), r: (f32, f32), warmth: f32) {
    let (x0, x1) = (
        (c.0 - r.0 - 2.0).max(0.0) as usize,
        ((c.0 + r.0 + 2.0).max(0.0) as usize).min(w),
    );
    let (y0, y1) = (
        (c.1 - r.1 - 2.0).max(0.0) as usize,
        ((c.1 + r.1 + 2.0).max(0.0) as usize).min(h),
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

impl Mover {
    /// Warmth added at world point (x, y) at time t.
    fn warmth_at(&self, x: f32, y: f32, t: f32) -> f32 {
        let (cx, cy) = (self.start.0 + self.velocity.0 * t, self.start.1);
        let (rx, ry) = self.radii;
        match self.kind {
            Crosser::Person => {
                // A body and a head above it.
                let body = ((x - cx) / rx).powi(2) + ((y - cy) / ry).powi(2);
                let hr = rx * 0.8;
                let head = ((x - cx).powi(2) + (y - (cy - ry - hr * 0.8)).powi(2)) / (hr * hr);
                let d = body.min(head);
                if d < 1.3 {
                    self.warmth * ((1.3 - d) / 0.5).min(1.0)
                } else {
                    0.0
                }
            }
            Crosser::Vehicle => {
                let (dx, dy) = ((x - cx).abs() - rx, (y - cy).abs() - ry);
                let body = (0.5 - dx.max(dy)).clamp(0.0, 1.0) * self.warmth;
                // The engine at the front runs hot.
                let front = cx + self.velocity.0.signum() * rx * 0.7;
                let engine = ((x - front).powi(2) + (y - cy).powi(2)) / (ry * ry * 0.5);
                body + if engine < 1.0 {
                    30.0 * (1.0 - engine)
                } else {
                    0.0
                }
            }
        }
    }
}

impl Scene {
    /// The same scene with its leak taken out (a twin: everything else stays as it was).
    pub(crate) fn without_gas(self) -> Scene {
        Scene { gas: None, ..self }
    }
}

/// One frame: intensities in grey levels (0–255 scale, unclipped) and the mask.
pub(crate) fn render(
    cfg: &SynthConfig,
    scene: &Scene,
    index: usize,
    t: usize,
) -> (Vec<f32>, Vec<u8>) {
    let (w, h) = (cfg.width as usize, cfg.height as usize);
    let (jx, jy) = scene.jitter[t];
    let tf = t as f32;
    let mut rng: ChaCha8Rng = rng_for(cfg.seed, 1 + t as u64, index as u64);
    let noise = Normal::new(0.0f32, scene.noise_sigma).expect("positive sigma");
    let mut pixels = vec![0f32; w * h];
    let mut mask = vec![0u8; w * h];
    let gas = scene.gas.as_ref().map(|g| &g[t]);
    let steam = scene.steam.as_ref().map(|s| &s[t]);
    let (gdx, gdy) = (scene.grain_drift.0 * tf, scene.grain_drift.1 * tf);
    let shutter = scene.nuc.as_ref().filter(|n| n.frame == t);
    let nuc_offset = scene
        .nuc
        .as_ref()
        .filter(|n| t > n.frame)
        .map_or(0.0, |n| n.offset);
    for y in 0..h {
        let wy = y as f32 + MARGIN as f32 + jy;
        for x in 0..w {
            let wx = x as f32 + MARGIN as f32 + jx;
            if let Some(n) = shutter {
                // The shutter fills the view: a flat, slightly vignetted frame, no scene.
                let (u, v) = (x as f32 / w as f32 - 0.5, y as f32 / h as f32 - 0.5);
                pixels[y * w + x] = n.flat_level - 12.0 * (u * u + v * v)
                    + scene.column_noise[x]
                    + noise.sample(&mut rng);
                continue;
            }
            let (mut bx, mut by) = (wx, wy);
            if let Some(s) = &scene.shimmer {
                let (x0, y0, x1, y1) = s.area;
                if wx > x0 && wx < x1 && wy > y0 && wy < y1 {
                    // Strongest just above the surface, fading upwards and at the sides.
                    let up = ((y1 - wy) / (y1 - y0)).clamp(0.0, 1.0);
                    let side = ((wx - x0).min(x1 - wx) / 3.0).min(1.0);
                    let a = s.amplitude * (1.0 - up) * side;
                    bx += a * fractal(s.seed, wx, wy * 1.5, tf * 0.9, 4.0, 2);
                    by += a * fractal(s.seed ^ 0x5EED, wx, wy * 1.5, tf * 0.9, 4.0, 2);
                }
            }
            let mut v = bilinear(&scene.background, scene.ww, scene.wh, bx, by);
            if wy < scene.cloud_rows {
                let cx = (wx + scene.cloud_speed * tf).rem_euclid(scene.ww as f32 - 1.0);
                v += bilinear(&scene.clouds, scene.ww, scene.wh, cx, wy);
            }
            if let Some(m) = &scene.crosser {
                v += m.warmth_at(wx, wy, tf);
            }
            let (gx, gy) = (wx / scene.cell, wy / scene.cell);
            let rho = gas.map_or(0.0, |g| bilinear(g, scene.gw, scene.gh, gx, gy));
            let steam_rho = steam.map_or(0.0, |s| bilinear(s, scene.gw, scene.gh, gx, gy));
            // Most pixels see neither gas nor steam: skip their texture and opacity.
            if rho > 1e-4 || steam_rho > 1e-4 {
                let gx_grain = (wx - gdx).rem_euclid(scene.ww as f32 - 1.0);
                let gy_grain = (wy - gdy).rem_euclid(scene.wh as f32 - 1.0);
                let grain = bilinear(&scene.grain, scene.ww, scene.wh, gx_grain, gy_grain);
                if steam_rho > 1e-4 {
                    let opacity = 1.0 - (-4.0 * steam_rho * (1.0 + 0.3 * grain)).exp();
                    // Mostly hides what is behind it, unlike the thin gas layer.
                    let cover = 0.8 * opacity;
                    v += (scene.steam_level - v) * cover + scene.steam_gain * (opacity - cover);
                }
                v += scene.gas_gain * (1.0 - (-2.0 * rho * (1.0 + 0.6 * grain).max(0.0)).exp());
            }
            v += nuc_offset + scene.column_noise[x] + noise.sample(&mut rng);
            pixels[y * w + x] = v;
            mask[y * w + x] = if rho > MASK_THRESHOLD { 255 } else { 0 };
        }
    }
    (pixels, mask)
}
