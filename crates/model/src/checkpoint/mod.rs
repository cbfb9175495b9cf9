//! Reading and writing PyTorch checkpoints, and loading them into a [`tch::nn::VarStore`].
//!
//! libtorch's own unpickler (`Tensor::loadz_multi`, `VarStore::load`) rejects an `OrderedDict`
//! — every `model.state_dict()` — and nested training checkpoints, so fgstp reads `torch.save`
//! files itself: the zip container, a safe interpreter for the pickle subset `torch.save`
//! emits (`pickle.rs`), and the raw storages, honouring each tensor's offset and strides. The
//! legacy (pre-1.6) single-stream format and `.safetensors` are read too. The format is told
//! by content, not by file extension.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use fgstp_model::checkpoint::{load_into, LoadOptions, StateDict};
//! let mut vs = tch::nn::VarStore::new(tch::Device::Cpu);
//! // ... build the model on vs.root() ...
//! let sd = StateDict::read("pretrain/pvt_v2_b5.pth".as_ref())?;
//! let report = load_into(&mut vs, &sd, &LoadOptions::pvt_v2_imagenet())?;
//! println!("{}", report.summary());
//! # Ok(()) }
//! ```

mod dtype;
pub mod key_layout;
mod pickle;
mod safetensors_format;
mod torch_reader;
mod torch_writer;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use tch::Tensor;

pub use dtype::DType;
pub use key_layout::{Detected, ModelLayout, PvtInfo, SltNetStage};

/// The container a checkpoint came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `torch.save` of PyTorch ≥ 1.6: a zip archive (`.pth`, `.pt`, `.bin`, `.ckpt`, ...).
    TorchZip,
    /// `torch.save` before 1.6, or with `_use_new_zipfile_serialization=False`.
    TorchLegacy,
    Safetensors,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::TorchZip => "PyTorch torch.save zip archive",
            Format::TorchLegacy => "PyTorch legacy torch.save (before 1.6)",
            Format::Safetensors => "safetensors",
        })
    }
}

/// Where the tensors of a [`StateDict`] came from and what was unwrapped on the way.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: Option<PathBuf>,
    pub format: Option<Format>,
    /// The top-level key the tensors were nested under (`state_dict`, `model`, ...).
    pub nesting: Option<String>,
    /// A prefix stripped from every key (`module.`, from `nn.DataParallel`).
    pub stripped_prefix: Option<String>,
    /// Entries of the file that are not tensors and were ignored (`epoch`, `optimizer`, ...).
    pub ignored: Vec<String>,
}

/// Tensors read from a checkpoint file, in file order, keys as stored (after unwrapping an
/// optional top-level `state_dict`/`model`/... nesting and stripping a `module.` prefix).
/// Tensors are contiguous, on the CPU, in the file's dtype.
pub struct StateDict {
    tensors: Vec<(String, Tensor)>,
    index: HashMap<String, usize>,
    pub source: Source,
}

impl std::fmt::Debug for StateDict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateDict")
            .field("len", &self.tensors.len())
            .field("source", &self.source)
            .finish()
    }
}

/// A `module.` prefix on every key is `nn.DataParallel`'s wrapper, not part of the model.
const DATA_PARALLEL_PREFIX: &str = "module.";

impl StateDict {
    /// Reads a `torch.save` file (zip or legacy) or a `.safetensors` file, told apart by content.
    pub fn read(path: &Path) -> Result<StateDict> {
        Self::read_inner(path).with_context(|| format!("reading checkpoint {}", path.display()))
    }

    fn read_inner(path: &Path) -> Result<StateDict> {
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        let mut head = Vec::with_capacity(16);
        Read::by_ref(&mut file).take(16).read_to_end(&mut head)?;
        let format = detect_format(&head, len)?;
        let contents = match format {
            // Storages are read one by one straight from the file.
            Format::TorchZip => torch_reader::read_zip(file, len)?,
            Format::TorchLegacy => torch_reader::read_legacy(&std::fs::read(path)?)?,
            Format::Safetensors => safetensors_format::read(&std::fs::read(path)?)?.into(),
        };
        let mut sd = StateDict::from_contents(contents, format)?;
        sd.source.path = Some(path.to_path_buf());
        Ok(sd)
    }

    /// Like [`StateDict::read`], from the bytes of a checkpoint file in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<StateDict> {
        let format = detect_format(&bytes[..bytes.len().min(16)], bytes.len() as u64)?;
        let contents = match format {
            Format::TorchZip => {
                torch_reader::read_zip(std::io::Cursor::new(bytes), bytes.len() as u64)?
            }
            Format::TorchLegacy => torch_reader::read_legacy(bytes)?,
            Format::Safetensors => safetensors_format::read(bytes)?.into(),
        };
        StateDict::from_contents(contents, format)
    }

    fn from_contents(contents: torch_reader::TorchFile, format: Format) -> Result<StateDict> {
        let mut sd = StateDict::from_tensors(contents.tensors)?;
        sd.source.format = Some(format);
        sd.source.nesting = contents.nesting;
        sd.source.ignored = contents.ignored;
        sd.strip_data_parallel_prefix();
        Ok(sd)
    }

    /// A state dict from tensors in memory (keys must be unique).
    pub fn from_tensors(tensors: Vec<(String, Tensor)>) -> Result<StateDict> {
        let mut index = HashMap::with_capacity(tensors.len());
        for (i, (key, _)) in tensors.iter().enumerate() {
            if index.insert(key.clone(), i).is_some() {
                bail!("key {key:?} appears twice");
            }
        }
        Ok(StateDict {
            tensors,
            index,
            source: Source {
                path: None,
                format: None,
                nesting: None,
                stripped_prefix: None,
                ignored: Vec::new(),
            },
        })
    }

    /// The variables of a var store as a state dict PyTorch's `load_state_dict` accepts, sorted by
    /// name. BatchNorm layers (a `running_var` next to a `running_mean`) get the int64
    /// `num_batches_tracked` counter PyTorch expects, set to 0, as tch has no such variable.
    pub fn from_var_store(vs: &tch::nn::VarStore) -> Result<StateDict> {
        let variables = vs.variables();
        let mut names: Vec<&String> = variables.keys().collect();
        names.sort();
        let mut tensors = Vec::with_capacity(names.len());
        for name in names {
            tensors.push((
                name.clone(),
                variables[name].detach().f_to_device(tch::Device::Cpu)?,
            ));
            if let Some(module) = name.strip_suffix(".running_var") {
                let counter = format!("{module}.num_batches_tracked");
                if variables.contains_key(&format!("{module}.running_mean"))
                    && !variables.contains_key(&counter)
                {
                    tensors.push((counter, Tensor::from(0i64)));
                }
            }
        }
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        StateDict::from_tensors(tensors)
    }

    fn strip_data_parallel_prefix(&mut self) {
        let all_prefixed = !self.tensors.is_empty()
            && self
                .tensors
                .iter()
                .all(|(k, _)| k.starts_with(DATA_PARALLEL_PREFIX));
        if !all_prefixed {
            return;
        }
        for (key, _) in &mut self.tensors {
            key.drain(..DATA_PARALLEL_PREFIX.len());
        }
        self.index = self
            .tensors
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        self.source.stripped_prefix = Some(DATA_PARALLEL_PREFIX.to_string());
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.iter().map(|(k, _)| k.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.tensors.iter().map(|(k, t)| (k.as_str(), t))
    }

    pub fn get(&self, key: &str) -> Option<&Tensor> {
        self.index.get(key).map(|&i| &self.tensors[i].1)
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Total number of elements over all tensors.
    pub fn numel(&self) -> u64 {
        self.tensors.iter().map(|(_, t)| t.numel() as u64).sum()
    }

    /// Which model (and PVTv2 variant) the keys and shapes fit.
    pub fn detect_layout(&self) -> Detected {
        let shapes: Vec<(&str, Vec<i64>)> = self
            .tensors
            .iter()
            .map(|(k, t)| (k.as_str(), t.size()))
            .collect();
        key_layout::detect(shapes.iter().map(|(k, s)| (*k, s.as_slice())))
    }

    /// Writes the tensors with their keys and dtypes: `.safetensors` by extension, otherwise a
    /// `torch.save`-compatible zip (`.pth`, `.pt`, `.bin`, `.ckpt`). Written to a temporary file
    /// next to `path` and renamed, so a failed write leaves no half-written checkpoint.
    pub fn write(&self, path: &Path) -> Result<()> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let safetensors = match ext.as_deref() {
            Some("safetensors") => true,
            Some("pth" | "pt" | "bin" | "ckpt" | "tar") => false,
            _ => bail!(
                "cannot tell the format to write from the name {}: use .safetensors, or .pth \
                 (also .pt/.bin/.ckpt) for PyTorch",
                path.display()
            ),
        };
        write_atomically(path, |tmp| {
            if safetensors {
                safetensors_format::write(tmp, &self.tensors, HashMap::new())
            } else {
                torch_writer::write_zip(tmp, &self.tensors)
            }
        })
        .with_context(|| format!("writing checkpoint {}", path.display()))
    }
}

/// Tells the format from the first (up to 16) bytes of a file of `len` bytes.
fn detect_format(head: &[u8], len: u64) -> Result<Format> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Ok(Format::TorchZip)
    } else if torch_reader::looks_legacy(head) {
        Ok(Format::TorchLegacy)
    } else if safetensors_format::looks_safetensors(head, len) {
        Ok(Format::Safetensors)
    } else if len == 0 {
        bail!("the file is empty")
    } else {
        bail!(
            "not a checkpoint: neither a torch.save file (zip or legacy) nor safetensors \
             (starts with bytes {:02x?})",
            &head[..head.len().min(8)]
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Loading into a VarStore

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadMode {
    /// Every model variable must come from the file and every file tensor must be used.
    #[default]
    Strict,
    /// Copy what matches, report the rest (e.g. a pretrained backbone into a full model).
    Partial,
}

#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub mode: LoadMode,
    /// (from_prefix, to_prefix) applied to file keys, first match wins; e.g.
    /// `("", "backbone.encoder.pvtv2_en.")`.
    pub prefix_map: Vec<(String, String)>,
    /// File keys starting with any of these — before or after mapping — are dropped, e.g.
    /// `"head."`.
    pub drop_prefixes: Vec<String>,
}

impl LoadOptions {
    pub fn strict() -> Self {
        LoadOptions::default()
    }

    pub fn partial() -> Self {
        LoadOptions {
            mode: LoadMode::Partial,
            ..LoadOptions::default()
        }
    }

    /// An official PVTv2 ImageNet checkpoint (`patch_embed1.*`, `block1.*`, ..., `head.*`) into the
    /// encoder of an FGSTP or single-frame model: partial, keys prefixed with
    /// `backbone.encoder.pvtv2_en.`, the `head.*` classifier dropped.
    pub fn pvt_v2_imagenet() -> Self {
        LoadOptions {
            mode: LoadMode::Partial,
            prefix_map: vec![(String::new(), key_layout::PVT_PREFIX.to_string())],
            drop_prefixes: vec!["head.".to_string()],
        }
    }

    fn map_key(&self, key: &str) -> String {
        for (from, to) in &self.prefix_map {
            if let Some(rest) = key.strip_prefix(from.as_str()) {
                return format!("{to}{rest}");
            }
        }
        key.to_string()
    }

    fn dropped(&self, key: &str, mapped: &str) -> bool {
        self.drop_prefixes
            .iter()
            .any(|p| key.starts_with(p.as_str()) || mapped.starts_with(p.as_str()))
    }
}

/// What [`load_into`] did. Names are model variable names for `loaded`/`missing` and file keys
/// for `skipped`/`dropped`/`ignored`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub loaded: Vec<String>,
    /// In the file, not in the model.
    pub skipped: Vec<String>,
    /// In the model, not in the file.
    pub missing: Vec<String>,
    /// In the file, dropped by [`LoadOptions::drop_prefixes`].
    pub dropped: Vec<String>,
    /// BatchNorm `num_batches_tracked` counters (tch has no such variable).
    pub ignored: Vec<String>,
}

impl LoadReport {
    pub fn summary(&self) -> String {
        format!(
            "loaded {}, skipped {} (in file, not in model), missing {} (in model, not in file), \
             dropped {}, ignored {} num_batches_tracked",
            self.loaded.len(),
            self.skipped.len(),
            self.missing.len(),
            self.dropped.len(),
            self.ignored.len()
        )
    }

    /// The summary followed by every name, grouped (for `--verbose`).
    pub fn details(&self) -> String {
        let mut out = self.summary();
        for (title, names) in [
            ("loaded", &self.loaded),
            ("skipped (in file, not in model)", &self.skipped),
            ("missing (in model, not in file)", &self.missing),
            ("dropped", &self.dropped),
            ("ignored", &self.ignored),
        ] {
            if !names.is_empty() {
                out.push_str(&format!("\n{title}:"));
                for name in names {
                    out.push_str(&format!("\n  {name}"));
                }
            }
        }
        out
    }
}

const NUM_BATCHES_TRACKED: &str = "num_batches_tracked";

fn name_list(names: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut s = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(", ... ({} more)", names.len() - SHOWN));
    }
    s
}

/// A file tensor whose shape differs from the model variable it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    pub variable: String,
    pub file_key: String,
    pub file_shape: Vec<i64>,
    pub model_shape: Vec<i64>,
}

impl std::fmt::Display for ShapeMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.variable)?;
        if self.file_key != self.variable {
            write!(f, " (file key {:?})", self.file_key)?;
        }
        write!(
            f,
            ": the file has {:?}, the model expects {:?}",
            self.file_shape, self.model_shape
        )
    }
}

/// What [`load_into`] would do, without changing anything: `report.loaded` lists the variables
/// that would be filled. Shape mismatches are collected instead of failing.
#[derive(Debug, Clone, Default)]
pub struct LoadPlan {
    pub report: LoadReport,
    /// The file key each entry of `report.loaded` comes from.
    pub loaded_from: Vec<String>,
    pub mismatched: Vec<ShapeMismatch>,
}

impl LoadPlan {
    /// Every variable comes from the file, every file tensor goes to a variable (BatchNorm
    /// counters and dropped keys aside), and all shapes agree.
    pub fn is_exact(&self) -> bool {
        self.mismatched.is_empty()
            && self.report.skipped.is_empty()
            && self.report.missing.is_empty()
    }
}

/// Plans a load of `sd` into `vs` (see [`load_into`]); fails only if two file keys map to one
/// variable.
pub fn plan_load(vs: &tch::nn::VarStore, sd: &StateDict, opts: &LoadOptions) -> Result<LoadPlan> {
    let variables = vs.variables();
    let mut plan = LoadPlan::default();
    let mut source_of: HashMap<String, &str> = HashMap::new();
    for (key, tensor) in sd.iter() {
        let report = &mut plan.report;
        if key == NUM_BATCHES_TRACKED || key.ends_with(".num_batches_tracked") {
            report.ignored.push(key.to_string());
            continue;
        }
        let mapped = opts.map_key(key);
        if opts.dropped(key, &mapped) {
            report.dropped.push(key.to_string());
            continue;
        }
        let Some(var) = variables.get(&mapped) else {
            report.skipped.push(key.to_string());
            continue;
        };
        if let Some(previous) = source_of.insert(mapped.clone(), key) {
            bail!("file keys {previous:?} and {key:?} both map to model variable {mapped:?}");
        }
        if var.size() != tensor.size() {
            plan.mismatched.push(ShapeMismatch {
                variable: mapped,
                file_key: key.to_string(),
                file_shape: tensor.size(),
                model_shape: var.size(),
            });
            continue;
        }
        report.loaded.push(mapped);
        plan.loaded_from.push(key.to_string());
    }
    let mut missing: Vec<String> = variables
        .keys()
        .filter(|name| !source_of.contains_key(*name))
        .cloned()
        .collect();
    missing.sort();
    plan.report.missing = missing;
    Ok(plan)
}

/// Copies matching tensors into the var store (under `no_grad`, converted to each variable's
/// dtype and device). Everything is checked before anything is copied, so an error leaves the
/// var store unchanged. A shape mismatch is an error naming the key and both shapes; in
/// [`LoadMode::Strict`] so is any skipped or missing key. `num_batches_tracked` is ignored.
pub fn load_into(
    vs: &mut tch::nn::VarStore,
    sd: &StateDict,
    opts: &LoadOptions,
) -> Result<LoadReport> {
    let plan = plan_load(vs, sd, opts)?;
    if let Some(first) = plan.mismatched.first() {
        let more = match plan.mismatched.len() {
            1 => String::new(),
            n => format!(" (and {} more mismatches)", n - 1),
        };
        bail!("shape mismatch for {first}{more}");
    }
    let LoadPlan {
        report,
        loaded_from,
        ..
    } = plan;
    if opts.mode == LoadMode::Strict && (!report.skipped.is_empty() || !report.missing.is_empty()) {
        let mut why = Vec::new();
        if !report.missing.is_empty() {
            why.push(format!(
                "{} model variables are not in the file: {}",
                report.missing.len(),
                name_list(&report.missing)
            ));
        }
        if !report.skipped.is_empty() {
            why.push(format!(
                "{} file tensors are not in the model: {}",
                report.skipped.len(),
                name_list(&report.skipped)
            ));
        }
        bail!(
            "strict load failed: {} (use a partial load for a checkpoint of part of the model)",
            why.join("; ")
        );
    }
    let variables = vs.variables();
    tch::no_grad(|| -> Result<()> {
        for (name, key) in report.loaded.iter().zip(&loaded_from) {
            let tensor = sd.get(key).expect("planned from this state dict");
            let mut var = variables[name].shallow_clone();
            var.f_copy_(tensor)
                .map_err(|e| anyhow!("copying {name:?} into the model: {e}"))?;
        }
        Ok(())
    })?;
    Ok(report)
}

/// Writes `tensors` as `.safetensors` with extra `metadata` entries (strings), atomically:
/// e.g. a training checkpoint's progress and configuration.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    write_atomically(path, |tmp| {
        safetensors_format::write(tmp, tensors, metadata)
    })
    .with_context(|| format!("writing {}", path.display()))
}

/// The string metadata of a `.safetensors` file (its header only is read).
pub fn read_safetensors_metadata(path: &Path) -> Result<HashMap<String, String>> {
    safetensors_format::read_metadata(path)
        .with_context(|| format!("reading the metadata of {}", path.display()))
}

/// Lets `write` fill a temporary file next to `path` (it receives that file's path), syncs it,
/// then renames it over `path` (`tempfile`'s `persist`): readers, and a crash, see the old file
/// or the new one, never a mix. The temporary file is removed if anything fails.
fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut temporary = tempfile::Builder::new();
    // The permissions `File::create` gives (0o666 less the umask), not a temporary file's 0o600.
    #[cfg(unix)]
    temporary.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let tmp = temporary
        .tempfile_in(dir)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let permissions = tmp.as_file().metadata().map(|m| m.permissions());
    write(tmp.path())?;
    // `write` may put a file of its own there (safetensors writes a 0o600 temporary file and
    // renames it over ours): the mode is set back.
    if let Ok(permissions) = permissions {
        std::fs::set_permissions(tmp.path(), permissions)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    std::fs::File::open(tmp.path())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_keeps_the_old_file_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        let write_bytes =
            |bytes: &'static [u8]| write_atomically(&path, |tmp| Ok(std::fs::write(tmp, bytes)?));
        write_bytes(b"old").unwrap();
        let err = write_atomically(&path, |tmp| {
            std::fs::write(tmp, b"half")?;
            anyhow::bail!("disk full")
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("disk full"));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "only the real file remains");
        write_bytes(b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }

    #[cfg(unix)]
    #[test]
    fn a_safetensors_checkpoint_gets_the_mode_of_any_new_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // What the umask lets a plain new file have (0o644 under the usual 0o022).
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain).unwrap();
        let path = dir.path().join("w.safetensors");
        let weights =
            StateDict::from_tensors(vec![("w".into(), Tensor::ones([2], tch::kind::FLOAT_CPU))])
                .unwrap();
        weights.write(&path).unwrap();
        assert_eq!(mode(&path), mode(&plain), "safetensors' own 0o600 was kept");
        write_safetensors(
            &path,
            &[("w".into(), Tensor::ones([2], tch::kind::FLOAT_CPU))],
            HashMap::new(),
        )
        .unwrap();
        assert_eq!(mode(&path), mode(&plain));
    }
}
