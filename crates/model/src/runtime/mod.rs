//! How the models run: the device, numeric modes, CUDA graphs and the optimiser's kernels,
//! through a small C++ shim over libtorch (`csrc/`) where tch has no API.

pub mod backend;
pub mod device;
pub mod graph_replay;
