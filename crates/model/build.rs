include!("../libtorch_link.rs");

fn main() {
    link_libtorch();
    build_runtime_shim();
}

/// The shim's translation units, one per concern of `src/runtime/` (`shim.h` is their shared
/// error handling).
const SHIM_SOURCES: [&str; 6] = [
    "shim.cpp",
    "precision.cpp",
    "optim_kernels.cpp",
    "transfer.cpp",
    "cuda_graph.cpp",
    "distributed.cpp",
];

/// Compiles the C++ shim in `csrc/` (precision switches, the optimiser's kernels, pinned
/// uploads and stream events, CUDA graphs; see `src/runtime/`) against the libtorch tch links.
/// CUDA graphs need a complete set of CUDA runtime headers: `$CUDA_HOME/include`,
/// `/usr/local/cuda/include`, or in a PyPI install the ones triton bundles (the
/// `nvidia-cuda-runtime` wheel's lack `crt/`); without them (or without libtorch_cuda) the graph
/// functions report that they are not available.
///
/// Distributed training (`distributed.cpp`): c10d's Gloo backend needs Gloo's headers, which the
/// PyPI wheel leaves out (Debian's `libgloo-dev`, installed by scripts/setup-libtorch, or
/// `GLOO_INCLUDE_DIR`); the NCCL backend (`distributed_nccl.cpp`) needs NCCL's and CUDA's
/// headers. Without them the backend reports how to get it.
fn build_runtime_shim() {
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-env-changed=GLOO_INCLUDE_DIR");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let lib = std::fs::canonicalize(&lib).unwrap_or_else(|_| std::path::PathBuf::from(lib));
    let root = lib.parent().expect("libtorch's lib/ has a parent");
    let include = root.join("include");
    let mut base = cc::Build::new();
    base.cpp(true)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .warnings(false)
        .extra_warnings(false)
        .flag_if_supported("-w");
    let mut build = base.clone();
    build.files(SHIM_SOURCES.iter().map(|name| format!("csrc/{name}")));
    let has_cuda_lib = lib.join("libtorch_cuda.so").exists() && lib.join("libc10_cuda.so").exists();
    let cuda_include = cuda_runtime_include(root);
    let mut nccl = nccl_build(&base, root, has_cuda_lib);
    if let Some(gloo) = gloo_include() {
        // A system directory stays where the compiler already searches it.
        if gloo != std::path::Path::new("/usr/include") {
            build.include(gloo);
        }
        build.define("USE_C10D_GLOO", None);
    } else {
        println!(
            "cargo:warning=Gloo's headers not found (apt-get install libgloo-dev, or set \
             GLOO_INCLUDE_DIR): distributed training on the CPU is left out of this build"
        );
    }
    if let (true, Some(cuda)) = (has_cuda_lib, &cuda_include) {
        build.include(cuda).define("FGSTP_WITH_CUDA", None);
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
    }
    // The shim calls into the NCCL part: it comes first on the link line.
    build.compile("fgstp_runtime");
    nccl.file("csrc/distributed_nccl.cpp");
    nccl.compile("fgstp_runtime_nccl");
}

/// The directory holding `gloo/algorithm.h`.
fn gloo_include() -> Option<std::path::PathBuf> {
    let mut candidates: Vec<std::path::PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("GLOO_INCLUDE_DIR") {
        candidates.push(dir.into());
    }
    candidates.push("/usr/include".into());
    candidates.push("/usr/local/include".into());
    candidates
        .into_iter()
        .find(|dir| dir.join("gloo/algorithm.h").exists())
}

/// The build of `distributed_nccl.cpp`: with `FGSTP_WITH_NCCL` when libtorch_cuda and every
/// header ProcessGroupNCCL.hpp reaches are found (NCCL's, the CUDA runtime's and libraries',
/// CCCL's `nv/target`): a CUDA toolkit at `CUDA_HOME`, or PyTorch's `nvidia-*` wheels.
fn nccl_build(base: &cc::Build, torch_root: &std::path::Path, has_cuda_lib: bool) -> cc::Build {
    let mut build = base.clone();
    if !has_cuda_lib {
        return build;
    }
    let site = torch_root.parent().map(std::path::Path::to_path_buf);
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    if let Some(home) = std::env::var_os("CUDA_HOME") {
        dirs.push(std::path::PathBuf::from(home).join("include"));
    }
    dirs.push("/usr/local/cuda/include".into());
    if let Some(site) = &site {
        for sub in [
            "nvidia/nccl/include",
            "nvidia/cu13/include",
            "nvidia/cu12/include",
            "nvidia/cuda_runtime/include",
            "nvidia/cuda_cccl/include",
            "nvidia/cu13/include/cccl",
            "triton/backends/nvidia/include",
        ] {
            dirs.push(site.join(sub));
        }
    }
    dirs.retain(|d| d.is_dir());
    let found = |file: &str| dirs.iter().any(|d| d.join(file).exists());
    let complete = [
        "nccl.h",
        "cuda_runtime_api.h",
        "crt/host_config.h",
        "cusparse.h",
        "nv/target",
    ]
    .iter()
    .all(|f| found(f));
    if complete {
        for d in &dirs {
            build.include(d);
        }
        build
            .define("FGSTP_WITH_NCCL", None)
            .define("USE_C10D_NCCL", None)
            .define("USE_CUDA", None);
    }
    build
}

fn cuda_runtime_include(torch_root: &std::path::Path) -> Option<std::path::PathBuf> {
    let mut candidates = Vec::new();
    if let Some(home) = std::env::var_os("CUDA_HOME") {
        candidates.push(std::path::PathBuf::from(home).join("include"));
    }
    candidates.push("/usr/local/cuda/include".into());
    if let Some(site) = torch_root.parent() {
        candidates.push(site.join("triton/backends/nvidia/include"));
    }
    candidates.into_iter().find(|dir| {
        dir.join("cuda_runtime_api.h").exists() && dir.join("crt/host_config.h").exists()
    })
}
