//! `.safetensors` files, through the `safetensors` crate (which validates the header, offsets
//! and sizes against the buffer).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, Result};
use safetensors::tensor::{SafeTensors, TensorView};
use tch::Tensor;

use super::dtype::DType;
use super::torch_format::{tensor_bytes, tensor_from_bytes, tensor_meta};

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

pub fn write(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let mut owned = Vec::with_capacity(tensors.len());
    for (key, tensor) in tensors {
        let (dtype, size) = tensor_meta(key, tensor)?;
        let bytes = tensor_bytes(tensor, dtype, &size)?;
        owned.push((key.as_str(), dtype, size, bytes));
    }
    let views = owned
        .iter()
        .map(|(key, dtype, size, bytes)| {
            TensorView::new(dtype.to_safetensors(), size.clone(), bytes)
                .map(|view| (*key, view))
                .map_err(|e| anyhow!("tensor {key:?}: {e}"))
        })
        .collect::<Result<Vec<_>>>()?;
    // The key the `safetensors` Python package writes for PyTorch tensors.
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(metadata), path)?;
    Ok(())
}
