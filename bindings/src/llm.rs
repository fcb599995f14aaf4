//! Text generation over FFI (feature `llm`): an LLM object, multi-turn chats, and generations pulled one piece at a
//! time, which the Kotlin and Swift layers turn into a Flow and an AsyncThrowingStream.

use std::sync::{Arc, Mutex};

use openautoglm as core;
use openautoglm::llm::{ChatMessage, FinishReason, GenerateOptions, GenerationMetrics, HistoryPolicy};
use openautoglm::{EngineConfig, PrecisionChoice};

use crate::NativeError;

#[uniffi::remote(Record)]
pub struct GenerateOptions {
    #[uniffi(default = 256)]
    pub max_tokens: i32,
    #[uniffi(default = 0)]
    pub min_tokens: i32,
    #[uniffi(default = 0.0)]
    pub temperature: f32,
    #[uniffi(default = 0)]
    pub top_k: i32,
    #[uniffi(default = 1.0)]
    pub top_p: f32,
    #[uniffi(default = 1.0)]
    pub repetition_penalty: f32,
    #[uniffi(default = None)]
    pub seed: Option<i64>,
    #[uniffi(default = [])]
    pub stop: Vec<String>,
    #[uniffi(default = 0)]
    pub max_draft_tokens: i32,
}

#[uniffi::remote(Record)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

#[uniffi::remote(Enum)]
pub enum FinishReason {
    Stop,
    Length,
    ContextFull,
    Cancelled,
    Failed,
}

#[uniffi::remote(Record)]
pub struct GenerationMetrics {
    pub prompt_tokens: i32,
    pub cached_prompt_tokens: i32,
    pub generated_tokens: i32,
    pub prompt_ms: f64,
    pub time_to_first_token_ms: f64,
    pub tokens_per_second: f64,
    pub token_p50_ms: f64,
    pub token_p95_ms: f64,
    pub total_ms: f64,
    pub request_rss_rise_mb: f64,
    pub process_peak_rss_mb: f64,
    pub draft_tokens: i32,
    pub accepted_draft_tokens: i32,
    pub decode_passes: i32,
    pub prefill_passes: i32,
}

#[uniffi::remote(Enum)]
pub enum HistoryPolicy {
    DropOldestExchanges,
    Refuse,
}

// A decoder LLM (the idiomatic `Llm` classes wrap this). `release` closes it in core: generations in progress
// finish, and every later call, on it or on its chats, is `EngineClosed`.
#[derive(uniffi::Object)]
pub struct NativeLlm {
    llm: core::llm::Llm,
}

impl NativeLlm {
    fn live(&self) -> Result<&core::llm::Llm, NativeError> {
        if self.llm.is_closed() { Err(NativeError::EngineClosed) } else { Ok(&self.llm) }
    }
}

#[uniffi::export]
impl NativeLlm {
    // Loads the decoder in `dir` (made by `cargo xtask models prepare smollm2`) at `config.precision`.
    #[uniffi::constructor]
    pub fn open(dir: String, config: EngineConfig) -> Result<Arc<Self>, NativeError> {
        Ok(Arc::new(NativeLlm { llm: core::llm::Llm::open(dir, config)? }))
    }

    // The decoder file running (e.g. `int4.onnx`).
    pub fn file(&self) -> Result<String, NativeError> {
        Ok(self.live()?.file().to_owned())
    }

    // The decoder running and why: `Auto` picks the fastest one measured on this device class, or the smallest,
    // among those that passed their quality check against FP32.
    pub fn precision(&self) -> Result<PrecisionChoice, NativeError> {
        Ok(self.live()?.precision().clone())
    }

    // This LLM with `draft` (a cheaper decoder with the same tokenizer, such as a 4-bit variant) proposing tokens
    // for speculative decoding: on by default in its requests (`max_draft_tokens` 0 drafts up to 8 a pass; k sets
    // another cap). Without one, prompt lookup drafts in requests that set `max_draft_tokens`.
    pub fn with_draft(&self, draft: Arc<NativeLlm>) -> Result<Arc<NativeLlm>, NativeError> {
        Ok(Arc::new(NativeLlm { llm: self.live()?.with_draft(draft.live()?)? }))
    }

    // The draft decoder's file, when one is attached.
    pub fn draft_file(&self) -> Result<Option<String>, NativeError> {
        Ok(self.live()?.draft_file().map(str::to_owned))
    }

    // The tokens of `text` (no template applied): to count what a prompt takes of the context.
    pub fn encode(&self, text: String) -> Result<Vec<i32>, NativeError> {
        Ok(self.live()?.encode(&text)?.into_iter().map(|t| t as i32).collect())
    }

    // The text of `tokens`, as a generation's `text` holds it.
    pub fn decode(&self, tokens: Vec<i32>) -> Result<String, NativeError> {
        let tokens = tokens.iter().map(|&t| u32::try_from(t)).collect::<Result<Vec<u32>, _>>().map_err(|_| {
            NativeError::InvalidInput {
                name: "tokens".into(),
                reason: "token ids are 0 or more; one is negative".into(),
            }
        })?;
        self.live()?.decode(&tokens)
    }

    // Continues `prompt` as is.
    pub fn generate(&self, prompt: String, options: GenerateOptions) -> Result<Arc<NativeGeneration>, NativeError> {
        Ok(NativeGeneration::new(self.live()?.generate(&prompt, options)?))
    }

    // Answers a chat (the model's template applied).
    pub fn chat(
        &self,
        messages: Vec<ChatMessage>,
        options: GenerateOptions,
    ) -> Result<Arc<NativeGeneration>, NativeError> {
        Ok(NativeGeneration::new(self.live()?.chat(&messages, options)?))
    }

    // A conversation that keeps its turns under `policy` when the context fills.
    #[uniffi::method(default(policy = None))]
    pub fn new_chat(
        &self,
        system: Option<String>,
        policy: Option<HistoryPolicy>,
    ) -> Result<Arc<NativeChat>, NativeError> {
        let chat = core::llm::Chat::with_policy(self.live()?, system.as_deref(), policy.unwrap_or_default());
        Ok(Arc::new(NativeChat { chat }))
    }

    // Frees the model now (once generations in progress end); later calls on it and its chats fail with
    // `EngineClosed`. Releasing twice is fine. (Not `close`: uniffi's `close()` frees the handle itself.)
    pub fn release(&self) {
        self.llm.close();
    }

    pub fn is_closed(&self) -> bool {
        self.llm.is_closed()
    }

    // The bytes of KV cache its chats keep between turns.
    pub fn cache_bytes(&self) -> i64 {
        self.llm.cache_bytes() as i64
    }

    // The most bytes of KV cache its chats keep between turns; past it the least recently used give theirs back.
    pub fn idle_cache_limit_bytes(&self) -> i64 {
        self.llm.idle_cache_limit() as i64
    }

    pub fn set_idle_cache_limit_bytes(&self, bytes: i64) {
        self.llm.set_idle_cache_limit(bytes.max(0) as u64)
    }
}

// A multi-turn chat; closed with its LLM.
#[derive(uniffi::Object)]
pub struct NativeChat {
    chat: core::llm::Chat,
}

#[uniffi::export]
impl NativeChat {
    pub fn send(&self, user: String, options: GenerateOptions) -> Result<Arc<NativeGeneration>, NativeError> {
        Ok(NativeGeneration::new(self.chat.send(&user, options)?))
    }

    pub fn history(&self) -> Result<Vec<ChatMessage>, NativeError> {
        if self.chat.is_closed() {
            return Err(NativeError::EngineClosed);
        }
        Ok(self.chat.history())
    }

    // The bytes of KV cache the chat keeps between turns (its next message runs only what is new).
    pub fn cache_bytes(&self) -> i64 {
        self.chat.cache_bytes() as i64
    }

    // Gives back the KV cache kept between turns: the next message runs the whole history again.
    pub fn release_cache(&self) {
        self.chat.release_cache()
    }
}

// A generation in progress, pulled one piece at a time (a blocking call per token: the Kotlin and Swift layers
// pull it from a background thread and turn it into a Flow / AsyncThrowingStream).
#[derive(uniffi::Object)]
pub struct NativeGeneration {
    generation: Mutex<core::llm::Generation>,
    cancel: core::CancelToken,
    priority: core::PriorityHandle,
}

impl NativeGeneration {
    fn new(generation: core::llm::Generation) -> Arc<Self> {
        let (cancel, priority) = (generation.cancel_handle(), generation.priority_handle());
        Arc::new(NativeGeneration { generation: Mutex::new(generation), cancel, priority })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, core::llm::Generation> {
        self.generation.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[uniffi::export]
impl NativeGeneration {
    // The next piece of text (valid UTF-8), or `None` when the generation has ended.
    pub fn next_piece(&self) -> Result<Option<String>, NativeError> {
        self.lock().next().transpose()
    }

    // Orders this generation's next steps among the other work in its lane (a stream can move to the background
    // when its screen does).
    pub fn set_priority(&self, priority: core::Priority) {
        self.priority.set(priority)
    }

    // Stops before the next token; safe from any thread, also while `next_piece` runs.
    pub fn cancel(&self) {
        self.cancel.cancel()
    }

    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.lock().finish_reason()
    }

    // The answer so far: the pieces handed out, joined.
    pub fn text(&self) -> String {
        self.lock().text().to_owned()
    }

    // The generated token ids so far.
    pub fn tokens(&self) -> Vec<i32> {
        self.lock().tokens().iter().map(|&t| t as i32).collect()
    }

    pub fn metrics(&self) -> GenerationMetrics {
        self.lock().metrics()
    }
}
