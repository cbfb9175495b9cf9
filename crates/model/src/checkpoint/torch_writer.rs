//! Writing `torch.save` files: a state dict as PyTorch ≥ 1.6 saves it (a zip archive; the layout
//! is described in [`super::torch_reader`]).

use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Result};
use tch::Tensor;

use super::dtype::DType;

/// Pickle protocol 2 writer for the few opcodes a state dict needs.
struct PickleWriter {
    out: Vec<u8>,
}

impl PickleWriter {
    fn global(&mut self, module: &str, name: &str) {
        self.out.push(b'c');
        self.out.extend_from_slice(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'\n');
    }

    fn str(&mut self, s: &str) {
        self.out.push(b'X');
        self.out
            .extend_from_slice(&u32::try_from(s.len()).expect("key < 4 GiB").to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
    }

    fn int(&mut self, v: u64) {
        if let Ok(b) = u8::try_from(v) {
            self.out.extend_from_slice(&[b'K', b]);
        } else if let Ok(w) = u16::try_from(v) {
            self.out.push(b'M');
            self.out.extend_from_slice(&w.to_le_bytes());
        } else if let Ok(i) = i32::try_from(v) {
            self.out.push(b'J');
            self.out.extend_from_slice(&i.to_le_bytes());
        } else {
            // LONG1, 9 bytes so the sign bit is always clear.
            self.out.extend_from_slice(&[0x8a, 9]);
            self.out.extend_from_slice(&v.to_le_bytes());
            self.out.push(0);
        }
    }

    fn int_tuple(&mut self, items: &[usize]) {
        self.out.push(b'(');
        for &v in items {
            self.int(v as u64);
        }
        self.out.push(b't');
    }

    fn empty_ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.out.extend_from_slice(b")R");
    }

    /// `_rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())` over storage `key`
    /// (v3 with an untyped storage for dtypes that have no typed storage class).
    fn tensor(&mut self, key: &str, dtype: DType, size: &[usize]) {
        let numel: usize = size.iter().product();
        let mut stride = vec![0usize; size.len()];
        let mut acc = 1usize;
        for (s, &d) in stride.iter_mut().zip(size).rev() {
            *s = acc;
            acc *= d;
        }
        let storage = dtype.storage_name();
        self.global(
            "torch._utils",
            if storage.is_some() {
                "_rebuild_tensor_v2"
            } else {
                "_rebuild_tensor_v3"
            },
        );
        self.out.push(b'(');
        self.out.push(b'(');
        self.str("storage");
        match storage {
            Some(name) => self.global("torch", name),
            None => self.global("torch.storage", "UntypedStorage"),
        }
        self.str(key);
        self.str("cpu");
        self.int(if storage.is_some() {
            numel as u64
        } else {
            (numel * dtype.size()) as u64
        });
        self.out.extend_from_slice(b"tQ");
        self.int(0);
        self.int_tuple(size);
        self.int_tuple(&stride);
        self.out.push(0x89); // NEWFALSE: requires_grad
        self.empty_ordered_dict();
        if storage.is_none() {
            self.global("torch", dtype.torch_name());
        }
        self.out.extend_from_slice(b"tR");
    }
}

/// A tensor's dtype and size, or an error naming it if fgstp cannot write its dtype.
pub fn tensor_meta(key: &str, tensor: &Tensor) -> Result<(DType, Vec<usize>)> {
    let kind = tensor.f_kind()?;
    let dtype = DType::from_kind(kind)
        .ok_or_else(|| anyhow!("tensor {key:?} has dtype {kind:?}, which fgstp cannot write"))?;
    let size = tensor
        .size()
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()?;
    Ok((dtype, size))
}

/// The contiguous little-endian bytes of a CPU copy of `tensor`.
pub fn tensor_bytes(tensor: &Tensor, dtype: DType, size: &[usize]) -> Result<Vec<u8>> {
    let numel: usize = size.iter().product();
    let mut bytes = vec![0u8; numel * dtype.size()];
    if numel > 0 {
        let cpu = tensor.f_to_device(tch::Device::Cpu)?.f_contiguous()?;
        cpu.f_copy_data_u8(&mut bytes, numel)?;
    }
    Ok(bytes)
}

/// Writes `torch.save(OrderedDict(tensors))` as PyTorch would: a zip with one storage per
/// tensor, 64-byte aligned, readable by `torch.load` (also with `weights_only=True`).
pub fn write_zip(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let metas = tensors
        .iter()
        .map(|(key, t)| tensor_meta(key, t))
        .collect::<Result<Vec<_>>>()?;
    let mut pickle = PickleWriter { out: vec![0x80, 2] };
    pickle.empty_ordered_dict();
    for (batch_index, batch) in tensors.chunks(1000).enumerate() {
        pickle.out.push(b'(');
        for (i, (key, _)) in batch.iter().enumerate() {
            let index = batch_index * 1000 + i;
            let (dtype, size) = &metas[index];
            pickle.str(key);
            pickle.tensor(&index.to_string(), *dtype, size);
        }
        pickle.out.push(b'u'); // SETITEMS
    }
    pickle.out.push(b'.');

    let file = File::create(path)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let record = |zip: &mut zip::ZipWriter<_>, name: &str, data: &[u8]| -> Result<()> {
        let options = zip::write::FileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(data.len() as u64 >= u64::from(u32::MAX));
        zip.start_file_aligned(format!("archive/{name}"), options, 64)?;
        zip.write_all(data)?;
        Ok(())
    };
    record(&mut zip, "data.pkl", &pickle.out)?;
    record(&mut zip, ".format_version", b"1")?;
    record(&mut zip, ".storage_alignment", b"64")?;
    record(&mut zip, "byteorder", b"little")?;
    for (index, ((_, tensor), (dtype, size))) in tensors.iter().zip(&metas).enumerate() {
        let bytes = tensor_bytes(tensor, *dtype, size)?;
        record(&mut zip, &format!("data/{index}"), &bytes)?;
    }
    record(&mut zip, "version", b"3\n")?;
    zip.finish()?.flush()?;
    Ok(())
}
