//! One generation: prefill, then a token at a time (sampling, stop tokens and strings, cancellation), with its
//! text streamed as an iterator of pieces and its metrics.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use half::f16;
use ort::AsPointer;
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::SessionInputValue;
use ort::value::{DynValue, Tensor as OrtTensor};

use super::chat::PendingExchange;
use super::decoder::LlmInner;
use super::kv_cache::{SharedKvCache, kv_tensor, last_logits_only, new_tensor, shared_kv_cache};
use super::sampling::{GenerateOptions, Sampler};
use crate::error::{Error, OrtResultExt, Result, catch_panic};
use crate::schedule::lane::Request;
use crate::schedule::{CancelToken, Priority, PriorityHandle};

const MB: f64 = 1024.0 * 1024.0;

/// Prefill chunk while other generations wait for the same LLM: a few decode steps' worth of work, so their
/// streams keep a steady pace (measured by `cargo xtask bench --suite scheduling`).
pub const CONTENDED_PREFILL_CHUNK: usize = 32;

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-sequence token or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The model's context is full.
    ContextFull,
    /// Cancelled by the caller.
    Cancelled,
}

/// What one generation cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationMetrics {
    pub prompt_tokens: i32,
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
}

/// Stops a generation from another thread; it ends before its next model step (a long prompt's prefill: before
/// its next chunk). The same token type cancels engine runs.
pub type CancelHandle = CancelToken;

/// One active generation of an LLM, counted while it lives.
struct ActiveGeneration(Arc<LlmInner>);

impl ActiveGeneration {
    fn new(llm: &Arc<LlmInner>) -> ActiveGeneration {
        llm.active.fetch_add(1, Ordering::SeqCst);
        ActiveGeneration(llm.clone())
    }
}

impl Drop for ActiveGeneration {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The last position's logits (f32 or f16) copied into `out`, a buffer reused across steps.
fn last_logits(logits: &DynValue, vocab: usize, out: &mut Vec<f32>) -> Result<()> {
    out.clear();
    match logits.try_extract_tensor::<f32>() {
        Ok((_, data)) => out.extend_from_slice(&data[data.len() - vocab..]),
        Err(_) => {
            let (_, data) = logits.try_extract_tensor::<f16>().or_inference("logits")?;
            out.extend(data[data.len() - vocab..].iter().map(|h| h.to_f32()));
        }
    }
    Ok(())
}

/// The next token, when one is wanted (`pick`; else 0 and the sampler untouched, so seeded sampling does not depend
/// on how the prompt was chunked).
fn choose_if(pick: bool, sampler: &mut Sampler, logits: &mut [f32], history: &[u32], banned: &[u32]) -> u32 {
    if pick { choose(sampler, logits, history, banned) } else { 0 }
}

/// The next token from the last position's logits (modified in place), with `banned` tokens excluded.
fn choose(sampler: &mut Sampler, logits: &mut [f32], history: &[u32], banned: &[u32]) -> u32 {
    for &token in banned {
        if let Some(l) = logits.get_mut(token as usize) {
            *l = f32::NEG_INFINITY;
        }
    }
    sampler.next(logits, history)
}

/// A generation in progress: an iterator of text pieces, each valid UTF-8 (a character split across tokens is
/// held until complete). Dropping it, or [`CancelHandle::cancel`], stops it between tokens.
pub struct Generation {
    /// Counts this generation among the LLM's active ones until it ends (or is dropped).
    _active: Option<ActiveGeneration>,
    llm: Arc<LlmInner>,
    options: GenerateOptions,
    sampler: Sampler,
    tokens: Vec<u32>,
    prompt_len: usize,
    /// Model steps run so far (the first is the prefill).
    steps: usize,
    /// The KV cache between steps: the last `present` outputs, or a shared-buffer decoder's buffers.
    past: Option<Vec<DynValue>>,
    shared: Option<SharedKvCache>,
    /// The generated text so far, and how much of it was handed out.
    text: String,
    emitted: usize,
    /// Incremental detokenization state (tokenizers' decode stream): each step decodes a few tokens, not all.
    stream_ids: Vec<u32>,
    stream_prefix: String,
    stream_prefix_index: usize,
    cancel: CancelToken,
    /// Orders this generation's steps among the other work in its lane; may change while it runs.
    priority: PriorityHandle,
    finish: Option<FinishReason>,
    exchange: Option<PendingExchange>,
    /// A stop string ended the text (and cut it there).
    stopped_by_string: bool,
    /// Resident memory when the request started, and the most seen after a model step since (bytes).
    rss: Option<(u64, u64)>,
    started: Instant,
    prompt_ms: f64,
    first_token_ms: Option<f64>,
    step_ms: Vec<f64>,
    /// The last position's logits, one buffer reused across steps.
    logits: Vec<f32>,
}

impl Generation {
    pub(super) fn start(
        llm: Arc<LlmInner>,
        tokens: Vec<u32>,
        options: GenerateOptions,
        started: Instant,
        exchange: Option<PendingExchange>,
    ) -> Result<Generation> {
        options.validate().map_err(|reason| Error::InvalidConfig { reason })?;
        if tokens.is_empty() {
            return Err(Error::invalid_input("prompt", "the prompt has no tokens"));
        }
        let max = llm.config.max_positions;
        if tokens.len() >= max {
            return Err(Error::invalid_input(
                "prompt",
                format!("{} tokens; the model's context holds {max}, answer included", tokens.len()),
            ));
        }
        // The KV cache is made with the request, as genai makes its generator's state before the prompt runs: the
        // time to first token is the model's, and a cache that cannot be had fails here.
        let shared = if llm.config.past_present_share_buffer {
            let capacity = (tokens.len() + options.max_tokens.max(0) as usize).min(max);
            let session = llm.session.lock().unwrap_or_else(|e| e.into_inner());
            Some(shared_kv_cache(&llm, &session, capacity)?)
        } else {
            None
        };
        let prompt_ms = started.elapsed().as_secs_f64() * 1e3;
        let active = ActiveGeneration::new(&llm);
        Ok(Generation {
            _active: Some(active),
            sampler: Sampler::new(&options),
            prompt_len: tokens.len(),
            tokens,
            options,
            llm,
            steps: 0,
            past: None,
            shared,
            text: String::new(),
            emitted: 0,
            stream_ids: Vec::new(),
            stream_prefix: String::new(),
            stream_prefix_index: 0,
            cancel: CancelToken::default(),
            priority: PriorityHandle::new(Priority::Normal),
            finish: None,
            exchange,
            stopped_by_string: false,
            rss: crate::metrics::memory().map(|m| (m.rss, m.rss)),
            started: Instant::now(),
            prompt_ms,
            first_token_ms: None,
            step_ms: Vec::new(),
            logits: Vec::new(),
        })
    }

    pub fn cancel_handle(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// Orders this generation's next steps among the other work on its lane (default [`Priority::Normal`]): the
    /// steps of concurrent generations on one LLM interleave in order of priority, then arrival. A stream can move
    /// to the background (and back) while it runs.
    pub fn set_priority(&self, priority: Priority) {
        self.priority.set(priority)
    }

    pub fn priority(&self) -> Priority {
        self.priority.get()
    }

    /// Changes the priority from another thread, also while a step runs.
    pub fn priority_handle(&self) -> PriorityHandle {
        self.priority.clone()
    }

    /// Why it ended; `None` while it runs. Cancelled counts as ended at once, before the next step notices.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish.or(self.cancel.is_cancelled().then_some(FinishReason::Cancelled))
    }

    /// The whole answer so far.
    pub fn text(&self) -> &str {
        &self.text[..self.emitted]
    }

    /// Generated token ids so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens[self.prompt_len..]
    }

    pub fn metrics(&self) -> GenerationMetrics {
        let steps = crate::metrics::Summary::of(&self.step_ms);
        let decode_ms: f64 = self.step_ms.iter().sum();
        GenerationMetrics {
            prompt_tokens: self.prompt_len as i32,
            generated_tokens: (self.tokens.len() - self.prompt_len) as i32,
            prompt_ms: self.prompt_ms,
            time_to_first_token_ms: self.first_token_ms.unwrap_or_default(),
            tokens_per_second: if decode_ms > 0.0 { self.step_ms.len() as f64 * 1e3 / decode_ms } else { 0.0 },
            token_p50_ms: steps.map_or(0.0, |s| s.p50),
            token_p95_ms: steps.map_or(0.0, |s| s.p95),
            total_ms: self.prompt_ms + self.started.elapsed().as_secs_f64() * 1e3,
            request_rss_rise_mb: self.rss.map_or(0.0, |(start, max)| max.saturating_sub(start) as f64 / MB),
            process_peak_rss_mb: crate::metrics::memory().map_or(0.0, |m| m.peak_rss as f64 / MB),
        }
    }

    fn end(&mut self, reason: FinishReason) -> Option<String> {
        self.finish = Some(reason);
        self._active = None;
        (self.past, self.shared) = (None, None); // the KV cache's memory goes back now, not when this is dropped
        // A character cut in half by the end (max_tokens, a full context, a cancel) is kept as U+FFFD, as decoding
        // the tokens gives it: the pieces, text() and tokens() tell one answer. (A stop string cut the text on
        // purpose.)
        if !self.stopped_by_string
            && let Ok(whole) = self.llm.tokenizer.decode(&self.tokens[self.prompt_len..], true)
            && whole.len() > self.text.len()
            && whole.starts_with(self.text.as_str())
        {
            self.text = whole;
        }
        // Whatever was held back for a possible stop string is answer text after all (unless a stop string ended it).
        let rest = self.text[self.emitted..].to_owned();
        self.emitted = self.text.len();
        if let Some(exchange) = self.exchange.take() {
            exchange.answered(&self.text);
        }
        (!rest.is_empty()).then_some(rest)
    }

    /// One model step: the prompt on the first call, in chunks of at most `prefill_chunk` positions (so a long
    /// prompt's activations stay bounded: attention and MLP buffers grow with the chunk, not the prompt), then the
    /// last token. Returns the next token. While other generations share the LLM, chunks shrink to
    /// [`CONTENDED_PREFILL_CHUNK`] so their tokens keep flowing between them; a cancel lands between chunks.
    fn step(&mut self) -> Result<u32> {
        if self.steps > 0 {
            return self.run(self.tokens.len() - 1, 1, true);
        }
        let prompt = self.tokens.len();
        let mut start = 0;
        loop {
            let mut chunk = self.llm.prefill_chunk.load(Ordering::Relaxed).max(1);
            if self.llm.active.load(Ordering::SeqCst) > 1 {
                chunk = chunk.min(CONTENDED_PREFILL_CHUNK);
            }
            if prompt - start <= chunk {
                return self.run(start, prompt - start, true);
            }
            self.run(start, chunk, false)?;
            start += chunk;
            if self.cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
        }
    }

    /// Runs positions `start..start + n` through the decoder, appending them to the KV cache; with `pick`, chooses
    /// the next token from the last position's logits (else returns 0: an earlier chunk of the prompt).
    fn run(&mut self, start: usize, n: usize, pick: bool) -> Result<u32> {
        let llm = self.llm.clone();
        let total = start + n;
        let ids: Vec<i64> = self.tokens[start..total].iter().map(|&t| t as i64).collect();
        let input_ids = OrtTensor::from_array(([1usize, n], ids)).or_inference("input_ids")?;
        let mask = OrtTensor::from_array(([1usize, total], vec![1i64; total])).or_inference("attention_mask")?;
        let positions = if llm.position_ids {
            let positions: Vec<i64> = (start as i64..total as i64).collect();
            Some(OrtTensor::from_array(([1usize, n], positions)).or_inference("position_ids")?)
        } else {
            None
        };
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            vec![("input_ids".into(), input_ids.into()), ("attention_mask".into(), mask.into())];
        if let Some(positions) = positions {
            inputs.push(("position_ids".into(), positions.into()));
        }
        let last_only = if self.shared.is_none() { last_logits_only(&llm)? } else { None }; // bound once if shared
        if let (Some(value), Some(name)) = (last_only, llm.config.last_logits_input.as_deref()) {
            inputs.push((name.into(), value.into()));
        }
        // Until `min_tokens` are out, the stop tokens cannot be chosen.
        let banned: &[u32] = if self.tokens.len() - self.prompt_len < self.options.min_tokens.max(0) as usize {
            &llm.stop_tokens
        } else {
            &[]
        };
        let vocab = llm.config.vocab;
        // The step's turn on the decoder, among the other generations (and the other work in the lane).
        let _turn = llm.pool.acquire(Request {
            priority: self.priority.get(),
            deadline: None,
            cancel: Some(&self.cancel),
            active: None,
            seq: None,
        })?;
        let mut session = llm.session.lock().unwrap_or_else(|e| e.into_inner());
        let token = if let Some(shared) = self.shared.as_mut() {
            let binding = &mut shared.binding;
            for (name, value) in &inputs {
                binding.bind_input(name.as_ref(), &**value).or_inference("binding")?;
            }
            if n > 1 {
                // The prompt's logits (rows x vocab, megabytes) come from ONNX Runtime's arena, whose pages are warm
                // after the first request; a buffer of our own would be faulted in afresh at every prompt.
                let cpu = MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::CPUOutput)
                    .or_inference("logits")?;
                binding.bind_output_to_device("logits", &cpu).or_inference("logits")?;
                let outputs = session.run_binding(binding).or_inference("decoder step")?;
                let logits = outputs.get("logits").ok_or_else(|| Error::internal("the decoder gave no logits"))?;
                last_logits(logits, vocab, &mut self.logits)?;
                choose_if(pick, &mut self.sampler, &mut self.logits, &self.tokens, banned)
            } else {
                if shared.logits.is_none() {
                    let mut logits = new_tensor(vec![1, 1, vocab], llm.logits_f16).or_inference("logits")?;
                    binding.bind_output("logits", &mut logits).or_inference("logits")?;
                    shared.logits = Some(logits);
                }
                // ort's run_binding would wrap all 61 bound outputs in new values at every step; every output here
                // is already ours, so the C call alone does.
                // SAFETY: the session and binding are live, the binding holds its values, and `session` is locked.
                unsafe {
                    ort::Error::result_from_status((ort::api().RunWithBinding)(
                        session.ptr().cast_mut(),
                        std::ptr::null(),
                        binding.ptr(),
                    ))
                }
                .or_inference("decoder step")?;
                let logits = shared.logits.as_mut().expect("bound above");
                // The one-row logits buffer is ours: sample in place, without a copy (unless it holds f16).
                match logits.try_extract_tensor_mut::<f32>() {
                    Ok((_, data)) => choose_if(pick, &mut self.sampler, data, &self.tokens, banned),
                    Err(_) => {
                        last_logits(logits, vocab, &mut self.logits)?;
                        choose_if(pick, &mut self.sampler, &mut self.logits, &self.tokens, banned)
                    }
                }
            }
        } else {
            let past = match self.past.take() {
                Some(past) => past,
                None => (0..llm.past_names.len()).map(|_| kv_tensor(&llm, 0)).collect::<Result<Vec<_>>>()?,
            };
            inputs.extend(llm.past_names.iter().zip(past).map(|(name, value)| (name.as_str().into(), value.into())));
            let mut outputs = session.run(inputs).or_inference("decoder step")?;
            let logits = outputs.get("logits").ok_or_else(|| Error::internal("the decoder gave no logits"))?;
            last_logits(logits, vocab, &mut self.logits)?;
            let past = llm
                .present_names
                .iter()
                .map(|name| {
                    outputs.remove(name).ok_or_else(|| Error::internal(format!("the decoder gave no `{name}`")))
                })
                .collect::<Result<Vec<_>>>()?;
            self.past = Some(past);
            choose_if(pick, &mut self.sampler, &mut self.logits, &self.tokens, banned)
        };
        self.steps += 1;
        Ok(token)
    }

    /// The next piece of text, or `None` when the generation has ended.
    fn advance(&mut self) -> Result<Option<String>> {
        loop {
            if self.finish.is_some() {
                return Ok(None);
            }
            if self.cancel.is_cancelled() {
                return Ok(self.end(FinishReason::Cancelled));
            }
            let generated = self.tokens.len() - self.prompt_len;
            if generated >= self.options.max_tokens.max(0) as usize {
                return Ok(self.end(FinishReason::Length));
            }
            if self.tokens.len() >= self.llm.config.max_positions {
                return Ok(self.end(FinishReason::ContextFull));
            }
            let step_started = Instant::now();
            let token = match self.step() {
                Err(Error::Cancelled) => return Ok(self.end(FinishReason::Cancelled)),
                token => token?,
            };
            let elapsed = step_started.elapsed().as_secs_f64() * 1e3;
            if let (Some((_, max)), Some(now)) = (self.rss.as_mut(), crate::metrics::memory()) {
                *max = (*max).max(now.rss);
            }
            if self.first_token_ms.is_none() {
                self.first_token_ms = Some(self.started.elapsed().as_secs_f64() * 1e3);
            } else {
                self.step_ms.push(elapsed);
            }
            if self.llm.stop_tokens.contains(&token) {
                return Ok(self.end(FinishReason::Stop));
            }
            self.tokens.push(token);
            // A character split across tokens decodes to nothing until its last byte arrives.
            let new_text = tokenizers::tokenizer::step_decode_stream(
                &self.llm.tokenizer,
                vec![token],
                true,
                &mut self.stream_ids,
                &mut self.stream_prefix,
                &mut self.stream_prefix_index,
            )
            .map_err(|e| Error::internal(format!("decoding tokens: {e}")))?;
            let Some(new_text) = new_text else { continue };
            self.text.push_str(&new_text);
            if let Some(at) = self.options.stop.iter().filter_map(|s| self.text.find(s.as_str())).min() {
                self.text.truncate(at);
                self.stopped_by_string = true;
                return Ok(self.end(FinishReason::Stop));
            }
            // Hold back a tail that could be the start of a stop string.
            let hold = self
                .options
                .stop
                .iter()
                .flat_map(|s| (1..s.len()).filter(|&k| s.is_char_boundary(k)).map(move |k| &s[..k]))
                .filter(|prefix| self.text.ends_with(prefix))
                .map(str::len)
                .max()
                .unwrap_or(0);
            let until = self.text.len() - hold;
            if until > self.emitted && self.text.is_char_boundary(until) {
                let piece = self.text[self.emitted..until].to_owned();
                self.emitted = until;
                return Ok(Some(piece));
            }
        }
    }
}

impl Drop for Generation {
    /// Dropped before its end (a collector that stopped early): the chat still records the answer it saw.
    fn drop(&mut self) {
        if self.finish.is_none() {
            self.end(FinishReason::Cancelled);
        }
    }
}

impl Iterator for Generation {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        match catch_panic(|| self.advance()) {
            Ok(Some(piece)) => Some(Ok(piece)),
            Ok(None) => None,
            Err(e) => {
                self.exchange = None; // a failed answer does not join the chat's history
                self.finish = Some(FinishReason::Stop);
                self._active = None;
                (self.past, self.shared) = (None, None);
                Some(Err(e))
            }
        }
    }
}
