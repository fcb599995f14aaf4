//! Outputs a runner writes out so another process can compare them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The outputs a runner dumps (`--dump-outputs`): per output name, its type, shape and values.
pub type DumpedOutputs = BTreeMap<String, DumpedOutput>;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct DumpedOutput {
    /// The output's element type (`float32`, `int64`, ...); its values are written as numbers whatever it is.
    #[serde(rename = "type")]
    pub element_type: String,
    pub shape: Vec<i64>,
    /// `null` where a value was not finite (JSON has no NaN).
    pub values: Vec<Option<f64>>,
}

/// The runner's `--verdict` dump of one input's outputs (read by tools/models/verdict.py): each output's values as
/// raw little-endian f32 in a file beside this record.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct VerdictOutputs {
    pub outputs: Vec<OutputFile>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct OutputFile {
    pub name: String,
    pub shape: Vec<i64>,
    pub file: String,
}
