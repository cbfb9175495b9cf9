//! OpenCV's INTER_LINEAR resize against cv2's own output: the uint8 zoom scales ZoomNeXt's
//! reference made of real frames (the model crate's ZoomNeXt fixture, from
//! scripts/fixtures/make_zoomnext_fixture.py) and float maps (scripts/fixtures/cv2_resize.py).

use std::collections::BTreeMap;
use std::path::Path;

use fgstp_data::opencv::{resize_linear_f32, resize_linear_u8, zoom_pyramid};
use image::RgbImage;
use tch::{Kind, Tensor};

fn read(path: &Path) -> BTreeMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .into_iter()
        .collect()
}

fn zoomnext_io() -> BTreeMap<String, Tensor> {
    read(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../model/tests/fixtures/zoomnext/zoomnext_io.safetensors"),
    )
}

fn bytes(t: &Tensor) -> Vec<u8> {
    Vec::<u8>::try_from(t.flatten(0, -1)).unwrap()
}

fn floats(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.flatten(0, -1).to_kind(Kind::Float)).unwrap()
}

#[test]
fn zoom_pyramid_is_the_references_cv2_resize_bit_for_bit() {
    let io = zoomnext_io();
    let frames = &io["frames.u8"]; // [clips, frames, H0, W0, 3]
    let size = frames.size();
    let (h0, w0) = (size[2] as usize, size[3] as usize);
    let n = size[0] * size[1];
    let frames = frames.reshape([n, h0 as i64, w0 as i64, 3]);
    // The fixture's base size is 64×96: scales 32×48, 64×96, 96×144.
    let sizes = [(32, 48), (64, 96), (96, 144)];
    for i in 0..n {
        let frame = bytes(&frames.get(i));
        let image = RgbImage::from_raw(w0 as u32, h0 as u32, frame.clone()).unwrap();
        let pyramid = zoom_pyramid(&image, sizes).unwrap();
        for ((name, (h, w)), scale) in ["image_s.u8", "image_m.u8", "image_l.u8"]
            .into_iter()
            .zip(sizes)
            .zip(pyramid)
        {
            let reference = io[name].get(i); // [h, w, 3] uint8
            let ours = resize_linear_u8(&frame, (h0, w0), 3, (h as usize, w as usize)).unwrap();
            assert!(
                ours == bytes(&reference),
                "frame {i}, {name}: differs from cv2.resize"
            );
            // The model input is exactly the reference's `torch.from_numpy(u8).div(255).permute(2, 0, 1)`.
            let expected = reference.permute([2, 0, 1]).to_kind(Kind::Float) / 255.0;
            assert!(Tensor::from_slice(&scale)
                .view([3, i64::from(h), i64::from(w)])
                .equal(&expected));
        }
    }
    // More shapes: exact halves (OpenCV's area path), one axis only, quarters, up, 1 channel, copy.
    let mut cases = 0;
    while let Some(src) = io.get(&format!("resize.{cases}.src")) {
        let dst = &io[&format!("resize.{cases}.dst")];
        let [sh, sw, c] = src.size()[..] else {
            panic!("HWC")
        };
        let [dh, dw, _] = dst.size()[..] else {
            panic!("HWC")
        };
        let ours = resize_linear_u8(
            &bytes(src),
            (sh as usize, sw as usize),
            c as usize,
            (dh as usize, dw as usize),
        )
        .unwrap();
        assert!(
            ours == bytes(dst),
            "resize case {cases}: {sh}×{sw}×{c} → {dh}×{dw} differs from cv2.resize"
        );
        cases += 1;
    }
    assert_eq!(cases, 12);
}

#[test]
fn float_resize_is_opencvs_own_code_bit_for_bit_and_within_1e5_of_ipp() {
    let golden = read(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cv2_resize_f32.safetensors"),
    );
    let mut cases = 0;
    let mut worst_ipp = 0f32;
    while let Some(src) = golden.get(&format!("case.{cases}.src")) {
        let dst = &golden[&format!("case.{cases}.dst")];
        let ipp = &golden[&format!("case.{cases}.dst_ipp")];
        let (s, d) = (src.size(), dst.size());
        let ours = resize_linear_f32(
            &floats(src),
            (s[0] as usize, s[1] as usize),
            (d[0] as usize, d[1] as usize),
        )
        .unwrap();
        let expected = floats(dst);
        let differing = ours.iter().zip(&expected).filter(|(a, b)| a != b).count();
        assert_eq!(
            differing, 0,
            "case {cases}: {s:?} → {d:?}: {differing} values differ from cv2 (IPP off)"
        );
        for (a, b) in ours.iter().zip(floats(ipp)) {
            worst_ipp = worst_ipp.max((a - b).abs());
        }
        cases += 1;
    }
    assert_eq!(cases, 10);
    println!("largest difference from cv2 with IPP: {worst_ipp:.2e}");
    assert!(worst_ipp <= 1e-5, "{worst_ipp}");
}

#[test]
fn resizes_name_bad_sizes() {
    let err = resize_linear_f32(&[0.0; 5], (2, 3), (4, 4)).unwrap_err();
    assert!(err.to_string().contains("2×3"), "{err}");
    let err = resize_linear_u8(&[0; 12], (2, 2), 3, (0, 4)).unwrap_err();
    assert!(err.to_string().contains("positive"), "{err}");
}
