//! Checkpoint reading against files written by real `torch.save`
//! (scripts/fixtures/make_checkpoint_fixtures.py), whose expected tensors PyTorch itself wrote to
//! companion `.expected.safetensors` files.

use std::path::{Path, PathBuf};

use fgstp_model::checkpoint::{load_into, Format, LoadMode, LoadOptions, StateDict};
use tch::{nn::VarStore, Device, Kind, Tensor};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/checkpoint")
        .join(name)
}

fn read(name: &str) -> StateDict {
    StateDict::read(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

fn expected(name: &str) -> StateDict {
    read(&format!("{name}.expected.safetensors"))
}

/// The tensor's raw bytes, so comparisons are bit-exact for every dtype (float8 included).
fn bytes(t: &Tensor) -> Vec<u8> {
    let t = t.contiguous();
    let numel = t.numel();
    let mut out = vec![0u8; numel * t.kind().elt_size_in_bytes()];
    t.copy_data_u8(&mut out, numel);
    out
}

fn assert_same(name: &str, got: &StateDict, want: &StateDict) {
    let mut got_keys: Vec<&str> = got.keys().collect();
    let mut want_keys: Vec<&str> = want.keys().collect();
    got_keys.sort();
    want_keys.sort();
    assert_eq!(got_keys, want_keys, "{name}: keys");
    for key in want_keys {
        let (g, w) = (got.get(key).unwrap(), want.get(key).unwrap());
        assert_eq!(g.kind(), w.kind(), "{name}: {key} dtype");
        assert_eq!(g.size(), w.size(), "{name}: {key} shape");
        assert_eq!(bytes(g), bytes(w), "{name}: {key} values");
    }
}

/// PyTorch's `SmallNet().state_dict()` order (parameters, then buffers, module by module).
const SMALL_NET_KEYS: [&str; 9] = [
    "conv.weight",
    "conv.bias",
    "bn.weight",
    "bn.bias",
    "bn.running_mean",
    "bn.running_var",
    "bn.num_batches_tracked",
    "fc.weight",
    "fc.bias",
];

#[test]
fn every_torch_save_fixture_reads_to_the_values_pytorch_wrote() {
    for name in [
        "state_dict.pth",
        "plain_dict.pt",
        "nested.pth",
        "dataparallel.pth",
        "whole_module.pth",
        "legacy.pth",
        "protocol4.pth",
        "big_endian.pth",
        "dtypes.pth",
        "views.pth",
        "pvt_v2_official_tiny.pth",
    ] {
        assert_same(name, &read(name), &expected(name));
    }
}

#[test]
fn state_dict_keys_keep_file_order_and_the_format_is_told_by_content() {
    for (name, format) in [
        ("state_dict.pth", Format::TorchZip),
        ("plain_dict.pt", Format::TorchZip),
        ("whole_module.pth", Format::TorchZip),
        ("legacy.pth", Format::TorchLegacy),
        ("protocol4.pth", Format::TorchZip),
        ("big_endian.pth", Format::TorchZip),
    ] {
        let sd = read(name);
        assert_eq!(sd.keys().collect::<Vec<_>>(), SMALL_NET_KEYS, "{name}");
        assert_eq!(sd.source.format, Some(format), "{name}");
    }
    let counter = read("state_dict.pth");
    let counter = counter.get("bn.num_batches_tracked").unwrap();
    assert_eq!(counter.kind(), Kind::Int64);
    assert_eq!(counter.int64_value(&[]), 7);

    // A safetensors file renamed to .pth is still read as safetensors.
    let dir = tempdir();
    let renamed = dir.path().join("really_safetensors.pth");
    std::fs::copy(fixture("state_dict.pth.expected.safetensors"), &renamed).unwrap();
    assert_eq!(
        StateDict::read(&renamed).unwrap().source.format,
        Some(Format::Safetensors)
    );
}

#[test]
fn nested_checkpoints_are_unwrapped_and_their_other_entries_reported() {
    let sd = read("nested.pth");
    assert_eq!(sd.source.nesting.as_deref(), Some("state_dict"));
    for other in ["epoch", "optimizer", "best_jaccard", "args"] {
        assert!(
            sd.source.ignored.iter().any(|k| k == other),
            "{other}: {:?}",
            sd.source.ignored
        );
    }
    // The optimizer's own tensors (Adam moments) must not leak into the state dict.
    assert_eq!(sd.len(), SMALL_NET_KEYS.len());
}

#[test]
fn data_parallel_prefix_is_stripped() {
    let sd = read("dataparallel.pth");
    assert_eq!(sd.source.stripped_prefix.as_deref(), Some("module."));
    assert_eq!(sd.keys().collect::<Vec<_>>(), SMALL_NET_KEYS);
}

#[test]
fn strided_views_and_shared_storages_read_as_pytorch_sees_them() {
    let sd = read("views.pth");
    let want = expected("views.pth");
    for key in ["transposed", "rows", "cols", "strided", "broadcast", "tail"] {
        assert_eq!(
            bytes(sd.get(key).unwrap()),
            bytes(want.get(key).unwrap()),
            "{key}"
        );
    }
    // The transposed view of arange(24).reshape(4, 6): row 1 is 1, 7, 13, 19.
    let t = sd.get("transposed").unwrap();
    assert_eq!(t.size(), [6, 4]);
    assert_eq!(
        Vec::<f32>::try_from(t.get(1)).unwrap(),
        [1.0, 7.0, 13.0, 19.0]
    );
}

#[test]
fn every_dtype_keeps_its_kind() {
    let sd = read("dtypes.pth");
    for (key, kind) in [
        ("f32", Kind::Float),
        ("f16", Kind::Half),
        ("bf16", Kind::BFloat16),
        ("f64", Kind::Double),
        ("i64", Kind::Int64),
        ("i32", Kind::Int),
        ("i16", Kind::Int16),
        ("i8", Kind::Int8),
        ("u8", Kind::Uint8),
        ("bool", Kind::Bool),
        ("f8_e4m3", Kind::Float8e4m3fn),
    ] {
        assert_eq!(sd.get(key).unwrap().kind(), kind, "{key}");
    }
    assert_eq!(sd.get("scalar").unwrap().size(), Vec::<i64>::new());
    assert_eq!(sd.get("scalar").unwrap().double_value(&[]), 3.5);
    assert_eq!(sd.get("empty").unwrap().size(), [0, 4]);
    let i64s = Vec::<i64>::try_from(sd.get("i64").unwrap()).unwrap();
    assert_eq!(i64s, [-(1 << 40), -1, 0, 1, 1 << 40]);
}

#[test]
fn a_dtype_tch_lacks_is_an_error_naming_it_and_the_key() {
    let err = format!("{:#}", StateDict::read(&fixture("uint16.pth")).unwrap_err());
    assert!(
        err.contains("uint16") && err.contains("\"weight\""),
        "{err}"
    );
    assert!(
        err.contains("uint16.pth"),
        "the message names the file: {err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Writing

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("fgstp-checkpoint-test-")
        .tempdir()
        .unwrap()
}

#[test]
fn written_pth_and_safetensors_round_trip_bit_exactly_with_keys_in_order() {
    let dir = tempdir();
    let mut written = 0;
    for name in ["dtypes.pth", "views.pth", "nested.pth"] {
        let original = read(name);
        for ext in ["pth", "safetensors"] {
            let out = dir.path().join(format!("{name}.{ext}"));
            original.write(&out).unwrap();
            written += 1;
            let back = StateDict::read(&out).unwrap();
            assert_same(&format!("{name} via .{ext}"), &back, &original);
            if ext == "pth" {
                // (safetensors files order tensors by dtype and name, whatever the writer does)
                assert_eq!(
                    back.keys().collect::<Vec<_>>(),
                    original.keys().collect::<Vec<_>>()
                );
            }
            // Only the checkpoints are in the folder: no temporary file is left behind.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), written);
        }
    }
    let err = read("views.pth")
        .write(&dir.path().join("weights.npz"))
        .unwrap_err();
    assert!(format!("{err:#}").contains(".safetensors"), "{err:#}");
}

#[test]
fn from_var_store_adds_pytorch_batchnorm_counters() {
    let vs = small_net_var_store(Kind::Float);
    let sd = StateDict::from_var_store(&vs).unwrap();
    let mut want = SMALL_NET_KEYS.to_vec();
    want.sort();
    assert_eq!(sd.keys().collect::<Vec<_>>(), want);
    assert_eq!(
        sd.get("bn.num_batches_tracked").unwrap().kind(),
        Kind::Int64
    );
}

// ---------------------------------------------------------------------------------------------
// Loading into a VarStore

/// Creates a float variable at a dotted PyTorch name (tch forbids dots inside one segment).
fn var_at(vs: &VarStore, name: &str, shape: &[i64]) {
    let mut parts: Vec<&str> = name.split('.').collect();
    let last = parts.pop().unwrap();
    let path = parts.iter().fold(vs.root(), |p, part| p / *part);
    let _ = path.zeros(last, shape);
}

fn small_net_var_store(kind: Kind) -> VarStore {
    let mut vs = VarStore::new(Device::Cpu);
    for (name, shape) in [
        ("conv.weight", &[4, 3, 3, 3][..]),
        ("conv.bias", &[4]),
        ("bn.weight", &[4]),
        ("bn.bias", &[4]),
        ("bn.running_mean", &[4]),
        ("bn.running_var", &[4]),
        ("fc.weight", &[2, 4]),
        ("fc.bias", &[2]),
    ] {
        var_at(&vs, name, shape);
    }
    if kind == Kind::Double {
        vs.double();
    }
    vs
}

#[test]
fn strict_load_fills_every_variable_and_ignores_num_batches_tracked() {
    let mut vs = small_net_var_store(Kind::Float);
    let sd = read("state_dict.pth");
    let report = load_into(&mut vs, &sd, &LoadOptions::strict()).unwrap();
    assert_eq!(report.loaded.len(), 8);
    assert_eq!(report.ignored, ["bn.num_batches_tracked"]);
    assert!(report.skipped.is_empty() && report.missing.is_empty() && report.dropped.is_empty());
    let vars = vs.variables();
    for (key, want) in sd
        .iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
    {
        assert_eq!(bytes(&vars[key]), bytes(want), "{key}");
    }
}

#[test]
fn loading_converts_to_the_variables_dtype() {
    let mut vs = small_net_var_store(Kind::Double);
    let sd = read("state_dict.pth");
    load_into(&mut vs, &sd, &LoadOptions::strict()).unwrap();
    let vars = vs.variables();
    let w = &vars["conv.weight"];
    assert_eq!(w.kind(), Kind::Double);
    let diff = (w - sd.get("conv.weight").unwrap().to_kind(Kind::Double))
        .abs()
        .max();
    assert_eq!(diff.double_value(&[]), 0.0);
}

#[test]
fn strict_load_names_missing_and_unexpected_keys_partial_load_reports_them() {
    let sd = read("state_dict.pth");

    let mut bigger = small_net_var_store(Kind::Float);
    var_at(&bigger, "head.weight", &[1, 2]);
    let err = format!(
        "{:#}",
        load_into(&mut bigger, &sd, &LoadOptions::strict()).unwrap_err()
    );
    assert!(
        err.contains("head.weight") && err.contains("not in the file"),
        "{err}"
    );

    let mut smaller = VarStore::new(Device::Cpu);
    var_at(&smaller, "conv.weight", &[4, 3, 3, 3]);
    var_at(&smaller, "conv.bias", &[4]);
    let err = format!(
        "{:#}",
        load_into(&mut smaller, &sd, &LoadOptions::strict()).unwrap_err()
    );
    assert!(
        err.contains("fc.weight") && err.contains("not in the model"),
        "{err}"
    );
    // A failed load leaves the variables untouched.
    assert_eq!(
        smaller.variables()["conv.weight"]
            .abs()
            .sum(Kind::Float)
            .double_value(&[]),
        0.0
    );

    let report = load_into(&mut smaller, &sd, &LoadOptions::partial()).unwrap();
    assert_eq!(report.loaded, ["conv.weight", "conv.bias"]);
    assert_eq!(
        report.skipped,
        [
            "bn.weight",
            "bn.bias",
            "bn.running_mean",
            "bn.running_var",
            "fc.weight",
            "fc.bias"
        ]
    );
    assert!(report.missing.is_empty());
    assert!(
        report.summary().starts_with("loaded 2, skipped 6"),
        "{}",
        report.summary()
    );
}

#[test]
fn a_shape_mismatch_names_the_key_and_both_shapes() {
    let sd = read("state_dict.pth");
    let mut vs = VarStore::new(Device::Cpu);
    var_at(&vs, "fc.weight", &[3, 4]);
    for opts in [LoadOptions::strict(), LoadOptions::partial()] {
        let err = format!("{:#}", load_into(&mut vs, &sd, &opts).unwrap_err());
        assert!(
            err.contains("\"fc.weight\"") && err.contains("[2, 4]") && err.contains("[3, 4]"),
            "{err}"
        );
    }
}

#[test]
fn official_pvt_v2_checkpoint_loads_into_the_encoder_with_head_dropped() {
    let sd = read("pvt_v2_official_tiny.pth");
    let mut vs = VarStore::new(Device::Cpu);
    let mut encoder_keys = 0;
    for (key, t) in sd.iter() {
        if !key.starts_with("head.") {
            var_at(&vs, &format!("backbone.encoder.pvtv2_en.{key}"), &t.size());
            encoder_keys += 1;
        }
    }
    // Something the ImageNet checkpoint cannot provide.
    var_at(
        &vs,
        "backbone.encoder.rfb2_1.conv_res.conv.weight",
        &[32, 4, 1, 1],
    );

    let opts = LoadOptions::pvt_v2_imagenet();
    assert_eq!(opts.mode, LoadMode::Partial);
    let report = load_into(&mut vs, &sd, &opts).unwrap();
    assert_eq!(report.loaded.len(), encoder_keys);
    assert_eq!(report.dropped, ["head.weight", "head.bias"]);
    assert_eq!(
        report.missing,
        ["backbone.encoder.rfb2_1.conv_res.conv.weight"]
    );
    assert!(report.skipped.is_empty());
    let vars = vs.variables();
    let loaded = &vars["backbone.encoder.pvtv2_en.block3.1.attn.kv.weight"];
    assert_eq!(
        bytes(loaded),
        bytes(sd.get("block3.1.attn.kv.weight").unwrap())
    );

    // Without the prefix map nothing matches: a partial load then loads nothing, and says so.
    let report = load_into(&mut vs, &sd, &LoadOptions::partial()).unwrap();
    assert!(report.loaded.is_empty());
    assert_eq!(report.skipped.len(), sd.len());
}

// ---------------------------------------------------------------------------------------------
// Damaged input: errors, never panics

fn write_bytes(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

#[test]
fn truncated_checkpoints_are_errors() {
    for name in [
        "state_dict.pth",
        "legacy.pth",
        "state_dict.pth.expected.safetensors",
    ] {
        let full = std::fs::read(fixture(name)).unwrap();
        // Every length: each cut lands in a different structure.
        for len in 0..full.len() {
            if let Ok(sd) = StateDict::from_bytes(&full[..len]) {
                panic!("{name} cut to {len} of {} bytes read as {sd:?}", full.len());
            }
        }
    }
}

#[test]
fn hostile_checkpoints_are_errors_not_panics_aborts_or_hangs() {
    // Written by scripts/fixtures/make_hostile_checkpoints.py; each used to panic (overflow),
    // abort (an allocation of terabytes) or run for hours.
    for (name, error) in [
        ("stride0_overflow.pth", "overflows"),
        (
            "stride0_huge.pth",
            "the tensors would take 4398046511104 bytes",
        ),
        ("zip64_lie.pth", "more than the file can hold"),
        ("zip64_lie_u64.pth", "more than the file can hold"),
        ("dag40.pth", "submodules shared over and over"),
        ("empty_module.pth", "found no tensors"),
        ("zip64_locator_lies.pth", "zip64 locator points at byte 0"),
    ] {
        let started = std::time::Instant::now();
        let err = StateDict::read(&fixture(&format!("hostile/{name}")))
            .map(|sd| format!("read as {sd:?}"))
            .unwrap_or_else(|e| format!("{e:#}"));
        assert!(err.contains(error), "{name}: {err}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{name}: {:?}",
            started.elapsed()
        );
    }
    // A zero-element weight 2^62 wide under ZoomNeXt's keys reads, and its layout is told
    // without overflowing.
    let sd = read("hostile/zoomnext_overflow.pth");
    let _ = sd.detect_layout();
}

#[test]
fn a_truncated_file_is_an_error_naming_it() {
    let dir = tempdir();
    let full = std::fs::read(fixture("nested.pth")).unwrap();
    for len in [0, 100, full.len() / 2, full.len() - 1] {
        let path = write_bytes(dir.path(), "cut.pth", &full[..len]);
        let err = format!("{:#}", StateDict::read(&path).unwrap_err());
        assert!(err.contains("cut.pth"), "cut at {len}: {err}");
    }
}

#[test]
fn files_that_are_not_checkpoints_are_errors() {
    let dir = tempdir();
    for (name, data) in [
        ("empty.pth", &b""[..]),
        ("text.pth", b"this is not a checkpoint\n"),
        ("pickle_only.pth", b"\x80\x02}q\x00."),
        (
            "zip_without_pickle.pth",
            b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        ),
    ] {
        let path = write_bytes(dir.path(), name, data);
        let err = format!("{:#}", StateDict::read(&path).unwrap_err());
        assert!(err.contains(name), "{err}");
    }
}

/// xorshift64*: a fixed, dependency-free stream of pseudo-random numbers.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mutate(rng: &mut Rng, data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    for _ in 0..1 + rng.below(4) {
        if out.is_empty() {
            break;
        }
        let at = rng.below(out.len());
        match rng.below(4) {
            0 => out[at] ^= 1 << rng.below(8),
            1 => out[at] = rng.next() as u8,
            2 => {
                out.remove(at);
            }
            _ => {
                // Interesting values for lengths, counts and memo indices.
                let v = [0u8, 1, 0x7f, 0x80, 0xff][rng.below(5)];
                out[at] = v;
            }
        }
    }
    out
}

/// The pickle inside a zip checkpoint (its CRC would reject a mutated copy before the pickle
/// reader sees it, so the fuzz below re-packs mutated pickles with a valid CRC).
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
fn thousands_of_mutated_checkpoints_never_panic() {
    let mut rng = Rng(0x5eed_f95b_0001);
    let mut outcomes = [0usize; 2]; // [read, rejected]
    let mut count = |result: anyhow::Result<StateDict>| match result {
        Ok(sd) => {
            // Whatever was read must be usable tensors.
            for (_, t) in sd.iter() {
                let _ = t.numel();
            }
            outcomes[0] += 1
        }
        Err(_) => outcomes[1] += 1,
    };

    // Whole files, byte-mutated: the zip container and CRCs, the legacy stream, safetensors.
    for name in [
        "state_dict.pth",
        "legacy.pth",
        "views.pth.expected.safetensors",
    ] {
        let data = std::fs::read(fixture(name)).unwrap();
        for _ in 0..1000 {
            count(StateDict::from_bytes(&mutate(&mut rng, &data)));
        }
    }
    // Mutated pickles (and storages) re-packed into valid zips: the pickle machine and the
    // tensor builder see hostile data.
    for name in ["state_dict.pth", "views.pth", "nested.pth"] {
        let entries = zip_entries(&fixture(name));
        let pkl = entries
            .iter()
            .position(|(n, _)| n.ends_with("data.pkl"))
            .unwrap();
        for i in 0..1000 {
            let mut mutated = entries.clone();
            let target = if i % 5 == 4 {
                rng.below(entries.len())
            } else {
                pkl
            };
            mutated[target].1 = mutate(&mut rng, &entries[target].1);
            count(StateDict::from_bytes(&pack_zip(&mutated)));
        }
    }
    // Both outcomes occur, so the mutations reach past the first check.
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

// ---------------------------------------------------------------------------------------------
// The real thing: a state dict the reference FGSTP wrote (scripts/fixtures/make_model_fixture.py)

fn reference_fgstp_b0() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/fgstp_b0_256.pth")
}

#[test]
fn the_reference_fgstp_state_dict_loads_strictly_into_our_model() {
    use fgstp_model::{Config, Model, ModelKind, PvtV2Variant};
    let sd = StateDict::read(&reference_fgstp_b0()).unwrap();
    let detected = sd.detect_layout();
    assert_eq!(detected.layout, fgstp_model::checkpoint::ModelLayout::Fgstp);
    assert_eq!(detected.pvt.as_ref().and_then(|p| p.variant), Some("b0"));

    let mut vs = VarStore::new(Device::Cpu);
    let cfg = Config {
        kind: ModelKind::Fgstp,
        backbone: PvtV2Variant::B0,
        ..Config::default()
    };
    let _model = Model::new(&vs.root(), &cfg).unwrap();
    let report = load_into(&mut vs, &sd, &LoadOptions::strict()).unwrap();
    assert!(
        report.missing.is_empty() && report.skipped.is_empty(),
        "{}",
        report.details()
    );
    assert_eq!(report.loaded.len() + report.ignored.len(), sd.len());
    assert!(
        !report.ignored.is_empty(),
        "BatchNorm counters are in the file and ignored"
    );
    let vars = vs.variables();
    for key in [
        "backbone.encoder.pvtv2_en.block3.1.attn.kv.weight",
        "ctc.nl_layer1.nonlocals.0.W.weight",
        "backbone.decoder.RS5.strong_gra.score.weight",
    ] {
        let want = sd
            .get(key)
            .unwrap_or_else(|| panic!("{key} not in the file"));
        // The file may store another dtype (the fixture is f16): compare in the model's.
        let want = want.to_kind(vars[key].kind());
        assert!(
            bytes(&vars[key]) == bytes(&want),
            "{key} differs from the file"
        );
    }

    // Its backbone into the single-frame model: a partial load, the temporal modules skipped.
    let mut single = VarStore::new(Device::Cpu);
    let cfg = Config {
        kind: ModelKind::SinetV2,
        ..cfg
    };
    let _model = Model::new(&single.root(), &cfg).unwrap();
    let report = load_into(&mut single, &sd, &LoadOptions::partial()).unwrap();
    assert!(report.missing.is_empty(), "{}", report.details());
    assert!(report.skipped.iter().all(|k| !k.starts_with("backbone.")));
    assert!(report.skipped.iter().any(|k| k.starts_with("fsp1.")));
}
