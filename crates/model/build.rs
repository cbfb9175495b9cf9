include!("../libtorch_link.rs");

fn main() {
    link_libtorch();
    build_runtime_shim();
}

/// The shim's translation units, one per concern of `src/runtime/` (`shim.h` is their shared
/// error handling).
const SHIM_SOURCES: [&str; 5] = [
    "shim.cpp",
    "precision.cpp",
    "optim_kernels.cpp",
    "transfer.cpp",
    "cuda_graph.cpp",
];

/// Compiles the C++ shim in `csrc/` (precision switches, the optimiser's kernels, pinned
/// uploads and stream events, CUDA graphs; see `src/runtime/`) against the libtorch tch links.
/// CUDA graphs need a complete set of CUDA runtime headers: `$CUDA_HOME/include`,
/// `/usr/local/cuda/include`, or in a PyPI install the ones triton bundles (the
/// `nvidia-cuda-runtime` wheel's lack `crt/`); without them (or without libtorch_cuda) the graph
/// functions report that they are not available.
fn build_runtime_shim() {
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let lib = std::fs::canonicalize(&lib).unwrap_or_else(|_| std::path::PathBuf::from(lib));
    let root = lib.parent().expect("libtorch's lib/ has a parent");
    let include = root.join("include");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .files(SHIM_SOURCES.iter().map(|name| format!("csrc/{name}")))
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .warnings(false)
        .extra_warnings(false)
        .flag_if_supported("-w");
    let has_cuda_lib = lib.join("libtorch_cuda.so").exists() && lib.join("libc10_cuda.so").exists();
    let cuda_include = cuda_runtime_include(root);
    if let (true, Some(cuda)) = (has_cuda_lib, &cuda_include) {
        build.include(cuda).define("FGSTP_WITH_CUDA", None);
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
    }
    build.compile("fgstp_runtime");
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
