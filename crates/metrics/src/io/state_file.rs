//! Metric state files: a recorder's exact sums as versioned JSON (see [`crate::state`]), written
//! by each shard (`--state FILE`) and merged by `fgstp metrics merge` into exactly the result
//! of the unsharded run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::files::write_atomically;
use crate::state::RecorderState;
use crate::{MetricRecorder, Shard};

/// The text of a state file: `recorder`'s state as pretty JSON.
pub fn state_json(
    recorder: &MetricRecorder,
    shard: Option<Shard>,
    origin: BTreeMap<String, String>,
) -> Result<String> {
    Ok(serde_json::to_string_pretty(&recorder.to_state(shard, origin))? + "\n")
}

/// Writes `recorder`'s state to `path` atomically.
pub fn write_state(
    path: &Path,
    recorder: &MetricRecorder,
    shard: Option<Shard>,
    origin: BTreeMap<String, String>,
) -> Result<()> {
    write_atomically(path, state_json(recorder, shard, origin)?.as_bytes())
}

/// The largest state file read (2 GiB; a state holds about 40 KB per video: some 50,000
/// videos).
const MAX_STATE_BYTES: u64 = 2 << 30;

/// `path`'s text, refusing more than `limit` bytes (a device such as /dev/zero never ends).
fn read_bounded(path: &Path, limit: u64) -> Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut text = String::new();
    file.take(limit + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    if text.len() as u64 > limit {
        bail!(
            "{}: more than {limit} bytes, not a metric state file (written by --state of fgstp \
             eval/metrics)",
            path.display()
        );
    }
    Ok(text)
}

/// Reads a state file.
pub fn read_state(path: &Path) -> Result<RecorderState> {
    let text = read_bounded(path, MAX_STATE_BYTES)?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{}: not a metric state file (written by --state of fgstp eval/metrics)",
            path.display()
        )
    })
}

/// Merged states and what is worth knowing about them.
pub struct Merged {
    pub recorder: MetricRecorder,
    pub notes: Vec<String>,
}

/// Merges state files of disjoint shards. Refuses a video present in two files (the same
/// shard twice, or shards of different splits); when the files name their shards, refuses
/// shards of different counts, a shard given twice, states scored with different minimum leak
/// areas, and — unless `allow_partial` — missing shards, since the result would not be the
/// unsharded run's.
pub fn merge_states(paths: &[PathBuf], allow_partial: bool) -> Result<Merged> {
    if paths.is_empty() {
        bail!("no state files to merge");
    }
    let mut merged: Option<(MetricRecorder, &Path)> = None;
    let mut owner: BTreeMap<String, &Path> = BTreeMap::new();
    let mut shards: BTreeMap<usize, &Path> = BTreeMap::new();
    let mut counts = BTreeSet::new();
    let mut unlabelled = 0;
    let mut origins: Vec<(&Path, BTreeMap<String, String>)> = Vec::new();
    let mut notes = Vec::new();
    for path in paths {
        let state = read_state(path)?;
        let recorder = MetricRecorder::from_state(&state)
            .with_context(|| format!("reading {}", path.display()))?;
        for video in recorder.videos() {
            if let Some(first) = owner.insert(video.to_string(), path) {
                bail!(
                    "video {video:?} is in both {} and {}: each video must be in one shard \
                     (was a state file given twice, or shards of different runs?)",
                    first.display(),
                    path.display()
                );
            }
        }
        match state.shard {
            Some(shard) => {
                counts.insert(shard.count);
                if let Some(first) = shards.insert(shard.index, path) {
                    bail!(
                        "shard {shard} is both {} and {}",
                        first.display(),
                        path.display()
                    );
                }
            }
            None => unlabelled += 1,
        }
        origins.push((path, state.origin.clone()));
        match &mut merged {
            None => merged = Some((recorder, path)),
            Some((all, first)) => {
                if all.min_leak_area() != recorder.min_leak_area() {
                    bail!(
                        "{} was scored with minimum leak area {} but {} with {}: the detection \
                         rates would mix two rules (score every shard with one --min-leak-area)",
                        first.display(),
                        all.min_leak_area(),
                        path.display(),
                        recorder.min_leak_area()
                    );
                }
                all.try_merge(&recorder)?;
            }
        }
    }
    let (merged, _) = merged.expect("at least one state file");
    if counts.len() > 1 {
        bail!(
            "the state files come from different shard counts ({:?}): merge the shards of one run",
            counts
        );
    }
    if let Some(&count) = counts.iter().next() {
        // Every shard index is below `count` (checked when read), so this is what is missing;
        // `count` itself may be anything `--shard` accepted: name only the first few.
        let missing = count - shards.len();
        if missing > 0 {
            const NAMED: usize = 10;
            let mut named: Vec<String> = (0..count)
                .filter(|k| !shards.contains_key(k))
                .take(NAMED)
                .map(|k| format!("{k}/{count}"))
                .collect();
            if missing > NAMED {
                named.push(format!("and {} more", missing - NAMED));
            }
            let what = format!(
                "missing shard{} {}",
                if missing == 1 { "" } else { "s" },
                named.join(", ")
            );
            if !allow_partial {
                bail!("{what}: the merge would not be the whole run (--allow-partial merges what is there)");
            }
            notes.push(format!("{what} (merged what is there: --allow-partial)"));
        }
    }
    if unlabelled > 0 && !counts.is_empty() {
        notes.push(format!("{unlabelled} state files name no shard"));
    }
    let (first_path, first) = &origins[0];
    for (path, origin) in &origins[1..] {
        let differing: Vec<&str> = first
            .keys()
            .chain(origin.keys())
            .filter(|k| first.get(*k) != origin.get(*k))
            .map(String::as_str)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !differing.is_empty() {
            notes.push(format!(
                "{} and {} differ in {}: check that they belong to one run",
                first_path.display(),
                path.display(),
                differing.join(", ")
            ));
        }
    }
    Ok(Merged {
        recorder: merged,
        notes,
    })
}
