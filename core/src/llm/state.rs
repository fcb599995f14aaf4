//! One sequence's decoder state: its KV cache and its logits, and the pass that runs positions through the
//! decoder and appends them to the cache. A generation has one for its model; speculative decoding has a second for
//! its draft model.

use std::sync::Arc;

use ort::value::Tensor as OrtTensor;

use super::kv_cache::{KvCache, Logits, Pass, RunInputs, last_logits_only};
use super::model::{Model, PREFILL_CHUNK};
use crate::error::{Error, OrtResultExt, Result};
use crate::schedule::lane::Request;
use crate::schedule::{CancelToken, Priority};

/// Which positions' logits a pass returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rows {
    /// The last position's: what choosing the next token needs.
    Last,
    /// Every position's of the pass: what verifying drafted tokens needs.
    All,
}

/// A decoder's KV cache for one sequence, and its last logits.
pub(super) struct DecoderState {
    pub(super) llm: Arc<Model>,
    cache: KvCache,
    /// The positions the cache holds.
    len: usize,
    /// The logits of the last pass (one row, or one per position for [`Rows::All`]), a buffer reused across passes.
    logits: Vec<f32>,
}

/// The turn a pass takes on its model's lane.
pub(super) struct Turn<'a> {
    pub(super) priority: Priority,
    pub(super) cancel: &'a CancelToken,
}

impl DecoderState {
    /// A state for a sequence of up to `capacity` positions. A shared-buffer decoder's cache is made now, for all of
    /// them, so a cache that cannot be had fails here.
    pub(super) fn new(llm: Arc<Model>, capacity: usize) -> Result<DecoderState> {
        let cache = KvCache::new(&llm, capacity)?;
        Ok(DecoderState { llm, cache, len: 0, logits: Vec::new() })
    }

    /// The positions the cache holds.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The bytes its KV cache holds.
    pub(super) fn cache_bytes(&self) -> usize {
        self.cache.bytes(&self.llm, self.len)
    }

    /// Keeps the first `keep` positions (a chat's next turn shares them with its last), with room for `capacity`.
    pub(super) fn keep(&mut self, keep: usize, capacity: usize) -> Result<()> {
        let keep = keep.min(self.len);
        self.cache.keep(&self.llm, self.len, keep, capacity)?;
        self.len = keep;
        Ok(())
    }

    /// Forgets the positions from `len` on (rejected draft tokens). A shared buffer's attention reads only as far
    /// as the mask says, and the next pass writes over them.
    pub(super) fn truncate(&mut self, len: usize) -> Result<()> {
        if len < self.len && !self.cache.can_roll_back() {
            return Err(Error::internal("only a shared-buffer decoder's cache can be rolled back"));
        }
        self.len = self.len.min(len);
        Ok(())
    }

    /// Whether positions can be taken back (speculative decoding needs it).
    pub(super) fn can_roll_back(&self) -> bool {
        self.cache.can_roll_back()
    }

    /// Runs `tokens` through the decoder in chunks of [`PREFILL_CHUNK`] positions until at most `leave` of them are
    /// not in the cache (a draft model catching up with the sequence: its prompt, or the tokens since it paused).
    pub(super) fn catch_up(&mut self, tokens: &[u32], leave: usize, turn: &Turn<'_>) -> Result<()> {
        while tokens.len() - self.len > leave {
            let upto = (self.len + PREFILL_CHUNK).min(tokens.len());
            self.pass(tokens, upto, Rows::Last, turn)?;
        }
        Ok(())
    }

    /// Runs `tokens[self.len()..upto]` (whose earlier positions the cache holds) through the decoder and appends
    /// them to the cache. Returns the logits `rows` asks for, `vocab` values a row, which the caller may change (the
    /// sampler applies penalties in place).
    pub(super) fn pass(&mut self, tokens: &[u32], upto: usize, rows: Rows, turn: &Turn<'_>) -> Result<&mut [f32]> {
        let llm = self.llm.clone();
        let (start, total) = (self.len, upto);
        let n = total.checked_sub(start).filter(|&n| n > 0).ok_or_else(|| Error::internal("an empty decoder pass"))?;
        let ids: Vec<i64> = tokens[start..total].iter().map(|&t| t as i64).collect();
        let input_ids = OrtTensor::from_array(([1usize, n], ids)).or_inference("input_ids")?;
        let mask = OrtTensor::from_array(([1usize, total], vec![1i64; total])).or_inference("attention_mask")?;
        let positions = if llm.position_ids {
            let positions: Vec<i64> = (start as i64..total as i64).collect();
            Some(OrtTensor::from_array(([1usize, n], positions)).or_inference("position_ids")?)
        } else {
            None
        };
        let mut inputs: RunInputs<'_> =
            vec![("input_ids".into(), input_ids.into()), ("attention_mask".into(), mask.into())];
        if let Some(positions) = positions {
            inputs.push(("position_ids".into(), positions.into()));
        }
        // A shared-buffer decoder has "last row only" bound with its cache; a pass that wants every row unbinds it.
        let all_rows = rows == Rows::All && n > 1;
        let last_only = if all_rows {
            match llm.config.last_logits_input {
                Some(_) => {
                    Some(OrtTensor::from_array(([1usize], vec![0i64])).or_inference("logits_last_only")?.into_dyn())
                }
                None => None,
            }
        } else if matches!(self.cache, KvCache::Growing(_)) {
            last_logits_only(&llm)?
        } else {
            None
        };
        if let (Some(value), Some(name)) = (last_only, llm.config.last_logits_input.as_deref()) {
            inputs.push((name.into(), value.into()));
        }
        let vocab = llm.config.vocab;
        // The pass's turn on the decoder, among the other generations (and the other work in the lane).
        let _turn = llm.pool.acquire(Request {
            priority: turn.priority,
            deadline: None,
            cancel: Some(turn.cancel),
            active: None,
            seq: None,
        })?;
        let mut session = llm.session.lock().unwrap_or_else(|e| e.into_inner());
        let pass = Pass { inputs, positions: n, logits: if all_rows { n * vocab } else { vocab } };
        let logits = self.cache.run(&llm, &mut session, pass, &mut self.logits)?;
        drop(session);
        self.len = total;
        match logits {
            Logits::InPlace => self.cache.logits_in_place(),
            Logits::Copied => Ok(&mut self.logits),
        }
    }
}
