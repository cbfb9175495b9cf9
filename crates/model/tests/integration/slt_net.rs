//! Parity with the authors' SLT-Net (XuelianCheng/SLT-Net), short-term and long-term models.
//!
//! The fixture was produced by running the reference itself
//! (scripts/fixtures/make_slt_net_fixture.py): both models with a small PVTv2 (the reference's own
//! class; widths 16/32/80/128, depths 2/1/1/1), every weight and BatchNorm statistic randomised,
//! their `torch.save` checkpoints (the long-term one through `nn.DataParallel`, as the reference
//! saves it), the inputs and every output (every map at every third row and column). The long-term
//! model's NS ops ran through the reference's serial C++ implementation (`reference.cpp`, compiled
//! for the CPU). Regenerate with
//!   scripts/pytools scripts/fixtures/make_slt_net_fixture.py <your SLT-Net checkout> \
//!       crates/model/tests/fixtures/slt_net --flops

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use fgstp_model::checkpoint::{
    load_into, read_safetensors_metadata, LoadOptions, LoadReport, ModelLayout, SltNetStage,
    StateDict,
};
use fgstp_model::nn::ns_block::{aggregation, relevance, DILATIONS, RADIUS};
use fgstp_model::{Config, ModelKind, PvtV2Config, PvtV2Variant, SltNet, SltNetLong};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Max abs difference allowed between our outputs and the reference's (float32 on CPU).
const TOLERANCE: f64 = 1e-4;

/// The committed fixture, or (for the full-size check) one the script wrote elsewhere:
/// `SLT_NET_FIXTURE_DIR=/tmp/b5 SLT_NET_BACKBONE=b5 cargo test -p fgstp-model --test integration
/// -- slt_net::`.
fn fixture(name: &str) -> PathBuf {
    match std::env::var_os("SLT_NET_FIXTURE_DIR") {
        Some(dir) => PathBuf::from(dir).join(name),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/slt_net")
            .join(name),
    }
}

/// `tiny` (the committed fixture) or a released variant `b0`..`b5`.
fn backbone() -> String {
    std::env::var("SLT_NET_BACKBONE").unwrap_or_else(|_| "tiny".into())
}

/// The fixture's file `<stem>_<backbone><rest>`.
fn fixture_file(stem: &str, rest: &str) -> PathBuf {
    fixture(&format!("{stem}_{}{rest}", backbone()))
}

/// The fixture's encoder: for `tiny`, the reference's PyramidVisionTransformerV2 at a small size.
fn tiny_pvt() -> PvtV2Config {
    let backbone = backbone();
    if let Some(variant) = PvtV2Variant::ALL.iter().find(|v| v.name() == backbone) {
        return variant.config();
    }
    assert_eq!(backbone, "tiny", "SLT_NET_BACKBONE: tiny or b0..b5");
    PvtV2Config {
        embed_dims: [16, 32, 80, 128],
        num_heads: [1, 2, 5, 8],
        mlp_ratios: [8, 8, 4, 4],
        depths: [2, 1, 1, 1],
        sr_ratios: [8, 4, 2, 1],
    }
}

fn config(kind: ModelKind) -> Config {
    Config {
        kind,
        ..Config::default()
    }
}

fn io() -> BTreeMap<String, Tensor> {
    let path = fixture_file("slt_net", "_io.safetensors");
    Tensor::read_safetensors(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .into_iter()
        .collect()
}

fn metadata() -> HashMap<String, String> {
    read_safetensors_metadata(&fixture_file("slt_net", "_io.safetensors")).unwrap()
}

/// `slt_net` or `slt_net_long`: that model's checkpoint in the fixture.
fn read_checkpoint(stem: &str) -> StateDict {
    let path = fixture_file(stem, ".pth");
    StateDict::read(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

fn load_strictly(vs: &mut VarStore, sd: &StateDict) -> LoadReport {
    let report = load_into(vs, sd, &LoadOptions::strict()).expect("strict load");
    assert!(
        report.missing.is_empty() && report.skipped.is_empty() && report.dropped.is_empty(),
        "{}",
        report.details()
    );
    report
}

/// The maps are stored at every third row and column (scripts/fixtures/make_slt_net_fixture.py,
/// GRID).
fn grid(t: &Tensor) -> Tensor {
    let size = t.size();
    let (h, w) = (size[size.len() - 2], size[size.len() - 1]);
    let rows = Tensor::arange_start_step(0, h, 3, (Kind::Int64, Device::Cpu));
    let cols = Tensor::arange_start_step(0, w, 3, (Kind::Int64, Device::Cpu));
    t.index_select(-2, &rows).index_select(-1, &cols)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size(), "shape");
    (a - b).abs().max().double_value(&[])
}

/// Compares each (name, our map) with the reference's map of that name at the stored grid.
fn assert_all_close(ours: &[(String, Tensor)], io: &BTreeMap<String, Tensor>) -> f64 {
    let mut report = Vec::new();
    let mut worst = 0f64;
    for (name, ours) in ours {
        let diff = max_abs_diff(&grid(ours), &io[name]);
        worst = worst.max(diff);
        report.push(format!("{name}: {diff:.2e}"));
    }
    println!("max abs diff per output: {}", report.join(", "));
    assert!(
        worst <= TOLERANCE,
        "outputs differ from the reference by up to {worst:.3e} (> {TOLERANCE:e}): {report:?}"
    );
    worst
}

/// uint8 RGB → the reference's `ToTensor()` + `Normalize(ImageNet mean, std)`.
fn imagenet_normalised(frame: &Tensor) -> Tensor {
    let mean = Tensor::from_slice(&[0.485f32, 0.456, 0.406]).view([1, 3, 1, 1]);
    let std = Tensor::from_slice(&[0.229f32, 0.224, 0.225]).view([1, 3, 1, 1]);
    (frame.to_kind(Kind::Float) / 255.0 - mean) / std
}

fn short_term_model(vs: &VarStore) -> SltNet {
    SltNet::with_encoder(&vs.root(), &config(ModelKind::SltNet), &tiny_pvt()).unwrap()
}

fn long_term_model(vs: &VarStore) -> SltNetLong {
    SltNetLong::with_encoder(&vs.root(), &config(ModelKind::SltNetLong), &tiny_pvt()).unwrap()
}

#[test]
fn short_term_model_matches_the_reference_outputs() {
    let io = io();
    let mut vs = VarStore::new(Device::Cpu);
    let model = short_term_model(&vs);
    let sd = read_checkpoint("slt_net");
    assert!(sd.source.stripped_prefix.is_none() && sd.source.nesting.is_none());
    load_strictly(&mut vs, &sd);

    let frames: Vec<Tensor> = (0..3)
        .map(|i| imagenet_normalised(&io[&format!("short.frame.{i}")]))
        .collect();
    let frames = [&frames[0], &frames[1], &frames[2]];
    let out = tch::no_grad(|| model.forward_t(frames, false)).unwrap();
    let mut ours: Vec<(String, Tensor)> = Vec::new();
    for (branch, maps) in [("out12", &out.pair_t1), ("out13", &out.pair_t2)] {
        for (i, map) in maps.iter().enumerate() {
            ours.push((format!("short.{branch}.{i}"), map.shallow_clone()));
        }
    }
    ours.push(("short.fused".into(), out.fused.shallow_clone()));
    assert_eq!(out.maps().len(), 9);
    assert_all_close(&ours, &io);

    // Each frame encoded once (as in a video) gives the very same outputs.
    let streamed = tch::no_grad(|| {
        let [f_t, f_t1, f_t2] = frames.map(|f| model.encode(f, false).unwrap());
        model.forward_features(&f_t, &f_t1, &f_t2, false)
    })
    .unwrap();
    for (a, b) in streamed.maps().into_iter().zip(out.maps()) {
        assert!(a.equal(b), "forward from encoded features differs");
    }
}

#[test]
fn long_term_model_matches_the_reference_outputs() {
    let io = io();
    let meta = metadata();
    assert_eq!(
        meta["ns_backend"], "reference.cpp",
        "fixture made without reference.cpp"
    );
    let mut vs = VarStore::new(Device::Cpu);
    let model = long_term_model(&vs);
    // Saved as the reference saves it, through nn.DataParallel.
    let sd = read_checkpoint("slt_net_long");
    assert_eq!(sd.source.stripped_prefix.as_deref(), Some("module."));
    load_strictly(&mut vs, &sd);

    let clip = io["long.clip"].to_kind(Kind::Float) / 255.0; // [1, 2, 4, 256, 448]
    let out = tch::no_grad(|| model.forward_t(&clip, false)).unwrap();
    assert_eq!(out.prediction().size(), [2, 1, 256, 448]);
    let ours: Vec<(String, Tensor)> = (0..4)
        .map(|i| (format!("long.out.{i}"), out.maps[i].shallow_clone()))
        .collect();
    assert_all_close(&ours, &io);

    // As the test script feeds a clip: [T, 1, 4, H, W], every frame a clip of its own.
    let frames = clip.transpose(0, 1).contiguous();
    let out = tch::no_grad(|| model.forward_t(&frames, false)).unwrap();
    let ours: Vec<(String, Tensor)> = (0..4)
        .map(|i| (format!("long.frames.out.{i}"), out.maps[i].shallow_clone()))
        .collect();
    assert_all_close(&ours, &io);
    println!(
        "how far the known NS mistakes would move long.out.3 here: {:?}",
        meta.iter()
            .filter(|(k, _)| k.starts_with("sensitivity."))
            .collect::<BTreeMap<_, _>>()
    );
}

#[test]
fn the_clip_layout_matters_and_frames_alone_do_not_see_each_other() {
    // Guards the fixture itself: the two ways of feeding the clip must differ (the NS blocks
    // relate frames), or the long-term parity above would not test the temporal part.
    let io = io();
    for i in [2, 3] {
        let diff = max_abs_diff(
            &io[&format!("long.out.{i}")],
            &io[&format!("long.frames.out.{i}")],
        );
        assert!(
            diff > 0.1,
            "clip vs per-frame map {i} differ by only {diff:e}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The NS ops against direct loops written from the kernels' description (sa.cu, reference.cpp).

/// A [B, T, C, H, W] tensor as nested-index accessor over f64 values.
struct Grid5 {
    data: Vec<f64>,
    dims: [usize; 5],
}

impl Grid5 {
    fn new(t: &Tensor) -> Self {
        let dims: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let data = Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        Self {
            data,
            dims: dims.try_into().expect("5-D"),
        }
    }

    fn at(&self, i: [usize; 5]) -> f64 {
        let [_, d1, d2, d3, d4] = self.dims;
        self.data[(((i[0] * d1 + i[1]) * d2 + i[2]) * d3 + i[3]) * d4 + i[4]]
    }
}

/// The neighbour of (h, w) at window offsets (i, j), or None off the map.
fn neighbour(
    h: usize,
    w: usize,
    i: usize,
    j: usize,
    dims: [usize; 2],
    r: i64,
    dil: i64,
) -> Option<(usize, usize)> {
    let hh = h as i64 + (i as i64 - r) * dil;
    let ww = w as i64 + (j as i64 - r) * dil;
    ((0..dims[0] as i64).contains(&hh) && (0..dims[1] as i64).contains(&ww))
        .then_some((hh as usize, ww as usize))
}

fn relevance_loop(query: &Tensor, key: &Tensor, r: i64, dil: i64) -> Tensor {
    let (q, k) = (Grid5::new(query), Grid5::new(key));
    let [b, t, c, h, w] = q.dims;
    let d = (2 * r + 1) as usize;
    let mut out = vec![0f64; b * t * t * d * d * h * w];
    for bi in 0..b {
        for ti in 0..t {
            for hi in 0..h {
                for wi in 0..w {
                    for s in 0..t {
                        for i in 0..d {
                            for j in 0..d {
                                let entry = s * d * d + i * d + j;
                                // Off the map: 0 (the kernels overwrite the -inf fill).
                                let value = match neighbour(hi, wi, i, j, [h, w], r, dil) {
                                    Some((hh, ww)) => (0..c)
                                        .map(|ci| {
                                            q.at([bi, ti, ci, hi, wi]) * k.at([bi, s, ci, hh, ww])
                                        })
                                        .sum(),
                                    None => 0.0,
                                };
                                out[((((bi * t + ti) * t * d * d) + entry) * h + hi) * w + wi] =
                                    value;
                            }
                        }
                    }
                }
            }
        }
    }
    let dims = [b, t, t * d * d, h, w].map(|x| x as i64);
    Tensor::from_slice(&out).view(dims).to_kind(Kind::Float)
}

fn aggregation_loop(weight: &Tensor, value: &Tensor, r: i64, dil: i64) -> Tensor {
    let (wt, v) = (Grid5::new(weight), Grid5::new(value));
    let [b, t, c, h, w] = v.dims;
    let d = (2 * r + 1) as usize;
    let mut out = vec![0f64; b * t * c * h * w];
    for bi in 0..b {
        for ti in 0..t {
            for ci in 0..c {
                for hi in 0..h {
                    for wi in 0..w {
                        let mut sum = 0.0;
                        for s in 0..t {
                            for i in 0..d {
                                for j in 0..d {
                                    if let Some((hh, ww)) = neighbour(hi, wi, i, j, [h, w], r, dil)
                                    {
                                        let entry = s * d * d + i * d + j;
                                        sum += wt.at([bi, ti, entry, hi, wi])
                                            * v.at([bi, s, ci, hh, ww]);
                                    }
                                }
                            }
                        }
                        out[(((bi * t + ti) * c + ci) * h + hi) * w + wi] = sum;
                    }
                }
            }
        }
    }
    let dims = [b, t, c, h, w].map(|x| x as i64);
    Tensor::from_slice(&out).view(dims).to_kind(Kind::Float)
}

#[test]
fn ns_ops_match_direct_loops_over_the_kernel_definition() {
    tch::manual_seed(7);
    let mut worst = 0f64;
    // Maps smaller than, equal to and larger than the windows: every border case.
    for (b, t, c, h, w) in [(1, 1, 3, 4, 5), (2, 2, 4, 9, 7), (1, 3, 8, 16, 28)] {
        for dilation in DILATIONS {
            // Values of the size the model sees (its queries are layer-normed, keys and values
            // smaller), so float32 rounding stays well below the tolerance.
            let shape = [b, t, c, h, w];
            let q = Tensor::randn(shape, (Kind::Float, Device::Cpu));
            let k = Tensor::randn(shape, (Kind::Float, Device::Cpu)) * 0.5;
            let v = Tensor::randn(shape, (Kind::Float, Device::Cpu)) * 0.5;
            let rel = relevance(&q, &k, RADIUS, dilation);
            let want = relevance_loop(&q, &k, RADIUS, dilation);
            worst = worst.max(max_abs_diff(&rel, &want));
            let agg = aggregation(&rel, &v, RADIUS, dilation);
            let want = aggregation_loop(&rel, &v, RADIUS, dilation);
            worst = worst.max(max_abs_diff(&agg, &want));
            // Off-map entries are exactly 0, never -inf.
            assert!(rel.isfinite().all().int64_value(&[]) == 1);
        }
    }
    println!("NS ops vs loops: max abs diff {worst:.2e}");
    assert!(worst < 1e-4, "{worst:e}");
}

#[test]
fn ns_ops_match_the_reference_cpp() {
    // ns.<i>.*: random tensors through the reference's own reference.cpp.
    let io = io();
    let meta = metadata();
    let mut worst = 0f64;
    for i in 0..3 {
        let get = |name: &str| &io[&format!("ns.{i}.{name}")];
        let dilation: i64 = meta[&format!("ns.{i}.dilation")].parse().unwrap();
        let rel = relevance(get("query"), get("key"), RADIUS, dilation);
        worst = worst.max(max_abs_diff(&rel, get("relevance")));
        let agg = aggregation(get("relevance"), get("value"), RADIUS, dilation);
        worst = worst.max(max_abs_diff(&agg, get("aggregation")));
    }
    println!("NS ops vs reference.cpp: max abs diff {worst:.2e}");
    assert!(worst <= TOLERANCE, "{worst:e}");
}

// ---------------------------------------------------------------------------------------------
// Input checks

#[test]
fn the_long_term_model_rejects_every_size_but_256_by_448() {
    let vs = VarStore::new(Device::Cpu);
    let model = long_term_model(&vs);
    for (h, w) in [(256, 256), (448, 256), (352, 352), (256, 480)] {
        let clip = Tensor::zeros([1, 1, 4, h, w], (Kind::Float, Device::Cpu));
        let err = model.forward_t(&clip, false).unwrap_err().to_string();
        assert!(
            err.contains("256×448") && err.contains(&format!("{h}×{w}")),
            "{err}"
        );
    }
    let err = model
        .forward_t(
            &Tensor::zeros([1, 1, 2, 256, 448], (Kind::Float, Device::Cpu)),
            false,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("2 channels"), "{err}");
    let err = model
        .forward_t(
            &Tensor::zeros([1, 4, 256, 448], (Kind::Float, Device::Cpu)),
            false,
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("[batch, frames, channels, 256, 448]"), "{err}");
    let cfg = config(ModelKind::SltNetLong);
    assert!(cfg.check_input_size(256, 448).is_ok());
    assert!(cfg.check_input_size(352, 352).is_err());
}

#[test]
fn the_long_term_model_takes_rgb_or_grey_clips_as_the_reference_does() {
    // 3 channels skip first_conv; 1 channel is repeated to 3. Same result as the equivalent input.
    let vs = VarStore::new(Device::Cpu);
    let model = long_term_model(&vs);
    tch::manual_seed(3);
    let grey = Tensor::rand([1, 2, 1, 256, 448], (Kind::Float, Device::Cpu));
    let a = tch::no_grad(|| model.forward_t(&grey, false)).unwrap();
    let b = tch::no_grad(|| model.forward_t(&grey.repeat([1, 1, 3, 1, 1]), false)).unwrap();
    assert!(a.maps[3].equal(&b.maps[3]));
    assert_eq!(a.maps[3].size(), [2, 1, 256, 448]);
}

#[test]
fn the_short_term_model_rejects_frames_too_small_for_its_correlation() {
    let vs = VarStore::new(Device::Cpu);
    let model = short_term_model(&vs);
    let frame = Tensor::zeros([1, 3, 224, 224], (Kind::Float, Device::Cpu));
    let err = model
        .forward_t([&frame, &frame, &frame], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("minimum is 256×256"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Checkpoint layouts

fn zip_entries(path: &Path) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().to_string(), data)
        })
        .collect()
}

fn pack_zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, data) in entries {
        zip.start_file(name, options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[test]
fn nested_and_data_parallel_checkpoints_load_strictly() {
    // torch.save({"state_dict": ..., "epoch": 1}), as training scripts save them: PyTorch's own
    // pickle of it with the plain checkpoint's storages (the fixture script checked that the rest
    // of that zip is byte for byte the plain one's).
    let nested_pickle = std::fs::read(fixture_file("slt_net", "_nested.data.pkl")).unwrap();
    let entries: Vec<(String, Vec<u8>)> = zip_entries(&fixture_file("slt_net", ".pth"))
        .into_iter()
        .map(|(name, data)| match name.ends_with("/data.pkl") {
            true => (name, nested_pickle.clone()),
            false => (name, data),
        })
        .collect();
    let sd = StateDict::from_bytes(&pack_zip(&entries)).unwrap();
    assert_eq!(sd.source.nesting.as_deref(), Some("state_dict"));
    assert_eq!(sd.source.ignored, ["epoch"]);
    let mut vs = VarStore::new(Device::Cpu);
    let _model = short_term_model(&vs);
    load_strictly(&mut vs, &sd);

    // The short-term checkpoint with a `module.` prefix, written by our own writer.
    let plain = read_checkpoint("slt_net");
    let prefixed: Vec<(String, Tensor)> = plain
        .iter()
        .map(|(k, t)| (format!("module.{k}"), t.shallow_clone()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("module.pth");
    StateDict::from_tensors(prefixed)
        .unwrap()
        .write(&path)
        .unwrap();
    let sd = StateDict::read(&path).unwrap();
    assert_eq!(sd.source.stripped_prefix.as_deref(), Some("module."));
    let mut vs2 = VarStore::new(Device::Cpu);
    let _model = short_term_model(&vs2);
    load_strictly(&mut vs2, &sd);
    for (name, t) in vs.variables() {
        assert!(t.equal(&vs2.variables()[&name]), "{name}");
    }
}

#[test]
fn a_short_term_checkpoint_initialises_the_long_term_backbone() {
    // train_video_long_term.py --short_pretrained: the keys both models have are copied.
    let mut vs = VarStore::new(Device::Cpu);
    let _model = long_term_model(&vs);
    let report = load_into(
        &mut vs,
        &read_checkpoint("slt_net"),
        &LoadOptions::partial(),
    )
    .unwrap();
    assert!(report
        .missing
        .iter()
        .all(|k| k.starts_with("nlnet.NSB_") || k.starts_with("first_conv.")));
    assert!(report
        .skipped
        .iter()
        .all(|k| k.starts_with("nlnet.nl_layer")
            || k.starts_with("nlnet.conv")
            || k.starts_with("fusion_conv.")));
    assert!(report.loaded.iter().all(|k| k.starts_with("backbone.")));
    assert!(!report.loaded.is_empty() && !report.missing.is_empty());
}

/// `name [d0, d1, ...]` per line, as the fixture script writes them.
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

fn keys_of(vs: &VarStore) -> BTreeMap<String, Vec<i64>> {
    vs.variables()
        .into_iter()
        .map(|(name, t)| (name, t.size()))
        .collect()
}

#[test]
fn variable_names_and_shapes_are_the_reference_state_dicts() {
    let b5 = |kind| Config {
        backbone: PvtV2Variant::B5,
        ..config(kind)
    };
    let vs = VarStore::new(Device::Cpu);
    let _m = short_term_model(&vs);
    assert_eq!(
        keys_of(&vs),
        reference_keys(&format!("slt_net_{}_keys.txt", backbone()))
    );
    let vs = VarStore::new(Device::Cpu);
    let _m = long_term_model(&vs);
    assert_eq!(
        keys_of(&vs),
        reference_keys(&format!("slt_net_long_{}_keys.txt", backbone()))
    );
    let vs = VarStore::new(Device::Cpu);
    let _m = fgstp_model::Model::new(&vs.root(), &b5(ModelKind::SltNet)).unwrap();
    assert_eq!(keys_of(&vs), reference_keys("slt_net_b5_keys.txt"));
    let vs = VarStore::new(Device::Cpu);
    let _m = fgstp_model::Model::new(&vs.root(), &b5(ModelKind::SltNetLong)).unwrap();
    assert_eq!(keys_of(&vs), reference_keys("slt_net_long_b5_keys.txt"));
}

#[test]
fn slt_net_layouts_and_their_encoder_are_detected() {
    let detected = read_checkpoint("slt_net").detect_layout();
    assert_eq!(
        detected.layout,
        ModelLayout::SltNet {
            stage: SltNetStage::ShortTerm
        }
    );
    let pvt = detected.pvt.unwrap();
    let widths = tiny_pvt().embed_dims.map(|w| w as usize);
    assert_eq!(pvt.widths, widths);
    let variant = (backbone() != "tiny").then(backbone);
    assert_eq!(pvt.variant.map(str::to_string), variant);
    let detected = read_checkpoint("slt_net_long").detect_layout();
    assert_eq!(
        detected.layout,
        ModelLayout::SltNet {
            stage: SltNetStage::LongTerm
        }
    );
    assert!(detected.describe().contains("slt-net-long"));
    // The b5 models, from the reference's key names and shapes.
    for (file, stage) in [
        ("slt_net_b5_keys.txt", SltNetStage::ShortTerm),
        ("slt_net_long_b5_keys.txt", SltNetStage::LongTerm),
    ] {
        let keys = reference_keys(file);
        let detected = fgstp_model::checkpoint::key_layout::detect(
            keys.iter().map(|(k, s)| (k.as_str(), s.as_slice())),
        );
        assert_eq!(detected.layout, ModelLayout::SltNet { stage }, "{file}");
        assert_eq!(detected.pvt.and_then(|p| p.variant), Some("b5"), "{file}");
        // Without the temporal modules: SLT-Net's single-frame network (its COD10K pretraining).
        let image = fgstp_model::checkpoint::key_layout::detect(
            keys.iter()
                .filter(|(k, _)| k.starts_with("backbone."))
                .map(|(k, s)| (k.as_str(), s.as_slice())),
        );
        assert_eq!(
            image.layout,
            ModelLayout::SltNet {
                stage: SltNetStage::Image
            }
        );
    }
}
