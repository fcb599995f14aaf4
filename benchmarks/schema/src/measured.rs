//! What a runner reports for one model: timings, memory, where the nodes ran.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What one runner process reports for one model: benchmarks/runner/src/main.rs, the python-ort and ORT Java
/// peers, and the Kotlin and Swift runners (peers report a subset).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Measured {
    pub ort_version: Option<String>,
    pub accelerator: Option<String>,
    pub threads: Option<u32>,
    pub optimize_level: Option<String>,
    /// The compile cache's outcome: `Disabled`, `Hit`, `Miss`, `Rebuilt`, `Unavailable`.
    pub compile_cache: Option<String>,
    pub shape_buckets: Option<ShapeBuckets>,
    pub fed_f16: Option<bool>,
    pub metrics: Metrics,
    pub placement: Option<Placement>,
    /// How the runner takes outputs: `caller buffers` (written into buffers it keeps) or `allocated`.
    pub outputs: Option<String>,
    /// The execution providers the engine registered, and those it skipped with why.
    pub accelerators: Option<AcceleratorsUsed>,
    /// Whether ONNX Runtime's telemetry was on in the runner (the SDK's default: off).
    pub telemetry_enabled: Option<bool>,
    pub samples_ms: Vec<f64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Metrics {
    pub runtime_init_ms: Option<f64>,
    pub session_create_ms: Option<f64>,
    pub first_inference_ms: Option<f64>,
    /// From the runner's process being spawned to its first result: process start, runtime, model load, first run.
    pub cold_start_ms: Option<f64>,
    /// Process CPU time (every thread) per timed inference: what spinning worker threads cost beside latency.
    pub cpu_ms_per_run: Option<f64>,
    /// The fixed call interval of the timed runs; `None`: back to back.
    pub interval_ms: Option<f64>,
    pub warmup_runs: Option<u64>,
    pub warmup_mean_ms: Option<f64>,
    pub runs: Option<u64>,
    pub mean_ms: Option<f64>,
    pub std_ms: Option<f64>,
    pub min_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub rss_start_mb: Option<f64>,
    pub rss_after_runtime_mb: Option<f64>,
    pub rss_after_load_mb: Option<f64>,
    pub peak_rss_mb: Option<f64>,
    /// Heap bytes allocated per call at steady state (JVM runners, ThreadMXBean).
    pub alloc_bytes_per_run: Option<f64>,
}

impl Metrics {
    /// A metric by its JSON name (the engine suite names the metric each experiment compares).
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "session_create_ms" => self.session_create_ms,
            "first_inference_ms" => self.first_inference_ms,
            "cold_start_ms" => self.cold_start_ms,
            "cpu_ms_per_run" => self.cpu_ms_per_run,
            "rss_after_load_mb" => self.rss_after_load_mb,
            "p50_ms" => self.p50_ms,
            "p90_ms" => self.p90_ms,
            "mean_ms" => self.mean_ms,
            "peak_rss_mb" => self.peak_rss_mb,
            _ => None,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct ShapeBuckets {
    pub bucket_runs: Vec<u64>,
    pub dynamic_runs: u64,
}

/// Where the nodes ran (or why that could not be read).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Placement {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes_by_provider: Option<BTreeMap<String, u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderPlacement>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct ProviderPlacement {
    pub provider: String,
    pub nodes: u64,
    pub partitions: u64,
}

/// The execution providers the engine registered, and those it skipped with why.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct AcceleratorsUsed {
    pub active: Vec<String>,
    pub skipped: Vec<SkippedAccelerator>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct SkippedAccelerator {
    pub provider: String,
    pub reason: String,
}
