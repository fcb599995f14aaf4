//! The KV cache memory of one model's sequences, held to the engine's memory limit.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::alloc::Limit;
use crate::error::{Error, Result};

/// The KV cache bytes one model's sequences reserve (each for its prompt and answer, when it starts), held to
/// the engine's memory limit ([`crate::EngineConfig::memory_limit_mb`]): past it a generation is refused with
/// [`Error::MemoryLimit`] (after the LLM gives back idle chats' caches), instead of the allocation failing mid-answer.
pub(super) struct KvAccount {
    reserved: AtomicU64,
    limit: Limit,
}

impl KvAccount {
    pub(super) fn new(limit: Limit) -> KvAccount {
        KvAccount { reserved: AtomicU64::new(0), limit }
    }

    /// Bytes reserved now.
    pub(super) fn reserved(&self) -> u64 {
        self.reserved.load(Ordering::SeqCst)
    }

    /// Whether `bytes` more would stay within the limit.
    pub(super) fn fits(&self, bytes: u64) -> bool {
        self.limit.bytes().is_none_or(|limit| self.reserved().saturating_add(bytes) <= limit)
    }

    /// Reserves `bytes` for `positions` positions, or says why not.
    pub(super) fn reserve(&self, bytes: u64, positions: usize) -> Result<()> {
        let limit = self.limit.bytes().unwrap_or(u64::MAX);
        self.reserved
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
                held.checked_add(bytes).filter(|&total| total <= limit)
            })
            .map(drop)
            .map_err(|held| Error::MemoryLimit {
                reason: format!(
                    "a KV cache for {positions} positions needs {bytes} bytes; this LLM's sequences hold {held} of \
                     its limit of {} MB (EngineConfig.memory_limit_mb): ask for fewer max_tokens, or raise the limit",
                    limit >> 20
                ),
            })
    }

    pub(super) fn release(&self, bytes: u64) {
        self.reserved.fetch_sub(bytes, Ordering::SeqCst);
    }
}
