//! Speculative decoding: the output is the model's own (greedy token for token, sampled reproducibly), with a
//! draft model or prompt lookup, and the metrics say what was drafted and kept.
#![cfg(feature = "llm")]

mod common;

use common::llm::{greedy, tiny};

use openautoglm::llm::{GenerateOptions, Llm};
use openautoglm::{EngineConfig, Error, Precision};

fn run(llm: &Llm, prompt: &str, options: GenerateOptions) -> (Vec<u32>, openautoglm::llm::GenerationMetrics) {
    let mut generation = llm.generate(prompt, options).unwrap();
    generation.by_ref().for_each(|piece| drop(piece.unwrap()));
    (generation.tokens().to_vec(), generation.metrics())
}

fn speculative(max_tokens: i32, k: i32) -> GenerateOptions {
    GenerateOptions { max_draft_tokens: k, min_tokens: max_tokens, ..greedy(max_tokens) }
}

#[test]
fn a_model_drafting_for_itself_keeps_every_draft_and_the_same_tokens() {
    let target = tiny();
    let drafted = target.with_draft(&tiny()).unwrap();
    assert_eq!(drafted.draft_file(), Some("fp32.onnx"));
    let (plain, plain_metrics) = run(&target, "Once upon a time", greedy(40));
    let (tokens, metrics) = run(&drafted, "Once upon a time", GenerateOptions { max_draft_tokens: 4, ..greedy(40) });
    assert_eq!(tokens, plain, "speculative greedy output is the model's own");
    assert_eq!(plain_metrics.draft_tokens, 0);
    assert!(metrics.draft_tokens > 0);
    assert_eq!(metrics.accepted_draft_tokens, metrics.draft_tokens, "a model agrees with itself");
    // (A draft as slow as the model does not pay: speculation pauses itself part of the time.)
    assert!(metrics.tokens_per_pass() > 1.2, "{} tokens per pass", metrics.tokens_per_pass());
    assert!(metrics.decode_passes < plain_metrics.decode_passes);
}

#[test]
fn an_attached_draft_speculates_by_default_and_no_draft_means_no_speculation() {
    let target = tiny();
    let drafted = target.with_draft(&tiny()).unwrap();
    let (plain, plain_metrics) = run(&target, "Once upon a time", greedy(40));
    assert_eq!(plain_metrics.draft_tokens, 0, "no draft and no k: plain decoding");
    let (tokens, metrics) = run(&drafted, "Once upon a time", greedy(40));
    assert_eq!(tokens, plain);
    assert!(metrics.draft_tokens > 0, "the default options speculate once a draft is attached");
    assert!(metrics.decode_passes < plain_metrics.decode_passes);
}

#[test]
fn prompt_lookup_gives_the_greedy_tokens_for_every_k() {
    let llm = tiny();
    // A prompt that repeats itself, so lookup finds matches; the random model decides whether they are kept.
    let prompt = "one two three four one two three four one two three four one two";
    let (plain, _) = run(&llm, prompt, speculative(48, 0));
    for k in [1, 3, 8] {
        let (tokens, metrics) = run(&llm, prompt, speculative(48, k));
        assert_eq!(tokens, plain, "k = {k}");
        assert!(metrics.draft_tokens > 0, "k = {k}: lookup proposed nothing");
        assert!(metrics.accepted_draft_tokens <= metrics.draft_tokens);
    }
}

#[test]
fn seeded_sampling_with_a_draft_is_reproducible() {
    let target = tiny();
    let drafted = target.with_draft(&tiny()).unwrap();
    let options = GenerateOptions { temperature: 0.8, top_k: 40, seed: Some(11), max_draft_tokens: 3, ..greedy(24) };
    let (a, _) = run(&drafted, "The sea is", options.clone());
    let (b, metrics) = run(&drafted, "The sea is", options);
    assert_eq!(a, b);
    assert!(metrics.draft_tokens > 0);
}

#[test]
fn speculation_is_refused_where_it_cannot_roll_back_and_options_are_checked() {
    common::init();
    let decomposed = Llm::open(common::llm("smollm2-tiny-decomposed"), EngineConfig::default()).unwrap();
    let refused = |llm: &Llm, k| match llm.generate("Hi", speculative(4, k)) {
        Err(Error::InvalidConfig { reason }) => reason,
        other => panic!("k = {k}: {:?}", other.err()),
    };
    assert!(refused(&decomposed, 2).contains("shared KV buffer"));
    assert!(refused(&tiny(), 99).contains("max_draft_tokens"));
    assert!(refused(&tiny(), -1).contains("max_draft_tokens"));
    // The LLM still answers afterwards.
    assert!(!run(&tiny(), "Hi", speculative(4, 2)).0.is_empty());
}

/// The real pair: SmolLM2's exact 4-bit decoder drafting for FP32 gives FP32's greedy answer.
#[test]
fn smollm2_int4_drafting_for_fp32_gives_fp32s_answer() {
    common::init();
    let config = EngineConfig::default().with_precision(Precision::Fp32);
    let fp32 = Llm::open(common::llm("smollm2"), config.clone()).unwrap();
    let draft = Llm::open_variant(common::llm("smollm2"), "int4-mixed", config).unwrap();
    let drafted = fp32.with_draft(&draft).unwrap();
    let prompt =
        fp32.chat_prompt(&[openautoglm::llm::ChatMessage::new("user", "Name three rivers in Europe.")]).unwrap();
    let (plain, _) = run(&fp32, &prompt, greedy(32));
    let (tokens, metrics) = run(&drafted, &prompt, GenerateOptions { max_draft_tokens: 4, ..greedy(32) });
    assert_eq!(tokens, plain);
    assert!(metrics.acceptance_rate() > 0.5, "acceptance {}", metrics.acceptance_rate());
}
