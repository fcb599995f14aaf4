//! `cargo xtask bench --suite accelerators`: every standard model (the manifest's registry models, as shipped) on
//! the CPU provider and on OpenVINO's plugin execution provider through the SDK (the Rust runner), with python-ort
//! on the same plugin as the peer, interleaved in rounds; then the fixture OpenVINO cannot take whole, for the CPU
//! fallback in its placement and strict mode's refusal. OpenVINO's plugin offers devices only on an Intel CPU, so
//! everything runs on one (emulated where the host's is not: `crate::intel`), the CPU-provider runs included, and
//! every ratio compares runners on that same CPU.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use openautoglm::metrics::Summary;

use super::runners::{Job, Runner};
use super::{Args, device_info, git_commit, result_path};
use crate::devices::Device;
use crate::results::{self, AcceleratorRow, AcceleratorsSummary, Measured, SuiteFile};
use crate::{cache, cmd, intel, models, python, runner};

const OPENVINO: &str = "OpenVINOExecutionProvider";

/// The three ways each model runs, in this order in every round.
const SETUPS: [&str; 3] = ["rust cpu", "rust openvino", "python-ort openvino"];

pub fn run(args: &Args) -> Result<()> {
    let plugin = cache::openvino_plugin()?;
    let prefix = intel::runner()?;
    let ort = cache::host_onnxruntime()?;
    let rust = Runner::Rust { binary: runner::build(None, &[])?, ort: None };
    let python = Runner::PythonOrt { python: python::python()? };
    let ids: Vec<String> = models::manifest()?
        .models
        .into_iter()
        .filter(|m| m.package.is_some() && (args.models.is_empty() || args.models.contains(&m.id)))
        .map(|m| m.id)
        .collect();
    if ids.is_empty() {
        bail!("no model matched --models {:?}", args.models);
    }
    // Under emulation a run is hundreds of times slower than native: few runs, pooled over the rounds.
    let (runs, warmup, rounds) = (args.runs.unwrap_or(5), args.warmup.unwrap_or(1), args.rounds.max(1));
    let threads = args.threads.unwrap_or(2);
    let work = std::env::temp_dir().join(format!("openautoglm-accelerators-{}", std::process::id()));
    let job = |model: &Path, recipe: PathBuf, on_plugin: bool| Job {
        model: model.to_path_buf(),
        recipe,
        ort: ort.clone(),
        runs,
        warmup,
        threads,
        optimize: args.optimize.clone(),
        seconds: 0.0,
        interval_ms: 0.0,
        flags: Vec::new(),
        plugin: on_plugin.then(|| plugin.clone()),
        prefix: prefix.clone(),
    };
    let mut jobs = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let dir = work.join(i.to_string());
        fs::create_dir_all(&dir)?;
        let model = models::model_file(id, "native")?;
        let recipe = models::materialize_recipe(id, &dir)?;
        jobs.push([job(&model, recipe.clone(), false), job(&model, recipe.clone(), true), job(&model, recipe, true)]);
    }
    println!(
        "{} models x {SETUPS:?}, {rounds} rounds of {runs} runs{}",
        ids.len(),
        if intel::emulated() { " on an emulated Intel CPU (qemu): ratios only" } else { "" }
    );
    let bar = indicatif::ProgressBar::new((rounds * ids.len() * SETUPS.len()) as u64);
    // measured[model][setup]: one result per round, or why it failed.
    let mut measured: Vec<[Vec<Result<Measured, String>>; 3]> = ids.iter().map(|_| Default::default()).collect();
    for round in 0..rounds {
        for (m, id) in ids.iter().enumerate() {
            for (s, setup) in SETUPS.iter().enumerate() {
                bar.set_message(format!("{id} {setup} {}/{rounds}", round + 1));
                let runner = if s == 2 { &python } else { &rust };
                let dir = work.join(m.to_string());
                measured[m][s]
                    .push(runner.run(&jobs[m][s], &dir, &|_| {}).map_err(|e| crate::runner::message(&e.to_string())));
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();

    let rows: Vec<AcceleratorRow> = ids.iter().zip(&measured).map(|(id, by_setup)| row(id, by_setup)).collect();
    let (fallback_reported, strict_refused) = refusals(&rust, &job, &work)?;
    let _ = fs::remove_dir_all(&work);
    let telemetry_enabled =
        measured.iter().flat_map(|by_setup| by_setup[1].iter().flatten()).any(|m| m.telemetry_enabled.unwrap_or(false));
    let summary = summarize(rows, fallback_reported, strict_refused, telemetry_enabled);
    print_table(&summary);
    let device = Device::Host;
    let mut info = device_info(&device);
    info.emulated = intel::emulated();
    let file = SuiteFile {
        schema: results::SCHEMA_VERSION,
        suite: "accelerators".into(),
        device: info,
        git_commit: git_commit(),
        experiments: None,
        accelerators: Some(summary),
        results: Vec::new(),
    };
    let path = args.json.clone().unwrap_or_else(|| result_path("accelerators-host"));
    results::write(&path, &file)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The p50 of every round's samples pooled.
fn pooled_p50(rounds: &[Result<Measured, String>]) -> Option<f64> {
    let samples: Vec<f64> = rounds.iter().flatten().flat_map(|m| m.samples_ms.iter().copied()).collect();
    Summary::of(&samples).map(|s| s.p50)
}

/// Nodes the CPU provider ran, from the runner's placement of its first round.
fn cpu_nodes(rounds: &[Result<Measured, String>]) -> u64 {
    let placement = rounds.iter().flatten().find_map(|m| m.placement.as_ref());
    placement.and_then(|p| p.nodes_by_provider.as_ref()?.get("CPUExecutionProvider").copied()).unwrap_or(0)
}

fn row(id: &str, by_setup: &[Vec<Result<Measured, String>>; 3]) -> AcceleratorRow {
    let first_ok = |s: usize| by_setup[s].iter().flatten().next();
    let error = by_setup.iter().flatten().find_map(|r| r.as_ref().err().cloned());
    let used = first_ok(1).and_then(|m| m.accelerators.clone()).unwrap_or_default();
    let leading = used.active.first().cloned().unwrap_or_default();
    let (plugin, python) = (pooled_p50(&by_setup[1]), pooled_p50(&by_setup[2]));
    AcceleratorRow {
        model: id.to_owned(),
        skipped_reason: used.skipped.iter().find(|s| s.provider == OPENVINO).map(|s| s.reason.clone()),
        leading,
        cpu_p50_ms: pooled_p50(&by_setup[0]),
        plugin_p50_ms: plugin,
        python_plugin_p50_ms: python,
        plugin_vs_python_p50: plugin.zip(python).map(|(ours, peer)| ours / peer),
        cpu_run_nodes: cpu_nodes(&by_setup[0]),
        plugin_run_cpu_nodes: cpu_nodes(&by_setup[1]),
        error,
    }
}

/// The fixture OpenVINO cannot take whole (its Det): run on the plugin, its placement must show CPU nodes; in strict
/// mode the engine must refuse it.
fn refusals(rust: &Runner, job: &dyn Fn(&Path, PathBuf, bool) -> Job, work: &Path) -> Result<(bool, bool)> {
    let dir = work.join("fallback");
    fs::create_dir_all(&dir)?;
    let recipe = dir.join("recipe.json");
    fs::write(&recipe, r#"[{"name": "x", "type": "f32", "shape": [1, 4], "values": [0.5, -1.0, 2.0, 4.0]}]"#)?;
    let model = cmd::repo_root().join("core/tests/data/models/accelerator_fallback.onnx");
    let base = Job { runs: 3, warmup: 0, ..job(&model, recipe, true) };
    let ran = rust.run(&base, &dir, &|_| {})?;
    let nodes = ran.placement.and_then(|p| p.nodes_by_provider).unwrap_or_default();
    let fallback = nodes.get("CPUExecutionProvider").is_some_and(|&n| n > 0) && nodes.contains_key(OPENVINO);
    let strict = Job { flags: vec!["--strict".into()], ..base };
    let refused = match rust.run(&strict, &dir, &|_| {}) {
        Ok(_) => false,
        Err(e) => {
            let reason = crate::runner::message(&e.to_string());
            println!("strict mode on the fixture: {reason}");
            reason.contains("strict mode")
        }
    };
    Ok((fallback, refused))
}

fn summarize(
    models: Vec<AcceleratorRow>,
    fallback_reported: bool,
    strict_refused: bool,
    telemetry_enabled: bool,
) -> AcceleratorsSummary {
    let on_plugin: Vec<&AcceleratorRow> = models.iter().filter(|r| r.leading == OPENVINO).collect();
    // Nodes the plugin took, over all models: what the CPU no longer ran in the plugin run (ONNX Runtime fuses each
    // plugin partition into one kernel, so its own count is of partitions, not of the model's nodes).
    let total: u64 = models.iter().map(|r| r.cpu_run_nodes).sum();
    let left: u64 = models.iter().map(|r| r.plugin_run_cpu_nodes.min(r.cpu_run_nodes)).sum();
    AcceleratorsSummary {
        plugin: OPENVINO.into(),
        emulated: intel::emulated(),
        plugin_models: on_plugin.len(),
        plugin_nodes_share: if total == 0 { 0.0 } else { (total - left) as f64 / total as f64 },
        plugin_vs_python_p50_ratio_max: on_plugin.iter().filter_map(|r| r.plugin_vs_python_p50).reduce(f64::max),
        fallback_reported,
        strict_refused,
        telemetry_enabled,
        models,
    }
}

fn print_table(summary: &AcceleratorsSummary) {
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
    println!(
        "\n{:<22} {:<26} {:>10} {:>12} {:>12} {:>9} {:>11}",
        "model", "ran on (plugin run)", "cpu p50", "plugin p50", "python p50", "ours/py", "cpu nodes"
    );
    for r in &summary.models {
        println!(
            "{:<22} {:<26} {:>10} {:>12} {:>12} {:>9} {:>5} -> {:<4}{}",
            r.model,
            r.leading,
            ms(r.cpu_p50_ms),
            ms(r.plugin_p50_ms),
            ms(r.python_plugin_p50_ms),
            r.plugin_vs_python_p50.map_or("-".into(), |v| format!("{v:.3}x")),
            r.cpu_run_nodes,
            r.plugin_run_cpu_nodes,
            r.skipped_reason
                .as_deref()
                .or(r.error.as_deref())
                .map(|s| format!("  ({})", truncate(s)))
                .unwrap_or_default()
        );
    }
    println!(
        "\nplugin_models {}  plugin_nodes_share {:.3}  plugin_vs_python_p50_ratio_max {}  fallback_reported {}  \
         strict_refused {}  telemetry_enabled {}",
        summary.plugin_models,
        summary.plugin_nodes_share,
        summary.plugin_vs_python_p50_ratio_max.map_or("-".into(), |v| format!("{v:.3}")),
        summary.fallback_reported,
        summary.strict_refused,
        summary.telemetry_enabled
    );
}

fn truncate(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > 80 { format!("{}...", line.chars().take(80).collect::<String>()) } else { line.into() }
}
