//! The installed binary must find libtorch on its own and keep CUDA linked.

use std::path::Path;
use std::process::Command;

const FGSTP: &str = env!("CARGO_BIN_EXE_fgstp");

fn libtorch_lib() -> &'static Path {
    Path::new(env!("FGSTP_LIBTORCH_LIB"))
}

#[test]
fn binary_keeps_libtorch_cuda_whenever_libtorch_has_it() {
    let out = Command::new("readelf")
        .args(["-d", FGSTP])
        .output()
        .expect("readelf (binutils) is needed for this test");
    assert!(out.status.success(), "readelf failed: {out:?}");
    let dynamic = String::from_utf8_lossy(&out.stdout);
    let needs_cuda = dynamic.contains("Shared library: [libtorch_cuda.so]");
    let libtorch_has_cuda = libtorch_lib().join("libtorch_cuda.so").exists();
    assert_eq!(
        needs_cuda,
        libtorch_has_cuda,
        "NEEDED libtorch_cuda.so = {needs_cuda}, but {} has it = {libtorch_has_cuda}:\n{dynamic}",
        libtorch_lib().display()
    );
    assert!(
        dynamic.contains(&libtorch_lib().display().to_string()),
        "no rpath/runpath to {}:\n{dynamic}",
        libtorch_lib().display()
    );
}

#[test]
fn info_runs_without_ld_library_path_on_libtorch_2_13() {
    let out = Command::new(FGSTP)
        .args(["--threads", "1", "info", "--json"])
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let version = info["libtorch_version"].as_str().unwrap();
    assert!(version.starts_with("2.13.0"), "libtorch {version}");
    assert_eq!(info["threads"], 1);
    assert_eq!(info["tch_version"], "0.26.0");
    assert_eq!(
        info["libtorch_cuda_loaded"],
        libtorch_lib().join("libtorch_cuda.so").exists(),
        "{info}"
    );
}

#[test]
fn zero_threads_is_rejected_with_a_message() {
    let out = Command::new(FGSTP)
        .args(["--threads", "0", "info"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--threads must be at least 1"), "{stderr}");
}

#[test]
fn setup_script_respects_a_users_own_libtorch() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/setup-libtorch");
    let out = Command::new(script)
        .env("LIBTORCH", "/opt/my-libtorch")
        .env("FGSTP_CACHE_DIR", "/nonexistent/fgstp-cache")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("using your own libtorch"), "{stderr}");
    assert!(!Path::new("/nonexistent/fgstp-cache").exists());
}
