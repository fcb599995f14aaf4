//! Precision variants of the FP32 models (tools/models/prepare_variants.py, in the pinned venv), each with its
//! accuracy against FP32: a model bundle per model, remade when the model, its recipe or the maker changes.

use std::fs;
use std::path::PathBuf;

use super::{entry, fetch, materialize_recipe};
use crate::results::{self, Accuracy, VariantIndex};
use crate::{cache, cmd, python};
use anyhow::{Context, Result, bail};

/// Where the variants of `id` live: a model bundle (bundle.json), as `Engine::from_bundle` reads it.
pub fn variants_dir(id: &str) -> PathBuf {
    bundles_dir().join(id)
}

pub fn bundles_dir() -> PathBuf {
    cache::dir().join("variants")
}

/// The model file for `id` at `precision` (`native` is the manifest's own file); variants need `models prepare`.
pub fn model_file(id: &str, precision: &str) -> Result<PathBuf> {
    if precision == "native" {
        return fetch(id);
    }
    let index_file = variants_dir(id).join("variants.json");
    if !index_file.exists() {
        bail!("no variants of {id} yet: run `cargo xtask models prepare {id}`");
    }
    let index: VariantIndex = results::read(&index_file)?;
    let variant = index.variants.get(precision).with_context(|| format!("unknown precision `{precision}` for {id}"))?;
    if let Some(error) = &variant.error {
        bail!("{id} has no {precision} variant: {error}");
    }
    let file = variant.file.as_deref().with_context(|| format!("unknown precision `{precision}` for {id}"))?;
    Ok(variants_dir(id).join(file))
}

/// The key under which variants of `id` were made: the model's sha256, the recipe and the maker script. Variants
/// made under another key are made again.
fn variants_stamp(id: &str) -> Result<String> {
    let entry = entry(id)?;
    // The recipe module is part of the maker.
    let script = [
        fs::read(python::tools_dir().join("prepare_variants.py"))?,
        fs::read(python::tools_dir().join("recipe_inputs.py"))?,
        fs::read(python::tools_dir().join("held_out.py"))?,
        fs::read(python::tools_dir().join("mixed_precision.py"))?,
        fs::read(python::tools_dir().join("verdict.py"))?,
    ]
    .concat();
    let key =
        format!("{:?} {:?} {} {}", entry.sha256, entry.task, recipe_key(&entry)?, String::from_utf8_lossy(&script));
    Ok(cache::sha256_bytes(key.as_bytes()))
}

/// The entry's input recipe and held-out sets as compact JSON with sorted keys: the text the stamp has always
/// hashed (the typed form writes back exactly the manifest's JSON; a test holds that), so typing the manifest
/// did not remake any variant.
fn recipe_key(entry: &super::ModelEntry) -> Result<String> {
    let inputs = serde_json::to_value(&entry.inputs)?;
    let held_out = serde_json::to_value(&entry.held_out)?;
    Ok(format!("{inputs} {held_out}"))
}

/// The precision variants of `id` that exist, making them first if they were never made (or made differently).
pub fn prepared_variants(id: &str) -> Result<Vec<String>> {
    let index_file = variants_dir(id).join("variants.json");
    let current = results::read::<VariantIndex>(&index_file).ok();
    let stamp = variants_stamp(id)?;
    if current.is_none_or(|v| v.stamp.as_deref() != Some(stamp.as_str())) {
        prepare(id)?;
    }
    let index: VariantIndex = results::read(&index_file)?;
    Ok(index.variants.into_iter().filter(|(_, v)| v.error.is_none()).map(|(name, _)| name).collect())
}

/// What `models prepare` measured for `precision` of `id` against FP32 (null when there is no FP32 reference).
pub fn variant_accuracy(id: &str, precision: &str) -> Result<Option<Accuracy>> {
    let key = if precision == "native" { "fp32" } else { precision };
    let file = variants_dir(id).join("variants.json");
    if !file.exists() {
        return Ok(None);
    }
    let index: VariantIndex = results::read(&file)?;
    Ok(index.variants.get(key).filter(|v| v.error.is_none()).map(|v| v.accuracy.clone()))
}

/// Makes the precision variants of `id` (tools/models/prepare_variants.py) and prints them with their accuracy.
pub(super) fn prepare(id: &str) -> Result<()> {
    let model = fetch(id)?;
    let dir = variants_dir(id);
    fs::create_dir_all(&dir)?;
    let recipe = materialize_recipe(id, &dir)?;
    let held_out = super::held_out::materialize(id, &dir)?;
    let python = python::python()?;
    let spinner = cache::spinner(format!("{id}: making FP16, INT8, mixed and ORT-format variants"));
    let made = cmd::capture(
        python::script(&python, &python::tools_dir().join("prepare_variants.py"))
            .arg("--model")
            .arg(&model)
            .arg("--recipe")
            .arg(&recipe)
            .arg("--held-out")
            .arg(held_out.unwrap_or_default())
            .arg("--out")
            .arg(&dir)
            .args(["--task", entry(id)?.task.as_deref().unwrap_or("generic")])
            .args(["--id", id])
            .args(["--stamp", &variants_stamp(id)?]),
    );
    spinner.finish_and_clear();
    made?;
    let index: VariantIndex = results::read(&dir.join("variants.json"))?;
    println!("{id}");
    for (name, v) in &index.variants {
        let num = crate::results::report::cell;
        let a = &v.accuracy;
        match &v.error {
            Some(error) => println!("  {name:<13} not made: {error}"),
            None => println!(
                "  {name:<13} {:>7.2} MB  {:>8} ms  cosine {}  max|err| {}  top-1 {}{}{}",
                v.size_bytes.unwrap_or(0.0) / 1e6,
                num(v.latency_ms, 3),
                num(a.cosine_similarity, 5),
                num(a.max_abs_error, 4),
                num(a.top1_agreement, 3),
                a.task_measure(),
                v.kept_fp32.as_ref().map_or(String::new(), |k| format!("  ({} nodes kept at FP32)", k.len()))
            ),
        }
    }
    Ok(())
}

/// Records `mean_ms` for `precision` of `id` under `class` in its bundle.json; false when the bundle has no such
/// variant (the model's own file, `native`, is not in a bundle).
pub fn record_latency(id: &str, precision: &str, class: &str, mean_ms: f64) -> Result<bool> {
    let path = variants_dir(id).join("bundle.json");
    if !path.exists() {
        return Ok(false);
    }
    let mut bundle: openautoglm::bundle::BundleManifest = results::read(&path)?;
    // A FP32 model benchmarked as itself (`native`) is the bundle's FP32 variant.
    let file = format!("{}.onnx", if precision == "native" { "fp32" } else { precision });
    let Some(variant) = bundle.variants.iter_mut().find(|v| v.file == file) else { return Ok(false) };
    let measured = openautoglm::Measured {
        mean_ms: Some(mean_ms),
        tokens_per_s: None,
        source: Some("cargo xtask bench --record".into()),
    };
    variant.measured.get_or_insert_default().insert(class.to_owned(), measured);
    fs::write(&path, serde_json::to_string_pretty(&bundle)?)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every model's recipe and held-out sets, typed, write back the manifest's own JSON: nothing in the manifest
    /// is dropped on reading, and the variant stamps hash what they hashed before the manifest was typed.
    #[test]
    fn the_typed_manifest_writes_back_its_own_json() {
        let raw: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(super::super::manifest_path()).unwrap()).unwrap();
        for model in raw["models"].as_array().unwrap() {
            let id = model["id"].as_str().unwrap();
            let entry = entry(id).unwrap();
            let untyped = format!("{} {}", model["inputs"], model["held_out"]);
            assert_eq!(recipe_key(&entry).unwrap(), untyped, "{id}");
        }
    }
}
