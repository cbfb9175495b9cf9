//! `fgstp synth` then `fgstp data check`, end to end through the binary.

use std::path::Path;
use std::process::Command;

fn fgstp(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fgstp"))
        .args(args)
        .output()
        .expect("fgstp runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn synth(out: &Path, seed: &str) -> (bool, String, String) {
    fgstp(&[
        "synth",
        "--out",
        out.to_str().unwrap(),
        "--scenes",
        "3",
        "--frames",
        "4",
        "--size",
        "40x32",
        "--seed",
        seed,
    ])
}

fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for split in ["train", "val", "test"] {
        for scene in std::fs::read_dir(root.join(split)).unwrap() {
            let scene = scene.unwrap().path();
            for kind in ["images", "masks"] {
                for f in std::fs::read_dir(scene.join(kind)).unwrap() {
                    let f = f.unwrap().path();
                    let rel = f.strip_prefix(root).unwrap().display().to_string();
                    out.push((rel, std::fs::read(&f).unwrap()));
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn synth_output_passes_data_check_and_repeats_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (ok, stdout, stderr) = synth(&a, "4");
    assert!(ok, "synth failed: {stderr}");
    assert!(
        stdout.contains("wrote 12 frames (3 scenes: train 1, val 1, test 1)"),
        "{stdout}"
    );

    let (ok, stdout, stderr) = fgstp(&["data", "check", a.to_str().unwrap()]);
    assert!(ok, "data check failed: {stderr}");
    for split in [
        "split train: 1 scenes, 4 frames, 4 masks; 2 training samples (4 with \
         data.train_protocol = \"full\"), 4 evaluation samples (2 in the reference's frame set)",
        "split val:",
        "split test:",
    ] {
        assert!(stdout.contains(split), "`{split}` missing from:\n{stdout}");
    }
    assert!(stdout.contains("40x32  8-bit gray"), "{stdout}");
    assert!(
        stdout.contains("ok: 3 split(s), 3 scenes, 12 frames, 12 masks; every file decodes"),
        "{stdout}"
    );

    // Same seed, same bytes.
    let (ok, _, stderr) = synth(&b, "4");
    assert!(ok, "{stderr}");
    assert_eq!(tree(&a), tree(&b));

    // Refuses to overwrite a non-empty folder without --force.
    let (ok, _, stderr) = synth(&a, "4");
    assert!(
        !ok && stderr.contains("is not empty") && stderr.contains("--force"),
        "{stderr}"
    );

    // --force replaces the earlier dataset whole: 20 scenes of 6 frames, then 3 of 4 give
    // exactly the 3 scenes of 4 frames (stale scenes and frames used to stay beside them),
    // and a file of the user's is left.
    let c = tmp.path().join("c");
    let (ok, _, stderr) = fgstp(&[
        "synth",
        "--out",
        c.to_str().unwrap(),
        "--scenes",
        "20",
        "--frames",
        "6",
        "--size",
        "40x32",
        "--seed",
        "4",
        "--video",
    ]);
    assert!(ok, "{stderr}");
    std::fs::write(c.join("notes.txt"), "mine").unwrap();
    let out = c.to_str().unwrap();
    let (ok, _, stderr) = fgstp(&[
        "synth", "--out", out, "--scenes", "3", "--frames", "4", "--size", "40x32", "--seed", "4",
        "--force",
    ]);
    assert!(ok, "{stderr}");
    assert_eq!(tree(&c), tree(&a));
    assert_eq!(
        std::fs::read_to_string(c.join("notes.txt")).unwrap(),
        "mine"
    );
    // A folder of the user's own frames and masks (no synth.toml) keeps them.
    let own = tmp.path().join("own");
    std::fs::create_dir_all(own.join("masks")).unwrap();
    std::fs::write(own.join("masks").join("walkway_0001.png"), "by hand").unwrap();
    let (ok, _, stderr) = fgstp(&[
        "synth",
        "--out",
        own.to_str().unwrap(),
        "--frames",
        "12",
        "--size",
        "40x32",
        "--episodes",
        "1",
        "--force",
    ]);
    assert!(ok, "{stderr}");
    assert!(own.join("masks").join("walkway_0001.png").is_file());

    // A seed over 2^63 - 1 (synth.toml keeps it as a TOML integer) is refused, not a panic.
    let (ok, _, stderr) = synth(&tmp.path().join("d"), "18446744073709551615");
    assert!(
        !ok && stderr.contains("--seed") && stderr.contains("too large"),
        "{stderr}"
    );
}

#[test]
fn data_check_fails_with_the_broken_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("d");
    assert!(synth(&root, "1").0);
    let victim = std::fs::read_dir(root.join("val"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let frame = victim.join("images/00002.png");
    let bytes = std::fs::read(&frame).unwrap();
    std::fs::write(&frame, &bytes[..bytes.len() / 2]).unwrap();
    let (ok, _, stderr) = fgstp(&["data", "check", root.to_str().unwrap()]);
    assert!(!ok, "a truncated frame must fail the check");
    assert!(
        stderr.contains("00002.png") && stderr.contains("truncated"),
        "{stderr}"
    );

    // --quick reads headers only, so the same dataset passes it.
    let (ok, stdout, stderr) = fgstp(&["data", "check", root.to_str().unwrap(), "--quick"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("headers only"), "{stdout}");

    std::fs::remove_dir_all(victim.join("masks")).unwrap();
    let (ok, _, stderr) = fgstp(&["data", "check", root.to_str().unwrap()]);
    assert!(!ok && stderr.contains("masks is missing"), "{stderr}");

    let (ok, _, stderr) = fgstp(&["data", "check", tmp.path().join("nope").to_str().unwrap()]);
    assert!(!ok && stderr.contains("does not exist"), "{stderr}");
}
