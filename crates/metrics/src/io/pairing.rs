//! Pairing a folder of predictions with a folder of masks, by video and file name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::exclude::Exclusions;
use crate::Shard;

/// How many missing files an error lists.
const SHOW_MISSING: usize = 5;

/// One prediction and its mask.
#[derive(Clone, Debug)]
pub struct FramePair {
    pub video: String,
    /// The frame's file stem (the pairing key).
    pub stem: String,
    pub pred: PathBuf,
    pub gt: PathBuf,
    /// The binary mask the frame-level detection's predicted area is counted from, when it is
    /// not `pred`: in an `fgstp eval`/`infer --output` folder with `maps/` and `masks/`, the
    /// `masks/` file of the `maps/` prediction (see [`eval_maps_and_masks`]).
    pub detection: Option<PathBuf>,
    /// The frame itself, when `--gt` is a dataset split root (`<video>/images/<stem>.*`).
    pub image: Option<PathBuf>,
}

/// The pairs found, in video and file-name order.
#[derive(Debug)]
pub struct Pairs {
    pub frames: Vec<FramePair>,
    /// Masks without a prediction (FGSTP never predicts a video's last two frames).
    pub unpredicted_masks: usize,
    /// Predictions left out by `--exclude` / `--exclude-annotated`.
    pub excluded: usize,
    /// Predictions of frames that exist in the split (`<video>/images/`) but have no mask.
    pub unannotated: usize,
    /// Where the predictions were found, in words (e.g. `<video>/masks/<frame>.png`).
    pub layout: String,
}

/// What to pair and what to leave out.
#[derive(Clone, Debug, Default)]
pub struct PairOptions {
    /// Fail when a mask has no prediction.
    pub strict: bool,
    pub exclude: Exclusions,
    /// Only this shard's videos.
    pub shard: Option<Shard>,
}

fn is_png(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
}

/// The files directly in `dir` whose extension passes `keep`, by file stem. Frames pair by
/// name, so a name that is not UTF-8 or a stem given twice (`0001.png` and `0001.PNG`) is an
/// error rather than a frame silently left out or picked by directory order.
fn files_by_stem(dir: &Path, keep: fn(&Path) -> bool) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        if path.is_file() && keep(&path) {
            let stem = utf8_name(path.file_stem(), &path)?;
            if let Some(other) = out.insert(stem.to_string(), path.clone()) {
                bail!(
                    "{} and {} are the same frame ({stem}): keep one",
                    other.display(),
                    path.display()
                );
            }
        }
    }
    Ok(out)
}

/// `name` as text, or an error naming `path`: files and folders pair by name.
fn utf8_name<'a>(name: Option<&'a std::ffi::OsStr>, path: &Path) -> Result<&'a str> {
    name.and_then(|n| n.to_str()).with_context(|| {
        format!(
            "{}: the name is not UTF-8, and frames and videos are paired by name; rename it",
            path.display()
        )
    })
}

fn pngs(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    files_by_stem(dir, is_png)
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

fn name_of(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// A folder of one video's predictions; `None` = a flat folder (one video).
type VideoDir = (Option<String>, PathBuf);

/// The `maps/` and `masks/` folders of an `fgstp eval`/`infer --output` folder (it has
/// `overlays/`) that has both. Its `maps/` are min-max normalised per frame (what PySODMetrics
/// scores), so their pixels `>= 128` say nothing about whether a leak is predicted; its
/// `masks/` mark the predicted pixels (probability `> 0.5` with the default `--mask
/// probability`). The maps are scored, and each frame's detection area is counted from the
/// mask of the same video and file stem.
pub fn eval_maps_and_masks(pred: &Path) -> Option<(PathBuf, PathBuf)> {
    let (maps, masks) = (pred.join("maps"), pred.join("masks"));
    (pred.join("overlays").is_dir() && maps.is_dir() && masks.is_dir()).then_some((maps, masks))
}

/// Where the predictions of each video are, and the layout in words. Accepted:
/// - a path with one `*` component standing for the video (`OUT/*/masks`, `RESULTS/*/mean`);
/// - an `fgstp eval`/`infer --output` folder (it has `overlays/`): its `maps/` (what eval
///   scores; with its `masks/` for the detection areas, see [`eval_maps_and_masks`]), else its
///   `masks/`;
/// - `<video>/<frame>.png`, `<video>/masks/<frame>.png`, or `<frame>.png` for one video.
pub fn prediction_videos(pred: &Path) -> Result<(Vec<VideoDir>, String)> {
    let components: Vec<Component> = pred.components().collect();
    if let Some(star) = components.iter().position(|c| c.as_os_str() == "*") {
        if components[star + 1..].iter().any(|c| c.as_os_str() == "*") {
            bail!(
                "--pred {}: only one * (the video) may appear",
                pred.display()
            );
        }
        let base: PathBuf = components[..star].iter().collect();
        let rest: PathBuf = components[star + 1..].iter().collect();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        if !base.is_dir() {
            bail!(
                "--pred {}: {} is not a directory",
                pred.display(),
                base.display()
            );
        }
        let mut videos = Vec::new();
        for dir in subdirectories(&base)? {
            let frames = dir.join(&rest);
            if frames.is_dir() && !pngs(&frames)?.is_empty() {
                videos.push((Some(utf8_name(dir.file_name(), &dir)?.to_string()), frames));
            }
        }
        if videos.is_empty() {
            bail!(
                "--pred {}: no folder matches with PNG files",
                pred.display()
            );
        }
        let layout = format!("<video>/{}/<frame>.png", rest.display());
        return Ok((videos, layout.replace("//", "/")));
    }
    if !pred.is_dir() {
        bail!("--pred {}: not a directory", pred.display());
    }
    if pred.join("overlays").is_dir() {
        for sub in ["maps", "masks"] {
            let dir = pred.join(sub);
            if dir.is_dir() {
                let (videos, layout) = plain_layout(&dir)?;
                let detection = if sub == "maps" && eval_maps_and_masks(pred).is_some() {
                    format!("; detection areas from masks/{layout}")
                } else {
                    String::new()
                };
                return Ok((
                    videos,
                    format!("fgstp eval/infer output, {sub}/{layout}{detection}"),
                ));
            }
        }
    }
    plain_layout(pred)
}

fn plain_layout(pred: &Path) -> Result<(Vec<VideoDir>, String)> {
    let flat = pngs(pred)?;
    let mut videos: Vec<VideoDir> = Vec::new();
    let mut in_masks = 0;
    for dir in subdirectories(pred)? {
        let frames = if !pngs(&dir)?.is_empty() {
            dir.clone()
        } else if dir.join("masks").is_dir() && !pngs(&dir.join("masks"))?.is_empty() {
            in_masks += 1;
            dir.join("masks")
        } else {
            continue;
        };
        let name = utf8_name(dir.file_name(), &dir)?.to_string();
        videos.push((Some(name), frames));
    }
    match (flat.is_empty(), videos.is_empty()) {
        (true, true) => bail!(
            "--pred {}: no PNG predictions, neither <video>/<frame>.png, <video>/masks/<frame>.png \
             nor <frame>.png (a path with * for the video reads other layouts, e.g. 'OUT/*/mean')",
            pred.display()
        ),
        (false, false) => bail!(
            "--pred {}: has both PNG files and video folders with PNGs; point it at one layout",
            pred.display()
        ),
        (false, true) => Ok((vec![(None, pred.to_path_buf())], "<frame>.png".into())),
        (true, false) => {
            let layout = if in_masks == videos.len() {
                "<video>/masks/<frame>.png"
            } else {
                "<video>/<frame>.png"
            };
            Ok((videos, layout.into()))
        }
    }
}

/// The masks of `video` (`<gt>/<video>/masks/` of a split, or `<gt>/<video>/`), and its
/// frames folder when `--gt` is a split (`<gt>/<video>/images/`).
fn gt_dirs(gt: &Path, video: Option<&str>) -> (PathBuf, Option<PathBuf>) {
    let base = match video {
        Some(v) => gt.join(v),
        None => gt.to_path_buf(),
    };
    let masks = base.join("masks");
    let images = base.join("images");
    let images = images.is_dir().then_some(images);
    if masks.is_dir() {
        (masks, images)
    } else {
        (base, images)
    }
}

/// The name of the one video of a flat layout: the mask folder's (or its scene's, for
/// `<scene>/masks`).
fn flat_video_name(gt: &Path) -> String {
    let gt = std::fs::canonicalize(gt).unwrap_or_else(|_| gt.to_path_buf());
    if gt.file_name().is_some_and(|n| n == "masks") {
        if let Some(parent) = gt.parent() {
            return name_of(parent);
        }
    }
    name_of(&gt)
}

fn is_image(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        ["png", "jpg", "jpeg", "tif", "tiff", "bmp"]
            .iter()
            .any(|x| e.eq_ignore_ascii_case(x))
    })
}

/// Pairs `pred` (see [`prediction_videos`]) with `gt` (the same tree, or a dataset split root
/// with `<video>/masks/<frame>.png`). A prediction without a mask is an error listing the first
/// few, unless the frame exists in the split without a mask (counted) or is excluded
/// (counted); masks without a prediction are counted, or an error with `strict`. In an eval
/// output with `maps/` and `masks/` (see [`eval_maps_and_masks`]), a scored map without its
/// binary mask is an error listing the first few.
pub fn pair_files(pred: &Path, gt: &Path, options: &PairOptions) -> Result<Pairs> {
    if !gt.is_dir() {
        bail!("--gt {}: not a directory", gt.display());
    }
    let (mut videos, layout) = prediction_videos(pred)?;
    let eval_dirs = eval_maps_and_masks(pred);
    if let Some(shard) = options.shard {
        let flat_name = flat_video_name(gt);
        videos = shard.select(videos, |(name, _)| {
            name.clone().unwrap_or_else(|| flat_name.clone())
        });
    }

    let mut frames = Vec::new();
    let mut missing_masks = Vec::new();
    let mut unpredicted = Vec::new();
    let mut missing_detection = Vec::new();
    let (mut excluded, mut unannotated) = (0, 0);
    for (video, dir) in videos {
        let predictions = pngs(&dir)?;
        let (masks_dir, images_dir) = gt_dirs(gt, video.as_deref());
        let masks = if masks_dir.is_dir() {
            pngs(&masks_dir)?
        } else {
            BTreeMap::new()
        };
        let images = match &images_dir {
            Some(d) => files_by_stem(d, is_image)?,
            None => BTreeMap::new(),
        };
        let name = video.clone().unwrap_or_else(|| flat_video_name(gt));
        // The eval output's masks/ counterpart of this maps/ folder.
        let detection_dir = eval_dirs
            .as_ref()
            .and_then(|(maps, masks)| dir.strip_prefix(maps).ok().map(|rel| masks.join(rel)));
        let detection_masks = match &detection_dir {
            Some(d) if d.is_dir() => pngs(d)?,
            _ => BTreeMap::new(),
        };
        for (stem, pred_path) in &predictions {
            if options.exclude.excludes(&name, stem) {
                excluded += 1;
                continue;
            }
            match masks.get(stem) {
                Some(mask) => {
                    let detection = match &detection_dir {
                        None => None,
                        Some(d) => match detection_masks.get(stem) {
                            Some(path) => Some(path.clone()),
                            None => {
                                missing_detection.push(format!(
                                    "{} (no {})",
                                    pred_path.display(),
                                    d.join(format!("{stem}.png")).display()
                                ));
                                None
                            }
                        },
                    };
                    frames.push(FramePair {
                        video: name.clone(),
                        stem: stem.clone(),
                        pred: pred_path.clone(),
                        gt: mask.clone(),
                        detection,
                        image: images.get(stem).cloned(),
                    })
                }
                None if images.contains_key(stem) => unannotated += 1,
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
                .filter(|(stem, _)| {
                    !predicted.contains(stem) && !options.exclude.excludes(&name, stem)
                })
                .map(|(_, p)| p.display().to_string()),
        );
    }
    if !missing_masks.is_empty() {
        bail!(
            "{} of {} predictions have no mask under --gt {}, e.g.:\n  {}\n\
             --gt must hold the same <video>/<frame>.png tree as --pred, or be a dataset split \
             root with <video>/masks/<frame>.png (frames in <video>/images/ without a mask are \
             skipped); --exclude leaves frames out",
            missing_masks.len(),
            missing_masks.len() + frames.len(),
            gt.display(),
            missing_masks[..missing_masks.len().min(SHOW_MISSING)].join("\n  ")
        );
    }
    if !missing_detection.is_empty() {
        bail!(
            "{} of {} maps of the fgstp eval/infer output {} have no binary mask in its masks/, \
             from which the frame-level detection's predicted area is counted (the min-max \
             normalised maps cannot tell), e.g.:\n  {}\n\
             write the folder again with `fgstp eval --output`, or point --pred at its masks/ \
             to score the binary masks alone",
            missing_detection.len(),
            frames.len(),
            pred.display(),
            missing_detection[..missing_detection.len().min(SHOW_MISSING)].join("\n  ")
        );
    }
    if options.strict && !unpredicted.is_empty() {
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
        excluded,
        unannotated,
        layout,
    })
}
