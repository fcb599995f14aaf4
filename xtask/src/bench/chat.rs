//! `cargo xtask bench --suite chat`: conversations at the speed of the new message. On SmolLM2 (the decoder `Auto`
//! picks), an 8-turn conversation with the KV cache kept between turns against the same with every turn replayed
//! from scratch, a second chat sharing a first one's 300-token system prompt, and the 4-bit decoder's decode speed
//! against FP32's with its quality verdict. The runner measures (`openautoglm-bench --chat`); this builds it, prints
//! the table and writes the file.

use std::process::Command;

use anyhow::{Result, bail};
use openautoglm::llm::LlmIndex;

use super::{Args, device_info, git_commit, result_path};
use crate::devices::Device;
use crate::models::llm;
use crate::results::{self, ChatFile, ChatOutput, ChatSummary, SCHEMA_VERSION};
use crate::{cache, runner};

const LLM: &str = "smollm2";

/// The 4-bit decoder to compare with FP32: the first that passed its quality check, else `int4-mixed` (the one
/// `Auto` tries first), with its verdict.
fn four_bit(index: &LlmIndex) -> Option<(String, bool)> {
    let four_bit: Vec<(&String, bool)> = index
        .precisions
        .iter()
        .filter(|(name, _)| name.starts_with("int4"))
        .map(|(name, d)| (name, d.quality.as_ref().is_some_and(|q| q.passed)))
        .collect();
    let passed = four_bit.iter().find(|(_, passed)| *passed);
    let fallback = four_bit.iter().find(|(name, _)| name.as_str() == "int4-mixed");
    passed.or(fallback).map(|(name, passed)| ((*name).clone(), *passed))
}

pub(super) fn run(args: &Args) -> Result<()> {
    if args.device != Device::Host {
        bail!("--suite chat runs on this machine; drop --device");
    }
    let binary = runner::build(None, &[])?;
    let dir = llm::prepare(LLM)?;
    let index: LlmIndex = results::read(&dir.join("llm.json"))?;
    let (variant, quality_passed) = four_bit(&index).unwrap_or(("int4".into(), false));
    let out = std::env::temp_dir().join(format!("openautoglm-chat-{}.json", std::process::id()));
    let mut command = Command::new(&binary);
    command
        .arg("--chat")
        .arg("--llm")
        .arg(&dir)
        .args(["--variants", &format!("fp32,{variant}")])
        .args(["--rounds", &args.rounds.to_string()])
        .arg("--ort")
        .arg(cache::host_onnxruntime()?)
        .arg("--out")
        .arg(&out);
    if let Some(threads) = args.threads {
        command.args(["--threads", &threads.to_string()]);
    }
    runner::run_with_progress(&mut command, "conversations with and without the kept cache")?;
    let output: ChatOutput = results::read(&out)?;
    let _ = std::fs::remove_file(&out);
    let summary = ChatSummary::of(&output, &variant, quality_passed);
    print_table(&output, &summary);
    let file = ChatFile {
        schema: SCHEMA_VERSION,
        suite: "chat".into(),
        device: device_info(&Device::Host),
        git_commit: git_commit(),
        llm: LLM.into(),
        chat: summary,
        runs: output,
    };
    let path = args.json.clone().unwrap_or_else(|| result_path("chat-host"));
    results::write(&path, &file)?;
    println!("wrote {}", path.display());
    Ok(())
}

fn print_table(output: &ChatOutput, s: &ChatSummary) {
    println!("{} ({} rounds, {}-token answers, greedy)", output.file, output.rounds, output.answer_tokens);
    println!(
        "| turn | prompt tokens | cached | wait, kept cache ms | wait, replayed ms | turn, kept ms | turn, replayed ms |"
    );
    println!(
        "|------|---------------|--------|---------------------|-------------------|---------------|-------------------|"
    );
    for (with, without) in output.with_reuse.iter().zip(&output.without_reuse) {
        println!(
            "| {:>4} | {:>13} | {:>6} | {:>19.1} | {:>17.1} | {:>13.1} | {:>17.1} |",
            with.turn,
            with.prompt_tokens,
            with.cached_prompt_tokens,
            with.wait_ms,
            without.wait_ms,
            with.turn_ms,
            without.turn_ms
        );
    }
    println!();
    let row = |what: &str, value: String| println!("| {what:<58} | {value:>12} |");
    println!("| {:<58} | {:>12} |", "chat", "value");
    println!("|{}|{}|", "-".repeat(60), "-".repeat(14));
    row("turn 8 / turn 1 wait, cache kept", format!("{:.2}", s.turn8_ttft_ratio));
    row("turn 8 / turn 1 wait, every turn replayed", format!("{:.2}", s.turn8_ttft_ratio_without_reuse));
    row("same tokens with and without the kept cache", s.tokens_equal.to_string());
    row(
        &format!("second chat / first chat wait ({}-token system prompt)", output.system_prompt_tokens),
        format!("{:.2}", s.shared_prefix_ttft_ratio),
    );
    row(&format!("{} / fp32 decode tokens/s", s.int4_variant), format!("{:.2}", s.int4_tokens_per_s_ratio));
    row(&format!("{} passed its quality check", s.int4_variant), s.int4_quality_passed.to_string());
}
