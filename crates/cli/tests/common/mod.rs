//! What the tests of the `fgstp` binary share: running it and checking that it succeeded.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;
use std::process::{Command, Output};

pub const FGSTP: &str = env!("CARGO_BIN_EXE_fgstp");

/// Runs `fgstp ARGS` to completion.
pub fn fgstp(args: &[&str]) -> Output {
    Command::new(FGSTP)
        .args(args)
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
