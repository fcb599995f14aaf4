//! `cargo xtask bench --generate`: text generation timed like onnxruntime-genai's model_benchmark (time to first
//! token, tokens/s, per-token p50/p95) for a fixed prompt and output length, greedy, per precision; with
//! `--vs genai`, the onnxruntime-genai Python package runs the same ONNX files, prompt tokens and threads,
//! interleaved in rounds, and the greedy token sequences are compared.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use openautoglm::bench::Summary;
use serde_json::{Value, json};

use crate::device::{self, Device};
use crate::{cache, cmd, llm};

/// The fixed prompt (through the model's chat template) every runner gets.
pub const QUESTION: &str = "Write a short story about a lighthouse keeper who finds a message in a bottle.";

pub struct GenerateArgs {
    pub model: String,
    pub precisions: Vec<String>,
    pub tokens: u32,
    pub runs: usize,
    pub rounds: usize,
    pub threads: u32,
    pub vs_genai: bool,
    pub device: Device,
    pub json: Option<PathBuf>,
}

enum Runner {
    Rust(PathBuf),
    Genai(PathBuf),
}

impl Runner {
    fn name(&self) -> &'static str {
        match self {
            Runner::Rust(_) => "rust",
            Runner::Genai(_) => "genai",
        }
    }

    fn run(&self, dir: &Path, precision: &str, args: &GenerateArgs, out: &Path) -> Result<Value> {
        let _ = fs::remove_file(out);
        let common = |c: &mut Command| {
            c.args(["--question", QUESTION])
                .args(["--tokens", &args.tokens.to_string(), "--runs", &args.runs.to_string()])
                .args(["--threads", &args.threads.to_string()])
                .arg("--out")
                .arg(out);
        };
        match self {
            Runner::Rust(binary) => {
                let mut command = Command::new(binary);
                command.arg("--generate").arg("--llm").arg(dir).args(["--precision", precision]);
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
                let mut command = Command::new(python);
                command.arg(cmd::repo_root().join("benchmarks/peers/genai_generate.py"));
                command.arg("--dir").arg(dir).args(["--model", &format!("{precision}.onnx")]);
                common(&mut command);
                cmd::capture(&mut command)?;
            }
        }
        Ok(serde_json::from_str(&fs::read_to_string(out)?)?)
    }
}

pub fn run(args: GenerateArgs) -> Result<()> {
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
    let mut runners = vec![Runner::Rust(crate::bench::build_rust_runner()?)];
    if args.vs_genai {
        runners.push(Runner::Genai(crate::python::python()?));
    }

    let work = std::env::temp_dir().join(format!("openautoglm-generate-{}", std::process::id()));
    fs::create_dir_all(&work)?;
    let steps = (args.rounds * precisions.len() * runners.len()) as u64;
    let bar = indicatif::ProgressBar::new(steps).with_style(
        indicatif::ProgressStyle::with_template("{msg:36} [{bar:40}] {pos}/{len} {eta}").expect("template"),
    );
    // measured[precision][runner]: every run of every round.
    let mut measured: Vec<Vec<Vec<Value>>> = vec![vec![Vec::new(); runners.len()]; precisions.len()];
    for round in 0..args.rounds {
        for (p, precision) in precisions.iter().enumerate() {
            for (r, runner) in runners.iter().enumerate() {
                bar.set_message(format!("{} {precision} {} {}/{}", args.model, runner.name(), round + 1, args.rounds));
                let out = work.join(format!("{precision}-{}.json", runner.name()));
                let result = runner.run(&dir, precision, &args, &out)?;
                measured[p][r].extend(result["runs"].as_array().cloned().unwrap_or_default());
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    let _ = fs::remove_dir_all(&work);

    let rows: Vec<Value> = precisions
        .iter()
        .zip(&measured)
        .map(|(precision, by_runner)| summarize(precision, &runners, by_runner))
        .collect();
    print(&args, &rows);
    let result = json!({
        "suite": "generate",
        "model": args.model,
        "question": QUESTION,
        "output_tokens": args.tokens,
        "threads": args.threads,
        "rounds": args.rounds,
        "runs_per_round": args.runs,
        "results": rows,
    });
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let path = args.json.clone().unwrap_or_else(|| {
        cmd::repo_root().join(format!("benchmarks/results/generate-{}-host-{stamp}.json", args.model))
    });
    fs::create_dir_all(path.parent().expect("parent"))?;
    fs::write(&path, serde_json::to_string_pretty(&result)?)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Medians over every run of every round, per runner, and ours over genai's.
fn summarize(precision: &str, runners: &[Runner], by_runner: &[Vec<Value>]) -> Value {
    let median = |runs: &[Value], key: &str| {
        let values: Vec<f64> = runs.iter().filter_map(|r| r[key].as_f64()).collect();
        Summary::of(&values).map(|s| s.p50)
    };
    let stats: Vec<Value> = runners
        .iter()
        .zip(by_runner)
        .map(|(runner, runs)| {
            json!({
                "runner": runner.name(),
                "runs": runs.len(),
                "prompt_tokens": runs.first().map(|r| r["prompt_tokens"].clone()),
                "generated_tokens": runs.first().map(|r| r["generated_tokens"].clone()),
                "time_to_first_token_ms": median(runs, "time_to_first_token_ms"),
                "tokens_per_second": median(runs, "tokens_per_second"),
                "token_p50_ms": median(runs, "token_p50_ms"),
                "token_p95_ms": median(runs, "token_p95_ms"),
                "peak_rss_mb": median(runs, "peak_rss_mb"),
            })
        })
        .collect();
    let mut row = json!({ "precision": precision, "runners": stats });
    if by_runner.len() > 1 {
        let ratio = |key: &str| Some(stats[0][key].as_f64()? / stats[1][key].as_f64()?);
        let same_tokens = by_runner[0].first().map(|r| &r["tokens"]) == by_runner[1].first().map(|r| &r["tokens"]);
        row["vs_genai"] = json!({
            "time_to_first_token_ratio": ratio("time_to_first_token_ms"),
            "tokens_per_second_ratio": ratio("tokens_per_second"),
            "token_p50_ratio": ratio("token_p50_ms"),
            "same_greedy_tokens": same_tokens,
            "same_prompt_tokens": stats[0]["prompt_tokens"] == stats[1]["prompt_tokens"],
        });
    }
    row
}

fn print(args: &GenerateArgs, rows: &[Value]) {
    println!(
        "\n{} on this host, {} threads: chat prompt -> {} tokens (greedy, fixed length), medians of {} runs x {} rounds",
        args.model, args.threads, args.tokens, args.runs, args.rounds
    );
    println!(
        "| {:<9} | {:<6} | {:>7} | {:>9} | {:>9} | {:>10} | {:>10} | {:>8} |",
        "precision", "runner", "prompt", "TTFT ms", "tokens/s", "p50 ms/tok", "p95 ms/tok", "peak MB"
    );
    println!("|-----------|--------|---------|-----------|-----------|------------|------------|----------|");
    let f = |v: &Value, d: usize| v.as_f64().map_or("-".to_owned(), |x| format!("{x:.d$}"));
    for row in rows {
        for r in row["runners"].as_array().into_iter().flatten() {
            println!(
                "| {:<9} | {:<6} | {:>7} | {:>9} | {:>9} | {:>10} | {:>10} | {:>8} |",
                row["precision"].as_str().unwrap_or("?"),
                r["runner"].as_str().unwrap_or("?"),
                r["prompt_tokens"],
                f(&r["time_to_first_token_ms"], 1),
                f(&r["tokens_per_second"], 1),
                f(&r["token_p50_ms"], 2),
                f(&r["token_p95_ms"], 2),
                f(&r["peak_rss_mb"], 0),
            );
        }
    }
    if rows.iter().any(|r| r["vs_genai"].is_object()) {
        println!("\n| precision | TTFT ours/genai | tokens/s ours/genai | same greedy tokens |");
        println!("|-----------|-----------------|---------------------|--------------------|");
        for row in rows {
            let v = &row["vs_genai"];
            println!(
                "| {:<9} | {:>15} | {:>19} | {:>18} |",
                row["precision"].as_str().unwrap_or("?"),
                f(&v["time_to_first_token_ratio"], 2) + "x",
                f(&v["tokens_per_second_ratio"], 2) + "x",
                if v["same_greedy_tokens"] == true { "yes" } else { "no" },
            );
        }
    }
}

/// A short generation on `device` whose greedy tokens must equal the host's (used by `cargo xtask test`).
pub fn device_smoke(device: Device, model: &str) -> Result<()> {
    run(GenerateArgs {
        model: model.into(),
        precisions: Vec::new(),
        tokens: 6,
        runs: 1,
        rounds: 1,
        threads: 2,
        vs_genai: false,
        device,
        json: Some(std::env::temp_dir().join(format!("openautoglm-generate-smoke-{}.json", std::process::id()))),
    })
}

/// `--device` other than host: the same runner and protocol, deployed with the decoder; the greedy tokens are
/// compared with the host's (same ONNX Runtime version, other CPU kernels).
fn on_device(args: &GenerateArgs, dir: &Path, precisions: &[String]) -> Result<()> {
    let flags = |precision: &str, runs: usize| -> Vec<String> {
        [
            ("--precision", precision.to_owned()),
            ("--question", QUESTION.to_owned()),
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
        let deployed = device::deploy_llm(&args.device, dir, precision)?;
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
        let host = device::deploy_llm(&Device::Host, dir, precision)?.run_generate(&flags(precision, 1))?;
        let tokens = |r: &Value| r["runs"][0]["tokens"].clone();
        let same = tokens(&result) == tokens(&host);
        let runs = result["runs"].as_array().cloned().unwrap_or_default();
        let median =
            |key: &str| Summary::of(&runs.iter().filter_map(|r| r[key].as_f64()).collect::<Vec<_>>()).map(|s| s.p50);
        println!(
            "{} {precision} on {}: TTFT {:.0} ms, {:.2} tokens/s, p50 {:.0} ms/token; greedy tokens {} the host's",
            args.model,
            args.device.kind(),
            median("time_to_first_token_ms").unwrap_or(f64::NAN),
            median("tokens_per_second").unwrap_or(f64::NAN),
            median("token_p50_ms").unwrap_or(f64::NAN),
            if same { "equal" } else { "DIFFER from" },
        );
        rows.push(json!({
            "precision": precision,
            "device": { "kind": args.device.kind(), "arch": args.device.arch(), "emulated": args.device.emulated() },
            "runs": runs,
            "same_greedy_tokens_as_host": same,
        }));
    }
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let path = args.json.clone().unwrap_or_else(|| {
        cmd::repo_root().join(format!("benchmarks/results/generate-{}-{}-{stamp}.json", args.model, args.device.kind()))
    });
    fs::create_dir_all(path.parent().expect("parent"))?;
    fs::write(
        &path,
        serde_json::to_string_pretty(&json!({ "suite": "generate", "model": args.model, "results": rows }))?,
    )?;
    println!("wrote {}", path.display());
    if rows.iter().any(|r| r["same_greedy_tokens_as_host"] != true) {
        bail!("the device's greedy tokens differ from the host's");
    }
    Ok(())
}
