//! Chat prompts: messages laid out by the model's own chat template (`chat_template.jinja`), compiled once when the
//! model loads.

use crate::error::{Error, Result};

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

/// A model's chat template, parsed, with the texts of its begin and end tokens (which templates may print).
pub(super) struct ChatTemplate {
    env: minijinja::Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Parses `source` (Hugging Face's Jinja dialect: Python string methods and `raise_exception` included).
    pub(super) fn compile(source: String, bos_token: String, eos_token: String) -> Result<ChatTemplate> {
        let mut env = minijinja::Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |message: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message))
        });
        env.add_template_owned("chat", source).map_err(|e| Error::invalid_model(format!("chat template: {e}")))?;
        Ok(ChatTemplate { env, bos_token, eos_token })
    }

    /// The chat laid out, ending where the assistant's answer begins.
    pub(super) fn render(&self, messages: &[ChatMessage]) -> Result<String> {
        self.env
            .get_template("chat")
            .and_then(|t| {
                t.render(minijinja::context! {
                    messages => messages,
                    add_generation_prompt => true,
                    bos_token => self.bos_token,
                    eos_token => self.eos_token,
                })
            })
            .map_err(|e| Error::invalid_input("messages", format!("the chat template refused them: {e}")))
    }
}
