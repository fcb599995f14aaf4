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
    /// The positions reserved for it in the model's KV account (given back when it is dropped).
    reserved: usize,
    /// The logits of the last pass (one row, or one per position for [`Rows::All`]), a buffer reused across passes.
    logits: Vec<f32>,
}

impl Drop for DecoderState {
    fn drop(&mut self) {
        self.llm.kv.release(bytes(&self.llm, self.reserved));
    }
}

/// The KV cache bytes of `positions` positions of `llm`.
fn bytes(llm: &Model, positions: usize) -> u64 {
    (positions as u64).saturating_mul(llm.kv_bytes_per_position() as u64)
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
        llm.kv.reserve(bytes(&llm, capacity), capacity)?;
        let cache = KvCache::new(&llm, capacity).inspect_err(|_| llm.kv.release(bytes(&llm, capacity)))?;
        Ok(DecoderState { llm, cache, len: 0, reserved: capacity, logits: Vec::new() })
    }

    /// Copies this state's first `count` positions into `empty`, a new state of the same model: another sequence
    /// that starts with the same tokens (a system prompt two chats share).
    pub(super) fn copy_prefix_into(&self, empty: &mut DecoderState, count: usize) -> Result<()> {
        let count = count.min(self.len).min(empty.reserved);
        if empty.len != 0 || !Arc::ptr_eq(&self.llm, &empty.llm) {
            return Err(Error::internal("a prefix copied into a used state or another model's"));
        }
        empty.cache.copy_from(&self.llm, &self.cache, self.len, count)?;
        empty.len = count;
        Ok(())
    }

    /// The positions the cache holds.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The bytes of KV cache reserved for it.
    pub(super) fn cache_bytes(&self) -> u64 {
        bytes(&self.llm, self.reserved)
    }

    /// Keeps the first `keep` positions (a chat's next turn shares them with its last), with room for `capacity`.
    pub(super) fn keep(&mut self, keep: usize, capacity: usize) -> Result<()> {
        let keep = keep.min(self.len);
        if capacity > self.reserved {
            self.llm.kv.reserve(bytes(&self.llm, capacity - self.reserved), capacity)?;
            self.reserved = capacity;
        }
        self.cache.keep(&self.llm, self.len, keep, capacity)?;
        self.len = keep;
        Ok(())
    }

    /// Gives back the reservation a growing cache no longer needs once its sequence has ended (it holds `len`
    /// positions; a shared buffer keeps its size).
    pub(super) fn settle(&mut self) {
        if matches!(self.cache, KvCache::Growing(_)) && self.len < self.reserved {
            self.llm.kv.release(bytes(&self.llm, self.reserved - self.len));
            self.reserved = self.len;
        }
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
            let upto = chunk_end(self.len, tokens.len(), PREFILL_CHUNK);
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
            expected: None,
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

/// Where the next pass from `start` toward `end` stops: after at most `chunk` positions, and never leaving one
/// position alone for the last pass. ONNX Runtime runs a single row through its matrix-vector kernels, which round
/// differently from a pass over several rows (on 4-bit weights enough to change a later greedy choice), while passes
/// of two rows or more agree with one another bit for bit: so positions made that way are what a one-pass prefill
/// would make, whatever the split.
pub(super) fn chunk_end(start: usize, end: usize, chunk: usize) -> usize {
    let upto = (start + chunk.max(1)).min(end);
    if end - upto == 1 && upto - start > 2 { upto - 1 } else { upto }
}

#[cfg(test)]
mod tests {
    use super::chunk_end;

    /// The passes a prefill of `len` positions makes from `start`, in chunks of `chunk`.
    fn passes(start: usize, len: usize, chunk: usize) -> Vec<usize> {
        let (mut at, mut sizes) = (start, Vec::new());
        while at < len {
            let upto = chunk_end(at, len, chunk);
            sizes.push(upto - at);
            at = upto;
        }
        sizes
    }

    #[test]
    fn no_pass_after_the_first_runs_a_single_position() {
        assert_eq!(passes(0, 257, 256), [255, 2]);
        assert_eq!(passes(0, 512, 256), [256, 256]);
        assert_eq!(passes(10, 43, 32), [31, 2]);
        assert_eq!(passes(0, 1, 256), [1]); // a one-token prompt is one row in any prefill
        for len in 2..100 {
            assert!(passes(0, len, 32).iter().all(|&rows| rows >= 2), "{len}");
        }
    }
}
