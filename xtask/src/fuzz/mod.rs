//! `cargo xtask fuzz --minutes N`: hostile models against every entry point, as an app that downloads models would
//! meet them. Most of the time goes to a process-isolated mutation run over the real models and the fixtures
//! (structure-aware mutants, each loaded through `from_bytes`, `from_file`, the compile cache and the placement
//! report, then warmed up, in probes under an 8 GB address-space limit); the rest to the three libFuzzer targets in
//! `core/fuzz` (model check, input validation, model loading). Crashes, hangs and caught panics are saved under
//! `target/fuzz/`, replayed alone to confirm them and minimised; the command fails if any is found. Reproducers
//! belong in `core/tests/data/fuzz/`, which the Rust tests replay.

mod harness;
mod libfuzzer;
mod mutate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::models::{self, llm};
use crate::{cache, cmd};
use harness::{Finding, Seed, Tally};

#[derive(clap::Args)]
pub struct Args {
    /// Total time, build excluded.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Share of the time for the libFuzzer targets (the rest is the mutation run); 0 skips them.
    #[arg(long, default_value_t = 0.2)]
    libfuzzer_share: f64,
    /// Parallel probes (default: the number of cores).
    #[arg(long)]
    workers: Option<usize>,
    /// Mutation seed, for a reproducible run (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
}

/// The short run inside `cargo xtask test`: a minute of mutants and a few seconds per libFuzzer target.
pub fn smoke() -> Result<()> {
    run(Args { minutes: 1.5, libfuzzer_share: 0.3, workers: None, seed: Some(1) })
}

pub fn run(args: Args) -> Result<()> {
    let ort = cache::host_onnxruntime()?;
    let seeds = seeds()?;
    let out = cmd::repo_root().join("target/fuzz");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let probe = build_probe()?;
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let libfuzzer_time = total.mul_f64(args.libfuzzer_share.clamp(0.0, 1.0));
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
    });
    let workers = args.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

    println!(
        "mutation run: {:.1} min, {workers} probes, seed {seed}, {} seed models ({})",
        (total - libfuzzer_time).as_secs_f64() / 60.0,
        seeds.len(),
        seeds.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    let tally = mutation_run(&seeds, &probe, &ort, &out, total - libfuzzer_time, workers, seed)?;
    let mut confirmed = Vec::new();
    for (finding, path, detail) in &tally.findings {
        let entry = detail.split('|').next().unwrap_or("bytes");
        let again = harness::triage(*finding, path, entry, &probe, &ort, &out)?;
        confirmed.push((*finding, path.clone(), detail.clone(), again));
    }
    report(&tally, &confirmed);

    let mut libfuzzer_failures = Vec::new();
    if !libfuzzer_time.is_zero() {
        libfuzzer_failures = libfuzzer_targets(libfuzzer_time, &ort, &out)?;
    }
    if !tally.findings.is_empty() || !libfuzzer_failures.is_empty() {
        bail!(
            "fuzzing found {} distinct crashes/hangs/panics and {} failing libFuzzer targets: reproducers are in {}; \
             fix them, then copy each minimised reproducer into core/tests/data/fuzz/",
            tally.findings.len(),
            libfuzzer_failures.len(),
            out.display()
        );
    }
    Ok(())
}

/// Real models (the tests' and the benchmark suite's small ones, an LLM decoder) and every fixture.
fn seeds() -> Result<Vec<Seed>> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for id in models::TEST_MODELS {
        paths.push(models::fetch(id)?);
    }
    for id in models::TEST_BUNDLES {
        models::prepared_variants(id)?;
        paths.push(models::variants_dir(id).join("fp16.onnx"));
        paths.push(models::variants_dir(id).join("int8-qdq.onnx"));
    }
    let decoder = llm::prepare("smollm2-tiny")?;
    paths.extend(onnx_files(&decoder)?);
    paths.extend(onnx_files(&cmd::repo_root().join("core/tests/data/models"))?);
    paths.extend(onnx_files(&cmd::repo_root().join("core/tests/data/fuzz"))?);
    paths.iter().map(|p| Seed::load(p)).collect()
}

fn onnx_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx") && !p.to_string_lossy().ends_with(".min.onnx"))
        .collect();
    files.sort();
    Ok(files)
}

/// The probe, release build (what apps ship), with the `fuzzing` entry points.
fn build_probe() -> Result<PathBuf> {
    let root = cmd::repo_root();
    cmd::run(Command::new(env!("CARGO")).current_dir(root).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "openautoglm",
        "--features",
        "fuzzing",
        "--bin",
        "openautoglm-probe",
    ]))?;
    Ok(root.join("target/release/openautoglm-probe"))
}

fn mutation_run(
    seeds: &[Seed],
    probe: &Path,
    ort: &Path,
    out: &Path,
    time: Duration,
    workers: usize,
    seed: u64,
) -> Result<Tally> {
    let deadline = Instant::now() + time;
    let done = AtomicUsize::new(0);
    let bar = indicatif::ProgressBar::new(time.as_secs());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {elapsed}/{duration} {msg}").expect("valid template"),
    );
    let started = Instant::now();
    let progress = |_: usize| {
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        bar.set_position(started.elapsed().as_secs());
        bar.set_message(format!("{n} mutants"));
    };
    let tallies: Vec<Result<Tally>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let progress = &progress;
                scope.spawn(move || harness::run_worker(w, seeds, probe, ort, out, deadline, seed, progress))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| bail!("a fuzzing worker panicked"))).collect()
    });
    bar.finish_and_clear();
    let mut total = Tally::default();
    for tally in tallies {
        let tally = tally?;
        total.mutants += tally.mutants;
        for (k, v) in tally.outcomes {
            *total.outcomes.entry(k).or_default() += v;
        }
        total.findings.extend(tally.findings);
        for (k, v) in tally.finding_count {
            *total.finding_count.entry(k).or_default() += v;
        }
    }
    Ok(total)
}

fn report(tally: &Tally, confirmed: &[(Finding, PathBuf, String, bool)]) {
    println!("\n{} mutants", tally.mutants);
    let mut loads = 0;
    let mut by_error: BTreeMap<&str, usize> = BTreeMap::new();
    println!("{:<40} {:>8}", "entry: load/warmup", "mutants");
    for (outcome, n) in &tally.outcomes {
        println!("{outcome:<40} {n:>8}");
        let words = outcome.split_once(": ").map_or(outcome.as_str(), |(_, w)| w);
        let (load, warmup) = words.split_once('/').unwrap_or((words, "-"));
        if load == "ok" {
            loads += n;
        }
        for word in [load, warmup] {
            if word != "ok" && word != "-" {
                *by_error.entry(word).or_default() += n;
            }
        }
    }
    println!("loaded: {loads}; typed errors by variant (load and warmup): {by_error:?}");
    let count = |f: Finding| tally.finding_count.get(&f).copied().unwrap_or(0);
    println!(
        "crashes: {}, hangs: {}, panics: {}, internal errors: {}",
        count(Finding::Crash),
        count(Finding::Hang),
        count(Finding::Panic),
        count(Finding::Internal)
    );
    for (finding, path, detail, again) in confirmed {
        let replay = if *again { "reproduces alone; minimised beside it" } else { "did not reproduce alone" };
        println!("  {finding:?} {} ({detail}): {replay}", path.display());
    }
}

fn libfuzzer_targets(time: Duration, ort: &Path, out: &Path) -> Result<Vec<String>> {
    libfuzzer::ensure_tools()?;
    let per_target = (time.as_secs() / libfuzzer::TARGETS.len() as u64).max(5);
    let data = cmd::repo_root().join("core/tests/data");
    let seeds = data.join("models");
    let env = [("ORT_DYLIB_PATH", ort), ("OPENAUTOGLM_TEST_DATA", data.as_path())];
    let mut failures = Vec::new();
    for target in libfuzzer::TARGETS {
        let spinner = cache::spinner(format!("libFuzzer {target}: {per_target} s (first use builds it)"));
        let result = libfuzzer::run(target, per_target, &seeds, &out.join("libfuzzer").join(target), &env);
        spinner.finish_and_clear();
        match result.with_context(|| format!("libFuzzer target {target}")) {
            Ok(done) => println!("libFuzzer {target}: {done}"),
            Err(e) => {
                println!("libFuzzer {target}: FAILED\n{e:#}");
                failures.push(target.to_owned());
            }
        }
    }
    Ok(failures)
}
