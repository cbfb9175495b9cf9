//! The element types a checkpoint may hold, with their names in each format.

use tch::Kind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F64,
    F32,
    F16,
    BF16,
    F8E4M3,
    F8E5M2,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    pub const ALL: [DType; 12] = [
        DType::F64,
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::F8E4M3,
        DType::F8E5M2,
        DType::I64,
        DType::I32,
        DType::I16,
        DType::I8,
        DType::U8,
        DType::Bool,
    ];

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::F8E4M3 | DType::F8E5M2 | DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            DType::F64 => Kind::Double,
            DType::F32 => Kind::Float,
            DType::F16 => Kind::Half,
            DType::BF16 => Kind::BFloat16,
            DType::F8E4M3 => Kind::Float8e4m3fn,
            DType::F8E5M2 => Kind::Float8e5m2,
            DType::I64 => Kind::Int64,
            DType::I32 => Kind::Int,
            DType::I16 => Kind::Int16,
            DType::I8 => Kind::Int8,
            DType::U8 => Kind::Uint8,
            DType::Bool => Kind::Bool,
        }
    }

    pub fn from_kind(kind: Kind) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.kind() == kind)
    }

    /// PyTorch's name, as in `torch.float32`.
    pub fn torch_name(self) -> &'static str {
        match self {
            DType::F64 => "float64",
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F8E4M3 => "float8_e4m3fn",
            DType::F8E5M2 => "float8_e5m2",
            DType::I64 => "int64",
            DType::I32 => "int32",
            DType::I16 => "int16",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::Bool => "bool",
        }
    }

    /// A `torch.<name>` dtype global (as `_rebuild_tensor_v3` receives it); aliases included.
    pub fn from_torch_name(name: &str) -> Option<DType> {
        let alias = match name {
            "double" => "float64",
            "float" => "float32",
            "half" => "float16",
            "long" => "int64",
            "int" => "int32",
            "short" => "int16",
            other => other,
        };
        DType::ALL.into_iter().find(|d| d.torch_name() == alias)
    }

    /// The typed-storage class `torch.save` pickles for this dtype (`None`: the dtype is only
    /// saved through an untyped storage and `_rebuild_tensor_v3`).
    pub fn storage_name(self) -> Option<&'static str> {
        Some(match self {
            DType::F64 => "DoubleStorage",
            DType::F32 => "FloatStorage",
            DType::F16 => "HalfStorage",
            DType::BF16 => "BFloat16Storage",
            DType::I64 => "LongStorage",
            DType::I32 => "IntStorage",
            DType::I16 => "ShortStorage",
            DType::I8 => "CharStorage",
            DType::U8 => "ByteStorage",
            DType::Bool => "BoolStorage",
            DType::F8E4M3 | DType::F8E5M2 => return None,
        })
    }

    pub fn from_storage_name(name: &str) -> Option<DType> {
        DType::ALL
            .into_iter()
            .find(|d| d.storage_name() == Some(name))
    }

    pub fn to_safetensors(self) -> safetensors::Dtype {
        use safetensors::Dtype as S;
        match self {
            DType::F64 => S::F64,
            DType::F32 => S::F32,
            DType::F16 => S::F16,
            DType::BF16 => S::BF16,
            DType::F8E4M3 => S::F8_E4M3,
            DType::F8E5M2 => S::F8_E5M2,
            DType::I64 => S::I64,
            DType::I32 => S::I32,
            DType::I16 => S::I16,
            DType::I8 => S::I8,
            DType::U8 => S::U8,
            DType::Bool => S::BOOL,
        }
    }

    pub fn from_safetensors(dtype: safetensors::Dtype) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.to_safetensors() == dtype)
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.torch_name())
    }
}
