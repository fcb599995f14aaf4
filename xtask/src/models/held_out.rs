//! Calibration and validation sets of real inputs (`held_out` of a model in benchmarks/models.json), so a variant
//! is never judged on the inputs it was calibrated on. Images are decoded, cropped, resized and normalized here as
//! the model's recipe says (the same code as the recipe's own image); texts and audio clips are passed on with
//! their files for tools/models/held_out.py to tokenize or cut into the model's window.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::{fetch_asset, image_tensor, manifest_path};

/// Writes `dir/held_out.json` (`{"calibration": [sample...], "validation": [sample...]}`, a sample being the model's
/// inputs in recipe form) and returns it; `None` when the model has no `held_out` sets.
pub fn materialize(model: &str, dir: &Path) -> Result<Option<PathBuf>> {
    let manifest: Value = serde_json::from_str(&fs::read_to_string(manifest_path())?)?;
    let entry = manifest["models"].as_array().and_then(|m| m.iter().find(|m| m["id"] == model)).context("no model")?;
    let Some(held_out) = entry.get("held_out") else { return Ok(None) };
    let recipe = entry["inputs"].as_array().context("the model has no input recipe")?;
    let tokenizer = held_out["tokenizer"].as_str().map(fetch_asset).transpose()?;
    let mut sets = serde_json::Map::new();
    for set in ["calibration", "validation"] {
        let samples = held_out[set].as_array().with_context(|| format!("{model}: held_out has no {set} set"))?;
        let mut made = Vec::new();
        for (i, sample) in samples.iter().enumerate() {
            made.push(sample_inputs(recipe, sample, dir, &format!("{set}-{i}"), tokenizer.as_deref(), held_out)?);
        }
        sets.insert(set.to_owned(), Value::Array(made));
    }
    let path = dir.join("held_out.json");
    fs::write(&path, serde_json::to_string(&Value::Object(sets))?)?;
    Ok(Some(path))
}

/// One sample: the recipe's inputs with the image, text or audio of `sample` in place of the recipe's own.
fn sample_inputs(
    recipe: &[Value],
    sample: &Value,
    dir: &Path,
    tag: &str,
    tokenizer: Option<&Path>,
    held_out: &Value,
) -> Result<Value> {
    let mut inputs = Vec::new();
    for spec in recipe {
        let name = spec["name"].as_str().context("recipe input without a name")?;
        let input = if let (Some(image), Some(asset)) = (spec.get("image"), sample["image"].as_str()) {
            let mut spec = spec.clone();
            spec["image"] = json!({ "asset": asset, "crop": sample["crop"] });
            for key in ["scale", "mean", "std", "bgr"] {
                spec["image"][key] = image[key].clone();
            }
            let file = format!("held_out/{tag}-{}.f32", name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
            fs::create_dir_all(dir.join("held_out"))?;
            fs::write(dir.join(&file), image_tensor(&spec)?)?;
            json!({ "name": name, "type": "f32", "shape": spec["shape"], "file": file })
        } else if let Some(text) = sample["text"].as_str() {
            let tokenizer = tokenizer.context("text samples need a `tokenizer` asset")?;
            json!({ "name": name, "type": spec["type"], "shape": spec["shape"], "text": text, "tokenizer": tokenizer })
        } else if let (Some(audio), true) =
            (sample["audio"].as_str(), spec["type"] == "f32" && spec.get("tones").is_some())
        {
            json!({ "name": name, "type": "f32", "shape": spec["shape"], "audio": fetch_asset(audio)?,
                    "offset_s": sample["offset_s"], "audio_scale": held_out["audio_scale"] })
        } else {
            spec.clone()
        };
        inputs.push(input);
    }
    if !inputs.iter().any(|i| i.get("file").is_some() || i.get("text").is_some() || i.get("audio").is_some()) {
        bail!("{tag}: the sample {sample} fits none of the model's inputs");
    }
    Ok(Value::Array(inputs))
}
