//! The synthetic generator: determinism, layout validity, and that the gas is where the mask is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fgstp_data::synth::{generate, SynthConfig};
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

#[test]
fn output_is_a_valid_dataset_with_moving_plumes() {
    let cfg = small(5);
    let dir = run(&cfg, 2);
    let mut scenes = 0;
    for (split, range) in cfg.splits() {
        let s = Split::open(dir.path(), split, Masks::Required).unwrap();
        s.verify_pixels(&|| {}).unwrap();
        assert_eq!(s.scenes.len(), range.len());
        scenes += s.scenes.len();
        for scene in &s.scenes {
            assert_eq!(scene.frames.len(), cfg.frames);
            assert_eq!(scene.mask_count(), cfg.frames);
            assert_eq!((scene.width, scene.height), (cfg.width, cfg.height));
            let masks: Vec<image::GrayImage> = scene
                .frames
                .iter()
                .map(|f| fgstp_data::decode::load_mask(f.mask.as_ref().unwrap()).unwrap())
                .collect();
            let area = |m: &image::GrayImage| m.iter().filter(|&&v| v == 255).count();
            assert!(
                masks.iter().all(|m| area(m) > 0),
                "{}: every frame shows gas",
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
    assert_eq!(
        cfg.splits().iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        ["train", "val", "test"]
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
}
