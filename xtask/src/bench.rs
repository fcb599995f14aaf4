//! `cargo xtask bench`: a real model benchmarked on this machine. Builds the benchmark runner (release), runs it
//! with the model's input recipe from benchmarks/models.json, and prints the table (and `--json FILE`).

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{bindgen, cache, cmd, models};

/// Version of the result JSON layout (benchmarks/README.md documents it).
const SCHEMA_VERSION: u32 = 1;

#[derive(clap::Args)]
pub struct Args {
    /// Model id from benchmarks/models.json.
    #[arg(long, default_value = "minilm-l6-int8")]
    model: String,
    /// Timed runs after warmup.
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// Untimed runs before the timed ones (the first inference is reported separately).
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Intra-op threads (default: every core of this machine).
    #[arg(long)]
    threads: Option<u32>,
    /// Graph optimization level, O0..O3.
    #[arg(long, default_value = "O3")]
    optimize: String,
    /// Also write the result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let entry = models::entry(&args.model)?;
    let model = models::fetch(&args.model)?;
    let ort = cache::host_onnxruntime()?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));

    let spinner = cache::spinner("building the benchmark runner (release)".into());
    let built = cmd::capture(
        Command::new(env!("CARGO"))
            .current_dir(cmd::repo_root())
            .args([
                "build",
                "--release",
                "-p",
                "openautoglm",
                "--features",
                "bench-cli",
                "--bin",
                "openautoglm-bench",
            ]),
    );
    spinner.finish_and_clear();
    built?;
    let runner = bindgen::target_dir().join("release/openautoglm-bench");

    let work = std::env::temp_dir().join(format!("openautoglm-bench-{}", std::process::id()));
    fs::create_dir_all(&work)?;
    let recipe = work.join("recipe.json");
    let manifest: Value = serde_json::from_str(&fs::read_to_string(models::manifest_path())?)?;
    let inputs = manifest["models"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["id"] == args.model))
        .map(|m| m["inputs"].clone());
    fs::write(
        &recipe,
        serde_json::to_string(&inputs.context("model has no input recipe")?)?,
    )?;
    let raw = work.join("raw.json");

    let mut child = Command::new(&runner)
        .arg("--model")
        .arg(&model)
        .arg("--recipe")
        .arg(&recipe)
        .arg("--out")
        .arg(&raw)
        .arg("--ort")
        .arg(&ort)
        .args([
            "--runs",
            &args.runs.to_string(),
            "--warmup",
            &args.warmup.to_string(),
        ])
        .args([
            "--threads",
            &threads.to_string(),
            "--optimize",
            &args.optimize,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", runner.display()))?;
    let bar = indicatif::ProgressBar::new((1 + args.warmup + args.runs) as u64)
        .with_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} runs")
                .expect("template")
                .progress_chars("=> "),
        )
        .with_message(format!("{} on host", args.model));
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        if let Some(done) = line?
            .strip_prefix("progress ")
            .and_then(|r| r.split(' ').next()?.parse().ok())
        {
            bar.set_position(done);
        }
    }
    bar.finish_and_clear();
    if !child.wait()?.success() {
        bail!("the benchmark runner failed");
    }
    let measured: Value = serde_json::from_str(&fs::read_to_string(&raw)?)?;
    let _ = fs::remove_dir_all(&work);

    let result = json!({
        "schema": SCHEMA_VERSION,
        "openautoglm_version": env!("CARGO_PKG_VERSION"),
        "git_commit": git_commit(),
        "device": {
            "kind": "host",
            "name": hostname(),
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
            "cpus": std::thread::available_parallelism().map_or(1, |n| n.get()),
            "emulated": false,
        },
        "model": {
            "id": entry.id,
            "title": entry.title,
            "precision": entry.precision,
            "package": format!("{}=={}", entry.package.name, entry.package.version),
            "sha256": entry.sha256,
            "file_size_mb": fs::metadata(&model)?.len() as f64 / (1024.0 * 1024.0),
        },
        "ort_version": measured["ort_version"],
        "accelerator": measured["accelerator"],
        "threads": measured["threads"],
        "optimize_level": measured["optimize_level"],
        "metrics": measured["metrics"],
        "samples_ms": measured["samples_ms"],
    });
    print_table(&result);
    if let Some(path) = args.json {
        fs::write(&path, serde_json::to_string_pretty(&result)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn print_table(r: &Value) {
    let m = &r["metrics"];
    let f = |key: &str| {
        m[key]
            .as_f64()
            .map_or("-".to_owned(), |v| format!("{v:.2}"))
    };
    println!(
        "\n{} ({}, {} MB) on {} {} [{} cpus], ONNX Runtime {}, {} threads, {}",
        r["model"]["id"].as_str().unwrap_or("?"),
        r["model"]["precision"].as_str().unwrap_or("?"),
        format_args!("{:.1}", r["model"]["file_size_mb"].as_f64().unwrap_or(0.0)),
        r["device"]["kind"].as_str().unwrap_or("?"),
        r["device"]["arch"].as_str().unwrap_or("?"),
        r["device"]["cpus"],
        r["ort_version"].as_str().unwrap_or("?"),
        r["threads"],
        r["optimize_level"].as_str().unwrap_or("?"),
    );
    let rows = [
        ("runtime init", f("runtime_init_ms"), "ms"),
        ("session create", f("session_create_ms"), "ms"),
        ("first inference", f("first_inference_ms"), "ms"),
        ("warmup mean", f("warmup_mean_ms"), "ms"),
        ("p50", f("p50_ms"), "ms"),
        ("p90", f("p90_ms"), "ms"),
        ("p99", f("p99_ms"), "ms"),
        (
            "mean ± std",
            format!("{} ± {}", f("mean_ms"), f("std_ms")),
            "ms",
        ),
        (
            "min / max",
            format!("{} / {}", f("min_ms"), f("max_ms")),
            "ms",
        ),
        ("RSS after load", f("rss_after_load_mb"), "MB"),
        ("peak RSS", f("peak_rss_mb"), "MB"),
    ];
    println!("| {:<16} | {:>18} | unit |", "metric", "value");
    println!("|{:-<18}|{:->20}|------|", "", "");
    for (name, value, unit) in rows {
        println!("| {name:<16} | {value:>18} | {unit:<4} |");
    }
    println!(
        "({} timed runs after {} warmup runs)",
        m["runs"], m["warmup_runs"]
    );
}

fn git_commit() -> Option<String> {
    let out = Command::new("git")
        .current_dir(cmd::repo_root())
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}
