//! The synthetic generator: determinism, layout validity, and that the gas is where the mask is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fgstp_data::synth::episodes::generate_episodes;
use fgstp_data::synth::{generate, Plan, SynthConfig};
use fgstp_data::{Masks, Split};

fn small(seed: u64) -> SynthConfig {
    SynthConfig {
        scenes: 4,
        frames: 6,
        width: 48,
        height: 40,
        seed,
        ..Default::default()
    }
}

fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.insert(
                    path.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&path).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn run(cfg: &SynthConfig, threads: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| generate(cfg, dir.path(), &|| {})).unwrap();
    dir
}

#[test]
fn same_seed_gives_byte_identical_output_for_any_thread_count() {
    let a = run(&small(11), 1);
    let b = run(&small(11), 3);
    let (fa, fb) = (files(a.path()), files(b.path()));
    // 4 scenes · 6 frames · (image + mask) + synth.toml
    assert_eq!(fa.len(), 4 * 6 * 2 + 1);
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (path, bytes) in &fa {
        assert!(
            bytes == &fb[path],
            "{} differs between runs",
            path.display()
        );
    }
    let c = run(&small(12), 2);
    let fc = files(c.path());
    let differing = fa.iter().filter(|(p, b)| fc.get(*p) != Some(b)).count();
    assert!(
        differing > 4 * 6,
        "another seed gives other videos ({differing} files differ)"
    );
}

fn load_masks(scene: &fgstp_data::Scene) -> Vec<image::GrayImage> {
    scene
        .frames
        .iter()
        .map(|f| fgstp_data::decode::load_mask(f.mask.as_ref().unwrap()).unwrap())
        .collect()
}

fn area(m: &image::GrayImage) -> usize {
    m.iter().filter(|&&v| v == 255).count()
}

#[test]
fn output_is_a_valid_dataset_with_moving_plumes_and_leak_free_scenes() {
    let cfg = SynthConfig {
        scenes: 12,
        negatives: 0.5,
        onsets: 0.0,
        stops: 0.0,
        nuc: 0.0,
        ..small(5)
    };
    let dir = run(&cfg, 2);
    let mut scenes = 0;
    let mut leak_free = 0;
    for (split, range) in cfg.splits() {
        let s = Split::open(dir.path(), split, Masks::Required).unwrap();
        s.verify_pixels(&|| {}).unwrap();
        assert_eq!(s.scenes.len(), range.len());
        for (scene, index) in s.scenes.iter().zip(range.clone()) {
            scenes += 1;
            assert_eq!(scene.frames.len(), cfg.frames);
            assert_eq!(scene.mask_count(), cfg.frames);
            assert_eq!((scene.width, scene.height), (cfg.width, cfg.height));
            let masks = load_masks(scene);
            if cfg.leak_free(index) {
                leak_free += 1;
                assert!(
                    masks.iter().all(|m| area(m) == 0),
                    "{}: a leak-free scene has empty masks",
                    scene.name
                );
                continue;
            }
            assert!(
                masks.iter().all(|m| area(m) > 0),
                "{}: every frame of a steady leak shows gas",
                scene.name
            );
            assert!(
                masks.iter().all(|m| area(m) < m.len() / 2),
                "{}: the plume is not everywhere",
                scene.name
            );
            assert_ne!(
                masks[0],
                masks[cfg.frames - 1],
                "{}: the plume moves",
                scene.name
            );
        }
    }
    assert_eq!(scenes, cfg.scenes);
    // 12 scenes: train 8, val 2, test 2; half of each split leak-free.
    assert_eq!(leak_free, 4 + 1 + 1);
    assert_eq!(
        cfg.splits().iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        ["train", "val", "test"]
    );
}

#[test]
fn leak_free_scenes_are_spread_over_the_splits() {
    let cfg = SynthConfig {
        scenes: 96,
        ..SynthConfig::default()
    };
    let per_split: Vec<(usize, usize)> = cfg
        .splits()
        .into_iter()
        .map(|(_, r)| (r.len(), r.filter(|&i| cfg.leak_free(i)).count()))
        .collect();
    // About a third of each split (0.33, rounded down): 68 → 22, 14 → 4, 14 → 4.
    assert_eq!(per_split, [(68, 22), (14, 4), (14, 4)]);
    let none = SynthConfig {
        negatives: 0.0,
        ..cfg.clone()
    };
    assert!((0..96).all(|i| !none.leak_free(i)));
    let all = SynthConfig {
        negatives: 1.0,
        ..cfg
    };
    assert!((0..96).all(|i| all.leak_free(i)));
}

/// A leak that starts has empty masks before its start and gas from the frame after; one
/// that stops leaves gas that is gone within a few frames.
#[test]
fn leaks_start_and_stop_inside_videos() {
    let cfg = SynthConfig {
        scenes: 10,
        frames: 16,
        negatives: 0.0,
        onsets: 1.0,
        stops: 1.0,
        nuc: 0.0,
        ..small(21)
    };
    let dir = run(&cfg, 2);
    let mut checked = 0;
    for (split, range) in cfg.splits() {
        let s = Split::open(dir.path(), split, Masks::Required).unwrap();
        for (scene, index) in s.scenes.iter().zip(range) {
            let plan = Plan::draw(&cfg, index);
            let (start, stop) = plan.leak.as_ref().unwrap().windows[0];
            let (start, stop) = (start as usize, stop as usize);
            assert!(
                start >= 1 && stop > start + 1 && stop <= cfg.frames,
                "{start}..{stop}"
            );
            let masks = load_masks(scene);
            for (t, m) in masks.iter().enumerate() {
                if t < start {
                    assert_eq!(
                        area(m),
                        0,
                        "{} frame {t}: before the onset at {start}",
                        scene.name
                    );
                } else if t > start && t < stop {
                    assert!(
                        area(m) > 0,
                        "{} frame {t}: leaking since {start}",
                        scene.name
                    );
                } else if t >= stop + 5 {
                    assert_eq!(
                        area(m),
                        0,
                        "{} frame {t}: gas gone after the stop at {stop}",
                        scene.name
                    );
                }
            }
            // Building up: more gas two frames after the start than in the first frame.
            if start + 2 < stop {
                assert!(
                    area(&masks[start + 2]) > area(&masks[start]),
                    "{}",
                    scene.name
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 10);
}

/// Distractors change the frames but never the masks.
#[test]
fn distractors_are_drawn_but_never_masked() {
    let quiet = SynthConfig {
        negatives: 1.0,
        shimmer: 0.0,
        steam: 0.0,
        crossers: 0.0,
        nuc: 0.0,
        shake: 0.0,
        ..small(4)
    };
    let busy = SynthConfig {
        shimmer: 1.0,
        steam: 1.0,
        crossers: 1.0,
        nuc: 1.0,
        shake: 1.0,
        ..quiet.clone()
    };
    let (a, b) = (run(&quiet, 2), run(&busy, 2));
    let (fa, fb) = (files(a.path()), files(b.path()));
    let mut changed_images = 0;
    for (path, bytes) in &fb {
        let name = path.to_string_lossy();
        if name.contains("/masks/") {
            let m = image::load_from_memory(bytes).unwrap().to_luma8();
            assert_eq!(area(&m), 0, "{name}: a distractor is not gas");
        } else if name.contains("/images/") && fa[path] != *bytes {
            changed_images += 1;
        }
    }
    assert_eq!(changed_images, 4 * 6, "every frame shows some distractor");
}

#[test]
fn episodes_video_has_leaks_exactly_where_episodes_json_says() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        frames: 48,
        ..small(8)
    };
    let file = generate_episodes(&cfg, 2, 30.0, dir.path(), &|| {}).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("episodes.json")).unwrap()).unwrap();
    assert_eq!(json["episodes"].as_array().unwrap().len(), 2);
    assert_eq!(json["fps"], 30.0);
    let mut with_gas = Vec::new();
    for t in 0..cfg.frames {
        let m = image::open(dir.path().join(format!("masks/frame_{:05}.png", t + 1)))
            .unwrap()
            .to_luma8();
        with_gas.push(area(&m) > 0);
    }
    for (t, &gas) in with_gas.iter().enumerate() {
        let inside = file
            .episodes
            .iter()
            .any(|e| t >= e.first_frame && t <= e.last_frame);
        if !inside {
            assert!(!gas, "frame {t} outside every episode shows no gas");
        }
    }
    for e in &file.episodes {
        assert!(with_gas[e.first_frame] && with_gas[e.last_frame]);
        assert!(e.first_frame >= e.release_start && e.last_frame >= e.release_stop - 1);
        assert!(
            e.last_frame < e.release_stop + 6,
            "dissipates within a few frames"
        );
    }
    let info = fgstp_data::video::probe(&dir.path().join("video.mp4")).unwrap();
    assert_eq!(info.frames, cfg.frames);

    // Another frame rate: the same frames, timed at that rate.
    let slow = tempfile::tempdir().unwrap();
    let at_15 = generate_episodes(&cfg, 2, 15.0, slow.path(), &|| {}).unwrap();
    assert_eq!(at_15.fps, 15.0);
    for (a, b) in file.episodes.iter().zip(&at_15.episodes) {
        assert_eq!((a.first_frame, a.last_frame), (b.first_frame, b.last_frame));
        assert_eq!(b.start_s, 2.0 * a.start_s);
    }
    let slow_info = fgstp_data::video::probe(&slow.path().join("video.mp4")).unwrap();
    assert_eq!((slow_info.frames, slow_info.fps), (cfg.frames, 15.0));
    for t in [0, cfg.frames - 1] {
        let name = format!("images/frame_{:05}.png", t + 1);
        assert_eq!(
            std::fs::read(dir.path().join(&name)).unwrap(),
            std::fs::read(slow.path().join(&name)).unwrap()
        );
    }

    let err = generate_episodes(&cfg, 5, 30.0, dir.path(), &|| {}).unwrap_err();
    assert!(
        err.to_string()
            .contains("--episodes 5 needs --frames of at least 60"),
        "{err}"
    );
}

/// Contrast only changes the gas layer, and the gas layer is where the mask says.
#[test]
fn gas_is_drawn_where_the_mask_is() {
    let with = run(
        &SynthConfig {
            contrast: 30.0,
            ..small(9)
        },
        2,
    );
    let without = run(
        &SynthConfig {
            contrast: 0.0,
            ..small(9)
        },
        2,
    );
    let scene = Path::new("train/scene_000");
    let (mut inside, mut n_in, mut outside, mut n_out) = (0f64, 0usize, 0f64, 0usize);
    for t in 0..6 {
        let name = format!("{t:05}.png");
        let a = image::open(with.path().join(scene).join("images").join(&name))
            .unwrap()
            .to_luma8();
        let b = image::open(without.path().join(scene).join("images").join(&name))
            .unwrap()
            .to_luma8();
        let m = image::open(with.path().join(scene).join("masks").join(&name))
            .unwrap()
            .to_luma8();
        let m0 = image::open(without.path().join(scene).join("masks").join(&name))
            .unwrap()
            .to_luma8();
        assert_eq!(m, m0, "the mask does not depend on the contrast");
        for ((pa, pb), pm) in a.iter().zip(b.iter()).zip(m.iter()) {
            let d = (f64::from(*pa) - f64::from(*pb)).abs();
            if *pm == 255 {
                inside += d;
                n_in += 1;
            } else {
                outside += d;
                n_out += 1;
            }
        }
    }
    let (inside, outside) = (inside / n_in as f64, outside / n_out as f64);
    assert!(
        inside > 5.0,
        "gas changes masked pixels by {inside:.2} levels on average"
    );
    assert!(
        outside < inside / 3.0,
        "and unmasked ones much less ({outside:.2})"
    );
}

/// A twin is its source scene without the gas: byte for byte the source rendered at contrast 0,
/// with empty masks, while the leaking scenes stay as they were.
#[test]
fn twins_show_the_scene_before_them_without_its_gas() {
    let cfg = SynthConfig {
        scenes: 12,
        frames: 4,
        twins: 1.0,
        ..small(5)
    };
    // Train holds scenes 0–7, leak-free 3 and 6 (the evenly spread third).
    assert_eq!(cfg.twin_of(3), Some(2));
    assert_eq!(cfg.twin_of(6), Some(5));
    assert_eq!(cfg.twin_of(2), None, "a leaking scene is no twin");
    let half = SynthConfig {
        twins: 0.5,
        ..cfg.clone()
    };
    assert_eq!(
        (half.twin_of(3), half.twin_of(6)),
        (None, Some(5)),
        "half the leak-free scenes: the second of each two"
    );
    let twins = files(run(&cfg, 2).path());
    let plain = files(
        run(
            &SynthConfig {
                twins: 0.0,
                ..cfg.clone()
            },
            2,
        )
        .path(),
    );
    let no_gas = files(
        run(
            &SynthConfig {
                contrast: 0.0,
                twins: 0.0,
                ..cfg.clone()
            },
            2,
        )
        .path(),
    );
    for t in 0..4 {
        let name = |scene: usize, kind: &str| {
            PathBuf::from(format!("train/scene_{scene:03}/{kind}/{t:05}.png"))
        };
        for (twin, source) in [(3, 2), (6, 5)] {
            assert_eq!(
                twins[&name(twin, "images")],
                no_gas[&name(source, "images")],
                "scene {twin} frame {t} is scene {source} without gas"
            );
            assert_ne!(twins[&name(twin, "images")], plain[&name(twin, "images")]);
            let mask = image::load_from_memory(&twins[&name(twin, "masks")]).unwrap();
            assert_eq!(area(&mask.to_luma8()), 0, "a twin is leak-free");
            assert_ne!(
                twins[&name(source, "images")],
                no_gas[&name(source, "images")],
                "the source shows its gas"
            );
        }
        for scene in [0, 1, 2, 4, 5, 7] {
            assert_eq!(twins[&name(scene, "images")], plain[&name(scene, "images")]);
        }
    }
}

#[test]
fn twin_batches_put_a_twin_sample_right_after_its_source_sample() {
    let cfg = SynthConfig {
        scenes: 12,
        frames: 4,
        twins: 1.0,
        ..small(5)
    };
    let dir = run(&cfg, 2);
    let data = fgstp_data::DataConfig {
        root: dir.path().to_path_buf(),
        train_size: 32.into(),
        threads: 1,
        ..Default::default()
    };
    let loader = fgstp_data::TrainLoader::open(&data, fgstp_data::TrainSampling::default())
        .unwrap()
        .with_twin_batches()
        .unwrap();
    // Scenes 3 and 6 are the twins of 2 and 5 (above); 4 frames give 2 samples each.
    assert_eq!(loader.twin_samples(), 4);
    let scene = |i: usize| {
        loader.split().scenes[loader.samples()[i].scene]
            .name
            .clone()
    };
    for epoch in 0..3 {
        let order = loader.order(epoch);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            (0..loader.len()).collect::<Vec<_>>(),
            "every sample once"
        );
        let mut pairs = 0;
        for (k, &i) in order.iter().enumerate() {
            let twin = match scene(i).as_str() {
                "scene_003" => "scene_002",
                "scene_006" => "scene_005",
                _ => continue,
            };
            let before = order[k - 1];
            assert_eq!(
                scene(before),
                twin,
                "epoch {epoch}: {} after its source",
                scene(i)
            );
            assert_eq!(loader.samples()[before].frames, loader.samples()[i].frames);
            pairs += 1;
        }
        assert_eq!(pairs, 4);
    }
    assert_ne!(loader.order(0), loader.order(1), "still shuffled per epoch");

    // Without the generator's record there is nothing to pair by.
    std::fs::remove_file(dir.path().join("synth.toml")).unwrap();
    let err = fgstp_data::TrainLoader::open(&data, fgstp_data::TrainSampling::default())
        .unwrap()
        .with_twin_batches()
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("synth.toml") && err.contains("twin_batches"),
        "{err}"
    );
}

#[test]
fn sixteen_bit_output_reads_back_as_l16() {
    let dir = run(
        &SynthConfig {
            bit_depth: 16,
            ..small(3)
        },
        2,
    );
    let split = Split::open(dir.path(), "train", Masks::Required).unwrap();
    assert_eq!(split.scenes[0].frames[0].color, image::ColorType::L16);
    let img = split.scenes[0]
        .load_frame(0, fgstp_data::SixteenBit::PerVideo)
        .unwrap();
    let (lo, hi) = img
        .pixels()
        .fold((255u8, 0u8), |(lo, hi), p| (lo.min(p[0]), hi.max(p[0])));
    assert!(
        lo < 40 && hi > 200,
        "per-video stretch spans the range ({lo}..{hi})"
    );
}

#[test]
fn bad_settings_are_refused_with_the_option_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = generate(
        &SynthConfig {
            scenes: 2,
            ..small(1)
        },
        dir.path(),
        &|| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("--scenes 2"), "{err}");
    let err = generate(
        &SynthConfig {
            bit_depth: 12,
            ..small(1)
        },
        dir.path(),
        &|| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("--bit-depth 12"), "{err}");
    let err = generate(
        &SynthConfig {
            steam: 1.5,
            ..small(1)
        },
        dir.path(),
        &|| {},
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("--steam 1.5 must be a share"),
        "{err}"
    );
    // Counts so large that their product would overflow are refused, not multiplied.
    let huge = 5_000_000_000usize;
    let err = generate(
        &SynthConfig {
            scenes: huge,
            frames: huge,
            ..small(1)
        },
        dir.path(),
        &|| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("too many"), "{err}");
    let err = fgstp_data::synth::episodes::generate_episodes(
        &small(1),
        usize::MAX,
        15.0,
        dir.path(),
        &|| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("--episodes"), "{err}");
}
