//! FGSTP model: PVTv2 encoder, RFB, CTC correlation, FSP, NCD + reverse-stage decoder. The same
//! modules also build the comparison systems SLT-Net short-term ([`slt_net`]) and long-term
//! ([`slt_net_long`], with its NS blocks in [`ns_block`]).
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

pub mod backbone;
pub mod backend;
pub mod checkpoint;
pub mod complexity;
pub mod config;
pub mod ctc;
pub mod decoder;
pub mod device;
pub mod difference_aware;
pub mod fgstp;
pub mod files;
pub mod fsp;
pub mod graph_replay;
pub mod layers;
pub mod matching;
pub mod model;
pub mod ncd;
pub mod ns_block;
pub mod pvt_v2;
pub mod reverse_stage;
pub mod rfb;
pub mod sinet_v2;
pub mod slt_net;
pub mod slt_net_long;
pub mod streaming;
pub mod zoomnext;

pub use backbone::{Backbone, Features};
pub use backend::Precision;
pub use config::{Config, ModelKind};
pub use device::DeviceSpec;
pub use fgstp::{Fgstp, FgstpOutput};
/// SLT-Net's short-term model is FGSTP's network without FSP (see [`slt_net`]).
pub use fgstp::{Fgstp as SltNet, FgstpOutput as SltNetOutput};
pub use model::{Model, Output};
pub use pvt_v2::{PvtV2Config, PvtV2Variant};
pub use sinet_v2::{SinetV2, SinetV2Output};
pub use slt_net_long::{SltNetLong, SltNetLongOutput};
pub use zoomnext::{ZoomNext, ZoomNextConfig};
