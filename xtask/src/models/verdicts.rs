//! `cargo xtask models verdicts`: every precision variant of a model judged against FP32 on the model's test set
//! (which nothing was tuned on), on each numerics class, through the SDK's own runner: the host (x86-64) and ARM64
//! under qemu (the device path; a phone by `--devices android`). Each verdict is recorded in the model's bundle
//! under its class, where `Precision::Auto` and explicit precisions obey it, and all are written as one JSON file.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use openautoglm::bundle::{BundleManifest, Verdict};
use serde::{Deserialize, Serialize};

use super::held_out::shared_sources;
use super::{entry, materialize_recipe, prepared_variants, variants_dir};
use crate::devices::{self, Device};
use crate::results::{self, VariantIndex};
use crate::{cache, cmd, python};

#[derive(clap::Args)]
pub struct Args {
    /// Models to judge (default: every FP32 model of the manifest with a test set).
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Where to run: host, qemu-arm64, android[:SERIAL] (each is one numerics class).
    #[arg(long, value_delimiter = ',', default_values = ["host", "qemu-arm64"])]
    pub devices: Vec<Device>,
    /// Writes the verdicts here (default: benchmarks/results/verdicts.json).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The result file: `verdicts` (one row per model x variant x class) and `shared_sources` (must be 0).
#[derive(Serialize, Deserialize)]
pub struct VerdictsFile {
    pub schema: u32,
    pub verdicts: Vec<VerdictRow>,
    pub shared_sources: usize,
}

#[derive(Serialize, Deserialize, Clone)]
pub struct VerdictRow {
    pub model: String,
    pub variant: String,
    pub class: String,
    pub set: String,
    pub inputs: u32,
    pub passed: bool,
    pub worst_score: Option<f64>,
    pub threshold: Option<f64>,
    /// Where it ran: `host`, `qemu-arm64`, ...
    pub device: String,
}

/// What tools/models/verdict.py prints.
#[derive(Deserialize)]
struct Judged {
    passed: bool,
    worst_score: Option<f64>,
    threshold: Option<f64>,
    inputs: u32,
}

pub fn run(args: Args) -> Result<()> {
    let models = if args.models.is_empty() { judged_models()? } else { args.models.clone() };
    let mut rows = Vec::new();
    for model in &models {
        rows.extend(judge_model(model, &args.devices)?);
    }
    let shared = shared_sources(&models)?;
    print_table(&rows, shared);
    let path = args.json.unwrap_or_else(|| cmd::repo_root().join("benchmarks/results/verdicts.json"));
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    results::write(&path, &VerdictsFile { schema: 1, verdicts: rows, shared_sources: shared })?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Every FP32 model from a registry package that has held-out sets.
fn judged_models() -> Result<Vec<String>> {
    Ok(super::manifest()?
        .models
        .into_iter()
        .filter(|m| m.package.is_some() && m.precision == "fp32" && m.held_out.is_some())
        .map(|m| m.id)
        .collect())
}

fn judge_model(model: &str, devices: &[Device]) -> Result<Vec<VerdictRow>> {
    let names = prepared_variants(model)?;
    let dir = variants_dir(model);
    let index: VariantIndex = results::read(&dir.join("variants.json"))?;
    let files: Vec<(String, String)> =
        names.iter().filter_map(|n| Some((n.clone(), index.variants.get(n)?.file.clone()?))).collect();
    let set = write_test_set(model, &dir)?;
    let task = entry(model)?.task.unwrap_or_else(|| "generic".into());
    let mut rows = Vec::new();
    for device in devices {
        let class = device.numerics_class();
        let mut deploy: Vec<(String, PathBuf)> = files.iter().map(|(_, f)| (f.clone(), dir.join(f))).collect();
        deploy.push(("test-set".into(), set.clone()));
        let deployed = devices::deploy_files(device, &deploy)?;
        let threads = if device.emulated() { 2 } else { 0 };
        let mut dumps = Vec::new();
        for (name, file) in &files {
            let bar = cache::spinner(format!(
                "{model} {name}: test set on {}{}",
                device.kind(),
                if device.emulated() { " (emulated: slow)" } else { "" }
            ));
            let dumped = deployed.run_verdict(file, "test-set/set.json", threads);
            bar.finish_and_clear();
            // Keep each variant's outputs beside the bundle: the next deploy clears the staging directory.
            let kept = dir.join("verdicts").join(&class).join(name);
            let _ = fs::remove_dir_all(&kept);
            fs::create_dir_all(kept.parent().expect("has a parent"))?;
            cmd::run(std::process::Command::new("cp").args(["-a", "-T"]).arg(dumped?).arg(&kept))?;
            dumps.push((name.clone(), kept));
        }
        let reference = &dumps.iter().find(|(n, _)| n == "fp32").context("no FP32 variant to judge against")?.1;
        for (name, dump) in &dumps {
            let judged = judge(&task, reference, dump)?;
            println!(
                "{model:<22} {name:<13} {class:<18} {} (worst {} vs {}, {} inputs)",
                if judged.passed { "passed" } else { "FAILED" },
                judged.worst_score.map_or("non-finite".into(), |s| format!("{s:.4}")),
                judged.threshold.unwrap_or_default(),
                judged.inputs
            );
            rows.push(VerdictRow {
                model: model.to_owned(),
                variant: name.clone(),
                class: class.clone(),
                set: "test".into(),
                inputs: judged.inputs,
                passed: judged.passed,
                worst_score: judged.worst_score,
                threshold: judged.threshold,
                device: device.kind().into(),
            });
        }
    }
    record(&dir, &files, &rows)?;
    Ok(rows)
}

/// The model's test set as runner recipes (raw input files), written by tools/models/test_set.py.
fn write_test_set(model: &str, dir: &Path) -> Result<PathBuf> {
    let recipe = materialize_recipe(model, dir)?;
    let held_out = super::held_out::materialize(model, dir)?;
    let out = dir.join("test-set");
    let _ = fs::remove_dir_all(&out);
    let python = python::python()?;
    cmd::capture(
        python::script(&python, &python::tools_dir().join("test_set.py"))
            .arg("--held-out")
            .arg(held_out.unwrap_or_default())
            .arg("--recipe")
            .arg(&recipe)
            .args(["--set", "test", "--out"])
            .arg(&out),
    )?;
    Ok(out)
}

fn judge(task: &str, reference: &Path, variant: &Path) -> Result<Judged> {
    let python = python::python()?;
    let out = cmd::capture(
        python::script(&python, &python::tools_dir().join("verdict.py"))
            .args(["--task", task, "--reference"])
            .arg(reference)
            .arg("--variant")
            .arg(variant),
    )?;
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).context("verdict.py printed no verdict")
}

/// Each class's verdict into the bundle's variant, keeping `accurate` equal to the x86-64 verdict for older readers.
fn record(dir: &Path, files: &[(String, String)], rows: &[VerdictRow]) -> Result<()> {
    let path = dir.join("bundle.json");
    let mut bundle: BundleManifest = results::read(&path)?;
    for variant in &mut bundle.variants {
        let Some((name, _)) = files.iter().find(|(_, f)| *f == variant.file) else { continue };
        for row in rows.iter().filter(|r| &r.variant == name) {
            let verdict = Verdict {
                passed: row.passed,
                set: Some(row.set.clone()),
                inputs: Some(row.inputs),
                worst_score: row.worst_score,
                threshold: row.threshold,
                other: [("source".to_owned(), format!("cargo xtask models verdicts ({})", row.device).into())].into(),
            };
            if row.class == openautoglm::bundle::LEGACY_VERDICT_CLASS {
                variant.accurate = row.passed;
            }
            variant.verdicts.insert(row.class.clone(), verdict);
        }
    }
    fs::write(&path, serde_json::to_string_pretty(&bundle)?)?;
    Ok(())
}

fn print_table(rows: &[VerdictRow], shared: usize) {
    let classes: Vec<&str> = {
        let mut c: Vec<&str> = rows.iter().map(|r| r.class.as_str()).collect();
        c.dedup();
        c.sort_unstable();
        c.dedup();
        c
    };
    print!("\n{:<22} {:<13}", "model", "variant");
    for class in &classes {
        print!(" {class:>24}");
    }
    println!();
    let mut keys: Vec<(&str, &str)> = rows.iter().map(|r| (r.model.as_str(), r.variant.as_str())).collect();
    keys.dedup();
    for (model, variant) in keys {
        print!("{model:<22} {variant:<13}");
        for class in &classes {
            let cell = rows.iter().find(|r| r.model == model && r.variant == variant && r.class == *class).map_or(
                "-".to_owned(),
                |r| {
                    format!(
                        "{} {}",
                        if r.passed { "pass" } else { "FAIL" },
                        r.worst_score.map_or("non-finite".into(), |s| format!("{s:.4}"))
                    )
                },
            );
            print!(" {cell:>24}");
        }
        println!();
    }
    println!("sources in more than one set of a model: {shared}");
}
