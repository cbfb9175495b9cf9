//! Adam exactly as `torch.optim.Adam` computes it on CPU (its single-tensor path), and SLT-Net's
//! own AdamW (`utils/adamw.py`, its long-term model's optimiser), with parameter groups (a
//! learning-rate factor per parameter), the reference's clip-by-value and step decay — and,
//! unlike tch's optimiser wrapper, with state we can save and restore, so that a resumed run
//! continues bit for bit.

use anyhow::{bail, Context, Result};
use fgstp_model::runtime::optim_kernels::{self, AdamHyper, AdamSlot};
use tch::{nn::VarStore, Tensor};

pub use fgstp_model::runtime::optim_kernels::AdamRule;

#[derive(Clone, Copy, Debug)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub rule: AdamRule,
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
            rule: AdamRule::Torch,
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
    /// The parameter group's factor on the base learning rate.
    lr_factor: f64,
    /// This parameter's learning rate.
    lr: f64,
}

/// Whether `name` matches the glob `pattern` (`*` = any run of characters, everything else
/// literal).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
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
        Self::with_groups(vs, cfg, |_| 1.0)
    }

    /// As [`Adam::new`] with a learning-rate factor per parameter name (a parameter group).
    pub fn with_groups(vs: &VarStore, cfg: AdamConfig, lr_factor: impl Fn(&str) -> f64) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let params = vars
            .into_iter()
            .map(|(name, param)| {
                let factor = lr_factor(&name);
                ParamState {
                    exp_avg: param.zeros_like(),
                    exp_avg_sq: param.zeros_like(),
                    lr_factor: factor,
                    lr: cfg.lr * factor,
                    name,
                    param,
                    step: 0,
                }
            })
            .collect();
        Self { cfg, params }
    }

    /// The base learning rate (of a group with factor 1).
    pub fn lr(&self) -> f64 {
        self.cfg.lr
    }

    /// Sets the base learning rate; each parameter gets it times its group's factor.
    pub fn set_lr(&mut self, lr: f64) {
        self.set_group_lrs(lr, |factor| lr * factor);
    }

    /// Sets the base learning rate to `base` and each parameter's to `of_factor(its factor)`
    /// (for schedules that are not a plain multiple of the base, e.g. cosine with a floor).
    pub fn set_group_lrs(&mut self, base: f64, of_factor: impl Fn(f64) -> f64) {
        self.cfg.lr = base;
        for p in &mut self.params {
            p.lr = of_factor(p.lr_factor);
        }
    }

    pub fn set_weight_decay(&mut self, weight_decay: f64) {
        self.cfg.weight_decay = weight_decay;
    }

    /// Names of the optimised parameters and their learning-rate factors.
    pub fn groups(&self) -> impl Iterator<Item = (&str, f64)> {
        self.params.iter().map(|p| (p.name.as_str(), p.lr_factor))
    }

    /// Drops every gradient, as the reference's `optimizer.zero_grad()` does (PyTorch's default
    /// `set_to_none=True`). Called before the forward, so that the gradients of the last step
    /// take no memory while the forward's activations are alive.
    pub fn zero_grad(&mut self) -> Result<()> {
        let params: Vec<&Tensor> = self.params.iter().map(|p| &p.param).collect();
        optim_kernels::clear_grads(&params)
    }

    /// Clamps every gradient to [-max, max] (the reference's `clip_gradient`).
    pub fn clip_grad_value(&mut self, max: f64) -> Result<()> {
        let params: Vec<&Tensor> = self.params.iter().map(|p| &p.param).collect();
        optim_kernels::clamp_grads(&params, max)
    }

    /// One step for every parameter that has a gradient, at its group's learning rate,
    /// computed by libtorch exactly as the optimiser `cfg.rule` names does
    /// (see [`optim_kernels::adam_step`]).
    pub fn step(&mut self) -> Result<()> {
        let AdamConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
            rule,
            ..
        } = self.cfg;
        let mut slots: Vec<AdamSlot<'_>> = self
            .params
            .iter_mut()
            .map(|p| AdamSlot {
                param: &p.param,
                exp_avg: &p.exp_avg,
                exp_avg_sq: &p.exp_avg_sq,
                lr: p.lr,
                step: &mut p.step,
            })
            .collect();
        let hyper = AdamHyper {
            beta1,
            beta2,
            eps,
            weight_decay,
            rule,
        };
        optim_kernels::adam_step(&mut slots, hyper)
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

pub use super::schedule::step_lr;
