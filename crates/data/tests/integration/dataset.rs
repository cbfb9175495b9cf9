//! Layout, ordering, sampling, decoding and every dataset error with its message.

use crate::common;

use std::path::Path;

use common::*;
use fgstp_data::decode::load_mask;
use fgstp_data::sample::{evaluation_samples, training_samples};
use fgstp_data::{DataError, Masks, Protocol, SixteenBit, Split};
use image::{GrayImage, Luma, Rgb, RgbImage};

fn open(root: &Path, split: &str) -> Result<Split, DataError> {
    Split::open(root, split, Masks::Required)
}

fn message(err: DataError) -> String {
    err.to_string()
}

#[test]
fn scenes_and_frames_come_in_natural_order() {
    let tmp = tempfile::tempdir().unwrap();
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    write_split(
        tmp.path(),
        "train",
        &[
            SceneSpec {
                name: "scene10",
                frames: names(&["frame10.png", "frame2.png", "frame1.png", "frame9.png"]),
                masked: vec![0, 1, 2, 3],
            },
            SceneSpec::full("scene2", 3),
            SceneSpec::full("scene1", 3),
        ],
    );
    let split = open(tmp.path(), "train").unwrap();
    let scenes: Vec<&str> = split.scenes.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(scenes, ["scene1", "scene2", "scene10"]);
    let frames: Vec<&str> = split.scenes[2]
        .frames
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(
        frames,
        ["frame1.png", "frame2.png", "frame9.png", "frame10.png"]
    );
    // Masks follow their frames by stem.
    for f in &split.scenes[2].frames {
        let mask = f.mask.as_ref().unwrap();
        assert_eq!(mask.file_stem(), f.image.file_stem());
    }
}

#[test]
fn training_samples_are_the_reference_triplets() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(
        tmp.path(),
        "train",
        &[SceneSpec::full("a", 5), SceneSpec::full("b", 3)],
    );
    let split = open(tmp.path(), "train").unwrap();
    let samples: Vec<(usize, [usize; 3])> = training_samples(&split)
        .iter()
        .map(|s| (s.scene, s.frames))
        .collect();
    assert_eq!(
        samples,
        [
            (0, [0, 1, 2]),
            (0, [1, 2, 3]),
            (0, [2, 3, 4]),
            (1, [0, 1, 2])
        ]
    );
}

#[test]
fn evaluation_covers_every_frame_with_tail_neighbours_or_the_reference_set() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "test", &[SceneSpec::full("a", 6)]);
    let split = open(tmp.path(), "test").unwrap();
    let full: Vec<[usize; 3]> = evaluation_samples(&split, Protocol::Full)
        .iter()
        .map(|s| s.frames)
        .collect();
    assert_eq!(
        full,
        [
            [0, 1, 2],
            [1, 2, 3],
            [2, 3, 4],
            [3, 4, 5],
            [4, 5, 2],
            [5, 4, 3]
        ]
    );
    let reference: Vec<[usize; 3]> = evaluation_samples(&split, Protocol::Reference)
        .iter()
        .map(|s| s.frames)
        .collect();
    assert_eq!(reference, [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]]);
}

#[test]
fn sparse_masks_supervise_only_annotated_frames() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = SceneSpec::full("a", 6);
    spec.masked = vec![0, 2, 4];
    write_split(tmp.path(), "train", &[spec]);
    let split = open(tmp.path(), "train").unwrap();
    assert_eq!(split.mask_count(), 3);
    let train: Vec<[usize; 3]> = training_samples(&split).iter().map(|s| s.frames).collect();
    // Frame 4 has a mask but no two following frames (reference set); 1 and 3 are neighbours only.
    assert_eq!(train, [[0, 1, 2], [2, 3, 4]]);
    let eval = evaluation_samples(&split, Protocol::Full);
    let supervised: Vec<bool> = eval.iter().map(|s| s.supervised).collect();
    assert_eq!(supervised, [true, false, true, false, true, false]);
}

#[test]
fn masks_are_binarised_at_half_their_maximum() {
    let tmp = tempfile::tempdir().unwrap();
    let gray = GrayImage::from_raw(4, 1, vec![0, 100, 101, 200]).unwrap();
    gray.save(tmp.path().join("g.png")).unwrap();
    assert_eq!(
        load_mask(&tmp.path().join("g.png")).unwrap().as_raw(),
        &[0, 0, 255, 255]
    );
    // 0/1 masks (common in exports) keep their foreground.
    let ones = GrayImage::from_raw(3, 1, vec![0, 1, 1]).unwrap();
    ones.save(tmp.path().join("o.png")).unwrap();
    assert_eq!(
        load_mask(&tmp.path().join("o.png")).unwrap().as_raw(),
        &[0, 255, 255]
    );
    // RGB masks go through PIL's luma first: pure blue (luma 29) is below half of red's 76.
    let rgb = RgbImage::from_raw(3, 1, vec![0, 0, 0, 255, 0, 0, 0, 0, 255]).unwrap();
    rgb.save(tmp.path().join("c.png")).unwrap();
    assert_eq!(
        load_mask(&tmp.path().join("c.png")).unwrap().as_raw(),
        &[0, 255, 0]
    );
    // 16-bit masks keep their precision.
    let m16 = image::ImageBuffer::<Luma<u16>, _>::from_raw(3, 1, vec![0u16, 1000, 60000]).unwrap();
    m16.save(tmp.path().join("m16.png")).unwrap();
    assert_eq!(
        load_mask(&tmp.path().join("m16.png")).unwrap().as_raw(),
        &[0, 0, 255]
    );
    // An empty mask stays empty.
    GrayImage::new(3, 1).save(tmp.path().join("e.png")).unwrap();
    assert_eq!(
        load_mask(&tmp.path().join("e.png")).unwrap().as_raw(),
        &[0, 0, 0]
    );
}

/// 16-bit frames (PNG and TIFF) become 8-bit by per-video, per-frame or fixed min–max.
#[test]
fn sixteen_bit_frames_are_stretched_as_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("train/ir");
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::create_dir_all(dir.join("masks")).unwrap();
    // Frame ranges: 1000..2000, 1500..3000 (TIFF), 1200..1800.
    gray16(1000, 2000, 16, 4)
        .save(dir.join("images/0.png"))
        .unwrap();
    gray16(1500, 3000, 16, 4)
        .save(dir.join("images/1.tif"))
        .unwrap();
    gray16(1200, 1800, 16, 4)
        .save(dir.join("images/2.png"))
        .unwrap();
    let split = open(tmp.path(), "train").unwrap();
    let scene = &split.scenes[0];
    assert_eq!(scene.frames[1].color, image::ColorType::L16);

    let px = |img: &RgbImage, x: u32| -> u8 {
        let Rgb([r, g, b]) = *img.get_pixel(x, 0);
        assert!(r == g && g == b, "gray frames stay gray");
        r
    };
    // Per frame: each frame spans 0..255.
    for i in 0..3 {
        let img = scene.load_frame(i, SixteenBit::PerFrame).unwrap();
        assert_eq!((px(&img, 0), px(&img, 15)), (0, 255), "frame {i}");
    }
    // Per video: 1000..3000 over the whole scene; 2000 → round(1000·255/2000) = 128.
    let f0 = scene.load_frame(0, SixteenBit::PerVideo).unwrap();
    assert_eq!((px(&f0, 0), px(&f0, 15)), (0, 128));
    let f1 = scene.load_frame(1, SixteenBit::PerVideo).unwrap();
    assert_eq!((px(&f1, 0), px(&f1, 15)), (64, 255));
    // Fixed: clipped to 1500..1800.
    let fixed = SixteenBit::Fixed {
        min: 1500,
        max: 1800,
    };
    let f2 = scene.load_frame(2, fixed).unwrap();
    assert_eq!((px(&f2, 0), px(&f2, 15)), (0, 255));
    let f0 = scene.load_frame(0, fixed).unwrap();
    assert_eq!((px(&f0, 0), px(&f0, 15)), (0, 255));
    // Mid value 1650 → 127.5 → 128.
    assert_eq!(fgstp_data::decode::stretch(1650, 1500, 1800), 128);
}

#[test]
fn eight_bit_gray_and_rgba_frames_read_like_pil_convert_rgb() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("train/s");
    std::fs::create_dir_all(dir.join("images")).unwrap();
    std::fs::create_dir_all(dir.join("masks")).unwrap();
    GrayImage::from_pixel(4, 2, Luma([77]))
        .save(dir.join("images/0.png"))
        .unwrap();
    image::RgbaImage::from_pixel(4, 2, image::Rgba([10, 20, 30, 0]))
        .save(dir.join("images/1.png"))
        .unwrap();
    RgbImage::from_pixel(4, 2, Rgb([1, 2, 3]))
        .save(dir.join("images/2.jpg"))
        .unwrap();
    let split = open(tmp.path(), "train").unwrap();
    let scene = &split.scenes[0];
    assert_eq!(
        *scene
            .load_frame(0, SixteenBit::PerVideo)
            .unwrap()
            .get_pixel(0, 0),
        Rgb([77; 3])
    );
    assert_eq!(
        *scene
            .load_frame(1, SixteenBit::PerVideo)
            .unwrap()
            .get_pixel(0, 0),
        Rgb([10, 20, 30]),
        "alpha is dropped, not composited"
    );
}

// ---------------------------------------------------------------------------------------------
// Errors: one per problem, naming the path and what to do.

fn assert_error(err: DataError, path_part: &str, hint: &str) {
    let msg = message(err);
    assert!(msg.contains(path_part), "`{msg}` should name `{path_part}`");
    assert!(msg.contains(hint), "`{msg}` should say `{hint}`");
}

#[test]
fn missing_split_and_empty_split() {
    let tmp = tempfile::tempdir().unwrap();
    let err = open(tmp.path(), "train").unwrap_err();
    assert!(matches!(err, DataError::MissingSplit { .. }));
    assert_error(err, "train", "does not exist");
    std::fs::create_dir_all(tmp.path().join("val")).unwrap();
    let err = open(tmp.path(), "val").unwrap_err();
    assert!(matches!(err, DataError::EmptySplit { .. }));
    assert_error(err, "val", "no scene folders");
}

#[test]
fn missing_images_or_masks_folder() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("train/s1/masks")).unwrap();
    let err = open(tmp.path(), "train").unwrap_err();
    assert!(matches!(err, DataError::MissingImages { .. }));
    assert_error(err, "s1/images", "needs an images/ folder");

    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "train", &[SceneSpec::full("s1", 3)]);
    std::fs::remove_dir_all(tmp.path().join("train/s1/masks")).unwrap();
    let err = open(tmp.path(), "train").unwrap_err();
    assert!(matches!(err, DataError::MissingMasks { .. }));
    assert_error(err, "s1/masks", "needs a masks/ folder");
    // Inference does without masks.
    let split = Split::open(tmp.path(), "train", Masks::Optional).unwrap();
    assert_eq!(split.mask_count(), 0);
}

#[test]
fn scene_with_fewer_than_three_frames() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "train", &[SceneSpec::full("short", 2)]);
    let err = open(tmp.path(), "train").unwrap_err();
    assert!(matches!(err, DataError::TooFewFrames { count: 2, .. }));
    assert_error(err, "short/images", "needs 3 consecutive frames");
}

#[test]
fn frame_sizes_differing_inside_a_scene() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "train", &[SceneSpec::full("s", 4)]);
    frame_image(2, W + 2, H)
        .save(tmp.path().join("train/s/images/0002.png"))
        .unwrap();
    let err = open(tmp.path(), "train").unwrap_err();
    assert!(matches!(err, DataError::FrameSizeMismatch { .. }));
    assert_error(err, "0002.png is 42x30", "must have one size");
}

#[test]
fn mask_of_another_size() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "train", &[SceneSpec::full("s", 3)]);
    mask_image(W, H + 1)
        .save(tmp.path().join("train/s/masks/0001.png"))
        .unwrap();
    let err = open(tmp.path(), "train").unwrap_err();
    assert!(matches!(err, DataError::MaskSizeMismatch { .. }));
    assert_error(err, "masks/0001.png is 40x31", "must have its frame's size");
}

#[test]
fn mask_without_frame() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "train", &[SceneSpec::full("s", 3)]);
    mask_image(W, H)
        .save(tmp.path().join("train/s/masks/0007.png"))
        .unwrap();
    let err = open(tmp.path(), "train").unwrap_err();
    assert!(matches!(err, DataError::MaskWithoutFrame { .. }));
    assert_error(
        err,
        "masks/0007.png has no frame",
        "add the frame or delete the mask",
    );
}

#[test]
fn stray_files_and_duplicate_frames() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "train", &[SceneSpec::full("s", 3)]);
    std::fs::write(tmp.path().join("train/s/images/notes.txt"), "hi").unwrap();
    let err = open(tmp.path(), "train").unwrap_err();
    assert_error(err, "notes.txt is not a frame", "move it elsewhere");
    std::fs::remove_file(tmp.path().join("train/s/images/notes.txt")).unwrap();
    // Hidden files are ignored.
    std::fs::write(tmp.path().join("train/s/images/.DS_Store"), "x").unwrap();
    open(tmp.path(), "train").unwrap();

    frame_image(0, W, H)
        .save(tmp.path().join("train/s/images/0001.jpg"))
        .unwrap();
    let err = open(tmp.path(), "train").unwrap_err();
    assert!(matches!(err, DataError::DuplicateFrame { .. }));
    assert_error(err, "0001", "keep only one of them");
}

#[test]
fn unreadable_image_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "train", &[SceneSpec::full("s", 3)]);
    std::fs::write(
        tmp.path().join("train/s/images/0001.png"),
        b"not an image at all",
    )
    .unwrap();
    let err = open(tmp.path(), "train").unwrap_err();
    assert!(matches!(err, DataError::Unreadable { .. }));
    assert_error(err, "0001.png", "re-export it or remove it");
}

/// A truncated file passes the header scan; decoding it names it.
#[test]
fn truncated_image_fails_on_decode_with_its_path() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "train", &[SceneSpec::full("s", 3)]);
    let path = tmp.path().join("train/s/images/0002.png");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let split = open(tmp.path(), "train").unwrap();
    let err = split.verify_pixels(&|| {}).unwrap_err();
    assert!(matches!(err, DataError::Unreadable { .. }));
    assert_error(err, "0002.png", "truncated or not an image");
    let err = split.scenes[0]
        .load_frame(2, SixteenBit::PerFrame)
        .unwrap_err();
    assert_error(err, "0002.png", "truncated");
}

#[test]
fn split_without_any_mask_has_nothing_to_train_on() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = SceneSpec::full("s", 4);
    spec.masked = vec![3];
    write_split(tmp.path(), "train", &[spec]);
    let cfg = fgstp_data::DataConfig {
        root: tmp.path().to_path_buf(),
        ..Default::default()
    };
    let err = fgstp_data::TrainLoader::open(&cfg, fgstp_data::TrainSampling::default())
        .err()
        .expect("no samples");
    assert!(matches!(err, DataError::NoTrainingSamples { .. }));
    assert_error(err, "train", "add masks");
}

#[test]
fn data_config_rejects_unknown_keys_and_bad_values() {
    let origin = Path::new("run.toml");
    let cfg = fgstp_data::DataConfig::from_toml(
        "root = \"d\"\ntrain_size = 256\nsixteen_bit = { fixed = { min = 10, max = 900 } }\nprotocol = \"reference\"",
        origin,
    )
    .unwrap();
    assert_eq!(cfg.train_size, 256);
    let sampling = fgstp_data::TrainSampling::default();
    assert_eq!(
        (sampling.batch_size, sampling.seed),
        (6, 2025),
        "defaults follow the reference"
    );
    assert_eq!(cfg.sixteen_bit, SixteenBit::Fixed { min: 10, max: 900 });
    assert_eq!(cfg.protocol, Protocol::Reference);
    let err = fgstp_data::DataConfig::from_toml("batchsize = 4", origin).unwrap_err();
    assert_error(err, "run.toml", "unknown field `batchsize`");
    let err = fgstp_data::DataConfig::from_toml("prefetch = 0", origin).unwrap_err();
    assert_error(err, "run.toml", "prefetch = 0 must be 1 to 64");
}
