//! The optimiser's element-wise work, computed by libtorch as the Python optimisers compute it
//! (`csrc/optim_kernels.cpp`): the Adam/AdamW step ([`adam_step`]), gradient clipping
//! ([`clamp_grads`]) and dropping gradients ([`clear_grads`]).

use std::ffi::{c_int, c_void};

use anyhow::Result;
use tch::{Device, Tensor};

use super::check;

extern "C" {
    fn fgstp_adam_step(
        params: *const *mut c_void,
        exp_avgs: *const *mut c_void,
        exp_avg_sqs: *const *mut c_void,
        steps: *mut i64,
        lrs: *const f64,
        n: i64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
        rule: c_int,
        foreach: c_int,
    ) -> c_int;
    fn fgstp_clamp_grads(params: *const *mut c_void, n: i64, max: f64, foreach: c_int) -> c_int;
    fn fgstp_clear_grads(params: *const *mut c_void, n: i64) -> c_int;
}

/// Which optimiser's update [`adam_step`] computes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AdamRule {
    /// `torch.optim.Adam` (its single-tensor path, PyTorch's CPU default): `m̂ / (√v̂ + eps)`
    /// with bias-corrected moments; weight decay added to the gradient.
    #[default]
    Torch,
    /// SLT-Net's `utils/adamw.py`: step size `lr·√(1 − β₂ᵏ)/(1 − β₁ᵏ)` on `m / (√v + eps)` (eps
    /// added to the uncorrected √v), and the decay `p·(1 − wd)` applied first, not scaled by lr.
    SltNetAdamW,
}

/// The optimiser's hyper-parameters shared by every parameter (learning rates are per
/// parameter).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamHyper {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub rule: AdamRule,
}

/// A parameter and its optimiser state, as [`adam_step`] reads them.
pub struct AdamSlot<'a> {
    pub param: &'a Tensor,
    pub exp_avg: &'a Tensor,
    pub exp_avg_sq: &'a Tensor,
    pub lr: f64,
    /// Steps taken; advanced here for every parameter that has a gradient.
    pub step: &'a mut i64,
}

fn raw(tensors: &[&Tensor]) -> Vec<*mut c_void> {
    tensors.iter().map(|t| t.as_ptr() as *mut c_void).collect()
}

/// How the optimiser's element-wise work is launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// One kernel per parameter and operation (PyTorch's CPU default).
    PerTensor,
    /// ATen's multi-tensor (`_foreach_*`) kernels over all parameters (PyTorch's CUDA default
    /// for Adam): the same arithmetic, a few launches per step.
    Foreach,
}

impl Kernels {
    /// What PyTorch picks for parameters on `device`.
    pub fn for_device(device: Device) -> Self {
        if device.is_cuda() {
            Kernels::Foreach
        } else {
            Kernels::PerTensor
        }
    }
}

/// One optimiser step for every parameter with a gradient, computed by libtorch with the same
/// ATen calls in the same order as the Python optimiser `hyper.rule` names, so the result is bit
/// for bit that optimiser's, without the temporaries tch's API would need; launched as PyTorch
/// does for the parameters' device ([`Kernels::for_device`]).
pub fn adam_step(slots: &mut [AdamSlot<'_>], hyper: AdamHyper) -> Result<()> {
    let kernels = slots.first().map_or(Kernels::PerTensor, |s| {
        Kernels::for_device(s.param.device())
    });
    adam_step_with(slots, hyper, kernels)
}

/// [`adam_step`] with the kernels chosen (SLT-Net's AdamW always runs per tensor, as its own
/// optimiser does).
pub fn adam_step_with(
    slots: &mut [AdamSlot<'_>],
    hyper: AdamHyper,
    kernels: Kernels,
) -> Result<()> {
    let p = raw(&slots.iter().map(|s| s.param).collect::<Vec<_>>());
    let m = raw(&slots.iter().map(|s| s.exp_avg).collect::<Vec<_>>());
    let v = raw(&slots.iter().map(|s| s.exp_avg_sq).collect::<Vec<_>>());
    let lrs: Vec<f64> = slots.iter().map(|s| s.lr).collect();
    let mut steps: Vec<i64> = slots.iter().map(|s| *s.step).collect();
    let rule = match hyper.rule {
        AdamRule::Torch => 0,
        AdamRule::SltNetAdamW => 1,
    };
    // SAFETY: the pointers are live tch tensors (at::Tensor*) for the duration of the call; the
    // shim only calls in-place ATen methods on them and writes `steps`.
    check(
        unsafe {
            fgstp_adam_step(
                p.as_ptr(),
                m.as_ptr(),
                v.as_ptr(),
                steps.as_mut_ptr(),
                lrs.as_ptr(),
                slots.len() as i64,
                hyper.beta1,
                hyper.beta2,
                hyper.eps,
                hyper.weight_decay,
                rule,
                c_int::from(kernels == Kernels::Foreach),
            )
        },
        "optimiser step",
    )?;
    for (slot, step) in slots.iter_mut().zip(steps) {
        *slot.step = step;
    }
    Ok(())
}

/// Clamps every defined gradient of `params` to [-max, max], in place, launched as
/// [`Kernels::for_device`] says.
pub fn clamp_grads(params: &[&Tensor], max: f64) -> Result<()> {
    let kernels = params
        .first()
        .map_or(Kernels::PerTensor, |p| Kernels::for_device(p.device()));
    clamp_grads_with(params, max, kernels)
}

/// [`clamp_grads`] with the kernels chosen.
pub fn clamp_grads_with(params: &[&Tensor], max: f64, kernels: Kernels) -> Result<()> {
    let p = raw(params);
    let foreach = c_int::from(kernels == Kernels::Foreach);
    // SAFETY: as in adam_step.
    check(
        unsafe { fgstp_clamp_grads(p.as_ptr(), p.len() as i64, max, foreach) },
        "clipping gradients",
    )
}

/// Drops every gradient, as PyTorch's `zero_grad()` does by default (`set_to_none=True`): the
/// next backward allocates them afresh, with the same values a zeroed gradient would
/// accumulate to, and they hold no memory while the forward keeps its activations.
pub fn clear_grads(params: &[&Tensor]) -> Result<()> {
    let p = raw(params);
    // SAFETY: as in adam_step.
    check(
        unsafe { fgstp_clear_grads(p.as_ptr(), p.len() as i64) },
        "dropping gradients",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    /// Three parameters' initial values and, for each of three steps, the factors the first two
    /// get their gradients from (the last never gets one): drawn once, so that both kernel
    /// paths see the same numbers whatever other tests draw from libtorch's generator meanwhile.
    fn draw() -> (Vec<Tensor>, Vec<Vec<Tensor>>) {
        tch::manual_seed(3);
        let shapes: [&[i64]; 3] = [&[4, 3], &[7], &[2, 2, 2]];
        let params: Vec<Tensor> = shapes
            .iter()
            .map(|s| Tensor::randn(*s, (Kind::Float, Device::Cpu)))
            .collect();
        let factors = (0..3)
            .map(|_| params[..2].iter().map(|p| p.randn_like() * 3.0).collect())
            .collect();
        (params, factors)
    }

    /// Runs three clipped optimiser steps on the parameters `draw` gives and returns the
    /// parameters, moments and step counts.
    fn optimise(
        kernels: Kernels,
        weight_decay: f64,
        (initial, factors): &(Vec<Tensor>, Vec<Vec<Tensor>>),
    ) -> Vec<Tensor> {
        let params: Vec<Tensor> = initial
            .iter()
            .map(|p| p.copy().set_requires_grad(true))
            .collect();
        let moments: Vec<(Tensor, Tensor)> = params
            .iter()
            .map(|p| (p.zeros_like(), p.zeros_like()))
            .collect();
        let mut steps = [0i64; 3];
        let lrs = [1e-3, 2e-3, 1e-3];
        let hyper = AdamHyper {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            rule: AdamRule::Torch,
        };
        for step_factors in factors {
            let refs: Vec<&Tensor> = params.iter().collect();
            clear_grads(&refs).unwrap();
            // d/dp Σ p·g = g: random gradients, some beyond the clip.
            let loss = params[..2]
                .iter()
                .zip(step_factors)
                .map(|(p, g)| (p * g).sum(Kind::Float))
                .reduce(|a, b| a + b)
                .unwrap();
            loss.backward();
            clamp_grads_with(&refs, 0.5, kernels).unwrap();
            let mut slots: Vec<AdamSlot<'_>> = params
                .iter()
                .zip(&moments)
                .zip(steps.iter_mut())
                .zip(lrs)
                .map(|(((param, (m, v)), step), lr)| AdamSlot {
                    param,
                    exp_avg: m,
                    exp_avg_sq: v,
                    lr,
                    step,
                })
                .collect();
            adam_step_with(&mut slots, hyper, kernels).unwrap();
        }
        let mut out: Vec<Tensor> = params.iter().map(Tensor::detach).collect();
        for (m, v) in &moments {
            out.extend([m.shallow_clone(), v.shallow_clone()]);
        }
        out.push(Tensor::from_slice(&steps));
        out
    }

    #[test]
    fn foreach_kernels_give_the_per_tensor_optimiser_bit_for_bit() {
        let drawn = draw();
        for weight_decay in [0.0, 1e-2] {
            let per_tensor = optimise(Kernels::PerTensor, weight_decay, &drawn);
            let foreach = optimise(Kernels::Foreach, weight_decay, &drawn);
            // The parameter without a gradient is skipped by both.
            assert_eq!(
                per_tensor.last().unwrap(),
                &Tensor::from_slice(&[3i64, 3, 0])
            );
            for (i, (a, b)) in per_tensor.iter().zip(&foreach).enumerate() {
                assert!(
                    a.equal(b),
                    "tensor {i} differs (weight decay {weight_decay})"
                );
            }
        }
    }

    #[test]
    fn cleared_gradients_hold_no_memory_and_accumulate_as_zeroed_ones() {
        let w = Tensor::randn([5, 7], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let x = Tensor::randn([7, 3], (Kind::Float, Device::Cpu));
        let loss = || w.matmul(&x).sin().sum(Kind::Float);
        loss().backward();
        let mut zeroed = w.shallow_clone();
        zeroed.zero_grad();
        loss().backward();
        let after_zeroing = w.grad().copy();
        clear_grads(&[&w]).unwrap();
        assert!(!w.grad().defined(), "the gradient is gone, not zeroed");
        loss().backward();
        assert_eq!(w.grad(), after_zeroing);
    }
}
