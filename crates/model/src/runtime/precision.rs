//! Numeric modes: the libtorch switches tch does not expose (`csrc/precision.cpp`).
//!
//! - [`Precision`]: `fp32-strict` (no TF32 anywhere: CUDA results match the CPU's to ~1e-5),
//!   `tf32` (libtorch's defaults: TF32 in cuDNN convolutions — what PyTorch does unless told
//!   otherwise), `bf16` (autocast to bfloat16, on CUDA and on the CPU).

use std::ffi::c_int;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::Device;

use super::check;

extern "C" {
    fn fgstp_set_tf32(cudnn: c_int, cublas: c_int) -> c_int;
    fn fgstp_get_tf32(cudnn: *mut c_int, cublas: *mut c_int) -> c_int;
    fn fgstp_set_autocast(device: c_int, enabled: c_int, dtype: c_int) -> c_int;
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

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
}
