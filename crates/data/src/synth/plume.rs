//! The gas (or steam) density of a release, simulated on a coarse grid: advected by a wind that
//! wobbles, by divergence-free turbulence (the curl of moving noise) and by buoyancy,
//! diffused, decaying, and fed by a flickering source that can start and stop.

use super::noise::{bilinear, fractal, value_noise};

/// Frames simulated before the first one, so that a release running since before the video
/// has a developed plume in its first frame.
pub(crate) const WARMUP: usize = 20;
/// Simulation steps per frame: gas moves about a cell per step, so a starting leak fills a
/// plume within a few frames instead of creeping out of its source.
const STEPS_PER_FRAME: usize = 2;
/// Frames over which a starting release ramps up to full strength.
const RAMP_FRAMES: f32 = 2.0;
/// Extra decay per frame (spread over its steps) of the gas left behind after a release stops: it dissipates over a
/// few frames instead of lingering for hundreds.
const DISSIPATION: f32 = 0.35;

/// When a release emits, in frames of the video (negative = before the first frame).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Schedule {
    /// `[start, stop)` windows, sorted and disjoint; `stop` may lie beyond the last frame.
    pub windows: Vec<(i64, i64)>,
}

impl Schedule {
    /// Emitting since long before the video and throughout it.
    pub fn always() -> Self {
        Schedule {
            windows: vec![(-(WARMUP as i64) - 1, i64::MAX)],
        }
    }

    /// Source strength at `frame` (0 = not emitting, 1 = full) and whether the gas left over
    /// from a stopped release is dissipating.
    fn at(&self, frame: i64) -> (f32, bool) {
        let mut stopped = false;
        for &(start, stop) in &self.windows {
            if frame >= start && frame < stop {
                let ramp = ((frame - start + 1) as f32 / RAMP_FRAMES).min(1.0);
                return (ramp, false);
            }
            if frame >= stop {
                stopped = true;
            }
        }
        (0.0, stopped)
    }
}

/// A gas (or steam) release, in grid cells and frames.
pub(crate) struct Release {
    pub source: (f32, f32),
    pub radius: f32,
    pub wind_speed: f32,
    pub wind_angle: f32,
    pub wobble: f32,
    pub turbulence: f32,
    pub buoyancy: f32,
    pub decay: f32,
    pub seed: u64,
    pub schedule: Schedule,
}

impl Release {
    /// The drift of the plume (and its texture) per frame, in cells.
    pub fn drift(&self) -> (f32, f32) {
        let steps = STEPS_PER_FRAME as f32;
        (
            steps * self.wind_speed * self.wind_angle.cos(),
            steps * (self.wind_speed * self.wind_angle.sin() - self.buoyancy),
        )
    }
}

/// Density on a `gw`×`gh` grid for each of `frames` frames (after a warm-up).
pub(crate) fn simulate(r: &Release, gw: usize, gh: usize, frames: usize) -> Vec<Vec<f32>> {
    let mut rho = vec![0f32; gw * gh];
    let mut next = vec![0f32; gw * gh];
    let mut psi = vec![0f32; gw * gh];
    let mut out = Vec::with_capacity(frames);
    let turb_scale = 6.0f32;
    let mut empty = true;
    let dissipation = DISSIPATION.powf(1.0 / STEPS_PER_FRAME as f32);
    for step in 0..(WARMUP + frames) * STEPS_PER_FRAME {
        let t = step as f32;
        let frame = (step / STEPS_PER_FRAME) as i64 - WARMUP as i64;
        // The frame is taken after its last step.
        let shown = frame >= 0 && (step + 1) % STEPS_PER_FRAME == 0;
        let (strength, dissipating) = r.schedule.at(frame);
        if empty && strength == 0.0 {
            // Nothing released yet: nothing to move.
            if shown {
                out.push(rho.clone());
            }
            continue;
        }
        empty = false;
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
        // Diffusion, decay (faster once the release has stopped), and the flickering source.
        let decay = if dissipating {
            r.decay * dissipation
        } else {
            r.decay
        };
        for j in 0..gh {
            for i in 0..gw {
                let c = next[j * gw + i];
                let (il, ir) = (i.saturating_sub(1), (i + 1).min(gw - 1));
                let (ju, jd) = (j.saturating_sub(1), (j + 1).min(gh - 1));
                let lap =
                    next[j * gw + il] + next[j * gw + ir] + next[ju * gw + i] + next[jd * gw + i]
                        - 4.0 * c;
                rho[j * gw + i] = (c + 0.08 * lap) * decay;
            }
        }
        if strength > 0.0 {
            let puff = strength * (0.7 + 0.3 * value_noise(r.seed ^ 0xF11C, t / 3.0, 0.0, 0.0));
            let reach = (r.radius * 2.5).ceil() as i64;
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
        }
        if shown {
            out.push(rho.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_ramps_up_at_its_start_and_dissipates_after_its_stop() {
        let s = Schedule {
            windows: vec![(3, 6)],
        };
        assert_eq!(s.at(2), (0.0, false));
        assert_eq!(s.at(3), (0.5, false));
        assert_eq!(s.at(4), (1.0, false));
        assert_eq!(s.at(6), (0.0, true));
        assert_eq!(Schedule::always().at(-(WARMUP as i64)), (1.0, false));
    }
}
