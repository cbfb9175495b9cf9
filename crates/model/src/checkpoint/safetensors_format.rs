//! `.safetensors` files, through the `safetensors` crate (which validates the header, offsets
//! and sizes against the buffer).

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use safetensors::tensor::{SafeTensors, View};
use tch::Tensor;

use super::dtype::DType;
use super::torch_reader::tensor_from_bytes;
use super::torch_writer::{tensor_bytes, tensor_meta};

/// Whether `head` starts like a safetensors file: a little-endian header length, then `{`.
pub fn looks_safetensors(head: &[u8], file_len: u64) -> bool {
    if head.len() < 9 {
        return false;
    }
    let n = u64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
    head[8] == b'{' && n.checked_add(8).is_some_and(|end| end <= file_len)
}

/// The tensors in file (data offset) order.
pub fn read(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow!("not a valid safetensors file: {e}"))?;
    let (_, metadata) = SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow!("not a valid safetensors file: {e}"))?;
    let mut tensors = Vec::with_capacity(st.len());
    for name in metadata.offset_keys() {
        let view = st
            .tensor(&name)
            .map_err(|e| anyhow!("tensor {name:?}: {e}"))?;
        let dtype = DType::from_safetensors(view.dtype()).ok_or_else(|| {
            anyhow!(
                "tensor {name:?} has dtype {:?}, which fgstp cannot read",
                view.dtype()
            )
        })?;
        let mut data = std::borrow::Cow::Borrowed(view.data());
        if dtype == DType::Bool && data.iter().any(|&b| b > 1) {
            data = data.iter().map(|&b| u8::from(b != 0)).collect();
        }
        let tensor = tensor_from_bytes(&data, view.shape(), dtype)
            .map_err(|e| anyhow!("tensor {name:?}: {e}"))?;
        tensors.push((name, tensor));
    }
    Ok(tensors)
}

/// A tensor whose bytes are copied out only when the writer reaches it, so writing needs one
/// tensor's worth of extra memory instead of a copy of the whole checkpoint.
struct LazyView<'a> {
    tensor: Tensor,
    dtype: DType,
    shape: Vec<usize>,
    failed: &'a Cell<Option<String>>,
    key: &'a str,
}

impl View for LazyView<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype.to_safetensors()
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        match tensor_bytes(&self.tensor, self.dtype, &self.shape) {
            Ok(bytes) => Cow::Owned(bytes),
            Err(e) => {
                // `View::data` cannot fail: remember the error, write zeros, fail afterwards.
                self.failed.set(Some(format!("tensor {:?}: {e}", self.key)));
                Cow::Owned(vec![0; self.data_len()])
            }
        }
    }

    fn data_len(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.size()
    }
}

/// Writes `tensors` with `metadata` (beside the `format = pt` key PyTorch tools expect).
pub fn write(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let failed = Cell::new(None);
    let mut views = Vec::with_capacity(tensors.len());
    for (key, tensor) in tensors {
        let (dtype, shape) = tensor_meta(key, tensor)?;
        views.push((
            key.as_str(),
            LazyView {
                tensor: tensor.shallow_clone(),
                dtype,
                shape,
                failed: &failed,
                key,
            },
        ));
    }
    // The key the `safetensors` Python package writes for PyTorch tensors.
    let mut metadata = metadata;
    metadata.insert("format".to_string(), "pt".to_string());
    safetensors::serialize_to_file(views, Some(metadata), path)?;
    match failed.take() {
        Some(e) => bail!(e),
        None => Ok(()),
    }
}

/// The `__metadata__` map of a safetensors file, read from its header alone (training
/// checkpoints are large; their progress and configuration live there).
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| anyhow!("too short to be a safetensors file"))?;
    let header_len = u64::from_le_bytes(len);
    if header_len.checked_add(8).is_none_or(|end| end > file_len) || header_len > 100_000_000 {
        return Err(anyhow!(
            "not a valid safetensors file: header length {header_len} does not fit the file"
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)?;
    let header: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| anyhow!("not a valid safetensors file: unreadable header ({e})"))?;
    let metadata = header.get("__metadata__").and_then(|m| m.as_object());
    Ok(metadata
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default())
}
