//! What the SDK's runner says about accelerators, and the summary of `bench --suite accelerators`.

use serde::{Deserialize, Serialize};

/// `bench --suite accelerators`: the plugin execution provider against the CPU provider and python-ort on the
/// same plugin (field names are the issue's; README of benchmarks explains each).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct AcceleratorsSummary {
    pub plugin: String,
    /// Whether the runs were on an emulated Intel CPU (timings then compare runners with each other only).
    pub emulated: bool,
    pub plugin_models: usize,
    pub plugin_nodes_share: f64,
    pub plugin_vs_python_p50_ratio_max: Option<f64>,
    pub fallback_reported: bool,
    pub strict_refused: bool,
    pub telemetry_enabled: bool,
    pub models: Vec<AcceleratorRow>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct AcceleratorRow {
    pub model: String,
    /// Who ran the model in the plugin run: the plugin's provider, or the CPU (with the reason it was skipped).
    pub leading: String,
    pub skipped_reason: Option<String>,
    pub cpu_p50_ms: Option<f64>,
    pub plugin_p50_ms: Option<f64>,
    pub python_plugin_p50_ms: Option<f64>,
    /// Ours over python-ort, both on the plugin.
    pub plugin_vs_python_p50: Option<f64>,
    /// Nodes (kernels) the CPU ran in the CPU-provider run and in the plugin run.
    pub cpu_run_nodes: u64,
    pub plugin_run_cpu_nodes: u64,
    pub error: Option<String>,
}
