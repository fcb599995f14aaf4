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
use bench_schema::recipe::{ImageSpec, InputSource, RecipeInput, RecipeType};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde::{Deserialize, Serialize};

use super::{Package, entry, fetch_asset, file_stem, image_tensor, manifest, normalized};
use crate::cache::{self, PypiFile};
use crate::text_render;

/// The three sets, in the order the maker uses them.
pub const SETS: [&str; 3] = ["calibration", "selection", "test"];

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct HeldOut {
    /// An asset (tokenizer.json) that turns `text` samples into ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<String>,
    /// Audio samples are scaled by this (1.0: [-1, 1]; 32767: 16-bit scale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_scale: Option<f64>,
    /// Models (ids, FP32) that turn audio into this model's input, in order: openWakeWord's melspectrogram for its
    /// embedding; melspectrogram and embedding for a wake-word classifier. held_out.py runs them on the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Sample {
    /// An image asset, optionally cropped (fractions: left, top, right, bottom).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crop: Option<[f64; 4]>,
    /// A sentence, tokenized with the set's tokenizer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A recording asset (WAV), cut at `offset_s`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset_s: Option<f64>,
    /// A sentence spoken by espeak-ng with `voice`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speech: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    /// A text line rendered with font number `font`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
    /// A page of text rows rendered with font number `font`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub font: Option<usize>,
    /// Where the sample comes from, when that is more than its asset or text (a verse, a passage).
    #[serde(skip_serializing_if = "Option::is_none")]
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
    if entry.inputs.is_empty() {
        bail!("{model} has no input recipe in benchmarks/models.json");
    }
    let tokenizer = held_out.tokenizer.as_deref().map(fetch_asset).transpose()?;
    let mut made = Making {
        recipe: &entry.inputs,
        dir,
        tokenizer,
        held_out: &held_out,
        fonts: None,
        espeak: None,
        front_end: None,
    };
    let mut sets: BTreeMap<&str, Vec<Vec<SampleInput>>> = BTreeMap::new();
    for set in SETS {
        let mut samples = Vec::new();
        for (i, sample) in held_out.set(set).iter().enumerate() {
            samples.push(made.sample_inputs(sample, &format!("{set}-{i}"))?);
        }
        sets.insert(set, samples);
    }
    let path = dir.join("held_out.json");
    fs::write(&path, serde_json::to_string(&sets)?)?;
    Ok(Some(path))
}

/// One input of a held-out sample as tools/models/held_out.py reads it: a recipe input (the recipe's own, or a
/// picture made into a file here), or one held_out.py makes from a sentence (tokenized), a recording or a spoken
/// sentence (cut to the window, and through the front end).
#[derive(Serialize)]
#[serde(untagged)]
enum SampleInput {
    Recipe(RecipeInput),
    Text {
        #[serde(flatten)]
        slot: Slot,
        text: String,
        tokenizer: PathBuf,
    },
    Audio {
        #[serde(flatten)]
        slot: Slot,
        audio: PathBuf,
        #[serde(flatten)]
        sound: Sound,
    },
    Speech {
        #[serde(flatten)]
        slot: Slot,
        speech: String,
        voice: String,
        espeak: PathBuf,
        #[serde(flatten)]
        sound: Sound,
    },
}

impl SampleInput {
    /// Whether the sample, not the recipe, gave this input.
    fn given_by_sample(&self) -> bool {
        !matches!(self, SampleInput::Recipe(input) if !matches!(input.source, InputSource::File { .. }))
    }
}

/// Which model input a made input fills.
#[derive(Serialize)]
struct Slot {
    name: String,
    #[serde(rename = "type")]
    element_type: RecipeType,
    shape: Vec<i64>,
}

/// Where a sound starts, how it is scaled, and the models that turn it into this model's input.
#[derive(Serialize)]
struct Sound {
    offset_s: Option<f64>,
    audio_scale: Option<f64>,
    front_end: Vec<PathBuf>,
}

struct Making<'a> {
    recipe: &'a [RecipeInput],
    dir: &'a Path,
    tokenizer: Option<PathBuf>,
    held_out: &'a HeldOut,
    fonts: Option<Vec<ab_glyph::FontVec>>,
    espeak: Option<PathBuf>,
    front_end: Option<Vec<PathBuf>>,
}

impl Making<'_> {
    /// One sample: the recipe's inputs with the image, text or audio of `sample` in place of the recipe's own.
    fn sample_inputs(&mut self, sample: &Sample, tag: &str) -> Result<Vec<SampleInput>> {
        let mut inputs = Vec::new();
        for spec in self.recipe {
            let slot = || Slot { name: spec.name.clone(), element_type: spec.element_type, shape: spec.shape.clone() };
            let is_audio = spec.element_type == RecipeType::F32 && matches!(spec.source, InputSource::Tones { .. });
            let is_picture = sample.image.is_some() || sample.line.is_some() || sample.page.is_some();
            let input = match &spec.source {
                InputSource::Image { .. } if is_picture => {
                    let bytes = self.picture_input(spec, sample)?;
                    let file = format!("held_out/{tag}-{}.f32", file_stem(&spec.name));
                    fs::create_dir_all(self.dir.join("held_out"))?;
                    fs::write(self.dir.join(&file), bytes)?;
                    SampleInput::Recipe(RecipeInput {
                        element_type: RecipeType::F32,
                        comment: None,
                        source: InputSource::File { file },
                        ..spec.clone()
                    })
                }
                _ if sample.text.is_some() => SampleInput::Text {
                    slot: slot(),
                    text: sample.text.clone().expect("checked"),
                    tokenizer: self.tokenizer.clone().context("text samples need a `tokenizer` asset")?,
                },
                _ if is_audio && sample.audio.is_some() => SampleInput::Audio {
                    slot: slot(),
                    audio: fetch_asset(sample.audio.as_deref().expect("checked"))?,
                    sound: self.sound(sample)?,
                },
                _ if is_audio && sample.speech.is_some() => SampleInput::Speech {
                    slot: slot(),
                    speech: sample.speech.clone().expect("checked"),
                    voice: sample.voice.clone().unwrap_or_else(|| "en-us".into()),
                    espeak: self.espeak()?,
                    sound: self.sound(sample)?,
                },
                _ => SampleInput::Recipe(spec.clone()),
            };
            inputs.push(input);
        }
        if !inputs.iter().any(SampleInput::given_by_sample) {
            bail!("{tag}: the sample {sample:?} fits none of the model's inputs");
        }
        Ok(inputs)
    }

    fn sound(&mut self, sample: &Sample) -> Result<Sound> {
        Ok(Sound { offset_s: sample.offset_s, audio_scale: self.held_out.audio_scale, front_end: self.front_end()? })
    }

    /// An image, a rendered line or a rendered page, as the recipe's image input.
    fn picture_input(&mut self, spec: &RecipeInput, sample: &Sample) -> Result<Vec<u8>> {
        let InputSource::Image { image: recipe_image } = &spec.source else { bail!("{} is no picture", spec.name) };
        if let Some(image) = &sample.image {
            let image = ImageSpec { asset: image.clone(), crop: sample.crop, ..recipe_image.clone() };
            return image_tensor(&image, &spec.shape);
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
        normalized(&image::DynamicImage::ImageLuma8(gray), recipe_image, &spec.shape)
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
