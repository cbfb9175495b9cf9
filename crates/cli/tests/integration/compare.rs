//! `fgstp compare`: a folder written by `fgstp eval --output` (masks/, maps/, overlays/) and a
//! folder of XMem++ output (DAVIS-coloured RGB masks in <video>/masks/) in one table.

use crate::common;
use common::{fgstp, ok, s};

use std::path::{Path, PathBuf};

use serde_json::Value;

fn formats() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../metrics/tests/fixtures/formats")
}

/// An `fgstp eval --output` folder: maps/ (soft, what eval scores), masks/ and overlays/.
fn eval_output(dir: &Path) {
    for video in ["cam_a", "cam_b"] {
        for kind in ["maps", "masks", "overlays"] {
            std::fs::create_dir_all(dir.join(kind).join(video)).unwrap();
        }
        for frame in ["00000", "00001", "00002", "00003"] {
            let name = format!("{video}/{frame}.png");
            let soft = image::open(formats().join("gray_rgb").join(&name))
                .unwrap()
                .into_luma8();
            soft.save(dir.join("maps").join(&name)).unwrap();
            let mask = image::GrayImage::from_fn(soft.width(), soft.height(), |x, y| {
                image::Luma([if soft.get_pixel(x, y)[0] > 127 {
                    255
                } else {
                    0
                }])
            });
            mask.save(dir.join("masks").join(&name)).unwrap();
            mask.save(dir.join("overlays").join(&name)).unwrap();
        }
    }
}

#[test]
fn an_eval_output_folder_and_xmem_plus_plus_output_sit_in_one_table() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("eval-out");
    eval_output(&ours);
    let json = dir.path().join("compare.json");
    let model = format!("FGSTP={}", s(&ours));
    let xmem = format!("XMem++={}", s(&formats().join("xmempp")));
    let out = ok(fgstp(&[
        "compare",
        "--gt",
        s(&formats().join("gt")),
        "--pred",
        &model,
        "--pred",
        &xmem,
        "--exclude-annotated",
        s(&formats().join("annotations")),
        "--json",
        s(&json),
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("fgstp eval/infer output, maps/")
            && stderr.contains("detection areas from masks/"),
        "{stderr}"
    );
    assert!(stderr.contains("DAVIS-palette colours"), "{stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["frames"], 6);
    let systems = report["systems"].as_array().unwrap();
    assert_eq!(systems.len(), 2);

    // The model's row is what `fgstp metrics` gives for its maps alone.
    let alone = dir.path().join("alone.json");
    ok(fgstp(&[
        "metrics",
        "--pred",
        s(&ours.join("maps")),
        "--gt",
        s(&formats().join("gt")),
        "--exclude",
        "00000",
        "--json",
        s(&alone),
    ]));
    let alone: Value = serde_json::from_slice(&std::fs::read(&alone).unwrap()).unwrap();
    for key in ["sm", "wfm", "mae", "em_mean", "iou_mean", "dice_mean"] {
        assert_eq!(systems[0]["table"][key], alone["video_mean"][key], "{key}");
    }
}
