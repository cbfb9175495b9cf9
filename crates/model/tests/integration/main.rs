//! The model crate's integration tests, one module per subject, linked into one test binary.
//! Run one module with `cargo test -p fgstp-model --test integration -- slt_net::`.
//!
//! No test here changes process-wide state (thread counts, TF32 switches, allocator knobs,
//! environment variables, the current directory), so they share one process.

mod checkpoint;
mod model;
mod parity;
mod slt_net;
mod streaming;
mod zoomnext;
