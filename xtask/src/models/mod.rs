//! The real models of `benchmarks/models.json`: fetched from their registry packages, verified, cached.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use bench_schema::recipe::{ImageSpec, InputSource, RecipeInput, RecipeType};
use clap::Subcommand;
use serde::Deserialize;

use crate::cache::{self, PypiFile};
use crate::cmd;

pub mod held_out;
pub mod llm;
mod variants;
pub mod verdicts;

pub use variants::{bundles_dir, model_file, prepared_variants, record_latency, variant_accuracy, variants_dir};

#[derive(Subcommand)]
pub enum Action {
    /// Download and verify models (all of them when none is named), or assets by id (e.g. speech-front-center).
    Fetch { ids: Vec<String> },
    /// List the manifest.
    List,
    /// Make FP16, INT8 (dynamic and static QDQ) and ORT-format variants with ONNX Runtime's tools, and measure
    /// each one's accuracy against FP32 on the recipe input (all FP32 models when none is named). For an LLM
    /// (`smollm2`, `smollm2-tiny`): the ONNX decoder from its GGUF, its FP16/INT8/4-bit variants, each checked.
    Prepare { ids: Vec<String> },
    /// Judge every precision variant against FP32 on its model's test set, on each numerics class (the host, and
    /// ARM64 under qemu) through the SDK's runner; record the verdicts in the bundles and write them as JSON.
    Verdicts(verdicts::Args),
}

#[derive(Deserialize)]
pub struct Manifest {
    pub models: Vec<ModelEntry>,
    /// Real inputs (photos, ...) that input recipes refer to.
    #[serde(default)]
    pub assets: Vec<Asset>,
    /// What renders text lines and pages and speaks sentences for the held-out sets.
    #[serde(default)]
    pub renderers: Option<held_out::Renderers>,
}

/// A file inside a registry package, pinned like a model.
#[derive(Deserialize, Clone)]
pub struct Asset {
    pub id: String,
    pub package: Package,
    pub path: String,
    pub sha256: String,
}

#[derive(Deserialize, Clone)]
pub struct ModelEntry {
    pub id: String,
    pub title: String,
    pub precision: String,
    /// What the model does, which picks the accuracy measure for its variants (benchmarks/README.md).
    #[serde(default)]
    pub task: Option<String>,
    /// A real model: the registry package it ships in, its path inside, and its sha256.
    pub package: Option<Package>,
    pub path: Option<String>,
    pub sha256: Option<String>,
    /// Or a committed test fixture (repo-relative path), for measuring the SDK's own overhead.
    pub fixture: Option<String>,
    /// How to build each input for benchmarks and for variants' accuracy (the recipe runners are given).
    #[serde(default)]
    pub inputs: Vec<RecipeInput>,
    /// Real inputs in three disjoint sets: calibration, selection (the search's stopping rule) and test (verdicts).
    #[serde(default)]
    pub held_out: Option<held_out::HeldOut>,
}

#[derive(Deserialize, Clone, Debug)]
pub struct Package {
    /// `pypi`, `npm` or `debian`.
    pub registry: String,
    pub name: String,
    pub version: String,
    pub file: String,
    pub sha256: String,
    /// Wheel platform tag, for binary wheels.
    pub platform: Option<String>,
}

impl Package {
    /// The verified package file, downloaded with the registry's own client on first use.
    pub fn fetch(&self) -> Result<PathBuf> {
        match self.registry.as_str() {
            "pypi" => cache::pypi(PypiFile {
                name: &self.name,
                version: &self.version,
                file: &self.file,
                sha256: &self.sha256,
                platform: self.platform.as_deref(),
            }),
            "npm" => cache::npm(&self.name, &self.version, &self.file, &self.sha256),
            // Unpacked: a path inside is a path in this directory.
            "debian" => cache::debian(&self.name, &self.version, &self.sha256),
            other => bail!("{}: registry `{other}` is not supported", self.name),
        }
    }
}

pub fn manifest_path() -> PathBuf {
    cmd::repo_root().join("benchmarks/models.json")
}

pub fn manifest() -> Result<Manifest> {
    let text = fs::read_to_string(manifest_path())?;
    serde_json::from_str(&text).context("benchmarks/models.json is malformed")
}

pub fn entry(id: &str) -> Result<ModelEntry> {
    let manifest = manifest()?;
    let known: Vec<&str> = manifest.models.iter().map(|m| m.id.as_str()).collect();
    match manifest.models.iter().find(|m| m.id == id) {
        Some(m) => Ok(m.clone()),
        None => bail!("no model `{id}` in benchmarks/models.json (known: {known:?})"),
    }
}

/// The verified model file for `id`, downloading its package on first use.
pub fn fetch(id: &str) -> Result<PathBuf> {
    let entry = entry(id)?;
    if let Some(fixture) = &entry.fixture {
        return Ok(cmd::repo_root().join(fixture));
    }
    let (Some(pkg), Some(path), Some(sha256)) = (&entry.package, &entry.path, &entry.sha256) else {
        bail!("{id}: a manifest entry needs either `fixture` or `package`, `path` and `sha256`");
    };
    let dest = models_dir().join(format!("{id}.onnx"));
    if !(dest.exists() && &cache::sha256_file(&dest)? == sha256) {
        cache::extract(&pkg.fetch()?, path, &dest, Some(sha256))?;
    }
    Ok(dest)
}

/// The verified asset file for `id` (an image, ...), fetched from its package on first use.
pub fn fetch_asset(id: &str) -> Result<PathBuf> {
    let manifest = manifest()?;
    let asset =
        manifest.assets.iter().find(|a| a.id == id).with_context(|| format!("no asset `{id}` in the manifest"))?;
    let ext = Path::new(&asset.path).extension().and_then(|e| e.to_str()).unwrap_or("bin");
    let dest = cache::dir().join("assets").join(format!("{id}.{ext}"));
    if !(dest.exists() && cache::sha256_file(&dest)? == asset.sha256) {
        let package = asset.package.fetch()?;
        if package.is_dir() {
            let source = package.join(&asset.path);
            let got = cache::sha256_file(&source).with_context(|| format!("{id}: no {}", source.display()))?;
            if got != asset.sha256 {
                bail!("{id}: {} has sha256 {got}, expected {}", asset.path, asset.sha256);
            }
            fs::create_dir_all(dest.parent().expect("has a parent"))?;
            fs::copy(&source, &dest)?;
        } else {
            cache::extract(&package, &asset.path, &dest, Some(&asset.sha256))?;
        }
    }
    Ok(dest)
}

/// Writes `dir/recipe.json` for `model`: its input recipe, with image inputs turned into raw little-endian f32
/// files under `dir/inputs/` (decoded, resized and normalized here, once, so every runner on every device reads
/// the same bytes). File paths in the recipe are relative to the recipe.
pub fn materialize_recipe(model: &str, dir: &Path) -> Result<PathBuf> {
    let entry = entry(model)?;
    if entry.inputs.is_empty() {
        bail!("{model} has no input recipe in benchmarks/models.json");
    }
    let mut inputs = entry.inputs;
    for input in &mut inputs {
        if let InputSource::Image { image } = &input.source {
            let file = format!("inputs/{}.f32", file_stem(&input.name));
            fs::create_dir_all(dir.join("inputs"))?;
            fs::write(dir.join(&file), image_tensor(image, &input.shape)?)?;
            *input = RecipeInput {
                element_type: RecipeType::F32,
                comment: None,
                source: InputSource::File { file },
                ..input.clone()
            };
        }
    }
    let recipe = dir.join("recipe.json");
    fs::write(&recipe, serde_json::to_string(&inputs)?)?;
    Ok(recipe)
}

/// An input name as a file name.
pub(super) fn file_stem(name: &str) -> String {
    name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
}

/// An image input of `shape` as NCHW f32 bytes: cropped and resized to the recipe's H x W, then normalized.
pub(super) fn image_tensor(image: &ImageSpec, shape: &[i64]) -> Result<Vec<u8>> {
    let mut picture = image::open(fetch_asset(&image.asset)?)?;
    if let Some([l, t, r, b]) = image.crop {
        let (w, h) = (picture.width() as f64, picture.height() as f64);
        picture = picture.crop_imm((l * w) as u32, (t * h) as u32, ((r - l) * w) as u32, ((b - t) * h) as u32);
    }
    normalized(&picture, image, shape)
}

/// `picture` as an image input of `shape`: NCHW f32 bytes at its H x W, `(pixel * scale - mean) / std` per
/// channel, RGB (or BGR with `"bgr": true`, as PaddleOCR models expect).
pub(super) fn normalized(picture: &image::DynamicImage, image: &ImageSpec, shape: &[i64]) -> Result<Vec<u8>> {
    let &[1, 3, height, width] = shape else { bail!("image inputs need shape [1, 3, H, W], got {shape:?}") };
    let (width, height) = (u32::try_from(width)?, u32::try_from(height)?);
    let rgb = picture.resize_exact(width, height, image::imageops::FilterType::Triangle).to_rgb8();
    let scale = image.scale.unwrap_or(1.0 / 255.0) as f32;
    let (mean, std) = (image.mean.unwrap_or([0.0; 3]), image.std.unwrap_or([1.0; 3]));
    let order: [usize; 3] = if image.bgr.unwrap_or(false) { [2, 1, 0] } else { [0, 1, 2] };
    let mut out = Vec::with_capacity((3 * width * height * 4) as usize);
    for (c, &source) in order.iter().enumerate() {
        for pixel in rgb.pixels() {
            let value = (pixel[source] as f32 * scale - mean[c] as f32) / std[c] as f32;
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
    Ok(out)
}

/// The real models the tests use (fetched by `cargo xtask test` and `setup`; `models fetch` gets them all).
pub const TEST_MODELS: &[&str] = &["minilm-l6-int8", "silero-vad"];

/// Model bundles the tests load (made by `models prepare` when missing or stale): YOLOv8n has a variant that fails
/// its accuracy check, which the precision choice must respect.
pub const TEST_BUNDLES: &[&str] = &["yolov8n-320"];

/// Ids of the real models (those fetched from registry packages).
pub fn real_ids() -> Result<Vec<String>> {
    Ok(manifest()?.models.into_iter().filter(|m| m.package.is_some()).map(|m| m.id).collect())
}

pub fn models_dir() -> PathBuf {
    cache::dir().join("models")
}

pub fn run(action: Action) -> Result<()> {
    match action {
        Action::Fetch { ids } => {
            let ids = if ids.is_empty() { real_ids()? } else { ids };
            let assets = manifest()?.assets;
            for id in ids {
                // A model, or an asset (an image or a recording, e.g. `speech-front-center` for the examples).
                let path = if assets.iter().any(|a| a.id == id) { fetch_asset(&id)? } else { fetch(&id)? };
                println!("{id:<22} {} ({:.1} MB)", path.display(), fs::metadata(&path)?.len() as f64 / 1e6);
            }
        }
        Action::Prepare { ids } => {
            let ids = if ids.is_empty() {
                manifest()?
                    .models
                    .into_iter()
                    .filter(|m| m.package.is_some() && m.precision == "fp32")
                    .map(|m| m.id)
                    .collect()
            } else {
                ids
            };
            for id in ids {
                if llm::entry(&id)?.is_some() {
                    llm::prepare(&id)?;
                } else {
                    variants::prepare(&id)?;
                }
            }
        }
        Action::Verdicts(args) => verdicts::run(args)?,
        Action::List => {
            for m in manifest()?.models {
                let source = match (&m.package, &m.path, &m.fixture) {
                    (Some(p), Some(path), _) => format!("{}=={} : {path}", p.name, p.version),
                    (_, _, Some(fixture)) => fixture.clone(),
                    _ => "?".into(),
                };
                println!("{:<22} {:<6} {source}  {}", m.id, m.precision, m.title);
            }
            for m in llm::entries()? {
                let source = match (&m.package, &m.path, &m.tiny_of) {
                    (Some(p), Some(path), _) => format!("{}=={} : {path}", p.name, p.version),
                    (_, _, Some(of)) => format!("tiny twin of {of}"),
                    _ => "?".into(),
                };
                println!("{:<22} {:<6} {source}  {}", m.id, "llm", m.title);
            }
        }
    }
    Ok(())
}

pub fn regenerate_fixtures() -> Result<()> {
    let python = crate::python::python()?;
    for id in TEST_MODELS {
        fetch(id)?;
    }
    cmd::run(crate::python::script(&python, &cmd::repo_root().join("core/tests/data/generate.py")).arg(models_dir()))
}
