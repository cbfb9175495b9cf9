//! The scoring commands as clap arguments and `run` functions (feature `cli`), shared by the
//! `fgstp` binary (`fgstp metrics`, `fgstp compare`) and the standalone `fgstp-score` binary,
//! which needs no libtorch:
//!
//! - [`metrics`]: score a folder of predictions (any system's PNGs), optionally one shard of
//!   its videos, writing the exact state; `metrics merge` merges shard states;
//! - [`compare`]: several systems side by side on the same frames, as the paper's table, with
//!   per-video rows, JSON/CSV/Markdown and PNG plots.

pub mod compare;
pub mod metrics;

use std::path::Path;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::io::{write_atomically, Exclusions};
use crate::Report;

/// A progress bar in the style of every long fgstp command:
/// `prefix [=====>    ] pos/len msg rate ETA`.
pub fn progress_bar(len: u64, prefix: impl Into<String>, msg: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::new(len).with_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} {per_sec} ETA {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix.into());
    bar.set_message(msg.into());
    bar
}

/// A rayon pool of `threads` workers (all cores when `None`).
pub fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    if threads == Some(0) {
        bail!("--threads must be at least 1");
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .context("starting the worker threads")
}

/// The JSON of a report, exactly as `fgstp metrics --json`, `fgstp eval --json` and `fgstp
/// metrics merge --json` write it (so that their files compare byte for byte).
pub fn report_json(report: &Report) -> Result<String> {
    Ok(serde_json::to_string_pretty(report)? + "\n")
}

/// Writes a text file atomically and says so.
/// Prints `text` to standard output. A reader that went away (`| head`) is not an error: the
/// table is a courtesy, and the files asked for (`--json`, `--csv`, plots) are still written.
pub(crate) fn print_stdout(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing to standard output")
        }
        _ => Ok(()),
    }
}

pub(crate) fn write_text(path: &Path, text: &str) -> Result<()> {
    write_atomically(path, text.as_bytes())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// `--exclude` and `--exclude-annotated` as one set.
pub(crate) fn exclusions(lists: &[String], annotated: &[std::path::PathBuf]) -> Result<Exclusions> {
    let mut ex = Exclusions::default();
    for list in lists {
        ex.parse_list(list)?;
    }
    for dir in annotated {
        ex.add_annotated(dir)?;
    }
    Ok(ex)
}

/// Help of `--min-leak-area`, shared by the commands that score.
pub const MIN_LEAK_AREA_HELP: &str = "Frame-level detection: a frame is predicted leak when \
    at least this many of its prediction's pixels are >= 128 (as read, not min-max \
    normalised; of an eval/infer output folder, its masks/): pixels (40 or 40px) or percent \
    of the frame (0.5%, rounded up) [default: 0.5%]";

/// Help shared by the commands that read predictions.
pub(crate) const EXCLUDE_HELP: &str = "Frames not to score, comma-separated: STEM, FIRST-LAST \
    (numeric stems, inclusive), each optionally VIDEO/…; repeatable";
