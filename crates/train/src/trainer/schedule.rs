//! Learning-rate schedules (`train.lr_schedule`), each a pure function of where training stands,
//! so a resumed run continues exactly:
//!
//! - "epoch-step" — FGSTP's and SLT-Net's `adjust_lr`, once per epoch: `lr · rate^(epoch / every)`;
//! - "iteration-step" — ZoomNeXt's "step" scheduler with an integer milestone, every step:
//!   `lr · rate^((step + 1) / milestone)`, milestone = steps · n / d (ZoomNeXt: 2/3 of the run);
//! - "constant" — ZoomNeXt's video fine-tuning;
//! - "cyclic-cosine" — SLT-Net long-term's `CyclicLRWithRestarts` as its training loop drives
//!   it: `scheduler.step()` (meant once per epoch) and `scheduler.batch_step()` around every
//!   optimiser step, so each step advances the cosine by one "epoch" (see [`CyclicConfig`]).

use crate::run_config::{CyclicConfig, LrSchedule, TrainConfig};

/// Where training stands for the schedule: the optimiser step about to be taken (0-based,
/// counted over the run), its epoch (1-based) and the run's total number of steps.
#[derive(Clone, Copy, Debug)]
pub struct At {
    pub step: u64,
    pub epoch: usize,
    pub total_steps: u64,
}

/// How a parameter group's learning rate follows from its base rate at one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LrRule {
    /// `base · coefficient` (the step schedules and "constant").
    Scale(f64),
    /// `min_lr + (base − min_lr)·eta`, eta the cosine position in [0, 1].
    Cosine { eta: f64, min_lr: f64 },
}

/// Learning rate and weight decay at one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    pub rule: LrRule,
    pub weight_decay: f64,
}

impl Rates {
    /// The learning rate of a parameter group whose base rate is `base`.
    pub fn lr(&self, base: f64) -> f64 {
        match self.rule {
            LrRule::Scale(coefficient) => base * coefficient,
            LrRule::Cosine { eta, min_lr } => min_lr + (base - min_lr) * eta,
        }
    }
}

/// The cosine position at `step` (0-based): (t, period) of the reference's scheduler.
pub fn cyclic_position(cfg: &CyclicConfig, step: u64) -> (u64, u64) {
    // The first cycle runs t = 0 … P (its `t_epoch` starts at −1 and the first `step()` makes it
    // 0); at t = P the restart check fires (after the rate is computed), P grows and t restarts,
    // so later cycles run t = 1 … P.
    let mut period = cfg.period.max(1);
    if step <= period {
        return (step, period);
    }
    let mut start = period + 1; // first step of the current cycle, whose t = 1
    if cfg.t_mult == 1.0 {
        // Cycles of one length: no walk over them (a step at a time with period 1).
        return ((step - start) % period + 1, period);
    }
    loop {
        period = (period as f64 * cfg.t_mult).ceil() as u64;
        if step < start.saturating_add(period) {
            return (step - start + 1, period);
        }
        start = start.saturating_add(period);
    }
}

/// The rates at `at` under the configured schedule.
pub fn rates(cfg: &TrainConfig, at: At) -> Rates {
    let step_rates = |coefficient: f64| Rates {
        rule: LrRule::Scale(coefficient),
        weight_decay: cfg.weight_decay,
    };
    match cfg.lr_schedule {
        LrSchedule::EpochStep => step_rates(step_lr(
            1.0,
            at.epoch,
            cfg.lr_decay_rate,
            cfg.lr_decay_every,
        )),
        LrSchedule::Constant => step_rates(1.0),
        LrSchedule::IterationStep => {
            let [numerator, denominator] = cfg.lr_milestone;
            let milestone = (at.total_steps * numerator / denominator.max(1)).max(1);
            step_rates(cfg.lr_decay_rate.powf(((at.step + 1) / milestone) as f64))
        }
        LrSchedule::CyclicCosine => {
            let c = &cfg.cyclic;
            let (t, period) = cyclic_position(c, at.step);
            let eta = 0.5 * (1.0 + (std::f64::consts::PI * (t as f64 / period as f64)).cos());
            let norm = (cfg.batch_size as f64 / (c.epoch_size as f64 * period as f64)).sqrt();
            Rates {
                rule: LrRule::Cosine {
                    eta,
                    min_lr: c.min_lr,
                },
                weight_decay: cfg.weight_decay * eta * norm,
            }
        }
    }
}

/// The reference's step decay: `lr · rate^(epoch / every)`, epochs counted from 1.
pub fn step_lr(base_lr: f64, epoch: usize, decay_rate: f64, decay_every: usize) -> f64 {
    base_lr * decay_rate.powi((epoch / decay_every.max(1)) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_cycles_restart_with_growing_periods() {
        let c = CyclicConfig::default();
        let positions: Vec<(u64, u64)> = (0..20).map(|k| cyclic_position(&c, k)).collect();
        assert_eq!(
            positions,
            [
                (0, 5),
                (1, 5),
                (2, 5),
                (3, 5),
                (4, 5),
                (5, 5),
                (1, 6),
                (2, 6),
                (3, 6),
                (4, 6),
                (5, 6),
                (6, 6),
                (1, 8),
                (2, 8),
                (3, 8),
                (4, 8),
                (5, 8),
                (6, 8),
                (7, 8),
                (8, 8)
            ]
        );
        // Periods 5, 6, 8, 10, 12, 15, 18: the steps where t = P.
        let ends: Vec<u64> = (0..90)
            .filter(|&k| {
                let (t, p) = cyclic_position(&c, k);
                t == p
            })
            .collect();
        assert_eq!(ends, [5, 11, 19, 29, 41, 56, 74]);
    }

    #[test]
    fn cycles_of_one_length_are_placed_without_walking_them() {
        let c = CyclicConfig {
            period: 3,
            t_mult: 1.0,
            ..CyclicConfig::default()
        };
        let t: Vec<u64> = (0..11).map(|k| cyclic_position(&c, k).0).collect();
        assert_eq!(t, [0, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1]);
        let one = CyclicConfig {
            period: 1,
            t_mult: 1.0,
            ..CyclicConfig::default()
        };
        assert_eq!(cyclic_position(&one, 1 << 50), (1, 1));
        // The largest growth the configuration takes, at a step far beyond any run: no overflow.
        let steep = CyclicConfig {
            period: 1_000_000,
            t_mult: 100.0,
            ..CyclicConfig::default()
        };
        assert!(cyclic_position(&steep, u64::MAX - 1).0 >= 1);
    }
}
