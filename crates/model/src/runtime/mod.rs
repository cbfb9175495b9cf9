//! How the models run, with the libtorch functions tch does not expose through a small C++
//! shim (`csrc/`, compiled by `build.rs`; its functions report failures as libtorch's message):
//!
//! - `device`: the device as the user names it ([`DeviceSpec`](crate::DeviceSpec): `cpu`,
//!   `cuda:N`, `auto`).
//! - [`precision`]: the numeric modes (TF32 switches, bf16 autocast).
//! - `memory`: keeping freed memory in the process ([`keep_freed_memory`](crate::keep_freed_memory)).
//! - [`transfer`]: pinned, non-blocking uploads and stream events.
//! - [`cuda_graph`]: capturing and replaying CUDA graphs, and inference replayed by shape.
//! - [`optim_kernels`]: the optimiser's step and the gradient clipping and clearing, as PyTorch
//!   computes them.

pub mod cuda_graph;
pub(crate) mod device;
pub mod distributed;
pub(crate) mod memory;
pub mod optim_kernels;
pub mod precision;
pub mod transfer;

use std::ffi::{c_char, c_int, CStr};

use anyhow::{bail, Result};

extern "C" {
    fn fgstp_last_error() -> *const c_char;
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
