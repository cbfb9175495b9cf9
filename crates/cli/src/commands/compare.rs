//! `fgstp compare`: several systems side by side as the paper's table, with per-video rows,
//! JSON/CSV/Markdown and PNG plots. The arguments and the work live in
//! `fgstp_metrics::cli::compare`, shared with the libtorch-free `fgstp-score` binary.

pub use fgstp_metrics::cli::compare::{run, Args};
