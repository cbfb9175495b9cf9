//! FGSTP model: PVTv2 encoder, RFB, CTC correlation, FSP, NCD + reverse-stage decoder. The same
//! modules also build the comparison systems SLT-Net short-term ([`SltNet`]) and long-term
//! ([`SltNetLong`], with its NS blocks in [`nn::ns_block`]).
//!
//! Variable names in the VarStore are the reference PyTorch implementation's state-dict keys
//! (e.g. `backbone.encoder.pvtv2_en.block3.12.attn.kv.weight`), so its checkpoints load as is.
//!
//! ```no_run
//! use fgstp_model::{Config, Model};
//! let vs = tch::nn::VarStore::new(tch::Device::Cpu);
//! let model = Model::new(&vs.root(), &Config::default())?;
//! let frames: Vec<tch::Tensor> = (0..3).map(|_| tch::Tensor::randn([1, 3, 352, 352], tch::kind::FLOAT_CPU)).collect();
//! let out = tch::no_grad(|| model.forward_t(&frames.iter().collect::<Vec<_>>(), false))?;
//! println!("{:?}", out.prediction().size()); // [1, 1, 352, 352]
//! # anyhow::Ok(())
//! ```

pub mod checkpoint;
mod config;
pub mod models;
pub mod nn;
pub mod runtime;

pub use config::{Config, ModelKind};
pub use models::fgstp::{Fgstp, FgstpOutput};
/// SLT-Net's short-term model is FGSTP's network without FSP (see `models/slt_net.rs`).
pub use models::fgstp::{Fgstp as SltNet, FgstpOutput as SltNetOutput};
pub use models::sinet_v2::{SinetV2, SinetV2Output};
pub use models::slt_net_long::{SltNetLong, SltNetLongOutput};
pub use models::{Model, Output};
pub use nn::backbone::{Backbone, Features};
pub use nn::pvt_v2::{PvtV2Config, PvtV2Variant};
pub use runtime::device::DeviceSpec;
pub use runtime::memory::keep_freed_memory;
pub use runtime::precision::Precision;
