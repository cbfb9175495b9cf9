//! Behaviour of the model on tiny configurations (b0 encoder, 64 px, correlation pools 1/1/1):
//! training step, BatchNorm freezing, the single-frame kind, input checks, initialisation,
//! configuration and device parsing.

use fgstp_model::{Config, DeviceSpec, Fgstp, Model, ModelKind, PvtV2Variant, SinetV2};
use tch::nn::{self, OptimizerConfig, VarStore};
use tch::{Device, Kind, Tensor};

const SIZE: i64 = 64;

fn tiny(kind: ModelKind) -> Config {
    Config {
        kind,
        backbone: PvtV2Variant::B0,
        correlation_pools: [1, 1, 1],
        ..Config::default()
    }
}

fn frames(batch: i64, size: i64, seed: i64) -> Vec<Tensor> {
    tch::manual_seed(seed);
    (0..3)
        .map(|_| Tensor::randn([batch, 3, size, size], (Kind::Float, Device::Cpu)))
        .collect()
}

fn refs(frames: &[Tensor]) -> [&Tensor; 3] {
    [&frames[0], &frames[1], &frames[2]]
}

#[test]
fn forward_gives_nine_maps_at_input_resolution() {
    let vs = VarStore::new(Device::Cpu);
    let model = Fgstp::new(&vs.root(), &tiny(ModelKind::Fgstp)).unwrap();
    let x = frames(2, SIZE, 0);
    let out = tch::no_grad(|| model.forward_t(refs(&x), false)).unwrap();
    let maps = out.maps();
    assert_eq!(maps.len(), 9);
    for map in maps {
        assert_eq!(map.size(), [2, 1, SIZE, SIZE]);
    }
    // Non-square inputs are fine too.
    tch::manual_seed(1);
    let wide: Vec<Tensor> = (0..3)
        .map(|_| Tensor::randn([1, 3, 32, 96], (Kind::Float, Device::Cpu)))
        .collect();
    let out = tch::no_grad(|| model.forward_t(refs(&wide), false)).unwrap();
    assert_eq!(out.fused.size(), [1, 1, 32, 96]);
}

#[test]
fn a_training_step_runs_and_reaches_every_parameter() {
    let vs = VarStore::new(Device::Cpu);
    let model = Fgstp::new(&vs.root(), &tiny(ModelKind::Fgstp)).unwrap();
    let x = frames(2, SIZE, 2);
    let target = Tensor::rand([2, 1, SIZE, SIZE], (Kind::Float, Device::Cpu))
        .ge(0.5)
        .to_kind(Kind::Float);
    let mut opt = nn::Adam::default().build(&vs, 1e-4).unwrap();

    let out = model.forward_t(refs(&x), true).unwrap();
    let loss = out
        .maps()
        .into_iter()
        .map(|map| {
            map.binary_cross_entropy_with_logits::<Tensor>(
                &target,
                None,
                None,
                tch::Reduction::Mean,
            )
        })
        .fold(Tensor::zeros([], (Kind::Float, Device::Cpu)), |acc, l| {
            acc + l
        });
    assert!(loss.double_value(&[]).is_finite());
    opt.zero_grad();
    loss.backward();
    for (name, var) in vs.variables() {
        if !var.requires_grad() {
            continue; // BatchNorm running statistics
        }
        let grad = var.grad();
        assert!(grad.defined(), "{name} got no gradient");
        assert!(
            grad.isfinite().all().int64_value(&[]) == 1,
            "{name} has a non-finite gradient"
        );
    }
    // `W` of every correlation block starts at zero yet must learn (its gradient is not zero).
    let w = &vs.variables()["ctc.nl_layer1.nonlocals.0.W.weight"];
    assert!(w.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
    opt.step();
}

fn running_stats(vs: &VarStore, prefix: &str) -> Vec<(String, Tensor)> {
    let mut stats: Vec<_> = vs
        .variables()
        .into_iter()
        .filter(|(name, _)| {
            name.starts_with(prefix)
                && (name.ends_with("running_mean") || name.ends_with("running_var"))
        })
        .map(|(name, t)| (name, t.copy()))
        .collect();
    stats.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!stats.is_empty(), "no BatchNorm under {prefix}");
    stats
}

/// Names of the running statistics that a training forward changed.
fn changed_by_training_forward(freeze_backbone_bn: bool, prefix: &str) -> (usize, usize) {
    let vs = VarStore::new(Device::Cpu);
    let cfg = Config {
        freeze_backbone_bn,
        ..tiny(ModelKind::Fgstp)
    };
    let model = Fgstp::new(&vs.root(), &cfg).unwrap();
    let before = running_stats(&vs, prefix);
    let x = frames(2, SIZE, 3);
    tch::no_grad(|| model.forward_t(refs(&x), true)).unwrap();
    let after = running_stats(&vs, prefix);
    let changed = before
        .iter()
        .zip(&after)
        .filter(|((_, a), (_, b))| !a.equal(b))
        .count();
    (changed, before.len())
}

#[test]
fn frozen_backbone_batchnorm_keeps_its_running_statistics() {
    let (changed, total) = changed_by_training_forward(true, "backbone.");
    assert_eq!(
        changed, 0,
        "{changed} of {total} backbone BatchNorm statistics moved although frozen"
    );
    // The temporal modules' BatchNorms train either way.
    let (changed, total) = changed_by_training_forward(true, "ctc.");
    assert_eq!(changed, total);
    let (changed, total) = changed_by_training_forward(true, "fsp1.");
    assert_eq!(changed, total);
}

#[test]
fn unfrozen_backbone_batchnorm_updates_like_the_reference() {
    let (changed, total) = changed_by_training_forward(false, "backbone.");
    assert_eq!(
        changed, total,
        "only {changed} of {total} backbone BatchNorm statistics moved"
    );
}

#[test]
fn frozen_batchnorm_means_eval_statistics_in_the_backbone() {
    // With the backbone frozen, the encoder's training-mode features equal its eval features.
    let vs = VarStore::new(Device::Cpu);
    let model = Fgstp::new(&vs.root(), &tiny(ModelKind::Fgstp)).unwrap();
    let x = frames(2, SIZE, 4);
    let train = tch::no_grad(|| model.encode(&x[0], true)).unwrap();
    let eval = tch::no_grad(|| model.encode(&x[0], false)).unwrap();
    for (a, b) in train.iter().zip(&eval) {
        assert!(a.equal(b));
    }
}

/// The nine maps of one set of weights, computed without and with `joint_batches`, in
/// training mode or inference.
fn maps_without_and_with_joint_batches(
    frames: [&Tensor; 3],
    train: bool,
) -> (Vec<Tensor>, Vec<Tensor>) {
    let cfg = |joint_batches: bool| Config {
        joint_batches,
        freeze_backbone_bn: false,
        ..tiny(ModelKind::Fgstp)
    };
    let vs = VarStore::new(Device::Cpu);
    let per_call = Fgstp::new(&vs.root(), &cfg(false)).unwrap();
    let mut joint_vs = VarStore::new(Device::Cpu);
    let joint = Fgstp::new(&joint_vs.root(), &cfg(true)).unwrap();
    // The same weights (and running statistics) in both.
    joint_vs.copy(&vs).unwrap();
    let maps = |model: &Fgstp| {
        let out = tch::no_grad(|| model.forward_t(frames, train)).unwrap();
        out.maps().into_iter().map(Tensor::copy).collect::<Vec<_>>()
    };
    (maps(&per_call), maps(&joint))
}

fn largest_difference(a: &[Tensor], b: &[Tensor]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs().max().double_value(&[]))
        .fold(0.0, f64::max)
}

#[test]
fn joint_batches_share_batch_statistics_over_frames_and_pairs() {
    // Three copies of the same frames: the joint batch's statistics are those of one copy, so
    // the joint order computes what the per-frame order does — sample by sample (batch 2).
    let x = frames(2, SIZE, 12);
    let (per_call, joint) = maps_without_and_with_joint_batches([&x[0], &x[0], &x[0]], true);
    let diff = largest_difference(&per_call, &joint);
    assert!(
        diff < 1e-4,
        "identical frames: joint order differs by {diff}"
    );
    // Three different frames: the statistics now mix frames (and pairs), so the maps differ.
    let (per_call, joint) = maps_without_and_with_joint_batches(refs(&x), true);
    let diff = largest_difference(&per_call, &joint);
    assert!(
        diff > 1e-3,
        "different frames: joint order changed nothing ({diff})"
    );
}

#[test]
fn joint_batches_leave_inference_unchanged() {
    let x = frames(2, SIZE, 13);
    let (per_call, joint) = maps_without_and_with_joint_batches(refs(&x), false);
    for (a, b) in per_call.iter().zip(&joint) {
        assert!(a.equal(b), "inference moved with joint_batches");
    }
}

#[test]
fn single_frame_baseline_runs_with_the_backbone_only() {
    let vs = VarStore::new(Device::Cpu);
    let model = Model::new(&vs.root(), &tiny(ModelKind::SinetV2)).unwrap();
    assert!(vs.variables().keys().all(|k| k.starts_with("backbone.")));
    let x = frames(2, SIZE, 5);
    let out = tch::no_grad(|| model.forward_t(&[&x[0]], false)).unwrap();
    assert_eq!(out.maps().len(), 4);
    assert_eq!(out.prediction().size(), [2, 1, SIZE, SIZE]);
    let err = model
        .forward_t(&[&x[0], &x[1], &x[2]], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("takes 1 frame"), "{err}");
    // Any input size that is a multiple of 32 works: the correlation pools do not apply.
    let small = Tensor::randn([1, 3, 32, 32], (Kind::Float, Device::Cpu));
    assert!(tch::no_grad(|| model.forward_t(&[&small], false)).is_ok());
}

#[test]
fn inputs_too_small_for_the_pools_are_a_clear_error() {
    let vs = VarStore::new(Device::Cpu);
    let cfg = Config {
        backbone: PvtV2Variant::B0,
        ..Config::default()
    }; // pools 2, 4, 8
    assert_eq!(cfg.min_input_size(), 256);
    let model = Fgstp::new(&vs.root(), &cfg).unwrap();
    let x = frames(1, 224, 6);
    let err = tch::no_grad(|| model.forward_t(refs(&x), false))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("224×224") && err.contains("256×256") && err.contains("pool"),
        "{err}"
    );
    let err = model.encode(&x[0], false).unwrap_err().to_string();
    assert!(err.contains("too small"), "{err}");
}

#[test]
fn malformed_inputs_are_clear_errors() {
    let vs = VarStore::new(Device::Cpu);
    let model = Fgstp::new(&vs.root(), &tiny(ModelKind::Fgstp)).unwrap();
    let err_of = |x: &[Tensor]| {
        tch::no_grad(|| model.forward_t(refs(x), false))
            .unwrap_err()
            .to_string()
    };

    let err = err_of(&frames(1, 80, 7));
    assert!(err.contains("multiples of 32"), "{err}");

    let mut x = frames(1, SIZE, 8);
    x[2] = Tensor::randn([1, 3, 96, 96], (Kind::Float, Device::Cpu));
    let err = err_of(&x);
    assert!(
        err.contains("frame 2") && err.contains("must match"),
        "{err}"
    );

    let mut x = frames(1, SIZE, 9);
    x[1] = Tensor::randn([1, 1, SIZE, SIZE], (Kind::Float, Device::Cpu));
    assert!(err_of(&x).contains("[batch, 3, height, width]"));

    let mut x = frames(1, SIZE, 10);
    x[0] = x[0].to_kind(Kind::Double);
    assert!(err_of(&x).contains("dtype"));

    let f = model.encode(&frames(1, SIZE, 11)[0], false).unwrap();
    let g = model.encode(&frames(1, 2 * SIZE, 12)[0], false).unwrap();
    let err = model
        .forward_features(&f, &g, &f, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("differ in shape"), "{err}");
    let [a, b, c] = &f;
    let narrowed = [a.narrow(1, 0, 16), b.narrow(1, 0, 16), c.narrow(1, 0, 16)];
    let err = model
        .forward_features(&narrowed, &narrowed, &narrowed, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Fgstp::encode gives [B, 32, H/8, W/8]"),
        "{err}"
    );
    let doubles = f.each_ref().map(|t| t.to_kind(Kind::Double));
    let err = model
        .forward_features(&doubles, &doubles, &doubles, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("Double"), "{err}");
}

#[test]
fn every_backbone_variant_builds_with_its_stage_widths() {
    for variant in PvtV2Variant::ALL {
        let cfg = variant.config();
        let vs = VarStore::new(Device::Cpu);
        let encoder = fgstp_model::nn::backbone::Encoder::new(&vs.root(), variant, 32);
        let vars = vs.variables();
        let blocks = |stage: usize| {
            (0..)
                .take_while(|j| {
                    vars.contains_key(&format!("pvtv2_en.block{stage}.{j}.norm1.weight"))
                })
                .count()
        };
        assert_eq!(
            [blocks(1), blocks(2), blocks(3), blocks(4)],
            cfg.depths,
            "{variant}"
        );
        assert_eq!(
            vars["rfb2_1.conv_res.conv.weight"].size(),
            [32, cfg.embed_dims[1], 1, 1],
            "{variant}"
        );
        assert_eq!(
            vars["rfb4_1.conv_res.conv.weight"].size(),
            [32, cfg.embed_dims[3], 1, 1],
            "{variant}"
        );
        let hidden = vars["pvtv2_en.block1.0.mlp.fc1.weight"].size()[0];
        assert_eq!(hidden, cfg.embed_dims[0] * cfg.mlp_ratios[0], "{variant}");
        if variant == PvtV2Variant::B0 {
            let x = Tensor::randn([1, 3, 64, 64], (Kind::Float, Device::Cpu));
            let feats = tch::no_grad(|| encoder.forward_t(&x, false));
            let sizes: Vec<_> = feats.iter().map(|f| f.size()).collect();
            assert_eq!(
                sizes,
                [vec![1, 32, 8, 8], vec![1, 32, 4, 4], vec![1, 32, 2, 2]]
            );
        }
    }
}

fn std_of(t: &Tensor) -> f64 {
    t.std(true).double_value(&[])
}

#[test]
fn parameters_start_as_the_reference_initialises_them() {
    tch::manual_seed(13);
    let vs = VarStore::new(Device::Cpu);
    let _model = Fgstp::new(&vs.root(), &tiny(ModelKind::Fgstp)).unwrap();
    let v = vs.variables();
    let close = |a: f64, b: f64, tol: f64| (a - b).abs() <= tol * b;
    let all = |t: &Tensor, value: f64| t.eq(value).all().int64_value(&[]) == 1;

    // PVTv2 Linear: trunc-normal std 0.02, zero bias.
    let kv = &v["backbone.encoder.pvtv2_en.block3.0.attn.kv.weight"]; // [320, 160]
    assert!(close(std_of(kv), 0.02, 0.05), "{}", std_of(kv));
    assert!(all(
        &v["backbone.encoder.pvtv2_en.block3.0.attn.kv.bias"],
        0.0
    ));
    // PVTv2 conv: normal(0, sqrt(2 / fan_out)), fan_out = k*k*out/groups; zero bias.
    let proj = &v["backbone.encoder.pvtv2_en.patch_embed2.proj.weight"]; // [64, 32, 3, 3]
    assert!(
        close(std_of(proj), (2.0f64 / (9.0 * 64.0)).sqrt(), 0.05),
        "{}",
        std_of(proj)
    );
    let dw = &v["backbone.encoder.pvtv2_en.block1.0.mlp.dwconv.dwconv.weight"]; // groups = 256
    assert!(
        close(std_of(dw), (2.0f64 / 9.0).sqrt(), 0.05),
        "{}",
        std_of(dw)
    );
    assert!(all(
        &v["backbone.encoder.pvtv2_en.block1.0.attn.sr.bias"],
        0.0
    ));
    // LayerNorm 1 / 0; BatchNorm 1 / 0 with running 0 / 1.
    assert!(all(&v["backbone.encoder.pvtv2_en.norm4.weight"], 1.0));
    assert!(all(
        &v["backbone.encoder.pvtv2_en.block2.1.norm2.bias"],
        0.0
    ));
    assert!(all(&v["fsp2.expand_conv.bn.weight"], 1.0));
    assert!(all(&v["fsp2.expand_conv.bn.running_var"], 1.0));
    // PyTorch's default conv init: uniform(±1/sqrt(fan_in)) for weight and bias.
    let fusion = &v["fusion_conv.1.weight"]; // [32, 32, 3, 3], fan_in 288
    let bound = 1.0 / 288f64.sqrt();
    assert!(fusion.abs().max().double_value(&[]) <= bound);
    assert!(
        close(std_of(fusion), bound / 3f64.sqrt(), 0.05),
        "{}",
        std_of(fusion)
    );
    assert!(v["fusion_conv.1.bias"].abs().max().double_value(&[]) <= bound);
    assert!(!all(&v["fusion_conv.1.bias"], 0.0));
    // The correlation blocks' W is zero: each non-local block starts as the identity.
    for i in 1..=3 {
        assert!(all(
            &v[&format!("ctc.nl_layer{i}.nonlocals.0.W.weight")],
            0.0
        ));
        assert!(all(&v[&format!("ctc.nl_layer{i}.nonlocals.0.W.bias")], 0.0));
    }
}

#[test]
fn config_defaults_are_the_reference_and_unknown_fields_are_rejected() {
    let cfg: Config = serde_json::from_str("{}").unwrap();
    assert_eq!(cfg, Config::default());
    assert_eq!(cfg.kind, ModelKind::Fgstp);
    assert_eq!(cfg.backbone, PvtV2Variant::B5);
    assert_eq!(
        (cfg.channel, cfg.correlation_pools, cfg.fsp_groups),
        (32, [2, 4, 8], 6)
    );
    assert!(cfg.freeze_backbone_bn);
    assert_eq!(cfg.min_input_size(), 256);

    let cfg: Config = serde_json::from_str(r#"{"kind": "sinet-v2", "backbone": "b2"}"#).unwrap();
    assert_eq!(
        (cfg.kind, cfg.backbone),
        (ModelKind::SinetV2, PvtV2Variant::B2)
    );
    let err = serde_json::from_str::<Config>(r#"{"hum_groups": 6}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("hum_groups"), "{err}");
    assert!(serde_json::from_str::<Config>(r#"{"backbone": "b6"}"#).is_err());

    let bad = Config {
        channel: 20,
        ..Config::default()
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("multiple of 8"));
    let bad = Config {
        fsp_groups: 1,
        ..Config::default()
    };
    assert!(Fgstp::new(&VarStore::new(Device::Cpu).root(), &bad).is_err());
    let sinet = Config {
        kind: ModelKind::SinetV2,
        ..Config::default()
    };
    assert!(Fgstp::new(&VarStore::new(Device::Cpu).root(), &sinet).is_err());
    assert!(SinetV2::new(&VarStore::new(Device::Cpu).root(), &Config::default()).is_err());
    // Joint batches are frames and pairs: a single-frame model has none.
    let joint_sinet = Config {
        kind: ModelKind::SinetV2,
        joint_batches: true,
        ..Config::default()
    };
    let err = joint_sinet.validate().unwrap_err().to_string();
    assert!(
        err.contains("model.joint_batches") && err.contains("remove it"),
        "{err}"
    );
    assert!(Config {
        kind: ModelKind::SltNet,
        ..joint_sinet
    }
    .validate()
    .is_ok());
}

#[test]
fn devices_parse_and_resolve_with_clear_errors() {
    assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
    assert_eq!("CUDA".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
    assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
    assert_eq!(" auto ".parse::<DeviceSpec>().unwrap(), DeviceSpec::Auto);
    let err = "cuda:x".parse::<DeviceSpec>().unwrap_err().to_string();
    assert!(err.contains("cuda:0"), "{err}");
    let err = "tpu".parse::<DeviceSpec>().unwrap_err().to_string();
    assert!(err.contains("cpu, cuda, cuda:N"), "{err}");
    assert_eq!(DeviceSpec::Cuda(2).to_string(), "cuda:2");

    assert_eq!(DeviceSpec::Auto.resolve_with(0).unwrap(), Device::Cpu);
    assert_eq!(DeviceSpec::Auto.resolve_with(2).unwrap(), Device::Cuda(0));
    assert_eq!(
        DeviceSpec::Cuda(1).resolve_with(2).unwrap(),
        Device::Cuda(1)
    );
    let err = DeviceSpec::Cuda(2).resolve_with(2).unwrap_err().to_string();
    assert!(err.contains("only 2 GPU"), "{err}");
    let err = DeviceSpec::Cuda(0).resolve_with(0).unwrap_err().to_string();
    assert!(
        err.contains("no CUDA GPU") && err.contains("train.device=\"cpu\""),
        "{err}"
    );
    assert_eq!(DeviceSpec::Cpu.resolve().unwrap(), Device::Cpu);
    if !tch::Cuda::is_available() {
        assert_eq!(DeviceSpec::Auto.resolve().unwrap(), Device::Cpu);
        assert!(DeviceSpec::Cuda(0).resolve().is_err());
    }

    // From a configuration file.
    #[derive(serde::Deserialize)]
    struct Run {
        device: DeviceSpec,
    }
    let run: Run = serde_json::from_str(r#"{"device": "cuda:1"}"#).unwrap();
    assert_eq!(run.device, DeviceSpec::Cuda(1));
    assert!(serde_json::from_str::<Run>(r#"{"device": "gpu:1"}"#).is_err());
}

#[test]
fn model_follows_the_var_store_device_and_rejects_other_devices() {
    let vs = VarStore::new(Device::Cpu);
    let model = Fgstp::new(&vs.root(), &tiny(ModelKind::Fgstp)).unwrap();
    let x = frames(1, SIZE, 14);
    let out = tch::no_grad(|| model.forward_t(refs(&x), false)).unwrap();
    assert!(out.maps().iter().all(|m| m.device() == Device::Cpu));
    if tch::Cuda::is_available() {
        let mut vs = vs;
        vs.set_device(Device::Cuda(0));
        let err = tch::no_grad(|| model.forward_t(refs(&x), false))
            .unwrap_err()
            .to_string();
        assert!(err.contains("move the input"), "{err}");
        let x: Vec<Tensor> = x.iter().map(|t| t.to_device(Device::Cuda(0))).collect();
        let out = tch::no_grad(|| model.forward_t(refs(&x), false)).unwrap();
        assert!(out.maps().iter().all(|m| m.device() == Device::Cuda(0)));
    }
}

/// bf16 autocast is another precision, not a parity mode: the same weights give probabilities
/// near the float32 ones, the maps come out in bfloat16, and streaming works under it.
#[test]
fn bf16_autocast_stays_near_float32_and_streams() {
    let mut vs32 = VarStore::new(Device::Cpu);
    let fp32 = Fgstp::new(&vs32.root(), &tiny(ModelKind::Fgstp)).unwrap();
    let mut vs16 = VarStore::new(Device::Cpu);
    let cfg = Config {
        precision: fgstp_model::Precision::Bf16,
        ..tiny(ModelKind::Fgstp)
    };
    let bf16 = Fgstp::new(&vs16.root(), &cfg).unwrap();
    vs16.copy(&vs32).unwrap();
    let _ = &mut vs32;
    // The smallest input the tiny configuration takes: bf16 has no fast kernels on CPUs
    // without AVX512-BF16/AMX.
    let x = frames(1, 32, 21);
    let reference = tch::no_grad(|| fp32.forward_t(refs(&x), false)).unwrap();
    let out = cfg
        .precision
        .run(Device::Cpu, || {
            tch::no_grad(|| bf16.forward_t(refs(&x), false))
        })
        .unwrap()
        .unwrap();
    assert_eq!(out.fused.kind(), Kind::BFloat16, "autocast was on");
    let diff = (out.fused.to_kind(Kind::Float).sigmoid() - reference.fused.sigmoid())
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff < 0.05, "bf16 probabilities differ by {diff}");
    let streamed = cfg
        .precision
        .run(Device::Cpu, || {
            tch::no_grad(|| {
                let [a, b, c] = refs(&x).map(|f| bf16.encode(f, false).unwrap());
                bf16.forward_features(&a, &b, &c, false)
            })
        })
        .unwrap()
        .unwrap();
    assert!(streamed.fused.equal(&out.fused), "streaming under bf16");
}
