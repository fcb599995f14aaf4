//! What `bench` prints: one configuration's table, the `--vs` comparison, and a suite's summary.

use crate::results::report::cell;
use crate::results::{BenchResult, Comparison};

/// A count, or `?` when it was not reported.
fn count<T: ToString>(value: Option<T>) -> String {
    value.map_or("?".to_owned(), |x| x.to_string())
}

pub fn print_table(r: &BenchResult) {
    let m = &r.measured.metrics;
    let f = |v: Option<f64>| cell(v, 2);
    println!(
        "\n{} ({}, {:.1} MB) on {} {} [{} cpus], ONNX Runtime {}, {} threads, {}",
        r.model.id,
        r.model.precision,
        r.model.file_size_mb.unwrap_or(0.0),
        r.device.kind,
        r.device.arch.as_deref().unwrap_or("?"),
        count(r.device.cpus),
        r.measured.ort_version.as_deref().unwrap_or("?"),
        count(r.measured.threads),
        r.measured.optimize_level.as_deref().unwrap_or("?"),
    );
    let rows = [
        ("runtime init", f(m.runtime_init_ms), "ms"),
        ("session create", f(m.session_create_ms), "ms"),
        ("first inference", f(m.first_inference_ms), "ms"),
        ("cold start", f(m.cold_start_ms), "ms"),
        ("warmup mean", f(m.warmup_mean_ms), "ms"),
        ("p50", f(m.p50_ms), "ms"),
        ("p90", f(m.p90_ms), "ms"),
        ("p99", f(m.p99_ms), "ms"),
        ("mean ± std", format!("{} ± {}", f(m.mean_ms), f(m.std_ms)), "ms"),
        ("min / max", format!("{} / {}", f(m.min_ms), f(m.max_ms)), "ms"),
        ("RSS after load", f(m.rss_after_load_mb), "MB"),
        ("peak RSS", f(m.peak_rss_mb), "MB"),
        ("CPU per run", cell(m.cpu_ms_per_run, 4), "ms"),
    ];
    println!("| {:<16} | {:>18} | unit |", "metric", "value");
    println!("|{:-<18}|{:->20}|------|", "", "");
    for (name, value, unit) in rows {
        println!("| {name:<16} | {value:>18} | {unit:<4} |");
    }
    let cadence = m.interval_ms.map_or("back to back".to_owned(), |ms| format!("{ms} ms apart"));
    println!("({} timed runs after {} warmup runs, {cadence})", count(m.runs), count(m.warmup_runs));
    if let Some(placement) = &r.measured.placement
        && let Some(providers) = &placement.nodes_by_provider
    {
        let nodes: Vec<String> = providers.iter().map(|(p, n)| format!("{p}: {n} nodes")).collect();
        println!("placement: {} in {} partition(s)", nodes.join(", "), count(placement.partitions));
    }
}

pub fn print_comparison(c: &Comparison) {
    println!(
        "\nSame model, threads and inputs; {} interleaved rounds; ratio = runner p50 / Rust p50 on the same runtime; \
         cold start, RSS and CPU: medians over rounds",
        c.rounds
    );
    println!(
        "| {:<13} | {:>6} | {:>9} | {:>9} | {:>17} | {:>13} | {:>10} | {:>10} | {:>8} | {:>10} | {:<14} |",
        "runner",
        "runs",
        "p50 ms",
        "p90 ms",
        "p50 vs Rust",
        "overhead/call",
        "CPU/run ms",
        "cold ms",
        "RSS MB",
        "alloc/call",
        "outputs"
    );
    println!(
        "|{:-<15}|{:->8}|{:->11}|{:->11}|{:->19}|{:->15}|{:->12}|{:->12}|{:->10}|{:->12}|{:-<16}|",
        "", "", "", "", "", "", "", "", "", "", ""
    );
    for r in &c.runners {
        let rounds = &r.p50_ratio_per_round;
        let spread = match (rounds.iter().copied().reduce(f64::min), rounds.iter().copied().reduce(f64::max)) {
            (Some(lo), Some(hi)) => format!("{:.2}x ({lo:.2}-{hi:.2})", r.p50_ratio_vs_rust),
            _ => "-".into(),
        };
        let alloc = r.alloc_bytes_per_run.map_or("-".to_owned(), |b| format!("{b:.0} B"));
        println!(
            "| {:<13} | {:>6} | {:>9.4} | {:>9.4} | {:>17} | {:>10.1} us | {:>10} | {:>10} | {:>8} | {:>10} | {:<14} |",
            r.runner,
            r.runs,
            r.p50_ms,
            r.p90_ms,
            spread,
            r.p50_overhead_us,
            cell(r.cpu_ms_per_run, 4),
            cell(r.cold_start_ms, 1),
            cell(r.rss_after_load_mb, 1),
            alloc,
            r.outputs.as_deref().unwrap_or("allocated"),
        );
    }
}

pub fn print_suite(results: &[BenchResult]) {
    println!(
        "\n| {:<22} | {:<12} | {:>9} | {:>9} | {:>9} | {:>8} | {:>8} | {:>8} | {:>7} | {:>14} |",
        "model", "precision", "p50 ms", "p90 ms", "first ms", "peak MB", "accurate", "cosine", "top-1", "peer/ours"
    );
    println!(
        "|{:-<24}|{:-<14}|{:->11}|{:->11}|{:->11}|{:->10}|{:->10}|{:->10}|{:->9}|{:->16}|",
        "", "", "", "", "", "", "", "", "", ""
    );
    for r in results {
        if let Some(error) = &r.error {
            let short: String = error.chars().take(90).collect();
            println!("| {:<22} | {:<12} | FAILED: {short}", r.model.id, r.model.precision);
            continue;
        }
        let m = &r.measured.metrics;
        let accuracy = r.accuracy_vs_fp32.clone().unwrap_or_default();
        let peer = peer_ratios(r);
        println!(
            "| {:<22} | {:<12} | {:>9} | {:>9} | {:>9} | {:>8} | {:>8} | {:>8} | {:>7} | {:>14} |",
            r.model.id,
            r.model.precision,
            cell(m.p50_ms, 3),
            cell(m.p90_ms, 3),
            cell(m.first_inference_ms, 2),
            cell(m.peak_rss_mb, 0),
            accuracy.verdict(),
            cell(accuracy.cosine_similarity, 5),
            cell(accuracy.top1_agreement, 3),
            peer
        );
    }
    print_suite_costs(results);
}

/// Each peer's p50 over ours (on the same runtime), or `-` without peers.
fn peer_ratios(r: &BenchResult) -> String {
    let Some(comparison) = &r.comparison else { return "-".into() };
    let peers: Vec<String> = comparison
        .runners
        .iter()
        .filter(|x| !x.runner.starts_with("rust"))
        .map(|x| format!("{} {:.2}x", x.runner, x.p50_ratio_vs_rust))
        .collect();
    if peers.is_empty() { "-".into() } else { peers.join(", ") }
}

/// Per configuration and runner: what a process pays besides latency (cold start, memory after load, CPU per run).
fn print_suite_costs(results: &[BenchResult]) {
    let rows: Vec<(&BenchResult, &crate::results::RunnerComparison)> = results
        .iter()
        .filter_map(|r| Some((r, r.comparison.as_ref()?)))
        .flat_map(|(r, c)| c.runners.iter().map(move |x| (r, x)))
        .collect();
    if rows.is_empty() {
        return;
    }
    println!(
        "\n| {:<22} | {:<12} | {:<13} | {:>9} | {:>10} | {:>10} | {:>8} |",
        "model", "precision", "runner", "p50 ms", "CPU/run ms", "cold ms", "RSS MB"
    );
    println!("|{:-<24}|{:-<14}|{:-<15}|{:->11}|{:->12}|{:->12}|{:->10}|", "", "", "", "", "", "", "");
    for (r, x) in rows {
        println!(
            "| {:<22} | {:<12} | {:<13} | {:>9.4} | {:>10} | {:>10} | {:>8} |",
            r.model.id,
            r.model.precision,
            x.runner,
            x.p50_ms,
            cell(x.cpu_ms_per_run, 4),
            cell(x.cold_start_ms, 1),
            cell(x.rss_after_load_mb, 1)
        );
    }
}
