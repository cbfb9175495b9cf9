//! The streams for models that are not FGSTP ([`InputSpec`]): ZoomNeXt's zoom scales and masks,
//! clips of annotated frames, the long-term SLT-Net's RGB + prior at a non-square size,
//! `drop_last`, and which frames each reference evaluates.

use crate::common;

use common::*;
use fgstp_data::augment::{mask_into, resize_mask_to, resize_rgb_to};
use fgstp_data::decode::load_mask_nonzero;
use fgstp_data::opencv::{resize_linear_f32, zoom_pyramid};
use fgstp_data::sample::{evaluation_samples_for, training_samples_for};
use fgstp_data::{
    AugmentStyle, ClipStarts, DataConfig, DataError, EvalLoader, ImageSize, InputSpec, MaskFormat,
    Masks, PixelFormat, Protocol, ReferenceFrames, SixteenBit, Split, TrainLoader, TrainSamples,
    TrainSampling,
};
use image::GrayImage;
use tch::Tensor;

const SIZES: [(u32, u32); 3] = [(16, 24), (32, 48), (48, 72)];

fn zoomnext_spec(train: TrainSamples, augment: AugmentStyle) -> InputSpec {
    InputSpec {
        train,
        pixels: PixelFormat::ZoomPyramid { sizes: SIZES },
        masks: MaskFormat::OpenCvLinear,
        augment,
        reference_frames: ReferenceFrames::Annotated,
        prior: false,
    }
}

fn long_term_spec(len: usize) -> InputSpec {
    InputSpec {
        train: TrainSamples::Clips {
            len,
            starts: ClipStarts::EveryFrame,
        },
        pixels: PixelFormat::UnitRange,
        masks: MaskFormat::Pillow,
        augment: AugmentStyle::Reference,
        reference_frames: ReferenceFrames::DropLastTwo,
        prior: true,
    }
}

fn config(root: &std::path::Path, threads: usize) -> DataConfig {
    DataConfig {
        root: root.to_path_buf(),
        train_size: ImageSize {
            height: 32,
            width: 48,
        },
        eval_batch_size: 4,
        threads,
        augment: false,
        shuffle: false,
        ..Default::default()
    }
}

const SAMPLING: TrainSampling = TrainSampling {
    batch_size: 2,
    seed: 2025,
    empty_masks: fgstp_data::EmptyMasks::Reference,
};

/// Train: a video of 7 frames whose frame 4 has no mask, and one of 5 fully annotated.
fn dataset() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let mut gap = SceneSpec::full("a", 7);
    gap.masked = vec![0, 1, 2, 3, 5, 6];
    write_split(tmp.path(), "train", &[gap, SceneSpec::full("b", 5)]);
    let mut sparse = SceneSpec::full("c", 6);
    sparse.masked = vec![1, 4];
    write_split(tmp.path(), "test", &[sparse]);
    tmp
}

/// Priors `<root>/priors/<split>/<scene>/<stem>.png`: frame i of every video is grey level 40·i.
fn write_priors(root: &std::path::Path, split: &str) {
    let split_dir = root.join(split);
    for scene in std::fs::read_dir(&split_dir).unwrap() {
        let scene = scene.unwrap().file_name();
        let dir = root.join("priors").join(split).join(&scene);
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(split_dir.join(&scene).join("images")).unwrap() {
            let name = entry.unwrap().file_name();
            let stem = std::path::Path::new(&name).file_stem().unwrap().to_owned();
            let index: usize = stem.to_str().unwrap().parse().unwrap();
            GrayImage::from_pixel(W, H, image::Luma([(40 * index) as u8]))
                .save(dir.join(format!("{}.png", stem.to_str().unwrap())))
                .unwrap();
        }
    }
}

#[test]
fn clips_are_runs_of_annotated_frames_from_every_start_or_zoomnexts_starts() {
    let tmp = dataset();
    let split = Split::open(tmp.path(), "train", Masks::Required).unwrap();
    let every = TrainSamples::Clips {
        len: 3,
        starts: ClipStarts::EveryFrame,
    };
    let clips: Vec<(usize, Vec<usize>)> = training_samples_for(&split, every)
        .into_iter()
        .map(|s| (s.scene, s.clip))
        .collect();
    // Video a's annotated frames are 0, 1, 2, 3, 5, 6 (a run of 6); b's 0 … 4.
    assert_eq!(
        clips,
        [
            (0, vec![0, 1, 2]),
            (0, vec![1, 2, 3]),
            (0, vec![2, 3, 5]),
            (0, vec![3, 5, 6]),
            (1, vec![0, 1, 2]),
            (1, vec![1, 2, 3]),
            (1, vec![2, 3, 4]),
        ]
    );
    // ZoomNeXt, T = 5, stride 4: starts 0, then 16 clamped to L − 5.
    let zoomnext = TrainSamples::Clips {
        len: 5,
        starts: ClipStarts::StrideTwice,
    };
    let clips: Vec<Vec<usize>> = training_samples_for(&split, zoomnext)
        .into_iter()
        .map(|s| s.clip)
        .collect();
    assert_eq!(
        clips,
        [
            vec![0, 1, 2, 3, 5],
            vec![1, 2, 3, 5, 6],
            vec![0, 1, 2, 3, 4],
            vec![0, 1, 2, 3, 4]
        ]
    );
    let frames: Vec<usize> = training_samples_for(&split, TrainSamples::Frames)
        .iter()
        .map(|s| s.frames[0])
        .collect();
    assert_eq!(frames, [0, 1, 2, 3, 5, 6, 0, 1, 2, 3, 4]);
}

#[test]
fn each_reference_evaluates_its_own_frames() {
    let tmp = dataset();
    let split = Split::open(tmp.path(), "test", Masks::Required).unwrap();
    let frames = |protocol, reference| -> Vec<usize> {
        evaluation_samples_for(&split, protocol, reference)
            .iter()
            .map(|s| s.frames[0])
            .collect()
    };
    assert_eq!(
        frames(Protocol::Full, ReferenceFrames::Annotated),
        [0, 1, 2, 3, 4, 5]
    );
    assert_eq!(
        frames(Protocol::Reference, ReferenceFrames::DropLastTwo),
        [0, 1, 2, 3]
    );
    assert_eq!(
        frames(Protocol::Reference, ReferenceFrames::Annotated),
        [1, 4]
    );
}

#[test]
fn zoomnext_batches_hold_the_three_scales_per_frame_and_opencv_resized_masks() {
    let tmp = dataset();
    let cfg = config(tmp.path(), 1);
    let spec = zoomnext_spec(
        TrainSamples::Clips {
            len: 5,
            starts: ClipStarts::StrideTwice,
        },
        AugmentStyle::AlbumentationsClip,
    );
    let loader = TrainLoader::open_with(&cfg, SAMPLING, &spec).unwrap();
    let batch = loader.epoch(0).next().unwrap().unwrap();
    assert_eq!(batch.frames.len(), 3);
    for (tensor, (h, w)) in batch.frames.iter().zip(SIZES) {
        assert_eq!(tensor.size(), [10, 3, i64::from(h), i64::from(w)]);
    }
    assert_eq!(batch.mask.size(), [10, 1, 32, 48]);
    // Without augmentation: exactly zoom_pyramid of the frame, and the mask's OpenCV resize.
    let split = loader.split();
    let info = &batch.samples[0];
    assert_eq!(info.clip, [0, 1, 2, 3, 5]);
    for (row, &frame) in info.clip.iter().enumerate() {
        let image = split.scenes[0]
            .load_frame(frame, SixteenBit::PerVideo)
            .unwrap();
        let expected = zoom_pyramid(&image, SIZES).unwrap();
        for (k, scale) in expected.iter().enumerate() {
            let got = Vec::<f32>::try_from(batch.frames[k].get(row as i64).flatten(0, -1)).unwrap();
            assert_eq!(&got, scale, "frame {frame}, scale {k}");
        }
        let mask = load_mask_nonzero(split.scenes[0].frames[frame].mask.as_ref().unwrap()).unwrap();
        let values: Vec<f32> = mask.iter().map(|&v| f32::from(v) / 255.0).collect();
        let expected = resize_linear_f32(&values, (H as usize, W as usize), (32, 48)).unwrap();
        let got = Vec::<f32>::try_from(batch.mask.get(row as i64).flatten(0, -1)).unwrap();
        assert_eq!(got, expected, "mask of frame {frame}");
    }
}

#[test]
fn albumentationsation_is_seeded_per_sample_whatever_the_thread_count() {
    let tmp = dataset();
    let spec = zoomnext_spec(TrainSamples::Frames, AugmentStyle::AlbumentationsImage);
    let epoch = |threads| {
        let cfg = DataConfig {
            augment: true,
            shuffle: true,
            ..config(tmp.path(), threads)
        };
        let loader = TrainLoader::open_with(&cfg, SAMPLING, &spec).unwrap();
        loader
            .epoch(3)
            .map(|b| {
                let b = b.unwrap();
                (b.frames, b.mask)
            })
            .collect::<Vec<_>>()
    };
    let (one, two) = (epoch(1), epoch(2));
    assert_eq!(one.len(), 6, "11 frames in batches of 2");
    let mut changed = false;
    for ((fa, ma), (fb, mb)) in one.iter().zip(&two) {
        assert!(ma.equal(mb));
        for (a, b) in fa.iter().zip(fb) {
            assert!(a.equal(b));
        }
        // Masks stay in [0, 1]; the augmentation moved something.
        assert!(ma.min().double_value(&[]) >= 0.0 && ma.max().double_value(&[]) <= 1.0);
        changed |= !ma.equal(&one[0].1);
    }
    assert!(changed);
}

#[test]
fn long_term_clips_are_rgb_in_unit_range_plus_the_prior_at_256x448_like_sizes() {
    let tmp = dataset();
    write_priors(tmp.path(), "train");
    let cfg = DataConfig {
        prior_dir: Some(format!("{}/priors/{{split}}", tmp.path().display())),
        ..config(tmp.path(), 2)
    };
    let loader = TrainLoader::open_with(&cfg, SAMPLING, &long_term_spec(2)).unwrap();
    // Runs of 6 and 5 annotated frames: 5 + 4 clips of 2.
    assert_eq!(loader.len(), 9);
    let batch = loader.epoch(0).next().unwrap().unwrap();
    assert_eq!(batch.frames.len(), 1);
    assert_eq!(batch.frames[0].size(), [4, 4, 32, 48]);
    assert_eq!(batch.mask.size(), [4, 1, 32, 48]);
    let split = loader.split();
    for (row, &frame) in batch.samples[0].clip.iter().enumerate() {
        let image = split.scenes[0]
            .load_frame(frame, SixteenBit::PerVideo)
            .unwrap();
        let resized = resize_rgb_to(&image, cfg.train_size);
        let x = batch.frames[0].get(row as i64);
        // Channel 0 is ToTensor's red: v / 255, no mean/std.
        let red = Vec::<f32>::try_from(x.get(0).flatten(0, -1)).unwrap();
        let expected: Vec<f32> = resized.pixels().map(|p| f32::from(p[0]) / 255.0).collect();
        assert_eq!(red, expected);
        // Channel 3 is the prior, resized like a mask.
        let prior = GrayImage::from_pixel(W, H, image::Luma([(40 * frame) as u8]));
        let mut expected = vec![0f32; 32 * 48];
        mask_into(&resize_mask_to(&prior, cfg.train_size), &mut expected);
        assert_eq!(
            Vec::<f32>::try_from(x.get(3).flatten(0, -1)).unwrap(),
            expected
        );
    }
}

#[test]
fn a_missing_prior_or_prior_dir_is_an_error_naming_the_way_out() {
    let tmp = dataset();
    let cfg = config(tmp.path(), 1);
    let err = EvalLoader::open_with(&cfg, "test", &long_term_spec(1))
        .err()
        .unwrap();
    assert!(matches!(err, DataError::NoPriorDir), "{err}");
    let cfg = DataConfig {
        prior_dir: Some(format!("{}/nowhere/{{split}}", tmp.path().display())),
        ..cfg
    };
    let loader = EvalLoader::open_with(&cfg, "test", &long_term_spec(1)).unwrap();
    let err = loader.model_inputs(0, 0).unwrap_err().to_string();
    assert!(
        err.contains("nowhere/test/c/0000.png") && err.contains("--save-maps"),
        "{err}"
    );
    // One video's maps directly in the folder are found as well.
    let flat = tmp.path().join("flat");
    std::fs::create_dir_all(&flat).unwrap();
    for i in 0..6 {
        GrayImage::new(W, H)
            .save(flat.join(format!("{i:04}.png")))
            .unwrap();
    }
    let cfg = DataConfig {
        prior_dir: Some(flat.display().to_string()),
        ..cfg
    };
    let loader = EvalLoader::open_with(&cfg, "test", &long_term_spec(1)).unwrap();
    let inputs = loader.model_inputs(0, 2).unwrap();
    assert_eq!(inputs[0].size(), [4, 32, 48]);
}

#[test]
fn drop_last_leaves_out_the_incomplete_batch() {
    let tmp = dataset();
    let spec = zoomnext_spec(TrainSamples::Frames, AugmentStyle::AlbumentationsImage);
    let sampling = TrainSampling {
        batch_size: 4,
        seed: 1,
        empty_masks: fgstp_data::EmptyMasks::Reference,
    };
    let keep = TrainLoader::open_with(&config(tmp.path(), 1), sampling, &spec).unwrap();
    assert_eq!(keep.batches_per_epoch(), 3); // 11 frames: 4 + 4 + 3
    let cfg = DataConfig {
        drop_last: true,
        ..config(tmp.path(), 1)
    };
    let drop = TrainLoader::open_with(&cfg, sampling, &spec).unwrap();
    assert_eq!(drop.batches_per_epoch(), 2);
    let sizes: Vec<i64> = drop
        .epoch(0)
        .map(|b| b.unwrap().frames[0].size()[0])
        .collect();
    assert_eq!(sizes, [4, 4]);
}

#[test]
fn rectangular_input_sizes_reach_every_pixel_format() {
    let tmp = dataset();
    let loader =
        EvalLoader::open_with(&config(tmp.path(), 1), "test", &InputSpec::default()).unwrap();
    let x: Vec<Tensor> = loader.model_inputs(0, 0).unwrap();
    assert_eq!(x.len(), 1);
    assert_eq!(x[0].size(), [3, 32, 48]);
}
