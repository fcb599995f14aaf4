//! Choosing the next token from the logits: greedy, or sampled with temperature, top-k, top-p and a repetition
//! penalty, reproducibly from a seed.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The most tokens one speculative pass drafts: beyond it a pass costs more than the tokens it could keep.
pub const MAX_DRAFT_TOKENS: i32 = 16;
/// The most tokens drafted a pass when a draft model is attached and the request leaves `max_draft_tokens` at 0.
/// Not tuned per prompt: the number drafted adapts under it (one more after a pass that keeps every draft, one
/// fewer otherwise, from 4), so the cap matters only on long runs of kept drafts.
pub const DEFAULT_DRAFT_TOKENS: i32 = 8;

/// How to generate: sampling, limits and stops. `Default` is greedy decoding of up to 256 tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Tokens to generate at most (the prompt not counted). It also sizes the KV cache: a shared-buffer decoder
    /// holds prompt + `max_tokens` positions (up to the model's context) from the start of the request.
    pub max_tokens: i32,
    /// End-of-sequence tokens are not chosen before this many tokens (benchmarks use it for fixed output lengths).
    pub min_tokens: i32,
    /// 0 is greedy (always the most likely token); higher flattens the distribution.
    pub temperature: f32,
    /// Sample among the k most likely tokens only; 0 means no limit.
    pub top_k: i32,
    /// Sample among the most likely tokens whose probabilities add up to p; 1 means no limit.
    pub top_p: f32,
    /// > 1 makes tokens already in the prompt or the answer less likely (the CTRL paper's penalty); 1 is off.
    pub repetition_penalty: f32,
    /// Same seed, same options and prompt: same text. `None` seeds from the clock.
    pub seed: Option<i64>,
    /// Stop when the text ends with any of these (they are not part of the output).
    pub stop: Vec<String>,
    /// Speculative decoding: up to this many tokens drafted ahead and checked in one pass of the model (by the
    /// draft model attached with [`super::Llm::with_draft`], else by prompt lookup). 0 is the default: on with up to
    /// [`DEFAULT_DRAFT_TOKENS`] when a draft model is attached (attaching one is asking for it), off otherwise. The
    /// output is the model's own either way: greedy token for token, sampled in distribution. The number drafted
    /// adapts to how many are kept, and speculation pauses itself when it costs more than it saves.
    pub max_draft_tokens: i32,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 256,
            min_tokens: 0,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            seed: None,
            stop: Vec::new(),
            max_draft_tokens: 0,
        }
    }
}

impl GenerateOptions {
    pub(crate) fn validate(&self) -> Result<(), String> {
        // An answer of no tokens is a caller's slip, not a request: refused, like every other invalid option.
        if self.max_tokens <= 0 {
            return Err(format!("max_tokens must be at least 1, got {}", self.max_tokens));
        }
        if self.min_tokens < 0 || self.top_k < 0 {
            return Err(format!("min_tokens and top_k must be 0 or more, got {} and {}", self.min_tokens, self.top_k));
        }
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(format!("temperature must be >= 0, got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(format!("repetition_penalty must be > 0, got {}", self.repetition_penalty));
        }
        if self.min_tokens > self.max_tokens {
            return Err(format!("min_tokens ({}) is above max_tokens ({})", self.min_tokens, self.max_tokens));
        }
        if !(0..=MAX_DRAFT_TOKENS).contains(&self.max_draft_tokens) {
            return Err(format!("max_draft_tokens must be 0 to {MAX_DRAFT_TOKENS}, got {}", self.max_draft_tokens));
        }
        if self.stop.iter().any(String::is_empty) {
            return Err("stop strings must not be empty".into());
        }
        Ok(())
    }
}

pub(crate) struct Sampler {
    options: GenerateOptions,
    rng: SmallRng,
    /// Scratch for (token, probability) pairs, reused between steps.
    candidates: Vec<(u32, f32)>,
}

impl Sampler {
    pub(crate) fn new(options: &GenerateOptions) -> Sampler {
        // Any i64 is a seed: its bits seed the generator.
        let seed = options.seed.map(|s| s as u64).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
        });
        Sampler { options: options.clone(), rng: SmallRng::seed_from_u64(seed), candidates: Vec::new() }
    }

    /// The next token for `logits` (modified in place by the penalty), given the tokens so far.
    pub(crate) fn next(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        if self.distribution(logits, history) {
            return argmax(logits);
        }
        self.draw()
    }

    /// Whether decoding is greedy (the distribution is all on the largest logit).
    pub(crate) fn greedy(&self) -> bool {
        self.options.temperature == 0.0
    }

    /// Applies the penalty to `logits` in place and, unless greedy (then returns true: the choice is the argmax),
    /// leaves the distribution that temperature, top-k and top-p make of them in [`Sampler::candidates`], most likely
    /// first, as unnormalized weights.
    pub(crate) fn distribution(&mut self, logits: &mut [f32], history: &[u32]) -> bool {
        let penalty = self.options.repetition_penalty;
        if penalty != 1.0 {
            for &token in history {
                if let Some(l) = logits.get_mut(token as usize) {
                    *l = if *l > 0.0 { *l / penalty } else { *l * penalty };
                }
            }
        }
        if self.greedy() {
            return true;
        }
        let inv_t = 1.0 / self.options.temperature;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        self.candidates.clear();
        self.candidates.extend(logits.iter().enumerate().map(|(i, &l)| (i as u32, ((l - max) * inv_t).exp())));
        let by_probability = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1);
        let k = usize::try_from(self.options.top_k).unwrap_or(0);
        if k > 0 && k < self.candidates.len() {
            self.candidates.select_nth_unstable_by(k - 1, by_probability);
            self.candidates.truncate(k);
        }
        self.candidates.sort_unstable_by(by_probability);
        let total: f32 = self.candidates.iter().map(|c| c.1).sum();
        if self.options.top_p < 1.0 {
            let mut kept = 0.0;
            let cut = self.candidates.iter().position(|c| {
                kept += c.1 / total;
                kept >= self.options.top_p
            });
            if let Some(cut) = cut {
                self.candidates.truncate(cut + 1);
            }
        }
        if self.candidates.is_empty() {
            self.candidates.push((argmax(logits), 1.0));
        }
        false
    }

    /// The distribution [`Sampler::distribution`] left, normalized: (token, probability), most likely first.
    pub(crate) fn probabilities(&self) -> Vec<(u32, f32)> {
        let total: f32 = self.candidates.iter().map(|c| c.1).sum();
        self.candidates.iter().map(|&(t, w)| (t, w / total)).collect()
    }

    /// A token drawn from the distribution [`Sampler::distribution`] left.
    pub(crate) fn draw(&mut self) -> u32 {
        let candidates = std::mem::take(&mut self.candidates);
        let token = self.draw_from(&candidates);
        self.candidates = candidates;
        token
    }

    /// A token drawn from `weights` (unnormalized; at least one positive).
    pub(crate) fn draw_from(&mut self, weights: &[(u32, f32)]) -> u32 {
        let total: f32 = weights.iter().map(|c| c.1).sum();
        let mut target = self.rng.random::<f32>() * total;
        for &(token, p) in weights {
            target -= p;
            if target <= 0.0 {
                return token;
            }
        }
        weights.iter().rev().find(|c| c.1 > 0.0).or(weights.last()).map_or(0, |c| c.0)
    }

    /// A uniform draw in [0, 1), from the same seeded generator.
    pub(crate) fn uniform(&mut self) -> f32 {
        self.rng.random::<f32>()
    }
}

/// The index of the largest value (the first of equals; NaN never wins). Greedy decoding runs this over the whole
/// vocabulary at every token, so it keeps 16 running maxima side by side, which the compiler turns into vector code.
pub(crate) fn argmax(values: &[f32]) -> u32 {
    const LANES: usize = 16;
    let mut best = [f32::NEG_INFINITY; LANES];
    let mut at = [0u32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail = chunks.remainder();
    for (c, chunk) in chunks.enumerate() {
        for lane in 0..LANES {
            let (v, i) = (chunk[lane], (c * LANES + lane) as u32);
            let better = v > best[lane];
            best[lane] = if better { v } else { best[lane] };
            at[lane] = if better { i } else { at[lane] };
        }
    }
    let first = values.len() - tail.len();
    let candidates = best.into_iter().zip(at).chain(tail.iter().copied().zip(first as u32..));
    let (mut top, mut index) = (f32::NEG_INFINITY, 0u32);
    for (v, i) in candidates {
        if v > top || (v == top && v > f32::NEG_INFINITY && i < index) {
            (top, index) = (v, i);
        }
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(f: impl FnOnce(&mut GenerateOptions)) -> GenerateOptions {
        let mut o = GenerateOptions { seed: Some(7), ..GenerateOptions::default() };
        f(&mut o);
        o
    }

    #[test]
    fn greedy_takes_the_largest_logit() {
        let mut sampler = Sampler::new(&options(|_| {}));
        assert_eq!(sampler.next(&mut [0.1, 3.0, -1.0, 2.9], &[]), 1);
    }

    #[test]
    fn argmax_is_the_first_largest_value() {
        let naive = |v: &[f32]| {
            let mut best = (0usize, f32::NEG_INFINITY);
            for (i, &x) in v.iter().enumerate() {
                if x > best.1 {
                    best = (i, x);
                }
            }
            best.0 as u32
        };
        let mut rng = SmallRng::seed_from_u64(1);
        for len in [0usize, 1, 15, 16, 17, 49_152, 49_153] {
            // Few distinct values, so ties across lanes and the tail are common.
            let mut v: Vec<f32> = (0..len).map(|_| (rng.random::<u32>() % 7) as f32).collect();
            assert_eq!(argmax(&v), naive(&v), "len {len}");
            if len > 3 {
                v[len / 2] = f32::NAN;
                v[len - 1] = 100.0;
                assert_eq!(argmax(&v), naive(&v), "len {len} with NaN");
            }
        }
        assert_eq!(argmax(&[f32::NEG_INFINITY; 20]), 0);
    }

    #[test]
    fn repetition_penalty_demotes_seen_tokens() {
        let mut sampler = Sampler::new(&options(|o| o.repetition_penalty = 2.0));
        assert_eq!(sampler.next(&mut [0.1, 3.0, -1.0, 2.9], &[1]), 3);
    }

    #[test]
    fn top_k_one_is_greedy_and_top_p_keeps_the_head() {
        let logits = [0.0f32, 5.0, 4.9, -3.0];
        let mut k1 = Sampler::new(&options(|o| (o.temperature, o.top_k) = (1.0, 1)));
        let mut p = Sampler::new(&options(|o| (o.temperature, o.top_p) = (1.0, 0.5)));
        for _ in 0..50 {
            assert_eq!(k1.next(&mut logits.clone(), &[]), 1);
            assert_eq!(p.next(&mut logits.clone(), &[]), 1, "p=0.5 keeps only the top token here");
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_tokens() {
        let draw = |seed| {
            let mut s = Sampler::new(&options(|o| (o.temperature, o.seed) = (1.0, Some(seed))));
            (0..32).map(|_| s.next(&mut [1.0, 1.1, 0.9, 1.05, 0.0], &[])).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
        assert!(draw(3).iter().any(|&t| t != draw(3)[0]), "temperature 1 varies the tokens");
    }

    #[test]
    fn invalid_options_are_refused() {
        assert!(options(|o| o.temperature = -1.0).validate().is_err());
        assert!(options(|o| o.top_p = 0.0).validate().is_err());
        assert!(options(|o| o.repetition_penalty = f32::NAN).validate().is_err());
        assert!(options(|o| o.stop = vec![String::new()]).validate().is_err());
        assert!(options(|o| o.max_tokens = -1).validate().is_err());
        assert!(options(|o| o.top_k = -1).validate().is_err());
        assert!(options(|_| {}).validate().is_ok());
    }
}
