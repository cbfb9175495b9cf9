//! Numeric modes and CUDA graphs: the libtorch switches tch does not expose, through a small
//! C++ shim (`csrc/backend.cpp`).
//!
//! - [`Precision`]: `fp32-strict` (no TF32 anywhere: CUDA results match the CPU's to ~1e-5),
//!   `tf32` (libtorch's defaults: TF32 in cuDNN convolutions — what PyTorch does unless told
//!   otherwise), `bf16` (autocast to bfloat16, on CUDA and on the CPU).
//! - [`CudaGraph`]: records the kernels a closure launches once and replays them with one
//!   launch, for fixed-shape inference on a GPU (launch overhead dominates there at fgstp's
//!   sizes).
//! - [`keep_freed_memory`]: freed tensor memory stays in the process for the next allocation.

use std::ffi::{c_char, c_int, c_void, CStr};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

extern "C" {
    fn fgstp_last_error() -> *const c_char;
    fn fgstp_set_tf32(cudnn: c_int, cublas: c_int) -> c_int;
    fn fgstp_get_tf32(cudnn: *mut c_int, cublas: *mut c_int) -> c_int;
    fn fgstp_set_autocast(device: c_int, enabled: c_int, dtype: c_int) -> c_int;
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
    fn fgstp_upload_pinned(t: *mut c_void, device: c_int, out: *mut *mut c_void) -> c_int;
    fn fgstp_stream_event_record(
        device_type: c_int,
        device_index: c_int,
        out: *mut *mut c_void,
    ) -> c_int;
    fn fgstp_stream_event_synchronize(event: *mut c_void) -> c_int;
    fn fgstp_stream_event_free(event: *mut c_void);
    fn fgstp_cuda_graphs_available() -> c_int;
    fn fgstp_cuda_graph_new(out: *mut *mut c_void) -> c_int;
    fn fgstp_cuda_graph_capture_begin(graph: *mut c_void, device: c_int) -> c_int;
    fn fgstp_cuda_graph_capture_end(graph: *mut c_void) -> c_int;
    fn fgstp_cuda_graph_replay(graph: *mut c_void) -> c_int;
    fn fgstp_cuda_graph_free(graph: *mut c_void);
}

/// Turns a shim status into a `Result` carrying libtorch's message.
fn check(status: c_int, what: &str) -> Result<()> {
    if status == 0 {
        return Ok(());
    }
    // SAFETY: the shim returns a pointer to its thread-local, NUL-terminated last error.
    let message = unsafe { CStr::from_ptr(fgstp_last_error()) }
        .to_string_lossy()
        .into_owned();
    bail!("{what}: {message}")
}

/// How floating-point work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// Float32 everywhere, TF32 off for cuDNN and cuBLAS: matches the reference run the same
    /// way (and the CPU) within 1e-4.
    Fp32Strict,
    /// libtorch's defaults: float32, with TF32 allowed in cuDNN convolutions on Ampere and
    /// newer GPUs (cuBLAS matrix products stay float32, as in PyTorch). On the CPU, float32.
    #[default]
    Tf32,
    /// Autocast to bfloat16 (convolutions and matrix products in bfloat16, reductions and
    /// normalisations in float32), on CUDA and on the CPU.
    Bf16,
}

impl Precision {
    pub const ALL: [Precision; 3] = [Self::Fp32Strict, Self::Tf32, Self::Bf16];

    pub fn name(self) -> &'static str {
        match self {
            Self::Fp32Strict => "fp32-strict",
            Self::Tf32 => "tf32",
            Self::Bf16 => "bf16",
        }
    }

    /// Sets libtorch's process-wide TF32 switches for this precision (bf16 leaves the
    /// defaults: what autocast does not convert runs as with `tf32`).
    pub fn set_backend_flags(self) -> Result<()> {
        let tf32 = self != Self::Fp32Strict;
        // SAFETY: plain setters on libtorch's global context.
        check(
            unsafe { fgstp_set_tf32(c_int::from(tf32), 0) },
            "setting TF32",
        )
    }

    /// Runs `f` with this precision's autocast on `device` (only `bf16` autocasts); autocast
    /// is off again afterwards, with libtorch's default dtype for the device (CPU bfloat16,
    /// CUDA float16).
    pub fn run<T>(self, device: Device, f: impl FnOnce() -> T) -> Result<T> {
        if self != Self::Bf16 {
            return Ok(f());
        }
        let device_type = c_int::from(device.is_cuda());
        // SAFETY: autocast switches are thread-local settings of libtorch.
        check(
            unsafe { fgstp_set_autocast(device_type, 1, 0) },
            "enabling bf16 autocast",
        )?;
        let out = f();
        let default_dtype = device_type; // CPU: bfloat16 (0), CUDA: float16 (1)
                                         // SAFETY: as above.
        check(
            unsafe { fgstp_set_autocast(device_type, 0, default_dtype) },
            "disabling autocast",
        )?;
        Ok(out)
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                anyhow::anyhow!("unknown precision {s:?}: use fp32-strict, tf32 or bf16")
            })
    }
}

/// TF32 as libtorch has it now: (cuDNN, cuBLAS).
pub fn tf32_flags() -> Result<(bool, bool)> {
    let (mut cudnn, mut cublas) = (0, 0);
    // SAFETY: the shim writes two ints.
    check(
        unsafe { fgstp_get_tf32(&mut cudnn, &mut cublas) },
        "reading TF32",
    )?;
    Ok((cudnn != 0, cublas != 0))
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

/// `t` (on the host) on `device`. To a GPU the copy goes through pinned memory and does not
/// wait: the CPU goes on queuing work while it runs (libtorch keeps the pinned block until the
/// copy is done). A pageable copy would wait for everything queued before it on the stream.
pub fn upload(t: &Tensor, device: Device) -> Result<Tensor> {
    let (Device::Cuda(index), Device::Cpu) = (device, t.device()) else {
        return Ok(t.to_device(device));
    };
    let mut out = std::ptr::null_mut();
    // SAFETY: `t` is a live tensor; on success the shim hands over a new one, owned by the
    // returned `Tensor` (tch frees it).
    check(
        unsafe { fgstp_upload_pinned(t.as_ptr() as *mut c_void, index as c_int, &mut out) },
        "copying a batch to the GPU",
    )?;
    // SAFETY: `out` is a newly allocated at::Tensor.
    Ok(unsafe { Tensor::from_ptr(out as *mut torch_sys::C_tensor) })
}

/// A marker in a CUDA device's current stream, for reading results without waiting for the
/// work queued after them: [`StreamEvent::synchronize`] returns once everything queued before
/// the marker is done.
pub struct StreamEvent {
    raw: *mut c_void,
}

impl StreamEvent {
    /// Marks the current stream of `device`; `None` on the CPU, where work is done when it
    /// returns.
    pub fn record(device: Device) -> Result<Option<StreamEvent>> {
        let Device::Cuda(index) = device else {
            return Ok(None);
        };
        // c10::DeviceType::CUDA
        const CUDA: c_int = 1;
        let mut raw = std::ptr::null_mut();
        // SAFETY: on success the shim hands over a newly allocated event.
        check(
            unsafe { fgstp_stream_event_record(CUDA, index as c_int, &mut raw) },
            "marking the CUDA stream",
        )?;
        Ok(Some(StreamEvent { raw }))
    }

    /// Waits until the work queued before the marker is done.
    pub fn synchronize(&self) -> Result<()> {
        // SAFETY: `raw` is a live, recorded event.
        check(
            unsafe { fgstp_stream_event_synchronize(self.raw) },
            "waiting for the CUDA stream",
        )
    }
}

impl Drop for StreamEvent {
    fn drop(&mut self) {
        // SAFETY: `raw` came from fgstp_stream_event_record and is freed once.
        unsafe { fgstp_stream_event_free(self.raw) }
    }
}

/// Whether this build can capture CUDA graphs (it was compiled with the CUDA runtime headers);
/// a GPU is needed as well.
pub fn cuda_graphs_built() -> bool {
    // SAFETY: returns a constant.
    unsafe { fgstp_cuda_graphs_available() != 0 }
}

/// A captured CUDA graph: the kernels of one call, replayed with a single launch. Tensors
/// created during capture live in the graph's private memory pool and are rewritten by every
/// replay; inputs must be copied into the tensors the capture read.
pub struct CudaGraph {
    raw: *mut c_void,
}

impl CudaGraph {
    /// Runs `f` once on a side stream while recording its kernels. Run `f` eagerly a few times
    /// first (cuDNN picks its algorithms and libtorch initialises lazily on first calls;
    /// neither may happen during a capture).
    pub fn capture<T>(device: Device, f: impl FnOnce() -> Result<T>) -> Result<(CudaGraph, T)> {
        let Device::Cuda(index) = device else {
            bail!("CUDA graphs need a CUDA device, not {device:?}");
        };
        if !cuda_graphs_built() {
            bail!(
                "this fgstp was built without the CUDA runtime headers, so it cannot capture CUDA \
                 graphs; run without them (or rebuild with CUDA_HOME set)"
            );
        }
        let mut raw = std::ptr::null_mut();
        // SAFETY: the shim allocates a graph and returns its pointer.
        check(
            unsafe { fgstp_cuda_graph_new(&mut raw) },
            "creating a CUDA graph",
        )?;
        let graph = CudaGraph { raw };
        let device_index = c_int::try_from(index)?;
        // SAFETY: `raw` is a live graph.
        check(
            unsafe { fgstp_cuda_graph_capture_begin(graph.raw, device_index) },
            "starting a CUDA graph capture",
        )?;
        let out = f();
        // SAFETY: as above; the capture must end even when `f` failed.
        let ended = check(
            unsafe { fgstp_cuda_graph_capture_end(graph.raw) },
            "ending a CUDA graph capture",
        );
        let out = out?;
        ended?;
        Ok((graph, out))
    }

    /// Launches the recorded kernels again on the current stream.
    pub fn replay(&self) -> Result<()> {
        // SAFETY: `raw` is a live, captured graph.
        check(
            unsafe { fgstp_cuda_graph_replay(self.raw) },
            "replaying a CUDA graph",
        )
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: `raw` came from fgstp_cuda_graph_new and is freed once.
        unsafe { fgstp_cuda_graph_free(self.raw) }
    }
}

/// Makes glibc keep freed memory in the process instead of handing it back to the kernel.
///
/// libtorch allocates every tensor with `posix_memalign`; glibc serves large blocks with `mmap`
/// and unmaps them on free, and shrinks its heap when its top is free, so each forward pass
/// touches fresh pages and the kernel zeroes them (page faults). At full size that is a large
/// share of the time: ZoomNeXt-video at b5, 5 frames at 3 scales, faulted 2.5 million pages and
/// spent 9 s of system time per 25 s forward; with this, 0.1 million and under 1 s, and the
/// forward takes 19–22 s. A training step (b5, 256 px, batch 2) went from 10.1 to 7.8 s with
/// the same peak memory (4.88 GB). The price is that memory freed after a peak is not returned:
/// the resident size stays at the high-water mark, a little above it where the heap fragments
/// (ZoomNeXt-video: 2.62 GB instead of 2.18 GB).
///
/// Call once at the start of a program (the `fgstp` binary and the benchmark examples do),
/// before the allocations it should affect. Only glibc on Linux has these knobs; elsewhere this
/// does nothing, and so does setting `FGSTP_RETURN_FREED_MEMORY=1` (for a long-lived process
/// that should shrink after a peak, or to measure the difference).
pub fn keep_freed_memory() {
    if std::env::var_os("FGSTP_RETURN_FREED_MEMORY").is_some_and(|v| v == "1") {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters.
    unsafe {
        // No block of its own for any size (all from the heap; glibc still falls back to mmap
        // when the heap cannot grow), and never shrink the heap.
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn precision_names_round_trip_and_flags_follow_the_mode() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
        }
        assert!("fp16".parse::<Precision>().is_err());
        Precision::Fp32Strict.set_backend_flags().unwrap();
        assert_eq!(tf32_flags().unwrap(), (false, false));
        Precision::Tf32.set_backend_flags().unwrap();
        assert_eq!(tf32_flags().unwrap(), (true, false));
    }

    #[test]
    fn bf16_autocasts_matrix_products_on_the_cpu_and_only_inside_run() {
        let a = Tensor::randn([4, 8], (Kind::Float, Device::Cpu));
        let b = Tensor::randn([8, 3], (Kind::Float, Device::Cpu));
        let inside = Precision::Bf16.run(Device::Cpu, || a.matmul(&b)).unwrap();
        assert_eq!(inside.kind(), Kind::BFloat16);
        assert_eq!(a.matmul(&b).kind(), Kind::Float, "autocast is off again");
        let strict = Precision::Fp32Strict
            .run(Device::Cpu, || a.matmul(&b))
            .unwrap();
        assert_eq!(strict.kind(), Kind::Float);
    }

    /// Runs three clipped optimiser steps on three parameters (the last never gets a
    /// gradient) and returns the parameters, moments and step counts.
    fn optimise(kernels: Kernels, weight_decay: f64) -> Vec<Tensor> {
        tch::manual_seed(3);
        let shapes: [&[i64]; 3] = [&[4, 3], &[7], &[2, 2, 2]];
        let params: Vec<Tensor> = shapes
            .iter()
            .map(|s| Tensor::randn(*s, (Kind::Float, Device::Cpu)).set_requires_grad(true))
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
        for _ in 0..3 {
            let refs: Vec<&Tensor> = params.iter().collect();
            clear_grads(&refs).unwrap();
            // d/dp Σ p·g = g: random gradients, some beyond the clip.
            let loss = params[..2]
                .iter()
                .map(|p| (p * (p.randn_like() * 3.0)).sum(Kind::Float))
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
        for weight_decay in [0.0, 1e-2] {
            let per_tensor = optimise(Kernels::PerTensor, weight_decay);
            let foreach = optimise(Kernels::Foreach, weight_decay);
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

    #[test]
    fn stream_events_and_uploads_are_plain_on_the_cpu_and_errors_without_a_gpu() {
        assert!(StreamEvent::record(Device::Cpu).unwrap().is_none());
        let t = Tensor::from_slice(&[1f32, 2.0]);
        assert_eq!(upload(&t, Device::Cpu).unwrap(), t);
        if !tch::Cuda::is_available() {
            // Without a GPU these are errors naming what failed, not crashes.
            let err = StreamEvent::record(Device::Cuda(0)).err().unwrap();
            assert!(
                format!("{err}").contains("marking the CUDA stream"),
                "{err}"
            );
            let err = upload(&t, Device::Cuda(0)).err().unwrap();
            assert!(
                format!("{err}").contains("copying a batch to the GPU"),
                "{err}"
            );
        }
    }

    #[test]
    fn cuda_graphs_refuse_the_cpu_with_a_reason() {
        let err = CudaGraph::capture(Device::Cpu, || Ok(())).err().unwrap();
        assert!(format!("{err}").contains("CUDA device"), "{err}");
    }
}
