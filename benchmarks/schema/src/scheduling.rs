//! What the runner's `--scheduling` reports.

use serde::{Deserialize, Serialize};

/// What the runner's `--scheduling` measures (benchmarks/runner/src/scheduling.rs), and `bench --suite
/// scheduling` writes under `"scheduling"`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct SchedulingMetrics {
    pub interactive_p50_idle_ms: f64,
    pub interactive_p90_idle_ms: f64,
    pub interactive_p99_idle_ms: f64,
    pub interactive_p50_loaded_ms: f64,
    pub interactive_p90_loaded_ms: f64,
    pub interactive_p99_loaded_ms: f64,
    pub interactive_p99_ratio: f64,
    /// With `--repeat N`: each repeat's ratio (idle and loaded side by side in this process), and the worst.
    pub interactive_p99_ratios: Vec<f64>,
    pub interactive_p99_ratio_max: f64,
    /// The share of the background's compute thrown away by preemption (stopped runs started again), with the
    /// SDK's defaults, and with low-priority background threads and finishing nearly done runs both off.
    pub background_work_lost_share: f64,
    pub background_work_lost_share_without: f64,
    /// The loaded/idle p99 ratio with those two off (same process, same idle runs).
    pub interactive_p99_ratio_without: f64,
    pub interactive_p99_from_due_idle_ms: f64,
    pub interactive_p99_from_due_loaded_ms: f64,
    pub fifo_interactive_p50_ms: f64,
    pub fifo_interactive_p99_ms: f64,
    pub fifo_interactive_p99_ratio: f64,
    pub background_runs_per_s_alone: f64,
    pub background_runs_per_s_under_interactive: f64,
    pub background_runs_per_s_fifo: f64,
    pub background_preempted_runs: u64,
    pub concurrent_requests_per_s: f64,
    pub serialised_requests_per_s: f64,
    pub concurrent_throughput_ratio: f64,
    pub engine_rss_mb_one_session: f64,
    pub extra_session_rss_mb: f64,
    pub background_run_ms: f64,
    pub cancelled_part_way: u64,
    pub cancel_latency_p50_ms: f64,
    pub cancel_latency_p99_ms: f64,
    pub deadline_requests: u64,
    pub deadline_exceeded: u64,
    pub late_results: u64,
    /// With `--llm`: how steadily a stream's pieces come while another request on its `Llm` prefills.
    #[serde(flatten)]
    pub llm: LlmStreamGaps,
}

/// One stream's gaps between pieces while a second request on the same `Llm` prefills a long prompt (all absent
/// when no LLM was given).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct LlmStreamGaps {
    pub llm_file: Option<String>,
    pub llm_long_prompt_tokens: Option<u64>,
    pub llm_stream_max_gap_ms: Option<f64>,
    pub llm_stream_p50_gap_ms: Option<f64>,
    pub llm_stream_gaps_during_prefill: Option<u64>,
    pub llm_stream_p50_gap_alone_ms: Option<f64>,
    pub llm_long_prefill_alone_ms: Option<f64>,
    pub llm_long_prefill_contended_ms: Option<f64>,
}

/// The runner's `--scheduling` report.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(default)]
pub struct SchedulingOutput {
    pub ort_version: String,
    pub interval_ms: f64,
    pub requests: u64,
    pub scheduling: SchedulingMetrics,
}
