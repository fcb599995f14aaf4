//! `benchmarks/cascades.json`: cascade pairs, their models and label files cut from registry packages, and the
//! recipe of their labelled inputs.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::cache;
use crate::cmd;
use crate::models::Package;

#[derive(Deserialize)]
struct Pairs {
    pairs: Vec<Pair>,
}

#[derive(Deserialize, Clone)]
pub struct Pair {
    pub id: String,
    pub title: String,
    pub package: Package,
    /// The file inside the package that holds the models.
    pub path: String,
    pub fast: Stage,
    pub main: Stage,
    pub gate: Gate,
    pub lines: LineRecipe,
}

#[derive(Deserialize, Clone)]
pub struct Stage {
    pub model: Cut,
    pub labels: Cut,
}

/// Bytes `offset..offset + len` of the package's file, pinned by their own sha256.
#[derive(Deserialize, Clone)]
pub struct Cut {
    pub offset: u64,
    pub len: u64,
    pub sha256: String,
}

#[derive(Deserialize, Clone)]
pub struct Gate {
    pub confidence: openautoglm::cascade::Confidence,
    pub output: String,
}

#[derive(Deserialize, Clone)]
pub struct LineRecipe {
    pub fonts: Vec<Package>,
    pub calibration: usize,
    pub evaluation: usize,
    pub height: u32,
    pub width: u32,
}

pub fn pair(id: &str) -> Result<Pair> {
    let path = cmd::repo_root().join("benchmarks/cascades.json");
    let pairs: Pairs = serde_json::from_str(&fs::read_to_string(&path)?).context("benchmarks/cascades.json")?;
    let known: Vec<String> = pairs.pairs.iter().map(|p| p.id.clone()).collect();
    pairs.pairs.into_iter().find(|p| p.id == id).with_context(|| format!("no cascade pair `{id}` (known: {known:?})"))
}

/// The pair's working directory in the cache: its models, labels, labelled lines and calibrated manifest.
pub fn dir(pair: &Pair) -> PathBuf {
    cache::dir().join("cascade").join(&pair.id)
}

/// The pair's four files (fast model and labels, main model and labels), cut out of the package and verified.
pub struct Files {
    pub fast_model: PathBuf,
    pub fast_labels: PathBuf,
    pub main_model: PathBuf,
    pub main_labels: PathBuf,
}

pub fn files(pair: &Pair) -> Result<Files> {
    let dir = dir(pair);
    let wanted = [
        ("fast.onnx", &pair.fast.model),
        ("fast_labels.json", &pair.fast.labels),
        ("main.onnx", &pair.main.model),
        ("main_labels.json", &pair.main.labels),
    ];
    let ok = |name: &str, cut: &Cut| cache::sha256_file(&dir.join(name)).is_ok_and(|s| s == cut.sha256);
    if !wanted.iter().all(|(name, cut)| ok(name, cut)) {
        fs::create_dir_all(&dir)?;
        let whole = dir.join("package-file.bin");
        cache::extract(&pair.package.fetch()?, &pair.path, &whole, None)?;
        let bytes = fs::read(&whole)?;
        for (name, cut) in wanted {
            let (from, to) = (cut.offset as usize, (cut.offset + cut.len) as usize);
            let piece =
                bytes.get(from..to).with_context(|| format!("{}: {} is shorter than the cut", pair.id, pair.path))?;
            let got = cache::sha256_bytes(piece);
            if got != cut.sha256 {
                bail!("{}: bytes {from}..{to} of {} have sha256 {got}, expected {}", pair.id, pair.path, cut.sha256);
            }
            fs::write(dir.join(name), piece)?;
        }
        fs::remove_file(&whole).ok();
    }
    Ok(Files {
        fast_model: dir.join("fast.onnx"),
        fast_labels: dir.join("fast_labels.json"),
        main_model: dir.join("main.onnx"),
        main_labels: dir.join("main_labels.json"),
    })
}
