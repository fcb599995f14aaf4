//! A chat keeps its KV cache between turns and runs only what is new: its answers are token for token those of a
//! full prefill of the same history, on both decoder layouts (a shared KV buffer and a growing cache), when the
//! history policy drops exchanges, and on the real SmolLM2 decoder.
#![cfg(feature = "llm")]

mod common;

use common::llm::{greedy, tiny};

use openautoglm::EngineConfig;
use openautoglm::llm::{Chat, ChatMessage, Generation, Llm};

/// The tiny random decoder with a growing KV cache (present outputs fed back as the next run's past inputs).
fn tiny_growing() -> Llm {
    common::init();
    Llm::open(common::llm("smollm2-tiny-decomposed"), EngineConfig::default().with_threads(1)).unwrap()
}

/// Runs a generation to its end and returns its tokens and the prompt tokens its cache already held.
fn finish(mut generation: Generation) -> (Vec<u32>, i32) {
    generation.by_ref().for_each(|piece| drop(piece.unwrap()));
    (generation.tokens().to_vec(), generation.metrics().cached_prompt_tokens)
}

/// What a full prefill of the chat's history and `message` answers.
fn fresh_answer(llm: &Llm, chat: &Chat, message: &str, max_tokens: i32) -> Vec<u32> {
    let mut messages = chat.history();
    messages.push(ChatMessage::new("user", message));
    finish(llm.chat(&messages, greedy(max_tokens)).unwrap()).0
}

/// Four turns, each compared with a full prefill of the same history; turns after the first reuse the cache.
fn turns_equal_a_full_prefill(llm: &Llm, max_tokens: i32) {
    let chat = Chat::new(llm, Some("You are a helpful assistant."));
    let messages = ["What is the capital of France?", "And of Italy?", "Which is larger?", "Thank you."];
    for (turn, message) in messages.iter().enumerate() {
        let want = fresh_answer(llm, &chat, message, max_tokens);
        let (got, cached) = finish(chat.send(message, greedy(max_tokens)).unwrap());
        assert_eq!(got, want, "turn {turn}: the answer is the one a full prefill gives");
        if turn == 0 {
            assert_eq!(cached, 0, "a first turn has nothing cached");
        } else {
            assert!(cached > 0, "turn {turn}: the earlier turns' positions are reused");
        }
        assert!(chat.cache_bytes() > 0, "the chat holds its cache between turns");
    }
}

#[test]
fn later_turns_reuse_the_cache_and_answer_as_a_full_prefill_with_a_shared_buffer() {
    turns_equal_a_full_prefill(&tiny(), 12);
}

#[test]
fn later_turns_reuse_the_cache_and_answer_as_a_full_prefill_with_a_growing_cache() {
    turns_equal_a_full_prefill(&tiny_growing(), 12);
}

/// The real SmolLM2 decoder `Auto` picks, greedy: the answers of a three-turn conversation are exactly those of a
/// full prefill, and every turn after the first starts from the cache.
#[test]
fn smollm2_turns_reuse_the_cache_and_answer_as_a_full_prefill() {
    common::init();
    let llm = Llm::open(common::llm("smollm2"), EngineConfig::default()).unwrap();
    let chat = Chat::new(&llm, Some("You are a helpful assistant. Answer in one sentence."));
    for (turn, message) in
        ["What is the capital of France?", "What river runs through it?", "Name one bridge on it."].iter().enumerate()
    {
        let want = fresh_answer(&llm, &chat, message, 24);
        let mut messages = chat.history();
        messages.push(ChatMessage::new("user", message));
        let prompt = llm.encode(&llm.chat_prompt(&messages).unwrap()).unwrap().len() as i32;
        let (got, cached) = finish(chat.send(message, greedy(24)).unwrap());
        assert_eq!(llm.decode(&got).unwrap(), llm.decode(&want).unwrap(), "turn {turn}");
        assert_eq!(got, want, "turn {turn}");
        if turn > 0 {
            // Only the answer's closing, the new message and the assistant header are new.
            assert!(cached > prompt / 2, "turn {turn}: {cached} of {prompt} prompt tokens reused");
        }
    }
}

/// When the policy drops the oldest exchange, positions after the system prompt change: the next turn still gives
/// what a full prefill of the history it kept gives.
#[test]
fn a_dropped_exchange_still_answers_as_a_full_prefill() {
    for llm in [tiny(), tiny_growing()] {
        let chat = Chat::new(&llm, Some("You are terse."));
        for message in ["First question", "Second question", "Third question"] {
            finish(chat.send(message, greedy(3)).unwrap());
        }
        let history = chat.history();
        // Room for the system message, the newest two exchanges and the new message: the oldest exchange goes.
        let mut fits = vec![history[0].clone()];
        fits.extend_from_slice(&history[3..]);
        fits.push(ChatMessage::new("user", "Fourth question"));
        let needed = llm.encode(&llm.chat_prompt(&fits).unwrap()).unwrap().len() as u32;
        let max_tokens = (llm.max_context() - needed) as i32;
        let mut generation = chat.send("Fourth question", greedy(max_tokens)).unwrap();
        for _ in 0..3 {
            generation.next().unwrap().unwrap();
        }
        let got = generation.tokens().to_vec();
        assert!(generation.metrics().cached_prompt_tokens > 0, "the system prompt's positions are reused");
        drop(generation);
        let mut kept = chat.history();
        assert_eq!(kept.len(), history.len(), "one exchange dropped, one added");
        kept.truncate(kept.len() - 1);
        let mut reference = llm.chat(&kept, greedy(max_tokens)).unwrap();
        for _ in 0..3 {
            reference.next().unwrap().unwrap();
        }
        assert_eq!(got, reference.tokens()[..got.len()], "the same tokens as a full prefill of the kept history");
    }
}

#[test]
fn released_and_closed_caches_are_given_back() {
    let llm = tiny();
    let chat = Chat::new(&llm, None);
    finish(chat.send("Hello", greedy(4)).unwrap());
    assert!(chat.cache_bytes() > 0);
    chat.release_cache();
    assert_eq!(chat.cache_bytes(), 0);
    let (_, cached) = finish(chat.send("Again", greedy(4)).unwrap());
    assert_eq!(cached, 0, "a released cache runs the whole history again");
    assert!(chat.cache_bytes() > 0);
    llm.close();
    assert_eq!(chat.cache_bytes(), 0, "closing the LLM frees every chat's cache with the model");
}
