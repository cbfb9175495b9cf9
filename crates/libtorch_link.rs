// Build-script fragment shared (via `include!`) by every crate that links libtorch.
//
// Why it exists:
// - tch links libtorch dynamically but sets no rpath on our binaries and tests, so
//   without LD_LIBRARY_PATH they fail with `libtorch_cpu.so: cannot open shared object`.
// - rustc links with `--as-needed`, which drops `libtorch_cuda.so` (nothing references it
//   by symbol); CUDA then reports "not available" on a GPU machine (tch-rs #980, #291).
// `cargo:rustc-link-arg` only reaches the emitting package's own binaries/tests, hence one
// copy of this per crate. torch-sys hands us the lib dir it used as DEP_TCH_LIBTORCH_LIB
// (it declares `links = "tch"`), so LIBTORCH, LIBTORCH_USE_PYTORCH and our `.libtorch`
// link all resolve to one directory.

const EXPECTED_LIBTORCH: &str = "2.13.0";

include!("libtorch_version.rs");

fn link_libtorch() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../libtorch_link.rs");
    println!("cargo:rerun-if-changed=../libtorch_version.rs");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return; // torch-sys only exports it on Linux and macOS.
    };
    // The real directory, so binaries keep working when copied out of the checkout.
    let lib = std::fs::canonicalize(&lib).unwrap_or_else(|_| std::path::PathBuf::from(lib));
    println!("cargo:rustc-env=FGSTP_LIBTORCH_LIB={}", lib.display());

    let version = libtorch_version(&lib).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=FGSTP_LIBTORCH_VERSION={version}");
    let bypass = std::env::var_os("LIBTORCH_BYPASS_VERSION_CHECK").is_some();
    println!("cargo:rerun-if-env-changed=LIBTORCH_BYPASS_VERSION_CHECK");
    if version != "unknown" && !version.starts_with(EXPECTED_LIBTORCH) && !bypass {
        panic!(
            "libtorch at {} is version {version}, but fgstp (tch 0.26) needs {EXPECTED_LIBTORCH}.\n\
             Unset LIBTORCH / LIBTORCH_USE_PYTORCH to use the one scripts/setup-libtorch installs, \
             or point LIBTORCH at a {EXPECTED_LIBTORCH} install \
             (LIBTORCH_BYPASS_VERSION_CHECK=1 to try anyway).",
            lib.display()
        );
    }

    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" || target_os == "macos" {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
    if target_os == "linux" && lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-L{}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}
