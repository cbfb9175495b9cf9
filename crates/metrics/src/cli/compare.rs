//! `fgstp compare` (and `fgstp-score compare`): several systems side by side, as the paper's
//! table, on the frames all of them predict.

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, ensure, Result};

use super::{
    exclusions, print_stdout, progress_bar, thread_pool, write_text, EXCLUDE_HELP,
    MIN_LEAK_AREA_HELP,
};
use crate::io::compare::{compare_systems, CompareOptions, GridFrames, System};
use crate::io::{describe_readings, Aggregation, PredKind, TableOptions};
use crate::registry::{self, Metric, METRICS};
use crate::MinLeakArea;

/// `NAME=DIR`.
#[derive(Clone, Debug)]
pub struct SystemArg(pub System);

impl FromStr for SystemArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((name, dir)) if !name.is_empty() && !dir.is_empty() => Ok(SystemArg(System {
                name: name.to_string(),
                pred: PathBuf::from(dir),
            })),
            _ => Err(format!(
                "{s:?}: write NAME=DIR, e.g. FGSTP=runs/eval or 'XMem++=out/*/masks'"
            )),
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Ground-truth masks: a dataset split root (<video>/masks/<frame>.png; its
    /// <video>/images/ give the grid's frames) or a <video>/<frame>.png tree
    #[arg(long, value_name = "DIR")]
    pub gt: PathBuf,
    /// A system: its name in the table and its predictions, in any layout `metrics --pred`
    /// reads (an `fgstp eval --output` folder: maps/ scored, detection areas from masks/;
    /// <video>/masks/, 'OUT/*/mean', …); repeat per system
    #[arg(long = "pred", value_name = "NAME=DIR", required = true)]
    pub preds: Vec<SystemArg>,
    /// Write everything as JSON: table rows, full reports, best per column, per-video rows
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the table and the per-video rows as CSV (full precision)
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write the paper-style table (best in bold) and per-video tables as Markdown
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write PNG plots here: pr_curves, fmeasure, emeasure, miou_per_video, grid
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// Frames of the picture grid: VIDEO/STEM,… or a count (spread over the videos) [default: 4]
    #[arg(long, value_name = "FRAMES")]
    pub grid_frames: Option<String>,
    /// Order the rows best first by this metric (a key such as sm, mae, iou_mean, or a column
    /// name such as S-alpha, mIoU)
    #[arg(long, value_name = "COLUMN")]
    pub sort: Option<String>,
    /// Which aggregate the table shows
    #[arg(long, value_enum, default_value_t = Aggregation::VideoMean)]
    pub aggregation: Aggregation,
    /// How prediction PNGs become maps (see `metrics --help`); the same for every system
    #[arg(long, value_enum, default_value_t = PredKind::Auto)]
    pub pred_kind: PredKind,
    #[arg(long, value_name = "AREA", default_value_t = MinLeakArea::default(), help = MIN_LEAK_AREA_HELP)]
    pub min_leak_area: MinLeakArea,
    #[arg(long, value_name = "FRAMES", help = EXCLUDE_HELP)]
    pub exclude: Vec<String>,
    /// Leave out the frames named in DIR (the reference masks the VOS methods were given)
    #[arg(long, value_name = "DIR")]
    pub exclude_annotated: Vec<PathBuf>,
}

/// A metric by key, display name or short label (case-insensitive).
fn find_metric(name: &str) -> Result<&'static Metric> {
    let lower = name.to_lowercase();
    if let Some(m) = METRICS.iter().find(|m| {
        m.key == lower || m.display.to_lowercase() == lower || m.short.to_lowercase() == lower
    }) {
        return Ok(m);
    }
    bail!(
        "--sort {name:?}: no such metric; one of {}",
        registry::keys().join(", ")
    )
}

fn grid_frames(text: Option<&str>, plots: bool) -> Result<GridFrames> {
    if !plots {
        return Ok(GridFrames::None);
    }
    let Some(text) = text else {
        return Ok(GridFrames::Spread(4));
    };
    if let Ok(n) = text.trim().parse::<usize>() {
        ensure!(
            n <= MAX_GRID_ROWS,
            "--grid-frames {n}: at most {MAX_GRID_ROWS} rows (the grid is one picture)"
        );
        return Ok(if n == 0 {
            GridFrames::None
        } else {
            GridFrames::Spread(n)
        });
    }
    let mut keys = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.rsplit_once('/') {
            Some((v, f)) if !v.is_empty() && !f.is_empty() => {
                keys.push((v.to_string(), f.to_string()))
            }
            _ => bail!("--grid-frames {item:?}: write VIDEO/STEM (e.g. cam01/00012) or a count"),
        }
    }
    ensure!(
        keys.len() <= MAX_GRID_ROWS,
        "--grid-frames: {} frames named, at most {MAX_GRID_ROWS} rows (the grid is one picture)",
        keys.len()
    );
    Ok(GridFrames::These(keys))
}

/// Rows of the comparison grid: about 170 px each, so 200 rows are a 34,000-px tall picture.
const MAX_GRID_ROWS: usize = 200;

pub fn run(args: Args, threads: Option<usize>) -> Result<()> {
    let sort = args.sort.as_deref().map(find_metric).transpose()?;
    let options = CompareOptions {
        kind: args.pred_kind,
        min_leak_area: args.min_leak_area,
        exclude: exclusions(&args.exclude, &args.exclude_annotated)?,
        grid: grid_frames(args.grid_frames.as_deref(), args.plots.is_some())?,
    };
    let systems: Vec<System> = args.preds.iter().map(|s| s.0.clone()).collect();
    let pool = thread_pool(threads)?;
    let bar = progress_bar(0, "comparing", "frames");
    let comparison = pool.install(|| {
        compare_systems(
            &args.gt,
            &systems,
            &options,
            &|frames| bar.set_length(frames as u64),
            &|| bar.inc(1),
        )
    })?;
    bar.finish_and_clear();

    let table = TableOptions {
        aggregation: args.aggregation,
        sort,
    };
    print_stdout(&comparison.text(&table))?;
    for s in &comparison.systems {
        eprintln!("{}: {} — {}", s.name, s.pred.display(), s.layout);
        for line in describe_readings(&s.readings) {
            eprintln!("  read as: {line}");
        }
        if s.dropped > 0 {
            eprintln!(
                "  {} of its frames are not predicted by every system and were left out",
                s.dropped
            );
        }
        if s.excluded > 0 {
            eprintln!(
                "  {} predictions excluded (--exclude/--exclude-annotated)",
                s.excluded
            );
        }
        if s.resized > 0 {
            eprintln!(
                "  {} predictions resized to their mask (bilinear)",
                s.resized
            );
        }
    }
    if let Some(path) = &args.json {
        write_text(
            path,
            &(serde_json::to_string_pretty(&comparison.json(&table))? + "\n"),
        )?;
    }
    if let Some(path) = &args.csv {
        write_text(path, &comparison.csv(&table))?;
    }
    if let Some(path) = &args.markdown {
        write_text(path, &comparison.markdown(&table))?;
    }
    if let Some(dir) = &args.plots {
        for path in crate::plots::write_plots(&comparison, args.aggregation, dir)? {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
