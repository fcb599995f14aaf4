//! `cargo xtask bench --suite scheduling`: many requests on one process, through the SDK on this machine: interactive
//! latency under background load (prioritized and FIFO), concurrent throughput, cancel latency, late results and an
//! LLM stream's gaps while another request prefills a long prompt. The runner does the measuring
//! (`openautoglm-bench --scheduling`); this builds it, gives it real models and prints the table.

use std::fs;
use std::process::Command;

use anyhow::{Result, bail};

use super::{Args, device_info, git_commit, result_path};
use crate::devices::Device;
use crate::models::{self, llm};
use crate::results::{self, SCHEMA_VERSION, SchedulingFile, SchedulingMetrics, SchedulingOutput};
use crate::{cache, runner};

/// The interactive model (a short sentence embedding) and the background one (camera-frame detection).
const INTERACTIVE: &str = "minilm-l6-int8";
const BACKGROUND: &str = "yolov8n-320";
const LLM: &str = "smollm2";

pub(super) fn run(args: &Args) -> Result<()> {
    if args.device != Device::Host {
        bail!("--suite scheduling runs on this machine (its lanes are the host's cores); drop --device");
    }
    let binary = runner::build(None, &[])?;
    let work = std::env::temp_dir().join(format!("openautoglm-scheduling-{}", std::process::id()));
    let recipe = |model: &str| -> Result<std::path::PathBuf> {
        let dir = work.join(model);
        fs::create_dir_all(&dir)?;
        models::materialize_recipe(model, &dir)
    };
    let llm_dir = llm::prepare(LLM)?;
    let out = work.join("scheduling.json");
    let mut command = Command::new(&binary);
    command
        .arg("--scheduling")
        .arg("--interactive")
        .arg(models::fetch(INTERACTIVE)?)
        .arg("--interactive-recipe")
        .arg(recipe(INTERACTIVE)?)
        .arg("--background")
        .arg(models::fetch(BACKGROUND)?)
        .arg("--background-recipe")
        .arg(recipe(BACKGROUND)?)
        .arg("--llm")
        .arg(&llm_dir)
        .arg("--ort")
        .arg(cache::host_onnxruntime()?)
        .arg("--out")
        .arg(&out);
    if let Some(runs) = args.runs {
        command.args(["--requests", &runs.to_string()]);
    }
    command.args(["--repeat", &args.repeat.to_string()]);
    runner::run_with_progress(&mut command, "scheduling scenarios")?;
    let output: SchedulingOutput = results::read(&out)?;
    let _ = fs::remove_dir_all(&work);
    print_table(&output.scheduling);
    let file = SchedulingFile {
        schema: SCHEMA_VERSION,
        suite: "scheduling".into(),
        device: device_info(&Device::Host),
        git_commit: git_commit(),
        ort_version: output.ort_version,
        interactive_model: INTERACTIVE.into(),
        background_model: BACKGROUND.into(),
        llm: Some(LLM.into()),
        interval_ms: output.interval_ms,
        requests: output.requests,
        scheduling: output.scheduling,
    };
    let path = args.json.clone().unwrap_or_else(|| result_path("scheduling-host"));
    results::write(&path, &file)?;
    println!("wrote {}", path.display());
    Ok(())
}

fn print_table(m: &SchedulingMetrics) {
    let row = |what: &str, value: String, note: &str| println!("| {what:<44} | {value:>14} | {note:<34} |");
    println!("| {:<44} | {:>14} | {:<34} |", "scheduling (this machine)", "value", "");
    println!("|{:-<46}|{:->16}|{:-<36}|", "", "", "");
    row("interactive p99, idle", format!("{:.2} ms", m.interactive_p99_idle_ms), "MiniLM at a fixed arrival rate");
    row(
        "interactive p99, background load",
        format!("{:.2} ms", m.interactive_p99_loaded_ms),
        "YOLOv8n x2 at background",
    );
    row("  ratio loaded / idle", format!("{:.2}x", m.interactive_p99_ratio), "all repeats pooled");
    let each: Vec<String> = m.interactive_p99_ratios.iter().map(|r| format!("{r:.2}")).collect();
    row("  worst repeat", format!("{:.2}x", m.interactive_p99_ratio_max), &format!("goal <= 1.3 ({})", each.join(" ")));
    row("  without low priority / finishing", format!("{:.2}x", m.interactive_p99_ratio_without), "");
    row(
        "background work lost to preemption",
        format!("{:.1}%", m.background_work_lost_share * 100.0),
        &format!("without: {:.1}%", m.background_work_lost_share_without * 100.0),
    );
    row("  FIFO (all normal) ratio", format!("{:.2}x", m.fifo_interactive_p99_ratio), "the naive baseline");
    row("background runs/s: alone", format!("{:.1}", m.background_runs_per_s_alone), "");
    row("  under interactive load", format!("{:.1}", m.background_runs_per_s_under_interactive), "");
    row("  preempted and re-run", m.background_preempted_runs.to_string(), "the work interactive runs cost");
    row("2 callers, 2 sessions vs serialised", format!("{:.2}x", m.concurrent_throughput_ratio), "goal >= 1.2");
    row("  extra session memory", format!("{:.1} MB", m.extra_session_rss_mb), "");
    row(
        "cancel latency p50 / p99",
        format!("{:.2} / {:.2} ms", m.cancel_latency_p50_ms, m.cancel_latency_p99_ms),
        "YOLOv8n, goal p99 <= 20",
    );
    row("late results", m.late_results.to_string(), "goal 0");
    row(
        "  deadline exceeded (of requests)",
        format!("{} / {}", m.deadline_exceeded, m.deadline_requests),
        "deadlines 0.5-2x idle p50",
    );
    if let (Some(max), Some(p50)) = (m.llm.llm_stream_max_gap_ms, m.llm.llm_stream_p50_gap_ms) {
        row("LLM stream gap max / p50 (long prefill)", format!("{max:.0} / {p50:.0} ms"), "goal max <= 5x p50");
        row("  ratio", format!("{:.2}x", max / p50), "");
        row("  stream p50 gap alone", format!("{:.0} ms", m.llm.llm_stream_p50_gap_alone_ms.unwrap_or_default()), "");
        row(
            "  long prefill alone / contended",
            format!(
                "{:.0} / {:.0} ms",
                m.llm.llm_long_prefill_alone_ms.unwrap_or_default(),
                m.llm.llm_long_prefill_contended_ms.unwrap_or_default()
            ),
            &format!("{} prompt tokens", m.llm.llm_long_prompt_tokens.unwrap_or_default()),
        );
    }
}
