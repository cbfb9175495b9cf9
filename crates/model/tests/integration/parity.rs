//! Parity with the reference PyTorch implementation (GeekEagle/FGSTP).
//!
//! The fixture was produced by running the reference itself
//! (scripts/fixtures/make_model_fixture.py, a b0-sized encoder at 256 px, every weight and
//! BatchNorm statistic randomised, the correlation `W` non-zero): its
//! `torch.save(model.state_dict())` checkpoint, the three input frames and every output. Regenerate
//! with
//!   scripts/pytools scripts/fixtures/make_model_fixture.py <your FGSTP checkout> crates/model/tests/fixtures/parity

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fgstp_model::checkpoint::{load_into, LoadOptions, StateDict};
use fgstp_model::{Config, Fgstp, ModelKind, PvtV2Variant, SinetV2};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Max abs difference allowed between our outputs and the reference's (float32 on CPU; the
/// remaining differences are summation-order effects).
const TOLERANCE: f64 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity")
        .join(name)
}

fn b0_config(kind: ModelKind) -> Config {
    Config {
        kind,
        backbone: PvtV2Variant::B0,
        ..Config::default()
    }
}

/// The reference's inputs and outputs by name.
fn reference_io() -> BTreeMap<String, Tensor> {
    let path = fixture("fgstp_b0_256_io.safetensors");
    Tensor::read_safetensors(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .into_iter()
        .map(|(name, t)| (name, t.to_kind(Kind::Float)))
        .collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shape");
    (a - b).abs().max().double_value(&[])
}

/// Loads the reference's `.pth` into `vs`; `strict` for the full model.
fn load_reference_checkpoint(
    vs: &mut VarStore,
    strict: bool,
) -> fgstp_model::checkpoint::LoadReport {
    let sd =
        StateDict::read(&fixture("fgstp_b0_256.pth")).expect("reading the reference checkpoint");
    let opts = if strict {
        LoadOptions::strict()
    } else {
        LoadOptions::partial()
    };
    load_into(vs, &sd, &opts).expect("loading the reference checkpoint")
}

fn assert_all_close(ours: &[(&str, &Tensor)], io: &BTreeMap<String, Tensor>) {
    let mut report = Vec::new();
    let mut worst = 0f64;
    for (name, ours) in ours {
        let diff = max_abs_diff(ours, &io[*name]);
        worst = worst.max(diff);
        report.push(format!("{name}: {diff:.2e}"));
    }
    println!("max abs diff per output: {}", report.join(", "));
    assert!(
        worst <= TOLERANCE,
        "outputs differ from the reference by up to {worst:.3e} (> {TOLERANCE:e}): {report:?}"
    );
}

fn frames(io: &BTreeMap<String, Tensor>) -> [&Tensor; 3] {
    [&io["frame.0"], &io["frame.1"], &io["frame.2"]]
}

#[test]
fn fgstp_b0_matches_the_reference_outputs() {
    let io = reference_io();
    let mut vs = VarStore::new(Device::Cpu);
    let model = Fgstp::new(&vs.root(), &b0_config(ModelKind::Fgstp)).unwrap();
    let report = load_reference_checkpoint(&mut vs, true);
    assert!(
        report.skipped.is_empty() && report.missing.is_empty(),
        "{}",
        report.summary()
    );

    let out = tch::no_grad(|| model.forward_t(frames(&io), false)).unwrap();
    let names: Vec<String> = (0..4)
        .map(|i| format!("pair_t1.{i}"))
        .chain((0..4).map(|i| format!("pair_t2.{i}")))
        .chain(["fused".to_string()])
        .collect();
    let ours: Vec<(&str, &Tensor)> = names.iter().map(String::as_str).zip(out.maps()).collect();
    assert_eq!(ours.len(), 9);
    assert_all_close(&ours, &io);

    // Streaming: features computed once per frame give the very same outputs.
    let streamed = tch::no_grad(|| {
        let [f_t, f_t1, f_t2] = frames(&io).map(|f| model.encode(f, false).unwrap());
        model.forward_features(&f_t, &f_t1, &f_t2, false)
    })
    .unwrap();
    for (a, b) in streamed.maps().into_iter().zip(out.maps()) {
        assert!(
            a.equal(b),
            "forward from precomputed features differs from forward_t"
        );
    }
}

/// The fused order of computation (fused attention, a triplet as one encoder batch, both
/// pairs as one decoder batch) against the reference's own outputs, and streaming with it.
#[test]
fn fused_fgstp_matches_the_reference_within_the_tolerance() {
    let io = reference_io();
    let mut vs = VarStore::new(Device::Cpu);
    let cfg = Config {
        fused: true,
        ..b0_config(ModelKind::Fgstp)
    };
    let model = Fgstp::new(&vs.root(), &cfg).unwrap();
    load_reference_checkpoint(&mut vs, true);
    let out = tch::no_grad(|| model.forward_t(frames(&io), false)).unwrap();
    let names: Vec<String> = (0..4)
        .map(|i| format!("pair_t1.{i}"))
        .chain((0..4).map(|i| format!("pair_t2.{i}")))
        .chain(["fused".to_string()])
        .collect();
    let ours: Vec<(&str, &Tensor)> = names.iter().map(String::as_str).zip(out.maps()).collect();
    assert_all_close(&ours, &io);
    let streamed = tch::no_grad(|| {
        let [f_t, f_t1, f_t2] = frames(&io).map(|f| model.encode(f, false).unwrap());
        model.forward_features(&f_t, &f_t1, &f_t2, false)
    })
    .unwrap();
    let streamed: Vec<(&str, &Tensor)> = names
        .iter()
        .map(String::as_str)
        .zip(streamed.maps())
        .collect();
    assert_all_close(&streamed, &io);
}

#[test]
fn training_mode_matches_the_reference_batchnorm_semantics() {
    // The reference as it really trains: `model.train()` leaves every BatchNorm, the backbone's
    // too, on batch statistics -- our `freeze_backbone_bn = false`.
    let io = reference_io();
    let mut vs = VarStore::new(Device::Cpu);
    let cfg = Config {
        freeze_backbone_bn: false,
        ..b0_config(ModelKind::Fgstp)
    };
    let model = Fgstp::new(&vs.root(), &cfg).unwrap();
    load_reference_checkpoint(&mut vs, true);
    let out = tch::no_grad(|| model.forward_t(frames(&io), true)).unwrap();
    assert_all_close(
        &[
            ("train.pair_t1.3", &out.pair_t1[3]),
            ("train.pair_t2.3", &out.pair_t2[3]),
            ("train.fused", &out.fused),
        ],
        &io,
    );
    // Every running mean/var moved exactly as PyTorch moves them (momentum 0.1, unbiased var).
    let variables = vs.variables();
    let stats: Vec<(String, &Tensor)> = io
        .keys()
        .filter_map(|k| {
            k.strip_prefix("train.")
                .filter(|k| k.ends_with("running_mean") || k.ends_with("running_var"))
        })
        .map(|k| (format!("train.{k}"), &variables[k]))
        .collect();
    assert_eq!(
        stats.len(),
        variables.keys().filter(|k| k.contains(".running_")).count()
    );
    let stats: Vec<(&str, &Tensor)> = stats.iter().map(|(k, t)| (k.as_str(), *t)).collect();
    assert_all_close(&stats, &io);
}

#[test]
fn single_frame_baseline_matches_the_reference_backbone() {
    let io = reference_io();
    let mut vs = VarStore::new(Device::Cpu);
    let model = SinetV2::new(&vs.root(), &b0_config(ModelKind::SinetV2)).unwrap();
    // The FGSTP checkpoint fills the baseline's backbone; its CTC, FSP and fusion are extra.
    let report = load_reference_checkpoint(&mut vs, false);
    assert!(report.missing.is_empty(), "{}", report.summary());
    assert!(
        !report.skipped.is_empty() && report.skipped.iter().all(|k| !k.starts_with("backbone."))
    );

    let out = tch::no_grad(|| model.forward_t(&io["frame.0"], false)).unwrap();
    let names = ["sinet.0", "sinet.1", "sinet.2", "sinet.3"];
    let ours: Vec<(&str, &Tensor)> = names.into_iter().zip(out.maps.iter()).collect();
    assert_all_close(&ours, &io);
}

#[test]
fn layer_norm_epsilons_match_the_reference() {
    // Inputs of tiny variance make the epsilons (1e-5 in the patch embedding, 1e-6 in the blocks)
    // decisive; in the full model their effect is far below the tolerance.
    let io = reference_io();
    let mut vs = VarStore::new(Device::Cpu);
    let model = Fgstp::new(&vs.root(), &b0_config(ModelKind::Fgstp)).unwrap();
    load_reference_checkpoint(&mut vs, true);
    let pvt = model.backbone.encoder.pvt();
    let (embedded, h, w) = tch::no_grad(|| pvt.embed_patches(0, &io["probe.patch_embed1.in"]));
    assert_eq!((h, w), (8, 8));
    let block = tch::no_grad(|| pvt.block(0, 0, &io["probe.block1.0.in"], 8, 8));
    assert_all_close(
        &[
            ("probe.patch_embed1.out", &embedded),
            ("probe.block1.0.out", &block),
        ],
        &io,
    );
}

/// `name [d0, d1, ...]` per line, as make_model_fixture.py writes them.
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

fn our_keys(cfg: &Config) -> BTreeMap<String, Vec<i64>> {
    let vs = VarStore::new(Device::Cpu);
    let _model = fgstp_model::Model::new(&vs.root(), cfg).unwrap();
    vs.variables()
        .into_iter()
        .map(|(name, t)| (name, t.size()))
        .collect()
}

fn assert_same_keys(ours: &BTreeMap<String, Vec<i64>>, reference: &BTreeMap<String, Vec<i64>>) {
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
fn variable_names_and_shapes_are_the_reference_state_dict_b0() {
    assert_same_keys(
        &our_keys(&b0_config(ModelKind::Fgstp)),
        &reference_keys("fgstp_b0_keys.txt"),
    );
}

#[test]
fn variable_names_and_shapes_are_the_reference_state_dict_b5() {
    let cfg = Config::default();
    assert_eq!(cfg.backbone, PvtV2Variant::B5);
    let ours = our_keys(&cfg);
    assert!(ours.contains_key("backbone.encoder.pvtv2_en.block3.12.attn.kv.weight"));
    assert!(ours.contains_key("ctc.nl_layer1.nonlocals.0.g.0.weight"));
    assert!(ours.contains_key("fsp1.interact.0.conv.weight"));
    assert!(ours.contains_key("fusion_conv.2.bias"));
    assert_same_keys(&ours, &reference_keys("fgstp_b5_keys.txt"));
}

#[test]
fn single_frame_baseline_has_exactly_the_backbone_keys() {
    let reference: BTreeMap<_, _> = reference_keys("fgstp_b0_keys.txt")
        .into_iter()
        .filter(|(k, _)| k.starts_with("backbone."))
        .collect();
    assert_same_keys(&our_keys(&b0_config(ModelKind::SinetV2)), &reference);
}
