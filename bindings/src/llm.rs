//! Text generation over FFI (feature `llm`): an LLM object, multi-turn chats, and generations pulled one piece at a
//! time, which the Kotlin and Swift layers turn into a Flow and an AsyncThrowingStream.

use std::sync::{Arc, Mutex};

use openautoglm as core;
use openautoglm::EngineConfig;
use openautoglm::llm::{ChatMessage, FinishReason, GenerateOptions, GenerationMetrics};

use crate::EngineError;

#[uniffi::remote(Record)]
pub struct GenerateOptions {
    #[uniffi(default = 256)]
    pub max_tokens: u32,
    #[uniffi(default = 0)]
    pub min_tokens: u32,
    #[uniffi(default = 0.0)]
    pub temperature: f32,
    #[uniffi(default = 0)]
    pub top_k: u32,
    #[uniffi(default = 1.0)]
    pub top_p: f32,
    #[uniffi(default = 1.0)]
    pub repetition_penalty: f32,
    #[uniffi(default = None)]
    pub seed: Option<u64>,
    #[uniffi(default = [])]
    pub stop: Vec<String>,
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
}

#[uniffi::remote(Record)]
pub struct GenerationMetrics {
    pub prompt_tokens: u32,
    pub generated_tokens: u32,
    pub prompt_ms: f64,
    pub time_to_first_token_ms: f64,
    pub tokens_per_second: f64,
    pub token_p50_ms: f64,
    pub token_p95_ms: f64,
    pub total_ms: f64,
    pub peak_rss_mb: f64,
}

/// A decoder LLM (the idiomatic `Llm` classes wrap this).
#[derive(uniffi::Object)]
pub struct NativeLlm {
    llm: core::llm::Llm,
}

#[uniffi::export]
impl NativeLlm {
    /// Loads the decoder in `dir` (made by `cargo xtask models prepare smollm2`) at `config.precision`.
    #[uniffi::constructor]
    pub fn open(dir: String, config: EngineConfig) -> Result<Arc<Self>, EngineError> {
        Ok(Arc::new(NativeLlm { llm: core::llm::Llm::open(dir, config)? }))
    }

    /// The decoder file running (e.g. `int4.onnx`).
    pub fn file(&self) -> String {
        self.llm.file().to_owned()
    }

    /// Continues `prompt` as is.
    pub fn generate(&self, prompt: String, options: GenerateOptions) -> Result<Arc<NativeGeneration>, EngineError> {
        Ok(NativeGeneration::new(self.llm.generate(&prompt, options)?))
    }

    /// Answers a chat (the model's template applied).
    pub fn chat(
        &self,
        messages: Vec<ChatMessage>,
        options: GenerateOptions,
    ) -> Result<Arc<NativeGeneration>, EngineError> {
        Ok(NativeGeneration::new(self.llm.chat(&messages, options)?))
    }

    /// A conversation that keeps its turns.
    pub fn new_chat(&self, system: Option<String>) -> Arc<NativeChat> {
        Arc::new(NativeChat { chat: core::llm::Chat::new(&self.llm, system.as_deref()) })
    }
}

/// A multi-turn chat.
#[derive(uniffi::Object)]
pub struct NativeChat {
    chat: core::llm::Chat,
}

#[uniffi::export]
impl NativeChat {
    pub fn send(&self, user: String, options: GenerateOptions) -> Result<Arc<NativeGeneration>, EngineError> {
        Ok(NativeGeneration::new(self.chat.send(&user, options)?))
    }

    pub fn history(&self) -> Vec<ChatMessage> {
        self.chat.history()
    }
}

/// A generation in progress, pulled one piece at a time (a blocking call per token: the Kotlin and Swift layers
/// pull it from a background thread and turn it into a Flow / AsyncThrowingStream).
#[derive(uniffi::Object)]
pub struct NativeGeneration {
    generation: Mutex<core::llm::Generation>,
    cancel: core::llm::CancelHandle,
}

impl NativeGeneration {
    fn new(generation: core::llm::Generation) -> Arc<Self> {
        let cancel = generation.cancel_handle();
        Arc::new(NativeGeneration { generation: Mutex::new(generation), cancel })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, core::llm::Generation> {
        self.generation.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[uniffi::export]
impl NativeGeneration {
    /// The next piece of text (valid UTF-8), or `None` when the generation has ended.
    pub fn next_piece(&self) -> Result<Option<String>, EngineError> {
        self.lock().next().transpose()
    }

    /// Stops before the next token; safe from any thread, also while `next_piece` runs.
    pub fn cancel(&self) {
        self.cancel.cancel()
    }

    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.lock().finish_reason()
    }

    pub fn text(&self) -> String {
        self.lock().text().to_owned()
    }

    pub fn metrics(&self) -> GenerationMetrics {
        self.lock().metrics()
    }
}
