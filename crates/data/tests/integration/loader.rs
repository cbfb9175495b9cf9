//! Transform invariants, the training/evaluation streams, determinism across thread counts,
//! and clean shutdown.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use fgstp_data::augment::{
    mask_into, normalisation_table, normalise_into, resize_mask, resize_rgb, salt_and_pepper,
    AugmentDraw, Enhance,
};
use fgstp_data::decode::load_mask;
use fgstp_data::{DataConfig, DataError, EvalLoader, Masks, Split, TrainLoader, TrainSampling};
use image::{GrayImage, Luma, RgbImage};
use rand::SeedableRng;
use tch::Tensor;

fn config(root: &std::path::Path, threads: usize) -> DataConfig {
    DataConfig {
        root: root.to_path_buf(),
        train_size: 32.into(),
        eval_batch_size: 4,
        threads,
        prefetch: 2,
        ..Default::default()
    }
}

/// Batches of 3 with the reference's seed.
const SAMPLING: TrainSampling = TrainSampling {
    batch_size: 3,
    seed: 2025,
    empty_masks: fgstp_data::EmptyMasks::Reference,
};

fn dataset() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    write_split(
        tmp.path(),
        "train",
        &[SceneSpec::full("a", 6), SceneSpec::full("b", 5)],
    );
    let mut sparse = SceneSpec::full("c", 5);
    sparse.masked = vec![0, 1];
    write_split(tmp.path(), "val", &[sparse, SceneSpec::full("d", 3)]);
    tmp
}

fn identity_enhance() -> Enhance {
    Enhance {
        brightness: 1.0,
        contrast: 1.0,
        color: 1.0,
        sharpness: 1.0,
    }
}

#[test]
fn flip_and_rotation_are_shared_by_the_three_frames_and_the_mask() {
    // Frames whose gray content equals the mask: after the same geometry they must still agree.
    let mask = mask_image(W, H);
    let frame = RgbImage::from_fn(W, H, |x, y| image::Rgb([mask.get_pixel(x, y)[0]; 3]));
    for (flip, rotation) in [(true, None), (false, Some(11)), (true, Some(-15))] {
        let draw = AugmentDraw {
            flip,
            rotation,
            enhance: [identity_enhance(); 3],
            pepper_seed: None,
            invert: false,
        };
        let m = draw.mask(mask.clone());
        for slot in 0..3 {
            let f = draw.frame(frame.clone(), slot);
            let gray: Vec<u8> = f.pixels().map(|p| p[0]).collect();
            assert_eq!(
                &gray,
                m.as_raw(),
                "slot {slot}, flip {flip}, rotation {rotation:?}"
            );
        }
        if flip && rotation.is_none() {
            // The block moved from the left half to the right half.
            assert_eq!(m.get_pixel(W - 3, H / 2)[0], 255);
            assert_eq!(m.get_pixel(2, H / 2)[0], 0);
        }
    }
}

#[test]
fn enhancement_draws_differ_per_frame() {
    let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(7);
    let draws: Vec<AugmentDraw> = (0..50).map(|_| AugmentDraw::draw(&mut rng)).collect();
    assert!(draws
        .iter()
        .any(|d| d.enhance[0] != d.enhance[1] || d.enhance[1] != d.enhance[2]));
}

#[test]
fn draws_follow_the_reference_probabilities_and_ranges() {
    let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(2025);
    let n = 4000;
    let draws: Vec<AugmentDraw> = (0..n).map(|_| AugmentDraw::draw(&mut rng)).collect();
    let flips = draws.iter().filter(|d| d.flip).count() as f64 / n as f64;
    let rotated = draws.iter().filter(|d| d.rotation.is_some()).count() as f64 / n as f64;
    assert!((flips - 0.5).abs() < 0.03, "flip rate {flips}");
    assert!((rotated - 0.2).abs() < 0.025, "rotation rate {rotated}");
    let angles: Vec<i32> = draws.iter().filter_map(|d| d.rotation).collect();
    assert_eq!(angles.iter().min(), Some(&-15));
    assert_eq!(angles.iter().max(), Some(&14));
    let tenths = |v: f32| (v * 10.0).round() as i32;
    let range = |f: fn(&Enhance) -> f32| {
        let v: Vec<i32> = draws
            .iter()
            .flat_map(|d| d.enhance.iter().map(f))
            .map(tenths)
            .collect();
        (*v.iter().min().unwrap(), *v.iter().max().unwrap())
    };
    assert_eq!(range(|e| e.brightness), (5, 15));
    assert_eq!(range(|e| e.contrast), (5, 15));
    assert_eq!(range(|e| e.color), (0, 20));
    assert_eq!(range(|e| e.sharpness), (0, 30));
    assert!(draws.iter().all(|d| d.pepper_seed.is_some()));
}

#[test]
fn flip_and_salt_and_pepper_keep_a_mask_binary() {
    let mask = mask_image(100, 80);
    let draw = AugmentDraw {
        flip: true,
        rotation: None,
        enhance: [identity_enhance(); 3],
        pepper_seed: Some(3),
        invert: false,
    };
    let out = draw.mask(mask.clone());
    assert!(out.iter().all(|&v| v == 0 || v == 255));
    let flipped = image::imageops::flip_horizontal(&mask);
    let changed = out
        .iter()
        .zip(flipped.iter())
        .filter(|(a, b)| a != b)
        .count();
    // int(0.0015 · 80 · 100) = 12 pixels drawn; about half land on their own value.
    assert!(changed > 0 && changed <= 12, "{changed} pixels changed");
    let mut m = GrayImage::from_pixel(100, 80, Luma([128]));
    salt_and_pepper(&mut m, 9);
    assert!(m.iter().filter(|&&v| v != 128).count() <= 12);
    assert!(m.iter().all(|&v| v == 0 || v == 128 || v == 255));
}

#[test]
fn training_batches_have_the_documented_shapes_and_values() {
    let tmp = dataset();
    let loader = TrainLoader::open(&config(tmp.path(), 2), SAMPLING).unwrap();
    assert_eq!(loader.len(), 4 + 3);
    assert_eq!(loader.batches_per_epoch(), 3);
    let batches: Vec<_> = loader.epoch(0).collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.len(), 3);
    let sizes: Vec<usize> = batches.iter().map(|b| b.samples.len()).collect();
    assert_eq!(
        sizes,
        [3, 3, 1],
        "the last batch is smaller, as the reference's DataLoader"
    );
    let mut seen: Vec<usize> = batches
        .iter()
        .flat_map(|b| b.samples.iter().map(|s| s.index))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        (0..7).collect::<Vec<_>>(),
        "every sample once per epoch"
    );
    for b in &batches {
        let n = b.samples.len() as i64;
        for f in &b.frames {
            assert_eq!(f.size(), [n, 3, 32, 32]);
            assert_eq!(f.kind(), tch::Kind::Float);
        }
        assert_eq!(b.mask.size(), [n, 1, 32, 32]);
        let (lo, hi) = (
            b.mask.min().double_value(&[]),
            b.mask.max().double_value(&[]),
        );
        assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi));
        // Normalised values stay inside what ImageNet stats allow for 0..255 input.
        let fmin = b.frames[0].min().double_value(&[]);
        let fmax = b.frames[0].max().double_value(&[]);
        assert!(fmin >= -2.12 && fmax <= 2.65, "{fmin}..{fmax}");
        for s in &b.samples {
            assert!(s.supervised);
            assert_eq!(s.frames[1], s.frames[0] + 1);
            assert_eq!(s.frames[2], s.frames[0] + 2);
            assert_eq!(s.original_size, (W, H));
        }
    }
}

/// Each sample in a batch is exactly the pipeline applied with that sample's own draw.
#[test]
fn batches_apply_each_samples_draw_to_frames_and_mask() {
    let tmp = dataset();
    let cfg = config(tmp.path(), 2);
    let loader = TrainLoader::open(&cfg, SAMPLING).unwrap();
    let table = normalisation_table();
    for epoch in 0..3 {
        for batch in loader.epoch(epoch) {
            let batch = batch.unwrap();
            for (b, info) in batch.samples.iter().enumerate() {
                let draw = loader.draw(epoch, info.index);
                let scene = loader
                    .split()
                    .scenes
                    .iter()
                    .find(|s| s.name == info.scene)
                    .unwrap();
                for slot in 0..3 {
                    let img = scene
                        .load_frame(info.frames[slot], cfg.sixteen_bit)
                        .unwrap();
                    let img = resize_rgb(&draw.frame(img, slot), 32);
                    let mut want = vec![0f32; 3 * 32 * 32];
                    normalise_into(&img, &table, &mut want);
                    let got = Vec::<f32>::try_from(batch.frames[slot].get(b as i64).flatten(0, -1))
                        .unwrap();
                    assert_eq!(
                        got, want,
                        "epoch {epoch}, sample {}, slot {slot}",
                        info.index
                    );
                }
                let mask = draw.mask(load_mask(info.mask_path.as_ref().unwrap()).unwrap());
                let mut want = vec![0f32; 32 * 32];
                mask_into(&resize_mask(&mask, 32), &mut want);
                let got = Vec::<f32>::try_from(batch.mask.get(b as i64).flatten(0, -1)).unwrap();
                assert_eq!(got, want);
            }
        }
    }
}

/// `invert_polarity` adds a draw after the reference's: those stay as they are, a share of the
/// samples gets its frames inverted (255 − v), and their masks are untouched.
#[test]
fn inverted_polarity_flips_the_frames_of_a_share_of_samples_and_nothing_else() {
    let tmp = dataset();
    let plain = TrainLoader::open(&config(tmp.path(), 2), SAMPLING).unwrap();
    let cfg = DataConfig {
        invert_polarity: 0.5,
        ..config(tmp.path(), 2)
    };
    let inverting = TrainLoader::open(&cfg, SAMPLING).unwrap();
    let (mut inverted, mut kept) = (0, 0);
    for index in 0..plain.len() {
        let (a, b) = (plain.draw(0, index), inverting.draw(0, index));
        assert!(!a.invert);
        assert_eq!(
            a,
            AugmentDraw {
                invert: false,
                ..b.clone()
            }
        );
        if b.invert {
            inverted += 1;
        } else {
            kept += 1;
        }
        let frame = RgbImage::from_fn(W, H, |x, y| image::Rgb([(x * 7 + y) as u8, 40, 200]));
        let mut want = a.frame(frame.clone(), 1);
        if b.invert {
            image::imageops::invert(&mut want);
        }
        assert_eq!(b.frame(frame, 1), want);
        let mask = mask_image(W, H);
        assert_eq!(a.mask(mask.clone()), b.mask(mask));
    }
    assert!(inverted > 0 && kept > 0, "{inverted} inverted, {kept} kept");
    assert!(!same(
        &epoch_tensors(&plain, 0),
        &epoch_tensors(&inverting, 0)
    ));
    let bad = DataConfig {
        invert_polarity: 1.5,
        ..config(tmp.path(), 2)
    };
    let err = bad
        .validate(std::path::Path::new("run.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("invert_polarity") && err.contains("run.toml"),
        "{err}"
    );
}

fn epoch_tensors(loader: &TrainLoader, epoch: u64) -> Vec<(Vec<Tensor>, Vec<usize>)> {
    loader
        .epoch(epoch)
        .map(|b| {
            let b = b.unwrap();
            let mut t: Vec<Tensor> = b.frames;
            t.push(b.mask);
            (t, b.samples.iter().map(|s| s.index).collect())
        })
        .collect()
}

fn same(a: &[(Vec<Tensor>, Vec<usize>)], b: &[(Vec<Tensor>, Vec<usize>)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ta, ia), (tb, ib))| ia == ib && ta.iter().zip(tb).all(|(x, y)| x.equal(y)))
}

#[test]
fn same_seed_same_batches_for_any_thread_count() {
    let tmp = dataset();
    let one = TrainLoader::open(&config(tmp.path(), 1), SAMPLING).unwrap();
    let two = TrainLoader::open(&config(tmp.path(), 2), SAMPLING).unwrap();
    let three = TrainLoader::open(
        &DataConfig {
            prefetch: 1,
            ..config(tmp.path(), 3)
        },
        SAMPLING,
    )
    .unwrap();
    for epoch in [0, 5] {
        let a = epoch_tensors(&one, epoch);
        assert!(
            same(&a, &epoch_tensors(&two, epoch)),
            "1 vs 2 threads, epoch {epoch}"
        );
        assert!(
            same(&a, &epoch_tensors(&three, epoch)),
            "1 vs 3 threads, epoch {epoch}"
        );
    }
    // And the seed and epoch matter.
    assert!(!same(&epoch_tensors(&one, 0), &epoch_tensors(&one, 1)));
    let other = TrainLoader::open(
        &config(tmp.path(), 2),
        TrainSampling {
            seed: 7,
            ..SAMPLING
        },
    )
    .unwrap();
    assert!(!same(&epoch_tensors(&one, 0), &epoch_tensors(&other, 0)));
}

#[test]
fn no_augmentation_and_no_shuffle_give_plain_resized_samples_in_order() {
    let tmp = dataset();
    let cfg = DataConfig {
        augment: false,
        shuffle: false,
        ..config(tmp.path(), 2)
    };
    let loader = TrainLoader::open(&cfg, SAMPLING).unwrap();
    let order: Vec<usize> = loader
        .epoch(0)
        .flat_map(|b| {
            b.unwrap()
                .samples
                .into_iter()
                .map(|s| s.index)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(order, (0..7).collect::<Vec<_>>());
    let batch = loader.epoch(0).next().unwrap().unwrap();
    // The mask is the resized original: left block present, right side empty.
    let m = batch.mask.get(0).get(0);
    assert_eq!(m.double_value(&[16, 4]), 1.0);
    assert_eq!(m.double_value(&[16, 28]), 0.0);
}

#[test]
fn evaluation_batches_keep_masks_at_original_size() {
    let tmp = dataset();
    let cfg = config(tmp.path(), 2);
    let loader = EvalLoader::open(&cfg, "val").unwrap();
    assert_eq!(loader.len(), 5 + 3);
    let batches: Vec<_> = loader.batches().collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.len(), 2);
    let infos: Vec<_> = batches.iter().flat_map(|b| b.samples.iter()).collect();
    let supervised: Vec<bool> = infos.iter().map(|s| s.supervised).collect();
    assert_eq!(
        supervised,
        [true, true, false, false, false, true, true, true]
    );
    assert_eq!(
        infos[4].frames,
        [4, 3, 2],
        "last frame reads earlier neighbours"
    );
    for b in &batches {
        assert_eq!(b.frames[0].size(), [b.samples.len() as i64, 3, 32, 32]);
        for (mask, info) in b.masks.iter().zip(&b.samples) {
            match mask {
                Some(m) => {
                    assert!(info.supervised);
                    assert_eq!(m.dimensions(), (W, H));
                    assert!(m.iter().all(|&v| v == 0 || v == 255));
                }
                None => assert!(!info.supervised),
            }
        }
    }
}

#[test]
fn batches_queued_ahead_are_not_counted_as_waits() {
    let tmp = dataset();
    let loader = TrainLoader::open(&config(tmp.path(), 2), SAMPLING).unwrap();
    let batches = loader.batches_per_epoch();
    // A queue deep enough for the whole epoch: once the producer is done, nothing is waited for.
    let cfg = DataConfig {
        prefetch: batches,
        ..config(tmp.path(), 2)
    };
    let loader = TrainLoader::open(&cfg, SAMPLING).unwrap();
    let mut stream = loader.epoch(0);
    let start = Instant::now();
    while !stream.producer_finished() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "producer never finished"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(stream.by_ref().count(), batches);
    let s = stream.starvation();
    assert_eq!((s.requests, s.starved), (batches, 0), "{s:?}");
}

#[test]
fn dropping_the_iterator_stops_the_producer() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "train", &[SceneSpec::full("long", 60)]);
    let cfg = DataConfig {
        prefetch: 1,
        ..config(tmp.path(), 1)
    };
    let one_per_batch = TrainSampling {
        batch_size: 1,
        ..SAMPLING
    };
    let loader = TrainLoader::open(&cfg, one_per_batch).unwrap();
    let mut batches = loader.epoch(0);
    batches.next().unwrap().unwrap();
    // The producer is now blocked on the full queue, far from done.
    std::thread::sleep(Duration::from_millis(50));
    assert!(!batches.producer_finished());
    assert_eq!(loader.live_producers(), 1);
    let start = Instant::now();
    drop(batches);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "drop waited {:?}",
        start.elapsed()
    );
    assert_eq!(loader.live_producers(), 0, "the producer thread is gone");
    // A finished pass also ends its producer.
    let mut all = loader.epoch(1);
    assert_eq!(all.by_ref().count(), 58);
    drop(all);
    assert_eq!(loader.live_producers(), 0);
}

#[test]
fn a_truncated_frame_ends_the_stream_with_its_path() {
    let tmp = dataset();
    let path = tmp.path().join("train/a/images/0003.png");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 40]).unwrap();
    let cfg = DataConfig {
        shuffle: false,
        ..config(tmp.path(), 2)
    };
    let loader = TrainLoader::open(&cfg, SAMPLING).unwrap();
    let results: Vec<_> = loader.epoch(0).collect();
    // Batch 0 holds samples 0..3, which read frames 0..5: frame 3 is in it.
    assert_eq!(results.len(), 1, "the stream stops at the first error");
    match &results[0] {
        Err(err @ DataError::Unreadable { .. }) => {
            assert!(err.to_string().contains("0003.png"), "{err}")
        }
        other => panic!("expected an unreadable-file error, got {other:?}"),
    }
}

#[test]
fn inference_split_without_masks_streams_every_frame() {
    let tmp = tempfile::tempdir().unwrap();
    write_split(tmp.path(), "clips", &[SceneSpec::full("x", 4)]);
    std::fs::remove_dir_all(tmp.path().join("clips/x/masks")).unwrap();
    let split = Split::open(tmp.path(), "clips", Masks::Optional).unwrap();
    let loader = EvalLoader::new(split, &config(tmp.path(), 1)).unwrap();
    let batches: Vec<_> = loader.batches().collect::<Result<_, _>>().unwrap();
    let n: usize = batches.iter().map(|b| b.samples.len()).sum();
    assert_eq!(n, 4);
    assert!(batches.iter().all(|b| b.masks.iter().all(Option::is_none)));
}
