//! Benchmark result files as types (layout: benchmarks/README.md). What a runner process reports is typed once, in
//! the schema crate the runner writes with (benchmarks/schema), and re-exported here; the files `bench` writes
//! around those reports are typed below. `report`, the engine suite and generation read them back through this
//! module: no other module reads result JSON.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

mod accelerators;
mod delivery;
pub mod report;
pub mod sustained_plot;
pub use accelerators::{AcceleratorRow, AcceleratorsSummary};
pub use bench_schema::cascade::{CascadeComparison, CascadePathTaken, CascadeProfile, ComparedLine, ProfiledLine};
pub use bench_schema::chat::{ChatOutput, ChatTurn};
pub use bench_schema::generation::{GenerationOutput, GenerationRun};
pub use bench_schema::measured::{Measured, Metrics, ShapeBuckets};
pub use bench_schema::outputs::DumpedOutputs;
pub use bench_schema::scheduling::{SchedulingMetrics, SchedulingOutput};
pub use bench_schema::sustained::{Sustained, SustainedOutput};
pub use delivery::{Delivery, DeliveryFile};

/// Version of the result layout. Readers refuse files from a newer layout rather than misread them.
pub const SCHEMA_VERSION: u32 = 1;

/// One configuration's result file (`bench --json`), or one entry of a suite's `results`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct BenchResult {
    pub schema: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub openautoglm_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    pub device: DeviceInfo,
    pub model: ModelInfo,
    /// Set when the configuration could not run on the device (in a suite): a finding, not the end of the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(flatten)]
    pub measured: Measured,
    pub accuracy_vs_fp32: Option<Accuracy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs_vs_host: Option<OutputCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup: Option<SetupInfo>,
    /// The engine suite's per-round metrics of this setup.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub per_round: Vec<Metrics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
}

impl BenchResult {
    /// "model precision", the name of a configuration in tables.
    pub fn configuration(&self) -> String {
        format!("{} {}", self.model.id, self.model.precision)
    }

    /// The `--vs` entry of `runner`, if it ran.
    pub fn peer(&self, runner: &str) -> Option<&RunnerComparison> {
        self.comparison.as_ref()?.runners.iter().find(|r| r.runner == runner)
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct DeviceInfo {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    pub arch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    pub emulated: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct ModelInfo {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub precision: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_size_mb: Option<f64>,
}

/// A precision variant against FP32 on the recipe input (made by tools/models/prepare_variants.py).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Accuracy {
    /// The bundle's verdict: the variant passed its task's measure on every validation input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accurate: Option<bool>,
    pub cosine_similarity: Option<f64>,
    pub max_abs_error: Option<f64>,
    pub top1_agreement: Option<f64>,
    pub non_finite_outputs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_box_iou: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_box_same_class: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map_iou: Option<f64>,
    /// A one-probability classifier (speech, a wake word): the largest |p - p_fp32|, and whether the decision at
    /// 0.5 stayed the same on every input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score_error: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_same: Option<bool>,
}

impl Accuracy {
    /// The bundle's verdict for tables: "yes", "no", or "-" where there is none.
    pub fn verdict(&self) -> &'static str {
        match self.accurate {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        }
    }

    /// The task's own measure, for tables: "  box IoU 0.98 (same class)", "  map IoU 0.91", "  score ±0.012
    /// (same decisions)", or nothing.
    pub fn task_measure(&self) -> String {
        if let Some(iou) = self.top_box_iou {
            let class = if self.top_box_same_class == Some(true) { "same class" } else { "other class" };
            return format!("  box IoU {iou:.3} ({class})");
        }
        if let Some(error) = self.score_error {
            let decisions = if self.decision_same == Some(true) { "same decisions" } else { "a decision changed" };
            return format!("  score ±{error:.3} ({decisions})");
        }
        self.map_iou.map_or(String::new(), |iou| format!("  map IoU {iou:.3}"))
    }
}

/// A variant as `variants.json` records it: its file and size, or why it could not be made, and its accuracy.
#[derive(Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct Variant {
    pub file: Option<String>,
    pub size_bytes: Option<f64>,
    pub error: Option<String>,
    /// Mean latency on the host where `models prepare` ran (python onnxruntime, 2 threads).
    pub latency_ms: Option<f64>,
    /// Mixed variants: the nodes kept at FP32.
    pub kept_fp32: Option<Vec<String>>,
    #[serde(flatten)]
    pub accuracy: Accuracy,
}

/// `variants.json` beside a model's variants (tools/models/prepare_variants.py).
#[derive(Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct VariantIndex {
    pub stamp: Option<String>,
    pub variants: BTreeMap<String, Variant>,
}

/// A device's first-inference outputs against the host's on the same input.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct OutputCheck {
    pub max_abs_diff: f64,
    pub values: usize,
    pub atol: f64,
    pub rtol: f64,
    #[serde(rename = "match")]
    pub matches: bool,
}

/// Which engine-suite setup a result measured.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct SetupInfo {
    pub experiment: String,
    pub label: String,
    pub flags: Vec<String>,
}

/// `--vs`: each runner against the Rust core on pooled samples.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Comparison {
    pub rounds: usize,
    pub baseline: String,
    pub runners: Vec<RunnerComparison>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct RunnerComparison {
    pub runner: String,
    pub runs: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub mean_ms: f64,
    pub std_ms: f64,
    pub min_ms: f64,
    pub p50_ratio_vs_rust: f64,
    pub p50_ratio_per_round: Vec<f64>,
    pub p50_overhead_us: f64,
    /// Mean over rounds of the runner's heap allocation per call (JVM runners).
    pub alloc_bytes_per_run: Option<f64>,
    /// How the runner took its outputs (`caller buffers` or `allocated`), where it says.
    pub outputs: Option<String>,
    /// Median over rounds: from spawning the runner's process to its first result.
    pub cold_start_ms: Option<f64>,
    /// Median over rounds: resident memory once the model is loaded.
    pub rss_after_load_mb: Option<f64>,
    /// Median over rounds: process CPU time (every thread) per timed inference.
    pub cpu_ms_per_run: Option<f64>,
}

/// A suite's file: its results and, for the engine suite, the experiments' summary.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct SuiteFile {
    pub schema: u32,
    pub suite: String,
    pub device: DeviceInfo,
    pub git_commit: Option<String>,
    pub experiments: Option<Vec<ExperimentSummary>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accelerators: Option<AcceleratorsSummary>,
    pub results: Vec<BenchResult>,
}

/// One engine-suite experiment: treatment over baseline on its metric.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct ExperimentSummary {
    pub experiment: String,
    pub model: String,
    pub precision: String,
    pub metric: String,
    pub baseline: String,
    pub treatment: String,
    pub baseline_ms: f64,
    pub treatment_ms: f64,
    pub ratio: f64,
    pub ratio_per_round: Vec<f64>,
    pub baseline_peak_rss_mb: Option<f64>,
    pub treatment_peak_rss_mb: Option<f64>,
    pub treatment_compile_cache: Option<String>,
    pub treatment_shape_buckets: Option<ShapeBuckets>,
}

/// `bench --generate` on the host.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct GenerationFile {
    pub schema: u32,
    pub suite: String,
    pub model: String,
    pub question: String,
    pub output_tokens: u32,
    pub threads: u32,
    pub rounds: usize,
    pub runs_per_round: usize,
    pub results: Vec<GenerationRow>,
}

/// One precision: medians per runner, and ours against onnxruntime-genai.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct GenerationRow {
    pub precision: String,
    pub runners: Vec<GenerationStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_genai: Option<VersusGenai>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct GenerationStats {
    pub runner: String,
    pub runs: usize,
    pub prompt_tokens: Option<u64>,
    pub generated_tokens: Option<u64>,
    pub time_to_first_token_ms: Option<f64>,
    pub tokens_per_second: Option<f64>,
    pub token_p50_ms: Option<f64>,
    pub token_p95_ms: Option<f64>,
    pub peak_rss_mb: Option<f64>,
    pub request_rss_rise_mb: Option<f64>,
    pub rss_after_load_mb: Option<f64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct VersusGenai {
    pub time_to_first_token_ratio: Option<f64>,
    pub tokens_per_second_ratio: Option<f64>,
    pub token_p50_ratio: Option<f64>,
    pub same_greedy_tokens: bool,
    pub same_prompt_tokens: bool,
}

/// `bench --generate --device ...`: per precision, the device's runs and whether its greedy tokens equal the host's.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct DeviceGenerationFile {
    pub schema: u32,
    pub suite: String,
    pub model: String,
    pub results: Vec<DeviceGenerationRow>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct DeviceGenerationRow {
    pub precision: String,
    pub device: DeviceInfo,
    pub runs: Vec<GenerationRun>,
    pub same_greedy_tokens_as_host: bool,
}

/// `bench --suite scheduling`: what was run where, and the measurements.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct SchedulingFile {
    pub schema: u32,
    pub suite: String,
    pub device: DeviceInfo,
    pub git_commit: Option<String>,
    pub ort_version: String,
    pub interactive_model: String,
    pub background_model: String,
    pub llm: Option<String>,
    pub interval_ms: f64,
    pub requests: u64,
    pub scheduling: SchedulingMetrics,
}

/// `bench --sustained MINUTES`: what ran where, and the per-minute figures under `"sustained"`.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct SustainedFile {
    pub schema: u32,
    pub device: DeviceInfo,
    pub git_commit: Option<String>,
    pub ort_version: String,
    pub model: String,
    pub precision: String,
    pub threads: i32,
    pub sustained: Sustained,
}

/// `bench --suite chat`: the figures, and the runner's measurements behind them.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct ChatFile {
    pub schema: u32,
    pub suite: String,
    pub device: DeviceInfo,
    pub git_commit: Option<String>,
    pub llm: String,
    pub chat: ChatSummary,
    pub runs: ChatOutput,
}

/// The chat suite's figures (field names are the issue's; benchmarks/README.md explains each). Times to first token
/// are the waits a user sees: laying out and tokenizing the prompt, the prefill and the first choice.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct ChatSummary {
    pub turn8_ttft_ratio: f64,
    pub turn8_ttft_ratio_without_reuse: f64,
    pub tokens_equal: bool,
    pub shared_prefix_ttft_ratio: f64,
    pub system_prompt_tokens: u64,
    pub int4_variant: String,
    pub int4_tokens_per_s_ratio: f64,
    pub int4_quality_passed: bool,
}

impl ChatSummary {
    pub fn of(output: &ChatOutput, int4_variant: &str, int4_quality_passed: bool) -> ChatSummary {
        let ratio = |turns: &[ChatTurn]| match (turns.first(), turns.last()) {
            (Some(first), Some(last)) if first.wait_ms > 0.0 => last.wait_ms / first.wait_ms,
            _ => 0.0,
        };
        let speed = |variant: &str| output.decode.iter().find(|d| d.variant == variant).map(|d| d.tokens_per_second);
        ChatSummary {
            turn8_ttft_ratio: ratio(&output.with_reuse),
            turn8_ttft_ratio_without_reuse: ratio(&output.without_reuse),
            tokens_equal: output.tokens_equal,
            shared_prefix_ttft_ratio: output.second_chat_wait_ms / output.first_chat_wait_ms.max(1e-9),
            system_prompt_tokens: output.system_prompt_tokens,
            int4_variant: int4_variant.to_owned(),
            int4_tokens_per_s_ratio: match (speed(int4_variant), speed("fp32")) {
                (Some(ours), Some(fp32)) if fp32 > 0.0 => ours / fp32,
                _ => 0.0,
            },
            int4_quality_passed,
        }
    }
}

/// Reads a JSON file written by a runner or by `bench` into its type.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a result of this layout", path.display()))
}

/// Writes `value` as pretty JSON.
pub fn write<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, serde_json::to_string_pretty(value)?).with_context(|| format!("cannot write {}", path.display()))
}

/// Result files (single results or suites, any devices) as one flat list of results.
pub fn read_results(paths: &[impl AsRef<Path>]) -> Result<Vec<BenchResult>> {
    /// A file is a suite when it has `results`, else one result.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ResultFile {
        Suite { schema: Option<u32>, results: Vec<BenchResult> },
        Single(Box<BenchResult>),
    }
    let mut all = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let (schema, results) = match read::<ResultFile>(path)? {
            ResultFile::Suite { schema, results } => (schema.unwrap_or(0), results),
            ResultFile::Single(result) => (result.schema, vec![*result]),
        };
        if schema > SCHEMA_VERSION || results.iter().any(|r| r.schema > SCHEMA_VERSION) {
            bail!("{} has result layout {schema}, newer than this xtask's {SCHEMA_VERSION}", path.display());
        }
        all.extend(results);
    }
    if all.is_empty() {
        bail!("no results in {:?}", paths.iter().map(|p| p.as_ref().display().to_string()).collect::<Vec<_>>());
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Rust runner's report, as benchmarks/runner/src/main.rs writes it, reads into the types and writes
    /// back with the same fields.
    #[test]
    fn a_runner_report_round_trips() {
        let text = r#"{"ort_version":"1.31.1","threads":2,"optimize_level":"O3","accelerator":"cpu",
            "compile_cache":"Disabled","shape_buckets":{"bucket_runs":[],"dynamic_runs":12},"fed_f16":false,
            "metrics":{"runtime_init_ms":5.0,"session_create_ms":40.5,"first_inference_ms":3.0,"warmup_runs":10,
            "warmup_mean_ms":1.1,"runs":200,"mean_ms":1.0,"std_ms":0.1,"min_ms":0.9,"max_ms":1.4,"p50_ms":1.0,
            "p90_ms":1.2,"p95_ms":1.3,"p99_ms":1.4,"rss_start_mb":3.0,"rss_after_runtime_mb":20.0,
            "rss_after_load_mb":60.0,"peak_rss_mb":70.0},
            "placement":{"nodes_by_provider":{"CPUExecutionProvider":12},"partitions":1,
            "providers":[{"provider":"CPUExecutionProvider","nodes":12,"partitions":1}],"warnings":[]},
            "samples_ms":[1.0,1.1]}"#;
        let measured: Measured = serde_json::from_str(text).unwrap();
        assert_eq!(measured.metrics.runs, Some(200));
        assert_eq!(measured.placement.as_ref().and_then(|p| p.partitions), Some(1));
        let result = BenchResult { schema: SCHEMA_VERSION, measured: measured.clone(), ..Default::default() };
        let back: BenchResult = serde_json::from_str(&serde_json::to_string(&result).unwrap()).unwrap();
        assert_eq!(back.measured, measured);
    }

    #[test]
    fn newer_layouts_are_refused_and_suites_flatten() {
        let dir = std::env::temp_dir().join(format!("openautoglm-results-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let one =
            BenchResult { schema: 1, model: ModelInfo { id: "m".into(), ..Default::default() }, ..Default::default() };
        let suite = SuiteFile { schema: 1, results: vec![one.clone(), one.clone()], ..Default::default() };
        write(&dir.join("suite.json"), &suite).unwrap();
        write(&dir.join("one.json"), &one).unwrap();
        assert_eq!(read_results(&[dir.join("suite.json"), dir.join("one.json")]).unwrap().len(), 3);
        write(&dir.join("future.json"), &BenchResult { schema: SCHEMA_VERSION + 1, ..one }).unwrap();
        assert!(read_results(&[dir.join("future.json")]).is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
