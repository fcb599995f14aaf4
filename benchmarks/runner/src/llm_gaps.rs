//! The LLM part of `--scheduling`: how steadily one stream's pieces keep coming while a second request on the same
//! `Llm` prefills a 2,000-token prompt.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bench_schema::scheduling::LlmStreamGaps;
use openautoglm::EngineConfig;
use openautoglm::llm::{GenerateOptions, Llm};
use openautoglm::metrics::Summary;

/// Prompt tokens of the long request.
const LONG_PROMPT_TOKENS: usize = 2000;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A prompt of at least `tokens` tokens.
fn long_prompt(llm: &Llm, tokens: usize) -> Result<String, String> {
    const SENTENCE: &str = "The keeper climbed the spiral stairs at dusk to light the lamp above the rocky shore. ";
    let mut prompt = String::new();
    while llm.encode(&prompt).map_err(|e| e.to_string())?.len() < tokens {
        prompt.push_str(SENTENCE);
    }
    Ok(prompt + "What did the keeper do?")
}

/// The long request's time to its first token.
fn prefill_ms(llm: &Llm, prompt: &str) -> Result<f64, String> {
    let started = Instant::now();
    let mut generation = llm
        .generate(prompt, GenerateOptions { max_tokens: 1, ..GenerateOptions::default() })
        .map_err(|e| e.to_string())?;
    generation.next().transpose().map_err(|e| e.to_string())?;
    Ok(ms(started.elapsed()))
}

pub(super) fn measure(dir: &std::path::Path) -> Result<LlmStreamGaps, String> {
    let llm = Llm::open(dir, EngineConfig::default()).map_err(|e| e.to_string())?;
    let prompt = long_prompt(&llm, LONG_PROMPT_TOKENS)?;
    let prompt_tokens = llm.encode(&prompt).map_err(|e| e.to_string())?.len();
    let alone_ms = prefill_ms(&llm, &prompt)?;

    let long_done = AtomicBool::new(false);
    let (pieces, window, contended_ms) = std::thread::scope(|scope| -> Result<_, String> {
        let stream = scope.spawn(|| -> Result<Vec<Instant>, String> {
            let options = GenerateOptions { max_tokens: 4000, min_tokens: 4000, ..GenerateOptions::default() };
            let mut generation = llm.generate("Once upon a time", options).map_err(|e| e.to_string())?;
            let mut at = Vec::new();
            // Runs until the long request has its first token (then a few more pieces).
            let mut after = 0;
            for piece in generation.by_ref() {
                piece.map_err(|e| e.to_string())?;
                at.push(Instant::now());
                if long_done.load(Ordering::SeqCst) {
                    after += 1;
                    if after > 3 {
                        break;
                    }
                }
            }
            Ok(at)
        });
        // The stream reaches its pace, then the long prompt arrives.
        std::thread::sleep(Duration::from_millis(1500));
        let started = Instant::now();
        let contended_ms = prefill_ms(&llm, &prompt)?;
        let first_token = Instant::now();
        long_done.store(true, Ordering::SeqCst);
        let pieces = stream.join().map_err(|_| "the stream panicked")??;
        Ok((pieces, (started, first_token), contended_ms))
    })?;
    // Gaps between consecutive pieces that overlap the long prefill.
    let (from, to) = window;
    let gaps: Vec<f64> = pieces.windows(2).filter(|w| w[1] > from && w[0] < to).map(|w| ms(w[1] - w[0])).collect();
    let solo: Vec<f64> = pieces.windows(2).filter(|w| w[1] <= from).map(|w| ms(w[1] - w[0])).collect();
    let during = Summary::of(&gaps).ok_or("no piece arrived while the long prompt prefilled")?;
    let before = Summary::of(&solo).ok_or("no piece arrived before the long prompt")?;
    Ok(LlmStreamGaps {
        llm_file: Some(llm.file().to_owned()),
        llm_long_prompt_tokens: Some(prompt_tokens as u64),
        llm_stream_max_gap_ms: Some(during.max),
        llm_stream_p50_gap_ms: Some(during.p50),
        llm_stream_gaps_during_prefill: Some(gaps.len() as u64),
        llm_stream_p50_gap_alone_ms: Some(before.p50),
        llm_long_prefill_alone_ms: Some(alone_ms),
        llm_long_prefill_contended_ms: Some(contended_ms),
    })
}
