//! The decoders the text-generation tests load.

use openautoglm::EngineConfig;
use openautoglm::llm::{GenerateOptions, Llm};

/// The tiny random decoder of SmolLM2's layout, tokenizer and template (2,048 positions), on one thread.
pub fn tiny() -> Llm {
    super::init();
    Llm::open(super::llm("smollm2-tiny"), EngineConfig::default().with_threads(1)).expect("tiny decoder loads")
}

/// Greedy decoding of up to `max_tokens`.
pub fn greedy(max_tokens: i32) -> GenerateOptions {
    GenerateOptions { max_tokens, ..GenerateOptions::default() }
}
