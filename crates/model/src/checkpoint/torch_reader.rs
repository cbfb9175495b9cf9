//! Reading `torch.save` files: the zip archive of PyTorch ≥ 1.6 and the older single-stream
//! format (writing them is [`super::torch_writer`]).
//!
//! Zip layout: `<name>/data.pkl` (the pickled object), `<name>/data/<key>` (one raw storage per
//! key), `<name>/byteorder` (`little`/`big`, absent in old files), `<name>/version`, ... Tensors in
//! the pickle are `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` calls
//! whose storage is the persistent id `('storage', torch.FloatStorage, key, location, numel)`.
//!
//! Legacy layout: five pickles in a row (magic number, protocol version, system info, the object,
//! the list of storage keys), then per storage an int64 element count and the raw bytes.

use std::collections::HashMap;
use std::io::{BufReader, Read, Seek, SeekFrom};

use anyhow::{anyhow, bail, Context, Result};
use tch::Tensor;

use super::dtype::DType;
use super::pickle::{Id, Node, Pickle};

/// Keys under which training scripts commonly nest the weights, in the order they are tried.
pub const NESTING_KEYS: [&str; 7] = [
    "state_dict",
    "model_state_dict",
    "model",
    "net",
    "network",
    "module",
    "params",
];

/// What a torch file held, after choosing the state dict inside it.
pub struct TorchFile {
    pub tensors: Vec<(String, Tensor)>,
    /// The top-level key the tensors were found under (`state_dict`, `model`, ...).
    pub nesting: Option<String>,
    /// Entries next to the tensors that are not tensors (epoch, optimizer, ...).
    pub ignored: Vec<String>,
}

impl From<Vec<(String, Tensor)>> for TorchFile {
    fn from(tensors: Vec<(String, Tensor)>) -> Self {
        TorchFile {
            tensors,
            nesting: None,
            ignored: Vec::new(),
        }
    }
}

/// Where a tensor's elements are: `size`/`stride` in elements from `offset` into a storage.
#[derive(Debug, Clone)]
struct TensorSpec {
    storage: String,
    dtype: DType,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

impl TensorSpec {
    /// Elements of the view and their bytes once copied out; `None` when that overflows.
    fn numel_and_bytes(&self) -> Option<(usize, usize)> {
        let numel = self
            .size
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))?;
        Some((numel, numel.checked_mul(self.dtype.size())?))
    }
}

/// What a pickled value turned out to be.
enum Found {
    Tensor(TensorSpec),
    /// A tensor we cannot read (quantized, sparse, unknown dtype, malformed record...): only an
    /// error if the caller wants it.
    Unreadable(String),
    NotTensor,
}

const MAX_DEPTH: usize = 200;

// ---------------------------------------------------------------------------------------------
// Pickled objects → tensor records

fn persistent_storage(p: &Pickle, id: Id) -> Result<(String, Option<DType>), String> {
    let Node::Persistent(pid) = p.node(id) else {
        return Err(format!(
            "its storage is {}, not a storage id",
            p.describe(id)
        ));
    };
    let items = p
        .as_seq(*pid)
        .ok_or_else(|| format!("storage id is {}, not a tuple", p.describe(*pid)))?;
    if items.len() < 5 || p.as_str(items[0]) != Some("storage") {
        return Err("storage id is not ('storage', type, key, location, numel)".into());
    }
    if items.len() > 5 && !matches!(p.node(items[5]), Node::None) {
        return Err(
            "storage views (checkpoints written before PyTorch 1.0) are not supported; \
                    re-save it with any recent PyTorch"
                .into(),
        );
    }
    let type_name = p
        .global_name(items[1])
        .ok_or("storage type is not a class name")?;
    let short = type_name.rsplit('.').next().unwrap_or_default();
    let dtype = match short {
        "UntypedStorage" => None,
        _ => Some(
            DType::from_storage_name(short)
                .ok_or_else(|| format!("storage type {type_name} is not supported"))?,
        ),
    };
    let key = match p.node(items[2]) {
        Node::Str(s) => s.clone(),
        Node::Int(i) => i.to_string(),
        _ => return Err("storage key is not a string".into()),
    };
    Ok((key, dtype))
}

fn usize_seq(p: &Pickle, id: Id, what: &str) -> Result<Vec<usize>, String> {
    let items = p
        .as_seq(id)
        .ok_or_else(|| format!("{what} is {}, not a tuple", p.describe(id)))?;
    if items.len() > 64 {
        return Err(format!("{what} has {} dimensions", items.len()));
    }
    items
        .iter()
        .map(|&i| {
            p.as_int(i)
                .and_then(|v| usize::try_from(v).ok())
                .ok_or_else(|| format!("{what} has an entry {}", p.describe(i)))
        })
        .collect()
}

fn tensor_record(p: &Pickle, args: &[Id], v3_dtype: Option<Id>) -> Result<TensorSpec, String> {
    if args.len() < 4 {
        return Err("tensor record has fewer than 4 arguments".into());
    }
    let (storage, storage_dtype) = persistent_storage(p, args[0])?;
    let offset = p
        .as_int(args[1])
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| format!("storage offset is {}", p.describe(args[1])))?;
    let size = usize_seq(p, args[2], "size")?;
    let stride = usize_seq(p, args[3], "stride")?;
    if size.len() != stride.len() {
        return Err(format!(
            "size has {} dimensions but stride has {}",
            size.len(),
            stride.len()
        ));
    }
    let dtype = match v3_dtype {
        Some(id) => {
            let name = p
                .global_name(id)
                .ok_or_else(|| format!("dtype is {}", p.describe(id)))?;
            let short = name.strip_prefix("torch.").unwrap_or(&name);
            DType::from_torch_name(short)
                .ok_or_else(|| format!("dtype torch.{short} is not supported by fgstp/tch"))?
        }
        None => storage_dtype.ok_or("an untyped storage without a dtype")?,
    };
    Ok(TensorSpec {
        storage,
        dtype,
        offset,
        size,
        stride,
    })
}

fn rebuild(p: &Pickle, callable: Id, args: Id, depth: usize) -> Found {
    if depth > MAX_DEPTH {
        return Found::Unreadable("tensor record nested too deeply".into());
    }
    let Some(name) = p.global_name(callable) else {
        return Found::NotTensor;
    };
    let args = p.as_seq(args).unwrap_or_default();
    let result = match name.as_str() {
        "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor" => {
            tensor_record(p, args, None)
        }
        "torch._utils._rebuild_tensor_v3" => match args.get(6) {
            Some(&dtype) => tensor_record(p, args, Some(dtype)),
            None => Err("_rebuild_tensor_v3 record without a dtype".into()),
        },
        "torch._utils._rebuild_parameter" | "torch._utils._rebuild_parameter_with_state" => {
            return match args.first() {
                Some(&data) => found(p, data, depth + 1),
                None => Found::Unreadable("parameter record without data".into()),
            };
        }
        "torch._tensor._rebuild_from_type_v2" => {
            return match (args.first(), args.get(2)) {
                (Some(&func), Some(&inner)) => rebuild(p, func, inner, depth + 1),
                _ => Found::Unreadable("tensor-subclass record is incomplete".into()),
            };
        }
        "torch._utils._rebuild_qtensor" => Err("quantized tensors are not supported".into()),
        "torch._utils._rebuild_sparse_tensor" | "torch._utils._rebuild_sparse_csr" => {
            Err("sparse tensors are not supported".into())
        }
        other if other.starts_with("torch._utils._rebuild") => {
            Err(format!("{other} tensors are not supported"))
        }
        _ => return Found::NotTensor,
    };
    match result {
        Ok(spec) => Found::Tensor(spec),
        Err(why) => Found::Unreadable(why),
    }
}

fn found(p: &Pickle, id: Id, depth: usize) -> Found {
    match p.node(id) {
        Node::Call { callable, args, .. } => rebuild(p, *callable, *args, depth),
        _ => Found::NotTensor,
    }
}

/// The longest tensor or module name taken (names are copied for every entry, and a memoised
/// string can be the name of any number of them).
const MAX_NAME_BYTES: usize = 4096;

fn key_string(p: &Pickle, id: Id) -> Option<String> {
    match p.node(id) {
        Node::Str(s) if s.len() <= MAX_NAME_BYTES => Some(s.clone()),
        Node::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Tensor entries of a dict (first position, last value for a repeated key) and the names of
/// its other entries.
fn dict_tensors(p: &Pickle, dict: Id) -> (Vec<(String, Found)>, Vec<String>) {
    let mut tensors: Vec<(String, Found)> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    let mut others = Vec::new();
    for &(k, v) in p.dict_items(dict).unwrap_or_default() {
        let key = key_string(p, k);
        match (key, found(p, v, 0)) {
            (Some(key), Found::NotTensor) => others.push(key),
            (Some(key), f) => match position.get(&key) {
                Some(&i) => tensors[i].1 = f,
                None => {
                    position.insert(key.clone(), tensors.len());
                    tensors.push((key, f));
                }
            },
            (None, _) => others.push(p.describe(k)),
        }
    }
    (tensors, others)
}

/// The most modules, and tensors, a pickled module may name (FGSTP-b5 has about 600 modules).
const MAX_MODULES: usize = 1_000_000;

/// The `__dict__` of a pickled `torch.nn.Module` (from `torch.save(model)`).
fn module_state(p: &Pickle, id: Id) -> Option<Id> {
    let Node::Call {
        state: Some(state), ..
    } = p.node(id)
    else {
        return None;
    };
    (p.dict_get(*state, "_parameters").is_some() && p.dict_get(*state, "_modules").is_some())
        .then_some(*state)
}

/// A pickled module's parameters and persistent buffers, named as its `state_dict()` would be.
fn flatten_module(
    p: &Pickle,
    state: Id,
    prefix: &str,
    depth: usize,
    visited: &mut usize,
    out: &mut Vec<(String, Found)>,
) -> Result<(), String> {
    if depth > MAX_DEPTH / 4 {
        return Err("modules nested too deeply".into());
    }
    // A submodule shared by two parents is listed under both (as `state_dict()` does), so a
    // file of modules that each hold the next one twice names 2^depth modules.
    *visited += 1;
    if *visited > MAX_MODULES || out.len() > MAX_MODULES {
        return Err(format!(
            "more than {MAX_MODULES} modules or tensors (submodules shared over and over)"
        ));
    }
    let non_persistent: std::collections::HashSet<&str> = p
        .dict_get(state, "_non_persistent_buffers_set")
        .map(|set| match p.node(set) {
            Node::Set(items) => items.iter().filter_map(|&i| p.as_str(i)).collect(),
            _ => Default::default(),
        })
        .unwrap_or_default();
    for field in ["_parameters", "_buffers"] {
        let Some(dict) = p.dict_get(state, field) else {
            continue;
        };
        for &(k, v) in p.dict_items(dict).unwrap_or_default() {
            let Some(name) = key_string(p, k) else {
                continue;
            };
            if field == "_buffers" && non_persistent.contains(name.as_str()) {
                continue;
            }
            match found(p, v, 0) {
                Found::NotTensor if matches!(p.node(v), Node::None) => {}
                Found::NotTensor => {
                    out.push((
                        format!("{prefix}{name}"),
                        Found::Unreadable(format!("it is {}", p.describe(v))),
                    ));
                }
                f => out.push((format!("{prefix}{name}"), f)),
            }
        }
    }
    if let Some(children) = p.dict_get(state, "_modules") {
        for &(k, v) in p.dict_items(children).unwrap_or_default() {
            let (Some(name), Some(child)) = (key_string(p, k), module_state(p, v)) else {
                continue;
            };
            flatten_module(
                p,
                child,
                &format!("{prefix}{name}."),
                depth + 1,
                visited,
                out,
            )?;
        }
    }
    Ok(())
}

struct Selected {
    entries: Vec<(String, TensorSpec)>,
    nesting: Option<String>,
    ignored: Vec<String>,
}

/// Finds the state dict in a pickled checkpoint: a dict of tensors, possibly nested under one of
/// [`NESTING_KEYS`], or a whole pickled module.
fn select(p: &Pickle) -> Result<Selected> {
    let root = p.root;
    let mut nesting = None;
    let mut ignored = Vec::new();
    let mut found: Vec<(String, Found)> = Vec::new();
    if let Some(state) = module_state(p, root) {
        flatten_module(p, state, "", 0, &mut 0, &mut found).map_err(|e| anyhow!(e))?;
        if found.is_empty() {
            bail!(
                "found no tensors: the file holds a pickled module without parameters or buffers"
            );
        }
    } else if p.dict_items(root).is_some() {
        // A nested state dict first: a top-level "state_dict" key cannot be a tensor name.
        for key in NESTING_KEYS {
            let Some(inner) = p.dict_get(root, key) else {
                continue;
            };
            let (tensors, inner_others) = if let Some(state) = module_state(p, inner) {
                let mut flat = Vec::new();
                flatten_module(p, state, "", 0, &mut 0, &mut flat).map_err(|e| anyhow!(e))?;
                (flat, Vec::new())
            } else {
                dict_tensors(p, inner)
            };
            if tensors.is_empty() {
                continue;
            }
            found = tensors;
            nesting = Some(key.to_string());
            let (_, others) = dict_tensors(p, root);
            ignored = others.into_iter().filter(|k| k != key).collect();
            ignored.extend(inner_others.into_iter().map(|k| format!("{key}.{k}")));
            break;
        }
        if found.is_empty() {
            (found, ignored) = dict_tensors(p, root);
        }
        if found.is_empty() {
            let keys: Vec<String> = p
                .dict_items(root)
                .unwrap_or_default()
                .iter()
                .take(20)
                .map(|&(k, _)| key_string(p, k).unwrap_or_else(|| p.describe(k)))
                .collect();
            bail!(
                "found no tensors: the file holds a dict with keys [{}], and none of {} holds a \
                 dict of tensors",
                keys.join(", "),
                NESTING_KEYS.join("/")
            );
        }
    } else {
        bail!(
            "found no tensors: the file holds {}, not a dict of tensors (a state dict)",
            p.describe(root)
        );
    }

    let mut entries = Vec::with_capacity(found.len());
    for (key, f) in found {
        match f {
            Found::Tensor(spec) => entries.push((key, spec)),
            Found::Unreadable(why) => bail!("cannot read tensor {key:?}: {why}"),
            Found::NotTensor => {}
        }
    }
    Ok(Selected {
        entries,
        nesting,
        ignored,
    })
}

// ---------------------------------------------------------------------------------------------
// Storages → tensors

/// Copies a (possibly strided) view out of its storage into a contiguous buffer, checking every
/// index against the storage length first.
fn gather(key: &str, spec: &TensorSpec, storage: &[u8], little_endian: bool) -> Result<Tensor> {
    let elem = spec.dtype.size();
    let (numel, nbytes) = spec
        .numel_and_bytes()
        .ok_or_else(|| anyhow!("tensor {key:?}: size {:?} overflows", spec.size))?;
    let mut out = Vec::new();
    if numel > 0 {
        // Largest element index the view touches, then its last byte.
        let mut last = spec.offset;
        for (&d, &s) in spec.size.iter().zip(&spec.stride) {
            last = (d - 1)
                .checked_mul(s)
                .and_then(|span| last.checked_add(span))
                .ok_or_else(|| anyhow!("tensor {key:?}: stride {:?} overflows", spec.stride))?;
        }
        let end = last
            .checked_add(1)
            .and_then(|n| n.checked_mul(elem))
            .ok_or_else(|| anyhow!("tensor {key:?}: extent overflows"))?;
        if end > storage.len() {
            bail!(
                "tensor {key:?} (size {:?}, stride {:?}, offset {}) needs {end} bytes of storage \
                 {:?}, which has {} (the file is damaged)",
                spec.size,
                spec.stride,
                spec.offset,
                spec.storage,
                storage.len()
            );
        }
        // `nbytes` is not bounded by `end`: a stride of 0 (an expanded view) or overlapping
        // strides touch few bytes of storage for many elements.
        out.try_reserve_exact(nbytes)
            .map_err(|_| anyhow!("tensor {key:?}: not enough memory for {nbytes} bytes"))?;
        if is_contiguous(&spec.size, &spec.stride) {
            let start = spec.offset * elem;
            out.extend_from_slice(&storage[start..start + nbytes]);
        } else {
            // Walk the multi-index like an odometer, last dimension fastest.
            let rank = spec.size.len();
            let mut index = vec![0usize; rank];
            let mut at = spec.offset;
            for _ in 0..numel {
                out.extend_from_slice(&storage[at * elem..(at + 1) * elem]);
                // Wrapping: past the last element `at` may leave the storage (never read).
                for dim in (0..rank).rev() {
                    index[dim] += 1;
                    at = at.wrapping_add(spec.stride[dim]);
                    if index[dim] < spec.size[dim] {
                        break;
                    }
                    at = at.wrapping_sub(spec.stride[dim].wrapping_mul(spec.size[dim]));
                    index[dim] = 0;
                }
            }
        }
        if !little_endian && elem > 1 {
            out.chunks_exact_mut(elem).for_each(<[u8]>::reverse);
        }
        if spec.dtype == DType::Bool {
            // PyTorch stores 0/1; any other byte would be an invalid bool for libtorch.
            out.iter_mut().for_each(|b| *b = u8::from(*b != 0));
        }
    }
    tensor_from_bytes(&out, &spec.size, spec.dtype)
}

fn is_contiguous(size: &[usize], stride: &[usize]) -> bool {
    let mut expected = 1usize;
    for (&d, &s) in size.iter().zip(stride).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected = expected.saturating_mul(d);
    }
    true
}

/// A tensor owning a copy of `bytes`; the length is checked against the shape first.
pub fn tensor_from_bytes(bytes: &[u8], size: &[usize], dtype: DType) -> Result<Tensor> {
    let numel = size
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| anyhow!("size {size:?} overflows"))?;
    let expected = numel
        .checked_mul(dtype.size())
        .ok_or_else(|| anyhow!("size {size:?} overflows"))?;
    if bytes.len() != expected {
        bail!(
            "{} bytes for a {dtype} tensor of size {size:?} ({expected} expected)",
            bytes.len()
        );
    }
    let dims: Vec<i64> = size
        .iter()
        .map(|&d| i64::try_from(d))
        .collect::<Result<_, _>>()?;
    if numel == 0 {
        return Ok(Tensor::f_zeros(&dims, (dtype.kind(), tch::Device::Cpu))?);
    }
    Ok(Tensor::f_from_data_size(bytes, &dims, dtype.kind())?)
}

/// The most bytes the tensors of a checkpoint file of `file_len` bytes may take: 4× the file
/// (weights tied under two names double it) and 256 MiB.
fn output_budget(file_len: u64) -> u64 {
    file_len.saturating_mul(4).saturating_add(256 << 20)
}

/// Builds the tensors, loading each storage once and freeing it after its last use. The
/// tensors together may take at most `budget` bytes: views copy their elements out, so a few
/// bytes of storage viewed with a stride of 0, or one storage under many keys, would otherwise
/// make any amount of memory.
fn build_tensors(
    selected: Vec<(String, TensorSpec)>,
    little_endian: bool,
    budget: u64,
    mut load_storage: impl FnMut(&str) -> Result<Vec<u8>>,
) -> Result<Vec<(String, Tensor)>> {
    let mut total = 0u64;
    for (key, spec) in &selected {
        let (_, bytes) = spec
            .numel_and_bytes()
            .ok_or_else(|| anyhow!("tensor {key:?}: size {:?} overflows", spec.size))?;
        total = total.saturating_add(bytes as u64);
    }
    if total > budget {
        bail!(
            "the tensors would take {total} bytes, more than {budget} for a file of this size \
             (views of one storage under many names, or with a stride of 0): not a state dict \
             fgstp reads"
        );
    }
    let mut uses: HashMap<String, usize> = HashMap::new();
    for (_, spec) in &selected {
        *uses.entry(spec.storage.clone()).or_default() += 1;
    }
    let mut loaded: HashMap<String, Vec<u8>> = HashMap::new();
    let mut tensors = Vec::with_capacity(selected.len());
    for (key, spec) in selected {
        if !loaded.contains_key(&spec.storage) {
            let bytes = load_storage(&spec.storage)
                .with_context(|| format!("reading the storage of tensor {key:?}"))?;
            loaded.insert(spec.storage.clone(), bytes);
        }
        let tensor = gather(&key, &spec, &loaded[&spec.storage], little_endian)?;
        let left = uses.get_mut(&spec.storage).expect("counted above");
        *left -= 1;
        if *left == 0 {
            loaded.remove(&spec.storage);
        }
        tensors.push((key, tensor));
    }
    Ok(tensors)
}

// ---------------------------------------------------------------------------------------------
// The zip format

/// Reads a whole zip entry, refusing sizes the file cannot hold and checking the CRC.
fn read_entry<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    name: &str,
    file_len: u64,
) -> Result<Vec<u8>> {
    let mut entry = zip
        .by_name(name)
        .map_err(|e| anyhow!("archive entry {name:?}: {e}"))?;
    let size = entry.size();
    let limit = match entry.compression() {
        zip::CompressionMethod::Stored => file_len,
        // Deflate expands at most ~1032:1.
        zip::CompressionMethod::Deflated => entry
            .compressed_size()
            .min(file_len)
            .saturating_mul(1100)
            .saturating_add(1024),
        other => bail!("archive entry {name:?} uses {other} compression, which torch never writes"),
    };
    if size > limit {
        bail!("archive entry {name:?} claims {size} bytes, more than the file can hold");
    }
    let size = usize::try_from(size)?;
    // Reserved as the data arrives beyond 64 MiB: a recorded size is only a claim.
    let mut out = Vec::with_capacity(size.min(64 << 20));
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        // Reading to the end (a 0-byte read) is what makes the zip reader check the CRC.
        let n = entry
            .read(&mut chunk)
            .map_err(|e| anyhow!("archive entry {name:?}: {e} (the file is damaged)"))?;
        if n == 0 {
            break;
        }
        if out.len() + n > size {
            bail!("archive entry {name:?} is longer than its recorded size (the file is damaged)");
        }
        out.extend_from_slice(&chunk[..n]);
    }
    if out.len() != size {
        bail!("archive entry {name:?} is shorter than its recorded size (the file is damaged)");
    }
    Ok(out)
}

/// Whether the zip end-of-central-directory record is where it must be: in the last 22 bytes
/// plus at most a 64 KiB comment; an error when a zip64 locator before it points where no
/// zip64 end record is. Checked up front because the zip crate's own searches seek byte by
/// byte (slow on a large damaged file), and a missing record means truncation.
fn has_end_record<R: Read + Seek>(source: &mut R, file_len: u64) -> Result<bool> {
    let tail_len = file_len.min(22 + 65535);
    source.seek(SeekFrom::Start(file_len - tail_len))?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    Read::by_ref(source).take(tail_len).read_to_end(&mut tail)?;
    let Some(end) = tail.windows(4).rposition(|w| w == b"PK\x05\x06") else {
        source.seek(SeekFrom::Start(0))?;
        return Ok(false);
    };
    // A zip64 locator (20 bytes before the end record) must point at a zip64 end record: the
    // zip crate otherwise searches forward from where it points, a byte at a time (minutes
    // for a damaged file of a gigabyte).
    if let Some(locator) = end.checked_sub(20).map(|at| &tail[at..end]) {
        if locator.starts_with(b"PK\x06\x07") {
            let offset = u64::from_le_bytes(locator[8..16].try_into().expect("8 bytes"));
            let mut signature = [0u8; 4];
            let found = offset <= file_len.saturating_sub(4)
                && source.seek(SeekFrom::Start(offset)).is_ok()
                && source.read_exact(&mut signature).is_ok()
                && signature == *b"PK\x06\x06";
            if !found {
                bail!(
                    "the zip archive's zip64 locator points at byte {offset}, where no zip64 end \
                     record is (the file is damaged)"
                );
            }
        }
    }
    source.seek(SeekFrom::Start(0))?;
    Ok(true)
}

/// Reads a zip checkpoint of `file_len` bytes from `source` (a file or an in-memory cursor).
pub fn read_zip<R: Read + Seek>(mut source: R, file_len: u64) -> Result<TorchFile> {
    if !has_end_record(&mut source, file_len)? {
        bail!("the zip archive has no end record: the file is truncated");
    }
    let mut zip = zip::ZipArchive::new(BufReader::new(source)).map_err(|e| {
        anyhow!("not a readable zip archive ({e}); the file is truncated or damaged")
    })?;
    let pkl_name = zip
        .file_names()
        .filter(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .min_by_key(|n| n.len())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("a zip archive without data.pkl: not a torch.save checkpoint"))?;
    let prefix = pkl_name[..pkl_name.len() - "data.pkl".len()].to_owned();
    let pkl = read_entry(&mut zip, &pkl_name, file_len)?;
    let byteorder_name = format!("{prefix}byteorder");
    let little_endian = if zip.file_names().any(|n| n == byteorder_name) {
        match read_entry(&mut zip, &byteorder_name, file_len)?.as_slice() {
            b"little" => true,
            b"big" => false,
            other => bail!(
                "byteorder record is {:?}, not little/big",
                String::from_utf8_lossy(&other[..other.len().min(16)])
            ),
        }
    } else {
        true // files from before the record existed were written on little-endian machines
    };
    let (pickle, _) = Pickle::parse(&pkl).map_err(|e| anyhow!("{pkl_name}: {e}"))?;
    let selected = select(&pickle)?;
    let tensors = build_tensors(
        selected.entries,
        little_endian,
        output_budget(file_len),
        |key| read_entry(&mut zip, &format!("{prefix}data/{key}"), file_len),
    )?;
    Ok(TorchFile {
        tensors,
        nesting: selected.nesting,
        ignored: selected.ignored,
    })
}

// ---------------------------------------------------------------------------------------------
// The legacy format

/// `0x1950a86a20f9469cfc6c` as pickle's little-endian LONG1 bytes.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// Whether `head` (the first bytes of a file) starts like a legacy `torch.save` stream.
pub fn looks_legacy(head: &[u8]) -> bool {
    head.len() >= 14
        && head[0] == 0x80
        && head[2] == 0x8a
        && head[3] == 10
        && head[4..14] == LEGACY_MAGIC
}

pub fn read_legacy(data: &[u8]) -> Result<TorchFile> {
    let mut pos = 0usize;
    let mut next = |what: &str| -> Result<Pickle> {
        let (p, used) = Pickle::parse(&data[pos..]).map_err(|e| anyhow!("{what}: {e}"))?;
        pos += used;
        Ok(p)
    };
    let magic = next("magic number")?;
    if !matches!(magic.node(magic.root), Node::BigInt(b) if b[..] == LEGACY_MAGIC) {
        bail!("not a torch.save file (wrong magic number)");
    }
    let protocol = next("protocol version")?;
    if protocol.as_int(protocol.root) != Some(1001) {
        bail!("legacy torch.save protocol version is not 1001");
    }
    let sys_info = next("system info")?;
    let little_endian = match sys_info.dict_get(sys_info.root, "little_endian") {
        Some(id) => !matches!(sys_info.node(id), Node::Bool(false)),
        None => true,
    };
    let object = next("checkpoint object")?;
    let selected = select(&object)?;
    // Every storage's element type, from all persistent ids (the byte sizes below depend on it).
    let mut dtypes: HashMap<String, DType> = HashMap::new();
    for id in 0..object.len() {
        if let Node::Persistent(_) = object.node(id) {
            if let Ok((key, Some(dtype))) = persistent_storage(&object, id) {
                dtypes.insert(key, dtype);
            }
        }
    }
    let keys = next("storage keys")?;
    let key_ids = keys
        .as_seq(keys.root)
        .ok_or_else(|| anyhow!("storage key list is {}", keys.describe(keys.root)))?
        .to_vec();
    let mut ranges: HashMap<String, std::ops::Range<usize>> = HashMap::new();
    for id in key_ids {
        let key = key_string(&keys, id).ok_or_else(|| anyhow!("a storage key is not a string"))?;
        let dtype = *dtypes
            .get(&key)
            .ok_or_else(|| anyhow!("storage {key:?} is listed but never used"))?;
        let header_end = pos
            .checked_add(8)
            .filter(|&e| e <= data.len())
            .ok_or_else(|| anyhow!("storage {key:?} is cut off (the file is truncated)"))?;
        let numel = u64::from_le_bytes(data[pos..header_end].try_into().expect("8 bytes"));
        let end = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(dtype.size()))
            .and_then(|n| n.checked_add(header_end))
            .filter(|&e| e <= data.len())
            .ok_or_else(|| anyhow!("storage {key:?} is cut off (the file is truncated)"))?;
        ranges.insert(key, header_end..end);
        pos = end;
    }
    let tensors = build_tensors(
        selected.entries,
        little_endian,
        output_budget(data.len() as u64),
        |key| {
            ranges
                .get(key)
                .map(|r| data[r.clone()].to_vec())
                .ok_or_else(|| anyhow!("storage {key:?} is missing from the file"))
        },
    )?;
    Ok(TorchFile {
        tensors,
        nesting: selected.nesting,
        ignored: selected.ignored,
    })
}
