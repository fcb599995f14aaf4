//! The KV cache: zero-filled ONNX Runtime tensors in the decoder's KV type, and for a shared-buffer decoder one
//! buffer per layer bound as both `past` input and `present` output.

use half::f16;
use ort::session::{IoBinding, Session};
use ort::value::{DynValue, Tensor as OrtTensor};

use super::decoder::LlmInner;
use crate::error::{OrtResultExt, Result};

/// A zero-filled f32 (or f16) tensor of ours.
pub(super) fn new_tensor(shape: Vec<usize>, f16: bool) -> ort::Result<DynValue> {
    let allocator = ort::memory::Allocator::default();
    if f16 {
        let mut t = OrtTensor::<f16>::new(&allocator, shape)?;
        t.extract_tensor_mut().1.fill(f16::ZERO);
        Ok(t.into_dyn())
    } else {
        let mut t = OrtTensor::<f32>::new(&allocator, shape)?;
        t.extract_tensor_mut().1.fill(0.0);
        Ok(t.into_dyn())
    }
}

/// A KV cache tensor of `positions` positions, in the decoder's KV type.
pub(super) fn kv_tensor(llm: &LlmInner, positions: usize) -> Result<DynValue> {
    let cfg = &llm.config;
    new_tensor(vec![1, cfg.kv_heads, positions, cfg.head_dim], llm.kv_f16).or_inference("KV cache")
}

/// The KV cache of a shared-buffer decoder: per layer one buffer for `capacity` positions (the whole generation),
/// bound as both its `past` input and its `present` output, so the attention appends to it in place and nothing is
/// copied or reallocated between steps.
pub(super) fn shared_kv_cache(llm: &LlmInner, session: &Session, capacity: usize) -> Result<SharedKvCache> {
    let mut binding = session.create_binding().or_inference("binding")?;
    for (past, present) in llm.past_names.iter().zip(&llm.present_names) {
        let mut buffer = kv_tensor(llm, capacity)?;
        binding.bind_input(past.as_str(), &buffer).or_inference("KV cache")?;
        binding.bind_output(present.as_str(), &mut buffer).or_inference("KV cache")?;
    }
    if let Some(last_only) = last_logits_only(llm)? {
        binding
            .bind_input(llm.config.last_logits_input.as_deref().unwrap_or_default(), &last_only)
            .or_inference("binding")?;
    }
    Ok(SharedKvCache { binding, logits: None })
}

/// A shared-buffer decoder's state: the binding holds the KV buffers (as input and output) and, once decoding
/// one token at a time, the one-row logits buffer.
pub(super) struct SharedKvCache {
    pub(super) binding: IoBinding,
    pub(super) logits: Option<DynValue>,
}

/// The value that asks the decoder for the last position's logits only, if it takes one and the LLM is not set to
/// compute them all.
pub(super) fn last_logits_only(llm: &LlmInner) -> Result<Option<DynValue>> {
    if llm.config.last_logits_input.is_none() || llm.all_logits.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(None);
    }
    Ok(Some(OrtTensor::from_array(([1usize], vec![1i64])).or_inference("logits_last_only")?.into_dyn()))
}
