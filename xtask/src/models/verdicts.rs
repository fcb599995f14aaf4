//! `cargo xtask models verdicts`: every precision variant of a model judged against FP32 on the model's test set
//! (which nothing was tuned on), on each numerics class, through the SDK's own runner: the host (x86-64) and ARM64
//! under qemu (the device path; a phone by `--devices android`). Each verdict is recorded in the model's bundle
//! under its class, where `Precision::Auto` and explicit precisions obey it, and all are written as one JSON file.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
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
    /// Where to run: host, qemu-arm64, android[:SERIAL], openvino (OpenVINO's plugin on an Intel CPU, emulated
    /// where the host's is not; each is one numerics class).
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
    /// Why it has no score: the variant did not load or run on this class (a failed verdict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
    // The class searches' selection-set trials were printed as they ran; the file holds the test-set verdicts.
    rows.retain(|r| r.set == "test");
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
    let mut files: Vec<(String, String)> =
        names.iter().filter_map(|n| Some((n.clone(), index.variants.get(n)?.file.clone()?))).collect();
    let recipe = materialize_recipe(model, &dir)?;
    let held_out = super::held_out::materialize(model, &dir)?.unwrap_or_default();
    let test = write_set(&recipe, &held_out, "test", &dir)?;
    let task = entry(model)?.task.unwrap_or_else(|| "generic".into());
    let mut rows = Vec::new();
    for device in devices {
        let models: Vec<(String, PathBuf)> = files.iter().map(|(n, f)| (n.clone(), dir.join(f))).collect();
        let dumps = run_set(model, device, &models, &test, &dir)?;
        rows.extend(judge_all(model, &task, device, &dumps, "test")?);
    }
    // A mixed variant that passes on the host but fails on another CPU class: search again there. (Not for a plugin's
    // class: its variants would be named for the CPU architecture, which the plugin shares with the host.)
    let host = Device::Host.numerics_class();
    for device in devices.iter().filter(|d| d.numerics_class() != host && **d != Device::OpenVino) {
        let class = device.numerics_class();
        for name in ["fp16-mixed", "int8-mixed"] {
            let passed_on = |c: &str| rows.iter().any(|r| r.variant == name && r.class == c && r.passed);
            let failed_here = rows.iter().any(|r| r.variant == name && r.class == class && !r.passed);
            if !(passed_on(&host) && failed_here) {
                continue;
            }
            let setup = ClassSearch { model, task: &task, dir: &dir, recipe: &recipe, held_out: &held_out };
            if let Some((variant, file, found)) = setup.search(name, device, devices, &test)? {
                files.push((variant, file));
                rows.extend(found);
            }
        }
    }
    record(&dir, &files, &rows)?;
    Ok(rows)
}

/// Runs each of `models` (name, file) on every input of the set `set` on `device`; returns each one's dumped
/// outputs, kept beside the bundle (`verdicts/<class>/<set>/<name>`: the next deploy clears the staging directory).
fn run_set(
    model: &str,
    device: &Device,
    models: &[(String, PathBuf)],
    set: &Path,
    dir: &Path,
) -> Result<Vec<(String, Dumped)>> {
    let class = device.numerics_class();
    let set_name = set.file_name().and_then(|n| n.to_str()).unwrap_or("set").to_owned();
    let mut deploy: Vec<(String, PathBuf)> = models
        .iter()
        .map(|(_, path)| (path.file_name().expect("a file").to_string_lossy().into_owned(), path.clone()))
        .collect();
    deploy.push((set_name.clone(), set.to_path_buf()));
    let deployed = devices::deploy_files(device, &deploy)?;
    let threads = if device.emulated() { 2 } else { 0 };
    let mut dumps = Vec::new();
    for ((name, _), (file, _)) in models.iter().zip(&deploy) {
        let bar = cache::spinner(format!(
            "{model} {name}: {set_name} on {}{}",
            device.kind(),
            if device.emulated() { " (emulated: slow)" } else { "" }
        ));
        let dumped = deployed.run_verdict(file, &format!("{set_name}/set.json"), threads);
        bar.finish_and_clear();
        let kept = dir.join("verdicts").join(&class).join(&set_name).join(name);
        let _ = fs::remove_dir_all(&kept);
        match dumped {
            Ok(dumped) => {
                fs::create_dir_all(kept.parent().expect("has a parent"))?;
                cmd::run(std::process::Command::new("cp").args(["-a", "-T"]).arg(dumped).arg(&kept))?;
                dumps.push((name.clone(), Ok(kept)));
            }
            // A variant that does not load or run on this class fails here, and the others are still judged.
            Err(e) => dumps.push((name.clone(), Err(crate::runner::message(&e.to_string())))),
        }
    }
    Ok(dumps)
}

/// A variant's outputs on a set, or why it has none.
type Dumped = std::result::Result<PathBuf, String>;

/// Each dump against FP32's (`fp32` among `dumps`, or kept from an earlier run on the same class and set).
fn judge_all(
    model: &str,
    task: &str,
    device: &Device,
    dumps: &[(String, Dumped)],
    set: &str,
) -> Result<Vec<VerdictRow>> {
    let class = device.numerics_class();
    let set_dir = dumps.first().context("nothing ran")?;
    let reference = match dumps.iter().find(|(n, _)| n == "fp32") {
        Some((_, Ok(dump))) => dump.clone(),
        Some((_, Err(e))) => bail!("{model}: FP32 did not run on {class}: {e}"),
        None => match &set_dir.1 {
            Ok(dump) => dump.with_file_name("fp32"),
            Err(_) => return Ok(vec![failed_row(model, &set_dir.0, device, set, set_dir.1.as_ref().unwrap_err())]),
        },
    };
    let mut rows = Vec::new();
    for (name, dump) in dumps {
        let dump = match dump {
            Ok(dump) => dump,
            Err(e) => {
                println!("{model:<22} {name:<18} {class:<18} {set:<9} FAILED (did not run: {e})");
                rows.push(failed_row(model, name, device, set, e));
                continue;
            }
        };
        let judged = judge(task, &reference, dump)?;
        println!(
            "{model:<22} {name:<18} {class:<18} {set:<9} {} (worst {} vs {}, {} inputs)",
            if judged.passed { "passed" } else { "FAILED" },
            judged.worst_score.map_or("non-finite".into(), |s| format!("{s:.4}")),
            judged.threshold.unwrap_or_default(),
            judged.inputs
        );
        rows.push(VerdictRow {
            model: model.to_owned(),
            variant: name.clone(),
            class: class.clone(),
            set: set.into(),
            inputs: judged.inputs,
            passed: judged.passed,
            worst_score: judged.worst_score,
            threshold: judged.threshold,
            device: device.kind().into(),
            error: None,
        });
    }
    Ok(rows)
}

/// The verdict on a variant that did not load or run on this class: failed, with the reason.
fn failed_row(model: &str, name: &str, device: &Device, set: &str, error: &str) -> VerdictRow {
    VerdictRow {
        model: model.to_owned(),
        variant: name.to_owned(),
        class: device.numerics_class(),
        set: set.into(),
        inputs: 0,
        passed: false,
        worst_score: None,
        threshold: None,
        device: device.kind().into(),
        error: Some(error.to_owned()),
    }
}

/// The search for a mixed variant that passes on another class than the host's (tools/models/class_search.py
/// makes the candidates: the host's FP32 nodes plus ever more of the most sensitive blocks).
struct ClassSearch<'a> {
    model: &'a str,
    task: &'a str,
    dir: &'a Path,
    recipe: &'a Path,
    held_out: &'a Path,
}

impl ClassSearch<'_> {
    /// The first candidate that passes on `device`'s selection set, judged then on the test set on every device:
    /// its variant name (`<name>-<arch>`), file and test rows; `None` when no candidate passed.
    fn search(
        &self,
        name: &str,
        device: &Device,
        devices: &[Device],
        test: &Path,
    ) -> Result<Option<(String, String, Vec<VerdictRow>)>> {
        let out = self.dir.join(format!("candidates-{name}"));
        let _ = fs::remove_dir_all(&out);
        let python = python::python()?;
        let bar = cache::spinner(format!("{} {name}: candidates for {}", self.model, device.numerics_class()));
        let made = cmd::capture(
            python::script(&python, &python::tools_dir().join("class_search.py"))
                .arg("--variants")
                .arg(self.dir.join("variants.json"))
                .args(["--name", name, "--fp32"])
                .arg(self.dir.join("fp32.onnx"))
                .arg("--recipe")
                .arg(self.recipe)
                .arg("--held-out")
                .arg(self.held_out)
                .arg("--out")
                .arg(&out),
        );
        bar.finish_and_clear();
        made?;
        let candidates: Vec<Candidate> = results::read(&out.join("candidates.json"))?;
        let selection = write_set(self.recipe, self.held_out, "selection", self.dir)?;
        let fp32 = vec![("fp32".to_owned(), self.dir.join("fp32.onnx"))];
        run_set(self.model, device, &fp32, &selection, self.dir)?;
        // Each candidate keeps more of the graph at FP32 than the one before, so passing is (nearly) monotone: a
        // bisection finds the first that passes in log2(n) device runs (each one a set under emulation: minutes).
        let found = first_passing(candidates.len(), |i| {
            let candidate = &candidates[i];
            let label = format!("{name}+{}", candidate.nodes_at_fp32);
            let one = vec![(label, out.join(&candidate.file))];
            let dumps = run_set(self.model, device, &one, &selection, self.dir)?;
            Ok(judge_all(self.model, self.task, device, &dumps, "selection")?.remove(0).passed)
        })?;
        if let Some(i) = found {
            let candidate = &candidates[i];
            let variant = format!("{name}-{}", device.arch());
            let file = format!("{variant}.onnx");
            fs::copy(out.join(&candidate.file), self.dir.join(&file))?;
            self.add_to_bundle(name, &file, &candidate.kept_fp32)?;
            let mut rows = Vec::new();
            for device in devices {
                let dumps = run_set(self.model, device, &[(variant.clone(), self.dir.join(&file))], test, self.dir)?;
                rows.extend(judge_all(self.model, self.task, device, &dumps, "test")?);
            }
            return Ok(Some((variant, file, rows)));
        }
        println!("{}: no {name} candidate passed on {}", self.model, device.numerics_class());
        Ok(None)
    }

    /// The found variant as a bundle entry of the same precision (its verdicts follow in `record`).
    fn add_to_bundle(&self, precision: &str, file: &str, kept: &[String]) -> Result<()> {
        let path = self.dir.join("bundle.json");
        let mut bundle: BundleManifest = results::read(&path)?;
        bundle.variants.retain(|v| v.file != file);
        let bytes = fs::read(self.dir.join(file))?;
        let template = bundle.variants.iter().find(|v| v.precision == precision).cloned();
        let mut variant = template.context("the host's mixed variant is not in the bundle")?;
        variant.file = file.to_owned();
        variant.size_bytes = Some(bytes.len() as u64);
        variant.accurate = false;
        variant.verdicts.clear();
        variant.measured = None;
        variant.other.retain(|k, _| k == "quantization");
        variant.other.insert("sha256".into(), cache::sha256_bytes(&bytes).into());
        variant.other.insert("kept_fp32".into(), kept.into());
        bundle.variants.push(variant);
        fs::write(&path, serde_json::to_string_pretty(&bundle)?)?;
        Ok(())
    }
}

/// The lowest index in `0..count` for which `passes` holds, assuming that once one passes every later one does
/// (bisection: about log2(count) calls); `None` when the last fails.
fn first_passing(count: usize, mut passes: impl FnMut(usize) -> Result<bool>) -> Result<Option<usize>> {
    let (mut low, mut high) = (0, count);
    let mut found = None;
    while low < high {
        let middle = low + (high - low) / 2;
        if passes(middle)? {
            found = Some(middle);
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    Ok(found)
}

#[derive(Deserialize)]
struct Candidate {
    file: String,
    nodes_at_fp32: usize,
    kept_fp32: Vec<String>,
}

/// One held-out set of the model as runner recipes (raw input files), written by tools/models/test_set.py.
fn write_set(recipe: &Path, held_out: &Path, set: &str, dir: &Path) -> Result<PathBuf> {
    let out = dir.join(format!("{set}-set"));
    let _ = fs::remove_dir_all(&out);
    let python = python::python()?;
    cmd::capture(
        python::script(&python, &python::tools_dir().join("test_set.py"))
            .arg("--held-out")
            .arg(held_out)
            .arg("--recipe")
            .arg(recipe)
            .args(["--set", set, "--out"])
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
        for row in rows.iter().filter(|r| &r.variant == name && r.set == "test") {
            let mut other: std::collections::BTreeMap<String, serde_json::Value> =
                [("source".to_owned(), format!("cargo xtask models verdicts ({})", row.device).into())].into();
            if let Some(error) = &row.error {
                other.insert("error".into(), error.clone().into());
            }
            let verdict = Verdict {
                passed: row.passed,
                set: Some(row.set.clone()),
                inputs: Some(row.inputs),
                worst_score: row.worst_score,
                threshold: row.threshold,
                other,
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
    let mut classes: Vec<&str> = rows.iter().map(|r| r.class.as_str()).collect();
    classes.sort_unstable();
    classes.dedup();
    print!("\n{:<22} {:<13}", "model", "variant");
    for class in &classes {
        print!(" {class:>24}");
    }
    println!();
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for key in rows.iter().map(|r| (r.model.as_str(), r.variant.as_str())) {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    for (model, variant) in keys {
        print!("{model:<22} {variant:<13}");
        for class in &classes {
            let cell = rows.iter().find(|r| r.model == model && r.variant == variant && r.class == *class).map_or(
                "-".to_owned(),
                |r| {
                    format!(
                        "{} {}",
                        if r.passed { "pass" } else { "FAIL" },
                        match (&r.error, r.worst_score) {
                            (Some(_), _) => "did not run".to_owned(),
                            (None, Some(s)) => format!("{s:.4}"),
                            (None, None) => "non-finite".to_owned(),
                        }
                    )
                },
            );
            print!(" {cell:>24}");
        }
        println!();
    }
    println!("sources in more than one set of a model: {shared}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bisection_finds_the_first_passing_candidate_in_few_runs() {
        for count in 0..40 {
            for first in 0..=count {
                let mut runs = 0;
                let found = first_passing(count, |i| {
                    runs += 1;
                    Ok(i >= first)
                })
                .unwrap();
                assert_eq!(found, (first < count).then_some(first), "count {count}, first {first}");
                assert!(runs <= 6, "{runs} runs for {count} candidates");
            }
        }
    }
}
