//! What the tests of the `fgstp` binary share: running it and checking that it succeeded.

pub mod webdriver;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

pub const FGSTP: &str = env!("CARGO_BIN_EXE_fgstp");

/// Runs `fgstp ARGS` to completion.
pub fn fgstp(args: &[&str]) -> Output {
    fgstp_in(Path::new("."), args)
}

/// Runs `fgstp ARGS` to completion in the working directory `dir`.
pub fn fgstp_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(FGSTP)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the fgstp binary runs")
}

/// `out`, after asserting that the command succeeded (showing its stderr when it did not).
pub fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "fgstp failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A path as a command-line argument (the tests' paths are UTF-8).
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `fgstp synth` of `scenes` videos of `frames` 64×64 frames into `out` (plus `extra` flags).
pub fn synth_64(out: &Path, scenes: usize, frames: usize, seed: u64, extra: &[&str]) {
    let (scenes, frames, seed) = (scenes.to_string(), frames.to_string(), seed.to_string());
    let mut args = vec![
        "synth",
        "--out",
        s(out),
        "--scenes",
        &scenes,
        "--frames",
        &frames,
        "--size",
        "64x64",
        "--seed",
        &seed,
    ];
    args.extend_from_slice(extra);
    ok(fgstp(&args));
}

/// A scratch directory for a fixture shared by all tests of one module (held in a `static`,
/// whose `TempDir` would never be dropped): removed when the test process exits, pass or fail.
/// Made under cargo's `target/tmp`, so what a killed run leaves goes with `cargo clean`.
pub fn shared_scratch_dir() -> PathBuf {
    static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    extern "C" fn remove_all() {
        if let Ok(dirs) = DIRS.lock() {
            for dir in dirs.iter() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
    extern "C" {
        fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
    }
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(parent).unwrap();
    let dir = tempfile::Builder::new()
        .prefix("fixture-")
        .tempdir_in(parent)
        .unwrap()
        .keep();
    let mut dirs = DIRS.lock().unwrap();
    if dirs.is_empty() {
        // SAFETY: registers a plain function with no arguments; the test harness leaves
        // through `exit` (also on failure), which runs it once all tests have finished.
        assert_eq!(unsafe { atexit(remove_all) }, 0, "atexit refused");
    }
    dirs.push(dir.clone());
    dir
}

/// A TCP port on 127.0.0.1 that nothing listens on now (bound, then let go).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
