//! Progress bars of long commands, in one style: `prefix [=====>    ] pos/len msg rate ETA`.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` steps labelled `prefix` (e.g. `eval test`, `epoch 3/7`); `msg` shows
/// after the counts (a unit such as `frames`, or the current loss).
pub fn bar(len: u64, prefix: impl Into<String>, msg: impl Into<String>) -> ProgressBar {
    let bar = ProgressBar::new(len).with_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} {per_sec} ETA {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix.into());
    bar.set_message(msg.into());
    bar
}
