//! Device selection: `cpu`, `cuda` (= `cuda:0`), `cuda:N`, or `auto` (the first GPU if libtorch
//! sees one, else the CPU), from a configuration file or the command line.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::{Cuda, Device};

/// A device as the user wrote it; [`DeviceSpec::resolve`] turns it into a `tch::Device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
    #[default]
    Auto,
}

impl FromStr for DeviceSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "cpu" => Ok(Self::Cpu),
            "auto" => Ok(Self::Auto),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            _ => match lower.strip_prefix("cuda:") {
                Some(index) => match index.parse::<usize>() {
                    Ok(i) => Ok(Self::Cuda(i)),
                    Err(_) => bail!(
                        "device {s:?}: the GPU index after \"cuda:\" must be a number, e.g. cuda:0"
                    ),
                },
                None => bail!("unknown device {s:?}; use cpu, cuda, cuda:N (e.g. cuda:1) or auto"),
            },
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
            Self::Auto => f.write_str("auto"),
        }
    }
}

impl DeviceSpec {
    /// The `tch::Device`, checked against the GPUs libtorch can see.
    pub fn resolve(self) -> Result<Device> {
        self.resolve_with(Cuda::device_count().max(0) as usize)
    }

    /// As [`DeviceSpec::resolve`] with a given number of visible GPUs.
    pub fn resolve_with(self, gpus: usize) -> Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Auto => Ok(if gpus > 0 {
                Device::Cuda(0)
            } else {
                Device::Cpu
            }),
            Self::Cuda(i) if i < gpus => Ok(Device::Cuda(i)),
            Self::Cuda(i) if gpus == 0 => bail!(
                "device cuda:{i} requested but libtorch sees no CUDA GPU (no GPU, no driver, or a \
                 CPU-only libtorch; `fgstp info` shows what was found); set train.device to \
                 \"cpu\" or \"auto\" (--set 'train.device=\"cpu\"')"
            ),
            Self::Cuda(i) => bail!(
                "device cuda:{i} requested but only {gpus} GPU(s) are visible (cuda:0 … cuda:{})",
                gpus - 1
            ),
        }
    }
}
