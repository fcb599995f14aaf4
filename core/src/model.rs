//! What a loaded model declares: its inputs and outputs and its metadata.

use std::collections::HashMap;

use crate::tensor::ElementType;

/// One dimension of a declared shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A size fixed by the model.
    Fixed { size: u64 },
    /// A dynamic size with a name (e.g. `batch`, `sequence`).
    Symbolic { name: String },
    /// A dynamic size without a name.
    Dynamic,
}

/// A declared input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    /// `None` when the value is not a tensor of a supported element type (strings, maps, sequences).
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
