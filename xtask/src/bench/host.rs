//! Every configuration with every runner on this machine, interleaved in rounds (A B A B ...) so that machine
//! drift hits every configuration alike; ratios are of pooled medians.

use std::fs;

use anyhow::{Result, bail};
use openautoglm::metrics::Summary;

use super::runners::{self, Job, Runner};
use super::{Args, Config, Peer, Suite, record, tables};
use crate::devices::Device;
use crate::results::{BenchResult, Comparison, Measured, RunnerComparison, SetupInfo};
use crate::{cache, jvm, models};

pub fn measure(args: &Args, configs: &[Config]) -> Result<Vec<BenchResult>> {
    let suite = args.suite.is_some();
    // Every runner uses the job's library, except where python-ort and ort-java (which bring different ONNX
    // Runtime builds) run together: then ORT Java and a second Rust runner use ORT Java's, and each peer is compared
    // with the Rust core on its own runtime.
    let ort = if args.vs.contains(&Peer::OrtJava) && !args.vs.contains(&Peer::PythonOrt) {
        jvm::ort_java_natives()?.1
    } else {
        cache::host_onnxruntime()?
    };
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    if args.suite == Some(Suite::Engine) && !args.vs.is_empty() {
        bail!("the engine suite compares setups of our own engine; run --vs in another run");
    }
    let runners = runners::build(&args.vs, &ort)?;
    let rounds = if args.vs.is_empty() && !suite { 1 } else { args.rounds.max(1) };
    let (runs, warmup) =
        (args.runs.unwrap_or(if suite { 30 } else { 200 }), args.warmup.unwrap_or(if suite { 5 } else { 10 }));

    let work = std::env::temp_dir().join(format!("openautoglm-bench-{}", std::process::id()));
    let mut jobs = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let dir = work.join(i.to_string());
        fs::create_dir_all(&dir)?;
        let mut flags = config.setup.as_ref().map(|(_, s)| s.flags.clone()).unwrap_or_default();
        let compile_cache = config.setup.as_ref().is_some_and(|(_, s)| s.compile_cache);
        if compile_cache {
            flags.extend(["--cache-dir".to_owned(), dir.join("compile-cache").display().to_string()]);
        }
        let job = Job {
            model: models::model_file(&config.model, &config.precision)?,
            recipe: models::materialize_recipe(&config.model, &dir)?,
            ort: ort.clone(),
            runs,
            warmup,
            threads,
            optimize: args.optimize.clone(),
            seconds: args.seconds,
            interval_ms: args.interval_ms,
            flags,
            plugin: None,
            prefix: Vec::new(),
        };
        if compile_cache {
            // The first launch fills the cache; every timed launch after it is a second launch.
            let spinner = cache::spinner(format!("{}: first launch, filling the compile cache", config.label()));
            let primed = runners[0].run(&Job { runs: 1, warmup: 0, ..job.clone() }, &dir, &|_| {});
            spinner.finish_and_clear();
            primed?;
        }
        jobs.push(job);
    }

    let per_run = (1 + warmup + runs) as u64;
    let steps = (rounds * configs.len() * runners.len()) as u64;
    let bar = indicatif::ProgressBar::new(per_run * steps).with_style(
        indicatif::ProgressStyle::with_template("{msg:40} [{bar:40}] {pos}/{len} runs {eta}")
            .expect("template")
            .progress_chars("=> "),
    );
    // measured[config][runner]: one measurement per round.
    let mut measured: Vec<Vec<Vec<Measured>>> = vec![vec![Vec::new(); runners.len()]; configs.len()];
    let mut step = 0u64;
    for round in 0..rounds {
        for (c, (config, job)) in configs.iter().zip(&jobs).enumerate() {
            for (r, runner) in runners.iter().enumerate() {
                let offset = per_run * step;
                bar.set_message(format!("{} {} {}/{rounds}", config.label(), runner.name(), round + 1));
                bar.set_position(offset);
                let dir = work.join(c.to_string());
                measured[c][r].push(runner.run(job, &dir, &|done| bar.set_position(offset + done))?);
                step += 1;
                if args.cooldown > 0.0 {
                    std::thread::sleep(std::time::Duration::from_secs_f64(args.cooldown));
                }
            }
        }
    }
    bar.finish_and_clear();
    let _ = fs::remove_dir_all(&work);

    let mut out = Vec::new();
    for ((config, job), by_runner) in configs.iter().zip(&jobs).zip(&measured) {
        let entry = models::entry(&config.model)?;
        let mut result = record(&Device::Host, &entry, &config.precision, &job.model, by_runner[0][0].clone())?;
        if rounds > 1 {
            // The Rust runner's samples pooled over rounds; the first round's one-off metrics stay as measured.
            let pooled: Vec<f64> = by_runner[0].iter().flat_map(|m| m.samples_ms.iter().copied()).collect();
            merge_samples(&mut result.measured, pooled);
        }
        result.accuracy_vs_fp32 = models::variant_accuracy(&config.model, &config.precision)?;
        if let Some((experiment, setup)) = &config.setup {
            result.setup = Some(SetupInfo {
                experiment: (*experiment).to_owned(),
                label: setup.label.to_owned(),
                flags: job.flags.clone(),
            });
            result.per_round = by_runner[0].iter().map(|m| m.metrics.clone()).collect();
        }
        if runners.len() > 1 {
            result.comparison = Some(compare(&runners, by_runner));
        }
        if !suite {
            tables::print_table(&result);
            if let Some(comparison) = &result.comparison {
                tables::print_comparison(comparison);
            }
        }
        out.push(result);
    }
    if suite {
        tables::print_suite(&out);
    }
    Ok(out)
}

/// Recomputes the steady-state statistics from `pooled` samples.
fn merge_samples(measured: &mut Measured, pooled: Vec<f64>) {
    if let Some(s) = Summary::of(&pooled) {
        let m = &mut measured.metrics;
        m.runs = Some(s.count as u64);
        (m.mean_ms, m.std_ms, m.min_ms, m.max_ms) = (Some(s.mean), Some(s.std), Some(s.min), Some(s.max));
        (m.p50_ms, m.p90_ms, m.p95_ms, m.p99_ms) = (Some(s.p50), Some(s.p90), Some(s.p95), Some(s.p99));
        measured.samples_ms = pooled;
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let values: Vec<f64> = values.collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// The middle value over rounds (one-off figures such as a cold start: a slow round is noise, not the runner).
fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// Pooled latency per runner and the ratio of each runner's median to the Rust core's, overall and per round.
fn compare(runners: &[Runner], measured: &[Vec<Measured>]) -> Comparison {
    let pooled = |i: usize| {
        let samples: Vec<f64> = measured[i].iter().flat_map(|m| m.samples_ms.iter().copied()).collect();
        Summary::of(&samples).expect("samples")
    };
    let runners = runners
        .iter()
        .enumerate()
        .map(|(i, runner)| {
            // The Rust runner on this runner's runtime: the nearest one before it (or itself).
            let baseline = (0..=i).rev().find(|&b| runners[b].is_rust()).unwrap_or(0);
            let base = pooled(baseline);
            let s = pooled(i);
            let per_round: Vec<f64> = measured[i]
                .iter()
                .zip(&measured[baseline])
                .filter_map(|(mine, rust)| {
                    Some(Summary::of(&mine.samples_ms)?.p50 / Summary::of(&rust.samples_ms)?.p50)
                })
                .collect();
            RunnerComparison {
                runner: runner.name().to_owned(),
                runs: s.count,
                p50_ms: s.p50,
                p90_ms: s.p90,
                mean_ms: s.mean,
                std_ms: s.std,
                min_ms: s.min,
                p50_ratio_vs_rust: s.p50 / base.p50,
                p50_ratio_per_round: per_round,
                p50_overhead_us: (s.p50 - base.p50) * 1e3,
                alloc_bytes_per_run: mean(measured[i].iter().filter_map(|m| m.metrics.alloc_bytes_per_run)),
                cold_start_ms: median(measured[i].iter().filter_map(|m| m.metrics.cold_start_ms)),
                rss_after_load_mb: median(measured[i].iter().filter_map(|m| m.metrics.rss_after_load_mb)),
                cpu_ms_per_run: median(measured[i].iter().filter_map(|m| m.metrics.cpu_ms_per_run)),
                outputs: measured[i].iter().find_map(|m| m.outputs.clone()),
            }
        })
        .collect();
    Comparison { rounds: measured[0].len(), baseline: "rust".into(), runners }
}
