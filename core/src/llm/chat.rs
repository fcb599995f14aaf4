//! A conversation that remembers its turns: each message laid out with the history by the model's chat template,
//! and the exchange committed when its answer ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::decoder::Llm;
use super::generation::{Generation, KeptState};
use super::sampling::GenerateOptions;
use super::template::ChatMessage;
use crate::error::{Error, Result, catch_panic};

/// What a chat does when its history no longer fits the model's context with room for the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HistoryPolicy {
    /// Drop whole exchanges (a user message and its answer), oldest first; the system message always stays. A new
    /// message that does not fit even alone with the system message is refused.
    #[default]
    DropOldestExchanges,
    /// Refuse the new message (`InvalidInput`) rather than forget anything.
    Refuse,
}

/// An exchange in progress: it joins the history, with the exchanges the policy dropped gone, when its answer ends
/// (cancelled answers included); a refused message or a failed answer leaves the history as it was.
struct PendingExchange {
    history: Arc<Mutex<Vec<ChatMessage>>>,
    /// Where the decoder state waits for the next turn.
    llm: Llm,
    chat: u64,
    /// Held until the exchange is committed or abandoned: the chat takes one message at a time.
    _answering: Answering,
    /// The history the prompt was laid out from, after the policy dropped what did not fit.
    kept: Vec<ChatMessage>,
    user: ChatMessage,
}

impl PendingExchange {
    /// Commits the exchange with its answer, and keeps the decoder state for the next turn.
    fn answered(self, answer: &str, state: Option<KeptState>) {
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        *history = self.kept;
        history.push(self.user);
        history.push(ChatMessage::new("assistant", answer));
        drop(history);
        if let Some(state) = state {
            self.llm.keep_state(self.chat, state);
        }
    }
}

/// The chat's "an answer is being written" flag, cleared when dropped.
struct Answering(Arc<AtomicBool>);

impl Answering {
    fn take(flag: &Arc<AtomicBool>) -> Option<Answering> {
        flag.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst).ok().map(|_| Answering(flag.clone()))
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// A conversation that remembers its turns, under a [`HistoryPolicy`]. Safe to share between threads; it answers
/// one message at a time: a message sent while an answer is still being generated is refused with
/// [`Error::ChatBusy`] (never interleaved), and an exchange joins [`Chat::history`] when its answer ends.
///
/// A chat keeps its KV cache between turns: the next message runs only the tokens its prompt does not share with
/// the last turn's prompt and answer (the answer's closing, the new message and the assistant header), so the wait
/// before an answer does not grow with the conversation. The tokens are those of the whole history laid out
/// afresh, so the answer is the one a fresh prefill would give; when the policy drops an exchange, what follows the
/// system prompt is run again.
pub struct Chat {
    llm: Llm,
    policy: HistoryPolicy,
    history: Arc<Mutex<Vec<ChatMessage>>>,
    answering: Arc<AtomicBool>,
    /// Its key among the LLM's kept decoder states (the LLM holds them, so that closing it frees them all).
    id: u64,
}

impl Chat {
    /// A chat that drops the oldest exchanges when the context fills ([`HistoryPolicy::DropOldestExchanges`]).
    pub fn new(llm: &Llm, system: Option<&str>) -> Chat {
        Chat::with_policy(llm, system, HistoryPolicy::default())
    }

    pub fn with_policy(llm: &Llm, system: Option<&str>, policy: HistoryPolicy) -> Chat {
        let history = system.map(|s| vec![ChatMessage::new("system", s)]).unwrap_or_default();
        Chat {
            llm: llm.clone(),
            policy,
            history: Arc::new(Mutex::new(history)),
            answering: Arc::default(),
            id: llm.new_chat_id(),
        }
    }

    /// Whether its LLM was closed (then every call but this one fails with [`Error::EngineClosed`]).
    pub fn is_closed(&self) -> bool {
        self.llm.is_closed()
    }

    pub fn policy(&self) -> HistoryPolicy {
        self.policy
    }

    /// The bytes of KV cache the chat holds between turns (0 before its first answer, and after a failed one).
    pub fn cache_bytes(&self) -> u64 {
        self.llm.kept_bytes(self.id)
    }

    /// Gives back the KV cache held between turns: the next message runs the whole history again.
    pub fn release_cache(&self) {
        drop(self.llm.take_state(self.id));
    }

    /// The exchanges so far, after the system message: each a user message and its answer.
    pub fn history(&self) -> Vec<ChatMessage> {
        self.history.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn send(&self, user: &str, options: GenerateOptions) -> Result<Generation> {
        catch_panic(|| self.send_inner(user, options))
    }

    fn send_inner(&self, user: &str, options: GenerateOptions) -> Result<Generation> {
        let started = Instant::now();
        let answering = Answering::take(&self.answering).ok_or_else(|| Error::ChatBusy {
            reason: "the previous message's answer is still being generated; finish or cancel it first".into(),
        })?;
        let mut kept = self.history();
        let user = ChatMessage::new("user", user);
        let budget = self.llm.max_context().saturating_sub(options.max_tokens.max(0) as u32) as usize;
        let system = usize::from(kept.first().is_some_and(|m| m.role == "system"));
        let tokens = loop {
            let mut messages = kept.clone();
            messages.push(user.clone());
            let tokens = self.llm.encode(&self.llm.chat_prompt(&messages)?)?;
            if tokens.len() <= budget {
                break tokens;
            }
            let droppable = kept.len() - system;
            if self.policy == HistoryPolicy::Refuse || droppable == 0 {
                let with = if droppable == 0 { "even alone with the system message" } else { "with the history" };
                return Err(Error::invalid_input(
                    "message",
                    format!(
                        "{} prompt tokens {with}; the context holds {} with {} for the answer ({:?})",
                        tokens.len(),
                        self.llm.max_context(),
                        options.max_tokens,
                        self.policy
                    ),
                ));
            }
            // The oldest exchange: a user message and the answer after it (an unpaired message goes alone).
            let exchange = if kept.get(system + 1).is_some_and(|m| m.role == "assistant") { 2 } else { 1 };
            kept.drain(system..system + exchange.min(droppable));
        };
        let exchange = PendingExchange {
            history: self.history.clone(),
            llm: self.llm.clone(),
            chat: self.id,
            _answering: answering,
            kept,
            user,
        };
        let state = self.llm.take_state(self.id);
        let on_end = Box::new(move |answer: &str, state| exchange.answered(answer, state));
        self.llm.generate_tokens(tokens, options, started, on_end, state)
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        self.release_cache();
    }
}
