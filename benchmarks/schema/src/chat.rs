//! What the runner's `--chat` reports: a conversation's turns with the KV cache kept between them and without, a
//! second chat sharing a first one's system prompt, and decode speed per decoder variant.

use serde::{Deserialize, Serialize};

/// One turn of the conversation, the median over rounds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct ChatTurn {
    pub turn: u32,
    pub prompt_tokens: u64,
    /// Prompt positions the kept cache held (not run again).
    pub cached_prompt_tokens: u64,
    /// The wait before the first token: laying out and tokenizing the prompt, the prefill and the first choice.
    pub wait_ms: f64,
    /// The prefill and the first choice alone (onnxruntime-genai's time to first token).
    pub time_to_first_token_ms: f64,
    /// The whole turn, from sending the message to the generation's end (with the cache kept, that includes running
    /// the answer's positions again as one pass for the next turn).
    pub turn_ms: f64,
}

/// One decoder variant's decode speed on the same prompt.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct DecodeSpeed {
    pub variant: String,
    /// Median over rounds of generated tokens after the first per second of decoding.
    pub tokens_per_second: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct ChatOutput {
    /// The decoder the conversations ran on.
    pub file: String,
    pub rounds: u32,
    pub answer_tokens: u32,
    pub with_reuse: Vec<ChatTurn>,
    pub without_reuse: Vec<ChatTurn>,
    /// Every turn's tokens the same with and without reuse, in every round.
    pub tokens_equal: bool,
    pub system_prompt_tokens: u64,
    /// First-turn waits of the chat that ran the system prompt, and of a second chat with the same one.
    pub first_chat_wait_ms: f64,
    pub second_chat_wait_ms: f64,
    pub second_chat_cached_tokens: u64,
    pub decode: Vec<DecodeSpeed>,
}
