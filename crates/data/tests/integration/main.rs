//! The data crate's integration tests, one module per subject, linked into one test binary.
//! Run one module with `cargo test -p fgstp-data --test integration -- video::`.
//!
//! No test here changes process-wide state (thread counts, allocator knobs, environment
//! variables, the current directory): the loaders and the generator run on rayon pools of
//! their own, so the tests share one process.

mod common;

mod dataset;
mod loader;
mod model_inputs;
mod opencv_parity;
mod pil_parity;
mod synth;
mod video;
mod video_containers;
mod video_scene;
