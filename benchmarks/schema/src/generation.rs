//! What the runner's `--generate` reports (and onnxruntime-genai's peer, benchmarks/peers/genai_generate.py).

use serde::{Deserialize, Serialize};

/// What a generation runner reports (the Rust runner's `--generate`, peers/genai_generate.py).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct GenerationOutput {
    pub runner: String,
    /// The decoder file that ran (the Rust runner).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub load_ms: Option<f64>,
    /// Resident memory once the model is loaded, before any request: the model's own footprint.
    pub rss_after_load_mb: Option<f64>,
    pub runs: Vec<GenerationRun>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct GenerationRun {
    pub prompt_tokens: u64,
    pub generated_tokens: u64,
    pub tokens: Vec<u32>,
    pub time_to_first_token_ms: f64,
    pub tokens_per_second: f64,
    pub token_p50_ms: f64,
    pub token_p95_ms: f64,
    /// The runner process's peak resident memory.
    pub peak_rss_mb: Option<f64>,
    /// How far the request raised resident memory above where it started (Rust runner only).
    pub request_rss_rise_mb: Option<f64>,
    /// Speculative decoding (Rust runner): tokens drafted, drafted tokens the decoder accepted, decoder passes.
    pub draft_tokens: u64,
    pub accepted_draft_tokens: u64,
    pub decode_passes: u64,
}
