//! The cascade pairs of `benchmarks/cascades.json`: their models and labelled lines, and calibration (both models
//! measured on the calibration lines, and the gate threshold that meets the target at the lowest mean latency
//! written into a manifest, `cascade.json`, that `Cascade::from_manifest` loads, next to the pair's models and label
//! files). The `cascade` subcommand, `bench --suite adaptive` and `test` use it.

use std::fs;
use std::path::PathBuf;

use anyhow::Result;
use openautoglm::cascade::{CascadeManifest, CascadeStage, CascadeTarget, GateSpec};

pub mod calibrate;
pub mod lines;
pub mod pair;

use crate::{cache, runner};

/// The default target: accuracy within one point of the main model's.
pub const DEFAULT_MARGIN: f64 = 0.01;

/// The pair's calibrated manifest, made now if missing.
pub fn calibrated(pair_id: &str) -> Result<PathBuf> {
    let pair = pair::pair(pair_id)?;
    let manifest = pair::dir(&pair).join("cascade.json");
    if manifest.exists() {
        return Ok(manifest);
    }
    calibrate(pair_id, CascadeTarget::AccuracyMargin(DEFAULT_MARGIN), 3)
}

/// Calibrates the pair for `target` (`rounds` timed runs of each model per line) and writes its manifest.
pub fn calibrate(pair_id: &str, target: CascadeTarget, rounds: usize) -> Result<PathBuf> {
    let pair = pair::pair(pair_id)?;
    let files = pair::files(&pair)?;
    let lines_path = lines::labelled(&pair, lines::Set::Calibration)?;
    let truths = truths(&lines_path)?;
    let binary = runner::build(None, &[])?;
    let out = pair::dir(&pair).join("profile-calibration.json");
    let mut command = std::process::Command::new(&binary);
    command
        .args(["--cascade", "--profile", "--rounds", &rounds.to_string()])
        .args(["--gate", serde_json::to_value(pair.gate.confidence)?.as_str().unwrap_or_default()])
        .arg("--fast")
        .arg(&files.fast_model)
        .arg("--main")
        .arg(&files.main_model)
        .arg("--fast-labels")
        .arg(&files.fast_labels)
        .arg("--main-labels")
        .arg(&files.main_labels)
        .arg("--lines")
        .arg(&lines_path)
        .arg("--ort")
        .arg(cache::host_onnxruntime()?)
        .arg("--out")
        .arg(&out);
    runner::run_with_progress(&mut command, &format!("{}: both models on each calibration line", pair.id))?;
    let profile: crate::results::CascadeProfile = crate::results::read(&out)?;
    let (chosen, rows) = calibrate::choose(&profile.lines, &truths, target)?;
    let main = calibrate::row(&profile.lines, &truths, f32::INFINITY); // every line escalated: the main model's accuracy
    let table = calibrate::thinned(&rows, &chosen);
    let main_ms = profile.lines.iter().map(|l| l.main_ms).sum::<f64>() / truths.len().max(1) as f64;
    println!(
        "{}: {} calibration lines; main model alone: accuracy {:.3}, mean {main_ms:.2} ms",
        pair.title,
        truths.len(),
        main.accuracy
    );
    println!("| threshold | escalated | accuracy | mean ms | p99 ms |");
    println!("|---:|---:|---:|---:|---:|");
    for r in &table {
        let mark = if *r == chosen { " (chosen)" } else { "" };
        println!(
            "| {:.4}{mark} | {:.1}% | {:.3} | {:.2} | {:.2} |",
            r.threshold,
            r.escalation_rate * 100.0,
            r.accuracy,
            r.mean_ms,
            r.p99_ms
        );
    }
    let manifest = CascadeManifest {
        fast: CascadeStage { model: "fast.onnx".into(), labels: Some("fast_labels.json".into()) },
        main: CascadeStage { model: "main.onnx".into(), labels: Some("main_labels.json".into()) },
        gate: GateSpec {
            confidence: pair.gate.confidence,
            output: pair.gate.output.clone(),
            threshold: chosen.threshold,
            logits: false,
        },
        device_class: crate::devices::Device::Host.device_class(),
        target: Some(target),
        main_accuracy: Some(main.accuracy),
        inputs: Some(truths.len()),
        table,
    };
    let path = pair::dir(&pair).join("cascade.json");
    fs::write(&path, serde_json::to_string_pretty(&manifest)?)?;
    Ok(path)
}

/// The true texts of a labelled set.
pub fn truths(lines: &std::path::Path) -> Result<Vec<String>> {
    let parsed: bench_schema::cascade::TextLines = crate::results::read(lines)?;
    Ok(parsed.texts)
}
