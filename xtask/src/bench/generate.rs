//! `cargo xtask bench --generate`: text generation timed like onnxruntime-genai's model_benchmark (time to first
//! token, tokens/s, per-token p50/p95) for a fixed prompt and output length, greedy, per precision; with
//! `--vs genai`, the onnxruntime-genai Python package runs the same ONNX files, prompt tokens and threads,
//! interleaved in rounds, and the greedy token sequences are compared.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use openautoglm::metrics::Summary;

use super::{Args, Peer, device_info, result_path};
use crate::devices::{self, Device};
use crate::models::llm;
use crate::results::{
    self, DeviceGenerationFile, DeviceGenerationRow, GenerationFile, GenerationOutput, GenerationRow, GenerationRun,
    GenerationStats, SCHEMA_VERSION, VersusGenai,
};
use crate::{cache, cmd, python, runner};

/// The fixed prompt (through the model's chat template) every runner gets.
pub const QUESTION: &str = "Write a short story about a lighthouse keeper who finds a message in a bottle.";

pub(super) struct GenerateArgs {
    pub model: String,
    pub precisions: Vec<String>,
    pub tokens: u32,
    pub runs: usize,
    pub rounds: usize,
    pub threads: u32,
    pub vs_genai: bool,
    pub vs_full_prefill: bool,
    /// The question, after `context_sentences` sentences of context.
    pub question: String,
    pub device: Device,
    pub json: Option<PathBuf>,
    /// Write our tokens/s per precision into llm.json under the device's class.
    pub record: bool,
}

impl GenerateArgs {
    /// `bench --generate`'s settings: model `smollm2` and every precision made unless named.
    pub(super) fn from_bench(args: &Args) -> GenerateArgs {
        GenerateArgs {
            model: args.model.clone().unwrap_or_else(|| "smollm2".into()),
            precisions: if args.precision == "native" {
                Vec::new()
            } else {
                args.precision.split(',').map(str::to_owned).collect()
            },
            tokens: args.tokens,
            runs: args.runs.unwrap_or(3),
            rounds: args.rounds.max(1),
            threads: args.threads.unwrap_or(if args.device.emulated() {
                2
            } else {
                std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
            }),
            vs_genai: args.vs.contains(&Peer::Genai),
            vs_full_prefill: args.vs.contains(&Peer::FullPrefill),
            question: question(args.context_sentences),
            device: args.device.clone(),
            json: args.json.clone(),
            record: args.record,
        }
    }
}

/// The fixed question after `sentences` sentences of context (for long prompts).
fn question(sentences: usize) -> String {
    const CONTEXT: &str = "The keeper climbed the spiral stairs at dusk to light the lamp above the rocky shore. ";
    format!("{}{QUESTION}", CONTEXT.repeat(sentences))
}

enum Runner {
    Rust(PathBuf),
    /// Our runner prefilling the whole prompt in one run, with every position's logits.
    RustFullPrefill(PathBuf),
    Genai(PathBuf),
}

impl Runner {
    fn name(&self) -> &'static str {
        match self {
            Runner::Rust(_) => "rust",
            Runner::RustFullPrefill(_) => "full-prefill",
            Runner::Genai(_) => "genai",
        }
    }

    fn run(&self, dir: &Path, precision: &str, args: &GenerateArgs, out: &Path) -> Result<GenerationOutput> {
        let _ = fs::remove_file(out);
        let common = |c: &mut Command| {
            c.args(["--question", &args.question])
                .args(["--tokens", &args.tokens.to_string(), "--runs", &args.runs.to_string()])
                .args(["--threads", &args.threads.to_string()])
                .arg("--out")
                .arg(out);
        };
        match self {
            Runner::Rust(binary) | Runner::RustFullPrefill(binary) => {
                let mut command = Command::new(binary);
                command.arg("--generate").arg("--llm").arg(dir).args(["--precision", precision]);
                if matches!(self, Runner::RustFullPrefill(_)) {
                    command.arg("--full-prefill");
                }
                command.arg("--ort").arg(cache::host_onnxruntime()?);
                common(&mut command);
                let mut child = command.stdout(Stdio::piped()).spawn().context("cannot run the Rust runner")?;
                for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
                    line?;
                }
                if !child.wait()?.success() {
                    bail!("the Rust generation runner failed");
                }
            }
            Runner::Genai(python) => {
                let mut command = python::script(python, &cmd::repo_root().join("benchmarks/peers/genai_generate.py"));
                command.arg("--dir").arg(dir).args(["--model", &format!("{precision}.onnx")]);
                common(&mut command);
                cmd::capture(&mut command)?;
            }
        }
        results::read(out)
    }
}

pub(super) fn run(args: GenerateArgs) -> Result<()> {
    let dir = llm::prepare(&args.model)?;
    let made: Vec<String> = llm::entry(&args.model)?.map(|e| e.precisions).unwrap_or_default();
    let precisions = if args.precisions.is_empty() { made.clone() } else { args.precisions.clone() };
    if let Some(p) = precisions.iter().find(|p| !made.contains(p)) {
        bail!("{}: no {p} decoder (made: {made:?})", args.model);
    }
    if args.device != Device::Host {
        if args.vs_genai {
            bail!("--vs genai runs on the host; drop it with --device {}", args.device.kind());
        }
        return on_device(&args, &dir, &precisions);
    }
    let binary = runner::build(None, &[])?;
    let mut runners = vec![Runner::Rust(binary.clone())];
    if args.vs_full_prefill {
        runners.push(Runner::RustFullPrefill(binary));
    }
    if args.vs_genai {
        runners.push(Runner::Genai(python::python()?));
    }

    let work = std::env::temp_dir().join(format!("openautoglm-generate-{}", std::process::id()));
    fs::create_dir_all(&work)?;
    let steps = (args.rounds * precisions.len() * runners.len()) as u64;
    let bar = indicatif::ProgressBar::new(steps).with_style(
        indicatif::ProgressStyle::with_template("{msg:36} [{bar:40}] {pos}/{len} {eta}").expect("template"),
    );
    // measured[precision][runner]: every run of every round.
    let mut measured: Vec<Vec<Vec<GenerationRun>>> = vec![vec![Vec::new(); runners.len()]; precisions.len()];
    // Resident memory after loading, per precision and runner (one per process).
    let mut loaded: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); runners.len()]; precisions.len()];
    for round in 0..args.rounds {
        for (p, precision) in precisions.iter().enumerate() {
            for (r, runner) in runners.iter().enumerate() {
                bar.set_message(format!("{} {precision} {} {}/{}", args.model, runner.name(), round + 1, args.rounds));
                let out = work.join(format!("{precision}-{}.json", runner.name()));
                let output = runner.run(&dir, precision, &args, &out)?;
                loaded[p][r].extend(output.rss_after_load_mb);
                measured[p][r].extend(output.runs);
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    let _ = fs::remove_dir_all(&work);

    let rows: Vec<GenerationRow> = precisions
        .iter()
        .zip(measured.iter().zip(&loaded))
        .map(|(precision, (by_runner, loaded))| summarize(precision, &runners, by_runner, loaded))
        .collect();
    print(&args, &rows);
    if args.record {
        let class = args.device.device_class().context("--record: this device has no class to record under")?;
        for row in &rows {
            let ours = row.runners.iter().find(|r| r.runner == "rust").and_then(|r| r.tokens_per_second);
            if let Some(tps) = ours
                && llm::record_tokens_per_s(&args.model, &row.precision, &class, tps)?
            {
                println!("recorded {} {}: {tps:.1} tokens/s on {class}", args.model, row.precision);
            }
        }
    }
    let result = GenerationFile {
        schema: SCHEMA_VERSION,
        suite: "generate".into(),
        model: args.model.clone(),
        question: args.question.clone(),
        output_tokens: args.tokens,
        threads: args.threads,
        rounds: args.rounds,
        runs_per_round: args.runs,
        results: rows,
    };
    let path = args.json.clone().unwrap_or_else(|| result_path(&format!("generate-{}-host", args.model)));
    results::write(&path, &result)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Medians over every run of every round, per runner, and ours over genai's.
fn summarize(
    precision: &str,
    runners: &[Runner],
    by_runner: &[Vec<GenerationRun>],
    loaded: &[Vec<f64>],
) -> GenerationRow {
    let median = |runs: &[GenerationRun], metric: fn(&GenerationRun) -> Option<f64>| {
        Summary::of(&runs.iter().filter_map(metric).collect::<Vec<_>>()).map(|s| s.p50)
    };
    let runners: Vec<GenerationStats> = runners
        .iter()
        .zip(by_runner.iter().zip(loaded))
        .map(|(runner, (runs, loaded))| GenerationStats {
            runner: runner.name().into(),
            runs: runs.len(),
            prompt_tokens: runs.first().map(|r| r.prompt_tokens),
            generated_tokens: runs.first().map(|r| r.generated_tokens),
            time_to_first_token_ms: median(runs, |r| Some(r.time_to_first_token_ms)),
            tokens_per_second: median(runs, |r| Some(r.tokens_per_second)),
            token_p50_ms: median(runs, |r| Some(r.token_p50_ms)),
            token_p95_ms: median(runs, |r| Some(r.token_p95_ms)),
            peak_rss_mb: median(runs, |r| r.peak_rss_mb),
            request_rss_rise_mb: median(runs, |r| r.request_rss_rise_mb),
            rss_after_load_mb: Summary::of(loaded).map(|s| s.p50),
        })
        .collect();
    let genai = runners.iter().position(|r| r.runner == "genai");
    let vs_genai = genai.map(|g| {
        let (ours, genai) = (&runners[0], &runners[g]);
        let ratio = |metric: fn(&GenerationStats) -> Option<f64>| Some(metric(ours)? / metric(genai)?);
        VersusGenai {
            time_to_first_token_ratio: ratio(|s| s.time_to_first_token_ms),
            tokens_per_second_ratio: ratio(|s| s.tokens_per_second),
            token_p50_ratio: ratio(|s| s.token_p50_ms),
            same_greedy_tokens: by_runner[0].first().map(|r| &r.tokens) == by_runner[g].first().map(|r| &r.tokens),
            same_prompt_tokens: ours.prompt_tokens == genai.prompt_tokens,
        }
    });
    GenerationRow { precision: precision.into(), runners, vs_genai }
}

fn print(args: &GenerateArgs, rows: &[GenerationRow]) {
    println!(
        "\n{} on this host, {} threads: chat prompt -> {} tokens (greedy, fixed length), medians of {} runs x {} rounds",
        args.model, args.threads, args.tokens, args.runs, args.rounds
    );
    println!(
        "| {:<9} | {:<12} | {:>7} | {:>9} | {:>9} | {:>10} | {:>10} | {:>9} | {:>8} | {:>9} |",
        "precision",
        "runner",
        "prompt",
        "TTFT ms",
        "tokens/s",
        "p50 ms/tok",
        "p95 ms/tok",
        "loaded MB",
        "peak MB",
        "rise MB"
    );
    println!(
        "|-----------|--------------|---------|-----------|-----------|------------|------------|-----------|----------|-----------|"
    );
    let f = crate::results::report::cell;
    for row in rows {
        for r in &row.runners {
            println!(
                "| {:<9} | {:<12} | {:>7} | {:>9} | {:>9} | {:>10} | {:>10} | {:>9} | {:>8} | {:>9} |",
                row.precision,
                r.runner,
                r.prompt_tokens.map_or("-".to_owned(), |n| n.to_string()),
                f(r.time_to_first_token_ms, 1),
                f(r.tokens_per_second, 1),
                f(r.token_p50_ms, 2),
                f(r.token_p95_ms, 2),
                f(r.rss_after_load_mb, 0),
                f(r.peak_rss_mb, 0),
                f(r.request_rss_rise_mb, 0),
            );
        }
    }
    if rows.iter().any(|r| r.vs_genai.is_some()) {
        println!("\n| precision | TTFT ours/genai | tokens/s ours/genai | same greedy tokens |");
        println!("|-----------|-----------------|---------------------|--------------------|");
        for row in rows {
            let v = row.vs_genai.clone().unwrap_or_default();
            println!(
                "| {:<9} | {:>15} | {:>19} | {:>18} |",
                row.precision,
                f(v.time_to_first_token_ratio, 2) + "x",
                f(v.tokens_per_second_ratio, 2) + "x",
                if v.same_greedy_tokens { "yes" } else { "no" },
            );
        }
    }
}

/// A short generation on `device` whose greedy tokens must equal the host's (used by `cargo xtask test`).
pub(super) fn device_smoke(device: Device, model: &str) -> Result<()> {
    run(GenerateArgs {
        model: model.into(),
        precisions: Vec::new(),
        tokens: 6,
        runs: 1,
        rounds: 1,
        threads: 2,
        vs_genai: false,
        vs_full_prefill: false,
        question: QUESTION.into(),
        device,
        json: Some(std::env::temp_dir().join(format!("openautoglm-generate-smoke-{}.json", std::process::id()))),
        record: false,
    })
}

/// `--device` other than host: the same runner and protocol, deployed with the decoder; the greedy tokens are
/// compared with the host's (same ONNX Runtime version, other CPU kernels).
fn on_device(args: &GenerateArgs, dir: &Path, precisions: &[String]) -> Result<()> {
    let flags = |precision: &str, runs: usize| -> Vec<String> {
        [
            ("--precision", precision.to_owned()),
            ("--question", args.question.clone()),
            ("--tokens", args.tokens.to_string()),
            ("--runs", runs.to_string()),
            ("--threads", args.threads.to_string()),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_owned(), value])
        .collect()
    };
    let mut rows = Vec::new();
    for precision in precisions {
        let deployed = devices::deploy_llm(&args.device, dir, precision)?;
        let spinner = cache::spinner(format!(
            "{} {precision} on {}{}: {} runs of {} tokens",
            args.model,
            args.device.kind(),
            if args.device.emulated() { " (emulated: slow)" } else { "" },
            args.runs,
            args.tokens
        ));
        let ran = deployed.run_generate(&flags(precision, args.runs));
        spinner.finish_and_clear();
        let result = ran?;
        let host = devices::deploy_llm(&Device::Host, dir, precision)?.run_generate(&flags(precision, 1))?;
        let first_tokens = |r: &GenerationOutput| r.runs.first().map(|run| run.tokens.clone());
        let same = first_tokens(&result).is_some() && first_tokens(&result) == first_tokens(&host);
        let runs = result.runs;
        let median = |metric: fn(&GenerationRun) -> f64| {
            Summary::of(&runs.iter().map(metric).collect::<Vec<_>>()).map(|s| s.p50)
        };
        println!(
            "{} {precision} on {}: TTFT {:.0} ms, {:.2} tokens/s, p50 {:.0} ms/token; greedy tokens {} the host's",
            args.model,
            args.device.kind(),
            median(|r| r.time_to_first_token_ms).unwrap_or(f64::NAN),
            median(|r| r.tokens_per_second).unwrap_or(f64::NAN),
            median(|r| r.token_p50_ms).unwrap_or(f64::NAN),
            if same { "equal" } else { "DIFFER from" },
        );
        rows.push(DeviceGenerationRow {
            precision: precision.clone(),
            device: device_info(&args.device),
            runs,
            same_greedy_tokens_as_host: same,
        });
    }
    let path =
        args.json.clone().unwrap_or_else(|| result_path(&format!("generate-{}-{}", args.model, args.device.kind())));
    let file = DeviceGenerationFile {
        schema: SCHEMA_VERSION,
        suite: "generate".into(),
        model: args.model.clone(),
        results: rows,
    };
    results::write(&path, &file)?;
    println!("wrote {}", path.display());
    if file.results.iter().any(|r| !r.same_greedy_tokens_as_host) {
        bail!("the device's greedy tokens differ from the host's");
    }
    Ok(())
}
