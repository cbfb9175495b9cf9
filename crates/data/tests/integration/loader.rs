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
use fgstp_data::{
    Batch, DataConfig, DataError, EvalLoader, Masks, Protocol, Shard, Split, TrainLoader,
    TrainSampling,
};
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

/// `clip_enhance` gives frames t+1 and t+2 frame t's colour enhancement; every other draw
/// (flip, rotation, the mask's salt-and-pepper, frame t's factors) stays the reference's.
#[test]
fn clip_enhancement_gives_the_three_frames_frame_ts_factors_and_changes_nothing_else() {
    let tmp = dataset();
    let plain = TrainLoader::open(&config(tmp.path(), 2), SAMPLING).unwrap();
    let cfg = DataConfig {
        clip_enhance: true,
        ..config(tmp.path(), 2)
    };
    let clip = TrainLoader::open(&cfg, SAMPLING).unwrap();
    let mut differed = 0;
    for index in 0..plain.len() {
        let (a, b) = (plain.draw(0, index), clip.draw(0, index));
        assert_eq!(b.enhance, [a.enhance[0]; 3]);
        assert_eq!(
            a,
            AugmentDraw {
                enhance: a.enhance,
                ..b.clone()
            }
        );
        differed += usize::from(a.enhance[1] != a.enhance[0] || a.enhance[2] != a.enhance[0]);
        let frame = RgbImage::from_fn(W, H, |x, y| image::Rgb([(x * 7 + y) as u8, 40, 200]));
        for slot in 0..3 {
            assert_eq!(b.frame(frame.clone(), slot), a.frame(frame.clone(), 0));
        }
    }
    assert!(
        differed > 0,
        "the reference's draws never differed between frames"
    );
    assert!(!same(&epoch_tensors(&plain, 0), &epoch_tensors(&clip, 0)));
}

/// `train_protocol = "full"` trains every annotated frame of a triplet model, the last two of
/// a video with the backward neighbours evaluation gives them; the default keeps the
/// reference's frames 0..n-3.
#[test]
fn the_full_training_protocol_trains_every_annotated_frame_with_evaluations_neighbours() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sparse = SceneSpec::full("b", 5);
    sparse.masked = vec![0, 3, 4];
    write_split(tmp.path(), "train", &[SceneSpec::full("a", 6), sparse]);
    let triplets = |cfg: &DataConfig| -> Vec<(usize, [usize; 3])> {
        let loader = TrainLoader::open(cfg, SAMPLING).unwrap();
        loader
            .samples()
            .iter()
            .map(|s| (s.scene, s.frames))
            .collect()
    };
    let reference = triplets(&config(tmp.path(), 1));
    assert_eq!(
        reference,
        [
            (0, [0, 1, 2]),
            (0, [1, 2, 3]),
            (0, [2, 3, 4]),
            (0, [3, 4, 5]),
            (1, [0, 1, 2])
        ]
    );
    let full = triplets(&DataConfig {
        train_protocol: Protocol::Full,
        ..config(tmp.path(), 1)
    });
    assert_eq!(
        full,
        [
            (0, [0, 1, 2]),
            (0, [1, 2, 3]),
            (0, [2, 3, 4]),
            (0, [3, 4, 5]),
            (0, [4, 5, 2]),
            (0, [5, 4, 3]),
            (1, [0, 1, 2]),
            (1, [3, 4, 1]),
            (1, [4, 3, 2]),
        ]
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

/// 14 training samples (scenes of 8 and 10 frames).
fn sharding_dataset() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    write_split(
        tmp.path(),
        "train",
        &[SceneSpec::full("a", 8), SceneSpec::full("b", 10)],
    );
    tmp
}

fn batch_of(batch_size: usize) -> TrainSampling {
    TrainSampling {
        batch_size,
        ..SAMPLING
    }
}

fn indices(batch: &Batch) -> Vec<usize> {
    batch.samples.iter().map(|s| s.index).collect()
}

fn sorted(mut v: Vec<usize>) -> Vec<usize> {
    v.sort();
    v
}

/// Frame and mask tensors of sample `j` of a batch.
fn sample_tensors(batch: &Batch, j: usize) -> Vec<Tensor> {
    let j = j as i64;
    let mut t: Vec<Tensor> = batch.frames.iter().map(|f| f.get(j)).collect();
    t.push(batch.mask.get(j));
    t
}

fn stream(loader: &TrainLoader, epoch: u64, start: usize, shard: Shard) -> Vec<Batch> {
    loader
        .epoch_shard(epoch, start, shard)
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Rebuilds the global batches of a world from its ranks' index batches (position p of a
/// global batch is rank p % N's sample p / N).
fn interleave(ranks: &[Vec<Vec<usize>>]) -> Vec<Vec<usize>> {
    let world = ranks.len();
    (0..ranks[0].len())
        .map(|step| {
            let per_rank = ranks[0][step].len();
            assert!(
                ranks.iter().all(|r| r[step].len() == per_rank),
                "step {step}"
            );
            (0..per_rank * world)
                .map(|p| ranks[p % world][step][p / world])
                .collect()
        })
        .collect()
}

#[test]
fn two_ranks_of_two_together_train_the_batches_of_one_process_of_four() {
    let tmp = sharding_dataset();
    let cfg = config(tmp.path(), 2);
    let single = TrainLoader::open(&cfg, batch_of(4)).unwrap();
    let sharded = TrainLoader::open(&cfg, batch_of(2)).unwrap();
    assert_eq!(single.len(), 14);
    let shard = |rank| Shard { rank, world: 2 };
    assert_eq!(single.batches_per_epoch(), 4);
    for rank in 0..2 {
        assert_eq!(sharded.batches_in(0, shard(rank)), 4);
    }
    for epoch in [0, 3] {
        let order = single.order(epoch);
        assert_eq!(
            order,
            sharded.order(epoch),
            "the global order ignores the batch"
        );
        let one = stream(&single, epoch, 0, Shard::SINGLE);
        let ranks = [
            stream(&sharded, epoch, 0, shard(0)),
            stream(&sharded, epoch, 0, shard(1)),
        ];
        assert_eq!(one.len(), 4);
        let mut start = 0;
        for (step, global) in one.iter().enumerate() {
            let (r0, r1) = (&ranks[0][step], &ranks[1][step]);
            let want = indices(global);
            assert_eq!(
                want,
                order[start..start + want.len()],
                "epoch {epoch} step {step}"
            );
            // 4, 4, 4 and a tail of 2 (a multiple of the world: no padding, one sample a rank).
            let per_rank = want.len() / 2;
            assert_eq!((r0.samples.len(), r1.samples.len()), (per_rank, per_rank));
            assert_eq!(
                sorted([indices(r0), indices(r1)].concat()),
                sorted(want.clone()),
                "epoch {epoch} step {step}: the ranks share the global batch"
            );
            for (rank, batch) in [r0, r1].into_iter().enumerate() {
                let positions: Vec<usize> = (rank..want.len()).step_by(2).collect();
                let got = indices(batch);
                assert_eq!(got, positions.iter().map(|&p| want[p]).collect::<Vec<_>>());
                for (j, &p) in positions.iter().enumerate() {
                    let (a, b) = (sample_tensors(batch, j), sample_tensors(global, p));
                    assert!(
                        a.iter().zip(&b).all(|(x, y)| x.equal(y)),
                        "epoch {epoch} step {step}: sample {} looks different on rank {rank}",
                        got[j]
                    );
                }
            }
            assert_eq!(sharded.global_batch_samples(0, step, shard(0)), want.len());
            assert_eq!(sharded.global_batch_samples(0, step, shard(1)), want.len());
            start += want.len();
        }
        assert_eq!(start, 14);
        assert_eq!(
            sharded.global_batch_samples(0, 4, shard(0)),
            0,
            "past the epoch"
        );
    }
}

#[test]
fn a_partial_last_global_batch_is_padded_from_the_orders_start_or_dropped() {
    // 7 samples; world 2 × batch 2: one full global batch of 4 and a tail of 3.
    let tmp = dataset();
    let cfg = config(tmp.path(), 2);
    let loader = TrainLoader::open(&cfg, batch_of(2)).unwrap();
    assert_eq!(loader.len(), 7);
    let world = |world: usize| -> Vec<Vec<Vec<usize>>> {
        (0..world)
            .map(|rank| loader.shard_indices(1, 0, Shard { rank, world }))
            .collect()
    };
    let order = loader.order(1);
    let two = world(2);
    assert_eq!(loader.batches_in(0, Shard { rank: 1, world: 2 }), 2);
    assert_eq!(
        interleave(&two),
        [order[..4].to_vec(), [&order[4..7], &order[..1]].concat()],
        "the tail of 3 is padded to 4 with the order's first sample"
    );
    assert_eq!(two[0][1], [order[4], order[6]]);
    assert_eq!(two[1][1], [order[5], order[0]]);
    let consumed: Vec<usize> = (0..3)
        .map(|k| loader.global_batch_samples(0, k, Shard { rank: 0, world: 2 }))
        .collect();
    assert_eq!(consumed, [4, 3, 0], "padding is not consumed");
    // The streamed batches are those indices, padding included.
    for (rank, want) in two.iter().enumerate() {
        let got: Vec<Vec<usize>> = stream(&loader, 1, 0, Shard { rank, world: 2 })
            .iter()
            .map(indices)
            .collect();
        assert_eq!(&got, want, "rank {rank}");
    }
    // World 3 × batch 2: a tail of 1 padded to 3, one sample a rank, none empty.
    let three = world(3);
    assert_eq!(
        interleave(&three),
        [order[..6].to_vec(), vec![order[6], order[0], order[1]]]
    );
    assert!(three.iter().all(|r| r[1].len() == 1));
    // World 5 × batch 2: a single partial global batch of 7, padded to 10.
    let five = world(5);
    assert_eq!(
        interleave(&five),
        [[&order[..], &order[..3]].concat()],
        "each of the 5 ranks gets ceil(7 / 5) = 2"
    );

    // A padding longer than the order cycles through it (1 sample, world 3).
    let tiny = tempfile::tempdir().unwrap();
    write_split(tiny.path(), "train", &[SceneSpec::full("t", 3)]);
    let one = TrainLoader::open(&config(tiny.path(), 1), batch_of(1)).unwrap();
    for rank in 0..3 {
        assert_eq!(one.shard_indices(0, 0, Shard { rank, world: 3 }), [[0]]);
    }

    // drop_last drops the partial global batch, whatever the world.
    let dropping = TrainLoader::open(
        &DataConfig {
            drop_last: true,
            ..cfg.clone()
        },
        batch_of(2),
    )
    .unwrap();
    assert_eq!(dropping.order(1), order);
    for rank in 0..2 {
        let shard = Shard { rank, world: 2 };
        assert_eq!(dropping.batches_in(0, shard), 1);
        let got: Vec<Vec<usize>> = stream(&dropping, 1, 0, shard).iter().map(indices).collect();
        assert_eq!(got, [vec![order[rank], order[rank + 2]]]);
        assert_eq!(dropping.global_batch_samples(0, 1, shard), 0);
    }
    let shard = Shard { rank: 0, world: 4 };
    assert_eq!(
        dropping.batches_in(0, shard),
        0,
        "7 samples make no global batch of 8"
    );
    assert_eq!(stream(&dropping, 1, 0, shard).len(), 0);
}

#[test]
fn a_run_resumes_at_a_sample_with_another_world_size() {
    let tmp = sharding_dataset();
    let cfg = config(tmp.path(), 2);
    let loader = TrainLoader::open(&cfg, batch_of(2)).unwrap();
    let epoch = 2;
    let order = loader.order(epoch);
    // One step of world 2 × batch 2 ...
    let before = Shard { rank: 0, world: 2 };
    let first: Vec<Vec<Vec<usize>>> = (0..2)
        .map(|rank| {
            let mut b = loader.shard_indices(epoch, 0, Shard { rank, world: 2 });
            b.truncate(1);
            b
        })
        .collect();
    let start = loader.global_batch_samples(0, 0, before);
    assert_eq!(start, 4);
    // ... then world 3 × batch 2 from sample 4: a full global batch of 6, a tail of 4 padded
    // to 6 with the order's first two samples.
    let world = 3;
    let ranks: Vec<Vec<Batch>> = (0..world)
        .map(|rank| stream(&loader, epoch, start, Shard { rank, world }))
        .collect();
    let ranks_indices: Vec<Vec<Vec<usize>>> = ranks
        .iter()
        .map(|r| r.iter().map(indices).collect())
        .collect();
    let after = Shard { rank: 2, world };
    assert_eq!(loader.batches_in(start, after), 2);
    let globals = interleave(&ranks_indices);
    let mut trained = interleave(&first).concat();
    let mut at = start;
    for (step, global) in globals.iter().enumerate() {
        let real = loader.global_batch_samples(start, step, after);
        trained.extend_from_slice(&global[..real]);
        assert_eq!(global[real..], order[..global.len() - real], "padding");
        at += real;
    }
    assert_eq!(at, 14);
    assert_eq!(
        trained, order,
        "the epoch's order once, nothing skipped or repeated"
    );
    assert_eq!(
        globals[1].len() - loader.global_batch_samples(start, 1, after),
        2
    );
    // Every rank's batch reads the samples' own draws: as a single uninterrupted process.
    let single = stream(&loader, epoch, 0, Shard::SINGLE);
    let flat: Vec<(usize, Vec<Tensor>)> = single
        .iter()
        .flat_map(|b| (0..b.samples.len()).map(move |j| (b.samples[j].index, sample_tensors(b, j))))
        .collect();
    for batch in ranks.iter().flatten() {
        for (j, info) in batch.samples.iter().enumerate() {
            let (_, want) = flat.iter().find(|(i, _)| *i == info.index).unwrap();
            assert!(sample_tensors(batch, j)
                .iter()
                .zip(want)
                .all(|(x, y)| x.equal(y)));
        }
    }
}

#[test]
fn one_process_streams_the_batches_of_before() {
    let tmp = dataset();
    for drop_last in [false, true] {
        let cfg = DataConfig {
            drop_last,
            ..config(tmp.path(), 2)
        };
        let loader = TrainLoader::open(&cfg, SAMPLING).unwrap();
        // The rule before sharding: the order cut in batches of B, the tail kept unless
        // drop_last.
        let per_epoch = if drop_last {
            7 / 3
        } else {
            7_usize.div_ceil(3)
        };
        assert_eq!(loader.batches_per_epoch(), per_epoch);
        assert_eq!(loader.batches_in(0, Shard::SINGLE), per_epoch);
        for epoch in [0, 4] {
            let before: Vec<Vec<usize>> = loader
                .order(epoch)
                .chunks(3)
                .take(per_epoch)
                .map(<[usize]>::to_vec)
                .collect();
            for first in 0..=per_epoch + 1 {
                let want = before.get(first..).unwrap_or_default();
                let got: Vec<Batch> = loader
                    .epoch_from(epoch, first)
                    .collect::<Result<_, _>>()
                    .unwrap();
                assert_eq!(got.iter().map(indices).collect::<Vec<_>>(), want);
                assert_eq!(loader.batches_in(first * 3, Shard::SINGLE), want.len());
                let sharded = stream(&loader, epoch, first * 3, Shard::SINGLE);
                assert_eq!(sharded.len(), got.len());
                for (a, b) in got.iter().zip(&sharded) {
                    assert!(a.frames.iter().zip(&b.frames).all(|(x, y)| x.equal(y)));
                    assert!(a.mask.equal(&b.mask));
                }
                for (k, batch) in want.iter().enumerate() {
                    assert_eq!(
                        loader.global_batch_samples(first * 3, k, Shard::SINGLE),
                        batch.len()
                    );
                }
            }
        }
    }
}

#[test]
#[should_panic(expected = "rank 2 of world 2")]
fn a_rank_outside_its_world_is_refused() {
    let tmp = dataset();
    let loader = TrainLoader::open(&config(tmp.path(), 1), SAMPLING).unwrap();
    loader.batches_in(0, Shard { rank: 2, world: 2 });
}
