//! The metrics crate's integration tests, one module per subject, linked into one test binary.
//! Run one module with `cargo test -p fgstp-metrics --all-features --test integration -- formats::`.
//!
//! `eval_output` and `formats` need the feature `io` and `score_cli` the feature `cli` (the
//! `fgstp-score` binary): `cargo test -p fgstp-metrics` alone leaves them out,
//! `--all-features` adds them.
//! `cargo test --workspace` builds this crate with both, because fgstp-cli depends on it
//! with `io` and `cli` (features are unified across the packages built together).

mod detection;
#[cfg(feature = "io")]
mod eval_output;
#[cfg(feature = "io")]
mod formats;
mod parity;
#[cfg(feature = "cli")]
mod score_cli;
