//! Pairing a folder of predictions with a folder of masks, by video and file name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// How many missing files an error lists.
const SHOW_MISSING: usize = 5;

/// One prediction and its mask.
pub struct FramePair {
    pub video: String,
    pub pred: PathBuf,
    pub gt: PathBuf,
}

/// The pairs found, in video and file-name order.
pub struct Pairs {
    pub frames: Vec<FramePair>,
    /// Masks without a prediction (FGSTP never predicts a video's last two frames).
    pub unpredicted_masks: usize,
}

fn is_png(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
}

/// The PNGs directly in `dir`, by file stem.
fn pngs(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_file() && is_png(&path) {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                out.insert(stem.to_string(), path);
            }
        }
    }
    Ok(out)
}

fn subdirectories(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Where the masks of `video` are: `<gt>/<video>/masks/` (a dataset split) or `<gt>/<video>/`.
fn mask_dir(gt: &Path, video: Option<&str>) -> PathBuf {
    let base = match video {
        Some(v) => gt.join(v),
        None => gt.to_path_buf(),
    };
    let split = base.join("masks");
    if split.is_dir() {
        split
    } else {
        base
    }
}

/// Pairs `pred` (`<video>/<frame>.png`, or `<frame>.png` for one video) with `gt` (the same
/// tree, or a dataset split root with `<video>/masks/<frame>.png`). A prediction without a mask
/// is an error listing the first few; masks without a prediction are counted, or an error
/// with `strict`.
pub fn pair_files(pred: &Path, gt: &Path, strict: bool) -> Result<Pairs> {
    for (flag, dir) in [("--pred", pred), ("--gt", gt)] {
        if !dir.is_dir() {
            bail!("{flag} {}: not a directory", dir.display());
        }
    }
    let flat = pngs(pred)?;
    let mut videos: Vec<(Option<String>, BTreeMap<String, PathBuf>)> = Vec::new();
    for dir in subdirectories(pred)? {
        let frames = pngs(&dir)?;
        if !frames.is_empty() {
            let name = dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            videos.push((Some(name), frames));
        }
    }
    match (flat.is_empty(), videos.is_empty()) {
        (true, true) => bail!(
            "--pred {}: no PNG predictions, neither <video>/<frame>.png nor <frame>.png",
            pred.display()
        ),
        (false, false) => bail!(
            "--pred {}: has both PNG files and video folders with PNGs; point it at one layout",
            pred.display()
        ),
        (false, true) => videos.push((None, flat)),
        (true, false) => {}
    }

    let mut frames = Vec::new();
    let mut missing_masks = Vec::new();
    let mut unpredicted = Vec::new();
    for (video, predictions) in videos {
        let masks_dir = mask_dir(gt, video.as_deref());
        let masks = if masks_dir.is_dir() {
            pngs(&masks_dir)?
        } else {
            BTreeMap::new()
        };
        let name = video.clone().unwrap_or_else(|| {
            pred.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        });
        for (stem, pred_path) in &predictions {
            match masks.get(stem) {
                Some(mask) => frames.push(FramePair {
                    video: name.clone(),
                    pred: pred_path.clone(),
                    gt: mask.clone(),
                }),
                None => missing_masks.push(format!(
                    "{} (no {})",
                    pred_path.display(),
                    masks_dir.join(format!("{stem}.png")).display()
                )),
            }
        }
        let predicted: BTreeSet<&String> = predictions.keys().collect();
        unpredicted.extend(
            masks
                .iter()
                .filter(|(stem, _)| !predicted.contains(stem))
                .map(|(_, p)| p.display().to_string()),
        );
    }
    if !missing_masks.is_empty() {
        bail!(
            "{} of {} predictions have no mask under --gt {}, e.g.:\n  {}\n\
             --gt must hold the same <video>/<frame>.png tree as --pred, or be a dataset split \
             root with <video>/masks/<frame>.png",
            missing_masks.len(),
            missing_masks.len() + frames.len(),
            gt.display(),
            missing_masks[..missing_masks.len().min(SHOW_MISSING)].join("\n  ")
        );
    }
    if strict && !unpredicted.is_empty() {
        bail!(
            "{} masks have no prediction under --pred {}, e.g.:\n  {}",
            unpredicted.len(),
            pred.display(),
            unpredicted[..unpredicted.len().min(SHOW_MISSING)].join("\n  ")
        );
    }
    Ok(Pairs {
        frames,
        unpredicted_masks: unpredicted.len(),
    })
}
