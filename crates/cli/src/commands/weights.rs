//! `fgstp weights inspect|convert`: look into checkpoints and convert between PyTorch `.pth` and
//! `.safetensors`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Subcommand;
use fgstp_model::checkpoint::{DType, StateDict};
use fgstp_model::models::matching::{check_against_model, describe, load_hint};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: WeightsCommand,
}

#[derive(Subcommand)]
enum WeightsCommand {
    /// Show a checkpoint's format, tensors, dtypes, parameter count and which model it fits
    Inspect(InspectArgs),
    /// Convert a checkpoint to .safetensors or a PyTorch .pth (by OUT's extension)
    Convert(ConvertArgs),
}

#[derive(clap::Args)]
struct InspectArgs {
    /// A torch.save file (.pth/.pt/.bin, zip or legacy) or a .safetensors file
    file: PathBuf,
    /// List every tensor (key, dtype, shape) instead of a summary per top-level prefix
    #[arg(long, short)]
    verbose: bool,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
    /// Skip building a model of the detected kind and variant to check every key and shape
    #[arg(long)]
    no_check: bool,
}

#[derive(clap::Args)]
struct ConvertArgs {
    /// The checkpoint to read (any format `inspect` reads)
    input: PathBuf,
    /// Where to write: .safetensors, or .pth/.pt/.bin for a file PyTorch's torch.load reads
    output: PathBuf,
    /// Replace OUTPUT if it exists
    #[arg(long)]
    force: bool,
    /// List every tensor written
    #[arg(long, short)]
    verbose: bool,
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        WeightsCommand::Inspect(args) => inspect(args),
        WeightsCommand::Convert(args) => convert(args),
    }
}

struct TensorInfo {
    key: String,
    dtype: String,
    shape: Vec<i64>,
    numel: u64,
}

fn tensor_infos(sd: &StateDict) -> Vec<TensorInfo> {
    sd.iter()
        .map(|(key, t)| TensorInfo {
            key: key.to_string(),
            dtype: DType::from_kind(t.kind())
                .map_or_else(|| format!("{:?}", t.kind()), |d| d.to_string()),
            shape: t.size(),
            numel: t.numel() as u64,
        })
        .collect()
}

/// Tensor and element counts per dtype, in a stable order.
fn dtype_counts(infos: &[TensorInfo]) -> BTreeMap<&str, (usize, u64)> {
    let mut counts = BTreeMap::new();
    for info in infos {
        let entry = counts.entry(info.dtype.as_str()).or_insert((0, 0));
        entry.0 += 1;
        entry.1 += info.numel;
    }
    counts
}

/// Tensor and element counts per top-level key segment (`backbone`, `ctc`, ...).
fn prefix_counts(infos: &[TensorInfo]) -> Vec<(String, usize, u64)> {
    let mut groups: Vec<(String, usize, u64)> = Vec::new();
    for info in infos {
        let top = info.key.split('.').next().unwrap_or_default().to_string();
        match groups.iter_mut().find(|(name, ..)| *name == top) {
            Some(group) => {
                group.1 += 1;
                group.2 += info.numel;
            }
            None => groups.push((top, 1, info.numel)),
        }
    }
    groups
}

/// A parameter count with thousands separators.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|g| std::str::from_utf8(g).expect("ASCII digits"))
        .collect();
    groups.join(",")
}

fn inspect(args: InspectArgs) -> Result<()> {
    let sd = StateDict::read(&args.file)?;
    let infos = tensor_infos(&sd);
    let detected = sd.detect_layout();
    let total: u64 = infos.iter().map(|i| i.numel).sum();
    let file_bytes = std::fs::metadata(&args.file)?.len();
    let format = sd.source.format.map(|f| f.to_string()).unwrap_or_default();
    let check = if args.no_check {
        None
    } else {
        // A training checkpoint's optimiser state (`optimizer.*`) is not part of the model.
        let weights: Vec<(String, tch::Tensor)> = sd
            .iter()
            .filter(|(key, _)| !key.starts_with(fgstp_train::trainer::optim::STATE_PREFIX))
            .map(|(key, t)| (key.to_string(), t.shallow_clone()))
            .collect();
        if weights.len() == sd.iter().count() {
            check_against_model(&sd, &detected)?
        } else {
            check_against_model(&StateDict::from_tensors(weights)?, &detected)?
        }
    };

    if args.json {
        let json = serde_json::json!({
            "file": args.file,
            "file_bytes": file_bytes,
            "format": format,
            "nesting": sd.source.nesting,
            "stripped_prefix": sd.source.stripped_prefix,
            "ignored_entries": sd.source.ignored,
            "tensors": infos.len(),
            "parameters": total,
            "dtypes": dtype_counts(&infos).into_iter()
                .map(|(d, (n, numel))| (d.to_string(), serde_json::json!({"tensors": n, "elements": numel})))
                .collect::<serde_json::Map<_, _>>(),
            "layout": format!("{:?}", detected.layout),
            "pvt_v2_variant": detected.pvt.as_ref().and_then(|p| p.variant),
            "description": detected.describe(),
            "model_check": check.as_ref().map(|c| serde_json::json!({
                "model": c.model,
                "exact": c.plan.is_exact(),
                "loaded": c.plan.report.loaded.len(),
                "missing": c.plan.report.missing,
                "unexpected": c.plan.report.skipped,
                "mismatched": c.plan.mismatched.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
            })),
            "keys": infos.iter().map(|i| serde_json::json!({
                "key": i.key, "dtype": i.dtype, "shape": i.shape,
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }

    println!(
        "file:       {} ({:.1} MB)",
        args.file.display(),
        file_bytes as f64 / 1e6
    );
    println!("format:     {format}");
    match &sd.source.nesting {
        Some(key) => println!("nesting:    tensors under {key:?}"),
        None => println!("nesting:    tensors at the top level"),
    }
    if let Some(prefix) = &sd.source.stripped_prefix {
        println!("prefix:     {prefix:?} stripped from every key (nn.DataParallel)");
    }
    if !sd.source.ignored.is_empty() {
        println!("ignored:    {} (not tensors)", sd.source.ignored.join(", "));
    }
    println!("tensors:    {}", infos.len());
    println!(
        "parameters: {} (elements, buffers included)",
        thousands(total)
    );
    let dtypes: Vec<String> = dtype_counts(&infos)
        .into_iter()
        .map(|(d, (n, _))| format!("{d} ×{n}"))
        .collect();
    println!("dtypes:     {}", dtypes.join(", "));
    println!("fits:       {}", detected.describe());
    if let Some(hint) = load_hint(&detected) {
        println!("            {hint}");
    }
    if let Some(check) = &check {
        println!("check:      {}", describe(check));
    }
    println!();
    if args.verbose {
        let width = infos.iter().map(|i| i.key.len()).max().unwrap_or(0);
        for info in &infos {
            println!("{:width$}  {:9} {:?}", info.key, info.dtype, info.shape);
        }
    } else {
        let width = infos
            .iter()
            .map(|i| i.key.split('.').next().unwrap_or_default().len())
            .max()
            .unwrap_or(0)
            .max(6);
        println!(
            "{:width$}  {:>7}  {:>14}",
            "prefix", "tensors", "parameters"
        );
        for (prefix, n, numel) in prefix_counts(&infos) {
            println!("{prefix:width$}  {n:>7}  {:>14}", thousands(numel));
        }
        println!("(--verbose lists every key with its dtype and shape)");
    }
    Ok(())
}

fn convert(args: ConvertArgs) -> Result<()> {
    let same = match (args.input.canonicalize(), args.output.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        bail!(
            "{} is the input; choose another output file",
            args.output.display()
        );
    }
    if args.output.exists() && !args.force {
        bail!(
            "{} exists; pass --force to replace it",
            args.output.display()
        );
    }
    let sd = StateDict::read(&args.input)?;
    sd.write(&args.output)?;
    let total: u64 = sd.numel();
    println!(
        "wrote {} tensors ({} parameters) to {}",
        sd.len(),
        thousands(total),
        args.output.display()
    );
    if let Some(key) = &sd.source.nesting {
        println!(
            "  unwrapped from {key:?}; not written: {}",
            sd.source.ignored.join(", ")
        );
    }
    if let Some(prefix) = &sd.source.stripped_prefix {
        println!("  {prefix:?} prefix stripped from every key");
    }
    if args.verbose {
        for info in tensor_infos(&sd) {
            println!("  {}  {} {:?}", info.key, info.dtype, info.shape);
        }
    }
    Ok(())
}
