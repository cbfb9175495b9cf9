//! Segmentation metrics identical to PySODMetrics 1.6 (`lartpang/PySODMetrics`), without
//! libtorch: S-measure, weighted F-measure, MAE, E-measure, F-measure, IoU and Dice, plus
//! the Jaccard/F1/J&F protocol of the FGSTP reference `test.py`, and frame-level leak
//! detection rates ([`detection`]).
//!
//! ```
//! use fgstp_metrics::{GrayView, MetricRecorder};
//! let (w, h) = (4, 3);
//! let pred = [0u8, 40, 200, 255, 0, 30, 220, 250, 0, 0, 10, 20];
//! let mask = [0u8, 0, 255, 255, 0, 0, 255, 255, 0, 0, 0, 0];
//! let mut recorder = MetricRecorder::new();
//! recorder.step("video-1", GrayView::new(&pred, w, h)?, GrayView::new(&mask, w, h)?)?;
//! let report = recorder.results()?;
//! assert!(report.overall.get("sm").unwrap() > 0.8);
//! # Ok::<(), fgstp_metrics::MetricsError>(())
//! ```
//!
//! Which metrics exist, their names, directions and aggregation: [`registry`].
//!
//! Feature `io`: PNG folders (any colour type, soft maps, masks or object ids), pairing,
//! exclusions, sharding, state files, several systems side by side ([`io`]). Feature `cli`:
//! the commands `fgstp metrics`, `fgstp metrics merge` and `fgstp compare` as clap arguments
//! and `run` functions ([`cli`]), PNG plots ([`plots`]) and the standalone `fgstp-score`
//! binary (no libtorch).
//!
//! Per-frame work is independent ([`FrameScores::compute`]); score frames on any number of
//! threads and [`MetricRecorder::add`] or [`MetricRecorder::merge`] the results: the totals
//! are exact, so the report does not depend on thread count or order.

mod binary;
#[cfg(feature = "cli")]
pub mod cli;
pub mod detection;
mod edt;
mod emeasure;
mod frame;
#[cfg(feature = "io")]
pub mod io;
mod mask;
mod mask_geometry;
mod numpy_sum;
#[cfg(feature = "cli")]
pub mod plots;
mod protocol;
mod recorder;
pub mod registry;
mod scores;
mod shard;
mod smeasure;
pub mod state;
mod table;
mod wfmeasure;

pub use detection::{Detection, MinLeakArea, MinLeakAreaError};
pub use mask::GrayView;
pub use mask_geometry::MaskGeometry;
pub use protocol::{min_max_normalised, to_binary_mask, to_gray_map, JaccardF1};
pub use recorder::{Curves, MetricRecorder, Report, Scores};
pub use registry::{Better, Metric, METRICS};
pub use scores::FrameScores;
pub use shard::Shard;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetricsError {
    #[error("an image of {width}×{height} pixels has no pixels")]
    EmptyImage { width: usize, height: usize },
    #[error("{len} values cannot be an image of {width}×{height} pixels")]
    BufferSize {
        len: usize,
        width: usize,
        height: usize,
    },
    #[error(
        "prediction is {}×{} pixels but the mask is {}×{}: resize the prediction to the mask first",
        pred.0, pred.1, gt.0, gt.1
    )]
    SizeMismatch {
        pred: (usize, usize),
        gt: (usize, usize),
    },
    #[error("no frames were scored")]
    NoFrames,
    #[error(
        "cannot merge frames scored with minimum leak area {theirs} into frames scored with \
         {ours}: score both with one --min-leak-area / eval.min_leak_area"
    )]
    RuleMismatch {
        ours: MinLeakArea,
        theirs: MinLeakArea,
    },
}
