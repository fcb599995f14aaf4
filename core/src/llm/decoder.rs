//! The LLM handle apps hold: a loaded [`Model`] (and a draft model for speculative decoding) until closed, and the
//! calls that start generations from it.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use super::generation::{Generation, KeptState};
use super::kept::KeptStates;
use super::model::Model;
use super::sampling::GenerateOptions;
use super::template::ChatMessage;
use crate::config::EngineConfig;
use crate::error::{Error, Result, catch_panic};

/// The models an [`Llm`] runs, until it is closed.
#[derive(Clone)]
struct Loaded {
    model: Arc<Model>,
    /// The model that drafts for speculative decoding ([`Llm::with_draft`]).
    draft: Option<Arc<Model>>,
}

/// What clones of one [`Llm`] (and the chats made from it) share: closing one closes them all.
struct Shared {
    loaded: RwLock<Option<Loaded>>,
    /// What it ran, still known after close.
    file: String,
    draft_file: Option<String>,
    choice: crate::bundle::PrecisionChoice,
    max_context: u32,
    /// Each chat's decoder state between its turns: here so that closing frees them with the model, and so that
    /// one chat's prompt can start from another's.
    kept: KeptStates,
    next_chat: AtomicU64,
}

/// A decoder LLM loaded from a directory made by `cargo xtask models prepare smollm2`: `<precision>.onnx`,
/// `tokenizer.json`, `chat_template.jinja` and `decoder.json`. Cheap to clone; share it between threads.
/// [`Llm::close`] frees the model for every clone and chat at once.
#[derive(Clone)]
pub struct Llm {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Llm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llm")
            .field("file", &self.shared.file)
            .field("draft", &self.shared.draft_file)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Llm {
    pub fn open(dir: impl AsRef<Path>, config: EngineConfig) -> Result<Llm> {
        catch_panic(|| Ok(Llm::new(Arc::new(Model::open(dir.as_ref(), config, None)?), None)))
    }

    /// Loads one decoder of `dir` by its variant name (`int4-mixed` for `int4-mixed.onnx`), whatever its quality
    /// verdict (its [`Llm::precision`] says so): for benchmarks comparing variants of one precision.
    pub fn open_variant(dir: impl AsRef<Path>, variant: &str, config: EngineConfig) -> Result<Llm> {
        catch_panic(|| Ok(Llm::new(Arc::new(Model::open(dir.as_ref(), config, Some(variant))?), None)))
    }

    fn new(model: Arc<Model>, draft: Option<Arc<Model>>) -> Llm {
        let shared = Shared {
            file: model.file.clone(),
            draft_file: draft.as_ref().map(|d| d.file.clone()),
            choice: model.choice.clone(),
            max_context: model.config.max_positions as u32,
            loaded: RwLock::new(Some(Loaded { model, draft })),
            kept: KeptStates::default(),
            next_chat: AtomicU64::new(0),
        };
        Llm { shared: Arc::new(shared) }
    }

    /// The models, unless closed.
    fn loaded(&self) -> Result<Loaded> {
        self.shared.loaded.read().unwrap_or_else(|e| e.into_inner()).clone().ok_or(Error::EngineClosed)
    }

    /// Frees the model (once generations in progress end): later calls on this LLM, its clones and its chats fail
    /// with [`Error::EngineClosed`]. Closing twice is fine.
    pub fn close(&self) {
        self.shared.loaded.write().unwrap_or_else(|e| e.into_inner()).take();
        self.shared.kept.clear();
    }

    pub(super) fn new_chat_id(&self) -> u64 {
        self.shared.next_chat.fetch_add(1, Ordering::Relaxed)
    }

    /// Keeps a chat's decoder state for its next turn (not once closed: that frees them all).
    pub(super) fn keep_state(&self, chat: u64, state: KeptState) {
        self.shared.kept.put(chat, state, || !self.is_closed());
    }

    pub(super) fn take_state(&self, chat: u64) -> Option<KeptState> {
        self.shared.kept.take(chat)
    }

    pub(super) fn kept_bytes(&self, chat: u64) -> u64 {
        self.shared.kept.bytes_of(chat)
    }

    /// The KV cache bytes of one position (every layer's key and value): a generation reserves this times its
    /// prompt and `max_tokens` under [`EngineConfig::memory_limit_mb`], and a chat keeps its positions between turns.
    pub fn kv_bytes_per_position(&self) -> Result<u64> {
        Ok(self.loaded()?.model.kv_bytes_per_position() as u64)
    }

    /// The bytes of KV cache its chats keep between turns (each chat's is [`super::Chat::cache_bytes`]).
    pub fn cache_bytes(&self) -> u64 {
        self.shared.kept.bytes()
    }

    /// The most bytes of KV cache its chats keep between turns (default [`super::DEFAULT_IDLE_CACHE_BYTES`]): past
    /// it, the least recently used chats give theirs back, and run their whole history again on their next turn.
    pub fn idle_cache_limit(&self) -> u64 {
        self.shared.kept.limit()
    }

    pub fn set_idle_cache_limit(&self, bytes: u64) {
        self.shared.kept.set_limit(bytes)
    }

    /// What a generation of `tokens` starts from: the chat's own kept state, else a copy of the longest start of
    /// them an idle chat holds (a shared system prompt); with idle caches given back, least recently used first,
    /// until its KV cache fits the memory limit.
    fn starting_state(
        &self,
        model: &Arc<Model>,
        tokens: &[u32],
        options: &GenerateOptions,
        own: Option<KeptState>,
    ) -> Result<Option<KeptState>> {
        let capacity = super::generation::capacity(model, tokens.len(), options);
        let needed = (capacity as u64 * model.kv_bytes_per_position() as u64)
            .saturating_sub(own.as_ref().map_or(0, KeptState::bytes));
        self.shared.kept.make_room(model, needed);
        match own {
            Some(own) => Ok(Some(own)),
            None if tokens.is_empty() => Ok(None),
            None => self.shared.kept.shared_prefix(model, tokens, capacity),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.shared.loaded.read().unwrap_or_else(|e| e.into_inner()).is_none()
    }

    /// This LLM with `draft` proposing tokens for speculative decoding (requests that set
    /// [`GenerateOptions::max_draft_tokens`]): a cheaper model, such as a 4-bit variant of this one, with the same
    /// tokenizer. The output stays this model's own. Refused when the tokenizers differ. The new LLM closes apart
    /// from this one.
    pub fn with_draft(&self, draft: &Llm) -> Result<Llm> {
        let (ours, theirs) = (self.loaded()?.model, draft.loaded()?.model);
        if !ours.shares_tokenizer(&theirs) {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "{} cannot draft for {}: their tokenizers differ (a draft model must share the vocabulary)",
                    theirs.file, ours.file
                ),
            });
        }
        Ok(Llm::new(ours, Some(theirs)))
    }

    /// The draft model's file, if one is attached.
    pub fn draft_file(&self) -> Option<&str> {
        self.shared.draft_file.as_deref()
    }

    /// The decoder file running (e.g. `int4.onnx`).
    pub fn file(&self) -> &str {
        &self.shared.file
    }

    /// Which decoder runs and why (`Auto` only picks one that passed its quality check against FP32).
    pub fn precision(&self) -> &crate::bundle::PrecisionChoice {
        &self.shared.choice
    }

    /// Whether a prefill computes the logits of every prompt position (`true`) or, where the decoder allows it (those
    /// made by `models prepare` since it learnt to), only the last one's, which is all generation uses: memory then
    /// grows with the KV cache, not with prompt length x vocabulary. For benchmarks and scoring; default `false`.
    #[doc(hidden)]
    pub fn set_all_logits(&self, all: bool) {
        if let Ok(loaded) = self.loaded() {
            loaded.model.all_logits.store(all, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The most prompt positions one prefill run takes (default 256); a longer prompt is run in chunks, appended to
    /// the KV cache one after another. For tests and benchmarks.
    #[doc(hidden)]
    pub fn set_prefill_chunk(&self, positions: usize) {
        if let Ok(loaded) = self.loaded() {
            loaded.model.prefill_chunk.store(positions.max(1), std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The longest prompt + answer, in tokens.
    pub fn max_context(&self) -> u32 {
        self.shared.max_context
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.loaded()?.model.encode(text)
    }

    /// The text of `tokens` (special tokens left out), as a generation's `text()` holds it.
    pub fn decode(&self, tokens: &[u32]) -> Result<String> {
        self.loaded()?.model.decode(tokens)
    }

    /// The chat as the model's template lays it out, ending where the assistant's answer begins.
    pub fn chat_prompt(&self, messages: &[ChatMessage]) -> Result<String> {
        self.loaded()?.model.chat_prompt(messages)
    }

    /// Continues `prompt` (no template applied).
    pub fn generate(&self, prompt: &str, options: GenerateOptions) -> Result<Generation> {
        let started = Instant::now();
        catch_panic(|| {
            let loaded = self.loaded()?;
            let tokens = loaded.model.encode(prompt)?;
            let kept = self.starting_state(&loaded.model, &tokens, &options, None)?;
            Generation::start(loaded.model, tokens, options, started, None, loaded.draft, kept)
        })
    }

    /// Answers the chat: the template applied to `messages`, with the assistant's turn open.
    pub fn chat(&self, messages: &[ChatMessage], options: GenerateOptions) -> Result<Generation> {
        let started = Instant::now();
        catch_panic(|| {
            let loaded = self.loaded()?;
            let tokens = loaded.model.encode(&loaded.model.chat_prompt(messages)?)?;
            let kept = self.starting_state(&loaded.model, &tokens, &options, None)?;
            Generation::start(loaded.model, tokens, options, started, None, loaded.draft, kept)
        })
    }

    /// Starts a generation of `tokens` (laid out and counted by the caller) from what `kept` holds of them, which
    /// calls `on_end` with its answer and its state when it ends (not when it fails): how a chat commits an exchange
    /// and keeps its KV cache for the next turn.
    pub(super) fn generate_tokens(
        &self,
        tokens: Vec<u32>,
        options: GenerateOptions,
        started: Instant,
        on_end: super::generation::OnEnd,
        kept: Option<KeptState>,
    ) -> Result<Generation> {
        let loaded = self.loaded()?;
        let kept = self.starting_state(&loaded.model, &tokens, &options, kept)?;
        Generation::start(loaded.model, tokens, options, started, Some(on_end), loaded.draft, kept)
    }
}
