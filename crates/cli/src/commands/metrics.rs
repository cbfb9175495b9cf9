//! `fgstp metrics`: scores folders of predicted masks (any system's PNGs) against ground-truth
//! masks with the PySODMetrics suite and the reference `test.py`'s J&F; `fgstp metrics merge`
//! merges shard states. The arguments and the work live in `fgstp_metrics::cli::metrics`,
//! shared with the libtorch-free `fgstp-score` binary.

pub use fgstp_metrics::cli::metrics::{run, Args};
