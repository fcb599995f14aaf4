//! Text generation with decoder LLMs: tokenizer and chat template from the model's own files, prefill then decode
//! with the KV cache, sampling, stops, cancellation and per-request metrics. Pieces stream as an iterator.
//!
//! ```no_run
//! use openautoglm::{EngineConfig, llm::{ChatMessage, GenerateOptions, Llm}};
//! let llm = Llm::open("smollm2", EngineConfig::default())?;
//! for piece in llm.chat(&[ChatMessage::new("user", "What is the capital of France?")], GenerateOptions::default())? {
//!     print!("{}", piece?);
//! }
//! # Ok::<(), openautoglm::Error>(())
//! ```

mod chat;
mod decoder;
mod detokenizer;
mod generation;
mod kept;
mod kv_account;
mod kv_cache;
mod metrics;
mod model;
mod sampling;
mod speculative;
mod state;
mod template;
mod variants;

pub use chat::{Chat, HistoryPolicy};
pub use decoder::Llm;
pub use generation::{CancelHandle, FinishReason, Generation};
pub use kept::DEFAULT_IDLE_CACHE_BYTES;
pub use metrics::GenerationMetrics;
pub use sampling::{DEFAULT_DRAFT_TOKENS, GenerateOptions};
pub use template::ChatMessage;
pub use variants::{LlmDecoder, LlmIndex, LlmQuality};
