//! `fgstp metrics`: scores folders of predicted masks against ground-truth masks with the
//! PySODMetrics suite and the reference `test.py`'s J&F.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use fgstp_metrics::{FrameScores, GrayView, MetricRecorder};
use image::{imageops, DynamicImage, GrayImage};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

#[derive(clap::Args)]
pub struct Args {
    /// Predicted masks: DIR/<video>/<frame>.png, or DIR/<frame>.png for a single video
    #[arg(long, value_name = "DIR")]
    pred: PathBuf,
    /// Ground-truth masks: the same tree as --pred, or a dataset split root
    /// (DIR/<video>/masks/<frame>.png)
    #[arg(long, value_name = "DIR")]
    gt: PathBuf,
    /// Also write the results as JSON: {"overall", "per_video", "video_mean", "frames", "videos"}
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Fail when a mask has no prediction (by default such masks are counted and skipped,
    /// as FGSTP never predicts the last two frames of a video)
    #[arg(long)]
    strict: bool,
}

/// How many missing files an error lists.
const SHOW_MISSING: usize = 5;

pub fn run(args: Args, threads: Option<usize>) -> Result<()> {
    let pairs = pair_files(&args.pred, &args.gt, args.strict)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .build()
        .context("starting the worker threads")?;
    let progress = ProgressBar::new(pairs.frames.len() as u64).with_style(
        ProgressStyle::with_template(
            "scoring {pos}/{len} frames [{elapsed_precise}] {wide_bar} {eta}",
        )
        .expect("valid progress template"),
    );
    let (recorder, resized) = pool.install(|| score(&pairs.frames, &progress))?;
    progress.finish_and_clear();

    let report = recorder.results()?;
    print!("{}", report.table());
    if resized > 0 {
        eprintln!(
            "note: {resized} of {} predictions differed in size from their mask and were resized to it (bilinear)",
            report.frames
        );
    }
    if pairs.unpredicted_masks > 0 {
        eprintln!(
            "note: {} masks have no prediction and were not scored (--strict makes this an error)",
            pairs.unpredicted_masks
        );
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)? + "\n";
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

struct FramePair {
    video: String,
    pred: PathBuf,
    gt: PathBuf,
}

struct Pairs {
    frames: Vec<FramePair>,
    unpredicted_masks: usize,
}

/// Scores every pair on the current rayon pool; also returns how many predictions were
/// resized. The recorder's totals are exact, so the result is the same on any thread count.
fn score(frames: &[FramePair], progress: &ProgressBar) -> Result<(MetricRecorder, usize)> {
    frames
        .par_iter()
        .map(|pair| -> Result<(String, FrameScores, bool)> {
            let gt = read_gray(&pair.gt)?;
            let mut pred = read_gray(&pair.pred)?;
            let resized = pred.dimensions() != gt.dimensions();
            if resized {
                pred = imageops::resize(
                    &pred,
                    gt.width(),
                    gt.height(),
                    imageops::FilterType::Triangle,
                );
            }
            let scores = FrameScores::compute(gray_view(&pred)?, gray_view(&gt)?)
                .with_context(|| format!("scoring {}", pair.pred.display()))?;
            progress.inc(1);
            Ok((pair.video.clone(), scores, resized))
        })
        .try_fold(
            || (MetricRecorder::new(), 0usize),
            |(mut recorder, mut resized), frame| {
                let (video, scores, was_resized) = frame?;
                recorder.add(&video, &scores);
                resized += was_resized as usize;
                Ok((recorder, resized))
            },
        )
        .try_reduce(
            || (MetricRecorder::new(), 0),
            |(mut a, ra), (b, rb)| {
                a.merge(&b);
                Ok((a, ra + rb))
            },
        )
}

fn gray_view(img: &GrayImage) -> Result<GrayView<'_>, fgstp_metrics::MetricsError> {
    GrayView::new(img.as_raw(), img.width() as usize, img.height() as usize)
}

/// Decodes an image to 8-bit grey as `cv2.imread(path, cv2.IMREAD_GRAYSCALE)` does for
/// PNGs (what PySODMetrics users load with): colour through libpng's integer weights
/// (0.299, 0.587, 0.114 in 1/32768ths, truncated), alpha dropped, 16 bits to the high byte.
fn read_gray(path: &Path) -> Result<GrayImage> {
    let img = image::open(path).with_context(|| format!("reading {}", path.display()))?;
    let (w, h) = (img.width(), img.height());
    let rgb_to_gray = |r: u32, g: u32, b: u32| ((r * 9797 + g * 19234 + b * 3737) >> 15) as u8;
    let pixels: Vec<u8> = match img {
        DynamicImage::ImageLuma8(g) => return Ok(g),
        DynamicImage::ImageLumaA8(g) => g.pixels().map(|p| p[0]).collect(),
        DynamicImage::ImageLuma16(g) => g.pixels().map(|p| (p[0] >> 8) as u8).collect(),
        DynamicImage::ImageLumaA16(g) => g.pixels().map(|p| (p[0] >> 8) as u8).collect(),
        DynamicImage::ImageRgb8(c) => c
            .pixels()
            .map(|p| rgb_to_gray(p[0] as u32, p[1] as u32, p[2] as u32))
            .collect(),
        DynamicImage::ImageRgba8(c) => c
            .pixels()
            .map(|p| rgb_to_gray(p[0] as u32, p[1] as u32, p[2] as u32))
            .collect(),
        DynamicImage::ImageRgb16(c) => c
            .pixels()
            .map(|p| rgb_to_gray((p[0] >> 8) as u32, (p[1] >> 8) as u32, (p[2] >> 8) as u32))
            .collect(),
        DynamicImage::ImageRgba16(c) => c
            .pixels()
            .map(|p| rgb_to_gray((p[0] >> 8) as u32, (p[1] >> 8) as u32, (p[2] >> 8) as u32))
            .collect(),
        other => bail!(
            "{}: unsupported pixel format {:?}: save masks as 8-bit grey or RGB PNGs",
            path.display(),
            other.color()
        ),
    };
    Ok(GrayImage::from_raw(w, h, pixels).expect("one grey value per pixel"))
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

fn pair_files(pred: &Path, gt: &Path, strict: bool) -> Result<Pairs> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_pngs_turn_grey_as_cv2_imread_grayscale() {
        // (RGB, grey) as opencv-python 4.14's cv2.imread(path, cv2.IMREAD_GRAYSCALE) read them.
        let cv2: [([u8; 3], u8); 8] = [
            ([0, 0, 0], 0),
            ([255, 255, 255], 255),
            ([255, 0, 0], 76),
            ([0, 255, 0], 149),
            ([0, 0, 255], 29),
            ([77, 200, 10], 141),
            ([0, 0, 128], 14),
            ([5, 4, 3], 4),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rgb.png");
        let mut rgb = image::RgbImage::new(cv2.len() as u32, 1);
        for (x, (c, _)) in cv2.iter().enumerate() {
            rgb.put_pixel(x as u32, 0, image::Rgb(*c));
        }
        rgb.save(&path).unwrap();
        let grey = read_gray(&path).unwrap();
        let expected: Vec<u8> = cv2.iter().map(|(_, g)| *g).collect();
        assert_eq!(grey.as_raw(), &expected);
    }
}
