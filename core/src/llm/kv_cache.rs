//! The KV cache of one sequence, in either of the decoder layouts, and the decoder run that reads and extends it:
//! a growing cache (each run's `present` outputs, one position longer, are the next run's `past` inputs) or a shared
//! buffer per layer bound as both `past` input and `present` output, which the attention appends to in place.

use std::borrow::Cow;

use half::f16;
use ort::AsPointer;
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, Session, SessionInputValue};
use ort::value::{DynValue, Tensor as OrtTensor};

use super::model::Model;
use crate::error::{Error, OrtResultExt, Result};

/// The inputs of one decoder run other than the cache (ids, mask, positions, the last-row switch).
pub(super) type RunInputs<'a> = Vec<(Cow<'a, str>, SessionInputValue<'a>)>;

/// One decoder run: its inputs, how many new positions they carry, and how many logits (the last row's, or every
/// row's) it must give.
pub(super) struct Pass<'a> {
    pub(super) inputs: RunInputs<'a>,
    pub(super) positions: usize,
    pub(super) logits: usize,
}

/// Where a run left the logits it was asked for.
pub(super) enum Logits {
    /// Copied into the state's buffer.
    Copied,
    /// In the cache's own one-row buffer, to be read in place.
    InPlace,
}

pub(super) enum KvCache {
    /// The last run's `present` outputs (none before the first run).
    Growing(Option<Vec<DynValue>>),
    /// The buffers of a shared-buffer decoder, sized for the whole sequence.
    Shared(Box<SharedKvCache>),
}

/// A shared-buffer decoder's cache: the binding holds the KV buffers (as input and output) and, once decoding one
/// token at a time, the one-row logits buffer.
pub(super) struct SharedKvCache {
    binding: IoBinding,
    logits: Option<DynValue>,
    /// The KV buffers the binding holds, one per `past`/`present` pair, each `[1, kv_heads, capacity, head_dim]`.
    buffers: Vec<DynValue>,
    capacity: usize,
}

impl KvCache {
    /// An empty cache for up to `capacity` positions. A shared-buffer decoder's is made now, for all of them, so a
    /// cache that cannot be had fails here, and nothing is copied or reallocated between steps.
    pub(super) fn new(llm: &Model, capacity: usize) -> Result<KvCache> {
        if !llm.config.past_present_share_buffer {
            return Ok(KvCache::Growing(None));
        }
        let session = llm.session.lock().unwrap_or_else(|e| e.into_inner());
        let binding = session.create_binding().or_inference("binding")?;
        let mut shared = SharedKvCache { binding, logits: None, buffers: Vec::new(), capacity: 0 };
        shared.bind_buffers(llm, capacity, 0)?;
        if let Some(last_only) = last_logits_only(llm)? {
            shared
                .binding
                .bind_input(llm.config.last_logits_input.as_deref().unwrap_or_default(), &last_only)
                .or_inference("binding")?;
        }
        Ok(KvCache::Shared(Box::new(shared)))
    }

    /// Keeps the first `keep` of the `len` positions the cache holds, with room for `capacity` in all: how a chat's
    /// next turn reuses what its last one computed. A growing cache is cut to `keep`; a shared buffer need not be
    /// (attention reads only as far as the mask says) but is moved to larger buffers when `capacity` outgrows it.
    pub(super) fn keep(&mut self, llm: &Model, len: usize, keep: usize, capacity: usize) -> Result<()> {
        match self {
            KvCache::Growing(Some(present)) if keep < len => {
                for value in present.iter_mut() {
                    let mut cut = kv_tensor(llm, keep)?;
                    copy_positions(value, len, &mut cut, keep, keep, llm.config.kv_heads)?;
                    *value = cut;
                }
                Ok(())
            }
            KvCache::Growing(_) => Ok(()),
            KvCache::Shared(shared) if capacity > shared.capacity => shared.bind_buffers(llm, capacity, keep),
            KvCache::Shared(_) => Ok(()),
        }
    }

    /// A copy of the first `count` of `donor`'s `len` positions into this empty cache (another sequence that starts
    /// with the same tokens: a shared system prompt).
    pub(super) fn copy_from(&mut self, llm: &Model, donor: &KvCache, len: usize, count: usize) -> Result<()> {
        let heads = llm.config.kv_heads;
        match (self, donor) {
            (KvCache::Shared(ours), KvCache::Shared(theirs)) => {
                for (to, from) in ours.buffers.iter_mut().zip(&theirs.buffers) {
                    copy_positions(from, theirs.capacity, to, ours.capacity, count, heads)?;
                }
                Ok(())
            }
            (KvCache::Growing(ours), KvCache::Growing(Some(theirs))) => {
                let mut copied = Vec::with_capacity(theirs.len());
                for from in theirs {
                    let mut to = kv_tensor(llm, count)?;
                    copy_positions(from, len, &mut to, count, count, heads)?;
                    copied.push(to);
                }
                *ours = Some(copied);
                Ok(())
            }
            _ => Err(Error::internal("a KV cache copied from one of another layout")),
        }
    }

    /// Whether positions can be taken back (a shared buffer's attention reads only as far as the mask says).
    pub(super) fn can_roll_back(&self) -> bool {
        matches!(self, KvCache::Shared(_))
    }

    /// One run; its logits end up in `out` or, for a one-token run of a shared-buffer decoder, in place (see
    /// [`KvCache::logits_in_place`]).
    pub(super) fn run(
        &mut self,
        llm: &Model,
        session: &mut Session,
        pass: Pass<'_>,
        out: &mut Vec<f32>,
    ) -> Result<Logits> {
        match self {
            KvCache::Growing(past) => {
                let Pass { mut inputs, logits: count, .. } = pass;
                let previous = match past.take() {
                    Some(previous) => previous,
                    None => (0..llm.past_names.len()).map(|_| kv_tensor(llm, 0)).collect::<Result<Vec<_>>>()?,
                };
                inputs.extend(llm.past_names.iter().zip(previous).map(|(name, v)| (name.as_str().into(), v.into())));
                let mut outputs = session.run(inputs).or_inference("decoder step")?;
                let logits = outputs.get("logits").ok_or_else(|| Error::internal("the decoder gave no logits"))?;
                copy_logits(logits, count, out)?;
                let present = llm
                    .present_names
                    .iter()
                    .map(|name| {
                        outputs.remove(name).ok_or_else(|| Error::internal(format!("the decoder gave no `{name}`")))
                    })
                    .collect::<Result<Vec<_>>>()?;
                *past = Some(present);
                Ok(Logits::Copied)
            }
            KvCache::Shared(shared) => shared.run(llm, session, pass, out),
        }
    }

    /// The one-row logits a run left in place.
    pub(super) fn logits_in_place(&mut self) -> Result<&mut [f32]> {
        match self {
            KvCache::Shared(shared) => match shared.logits.as_mut() {
                Some(logits) => Ok(logits.try_extract_tensor_mut::<f32>().or_inference("logits")?.1),
                None => Err(Error::internal("no logits in place")),
            },
            KvCache::Growing(_) => Err(Error::internal("no logits in place")),
        }
    }
}

impl SharedKvCache {
    /// Binds new buffers of `capacity` positions as both `past` and `present`, with the first `keep` positions of
    /// the old ones copied in.
    fn bind_buffers(&mut self, llm: &Model, capacity: usize, keep: usize) -> Result<()> {
        let mut buffers = Vec::with_capacity(llm.past_names.len());
        for (i, (past, present)) in llm.past_names.iter().zip(&llm.present_names).enumerate() {
            let mut buffer = kv_tensor(llm, capacity)?;
            if let Some(old) = self.buffers.get(i) {
                copy_positions(old, self.capacity, &mut buffer, capacity, keep, llm.config.kv_heads)?;
            }
            self.binding.bind_input(past.as_str(), &buffer).or_inference("KV cache")?;
            self.binding.bind_output(present.as_str(), &mut buffer).or_inference("KV cache")?;
            buffers.push(buffer);
        }
        self.buffers = buffers;
        self.capacity = capacity;
        Ok(())
    }

    fn run(&mut self, llm: &Model, session: &mut Session, pass: Pass<'_>, out: &mut Vec<f32>) -> Result<Logits> {
        let Pass { inputs, positions: n, logits: count } = pass;
        let binding = &mut self.binding;
        for (name, value) in &inputs {
            binding.bind_input(name.as_ref(), &**value).or_inference("binding")?;
        }
        if n > 1 {
            // The prompt's logits (rows x vocab, megabytes) come from ONNX Runtime's arena, whose pages are warm
            // after the first request; a buffer of our own would be faulted in afresh at every prompt.
            let cpu = MemoryInfo::new(AllocationDevice::CPU, 0, AllocatorType::Device, MemoryType::CPUOutput)
                .or_inference("logits")?;
            binding.bind_output_to_device("logits", &cpu).or_inference("logits")?;
            self.logits = None; // the one-row buffer is no longer bound; the next one-token run binds it again
            let outputs = session.run_binding(binding).or_inference("decoder step")?;
            let logits = outputs.get("logits").ok_or_else(|| Error::internal("the decoder gave no logits"))?;
            copy_logits(logits, count, out)?;
            drop(outputs);
            // A run that wanted every row unbound "last row only"; the cache's later runs want it again.
            if let (true, Some(value), Some(name)) =
                (count > llm.config.vocab, last_logits_only(llm)?, llm.config.last_logits_input.as_deref())
            {
                binding.bind_input(name, &value).or_inference("binding")?;
            }
            return Ok(Logits::Copied);
        }
        if self.logits.is_none() {
            let mut logits = new_tensor(vec![1, 1, llm.config.vocab], llm.logits_f16).or_inference("logits")?;
            binding.bind_output("logits", &mut logits).or_inference("logits")?;
            self.logits = Some(logits);
        }
        // ort's run_binding would wrap all 61 bound outputs in new values at every step; every output here is
        // already ours, so the C call alone does.
        // SAFETY: the session and binding are live, the binding holds its values, and `session` is borrowed
        // mutably (its lock is held by the caller).
        unsafe {
            ort::Error::result_from_status((ort::api().RunWithBinding)(
                session.ptr().cast_mut(),
                std::ptr::null(),
                binding.ptr(),
            ))
        }
        .or_inference("decoder step")?;
        let logits = self.logits.as_mut().expect("bound above");
        // The one-row logits buffer is ours: the caller reads it in place, without a copy (unless f16).
        if logits.try_extract_tensor::<f32>().is_err() {
            copy_logits(logits, count, out)?;
            return Ok(Logits::Copied);
        }
        Ok(Logits::InPlace)
    }
}

/// A zero-filled f32 (or f16) tensor of ours.
fn new_tensor(shape: Vec<usize>, f16: bool) -> ort::Result<DynValue> {
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

/// Copies the first `count` positions of every head from `from` (`[1, heads, from_len, head_dim]`) into `to`
/// (`[1, heads, to_len, head_dim]`), both of the decoder's KV type.
fn copy_positions(
    from: &DynValue,
    from_len: usize,
    to: &mut DynValue,
    to_len: usize,
    count: usize,
    heads: usize,
) -> Result<()> {
    fn copy<T: Copy>(from: &[T], from_len: usize, to: &mut [T], to_len: usize, count: usize, heads: usize) {
        let head_dim = from.len() / (heads * from_len.max(1)).max(1);
        for h in 0..heads {
            let (src, dst) = (h * from_len * head_dim, h * to_len * head_dim);
            to[dst..dst + count * head_dim].copy_from_slice(&from[src..src + count * head_dim]);
        }
    }
    if count == 0 {
        return Ok(());
    }
    if let Ok((_, source)) = from.try_extract_tensor::<f32>() {
        let (_, target) = to.try_extract_tensor_mut::<f32>().or_inference("KV cache")?;
        copy(source, from_len, target, to_len, count, heads);
    } else {
        let (_, source) = from.try_extract_tensor::<f16>().or_inference("KV cache")?;
        let (_, target) = to.try_extract_tensor_mut::<f16>().or_inference("KV cache")?;
        copy(source, from_len, target, to_len, count, heads);
    }
    Ok(())
}

/// A KV cache tensor of `positions` positions, in the decoder's KV type.
fn kv_tensor(llm: &Model, positions: usize) -> Result<DynValue> {
    let cfg = &llm.config;
    new_tensor(vec![1, cfg.kv_heads, positions, cfg.head_dim], llm.kv_f16).or_inference("KV cache")
}

/// The value that asks the decoder for the last position's logits only, if it takes one and the LLM is not set to
/// compute them all.
pub(super) fn last_logits_only(llm: &Model) -> Result<Option<DynValue>> {
    if llm.config.last_logits_input.is_none() || llm.all_logits.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(None);
    }
    Ok(Some(OrtTensor::from_array(([1usize], vec![1i64])).or_inference("logits_last_only")?.into_dyn()))
}

/// The last `count` logits (f32 or f16) copied into `out`, a buffer reused across passes. Fewer than `count` is a
/// decoder whose vocabulary is not `decoder.json`'s.
fn copy_logits(logits: &DynValue, count: usize, out: &mut Vec<f32>) -> Result<()> {
    fn tail<T>(data: &[T], count: usize) -> Result<&[T]> {
        data.len().checked_sub(count).map(|start| &data[start..]).ok_or_else(|| Error::InferenceFailed {
            reason: format!("the decoder gave {} logits where decoder.json's vocabulary needs {count}", data.len()),
        })
    }
    out.clear();
    match logits.try_extract_tensor::<f32>() {
        Ok((_, data)) => out.extend_from_slice(tail(data, count)?),
        Err(_) => {
            let (_, data) = logits.try_extract_tensor::<f16>().or_inference("logits")?;
            out.extend(tail(data, count)?.iter().map(|h| h.to_f32()));
        }
    }
    Ok(())
}
