//! The subcommands, one file each: parse the arguments, call the library (`fgstp_train` and
//! the model, data and metrics crates), print.

pub mod bench;
pub mod compare;
pub mod data;
pub mod eval;
pub mod frames;
pub mod infer;
pub mod info;
pub mod kinds;
pub mod metrics;
mod model_args;
pub mod synth;
pub mod train;
pub mod watch;
pub mod weights;
