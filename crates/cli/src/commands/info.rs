//! `fgstp info`: what libtorch this binary runs on, and what it can use.

use anyhow::Result;
use serde::Serialize;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Info {
    fgstp_version: &'static str,
    tch_version: &'static str,
    libtorch_version: String,
    /// The directory of the libtorch_cpu library loaded by this process.
    libtorch_path: String,
    cuda_available: bool,
    cuda_device_count: i64,
    /// libtorch_cuda is loaded in this process: CUDA would be usable given a GPU and driver.
    libtorch_cuda_loaded: bool,
    cudnn_available: bool,
    cudnn_version: Option<i64>,
    mkl: bool,
    mkldnn: bool,
    openmp: bool,
    threads: i32,
    interop_threads: i32,
}

pub fn run(args: Args) -> Result<()> {
    let info = collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    println!("fgstp            {}", info.fgstp_version);
    println!("tch              {}", info.tch_version);
    println!("libtorch         {}", info.libtorch_version);
    println!("libtorch path    {}", info.libtorch_path);
    println!(
        "CUDA             {} ({} device{}; libtorch_cuda loaded: {})",
        if info.cuda_available {
            "available"
        } else {
            "not available"
        },
        info.cuda_device_count,
        if info.cuda_device_count == 1 { "" } else { "s" },
        yes_no(info.libtorch_cuda_loaded)
    );
    match info.cudnn_version {
        Some(v) => println!(
            "cuDNN            {} (version {v})",
            yes_no(info.cudnn_available)
        ),
        None => println!("cuDNN            {}", yes_no(info.cudnn_available)),
    }
    println!(
        "CPU backends     MKL: {}, oneDNN: {}, OpenMP: {}",
        yes_no(info.mkl),
        yes_no(info.mkldnn),
        yes_no(info.openmp)
    );
    println!(
        "threads          {} intra-op, {} inter-op",
        info.threads, info.interop_threads
    );
    Ok(())
}

fn collect() -> Info {
    let cuda_available = tch::Cuda::is_available();
    let cudnn_available = cuda_available && tch::Cuda::cudnn_is_available();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let lib_dir = loaded_library_dir(&maps, "libtorch_cpu");
    Info {
        fgstp_version: env!("CARGO_PKG_VERSION"),
        tch_version: env!("FGSTP_TCH_VERSION"),
        libtorch_version: lib_dir
            .as_deref()
            .and_then(libtorch_version)
            .unwrap_or_else(|| env!("FGSTP_LIBTORCH_VERSION").to_string()),
        libtorch_path: lib_dir
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| env!("FGSTP_LIBTORCH_LIB").to_string()),
        cuda_available,
        cuda_device_count: tch::Cuda::device_count(),
        libtorch_cuda_loaded: loaded_library_dir(&maps, "libtorch_cuda").is_some(),
        cudnn_available,
        // Asking for the cuDNN version without a GPU aborts inside libtorch.
        cudnn_version: cudnn_available.then(tch::utils::version_cudnn),
        mkl: tch::utils::has_mkl(),
        mkldnn: tch::utils::has_mkldnn(),
        openmp: tch::utils::has_openmp(),
        threads: tch::get_num_threads(),
        interop_threads: tch::get_num_interop_threads(),
    }
}

/// Where the dynamic loader actually found `name` (it can differ from the build-time
/// path when LD_LIBRARY_PATH is set), read from the process's memory map (Linux only).
fn loaded_library_dir(maps: &str, name: &str) -> Option<PathBuf> {
    let so = format!("/{name}.so");
    let dylib = format!("/{name}.dylib");
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| path.ends_with(&so) || path.ends_with(&dylib))
        .and_then(|path| PathBuf::from(path).parent().map(PathBuf::from))
}

include!("../../../libtorch_version.rs");
