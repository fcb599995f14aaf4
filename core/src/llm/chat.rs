//! Chats: messages laid out by the model's chat template, and a conversation that remembers its turns.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::decoder::Llm;
use super::generation::Generation;
use super::sampling::GenerateOptions;
use crate::error::{Result, catch_panic};

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> ChatMessage {
        ChatMessage { role: role.to_owned(), content: content.to_owned() }
    }
}

/// A conversation that remembers its turns. When the history no longer fits the context with room for the answer,
/// the oldest turns (after the system message) are dropped.
pub struct Chat {
    llm: Llm,
    history: Arc<Mutex<Vec<ChatMessage>>>,
}

impl Chat {
    pub fn new(llm: &Llm, system: Option<&str>) -> Chat {
        let history = system.map(|s| vec![ChatMessage::new("system", s)]).unwrap_or_default();
        Chat { llm: llm.clone(), history: Arc::new(Mutex::new(history)) }
    }

    /// The turns so far (the assistant's answer is added when its generation ends, cancelled ones included).
    pub fn history(&self) -> Vec<ChatMessage> {
        self.history.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn send(&self, user: &str, options: GenerateOptions) -> Result<Generation> {
        catch_panic(|| self.send_inner(user, options))
    }

    fn send_inner(&self, user: &str, options: GenerateOptions) -> Result<Generation> {
        let started = Instant::now();
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        history.push(ChatMessage::new("user", user));
        let budget = self.llm.max_context().saturating_sub(options.max_tokens) as usize;
        let tokens = loop {
            let tokens = self.llm.encode(&self.llm.chat_prompt(&history)?)?;
            let first_droppable = usize::from(history.first().is_some_and(|m| m.role == "system"));
            if tokens.len() <= budget || history.len() <= first_droppable + 1 {
                break tokens;
            }
            history.remove(first_droppable);
        };
        drop(history);
        Generation::start(self.llm.inner.clone(), tokens, options, started, Some(self.history.clone()))
    }
}
