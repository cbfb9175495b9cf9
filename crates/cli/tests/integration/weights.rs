//! `fgstp weights inspect|convert` run as a user would, on checkpoints written by real `torch.save`
//! (crates/model/tests/fixtures/checkpoint, from scripts/fixtures/make_checkpoint_fixtures.py).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fgstp_model::checkpoint::StateDict;

const FGSTP: &str = env!("CARGO_BIN_EXE_fgstp");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures/checkpoint")
        .join(name)
}

fn fgstp(args: &[&str]) -> Output {
    Command::new(FGSTP)
        .args(["--threads", "1", "weights"])
        .args(args)
        .output()
        .unwrap()
}

fn stdout_of(args: &[&str]) -> String {
    let out = fgstp(args);
    assert!(
        out.status.success(),
        "fgstp weights {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("fgstp-weights-cli-")
        .tempdir()
        .unwrap()
}

#[test]
fn inspect_summarises_a_nested_training_checkpoint() {
    let text = stdout_of(&["inspect", fixture("nested.pth").to_str().unwrap()]);
    assert!(text.contains("PyTorch torch.save zip archive"), "{text}");
    assert!(text.contains("tensors under \"state_dict\""), "{text}");
    assert!(
        text.contains("epoch") && text.contains("optimizer"),
        "{text}"
    );
    assert!(text.contains("tensors:    9"), "{text}");
    // conv 4·3·3·3 + 4, bn 4·4 + 1 counter, fc 2·4 + 2.
    assert!(text.contains("parameters: 139 "), "{text}");
    assert!(
        text.contains("float32 ×8") && text.contains("int64 ×1"),
        "{text}"
    );
    // Summary by top-level prefix, not every key.
    assert!(
        text.contains("bn ") && !text.contains("bn.running_var"),
        "{text}"
    );

    let verbose = stdout_of(&[
        "inspect",
        "--verbose",
        fixture("nested.pth").to_str().unwrap(),
    ]);
    assert!(
        verbose.contains("bn.running_var") && verbose.contains("[4]"),
        "{verbose}"
    );
    assert!(
        verbose.contains("conv.weight") && verbose.contains("[4, 3, 3, 3]"),
        "{verbose}"
    );
}

#[test]
fn inspect_recognises_the_official_pvt_v2_layout() {
    let json = stdout_of(&[
        "inspect",
        "--json",
        fixture("pvt_v2_official_tiny.pth").to_str().unwrap(),
    ]);
    let info: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(info["layout"], "PvtV2Official { has_head: true }", "{info}");
    // A sixteenth of b0's widths is no released variant; the structure is still read.
    assert_eq!(info["pvt_v2_variant"], serde_json::Value::Null);
    let description = info["description"].as_str().unwrap();
    assert!(
        description.contains("widths [2, 4, 10, 16], depths [2, 2, 2, 2]"),
        "{description}"
    );
    let pytorch =
        StateDict::read(&fixture("pvt_v2_official_tiny.pth.expected.safetensors")).unwrap();
    assert_eq!(info["tensors"], pytorch.len());
    assert_eq!(info["keys"][0]["key"], "patch_embed1.proj.weight");
    assert_eq!(info["keys"][0]["shape"], serde_json::json!([2, 3, 7, 7]));
}

#[test]
fn convert_to_safetensors_and_back_to_pth_keeps_every_bit() {
    let dir = tempdir();
    let safetensors = dir.path().join("weights.safetensors");
    let pth = dir.path().join("weights.pth");
    for (from, to) in [
        (fixture("dtypes.pth"), &safetensors),
        (safetensors.clone(), &pth),
    ] {
        let text = stdout_of(&["convert", from.to_str().unwrap(), to.to_str().unwrap()]);
        assert!(text.contains("wrote 13 tensors"), "{text}");
    }
    let original = StateDict::read(&fixture("dtypes.pth")).unwrap();
    let back = StateDict::read(&pth).unwrap();
    let mut keys: Vec<&str> = back.keys().collect();
    let mut want: Vec<&str> = original.keys().collect();
    keys.sort();
    want.sort();
    assert_eq!(keys, want);
    for key in want {
        let (a, b) = (original.get(key).unwrap(), back.get(key).unwrap());
        assert_eq!((a.kind(), a.size()), (b.kind(), b.size()), "{key}");
        let bytes = |t: &tch::Tensor| {
            let mut v = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
            t.copy_data_u8(&mut v, t.numel());
            v
        };
        assert_eq!(bytes(a), bytes(b), "{key}");
    }
}

#[test]
fn convert_refuses_to_overwrite_without_force() {
    let dir = tempdir();
    let out = dir.path().join("out.safetensors");
    std::fs::write(&out, b"keep me").unwrap();
    let input = fixture("state_dict.pth");
    let refused = fgstp(&["convert", input.to_str().unwrap(), out.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    stdout_of(&[
        "convert",
        "--force",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert_eq!(StateDict::read(&out).unwrap().len(), 9);
}

#[test]
fn broken_input_is_an_error_naming_the_file() {
    let dir = tempdir();
    let truncated = dir.path().join("truncated.pth");
    let full = std::fs::read(fixture("state_dict.pth")).unwrap();
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    for args in [
        vec!["inspect", truncated.to_str().unwrap()],
        vec![
            "convert",
            truncated.to_str().unwrap(),
            "/nonexistent/out.safetensors",
        ],
        vec!["inspect", "/nonexistent/weights.pth"],
    ] {
        let out = fgstp(&args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let file = Path::new(args[1]).file_name().unwrap().to_str().unwrap();
        assert!(stderr.contains(file), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn inspect_checks_a_reference_fgstp_checkpoint_against_our_model() {
    let reference = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../model/tests/fixtures/parity/fgstp_b0_256.pth");
    let json = stdout_of(&["inspect", "--json", reference.to_str().unwrap()]);
    let info: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(info["layout"], "Fgstp");
    assert_eq!(info["pvt_v2_variant"], "b0");
    let check = &info["model_check"];
    assert_eq!(check["exact"], true, "{check}");
    assert_eq!(check["missing"], serde_json::json!([]));

    // The same file with one tensor of another shape: the check names it and both shapes.
    let sd = StateDict::read(&reference).unwrap();
    let key = "fusion_conv.2.weight";
    let tensors = sd
        .iter()
        .map(|(k, t)| {
            let t = if k == key {
                t.narrow(1, 0, 16)
            } else {
                t.shallow_clone()
            };
            (k.to_string(), t)
        })
        .collect();
    let scratch = tempdir();
    let altered = scratch.path().join("altered.safetensors");
    StateDict::from_tensors(tensors)
        .unwrap()
        .write(&altered)
        .unwrap();
    let text = stdout_of(&["inspect", altered.to_str().unwrap()]);
    assert!(
        text.contains("1 shape mismatches")
            && text.contains(key)
            && text.contains("[1, 16, 3, 3]")
            && text.contains("[1, 32, 3, 3]"),
        "{text}"
    );
}

/// The committed reference-made fixtures of the comparison systems (their tiny, non-released
/// encoders cannot be checked key by key, but the model is named).
#[test]
fn inspect_names_the_comparison_systems_on_their_reference_fixtures() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/tests/fixtures");
    for (file, layout, kind) in [
        (
            "slt_net/slt_net_tiny.pth",
            "ShortTerm",
            "model.kind = \"slt-net\"",
        ),
        (
            "slt_net/slt_net_long_tiny.pth",
            "LongTerm",
            "model.kind = \"slt-net-long\"",
        ),
        (
            "zoomnext/zoomnext_image.pth",
            "ZoomNext",
            "model.kind = \"zoomnext\"",
        ),
    ] {
        let path = fixtures.join(file);
        let text = stdout_of(&["inspect", path.to_str().unwrap()]);
        let fits = text
            .lines()
            .find(|l| l.starts_with("fits:"))
            .unwrap_or_else(|| panic!("{file}: no fits line in\n{text}"));
        assert!(fits.contains(kind), "{file}: {fits}");
        let json = stdout_of(&["inspect", "--json", path.to_str().unwrap()]);
        let info: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(
            info["layout"].as_str().unwrap().contains(layout),
            "{file}: {}",
            info["layout"]
        );
        assert!(
            info["description"].as_str().unwrap().contains(kind),
            "{file}: {}",
            info["description"]
        );
    }
}
