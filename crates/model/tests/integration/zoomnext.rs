//! ZoomNeXt against the authors' code (lartpang/ZoomNeXt).
//!
//! The fixture was produced by running the reference itself
//! (scripts/fixtures/make_zoomnext_fixture.py): its `PvtV2B2_ZoomNeXt` class with a b0-width,
//! one-block-per-stage PVTv2 and 3 RGPU groups, every weight, BatchNorm statistic and normaliser
//! buffer randomised, the logits spread to std 3, and the video model's temporal branch given
//! weight (it starts as the identity). Stored: the image model's `torch.save(model.state_dict())`,
//! the video model's temporal tensors, 2 clips × 5 uint8 frames, the three zoom scales the
//! reference's `ms_resize` made of them, both models' logits, more `cv2.resize` cases (checked by
//! the data crate, which makes the zoom scales: its tests/integration/opencv_parity.rs), and the reference's
//! key lists (also for b5). Regenerate with
//!   scripts/pytools scripts/fixtures/make_zoomnext_fixture.py <your ZoomNeXt checkout> crates/model/tests/fixtures/zoomnext

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fgstp_model::checkpoint::key_layout::{detect, ModelLayout};
use fgstp_model::checkpoint::{load_into, LoadOptions, StateDict};
use fgstp_model::models::zoomnext::{
    is_temporal_key, load_checkpoint, macs::frame_macs, plan_clips, zoom_sizes,
};
use fgstp_model::models::zoomnext::{ZoomNext, ZoomNextConfig};
use fgstp_model::{Config, Model, ModelKind, PvtV2Config, PvtV2Variant};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Max abs difference allowed between our logits and the reference's (float32 on the CPU).
const TOLERANCE: f64 = 1e-4;
const CLIPS: i64 = 2;
const FRAMES: i64 = 5;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/zoomnext")
        .join(name)
}

fn reference_io() -> BTreeMap<String, Tensor> {
    let path = fixture("zoomnext_io.safetensors");
    Tensor::read_safetensors(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .into_iter()
        .collect()
}

/// The fixture's model: the reference's PVTv2 ZoomNeXt with b0's encoder widths, one block per
/// stage, 3 RGPU groups.
fn fixture_config(frames: i64) -> ZoomNextConfig {
    ZoomNextConfig {
        encoder: PvtV2Config {
            depths: [1, 1, 1, 1],
            ..PvtV2Variant::B0.config()
        },
        siu_groups: 4,
        hmu_groups: 3,
        frames,
        fused: false,
    }
}

/// uint8 [N, h, w, 3] → float [N, 3, h, w] in [0, 1], as the reference's datasets do.
fn to_model_input(u8_nhwc: &Tensor) -> Tensor {
    u8_nhwc.permute([0, 3, 1, 2]).to_kind(Kind::Float) / 255.0
}

fn scales(io: &BTreeMap<String, Tensor>) -> [Tensor; 3] {
    ["image_s.u8", "image_m.u8", "image_l.u8"].map(|k| to_model_input(&io[k]))
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shape");
    (a - b).abs().max().double_value(&[])
}

fn assert_close(name: &str, ours: &Tensor, reference: &Tensor) {
    let diff = max_abs_diff(ours, reference);
    println!("{name}: max abs diff {diff:.3e}");
    assert!(
        diff <= TOLERANCE,
        "{name} differs from the reference by {diff:.3e} (> {TOLERANCE:e})"
    );
}

fn image_model() -> (VarStore, ZoomNext) {
    image_model_in_order(false)
}

/// `fused`: the encoder's attention through `scaled_dot_product_attention` (`model.fused`).
fn image_model_in_order(fused: bool) -> (VarStore, ZoomNext) {
    let mut vs = VarStore::new(Device::Cpu);
    let cfg = ZoomNextConfig {
        fused,
        ..fixture_config(1)
    };
    let model = ZoomNext::new(&vs.root(), &cfg).unwrap();
    let sd = StateDict::read(&fixture("zoomnext_image.pth")).unwrap();
    let report = load_checkpoint(&mut vs, &sd, &model).unwrap();
    // The image checkpoint's temporal branch (T = 1) loads into the image model, which never uses it.
    assert!(report.skipped_temporal.is_empty(), "{}", report.summary());
    assert_eq!(report.unused.len(), 4 * 3, "{}", report.summary());
    assert!(report.unused.iter().all(|k| is_temporal_key(k)));
    assert!(report.report.missing.is_empty() && report.report.skipped.is_empty());
    println!(
        "image checkpoint into the image model: {}",
        report.summary()
    );
    (vs, model)
}

/// The video model as the authors fine-tune it: filled from the image checkpoint (whose T = 1
/// temporal tensors do not fit and are skipped), then the fixture's temporal branch.
fn video_model() -> (VarStore, ZoomNext) {
    video_model_in_order(false)
}

fn video_model_in_order(fused: bool) -> (VarStore, ZoomNext) {
    let mut vs = VarStore::new(Device::Cpu);
    let cfg = ZoomNextConfig {
        fused,
        ..fixture_config(FRAMES)
    };
    let model = ZoomNext::new(&vs.root(), &cfg).unwrap();
    let image = StateDict::read(&fixture("zoomnext_image.pth")).unwrap();
    let report = load_checkpoint(&mut vs, &image, &model).unwrap();
    assert_eq!(report.skipped_temporal.len(), 12, "{}", report.summary());
    assert_eq!(report.report.missing, {
        let mut keys = report.skipped_temporal.clone();
        keys.sort();
        keys
    });
    assert!(report.unused.is_empty());
    println!(
        "image checkpoint into the video model: {}",
        report.summary()
    );

    let temporal = StateDict::read(&fixture("zoomnext_video_temporal.pth")).unwrap();
    let report = load_into(&mut vs, &temporal, &LoadOptions::partial()).unwrap();
    assert_eq!(report.loaded.len(), 12);
    assert!(report.skipped.is_empty());
    (vs, model)
}

#[test]
fn image_model_matches_the_reference() {
    let io = reference_io();
    let (_vs, model) = image_model();
    let [s, m, l] = scales(&io);
    let logits = tch::no_grad(|| model.forward_t([&s, &m, &l], false)).unwrap();
    assert_eq!(logits.size(), [CLIPS * FRAMES, 1, 64, 96]);
    assert_close("image logits", &logits, &io["image.logits"]);
}

#[test]
fn video_model_matches_the_reference() {
    let io = reference_io();
    // The test means something only if the temporal branch moves the output well beyond the
    // tolerance (the reference's own outputs, with and without it).
    let temporal_effect = max_abs_diff(&io["video.logits"], &io["image.logits"]);
    assert!(
        temporal_effect > 1000.0 * TOLERANCE,
        "temporal effect {temporal_effect}"
    );

    let (_vs, model) = video_model();
    let [s, m, l] = scales(&io);
    let logits = tch::no_grad(|| model.forward_t([&s, &m, &l], false)).unwrap();
    assert_close("video logits", &logits, &io["video.logits"]);
}

#[test]
fn fused_attention_matches_the_reference_too() {
    let io = reference_io();
    let [s, m, l] = scales(&io);
    for (name, (_vs, model), reference) in [
        ("image", image_model_in_order(true), "image.logits"),
        ("video", video_model_in_order(true), "video.logits"),
    ] {
        let (_vs_plain, plain) = if name == "image" {
            image_model()
        } else {
            video_model()
        };
        let fused = tch::no_grad(|| model.forward_t([&s, &m, &l], false)).unwrap();
        let unfused = tch::no_grad(|| plain.forward_t([&s, &m, &l], false)).unwrap();
        assert_close(&format!("{name} logits, fused"), &fused, &io[reference]);
        // A different computation, not the same one twice.
        assert!(
            max_abs_diff(&fused, &unfused) > 0.0,
            "{name}: fused = unfused bit for bit"
        );
    }
}

#[test]
fn per_frame_features_and_clip_decoding_compose_to_the_forward() {
    // A 7-frame video: clips [0, 5) and [2, 7). Per clip, the per-frame part followed by the clip
    // part is the forward, bit for bit. Features computed once for all 7 frames and shared by the
    // overlapping clips agree only to float rounding: libtorch's kernels sum in a batch-size
    // dependent order (~2e-7 in the features here), so sharing them is not bit-identical.
    let io = reference_io();
    let (_vs, model) = video_model();
    let all = scales(&io);
    let video: Vec<Tensor> = all.iter().map(|t| t.narrow(0, 0, 7)).collect();
    let plan = plan_clips(7, FRAMES as usize).unwrap();
    assert_eq!(plan.clips, [vec![0, 1, 2, 3, 4], vec![2, 3, 4, 5, 6]]);
    tch::no_grad(|| {
        let per_frame = model
            .scale_features([&video[0], &video[1], &video[2]], false)
            .unwrap();
        for clip in &plan.clips {
            let index = Tensor::from_slice(&clip.iter().map(|&i| i as i64).collect::<Vec<_>>());
            let clip_scales = [0, 1, 2].map(|k| video[k].index_select(0, &index));
            let direct = model.forward_t(clip_scales.each_ref(), false).unwrap();
            let composed = model
                .decode(
                    &model.scale_features(clip_scales.each_ref(), false).unwrap(),
                    false,
                )
                .unwrap();
            assert!(
                composed.equal(&direct),
                "clip {clip:?}: scale_features + decode != forward_t"
            );
            let shared = per_frame.each_ref().map(|f| f.index_select(0, &index));
            let reused = model.decode(&shared, false).unwrap();
            let diff = max_abs_diff(&reused, &direct);
            println!("clip {clip:?}: features shared across clips move the logits by {diff:.2e}");
            assert!(diff <= TOLERANCE);
        }
    });
}

#[test]
fn zoom_sizes_are_pythons_truncated_products() {
    // The pixels themselves are the data crate's (crates/data/tests/integration/opencv_parity.rs
    // checks them against this fixture's cv2 output).
    assert_eq!(zoom_sizes(64, 96), [(32, 48), (64, 96), (96, 144)]);
    assert_eq!(zoom_sizes(97, 97), [(48, 48), (97, 97), (145, 145)]);
}

/// `name [d0, d1, ...]` per line, as make_zoomnext_fixture.py writes them.
fn reference_keys(file: &str) -> BTreeMap<String, Vec<i64>> {
    let path = fixture(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|line| !line.ends_with("num_batches_tracked []")) // tch has no such variable
        .map(|line| {
            let (name, shape) = line.split_once(' ').expect("`key [shape]`");
            let dims = shape
                .trim_matches(['[', ']'])
                .split(", ")
                .filter(|d| !d.is_empty());
            (name.to_string(), dims.map(|d| d.parse().unwrap()).collect())
        })
        .collect()
}

fn assert_same_keys(vs: &VarStore, reference: &BTreeMap<String, Vec<i64>>) {
    let ours: BTreeMap<String, Vec<i64>> = vs
        .variables()
        .into_iter()
        .map(|(name, t)| (name, t.size()))
        .collect();
    let only_ours: Vec<_> = ours
        .keys()
        .filter(|k| !reference.contains_key(*k))
        .collect();
    let only_ref: Vec<_> = reference
        .keys()
        .filter(|k| !ours.contains_key(*k))
        .collect();
    assert!(
        only_ours.is_empty() && only_ref.is_empty(),
        "only ours: {only_ours:?}\nonly reference: {only_ref:?}"
    );
    for (name, shape) in reference {
        assert_eq!(&ours[name], shape, "shape of {name}");
    }
}

#[test]
fn variable_names_and_shapes_are_the_reference_state_dicts() {
    for (frames, file) in [
        (1, "zoomnext_keys_image_b0d1.txt"),
        (FRAMES, "zoomnext_keys_video_b0d1.txt"),
    ] {
        let vs = VarStore::new(Device::Cpu);
        let _model = ZoomNext::new(&vs.root(), &fixture_config(frames)).unwrap();
        assert_same_keys(&vs, &reference_keys(file));
    }
    // The authors' released sizes through the run configuration: PvtV2B5_ZoomNeXt (image) and
    // videoPvtV2B5_ZoomNeXt (T = 5).
    for (kind, file) in [
        (ModelKind::Zoomnext, "zoomnext_keys_image_b5.txt"),
        (ModelKind::ZoomnextVideo, "zoomnext_keys_video_b5.txt"),
    ] {
        let cfg = Config {
            kind,
            backbone: PvtV2Variant::B5,
            ..Config::default()
        };
        let vs = VarStore::new(Device::Cpu);
        let _model = tch::no_grad(|| Model::new(&vs.root(), &cfg)).unwrap();
        let reference = reference_keys(file);
        assert!(
            reference.contains_key("normalizer.mean")
                && reference.contains_key("encoder.block3.39.mlp.fc2.bias")
        );
        assert_same_keys(&vs, &reference);
    }
}

#[test]
fn checkpoint_layouts_are_recognised() {
    let detect_file = |file: &str| {
        let keys = reference_keys(file);
        detect(keys.iter().map(|(k, s)| (k.as_str(), s.as_slice())))
    };
    for (file, frames) in [
        ("zoomnext_keys_image_b5.txt", 1),
        ("zoomnext_keys_video_b5.txt", 5),
    ] {
        let d = detect_file(file);
        assert_eq!(
            d.layout,
            ModelLayout::ZoomNext {
                frames: Some(frames)
            },
            "{file}"
        );
        assert_eq!(d.pvt.as_ref().and_then(|p| p.variant), Some("b5"), "{file}");
        assert_eq!(d.pvt_prefix, Some("encoder."));
        println!("{file}: {}", d.describe());
    }
    // The fixture's own checkpoint, read from the file: not a released PVTv2 size.
    let d = StateDict::read(&fixture("zoomnext_image.pth"))
        .unwrap()
        .detect_layout();
    assert_eq!(d.layout, ModelLayout::ZoomNext { frames: Some(1) });
    let pvt = d.pvt.unwrap();
    assert_eq!(
        (pvt.variant, pvt.widths, pvt.depths),
        (None, [32, 64, 160, 256], [1, 1, 1, 1])
    );
}

#[test]
fn model_entry_point_takes_the_three_scales() {
    let cfg = Config {
        kind: ModelKind::ZoomnextVideo,
        backbone: PvtV2Variant::B0,
        ..Config::default()
    };
    assert_eq!((cfg.kind.frames(), cfg.kind.inputs()), (5, 3));
    assert_eq!(cfg.min_input_size(), 58);
    assert!(cfg.check_input_size(58, 100).is_ok());
    assert!(cfg
        .check_input_size(57, 100)
        .unwrap_err()
        .to_string()
        .contains("58×58"));
    let vs = VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), &cfg).unwrap();
    let input = |n: i64, h: i64, w: i64| Tensor::rand([n, 3, h, w], (Kind::Float, Device::Cpu));
    let (s, m, l) = (input(5, 32, 30), input(5, 64, 60), input(5, 96, 90));
    let out = tch::no_grad(|| model.forward_t(&[&s, &m, &l], false)).unwrap();
    // Four times the medium scale's 1/4 map: 60 px → 15 → 60; 64 → 16 → 64.
    assert_eq!(out.prediction().size(), [5, 1, 64, 60]);
    assert_eq!(out.maps().len(), 1);

    // Errors, not panics, for inputs that cannot go through.
    let err = |frames: &[&Tensor]| {
        tch::no_grad(|| model.forward_t(frames, false))
            .unwrap_err()
            .to_string()
    };
    let four = (input(4, 32, 30), input(4, 64, 60), input(4, 96, 90));
    assert!(err(&[&four.0, &four.1, &four.2]).contains("not a whole number of 5-frame clips"));
    assert!(err(&[&s, &four.1, &l]).contains("batch"));
    assert!(err(&[&s, &m]).contains("3"));
    let gray = Tensor::rand([5, 1, 64, 60], (Kind::Float, Device::Cpu));
    assert!(err(&[&s, &gray, &l]).contains("[batch, 3, height, width]"));
    // 28 px: the 1/4 map (7 px) is smaller than the first stage's 8×8 spatial reduction.
    let narrow = input(5, 32, 28);
    let message = err(&[&narrow, &m, &l]);
    assert!(
        message.contains("width is 28 px") && message.contains("at least 29 px"),
        "{message}"
    );
    assert!(message.contains("base size of at least 58 px"), "{message}");
}

#[test]
fn macs_are_what_pytorchs_flop_counter_counts_on_the_reference() {
    let path = fixture("zoomnext_meta.json");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let reference = |key: &str| meta["flop_counter"][key].as_i64().unwrap();
    let fixture_scales = zoom_sizes(64, 96).map(|(h, w)| (h as i64, w as i64));
    let paper_scales = zoom_sizes(384, 384).map(|(h, w)| (h as i64, w as i64));
    for (key, cfg, scales, frames) in [
        ("image_batch10", fixture_config(1), fixture_scales, 10),
        ("video_2x5", fixture_config(FRAMES), fixture_scales, 10),
        (
            "b5_image_384",
            ZoomNextConfig::image(PvtV2Variant::B5),
            paper_scales,
            1,
        ),
        (
            "b5_video_clip5_384",
            ZoomNextConfig::video(PvtV2Variant::B5),
            paper_scales,
            5,
        ),
    ] {
        let ours = 2 * frames * frame_macs(&cfg, scales);
        assert_eq!(
            ours,
            reference(key),
            "{key}: ours {ours}, PyTorch's {}",
            reference(key)
        );
    }
}

/// The full-size check: the authors' b5 models at their 384×384 size, randomised weights, one
/// frame (image model) and one 5-frame clip (video model). Too big for the repository: make it with
///   scripts/pytools scripts/fixtures/make_zoomnext_fixture.py REF_CHECKOUT unused --full-size DIR --threads N
/// and run
///   ZOOMNEXT_FULL_SIZE_DIR=DIR cargo test -p fgstp-model --test integration -- zoomnext:: \
///       --ignored --nocapture
/// (set the same thread count, e.g. with `taskset`, to compare the printed forward times with the
/// reference's in DIR/zoomnext_b5_meta.json).
#[test]
#[ignore = "needs ZOOMNEXT_FULL_SIZE_DIR (scripts/fixtures/make_zoomnext_fixture.py --full-size)"]
fn full_size_b5_matches_the_reference() {
    let dir =
        PathBuf::from(std::env::var("ZOOMNEXT_FULL_SIZE_DIR").expect("ZOOMNEXT_FULL_SIZE_DIR"));
    let io: BTreeMap<String, Tensor> =
        Tensor::read_safetensors(dir.join("zoomnext_b5_io.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    let scales = ["image_s.u8", "image_m.u8", "image_l.u8"].map(|k| to_model_input(&io[k]));
    for (kind, cfg, frames) in [
        ("image", ZoomNextConfig::image(PvtV2Variant::B5), 1),
        ("video", ZoomNextConfig::video(PvtV2Variant::B5), FRAMES),
    ] {
        let mut vs = VarStore::new(Device::Cpu);
        let model = ZoomNext::new(&vs.root(), &cfg).unwrap();
        let sd = StateDict::read(&dir.join(format!("zoomnext_b5_{kind}.pth"))).unwrap();
        let report = load_checkpoint(&mut vs, &sd, &model).unwrap();
        println!("{kind}: {}", report.summary());
        let input = scales.each_ref().map(|t| t.narrow(0, 0, frames));
        let mut times = Vec::new();
        let mut logits = None;
        for _ in 0..2 {
            let start = std::time::Instant::now();
            logits = Some(tch::no_grad(|| model.forward_t(input.each_ref(), false)).unwrap());
            times.push(start.elapsed().as_secs_f64());
        }
        println!(
            "{kind}: forward {:.2} s ({} threads)",
            times.iter().cloned().fold(f64::INFINITY, f64::min),
            tch::get_num_threads()
        );
        assert_close(
            &format!("b5 {kind} logits"),
            &logits.unwrap(),
            &io[&format!("{kind}.logits")],
        );
    }
}
