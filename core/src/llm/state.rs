//! One sequence's decoder state: its KV cache and its logits, and the pass that runs positions through the
//! decoder and appends them to the cache. A generation has one for its model; speculative decoding has a second for
//! its draft model.

use std::borrow::Cow;
use std::sync::Arc;

use half::f16;
use ort::AsPointer;
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::SessionInputValue;
use ort::value::{DynValue, Tensor as OrtTensor};

use super::decoder::{LlmInner, PREFILL_CHUNK};
use super::kv_cache::{SharedKvCache, kv_tensor, last_logits_only, new_tensor, shared_kv_cache};
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
    pub(super) llm: Arc<LlmInner>,
    /// The last `present` outputs, for a decoder that returns a longer cache at every step.
    past: Option<Vec<DynValue>>,
    /// A shared-buffer decoder's buffers, bound as both input and output.
    shared: Option<SharedKvCache>,
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
    pub(super) fn new(llm: Arc<LlmInner>, capacity: usize) -> Result<DecoderState> {
        let shared = if llm.config.past_present_share_buffer {
            let session = llm.session.lock().unwrap_or_else(|e| e.into_inner());
            Some(shared_kv_cache(&llm, &session, capacity)?)
        } else {
            None
        };
        Ok(DecoderState { llm, past: None, shared, len: 0, logits: Vec::new() })
    }

    /// Forgets the positions from `len` on (rejected draft tokens). A shared buffer's attention reads only as far
    /// as the mask says, and the next pass writes over them.
    pub(super) fn truncate(&mut self, len: usize) -> Result<()> {
        if len < self.len && self.shared.is_none() {
            return Err(Error::internal("only a shared-buffer decoder's cache can be rolled back"));
        }
        self.len = self.len.min(len);
        Ok(())
    }

    /// Whether positions can be taken back (speculative decoding needs it).
    pub(super) fn can_roll_back(&self) -> bool {
        self.shared.is_some()
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
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
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
        } else if self.shared.is_none() {
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
        let in_place = if let Some(shared) = self.shared.as_mut() {
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
                shared.logits = None; // the one-row buffer is no longer bound; the next one-token pass binds it again
                let outputs = session.run_binding(binding).or_inference("decoder step")?;
                let logits = outputs.get("logits").ok_or_else(|| Error::internal("the decoder gave no logits"))?;
                copy_logits(logits, if all_rows { n * vocab } else { vocab }, &mut self.logits)?;
                drop(outputs);
                if let (true, Some(value), Some(name)) =
                    (all_rows, last_logits_only(&llm)?, llm.config.last_logits_input.as_deref())
                {
                    binding.bind_input(name, &value).or_inference("binding")?;
                }
                false
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
                // The one-row logits buffer is ours: the caller reads it in place, without a copy (unless f16).
                if logits.try_extract_tensor::<f32>().is_err() {
                    copy_logits(logits, vocab, &mut self.logits)?;
                    false
                } else {
                    true
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
            copy_logits(logits, if all_rows { n * vocab } else { vocab }, &mut self.logits)?;
            let past = llm
                .present_names
                .iter()
                .map(|name| {
                    outputs.remove(name).ok_or_else(|| Error::internal(format!("the decoder gave no `{name}`")))
                })
                .collect::<Result<Vec<_>>>()?;
            self.past = Some(past);
            false
        };
        drop(session);
        self.len = total;
        if in_place {
            let logits = self.shared.as_mut().and_then(|s| s.logits.as_mut()).expect("bound above");
            return Ok(logits.try_extract_tensor_mut::<f32>().or_inference("logits")?.1);
        }
        Ok(&mut self.logits)
    }
}

/// The last `count` logits (f32 or f16) copied into `out`, a buffer reused across passes.
fn copy_logits(logits: &DynValue, count: usize, out: &mut Vec<f32>) -> Result<()> {
    out.clear();
    match logits.try_extract_tensor::<f32>() {
        Ok((_, data)) => out.extend_from_slice(&data[data.len() - count..]),
        Err(_) => {
            let (_, data) = logits.try_extract_tensor::<f16>().or_inference("logits")?;
            out.extend(data[data.len() - count..].iter().map(|h| h.to_f32()));
        }
    }
    Ok(())
}
