//! Frames not to score: `--exclude` lists and `--exclude-annotated` folders (the reference
//! frames a semi-supervised VOS method was given, which it copies into its output).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// One `--exclude` item.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    /// A frame stem, in every video or in one.
    Stem { video: Option<String>, stem: String },
    /// Numeric stems `first..=last` (compared as numbers, so `0-4` matches `00003`).
    Range {
        video: Option<String>,
        first: u64,
        last: u64,
    },
}

/// The frames to leave out, by video and stem.
#[derive(Clone, Debug, Default)]
pub struct Exclusions {
    items: Vec<Item>,
    /// From `--exclude-annotated`: video → stems; `None` video = a flat folder (any video).
    annotated: BTreeMap<Option<String>, BTreeSet<String>>,
}

impl Exclusions {
    /// Parses `--exclude` values: comma-separated `STEM`, `FIRST-LAST` (digits only, inclusive,
    /// compared as numbers) or either prefixed with `VIDEO/`.
    pub fn parse_list(&mut self, text: &str) -> Result<()> {
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (video, frames) = match part.rsplit_once('/') {
                Some((v, f)) => (Some(v.to_string()), f),
                None => (None, part),
            };
            if frames.is_empty() {
                bail!("--exclude {part:?}: no frame after the video name");
            }
            let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            let item = match frames.split_once('-') {
                Some((a, b)) if numeric(a) && numeric(b) => {
                    let number = |s: &str| {
                        s.parse::<u64>().with_context(|| {
                            format!("--exclude {part:?}: {s} is beyond the largest frame number")
                        })
                    };
                    let (first, last) = (number(a)?, number(b)?);
                    if first > last {
                        bail!("--exclude {part:?}: the range runs backwards");
                    }
                    Item::Range { video, first, last }
                }
                _ => Item::Stem {
                    video,
                    stem: frames.to_string(),
                },
            };
            self.items.push(item);
        }
        Ok(())
    }

    /// Adds every file under `dir`: `<video>/<frame>.*`, `<video>/masks/<frame>.*`, or
    /// `<frame>.*` directly (then for every video).
    pub fn add_annotated(&mut self, dir: &Path) -> Result<()> {
        if !dir.is_dir() {
            bail!("--exclude-annotated {}: not a directory", dir.display());
        }
        let stems = |d: &Path| -> Result<BTreeSet<String>> {
            let mut out = BTreeSet::new();
            for entry in std::fs::read_dir(d).with_context(|| format!("listing {}", d.display()))? {
                let path = entry?.path();
                if path.is_file() {
                    if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                        out.insert(stem.to_string());
                    }
                }
            }
            Ok(out)
        };
        let flat = stems(dir)?;
        if !flat.is_empty() {
            self.annotated.entry(None).or_default().extend(flat);
        }
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if !path.is_dir() {
                continue;
            }
            let video = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let masks = path.join("masks");
            let frames = stems(if masks.is_dir() { &masks } else { &path })?;
            self.annotated
                .entry(Some(video))
                .or_default()
                .extend(frames);
        }
        if self.annotated.values().all(BTreeSet::is_empty) {
            bail!(
                "--exclude-annotated {}: no files, neither <video>/<frame>.png nor <frame>.png",
                dir.display()
            );
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.annotated.is_empty()
    }

    /// Whether frame `stem` of `video` is left out.
    pub fn excludes(&self, video: &str, stem: &str) -> bool {
        let in_video = |v: &Option<String>| v.as_deref().is_none_or(|v| v == video);
        let number = stem
            .parse::<u64>()
            .ok()
            .filter(|_| stem.bytes().all(|b| b.is_ascii_digit()));
        self.items.iter().any(|item| match item {
            Item::Stem { video: v, stem: s } => in_video(v) && s == stem,
            Item::Range {
                video: v,
                first,
                last,
            } => in_video(v) && number.is_some_and(|n| (*first..=*last).contains(&n)),
        }) || self
            .annotated
            .iter()
            .any(|(v, stems)| in_video(v) && stems.contains(stem))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_name_stems_ranges_and_videos() {
        let mut ex = Exclusions::default();
        ex.parse_list("00000, 3-5,cam2/frame_07,cam3/10-11")
            .unwrap();
        assert!(ex.excludes("any", "00000"));
        assert!(ex.excludes("any", "00004") && ex.excludes("any", "5"));
        assert!(!ex.excludes("any", "00006") && !ex.excludes("any", "frame_04"));
        assert!(ex.excludes("cam2", "frame_07") && !ex.excludes("cam1", "frame_07"));
        assert!(ex.excludes("cam3", "0011") && !ex.excludes("cam2", "0011"));
        assert!(ex.parse_list("7-3").is_err());
        assert!(ex.parse_list("cam/").is_err());
        let err = ex.parse_list("1-99999999999999999999999").unwrap_err();
        assert!(
            format!("{err:#}").contains("--exclude \"1-99999999999999999999999\""),
            "{err:#}"
        );
    }

    #[test]
    fn annotated_folders_exclude_their_file_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("v1")).unwrap();
        std::fs::create_dir_all(dir.path().join("v2/masks")).unwrap();
        std::fs::write(dir.path().join("v1/00000.png"), b"").unwrap();
        std::fs::write(dir.path().join("v2/masks/00007.png"), b"").unwrap();
        let mut ex = Exclusions::default();
        ex.add_annotated(dir.path()).unwrap();
        assert!(ex.excludes("v1", "00000") && !ex.excludes("v2", "00000"));
        assert!(ex.excludes("v2", "00007") && !ex.excludes("v1", "00007"));

        let flat = tempfile::tempdir().unwrap();
        std::fs::write(flat.path().join("00003.png"), b"").unwrap();
        let mut ex = Exclusions::default();
        ex.add_annotated(flat.path()).unwrap();
        assert!(ex.excludes("whatever", "00003"));
        let empty = tempfile::tempdir().unwrap();
        assert!(Exclusions::default().add_annotated(empty.path()).is_err());
    }
}
