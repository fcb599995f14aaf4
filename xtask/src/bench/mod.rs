//! `cargo xtask bench`: real models benchmarked on this machine or a device. Builds the benchmark runner (release),
//! runs it with the model's input recipe from benchmarks/models.json, prints a table, and with `--json FILE` writes
//! the result (layout: benchmarks/README.md, types: `results`). `--vs python-ort,ort-java,kotlin,swift` runs peers
//! and our own layers on the same model, threads and inputs, interleaved in rounds, as ratios over the Rust core;
//! `--suite standard` runs every model in every precision variant and writes a report; `--suite engine` measures
//! the engine's own choices; `--suite scheduling` many requests at once; `--generate` times text generation;
//! `--device` deploys to qemu, phones, simulators.
//!
//! - `runners`: the Rust runner and the peers, one job each;
//! - `host`: every configuration x runner on this machine, in rounds; `device`: one configuration on a device;
//! - `engine_suite`: the engine's choices as baseline/treatment pairs; `generate`: text generation;
//! - `scheduling`: `--suite scheduling`, many requests on one process;
//! - `accelerators`: `--suite accelerators`, a plugin execution provider against the CPU and python-ort;
//! - `tables`: what is printed.

mod accelerators;
mod adaptive;
mod chat;
mod delivery;
mod device;
mod engine_suite;
mod generate;
mod host;
mod runners;
mod scheduling;
mod sustained;
mod tables;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

use crate::devices::Device;
use crate::results::{self, BenchResult, DeviceInfo, Measured, ModelInfo, SCHEMA_VERSION, SuiteFile};
use crate::{cmd, models};
use engine_suite::Setup;

#[derive(clap::Args)]
pub struct Args {
    /// Model id from benchmarks/models.json (`cargo xtask models list`).
    /// (default: minilm-l6-int8; with --generate: smollm2)
    #[arg(long)]
    model: Option<String>,
    /// Run a suite instead of one model: `standard` is every real model of the manifest in every precision
    /// variant (made with `models prepare` when missing), with a result file and a report; `engine` measures the
    /// engine's own choices in pairs (compile cache, shape buckets, float16 I/O conversion); `scheduling` measures
    /// many requests on one process (priorities, concurrency, cancellation, deadlines, LLM streams).
    #[arg(long)]
    suite: Option<Suite>,
    /// With --suite: only these models.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Timed runs after warmup, per runner and round (default 200; 30 in a suite).
    #[arg(long)]
    runs: Option<usize>,
    /// Untimed runs before the timed ones; the first inference is reported apart (default 10; 5 in a suite).
    #[arg(long)]
    warmup: Option<usize>,
    /// Duration mode: each runner keeps timing runs until this many seconds have passed (at least --runs).
    #[arg(long, default_value_t = 0.0)]
    seconds: f64,
    /// With --suite scheduling: measure the idle / loaded / FIFO rounds this many times in one process, each
    /// repeat its own loaded/idle ratio (`interactive_p99_ratio_max` is the worst).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Calls this many milliseconds apart (start to start), as an app calling a small model at a fixed rate does,
    /// instead of back to back; each runner reports latency and process CPU time per call at that cadence.
    #[arg(long, default_value_t = 0.0)]
    interval_ms: f64,
    /// Run one model (--model, default yolov8n-320) back to back for this many minutes on --device and report each
    /// minute's p50/p99 latency, inferences per second, thermal state and energy (where the device exposes them),
    /// and the last minute's slowdown against the first, with a plot of latency over time.
    #[arg(long, value_name = "MINUTES")]
    sustained: Option<u32>,
    /// Seconds to rest between runner invocations, so heat from one does not slow the next.
    #[arg(long, default_value_t = 0.0)]
    cooldown: f64,
    /// Intra-op threads (default: every core of this machine).
    #[arg(long)]
    threads: Option<u32>,
    /// Precision variant: native (the manifest's file), or fp32, fp16, int8-dynamic, int8-qdq, fp32-ort as made by
    /// `cargo xtask models prepare`.
    #[arg(long, default_value = "native")]
    precision: String,
    /// Graph optimization level, O0..O3.
    #[arg(long, default_value = "O3")]
    optimize: String,
    /// Where to run: host, qemu-arm64 (emulated ARM64 Linux; outputs checked against the host's),
    /// android[:SERIAL] (adb), ios-sim[:UDID] (simctl).
    #[arg(long, default_value = "host")]
    device: Device,
    /// Also run these on the same model, threads and inputs and compare (host only): python-ort (the onnxruntime
    /// Python package) and ort-java (ONNX Runtime's Java API), the alternatives a user would pick, over the same
    /// ONNX Runtime library; kotlin and swift, our own layers over the same core.
    #[arg(long, value_delimiter = ',')]
    vs: Vec<Peer>,
    /// Interleaved rounds (A B A B ...) when comparing runners or running a suite, so machine drift hits every
    /// configuration alike.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Also write the result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the measured latency (tokens/s with --generate) into the model's bundle.json (llm.json) under this
    /// device class, where `Precision::Auto` reads it: the fastest variant that passed its check wins there.
    #[arg(long)]
    record: bool,
    /// Time text generation instead (model: an LLM such as `smollm2`; precisions: a comma list, default all made;
    /// `--vs genai` runs onnxruntime-genai on the same files).
    #[arg(long)]
    generate: bool,
    /// With --generate: output tokens per request (fixed: end-of-sequence is held off until then).
    #[arg(long, default_value_t = 128)]
    tokens: u32,
    /// With --generate: put this many sentences of context before the question (a long prompt: about 12 tokens
    /// each, so 165 make ~2,000 tokens).
    #[arg(long, default_value_t = 0)]
    context_sentences: usize,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    Standard,
    Engine,
    /// Many requests on one process: priorities, concurrency, cancellation, deadlines, LLM streams.
    Scheduling,
    /// Adaptive pipelines: the OCR cascade against its main model, speculative decoding against its target.
    Adaptive,
    /// The standard models on the CPU provider and on OpenVINO's plugin execution provider, with python-ort on the
    /// same plugin as the peer, on an Intel CPU (emulated where the host's is not).
    Accelerators,
    /// Conversations on SmolLM2: later turns' wait with the KV cache kept between turns and replayed, a shared system
    /// prompt, and the 4-bit decoder's decode speed against FP32's.
    Chat,
    /// The model store: download throughput against curl, processes killed mid-download, resume, and a bundle
    /// fetched for this device, from a loopback server.
    Delivery,
}

impl Suite {
    fn name(self) -> &'static str {
        match self {
            Suite::Standard => "standard",
            Suite::Engine => "engine",
            Suite::Scheduling => "scheduling",
            Suite::Adaptive => "adaptive",
            Suite::Accelerators => "accelerators",
            Suite::Chat => "chat",
            Suite::Delivery => "delivery",
        }
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    PythonOrt,
    OrtJava,
    Kotlin,
    Swift,
    /// onnxruntime-genai (with --generate).
    Genai,
    /// With --generate: our runner prefilling as it did before chunks and last-position logits: the whole prompt in
    /// one run, every position's logits (the baseline for prefill memory and time to first token).
    FullPrefill,
}

impl Default for Args {
    /// The defaults of the command line (a test checks they agree).
    fn default() -> Args {
        Args {
            model: None,
            suite: None,
            models: Vec::new(),
            runs: None,
            warmup: None,
            seconds: 0.0,
            repeat: 1,
            interval_ms: 0.0,
            sustained: None,
            cooldown: 0.0,
            threads: None,
            precision: "native".into(),
            optimize: "O3".into(),
            device: Device::Host,
            vs: Vec::new(),
            rounds: 3,
            json: None,
            record: false,
            generate: false,
            tokens: 128,
            context_sentences: 0,
        }
    }
}

/// A short run of `model` on `device` whose outputs must match the host's (`cargo xtask test`).
pub fn device_smoke(device: Device, model: &str) -> Result<()> {
    run(Args { device, model: Some(model.to_owned()), runs: Some(2), warmup: Some(0), ..Args::default() })
}

/// A short generation with `model` on `device` whose greedy tokens must equal the host's (`cargo xtask test`).
pub fn generation_device_smoke(device: Device, model: &str) -> Result<()> {
    generate::device_smoke(device, model)
}

/// One model at one precision (in the engine suite, in one setup of one experiment).
#[derive(Clone)]
struct Config {
    model: String,
    precision: String,
    setup: Option<(&'static str, Setup)>,
}

impl Config {
    fn label(&self) -> String {
        match &self.setup {
            Some((_, setup)) => format!("{} {} [{}]", self.model, self.precision, setup.label),
            None => format!("{} {}", self.model, self.precision),
        }
    }
}

fn configs(args: &Args) -> Result<Vec<Config>> {
    if args.suite == Some(Suite::Engine) {
        return engine_suite::configs(&args.models);
    }
    let Some(Suite::Standard) = args.suite else {
        let model = args.model.clone().unwrap_or_else(|| "minilm-l6-int8".into());
        return Ok(vec![Config { model, precision: args.precision.clone(), setup: None }]);
    };
    let mut configs = Vec::new();
    for entry in models::manifest()?.models.into_iter().filter(|m| m.package.is_some()) {
        if !args.models.is_empty() && !args.models.contains(&entry.id) {
            continue;
        }
        configs.push(Config { model: entry.id.clone(), precision: "native".into(), setup: None });
        if entry.precision == "fp32" {
            for precision in models::prepared_variants(&entry.id)? {
                if precision != "fp32" {
                    configs.push(Config { model: entry.id.clone(), precision, setup: None });
                }
            }
        }
    }
    if configs.is_empty() {
        bail!("no model matched --models {:?}", args.models);
    }
    Ok(configs)
}

pub fn run(args: Args) -> Result<()> {
    if let Some(minutes) = args.sustained {
        return sustained::run(&args, minutes);
    }
    if args.suite == Some(Suite::Adaptive) {
        return adaptive::run(&args);
    }
    if args.suite == Some(Suite::Accelerators) {
        return accelerators::run(&args);
    }
    if args.suite == Some(Suite::Scheduling) {
        return scheduling::run(&args);
    }
    if args.suite == Some(Suite::Chat) {
        return chat::run(&args);
    }
    if args.suite == Some(Suite::Delivery) {
        return delivery::run(&args);
    }
    if args.generate {
        return generate::run(generate::GenerateArgs::from_bench(&args));
    }
    if args.vs.iter().any(|p| matches!(p, Peer::Genai | Peer::FullPrefill)) {
        bail!("--vs genai and --vs full-prefill compare text generation: add --generate");
    }
    let configs = configs(&args)?;
    let suite = args.suite.is_some();
    let results = if args.device == Device::Host {
        host::measure(&args, &configs)?
    } else {
        let mut results = Vec::new();
        for config in &configs {
            match device::measure(&args, config, !suite) {
                Ok(result) => results.push(result),
                // In a suite one configuration the device cannot run is a finding, not the end of the run.
                Err(e) if suite => {
                    // The runner's own message, not the command line around it.
                    let reason = crate::runner::message(&e.to_string());
                    println!("{}: FAILED on {}: {reason}", config.label(), args.device.kind());
                    results.push(BenchResult {
                        schema: SCHEMA_VERSION,
                        device: device_info(&args.device),
                        model: ModelInfo {
                            id: config.model.clone(),
                            precision: config.precision.clone(),
                            ..ModelInfo::default()
                        },
                        error: Some(reason),
                        ..BenchResult::default()
                    });
                }
                Err(e) => return Err(e),
            }
        }
        tables::print_suite(&results);
        results
    };
    if !suite {
        if let Some(path) = &args.json {
            results::write(path, &results[0])?;
            println!("wrote {}", path.display());
        }
        return device::check_outputs(&results);
    }
    if args.record {
        record_measurements(&args, &suite_file_results(&results))?;
    }
    let suite_name = args.suite.map_or("standard", Suite::name);
    let summary = (args.suite == Some(Suite::Engine)).then(|| engine_suite::summarize(&results));
    let suite_file = SuiteFile {
        schema: SCHEMA_VERSION,
        suite: suite_name.to_owned(),
        device: results[0].device.clone(),
        git_commit: git_commit(),
        experiments: summary.clone(),
        accelerators: None,
        results,
    };
    let path = args.json.clone().unwrap_or_else(|| result_path(&format!("{suite_name}-{}", args.device.kind())));
    results::write(&path, &suite_file)?;
    println!("wrote {}", path.display());
    if let Some(summary) = summary {
        let table = engine_suite::table(&summary);
        println!("\n{table}");
        let markdown = path.with_extension("md");
        fs::write(
            &markdown,
            format!(
                "# Engine experiments\n\nTreatment over baseline on the metric, median of \
            interleaved rounds (range per round); each run a fresh process.\n\n{table}"
            ),
        )?;
        println!("wrote {}", markdown.display());
        return Ok(());
    }
    results::report::write(std::slice::from_ref(&path), &path.with_extension(""))?;
    device::check_outputs(&suite_file.results)
}

fn suite_file_results(results: &[BenchResult]) -> Vec<(String, String, f64)> {
    results
        .iter()
        .filter(|r| r.error.is_none())
        .filter_map(|r| Some((r.model.id.clone(), r.model.precision.clone(), r.measured.metrics.mean_ms?)))
        .collect()
}

/// Writes each (model, precision, mean ms) into the model's bundle under this device's class.
fn record_measurements(args: &Args, measured: &[(String, String, f64)]) -> Result<()> {
    let Some(class) = args.device.device_class() else {
        bail!("--record: {} has no device class to record under yet (host only)", args.device.kind());
    };
    for (model, precision, mean_ms) in measured {
        if models::record_latency(model, precision, &class, *mean_ms)? {
            println!("recorded {model} {precision}: {mean_ms:.3} ms on {class}");
        }
    }
    Ok(())
}

/// benchmarks/results/<name>-<unix time>.json (git-ignored).
pub(super) fn result_path(name: &str) -> PathBuf {
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    cmd::repo_root().join(format!("benchmarks/results/{name}-{stamp}.json"))
}

pub(super) fn device_info(device: &Device) -> DeviceInfo {
    DeviceInfo {
        kind: device.kind().to_owned(),
        name: Some(if *device == Device::Host { hostname() } else { device.kind().to_owned() }),
        os: Some(
            match device {
                Device::Android { .. } => "android",
                Device::IosSim { .. } => "ios",
                _ => std::env::consts::OS,
            }
            .to_owned(),
        ),
        arch: Some(device.arch().to_owned()),
        cpus: Some(if device.emulated() {
            2
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
        }),
        emulated: device.emulated(),
    }
}

/// The result file (schema in benchmarks/README.md) around one runner's measurement.
fn record(
    device: &Device,
    entry: &models::ModelEntry,
    precision: &str,
    model: &Path,
    measured: Measured,
) -> Result<BenchResult> {
    Ok(BenchResult {
        schema: SCHEMA_VERSION,
        openautoglm_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        git_commit: git_commit(),
        device: device_info(device),
        model: ModelInfo {
            id: entry.id.clone(),
            title: Some(entry.title.clone()),
            precision: if precision == "native" { entry.precision.clone() } else { precision.to_owned() },
            source: entry.package.as_ref().map(|p| format!("{}=={}", p.name, p.version)).or(entry.fixture.clone()),
            sha256: entry.sha256.clone(),
            file_size_mb: Some(fs::metadata(model)?.len() as f64 / (1024.0 * 1024.0)),
        },
        measured,
        ..BenchResult::default()
    })
}

pub(super) fn git_commit() -> Option<String> {
    let out =
        Command::new("git").current_dir(cmd::repo_root()).args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_owned()).unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Args::default()` (what `test` runs) is what the command line gives when nothing is passed.
    #[test]
    fn default_args_are_the_command_line_defaults() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let parsed = <Cli as clap::Parser>::parse_from(["bench"]).args;
        let default = Args::default();
        assert_eq!(
            (parsed.precision, parsed.optimize, parsed.device, parsed.rounds, parsed.tokens, parsed.seconds),
            (default.precision, default.optimize, default.device, default.rounds, default.tokens, default.seconds)
        );
        assert_eq!((parsed.cooldown, parsed.generate, parsed.runs, parsed.model), (0.0, false, None, None));
    }
}
