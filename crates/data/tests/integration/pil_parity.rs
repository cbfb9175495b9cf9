//! The transforms against values computed by Pillow / torchvision / natsort
//! (fixture: `scripts/pytools scripts/fixtures/pil_augment.py`).

use fgstp_data::augment::{
    brightness, color, contrast, normalisation_table, resize_mask, resize_rgb, rotate_like_pil,
    sharpness,
};
use fgstp_data::decode::pil_luma;
use fgstp_data::natural_order::natural_sort;
use image::{GrayImage, RgbImage};
use serde_json::Value;

fn fixture() -> Value {
    let text = include_str!("../fixtures/pil_augment.json");
    serde_json::from_str(text).expect("fixture parses")
}

fn bytes(v: &Value) -> Vec<u8> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("int") as u8)
        .collect()
}

fn input(f: &Value) -> RgbImage {
    let (w, h) = (
        f["width"].as_u64().unwrap() as u32,
        f["height"].as_u64().unwrap() as u32,
    );
    RgbImage::from_raw(w, h, bytes(&f["rgb"])).unwrap()
}

fn input_mask(f: &Value) -> GrayImage {
    let (w, h) = (
        f["width"].as_u64().unwrap() as u32,
        f["height"].as_u64().unwrap() as u32,
    );
    GrayImage::from_raw(w, h, bytes(&f["mask"])).unwrap()
}

#[test]
fn luma_matches_pil_convert_l() {
    let f = fixture();
    let img = input(&f);
    let ours: Vec<u8> = img.pixels().map(|p| pil_luma(p[0], p[1], p[2])).collect();
    assert_eq!(ours, bytes(&f["luma"]));
}

#[test]
fn enhancers_match_pillow_exactly() {
    let f = fixture();
    type Enhancer = fn(&mut RgbImage, f32);
    let ops: [(&str, Enhancer); 4] = [
        ("brightness", brightness),
        ("contrast", contrast),
        ("color", color),
        ("sharpness", sharpness),
    ];
    for (name, op) in ops {
        for (tenths, expected) in f["enhance"][name].as_object().unwrap() {
            let factor = (tenths.parse::<f64>().unwrap() / 10.0) as f32;
            let mut img = input(&f);
            op(&mut img, factor);
            assert_eq!(img.as_raw(), &bytes(expected), "{name} at factor {factor}");
        }
    }
}

#[test]
fn chained_enhancement_matches_pillow() {
    let f = fixture();
    let factors: Vec<f32> = f["chain"]["factors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let mut img = input(&f);
    brightness(&mut img, factors[0]);
    contrast(&mut img, factors[1]);
    color(&mut img, factors[2]);
    sharpness(&mut img, factors[3]);
    assert_eq!(img.as_raw(), &bytes(&f["chain"]["out"]));
}

#[test]
fn rotation_matches_pillow_bicubic() {
    let f = fixture();
    for (angle, expected) in f["rotate"].as_object().unwrap() {
        let angle: i32 = angle.parse().unwrap();
        let rgb = rotate_like_pil(&input(&f), angle);
        assert_eq!(
            rgb.as_raw(),
            &bytes(&expected["rgb"]),
            "RGB rotated by {angle}"
        );
        let mask = rotate_like_pil(&input_mask(&f), angle);
        assert_eq!(
            mask.as_raw(),
            &bytes(&expected["mask"]),
            "mask rotated by {angle}"
        );
    }
}

#[test]
fn normalisation_matches_torchvision() {
    let f = fixture();
    let table = normalisation_table();
    let levels = bytes(&f["normalise"]["levels"]);
    for c in 0..3 {
        let expected = f["normalise"]["values"][c].as_array().unwrap();
        for (&level, want) in levels.iter().zip(expected) {
            let want = want.as_f64().unwrap() as f32;
            assert_eq!(
                table[c][usize::from(level)],
                want,
                "channel {c}, level {level}"
            );
        }
    }
}

#[test]
fn resize_matches_pil_bilinear() {
    let f = fixture();
    for (size, expected) in f["resize"].as_object().unwrap() {
        let size: u32 = size.parse().unwrap();
        let ours = resize_rgb(&input(&f), size);
        assert_eq!(ours.as_raw(), &bytes(expected), "RGB resized to {size}");
    }
    let ours = resize_mask(&input_mask(&f), 24);
    assert_eq!(
        ours.as_raw(),
        &bytes(&f["mask_resize24"]),
        "mask resized to 24"
    );
}

#[test]
fn natural_order_matches_natsort() {
    let f = fixture();
    let mut names: Vec<String> = f["natsort"]["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    natural_sort(&mut names);
    let want: Vec<&str> = f["natsort"]["sorted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(names, want);
}
