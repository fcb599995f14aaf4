//! `cargo xtask bench --sustained MINUTES`: one model run back to back for minutes on a device, with latency, rate,
//! heat and energy per minute, as phones meet them (throttling, battery). The runner measures
//! (`openautoglm-bench --sustained`, reading the device's sysfs counters where it runs); this deploys it, prints the
//! table, writes the JSON (a top-level `"sustained"` object) and plots latency over time.

use std::fs;

use anyhow::Result;

use super::{Args, device_info, git_commit, result_path};
use crate::devices;
use crate::results::{self, SCHEMA_VERSION, SustainedFile, report::cell};
use crate::{cache, models};

/// Continuous camera-frame detection: the workload that heats a phone.
const DEFAULT_MODEL: &str = "yolov8n-320";

/// Seconds of idle before the run, for the power the device draws anyway (only where an energy counter exists).
const IDLE_SECONDS: f64 = 30.0;

pub(super) fn run(args: &Args, minutes: u32) -> Result<()> {
    anyhow::ensure!(minutes >= 1, "--sustained needs at least 1 minute");
    let model_id = args.model.clone().unwrap_or_else(|| DEFAULT_MODEL.into());
    let model = models::model_file(&model_id, &args.precision)?;
    let work = std::env::temp_dir().join(format!("openautoglm-sustained-{}", std::process::id()));
    fs::create_dir_all(&work)?;
    let recipe = models::materialize_recipe(&model_id, &work)?;
    let threads = args.threads.unwrap_or(if args.device.emulated() { 2 } else { 0 });
    let deployed = devices::deploy(&args.device, &model, &recipe)?;
    let ends = std::time::SystemTime::now() + std::time::Duration::from_secs(u64::from(minutes) * 60 + 40);
    let spinner = cache::spinner(format!(
        "{model_id} ({}) back to back for {minutes} min on {} (ends by {} UTC, idle window first where energy is readable)",
        args.precision,
        args.device.kind(),
        clock(ends)
    ));
    let ran = deployed.run_sustained(minutes, threads, IDLE_SECONDS);
    spinner.finish_and_clear();
    let output = ran?;
    let _ = fs::remove_dir_all(&work);
    print_table(&output.sustained);
    let file = SustainedFile {
        schema: SCHEMA_VERSION,
        device: device_info(&args.device),
        git_commit: git_commit(),
        ort_version: output.ort_version,
        model: model_id.clone(),
        precision: args.precision.clone(),
        threads: output.threads,
        sustained: output.sustained,
    };
    let path = args.json.clone().unwrap_or_else(|| result_path(&format!("sustained-{}", args.device.kind())));
    results::write(&path, &file)?;
    println!("wrote {}", path.display());
    let title = format!("{model_id} {} for {minutes} min on {}", args.precision, args.device.kind());
    results::sustained_plot::write(&file.sustained, &title, &path.with_extension(""))?;
    Ok(())
}

fn print_table(s: &results::Sustained) {
    println!("| minute | p50 ms | p99 ms | inferences/s | max temp C | CPU MHz (mean) | energy J |");
    println!("|-------:|-------:|-------:|-------------:|-----------:|---------------:|---------:|");
    for m in &s.per_minute {
        println!(
            "| {:>6} | {:>6.2} | {:>6.2} | {:>12.1} | {:>10} | {:>14} | {:>8} |",
            m.minute,
            m.p50_ms,
            m.p99_ms,
            m.inferences_per_s,
            cell(m.thermal.max_temp_c, 1),
            cell(m.thermal.cpu_mhz_mean, 0),
            cell(m.energy_j, 2)
        );
    }
    println!("slowdown, last minute vs first (p50): {:.3}x", s.slowdown_last_vs_first);
    println!("thermal: {}", s.thermal_source);
    match s.energy_j_per_inference {
        Some(j) => println!("energy per inference above idle: {:.4} J ({})", j, s.energy_source),
        None => println!("energy per inference: null ({})", s.energy_source),
    }
}

/// `HH:MM` of a wall-clock time, UTC.
fn clock(at: std::time::SystemTime) -> String {
    let secs = at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("{:02}:{:02}", secs / 3600 % 24, secs / 60 % 60)
}
