//! `cargo xtask bench --suite adaptive`: the adaptive pipelines on this machine.
//! - The OCR cascade (tiny PP-OCRv6 recognizer first, the small one when unsure, threshold from
//!   `cascade calibrate`) against the small one alone, on evaluation lines the threshold was not chosen on:
//!   accuracy (exact match, spaces left out), character error rate, mean and p99 latency, escalation rate.
//! - Speculative decoding of SmolLM2 against the FP32 target alone: for each drafter and k, rounds interleaved
//!   with the plain target (same prompt, same length), tokens/s, time to first token, acceptance, and whether every
//!   token equals the target's own greedy token. The headline is the SDK's default (a draft attached, no k set) on
//!   a prompt no setting was chosen on; the other drafters and k are the trials beside it.

use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use super::{Args, device_info, git_commit, result_path};
use crate::cascades::{self, calibrate, lines, pair};
use crate::devices::Device;
use crate::models::llm;
use crate::results::{
    self, CascadeComparison, CascadePathTaken, ComparedLine, DeviceInfo, GenerationOutput, GenerationRun,
    SCHEMA_VERSION,
};
use crate::{cache, runner};

const PAIR: &str = "ocr-rec";
const LLM: &str = "smollm2";
const TARGET: &str = "fp32";
/// The drafters tried: a draft decoder by variant name, or prompt lookup (`None`), each with its most tokens per
/// pass (0: the SDK's default with a draft attached, `DEFAULT_DRAFT_TOKENS`).
const DRAFTERS: [Drafter; 7] = [
    (Some("int4-mixed"), 0),
    (Some("int4-mixed"), 4),
    (Some("int4-mixed"), 6),
    (Some("int4-mixed"), 10),
    (Some("int4"), 6),
    (None, 4),
    (None, 8),
];
/// A draft decoder by variant name (or prompt lookup: `None`) and its most tokens per pass.
type Drafter = (Option<&'static str>, i32);
/// A prompt's name and text.
type Prompt = (&'static str, &'static str);

/// The headline: the SDK's default configuration with a draft model, on a prompt no setting was chosen on.
const DEFAULT_DRAFTER: Drafter = (Some("int4-mixed"), 0);
const HEADLINE_PROMPT: Prompt = ("unseen", "Explain to a child why the sky is blue and why sunsets are red.");
/// An open question, and one grounded in text the prompt holds (where prompt lookup has something to find): every
/// drafter runs on these.
const PROMPTS: [Prompt; 2] = [
    ("open", "Write a short story about a lighthouse keeper who finds a message in a bottle."),
    (
        "grounded",
        "Repeat this passage word for word, then say who it is about: Now the word of the LORD came unto Jonah the \
         son of Amittai, saying, Arise, go to Nineveh, that great city, and cry against it; for their wickedness is \
         come up before me. But Jonah rose up to flee unto Tarshish from the presence of the LORD.",
    ),
];

#[derive(Serialize, Deserialize)]
pub struct AdaptiveFile {
    pub schema: u32,
    pub suite: String,
    pub device: DeviceInfo,
    pub git_commit: Option<String>,
    pub adaptive: AdaptiveMetrics,
    pub cascade_table: Vec<openautoglm::cascade::ThresholdRow>,
    pub spec_trials: Vec<SpecTrial>,
}

/// The figures the issue names, plus what explains them.
#[derive(Serialize, Deserialize)]
pub struct AdaptiveMetrics {
    pub cascade_accuracy: f64,
    pub main_accuracy: f64,
    pub fast_share_accuracy: f64,
    pub cascade_cer: f64,
    pub main_cer: f64,
    pub cascade_mean_latency_ratio: f64,
    pub cascade_p99_ms: f64,
    pub main_p99_ms: f64,
    pub escalation_rate: f64,
    pub evaluation_lines: usize,
    pub threshold: f32,
    /// The best speculative configuration on the open question whose tokens all equal the target's (named in
    /// `spec_config`); every trial is in `spec_trials`.
    pub spec_tokens_per_s_ratio: f64,
    pub spec_greedy_equal: bool,
    pub spec_acceptance: f64,
    pub spec_config: String,
    /// The headline: the SDK's default with a draft model (no k set) against the target alone, on a prompt no
    /// setting was chosen on: tokens/s and time to first token, with over without speculation.
    pub spec_default_tokens_per_s_ratio: f64,
    pub spec_default_ttft_ratio: f64,
    pub spec_default_config: String,
}

#[derive(Serialize, Deserialize, Clone)]
pub struct SpecTrial {
    pub prompt: String,
    pub drafter: String,
    pub k: i32,
    pub target_tokens_per_s: f64,
    pub spec_tokens_per_s: f64,
    pub ratio: f64,
    /// Time to first token, median of each round's with / without pair (the draft's own prefill included).
    pub target_ttft_ms: f64,
    pub spec_ttft_ms: f64,
    pub ttft_ratio: f64,
    pub acceptance: f64,
    pub tokens_per_pass: f64,
    pub greedy_equal: bool,
}

pub(super) fn run(args: &Args) -> Result<()> {
    if args.device != Device::Host {
        bail!("--suite adaptive runs on this machine; drop --device");
    }
    let binary = runner::build(None, &[])?;
    let ort = cache::host_onnxruntime()?;
    let rounds = args.rounds;
    let (mut metrics, table) = measure_cascade(&binary, &ort, rounds)?;
    let trials = measure_speculation(&binary, &ort, rounds)?;
    metrics.spec_greedy_equal = trials.iter().all(|t| t.greedy_equal);
    let headline = trials.iter().find(|t| t.prompt == HEADLINE_PROMPT.0).expect("the headline trial runs");
    metrics.spec_default_tokens_per_s_ratio = headline.ratio;
    metrics.spec_default_ttft_ratio = headline.ttft_ratio;
    metrics.spec_default_config =
        format!("{} attached, default options (no k set), on the {} prompt", headline.drafter, headline.prompt);
    // Beside it, as before: the open question's best trial.
    let best =
        trials.iter().filter(|t| t.greedy_equal && t.prompt == PROMPTS[0].0).max_by(|a, b| a.ratio.total_cmp(&b.ratio));
    if let Some(best) = best {
        metrics.spec_tokens_per_s_ratio = best.ratio;
        metrics.spec_acceptance = best.acceptance;
        metrics.spec_config = format!("{} k={} on the {} prompt", best.drafter, best.k, best.prompt);
    }
    print_tables(&metrics, &trials);
    let file = AdaptiveFile {
        schema: SCHEMA_VERSION,
        suite: "adaptive".into(),
        device: device_info(&Device::Host),
        git_commit: git_commit(),
        adaptive: metrics,
        cascade_table: table,
        spec_trials: trials,
    };
    let path = args.json.clone().unwrap_or_else(|| result_path("adaptive-host"));
    results::write(&path, &file)?;
    println!("wrote {}", path.display());
    Ok(())
}

fn measure_cascade(
    binary: &Path,
    ort: &Path,
    rounds: usize,
) -> Result<(AdaptiveMetrics, Vec<openautoglm::cascade::ThresholdRow>)> {
    let manifest_path = cascades::calibrated(PAIR)?;
    let manifest = openautoglm::cascade::CascadeManifest::load(&manifest_path)?;
    let pair = pair::pair(PAIR)?;
    let lines_path = lines::labelled(&pair, lines::Set::Evaluation)?;
    let truths = cascades::truths(&lines_path)?;
    let out = pair::dir(&pair).join("compare-evaluation.json");
    runner::run_with_progress(
        Command::new(binary)
            .args(["--cascade", "--compare", "--rounds", &rounds.to_string()])
            .arg("--manifest")
            .arg(&manifest_path)
            .arg("--lines")
            .arg(&lines_path)
            .arg("--ort")
            .arg(ort)
            .arg("--out")
            .arg(&out),
        "cascade vs main alone, evaluation lines",
    )?;
    let compared: CascadeComparison = results::read(&out)?;
    let n = compared.lines.len().max(1) as f64;
    let share = |f: &dyn Fn(&ComparedLine, &String) -> bool| {
        compared.lines.iter().zip(&truths).filter(|(l, t)| f(l, t)).count() as f64 / n
    };
    let cer = |f: &dyn Fn(&ComparedLine) -> &str| {
        compared.lines.iter().zip(&truths).map(|(l, t)| calibrate::character_error_rate(f(l), t)).sum::<f64>() / n
    };
    let main_ms: Vec<f64> = compared.lines.iter().map(|l| l.main_ms).collect();
    let cascade_ms: Vec<f64> = compared.lines.iter().map(|l| l.cascade_ms).collect();
    let fast: Vec<(&ComparedLine, &String)> =
        compared.lines.iter().zip(&truths).filter(|(l, _)| l.path == CascadePathTaken::Fast).collect();
    let metrics = AdaptiveMetrics {
        cascade_accuracy: share(&|l, t| calibrate::same_text(&l.cascade_text, t)),
        main_accuracy: share(&|l, t| calibrate::same_text(&l.main_text, t)),
        fast_share_accuracy: fast.iter().filter(|(l, t)| calibrate::same_text(&l.cascade_text, t)).count() as f64
            / fast.len().max(1) as f64,
        cascade_cer: cer(&|l| &l.cascade_text),
        main_cer: cer(&|l| &l.main_text),
        cascade_mean_latency_ratio: cascade_ms.iter().sum::<f64>() / main_ms.iter().sum::<f64>().max(1e-9),
        cascade_p99_ms: calibrate::percentile(&cascade_ms, 0.99),
        main_p99_ms: calibrate::percentile(&main_ms, 0.99),
        escalation_rate: share(&|l, _| l.path == CascadePathTaken::Main),
        evaluation_lines: compared.lines.len(),
        threshold: compared.threshold,
        spec_tokens_per_s_ratio: 0.0,
        spec_greedy_equal: false,
        spec_acceptance: 0.0,
        spec_config: String::new(),
        spec_default_tokens_per_s_ratio: 0.0,
        spec_default_ttft_ratio: 0.0,
        spec_default_config: String::new(),
    };
    Ok((metrics, manifest.table))
}

fn generate(
    binary: &Path,
    ort: &Path,
    dir: &Path,
    question: &str,
    drafter: Option<(Option<&str>, i32)>,
) -> Result<GenerationRun> {
    let out = std::env::temp_dir().join(format!("openautoglm-adaptive-{}.json", std::process::id()));
    let mut command = Command::new(binary);
    command
        .args(["--generate", "--precision", TARGET, "--tokens", "96", "--runs", "1", "--threads", "2"])
        .arg("--llm")
        .arg(dir)
        .args(["--question", question])
        .arg("--ort")
        .arg(ort)
        .arg("--out")
        .arg(&out);
    if let Some((draft, k)) = drafter {
        command.args(["--draft-tokens", &k.to_string()]);
        if let Some(draft) = draft {
            command.args(["--draft", draft]);
        }
    }
    crate::cmd::capture(&mut command)?;
    let output: GenerationOutput = results::read(&out)?;
    let _ = std::fs::remove_file(&out);
    output.runs.into_iter().next().ok_or_else(|| anyhow::anyhow!("the runner timed no generation"))
}

fn measure_speculation(binary: &Path, ort: &Path, rounds: usize) -> Result<Vec<SpecTrial>> {
    let dir = llm::prepare(LLM)?;
    // The headline first, then every drafter on the open and grounded prompts.
    let plan: Vec<(Prompt, Drafter)> = std::iter::once((HEADLINE_PROMPT, DEFAULT_DRAFTER))
        .chain(PROMPTS.iter().flat_map(|&p| DRAFTERS.iter().map(move |&d| (p, d))))
        .collect();
    let bar = indicatif::ProgressBar::new((plan.len() * rounds) as u64).with_style(
        indicatif::ProgressStyle::with_template("speculative vs target alone [{bar:40}] {pos}/{len} {elapsed}")
            .expect("template")
            .progress_chars("=> "),
    );
    let mut trials = Vec::new();
    for ((prompt_name, question), (draft, k)) in plan {
        let (mut plain, mut spec, mut ratios, mut equal) = (Vec::new(), Vec::new(), Vec::new(), true);
        let (mut plain_ttft, mut spec_ttft, mut ttft_ratios) = (Vec::new(), Vec::new(), Vec::new());
        let (mut proposed, mut accepted, mut generated, mut passes) = (0u64, 0u64, 0u64, 0u64);
        for _ in 0..rounds {
            // Interleaved: the target alone, then with the drafter, so drift hits both alike.
            let alone = generate(binary, ort, &dir, question, None)?;
            let with = generate(binary, ort, &dir, question, Some((draft, k)))?;
            equal &= alone.tokens == with.tokens;
            plain.push(alone.tokens_per_second);
            spec.push(with.tokens_per_second);
            ratios.push(with.tokens_per_second / alone.tokens_per_second.max(1e-9));
            plain_ttft.push(alone.time_to_first_token_ms);
            spec_ttft.push(with.time_to_first_token_ms);
            ttft_ratios.push(with.time_to_first_token_ms / alone.time_to_first_token_ms.max(1e-9));
            proposed += with.draft_tokens;
            accepted += with.accepted_draft_tokens;
            generated += with.generated_tokens.saturating_sub(1);
            passes += with.decode_passes;
            bar.inc(1);
        }
        let median = |v: &[f64]| calibrate::percentile(v, 0.5);
        trials.push(SpecTrial {
            prompt: prompt_name.into(),
            drafter: draft.map_or("prompt lookup".into(), |d| format!("SmolLM2 {d}")),
            k,
            target_tokens_per_s: median(&plain),
            spec_tokens_per_s: median(&spec),
            // Each round's pair, run back to back, is one ratio: drift between rounds cancels.
            ratio: median(&ratios),
            target_ttft_ms: median(&plain_ttft),
            spec_ttft_ms: median(&spec_ttft),
            ttft_ratio: median(&ttft_ratios),
            acceptance: if proposed > 0 { accepted as f64 / proposed as f64 } else { 0.0 },
            tokens_per_pass: if passes > 0 { generated as f64 / passes as f64 } else { 0.0 },
            greedy_equal: equal,
        });
    }
    bar.finish_and_clear();
    Ok(trials)
}

fn print_tables(m: &AdaptiveMetrics, trials: &[SpecTrial]) {
    println!("OCR cascade ({} evaluation lines, threshold {:.4}):", m.evaluation_lines, m.threshold);
    println!("| | accuracy | CER | p99 ms |");
    println!("|---|---:|---:|---:|");
    println!("| small recognizer alone | {:.3} | {:.4} | {:.2} |", m.main_accuracy, m.main_cer, m.main_p99_ms);
    println!("| cascade | {:.3} | {:.4} | {:.2} |", m.cascade_accuracy, m.cascade_cer, m.cascade_p99_ms);
    println!(
        "cascade mean latency {:.2}x the small one's; {:.1}% escalated",
        m.cascade_mean_latency_ratio,
        m.escalation_rate * 100.0
    );
    println!(
        "\nSpeculative decoding, the SDK's default ({}): {:.2}x tokens/s, {:.2}x time to first token",
        m.spec_default_config, m.spec_default_tokens_per_s_ratio, m.spec_default_ttft_ratio
    );
    println!("\nEvery trial, SmolLM2 {TARGET} target, greedy, 96 tokens (k 0: the default):");
    println!(
        "| prompt | drafter | k | target tok/s | speculative tok/s | ratio | TTFT ratio | acceptance | tokens/pass | equal |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for t in trials {
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.2}x | {:.2}x | {:.2} | {:.2} | {} |",
            t.prompt,
            t.drafter,
            t.k,
            t.target_tokens_per_s,
            t.spec_tokens_per_s,
            t.ratio,
            t.ttft_ratio,
            t.acceptance,
            t.tokens_per_pass,
            t.greedy_equal
        );
    }
}
