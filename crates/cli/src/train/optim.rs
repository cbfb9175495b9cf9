//! Adam exactly as `torch.optim.Adam` computes it on CPU (its single-tensor path), with the
//! reference's clip-by-value and step decay — and, unlike tch's optimiser wrapper, with state
//! we can save and restore, so that a resumed run continues bit for bit.

use anyhow::{bail, Context, Result};
use fgstp_model::backend::{self, AdamHyper};
use tch::{nn::VarStore, Tensor};

#[derive(Clone, Copy, Debug)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    /// PyTorch's defaults, at the reference's learning rate.
    fn default() -> Self {
        Self {
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

struct ParamState {
    name: String,
    param: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    /// PyTorch counts steps per parameter: one that never received a gradient is not advanced.
    step: i64,
}

pub struct Adam {
    cfg: AdamConfig,
    params: Vec<ParamState>,
}

/// Prefix of every optimiser entry in a checkpoint (beside the model's own keys), dropped when
/// only the weights are wanted.
pub const STATE_PREFIX: &str = "optimizer.";
/// Prefixes of the optimiser's entries, each under [`STATE_PREFIX`].
pub const EXP_AVG: &str = "optimizer.exp_avg.";
pub const EXP_AVG_SQ: &str = "optimizer.exp_avg_sq.";
pub const STEP: &str = "optimizer.step.";

impl Adam {
    /// Optimises every trainable variable of `vs`, in name order (a stable order for clipping
    /// and checkpoints; Adam's update is per tensor, so the order does not change values).
    pub fn new(vs: &VarStore, cfg: AdamConfig) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let params = vars
            .into_iter()
            .map(|(name, param)| ParamState {
                exp_avg: param.zeros_like(),
                exp_avg_sq: param.zeros_like(),
                name,
                param,
                step: 0,
            })
            .collect();
        Self { cfg, params }
    }

    pub fn lr(&self) -> f64 {
        self.cfg.lr
    }

    pub fn set_lr(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.param.zero_grad();
        }
    }

    /// Clamps every gradient to [-max, max] (the reference's `clip_gradient`).
    /// Clamps every gradient to [-max, max] (the reference's `clip_gradient`).
    pub fn clip_grad_value(&mut self, max: f64) -> Result<()> {
        let params: Vec<&Tensor> = self.params.iter().map(|p| &p.param).collect();
        backend::clamp_grads(&params, max)
    }

    /// One step for every parameter that has a gradient, computed by libtorch as
    /// `torch.optim.Adam` computes it (see [`backend::adam_step`]).
    pub fn step(&mut self) -> Result<()> {
        let AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.cfg;
        let params: Vec<&Tensor> = self.params.iter().map(|p| &p.param).collect();
        let exp_avgs: Vec<&Tensor> = self.params.iter().map(|p| &p.exp_avg).collect();
        let exp_avg_sqs: Vec<&Tensor> = self.params.iter().map(|p| &p.exp_avg_sq).collect();
        let mut steps: Vec<i64> = self.params.iter().map(|p| p.step).collect();
        let hyper = AdamHyper {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        };
        backend::adam_step(&params, &exp_avgs, &exp_avg_sqs, &mut steps, hyper)?;
        for (p, step) in self.params.iter_mut().zip(steps) {
            p.step = step;
        }
        Ok(())
    }

    /// The optimiser state as named tensors, to store beside the model's weights.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(3 * self.params.len());
        for p in &self.params {
            out.push((format!("{EXP_AVG}{}", p.name), p.exp_avg.shallow_clone()));
            out.push((
                format!("{EXP_AVG_SQ}{}", p.name),
                p.exp_avg_sq.shallow_clone(),
            ));
            out.push((format!("{STEP}{}", p.name), Tensor::from_slice(&[p.step])));
        }
        out
    }

    /// Restores what [`Adam::state_tensors`] saved; every parameter's state must be present.
    pub fn load_state(&mut self, get: impl Fn(&str) -> Option<Tensor>) -> Result<()> {
        for p in &mut self.params {
            let fetch = |prefix: &str| {
                get(&format!("{prefix}{}", p.name)).with_context(|| {
                    format!("checkpoint has no optimiser entry {prefix}{}", p.name)
                })
            };
            let (exp_avg, exp_avg_sq) = (fetch(EXP_AVG)?, fetch(EXP_AVG_SQ)?);
            if exp_avg.size() != p.param.size() || exp_avg_sq.size() != p.param.size() {
                bail!(
                    "optimiser state for {} has shape {:?}, the parameter {:?}",
                    p.name,
                    exp_avg.size(),
                    p.param.size()
                );
            }
            p.step = fetch(STEP)?.int64_value(&[0]);
            tch::no_grad(|| {
                p.exp_avg.copy_(&exp_avg);
                p.exp_avg_sq.copy_(&exp_avg_sq);
            });
        }
        Ok(())
    }
}

/// The reference's step decay: `lr · rate^(epoch / every)`, epochs counted from 1.
pub fn step_lr(base_lr: f64, epoch: usize, decay_rate: f64, decay_every: usize) -> f64 {
    base_lr * decay_rate.powi((epoch / decay_every.max(1)) as i32)
}
