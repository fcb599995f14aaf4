//! What an LLM takes from its own files and how its life ends: stop tokens from `decoder.json`, a generation that
//! fails says so, and closing an LLM (decided in core) closes its clones and chats while running answers finish.
#![cfg(feature = "llm")]

mod common;

use std::path::{Path, PathBuf};

use common::llm::{greedy, tiny};
use openautoglm::llm::{Chat, FinishReason, Llm};
use openautoglm::{EngineConfig, Error};

/// A copy of the tiny decoder's directory with `decoder.json` changed by `edit`.
fn tiny_with(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let source = common::llm("smollm2-tiny");
    let dir = std::env::temp_dir().join(format!("openautoglm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&source).unwrap().flatten() {
        link_or_copy(&entry.path(), &dir.join(entry.file_name()));
    }
    let path = dir.join("decoder.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, config.to_string()).unwrap();
    dir
}

fn link_or_copy(from: &Path, to: &Path) {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).unwrap();
    }
}

#[test]
fn stop_tokens_come_from_decoder_json() {
    let first = {
        let mut generation = tiny().generate("The sea is", greedy(1)).unwrap();
        generation.by_ref().for_each(drop);
        generation.tokens()[0]
    };
    let dir = tiny_with("stop-tokens", |config| config["stop_tokens"] = serde_json::json!([first]));
    let llm = Llm::open(&dir, EngineConfig::default().with_threads(1)).unwrap();
    let mut generation = llm.generate("The sea is", greedy(8)).unwrap();
    assert!(generation.next().is_none(), "the first greedy token is a stop token now");
    assert_eq!(generation.finish_reason(), Some(FinishReason::Stop));
    assert!(generation.tokens().is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_failed_generation_reports_failed_not_stop() {
    // decoder.json claims a larger vocabulary than the decoder's logits have: the first step fails, typed.
    let dir = tiny_with("wrong-vocab", |config| config["vocab"] = serde_json::json!(49153));
    let llm = Llm::open(&dir, EngineConfig::default().with_threads(1)).unwrap();
    let mut generation = llm.generate("The sea is", greedy(4)).unwrap();
    match generation.next() {
        Some(Err(Error::InferenceFailed { reason })) => assert!(reason.contains("49153"), "{reason}"),
        other => panic!("expected a typed failure, got {other:?}"),
    }
    assert_eq!(generation.finish_reason(), Some(FinishReason::Failed));
    assert!(generation.next().is_none(), "a failed generation stays ended");
    let chat = Chat::new(&llm, None);
    assert!(chat.send("Hello", greedy(4)).unwrap().next().unwrap().is_err());
    assert!(chat.history().is_empty(), "a failed answer does not join the history");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn closing_an_llm_closes_its_clones_and_chats_and_running_answers_finish() {
    let llm = tiny();
    let clone = llm.clone();
    let chat = Chat::new(&llm, Some("Be brief."));
    let mut running = llm.generate("The sea is", greedy(6)).unwrap();
    let first = running.next().unwrap().unwrap();
    clone.close();
    assert!(llm.is_closed() && clone.is_closed() && chat.is_closed());
    assert!(matches!(llm.generate("Hi", greedy(2)), Err(Error::EngineClosed)));
    assert!(matches!(chat.send("Hi", greedy(2)), Err(Error::EngineClosed)));
    assert!(matches!(llm.encode("Hi"), Err(Error::EngineClosed)));
    assert_eq!(llm.file(), "fp32.onnx", "what it ran is still known");
    let rest: String = running.by_ref().map(|p| p.unwrap()).collect();
    assert_eq!(format!("{first}{rest}"), running.text(), "the running answer finished");
    assert_eq!(running.tokens().len(), 6);
    llm.close(); // twice is fine
}
