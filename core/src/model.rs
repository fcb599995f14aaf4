//! What a loaded model declares: its inputs and outputs and its metadata.

use std::collections::HashMap;

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

use crate::error::{OrtResultExt, Result};
use crate::tensor::ElementType;

/// One dimension of a declared shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A size fixed by the model.
    Fixed { size: i64 },
    /// A dynamic size with a name (e.g. `batch`, `sequence`).
    Symbolic { name: String },
    /// A dynamic size without a name.
    Dynamic,
}

/// A declared input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// `None` when the value is not a tensor of a supported element type (maps, sequences, 8-bit floats).
    pub element_type: Option<ElementType>,
    pub shape: Vec<Dim>,
}

/// Metadata written into the model by its producer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelMetadata {
    pub producer: Option<String>,
    pub graph_name: Option<String>,
    pub domain: Option<String>,
    pub description: Option<String>,
    pub version: Option<i64>,
    pub custom: HashMap<String, String>,
}

/// Everything a caller needs to feed a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    pub metadata: ModelMetadata,
}

impl ModelInfo {
    pub fn input(&self, name: &str) -> Option<&TensorInfo> {
        self.inputs.iter().find(|i| i.name == name)
    }
}

/// Our element type for ONNX Runtime's; `None` for those the SDK does not carry (the 8- and 4-bit floats and
/// integers, complex numbers).
pub(crate) fn element_type_of(ty: TensorElementType) -> Option<ElementType> {
    Some(match ty {
        TensorElementType::Float32 => ElementType::F32,
        TensorElementType::Float16 => ElementType::F16,
        TensorElementType::Float64 => ElementType::F64,
        TensorElementType::Int8 => ElementType::I8,
        TensorElementType::Uint8 => ElementType::U8,
        TensorElementType::Int16 => ElementType::I16,
        TensorElementType::Uint16 => ElementType::U16,
        TensorElementType::Int32 => ElementType::I32,
        TensorElementType::Uint32 => ElementType::U32,
        TensorElementType::Int64 => ElementType::I64,
        TensorElementType::Uint64 => ElementType::U64,
        TensorElementType::Bool => ElementType::Bool,
        TensorElementType::Bfloat16 => ElementType::Bf16,
        TensorElementType::String => ElementType::String,
        _ => return None,
    })
}

fn tensor_info(name: &str, ty: &ValueType) -> TensorInfo {
    match ty {
        ValueType::Tensor { ty, shape, dimension_symbols } => TensorInfo {
            name: name.to_owned(),
            element_type: element_type_of(*ty),
            shape: shape
                .iter()
                .enumerate()
                .map(|(i, &d)| match (d, dimension_symbols.get(i).filter(|s| !s.is_empty())) {
                    (d, _) if d >= 0 => Dim::Fixed { size: d },
                    (_, Some(sym)) => Dim::Symbolic { name: sym.clone() },
                    _ => Dim::Dynamic,
                })
                .collect(),
        },
        _ => TensorInfo { name: name.to_owned(), element_type: None, shape: Vec::new() },
    }
}

impl ModelInfo {
    /// What a built session declares (read once per load).
    pub(crate) fn of_session(session: &Session) -> Result<ModelInfo> {
        let inputs = session.inputs().iter().map(|o| tensor_info(o.name(), o.dtype())).collect();
        let outputs = session.outputs().iter().map(|o| tensor_info(o.name(), o.dtype())).collect();
        let meta = session.metadata().or_invalid_model("unreadable metadata")?;
        let custom = meta
            .custom_keys()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|k| meta.custom(&k).map(|v| (k, v)))
            .collect();
        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
        let metadata = ModelMetadata {
            producer: non_empty(meta.producer()),
            graph_name: non_empty(meta.name()),
            domain: non_empty(meta.domain()),
            description: non_empty(meta.description()),
            version: meta.version(),
            custom,
        };
        Ok(ModelInfo { inputs, outputs, metadata })
    }
}
