//! Speculative decoding: a cheap drafter proposes the next k tokens, the target model checks all of them in one
//! pass over its KV cache, and the positions after the first rejected token are rolled back. Greedy output is the
//! target's own, token for token; sampled output keeps the target's distribution (the standard acceptance rule of
//! Leviathan et al. and Chen et al.: accept a drafted x with probability min(1, p(x)/q(x)), else draw from
//! max(0, p - q)).
//!
//! Two drafters: a smaller (or more quantized) model with the same tokenizer ([`super::Llm::with_draft`]), and
//! prompt lookup, which proposes what followed the last few tokens where they occurred before in the prompt or the
//! answer, and needs no second model. k follows the acceptance (one more after a pass that took every draft, one
//! fewer otherwise), and speculation switches itself off for a while when its tokens cost more than plain steps'.

use std::sync::Arc;

use super::model::{Model, PREFILL_CHUNK};
use super::sampling::{GenerateOptions, Sampler, argmax};
use super::state::{DecoderState, Rows, Turn};
use crate::error::Result;

/// The longest n-gram prompt lookup matches (it tries the longest first).
const LOOKUP_NGRAM: usize = 3;
/// With a draft model, a prompt-lookup match of at least this many tokens drafts instead (it costs nothing).
const LOOKUP_WITH_MODEL_NGRAM: usize = 2;
/// A draft model stops drafting after a token it gave less than this probability (the tokens after it would
/// probably be thrown away). Low: on SmolLM2, stopping at 0.5 left passes of one or two drafts whose check cost
/// more than they saved (1.1x against 1.3x without it).
const DRAFT_CONFIDENCE: f32 = 0.05;
/// Plain steps measured before the first speculative pass, and after speculation was switched off this many
/// tokens are generated plainly before it is tried again.
const PLAIN_PROBE_STEPS: usize = 2;
const OFF_TOKENS: usize = 32;
/// Speculative passes measured before it is judged against plain steps: enough that one unlucky pass (every draft
/// rejected) does not decide.
const JUDGE_AFTER_PASSES: usize = 8;
/// Weight of the newest plain step in their running average.
const EMA: f64 = 0.3;

/// A drafted token and the draft's distribution it came from (none: a certain guess, prompt lookup's or greedy's).
pub(super) struct Draft {
    pub(super) token: u32,
    pub(super) q: Option<Vec<(u32, f32)>>,
}

enum Drafter {
    PromptLookup,
    Model { state: Box<DecoderState>, sampler: Sampler },
}

/// Running average of milliseconds per generated token.
#[derive(Default, Clone, Copy)]
struct Cost(Option<f64>);

impl Cost {
    fn add(&mut self, ms_per_token: f64) {
        self.0 = Some(self.0.map_or(ms_per_token, |c| c + EMA * (ms_per_token - c)));
    }
}

/// The speculation state of one generation.
pub(super) struct Speculator {
    drafter: Drafter,
    max_k: usize,
    k: usize,
    /// Drafted tokens checked by the target, and those it kept.
    pub(super) proposed: usize,
    pub(super) accepted: usize,
    plain: Cost,
    /// Time and tokens of the speculative passes since the last judgement.
    window_ms: f64,
    window_tokens: usize,
    plain_steps: usize,
    passes_since_judged: usize,
    /// Generated-token count before which speculation stays off.
    off_until: usize,
}

impl Speculator {
    /// Drafts up to `max_k` tokens a pass (at least 1).
    pub(super) fn new(
        draft: Option<Arc<Model>>,
        options: &GenerateOptions,
        max_k: usize,
        capacity: usize,
    ) -> Result<Speculator> {
        let drafter = match draft {
            Some(llm) => {
                // The draft draws from its own generator: the target's draws stay those of its acceptance rule.
                let seed = options.seed.map(|s| s.wrapping_add(1));
                Drafter::Model {
                    state: Box::new(DecoderState::new(llm, capacity)?),
                    sampler: Sampler::new(&GenerateOptions { seed, ..options.clone() }),
                }
            }
            None => Drafter::PromptLookup,
        };
        let max_k = max_k.max(1);
        // k adapts between 1 and max_k, from a middle start.
        Ok(Speculator {
            drafter,
            max_k,
            k: max_k.min(4),
            proposed: 0,
            accepted: 0,
            plain: Cost::default(),
            window_ms: 0.0,
            window_tokens: 0,
            plain_steps: 0,
            passes_since_judged: 0,
            off_until: 0,
        })
    }

    /// How many tokens to draft next (0: take a plain step), with `generated` tokens out and room for `room` more.
    pub(super) fn next_k(&self, generated: usize, room: usize) -> usize {
        if self.plain_steps < PLAIN_PROBE_STEPS || generated < self.off_until {
            return 0;
        }
        // The target pass also yields one token of its own, so k + 1 must fit.
        self.k.min(room.saturating_sub(1))
    }

    /// Proposes up to `k` tokens to follow `tokens` (fewer, or none, when the drafter has no guess).
    pub(super) fn draft(&mut self, tokens: &[u32], k: usize, turn: &Turn<'_>) -> Result<Vec<Draft>> {
        match &mut self.drafter {
            Drafter::PromptLookup => {
                Ok(prompt_lookup(tokens, k, 1).into_iter().map(|token| Draft { token, q: None }).collect())
            }
            Drafter::Model { state, sampler } => {
                let found = prompt_lookup(tokens, k, LOOKUP_WITH_MODEL_NGRAM);
                if found.len() >= 2 {
                    return Ok(found.into_iter().map(|token| Draft { token, q: None }).collect());
                }
                // A long stretch the draft has not seen goes in chunks; the rest with its first draft's pass.
                state.catch_up(tokens, PREFILL_CHUNK, turn)?;
                let mut seq = tokens.to_vec();
                let mut drafts = Vec::with_capacity(k);
                for _ in 0..k {
                    let logits = state.pass(&seq, seq.len(), Rows::Last, turn)?;
                    let (draft, confidence) = if sampler.distribution(logits, &seq) {
                        let token = argmax(logits);
                        (Draft { token, q: None }, softmax_at(logits, token))
                    } else {
                        let token = sampler.draw();
                        let q = sampler.probabilities();
                        let p = q.iter().find(|c| c.0 == token).map_or(0.0, |c| c.1);
                        (Draft { token, q: Some(q) }, p)
                    };
                    seq.push(draft.token);
                    drafts.push(draft);
                    if confidence < DRAFT_CONFIDENCE {
                        break;
                    }
                }
                Ok(drafts)
            }
        }
    }

    /// After the target kept `accepted` of `k` drafts: the draft's cache forgets what the sequence no longer holds
    /// (`valid` positions are still the sequence's), k adapts, and the pass's cost per token is weighed.
    pub(super) fn verified(
        &mut self,
        k: usize,
        accepted: usize,
        valid: usize,
        ms: f64,
        generated: usize,
    ) -> Result<()> {
        if let Drafter::Model { state, .. } = &mut self.drafter {
            state.truncate(valid)?;
        }
        self.proposed += k;
        self.accepted += accepted;
        self.k = if accepted == k { (k + 1).min(self.max_k) } else { k.saturating_sub(1).max(1) };
        self.window_ms += ms;
        self.window_tokens += accepted + 1;
        self.passes_since_judged += 1;
        if self.passes_since_judged >= JUDGE_AFTER_PASSES {
            let speculative = self.window_ms / self.window_tokens.max(1) as f64;
            if let Some(plain) = self.plain.0
                && speculative > plain
            {
                log::debug!(
                    "speculation off for {OFF_TOKENS} tokens: {speculative:.1} ms/token against {plain:.1} plain"
                );
                self.off_until = generated + OFF_TOKENS;
                self.k = self.k.min(2);
            }
            (self.window_ms, self.window_tokens, self.passes_since_judged) = (0.0, 0, 0);
        }
        Ok(())
    }

    /// Runs the prompt through the draft model too (with the model's prefill, so it counts towards the time to
    /// the first token, not against speculation).
    pub(super) fn prefill(&mut self, tokens: &[u32], turn: &Turn<'_>) -> Result<()> {
        match &mut self.drafter {
            Drafter::Model { state, .. } => state.catch_up(tokens, 0, turn),
            Drafter::PromptLookup => Ok(()),
        }
    }

    /// Frees the draft model's cache (the generation ended); the counts stay.
    pub(super) fn release(&mut self) {
        self.drafter = Drafter::PromptLookup;
    }

    /// A plain step of `ms` (one token).
    pub(super) fn plain_step(&mut self, ms: f64) {
        self.plain_steps += 1;
        self.plain.add(ms);
    }
}

/// The probability softmax gives `logits[token]`.
fn softmax_at(logits: &[f32], token: u32) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
    logits.get(token as usize).map_or(0.0, |&l| (l - max).exp() / total)
}

/// What followed the longest recent n-gram (n from [`LOOKUP_NGRAM`] down to `min_n`) ending `tokens` where it
/// occurred before: its latest earlier occurrence's next `k` tokens.
pub(super) fn prompt_lookup(tokens: &[u32], k: usize, min_n: usize) -> Vec<u32> {
    if k == 0 {
        return Vec::new();
    }
    for n in (min_n.max(1)..=LOOKUP_NGRAM.min(tokens.len().saturating_sub(1))).rev() {
        let suffix = &tokens[tokens.len() - n..];
        // Latest first: the recent context predicts best. The occurrence must leave a token after it.
        for start in (0..tokens.len() - n).rev() {
            if &tokens[start..start + n] == suffix {
                let from = start + n;
                return tokens[from..(from + k).min(tokens.len())].to_vec();
            }
        }
    }
    Vec::new()
}

/// The standard acceptance rule for one drafted token: with `p` the target's distribution (normalized), `q` the
/// draft's (none: the draft was certain), and `u` a uniform draw. Returns `None` when the draft is kept, else the
/// weights to draw the replacement from (max(0, p - q)).
pub(super) fn judge(draft: &Draft, p: &[(u32, f32)], u: f32) -> Option<Vec<(u32, f32)>> {
    let prob = |dist: &[(u32, f32)], token: u32| dist.iter().find(|c| c.0 == token).map_or(0.0, |c| c.1);
    let px = prob(p, draft.token);
    let qx = draft.q.as_deref().map_or(1.0, |q| prob(q, draft.token));
    if qx > 0.0 && u < px / qx {
        return None;
    }
    let residual: Vec<(u32, f32)> = match draft.q.as_deref() {
        None => p.iter().map(|&(t, w)| (t, if t == draft.token { 0.0 } else { w })).collect(),
        Some(q) => p.iter().map(|&(t, w)| (t, (w - prob(q, t)).max(0.0))).collect(),
    };
    // Only rounding can leave nothing (p ≈ q everywhere): then p itself.
    Some(if residual.iter().any(|c| c.1 > 0.0) { residual } else { p.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_lookup_continues_the_latest_match() {
        // "a b c d | a b" -> "c d"
        assert_eq!(prompt_lookup(&[1, 2, 3, 4, 1, 2], 2, 1), vec![3, 4]);
        assert_eq!(prompt_lookup(&[1, 2, 3, 4, 1, 2], 9, 1), vec![3, 4, 1, 2]);
        // the longest n-gram wins over a later shorter one
        assert_eq!(prompt_lookup(&[7, 8, 9, 5, 8, 6, 7, 8], 1, 1), vec![9]);
        assert_eq!(prompt_lookup(&[1, 2, 3], 3, 1), Vec::<u32>::new());
        assert_eq!(prompt_lookup(&[], 3, 1), Vec::<u32>::new());
        assert_eq!(prompt_lookup(&[5, 5], 0, 1), Vec::<u32>::new());
        // a one-token match does not count when two are asked for
        assert_eq!(prompt_lookup(&[4, 9, 7, 4], 2, 2), Vec::<u32>::new());
    }

    #[test]
    fn the_acceptance_rule_keeps_the_target_distribution() {
        // Draft q = (0.6, 0.4), target p = (0.3, 0.7): the output must be distributed as p.
        let p = [(0u32, 0.3f32), (1, 0.7)];
        let q = vec![(0u32, 0.6f32), (1, 0.4)];
        let mut counts = [0usize; 2];
        let mut sampler = Sampler::new(&GenerateOptions { seed: Some(3), ..GenerateOptions::default() });
        let n = 200_000;
        for _ in 0..n {
            let token = if sampler.uniform() < 0.6 { 0 } else { 1 };
            let draft = Draft { token, q: Some(q.clone()) };
            let u = sampler.uniform();
            let out = match judge(&draft, &p, u) {
                None => token,
                Some(residual) => sampler.draw_from(&residual),
            };
            counts[out as usize] += 1;
        }
        let share = counts[0] as f64 / n as f64;
        assert!((share - 0.3).abs() < 0.01, "token 0 drawn {share:.3} of the time, target says 0.3");
    }

    #[test]
    fn a_certain_draft_is_kept_as_often_as_the_target_would_pick_it() {
        let p = [(4u32, 0.25f32), (5, 0.75)];
        let draft = Draft { token: 4, q: None };
        assert!(judge(&draft, &p, 0.2).is_none());
        let residual = judge(&draft, &p, 0.3).expect("rejected");
        assert_eq!(residual, vec![(4, 0.0), (5, 0.75)]);
    }
}
