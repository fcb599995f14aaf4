//! What a generation cost: its clocks (prompt, first token, every step after) and memory samples while it runs, and
//! the metrics they add up to.

use std::time::Instant;

const MB: f64 = 1024.0 * 1024.0;

/// What one generation cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationMetrics {
    pub prompt_tokens: i32,
    /// Of the prompt's tokens, those a chat's earlier turns left in its KV cache: not run again (0 for a first turn
    /// or a one-shot generation).
    pub cached_prompt_tokens: i32,
    pub generated_tokens: i32,
    /// Laying out (chat template) and tokenizing the prompt.
    pub prompt_ms: f64,
    /// From the prompt's tokens to the first generated token: the prefill and the first choice (onnxruntime-genai's
    /// definition). The whole wait a user sees is `prompt_ms` + this.
    pub time_to_first_token_ms: f64,
    /// Generated tokens after the first, per second of decoding.
    pub tokens_per_second: f64,
    /// Per decode step (one token each), after the first token.
    pub token_p50_ms: f64,
    pub token_p95_ms: f64,
    pub total_ms: f64,
    /// How far this request raised the process's resident memory above where it stood when the request started,
    /// sampled after each model step (the prefill and every token): the request's own cost, KV cache and logits
    /// included (Linux and Android; 0 where unknown).
    pub request_rss_rise_mb: f64,
    /// The process's peak resident memory so far, whatever raised it (Linux and Android; 0 where unknown).
    pub process_peak_rss_mb: f64,
    /// Speculative decoding: tokens drafted and checked by the model, and those it kept (0 when off).
    pub draft_tokens: i32,
    pub accepted_draft_tokens: i32,
    /// Passes of the model after the prompt's: with speculation, fewer than the tokens they produced.
    pub decode_passes: i32,
    /// Runs of the model over the prompt: one per chunk of at most the LLM's prefill chunk (fewer chunks while
    /// no other generation shares the model), so a long prompt's activations stay bounded.
    pub prefill_passes: i32,
}

impl GenerationMetrics {
    /// The share of drafted tokens the model kept (0 when nothing was drafted).
    pub fn acceptance_rate(&self) -> f64 {
        if self.draft_tokens > 0 { self.accepted_draft_tokens as f64 / self.draft_tokens as f64 } else { 0.0 }
    }

    /// Tokens after the first per pass of the model: 1 without speculation.
    pub fn tokens_per_pass(&self) -> f64 {
        if self.decode_passes > 0 { (self.generated_tokens - 1).max(0) as f64 / self.decode_passes as f64 } else { 0.0 }
    }
}

/// The counts a generation keeps itself, for [`Clock::metrics`].
pub(super) struct Counts {
    pub(super) prompt_tokens: usize,
    pub(super) cached_prompt_tokens: usize,
    pub(super) generated_tokens: usize,
    pub(super) draft_tokens: usize,
    pub(super) accepted_draft_tokens: usize,
    pub(super) decode_passes: usize,
    pub(super) prefill_passes: usize,
}

/// A generation's clocks, started when its prompt was laid out and tokenized.
pub(super) struct Clock {
    started: Instant,
    prompt_ms: f64,
    first_token_ms: Option<f64>,
    /// Per token after the first (a speculative pass's time shared among its tokens).
    step_ms: Vec<f64>,
    /// Resident memory when the request started, and the most seen after a model step since (bytes).
    rss: Option<(u64, u64)>,
    /// When memory was last read: reading it costs a /proc read, so a fast decode step does not pay one each.
    sampled: Instant,
}

/// How often a generation reads its memory (and always after the prompt, where it rises most).
const MEMORY_EVERY: std::time::Duration = std::time::Duration::from_millis(25);

impl Clock {
    pub(super) fn start(prompt_ms: f64) -> Clock {
        Clock {
            started: Instant::now(),
            prompt_ms,
            first_token_ms: None,
            step_ms: Vec::new(),
            rss: crate::metrics::memory().map(|m| (m.rss, m.rss)),
            sampled: Instant::now(),
        }
    }

    /// A token came, `elapsed` ms after the one before (the first token's time counts from the start).
    pub(super) fn token(&mut self, elapsed: f64) {
        if self.first_token_ms.is_none() {
            self.first_token_ms = Some(self.started.elapsed().as_secs_f64() * 1e3);
        } else {
            self.step_ms.push(elapsed);
        }
    }

    /// Notes the resident memory after a model step (the first, then at most every [`MEMORY_EVERY`]).
    pub(super) fn sample_memory(&mut self) {
        if self.first_token_ms.is_some() && self.sampled.elapsed() < MEMORY_EVERY {
            return;
        }
        self.sampled = Instant::now();
        if let (Some((_, max)), Some(now)) = (self.rss.as_mut(), crate::metrics::memory()) {
            *max = (*max).max(now.rss);
        }
    }

    pub(super) fn metrics(&self, counts: Counts) -> GenerationMetrics {
        let steps = crate::metrics::Summary::of(&self.step_ms);
        let decode_ms: f64 = self.step_ms.iter().sum();
        GenerationMetrics {
            prompt_tokens: counts.prompt_tokens as i32,
            cached_prompt_tokens: counts.cached_prompt_tokens as i32,
            generated_tokens: counts.generated_tokens as i32,
            prompt_ms: self.prompt_ms,
            time_to_first_token_ms: self.first_token_ms.unwrap_or_default(),
            tokens_per_second: if decode_ms > 0.0 { self.step_ms.len() as f64 * 1e3 / decode_ms } else { 0.0 },
            token_p50_ms: steps.map_or(0.0, |s| s.p50),
            token_p95_ms: steps.map_or(0.0, |s| s.p95),
            total_ms: self.prompt_ms + self.started.elapsed().as_secs_f64() * 1e3,
            request_rss_rise_mb: self.rss.map_or(0.0, |(start, max)| max.saturating_sub(start) as f64 / MB),
            process_peak_rss_mb: crate::metrics::memory().map_or(0.0, |m| m.peak_rss as f64 / MB),
            draft_tokens: counts.draft_tokens as i32,
            accepted_draft_tokens: counts.accepted_draft_tokens as i32,
            decode_passes: counts.decode_passes as i32,
            prefill_passes: counts.prefill_passes as i32,
        }
    }
}
