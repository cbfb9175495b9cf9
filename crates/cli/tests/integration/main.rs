//! The cli crate's integration tests, one module per subject, linked into one test binary.
//! Run one module with `cargo test -p fgstp-cli --test integration -- research_loop::`.
//!
//! Most run the `fgstp` binary as a user would, each in a process of its own; the rest call the
//! library in this process without changing process-wide state (thread counts, TF32 switches,
//! allocator knobs, environment variables, the current directory). The fixtures that several
//! tests of a module share are made once per process, in scratch folders removed when it exits
//! (`common::shared_scratch_dir`).

mod common;

mod baseline_train_parity;
mod compare;
mod comparison_models;
mod data_cli;
mod distributed;
mod kinds;
mod link;
mod metrics_cli;
mod quickstart;
mod research_loop;
mod shard;
mod slurm_cluster;
mod slurm_scripts;
mod structure;
mod train_parity;
mod video_cli;
mod watch_cli;
mod watch_dashboard;
mod watch_mqtt;
mod watch_rtsp;
mod weights;
