//! A generation's text: tokens decoded as they come (a few at a time, not the whole answer each step), stop strings
//! found and cut, and the tail that could still become a stop string held back until it cannot.

use crate::error::{Error, Result};

/// What one token added.
pub(super) enum Added {
    /// Text that can be handed out.
    Piece(String),
    /// Nothing yet (half a character, or a tail held back for a stop string).
    Nothing,
    /// A stop string ended the answer (the text is cut before it).
    Stop,
}

pub(super) struct Detokenizer {
    stop: Vec<String>,
    /// The answer so far, and how much of it was handed out.
    text: String,
    emitted: usize,
    /// tokenizers' decode-stream state.
    stream_ids: Vec<u32>,
    stream_prefix: String,
    stream_prefix_index: usize,
    stopped_by_string: bool,
}

impl Detokenizer {
    pub(super) fn new(stop: Vec<String>) -> Detokenizer {
        Detokenizer {
            stop,
            text: String::new(),
            emitted: 0,
            stream_ids: Vec::new(),
            stream_prefix: String::new(),
            stream_prefix_index: 0,
            stopped_by_string: false,
        }
    }

    /// The text handed out so far.
    pub(super) fn emitted(&self) -> &str {
        &self.text[..self.emitted]
    }

    /// Decodes `token` onto the text.
    pub(super) fn push(&mut self, tokenizer: &tokenizers::Tokenizer, token: u32) -> Result<Added> {
        // A character split across tokens decodes to nothing until its last byte arrives.
        let new_text = tokenizers::tokenizer::step_decode_stream(
            tokenizer,
            vec![token],
            true,
            &mut self.stream_ids,
            &mut self.stream_prefix,
            &mut self.stream_prefix_index,
        )
        .map_err(|e| Error::internal(format!("decoding tokens: {e}")))?;
        let Some(new_text) = new_text else { return Ok(Added::Nothing) };
        self.text.push_str(&new_text);
        if let Some(at) = self.stop.iter().filter_map(|s| self.text.find(s.as_str())).min() {
            self.text.truncate(at);
            self.stopped_by_string = true;
            return Ok(Added::Stop);
        }
        // Hold back a tail that could be the start of a stop string.
        let hold = self
            .stop
            .iter()
            .flat_map(|s| (1..s.len()).filter(|&k| s.is_char_boundary(k)).map(move |k| &s[..k]))
            .filter(|prefix| self.text.ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let until = self.text.len() - hold;
        if until > self.emitted && self.text.is_char_boundary(until) {
            let piece = self.text[self.emitted..until].to_owned();
            self.emitted = until;
            return Ok(Added::Piece(piece));
        }
        Ok(Added::Nothing)
    }

    /// Ends the text: what was still held back, if anything, and the whole answer. A character cut in half by the
    /// end (max_tokens, a full context, a cancel) is kept as U+FFFD, as decoding `generated` gives it, so the
    /// pieces, the text and the tokens tell one answer (a stop string cut the text on purpose).
    pub(super) fn finish(&mut self, tokenizer: &tokenizers::Tokenizer, generated: &[u32]) -> (Option<String>, &str) {
        if !self.stopped_by_string
            && let Ok(whole) = tokenizer.decode(generated, true)
            && whole.len() > self.text.len()
            && whole.starts_with(self.text.as_str())
        {
            self.text = whole;
        }
        let rest = self.text[self.emitted..].to_owned();
        self.emitted = self.text.len();
        ((!rest.is_empty()).then_some(rest), &self.text)
    }
}
