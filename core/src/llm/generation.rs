//! One generation: prefill, then a token at a time (sampling, stop tokens and strings, cancellation), with its
//! text streamed as an iterator of pieces and its metrics.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::detokenizer::{Added, Detokenizer};
use super::metrics::{Clock, Counts, GenerationMetrics};
use super::model::Model;
use super::sampling::{DEFAULT_DRAFT_TOKENS, GenerateOptions, Sampler};
use super::speculative::{Speculator, judge};
use super::state::{DecoderState, Rows, Turn, chunk_end};
use crate::error::{Error, Result, catch_panic};
use crate::schedule::{CancelToken, Priority, PriorityHandle};

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
    /// A step failed: its error was the generation's last item.
    Failed,
}

/// What a generation calls with its answer when it ends (cancelled included; not when it fails): how a chat commits
/// an exchange to its history, and keeps the decoder state for its next turn.
pub(super) type OnEnd = Box<dyn FnOnce(&str, Option<KeptState>) + Send>;

/// A sequence's decoder state kept after its generation ended: the tokens (prompt and answer) of which the cache
/// holds the first `state.len()`. The next turn of a chat starts from it, running only what differs.
pub(super) struct KeptState {
    pub(super) tokens: Vec<u32>,
    pub(super) state: DecoderState,
}

impl KeptState {
    /// The bytes of KV cache it holds.
    pub(super) fn bytes(&self) -> u64 {
        self.state.cache_bytes()
    }

    /// How many of `tokens`' first positions its cache holds: the longest start they share with its tokens.
    pub(super) fn common_prefix(&self, tokens: &[u32]) -> usize {
        let held = &self.tokens[..self.state.len().min(self.tokens.len())];
        held.iter().zip(tokens).take_while(|(a, b)| a == b).count()
    }
}

/// The KV cache positions a generation of `prompt` tokens reserves: the prompt and `max_tokens`, within the context.
pub(super) fn capacity(model: &Model, prompt: usize, options: &GenerateOptions) -> usize {
    (prompt + options.max_tokens.max(0) as usize).min(model.config.max_positions)
}

/// Stops a generation from another thread; it ends before its next model step (a long prompt's prefill: before
/// its next chunk). The same token type cancels engine runs.
pub type CancelHandle = CancelToken;

/// One active generation of an LLM, counted while it lives.
struct ActiveGeneration(Arc<Model>);

impl ActiveGeneration {
    fn new(llm: &Arc<Model>) -> ActiveGeneration {
        llm.active.fetch_add(1, Ordering::SeqCst);
        ActiveGeneration(llm.clone())
    }
}

impl Drop for ActiveGeneration {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Makes `banned` tokens impossible in `logits`.
fn ban(logits: &mut [f32], banned: &[u32]) {
    for &token in banned {
        if let Some(l) = logits.get_mut(token as usize) {
            *l = f32::NEG_INFINITY;
        }
    }
}

/// The next token from the last position's logits (modified in place), with `banned` tokens excluded.
fn choose(sampler: &mut Sampler, logits: &mut [f32], history: &[u32], banned: &[u32]) -> u32 {
    ban(logits, banned);
    sampler.next(logits, history)
}

/// A generation in progress: an iterator of text pieces, each valid UTF-8 (a character split across tokens is
/// held until complete). Dropping it, or [`CancelHandle::cancel`], stops it between tokens.
pub struct Generation {
    /// Counts this generation among the LLM's active ones until it ends (or is dropped).
    _active: Option<ActiveGeneration>,
    llm: Arc<Model>,
    options: GenerateOptions,
    sampler: Sampler,
    tokens: Vec<u32>,
    prompt_len: usize,
    /// Prompt positions a kept state already held (a chat's earlier turns): not run again.
    cached_prompt_tokens: usize,
    /// Model runs so far: the prompt's chunks, then one per decode pass.
    steps: usize,
    /// Model runs over the prompt so far (its chunks).
    prefill_passes: usize,
    /// The KV cache between steps; `None` once ended (its memory goes back then).
    state: Option<DecoderState>,
    /// Speculative decoding, when asked for.
    speculator: Option<Speculator>,
    /// Tokens one speculative pass produced beyond the first, each with its share of the pass's time (ms).
    pending: VecDeque<(u32, f64)>,
    /// The first token's share of the last speculative pass's time.
    share_ms: Option<f64>,
    /// The answer's text, its stop strings and what is held back for them.
    text: Detokenizer,
    cancel: CancelToken,
    /// Orders this generation's steps among the other work in its lane; may change while it runs.
    priority: PriorityHandle,
    finish: Option<FinishReason>,
    on_end: Option<OnEnd>,
    /// Its clocks and memory samples.
    clock: Clock,
}

impl Generation {
    pub(super) fn start(
        llm: Arc<Model>,
        tokens: Vec<u32>,
        options: GenerateOptions,
        started: Instant,
        on_end: Option<OnEnd>,
        draft: Option<Arc<Model>>,
        kept: Option<KeptState>,
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
        let capacity = capacity(&llm, tokens.len(), &options);
        let (state, cached_prompt_tokens) = match kept.filter(|k| Arc::ptr_eq(&k.state.llm, &llm)) {
            Some(kept) => {
                // What the cache holds of this prompt: the longest common start, with at least the last two prompt
                // tokens still to run (the last one's logits choose the first answer token; one row alone would run
                // through other kernels than a full prefill's, see `chunk_end`). The cache holds what a full prefill
                // makes (see `for_next_turn`), so the answer is a full prefill's.
                let common = kept.common_prefix(&tokens).min(tokens.len().saturating_sub(2));
                let mut state = kept.state;
                state.keep(common, capacity)?;
                (state, common)
            }
            None => (DecoderState::new(llm.clone(), capacity)?, 0),
        };
        // Attaching a draft model is asking for speculation: on by default with it, up to DEFAULT_DRAFT_TOKENS.
        let max_draft = match (options.max_draft_tokens, &draft) {
            (0, Some(_)) => DEFAULT_DRAFT_TOKENS,
            (k, _) => k,
        };
        let speculator = if max_draft > 0 {
            if !state.can_roll_back() {
                return Err(Error::InvalidConfig {
                    reason: "speculative decoding needs a decoder with a shared KV buffer (as `models prepare` makes)"
                        .into(),
                });
            }
            Some(Speculator::new(draft, &options, max_draft as usize, capacity)?)
        } else {
            None
        };
        let prompt_ms = started.elapsed().as_secs_f64() * 1e3;
        let active = ActiveGeneration::new(&llm);
        Ok(Generation {
            text: Detokenizer::new(options.stop.clone()),
            _active: Some(active),
            sampler: Sampler::new(&options),
            prompt_len: tokens.len(),
            cached_prompt_tokens,
            tokens,
            options,
            llm,
            steps: 0,
            prefill_passes: 0,
            state: Some(state),
            speculator,
            pending: VecDeque::new(),
            share_ms: None,
            cancel: CancelToken::default(),
            priority: PriorityHandle::new(Priority::Normal),
            finish: None,
            on_end,
            clock: Clock::start(prompt_ms),
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
        self.text.emitted()
    }

    /// Generated token ids so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens[self.prompt_len..]
    }

    pub fn metrics(&self) -> GenerationMetrics {
        self.clock.metrics(Counts {
            prompt_tokens: self.prompt_len,
            cached_prompt_tokens: self.cached_prompt_tokens,
            generated_tokens: self.tokens.len() - self.prompt_len,
            draft_tokens: self.speculator.as_ref().map_or(0, |s| s.proposed),
            accepted_draft_tokens: self.speculator.as_ref().map_or(0, |s| s.accepted),
            decode_passes: self.steps.saturating_sub(self.prefill_passes),
            prefill_passes: self.prefill_passes,
        })
    }

    fn end(&mut self, reason: FinishReason) -> Option<String> {
        self.finish = Some(reason);
        self._active = None;
        self.pending.clear();
        if let Some(speculator) = self.speculator.as_mut() {
            speculator.release();
        }
        // The KV cache's memory goes back now, not when this is dropped, unless a chat keeps it for its next turn.
        let state = self.state.take();
        let kept = match self.on_end {
            Some(_) => state.and_then(|state| self.for_next_turn(state, reason)),
            None => None,
        };
        // Whatever was held back for a possible stop string is answer text after all (unless a stop string ended it).
        let (rest, whole) = self.text.finish(&self.llm.tokenizer, &self.tokens[self.prompt_len..]);
        if let Some(on_end) = self.on_end.take() {
            on_end(whole, kept);
        }
        rest
    }

    /// The decoder state a chat keeps for its next turn, holding exactly what a full prefill of its tokens would.
    /// The answer's positions were made one at a time, through other kernels than a prefill's (see `chunk_end`), so
    /// they run again in one pass now, after the last token is out, rather than in the next turn's wait. A cancelled
    /// answer, or a pass that fails, keeps its prompt's positions only (none if even that fails).
    fn for_next_turn(&self, mut state: DecoderState, reason: FinishReason) -> Option<KeptState> {
        let (prompt, end) = (self.prompt_len.min(state.len()), self.tokens.len());
        // At least two rows: a one-token answer runs again with the last prompt position.
        let from = if end >= prompt + 2 { prompt } else { prompt.saturating_sub(1) };
        let rerun = reason != FinishReason::Cancelled && prompt == self.prompt_len && end >= from + 2;
        let settled = rerun && {
            let cancel = CancelToken::default();
            let turn = Turn { priority: self.priority.get(), cancel: &cancel };
            state.keep(from, 0).and_then(|()| state.catch_up(&self.tokens, 0, &turn)).is_ok()
        };
        if !settled && let Err(e) = state.keep(prompt.min(state.len()), 0) {
            log::warn!("a chat's cache is not kept: it could not be cut back to its prompt: {e}");
            return None;
        }
        state.settle();
        Some(KeptState { tokens: self.tokens.clone(), state })
    }

    /// The stop tokens of `llm` while fewer than `min_tokens` are out (they cannot be chosen then), with `ahead`
    /// tokens about to come before the one being chosen. Takes the LLM apart from `self` so that the slice can be
    /// held while the sampler and the decoder state are borrowed.
    fn banned<'l>(&self, llm: &'l Model, ahead: usize) -> &'l [u32] {
        if self.tokens.len() + ahead - self.prompt_len < self.options.min_tokens.max(0) as usize {
            &llm.stop_tokens
        } else {
            &[]
        }
    }

    /// One model step: the prompt on the first call, in chunks of at most `prefill_chunk` positions (so a long
    /// prompt's activations stay bounded: attention and MLP buffers grow with the chunk, not the prompt), then the
    /// last token, or with speculation the last token and the drafted ones. Returns the next token (and queues
    /// any further ones a speculative pass kept). While other generations share the LLM, chunks shrink to
    /// [`CONTENDED_PREFILL_CHUNK`] so their tokens keep flowing between them; a cancel lands between chunks.
    fn step(&mut self) -> Result<u32> {
        if self.steps > 0 {
            if self.steps == self.prefill_passes
                && let Some(speculator) = self.speculator.as_mut()
            {
                // The draft model reads the prompt after the first token is out, not before: the first token comes
                // as fast as without speculation, and the draft's prefill counts in decoding, where it pays back.
                let turn = Turn { priority: self.priority.get(), cancel: &self.cancel };
                speculator.prefill(&self.tokens[..self.tokens.len() - 1], &turn)?;
            }
            let room = self.options.max_tokens.max(0) as usize - (self.tokens.len() - self.prompt_len);
            let room = room.min(self.llm.config.max_positions - self.tokens.len());
            let k = self.speculator.as_ref().map_or(0, |s| s.next_k(self.tokens.len() - self.prompt_len, room));
            return if k > 0 { self.speculative_step(k) } else { self.plain_step(Instant::now()) };
        }
        let prompt = self.tokens.len();
        // A kept state's positions are not run again.
        let mut start = self.cached_prompt_tokens;
        loop {
            let mut chunk = self.llm.prefill_chunk.load(Ordering::Relaxed).max(1);
            if self.llm.active.load(Ordering::SeqCst) > 1 {
                chunk = chunk.min(CONTENDED_PREFILL_CHUNK);
            }
            let upto = chunk_end(start, prompt, chunk);
            if upto == prompt {
                let token = self.run(prompt, true)?;
                self.prefill_passes += 1;
                return Ok(token);
            }
            self.run(upto, false)?;
            self.prefill_passes += 1;
            start = upto;
            if self.cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
        }
    }

    /// Runs the positions up to `upto` that the KV cache does not hold yet through the decoder; with `pick`,
    /// chooses the next token from the last position's logits (else returns 0: an earlier chunk of the prompt, and
    /// the sampler untouched, so seeded sampling does not depend on how the prompt was chunked).
    fn run(&mut self, upto: usize, pick: bool) -> Result<u32> {
        let llm = self.llm.clone();
        let banned = self.banned(&llm, 0);
        let turn = Turn { priority: self.priority.get(), cancel: &self.cancel };
        let state = self.state.as_mut().ok_or_else(|| Error::internal("a step after the end"))?;
        let logits = state.pass(&self.tokens, upto, Rows::Last, &turn)?;
        let token = if pick { choose(&mut self.sampler, logits, &self.tokens, banned) } else { 0 };
        self.steps += 1;
        Ok(token)
    }

    /// One token from one pass, timed from `started` for the speculator's comparison (speculation off, pausing, or
    /// without a draft).
    fn plain_step(&mut self, started: Instant) -> Result<u32> {
        let token = self.run(self.tokens.len(), true)?;
        if let Some(speculator) = self.speculator.as_mut() {
            speculator.plain_step(started.elapsed().as_secs_f64() * 1e3);
        }
        Ok(token)
    }

    /// A speculative step: `k` drafted tokens checked in one pass of the model, which keeps the longest run it
    /// agrees with and adds one of its own (the replacement of the first it rejects, or the next after them all).
    fn speculative_step(&mut self, k: usize) -> Result<u32> {
        let started = Instant::now();
        let turn = Turn { priority: self.priority.get(), cancel: &self.cancel };
        let speculator = self.speculator.as_mut().expect("speculating");
        let drafts = speculator.draft(&self.tokens, k, &turn)?;
        if drafts.is_empty() {
            return self.plain_step(started); // nothing to propose (prompt lookup found no match)
        }
        let k = drafts.len();
        let len = self.tokens.len();
        let mut sequence = self.tokens.clone();
        sequence.extend(drafts.iter().map(|d| d.token));
        let llm = self.llm.clone();
        let bans: Vec<&[u32]> = (0..=k).map(|i| self.banned(&llm, i)).collect();
        let state = self.state.as_mut().ok_or_else(|| Error::internal("a step after the end"))?;
        let vocab = self.llm.config.vocab;
        let drafted_at = Instant::now();
        let logits = state.pass(&sequence, len + k, Rows::All, &turn)?;
        let verify_ms = drafted_at.elapsed().as_secs_f64() * 1e3;
        let (mut out, mut accepted) = (Vec::with_capacity(k + 1), 0);
        for (i, row) in logits.chunks_exact_mut(vocab).enumerate().take(k + 1) {
            let history = &sequence[..len + i];
            if i == k {
                out.push(choose(&mut self.sampler, row, history, bans[i])); // every draft kept: one more
                break;
            }
            ban(row, bans[i]);
            let draft = &drafts[i];
            let replacement = if self.sampler.distribution(row, history) {
                let best = super::sampling::argmax(row);
                (best != draft.token).then_some(best)
            } else {
                let p = self.sampler.probabilities();
                let u = self.sampler.uniform();
                judge(draft, &p, u).map(|residual| self.sampler.draw_from(&residual))
            };
            match replacement {
                None => {
                    out.push(draft.token);
                    accepted += 1;
                }
                Some(token) => {
                    out.push(token);
                    break;
                }
            }
            if llm.stop_tokens.contains(&draft.token) {
                break; // the answer ends here; nothing after it counts
            }
        }
        // The cache holds the last token and the kept drafts; the rest is written over by the next pass.
        state.truncate(len + accepted)?;
        self.steps += 1;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        log::trace!(
            "speculative pass: {accepted} of {k} kept; drafting {:.1} ms, checking {verify_ms:.1} ms",
            ms - verify_ms
        );
        let generated = self.tokens.len() - self.prompt_len;
        let speculator = self.speculator.as_mut().expect("speculating");
        speculator.verified(k, accepted, len + accepted, ms, generated)?;
        let share = ms / out.len() as f64;
        let first = out[0];
        self.pending.extend(out[1..].iter().map(|&t| (t, share)));
        self.share_ms = Some(share);
        Ok(first)
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
            let (token, elapsed) = match self.pending.pop_front() {
                Some(kept) => kept, // a speculative pass's: its time is counted already, shared among its tokens
                None => {
                    let step_started = Instant::now();
                    self.share_ms = None;
                    let token = match self.step() {
                        Err(Error::Cancelled) => return Ok(self.end(FinishReason::Cancelled)),
                        token => token?,
                    };
                    self.clock.sample_memory();
                    (token, self.share_ms.take().unwrap_or_else(|| step_started.elapsed().as_secs_f64() * 1e3))
                }
            };
            self.clock.token(elapsed);
            if self.llm.stop_tokens.contains(&token) {
                return Ok(self.end(FinishReason::Stop));
            }
            self.tokens.push(token);
            match self.text.push(&self.llm.tokenizer, token)? {
                Added::Piece(piece) => return Ok(Some(piece)),
                Added::Nothing => {}
                Added::Stop => return Ok(self.end(FinishReason::Stop)),
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
                self.on_end = None; // a failed answer does not join the chat's history
                self.finish = Some(FinishReason::Failed);
                self._active = None;
                self.state = None;
                Some(Err(e))
            }
        }
    }
}
