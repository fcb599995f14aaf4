//! A chat keeps its KV cache between turns and runs only what is new: its answers are token for token those of a
//! full prefill of the same history (on a second LLM of the same files, which holds no cache), on both decoder
//! layouts (a shared KV buffer and a growing cache), when the history policy drops exchanges, and on the real
//! SmolLM2 decoder. Chats and one-shot requests that start like an idle chat copy its prefix; idle caches are given
//! back least recently used first; KV caches count under the memory limit.
#![cfg(feature = "llm")]

mod common;

use common::llm::{greedy, tiny};

use openautoglm::llm::{Chat, ChatMessage, Generation, Llm};
use openautoglm::{EngineConfig, Error};

fn smollm2(config: EngineConfig) -> Llm {
    common::init();
    Llm::open(common::llm("smollm2"), config).unwrap()
}

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

/// What a full prefill of the chat's history and `message` answers, on `fresh`: an LLM of the same files whose
/// chats hold no cache.
fn fresh_answer(fresh: &Llm, chat: &Chat, message: &str, max_tokens: i32) -> Vec<u32> {
    let mut messages = chat.history();
    messages.push(ChatMessage::new("user", message));
    let (tokens, cached) = finish(fresh.chat(&messages, greedy(max_tokens)).unwrap());
    assert_eq!(cached, 0, "the reference runs the whole prompt");
    tokens
}

/// Four turns, each compared with a full prefill of the same history; turns after the first reuse the cache.
fn turns_equal_a_full_prefill(open: fn() -> Llm, max_tokens: i32) {
    let (llm, fresh) = (open(), open());
    let chat = Chat::new(&llm, Some("You are a helpful assistant."));
    let messages = ["What is the capital of France?", "And of Italy?", "Which is larger?", "Thank you."];
    for (turn, message) in messages.iter().enumerate() {
        let want = fresh_answer(&fresh, &chat, message, max_tokens);
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
    turns_equal_a_full_prefill(tiny, 12);
}

#[test]
fn later_turns_reuse_the_cache_and_answer_as_a_full_prefill_with_a_growing_cache() {
    turns_equal_a_full_prefill(tiny_growing, 12);
}

/// The real SmolLM2 decoder `Auto` picks, greedy: the answers of a three-turn conversation are exactly those of a
/// full prefill, and every turn after the first starts from the cache.
#[test]
fn smollm2_turns_reuse_the_cache_and_answer_as_a_full_prefill() {
    let (llm, fresh) = (smollm2(EngineConfig::default()), smollm2(EngineConfig::default()));
    let chat = Chat::new(&llm, Some("You are a helpful assistant. Answer in one sentence."));
    for (turn, message) in
        ["What is the capital of France?", "What river runs through it?", "Name one bridge on it."].iter().enumerate()
    {
        let want = fresh_answer(&fresh, &chat, message, 24);
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
    for (llm, fresh) in [(tiny(), tiny()), (tiny_growing(), tiny_growing())] {
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
        let mut reference = fresh.chat(&kept, greedy(max_tokens)).unwrap();
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

const SYSTEM: &str = "You are a careful assistant for a hiking club. Answer briefly, name the trail when you know it, \
                      and say so when you are not sure.";

/// A second chat with the same system prompt copies the first one's cached prefix, and so does a one-shot request
/// that starts the same way: the answers are those of a full prefill.
#[test]
fn chats_and_requests_that_start_alike_share_the_cached_prefix() {
    for open in [tiny as fn() -> Llm, tiny_growing] {
        let (llm, fresh) = (open(), open());
        let system_tokens = llm.encode(SYSTEM).unwrap().len() as i32;
        let first = Chat::new(&llm, Some(SYSTEM));
        finish(first.send("Which trail is the longest?", greedy(8)).unwrap());
        let second = Chat::new(&llm, Some(SYSTEM));
        let want = fresh_answer(&fresh, &second, "Is the lake trail open?", 8);
        let (got, cached) = finish(second.send("Is the lake trail open?", greedy(8)).unwrap());
        assert_eq!(got, want, "the second chat answers as a full prefill would");
        assert!(cached > system_tokens, "the system prompt is not run again: {cached} cached");
        let messages = [ChatMessage::new("system", SYSTEM), ChatMessage::new("user", "Any trail for children?")];
        let (got, cached) = finish(llm.chat(&messages, greedy(8)).unwrap());
        assert!(cached > system_tokens, "a one-shot request reuses the prefix too: {cached} cached");
        assert_eq!(got, finish(fresh.chat(&messages, greedy(8)).unwrap()).0);
        assert!(first.cache_bytes() > 0 && second.cache_bytes() > 0, "each chat keeps its own");
    }
}

/// Over the idle limit, the least recently used chat gives its cache back; its next turn runs the whole history
/// again and still answers as a full prefill.
#[test]
fn idle_caches_over_the_limit_are_given_back_least_recently_used_first() {
    let (llm, fresh) = (tiny(), tiny());
    let older = Chat::new(&llm, Some("You are terse."));
    finish(older.send("First question", greedy(6)).unwrap());
    let one_chat = older.cache_bytes();
    assert_eq!(llm.cache_bytes(), one_chat);
    llm.set_idle_cache_limit(one_chat + one_chat / 2);
    assert_eq!(llm.idle_cache_limit(), one_chat + one_chat / 2);
    let newer = Chat::new(&llm, Some("You are terse."));
    finish(newer.send("Other question", greedy(6)).unwrap());
    assert_eq!(older.cache_bytes(), 0, "the least recently used chat gave its cache back");
    assert!(newer.cache_bytes() > 0);
    assert!(llm.cache_bytes() <= llm.idle_cache_limit());
    let want = fresh_answer(&fresh, &older, "Second question", 6);
    let (got, _) = finish(older.send("Second question", greedy(6)).unwrap());
    assert_eq!(got, want);
    llm.set_idle_cache_limit(0);
    assert_eq!(llm.cache_bytes(), 0, "a limit of 0 keeps no idle cache");
}

/// A KV cache counts under the memory limit: idle chats' caches are given back to make room, and a request whose
/// cache alone is over the limit is refused with a typed error, after which the LLM still answers.
#[test]
fn kv_caches_count_under_the_memory_limit() {
    // SmolLM2 holds 46 KB per position with an FP32 KV cache, 23 KB with FP16: 4 MB is 91 or 182 positions.
    let llm = smollm2(EngineConfig::default().with_memory_limit_mb(4));
    let per_position = llm.kv_bytes_per_position().unwrap();
    assert!([46_080, 23_040].contains(&per_position), "{per_position}");
    let first = Chat::new(&llm, Some("Be brief."));
    finish(first.send("Hello", greedy(24)).unwrap());
    assert!(first.cache_bytes() > 0);
    // A request whose cache fits the limit alone, not beside the idle chat's.
    let second = Chat::new(&llm, Some("Be brief."));
    let message = "Good morning to you, my friend";
    let prompt = [ChatMessage::new("system", "Be brief."), ChatMessage::new("user", message)];
    let prompt_tokens = llm.encode(&llm.chat_prompt(&prompt).unwrap()).unwrap().len() as u64;
    let capacity = (4 << 20) / per_position - 2;
    assert!(capacity * per_position + first.cache_bytes() > 4 << 20);
    finish(second.send(message, greedy((capacity - prompt_tokens) as i32)).unwrap());
    assert_eq!(first.cache_bytes(), 0, "the idle chat gave its cache back to make room");
    let refused = llm.generate("Once upon a time", greedy(500));
    match refused {
        Err(Error::MemoryLimit { reason }) => assert!(reason.contains("memory_limit_mb"), "{reason}"),
        Err(other) => panic!("expected MemoryLimit, got {other:?}"),
        Ok(_) => panic!("a 500-token answer's cache is over 4 MB"),
    }
    let (tokens, _) = finish(llm.generate("Once upon a time", greedy(4)).unwrap());
    assert!(!tokens.is_empty(), "the LLM still answers after the refusal");
}
