//! Idle chats' decoder states: kept between turns so that a chat's next message runs only what is new, copied as a
//! prefix into another sequence that starts with the same tokens (chats with one system prompt), and given back
//! least recently used first when idle caches outgrow their limit or a new generation needs the room.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::generation::KeptState;
use super::model::Model;
use super::state::DecoderState;
use crate::error::Result;

/// The default limit of idle chats' KV caches per LLM: about 2,800 positions of SmolLM2 with an FP32 KV cache (a
/// few long conversations), small next to the model and ONNX Runtime's arena on a phone.
pub const DEFAULT_IDLE_CACHE_BYTES: u64 = 128 << 20;

/// The idle chats' states of one LLM, by chat.
pub(super) struct KeptStates {
    entries: Mutex<Entries>,
    limit: AtomicU64,
}

#[derive(Default)]
struct Entries {
    by_chat: HashMap<u64, Entry>,
    /// Ticks at every use, for least-recently-used order.
    clock: u64,
}

struct Entry {
    kept: KeptState,
    used: u64,
}

impl Entries {
    fn bytes(&self) -> u64 {
        self.by_chat.values().map(|e| e.kept.bytes()).sum()
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Gives back the least recently used state; false when none is left.
    fn evict_oldest(&mut self) -> bool {
        let oldest = self.by_chat.iter().min_by_key(|(_, e)| e.used).map(|(&chat, _)| chat);
        oldest.and_then(|chat| self.by_chat.remove(&chat)).is_some()
    }
}

impl Default for KeptStates {
    fn default() -> Self {
        KeptStates { entries: Mutex::default(), limit: AtomicU64::new(DEFAULT_IDLE_CACHE_BYTES) }
    }
}

impl KeptStates {
    fn entries(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `chat`'s state for its next turn, unless `open` says the LLM was closed meanwhile (checked under the
    /// lock closing takes to clear them all); then gives back the oldest while idle caches are over the limit.
    pub(super) fn put(&self, chat: u64, kept: KeptState, open: impl FnOnce() -> bool) {
        let mut entries = self.entries();
        if !open() {
            return;
        }
        let used = entries.tick();
        entries.by_chat.insert(chat, Entry { kept, used });
        let limit = self.limit();
        while entries.bytes() > limit && entries.evict_oldest() {}
    }

    pub(super) fn take(&self, chat: u64) -> Option<KeptState> {
        self.entries().by_chat.remove(&chat).map(|e| e.kept)
    }

    pub(super) fn bytes_of(&self, chat: u64) -> u64 {
        self.entries().by_chat.get(&chat).map_or(0, |e| e.kept.bytes())
    }

    /// The bytes all idle chats' caches hold.
    pub(super) fn bytes(&self) -> u64 {
        self.entries().bytes()
    }

    pub(super) fn clear(&self) {
        self.entries().by_chat.clear();
    }

    pub(super) fn limit(&self) -> u64 {
        self.limit.load(Ordering::SeqCst)
    }

    /// Sets the idle caches' limit, giving back the oldest until they fit it.
    pub(super) fn set_limit(&self, bytes: u64) {
        self.limit.store(bytes, Ordering::SeqCst);
        let mut entries = self.entries();
        while entries.bytes() > bytes && entries.evict_oldest() {}
    }

    /// Gives back idle caches, least recently used first, until `model` can reserve `bytes` more under its memory
    /// limit (or none is left: the reservation then says why it cannot).
    pub(super) fn make_room(&self, model: &Model, bytes: u64) {
        let mut entries = self.entries();
        while !model.kv.fits(bytes) && entries.evict_oldest() {}
    }

    /// A new state holding the longest start of `tokens` that an idle chat's cache holds, copied (the chat keeps its
    /// own), with room for `capacity` positions; `None` when no cache shares a first token with them.
    pub(super) fn shared_prefix(
        &self,
        model: &Arc<Model>,
        tokens: &[u32],
        capacity: usize,
    ) -> Result<Option<KeptState>> {
        let best = |entries: &Entries| {
            let found = entries
                .by_chat
                .iter()
                .filter(|(_, e)| Arc::ptr_eq(&e.kept.state.llm, model))
                .map(|(&chat, e)| (chat, e.kept.common_prefix(tokens)))
                .max_by_key(|&(_, n)| n);
            found.filter(|&(_, n)| n > 0)
        };
        if best(&self.entries()).is_none() {
            return Ok(None);
        }
        // The new state is made without the lock (making one waits for the decoder's session, which a running
        // prefill holds); the donor is looked up again after, as another thread may have taken it meanwhile.
        let mut state = DecoderState::new(model.clone(), capacity)?;
        let mut entries = self.entries();
        let Some((chat, count)) = best(&entries) else { return Ok(None) };
        let used = entries.tick();
        let donor = entries.by_chat.get_mut(&chat).expect("found above");
        donor.used = used;
        donor.kept.state.copy_prefix_into(&mut state, count)?;
        Ok(Some(KeptState { tokens: tokens[..count].to_vec(), state }))
    }
}
