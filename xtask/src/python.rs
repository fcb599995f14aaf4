//! The Python tools (tools/models: model variants, LLM decoders, fixtures) and the Python peers
//! (benchmarks/peers), run in one venv in the cache with the pins of tools/models/requirements.txt, made on first
//! use. Every script runs with tools/models on PYTHONPATH, so shared modules (the input recipe) import normally.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::{cache, cmd};

/// The pinned requirements; the venv's name carries a hash of them, so changing a pin makes a new venv.
fn requirements() -> Result<Vec<String>> {
    let path = tools_dir().join("requirements.txt");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// tools/models: the model-making scripts and the modules they share with the peers.
pub fn tools_dir() -> PathBuf {
    cmd::repo_root().join("tools/models")
}

/// The venv's python, creating the venv if needed.
pub fn python() -> Result<PathBuf> {
    let requirements = requirements()?;
    let tag: u32 = requirements.join(" ").bytes().fold(17u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    let venv = cache::dir().join(format!("venv-{tag:08x}"));
    let python = venv.join("bin/python");
    let ready = venv.join(".ready");
    if !ready.exists() {
        let spinner = cache::spinner(format!("creating the Python tools venv ({})", requirements.join(", ")));
        let made = cmd::capture(Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv)).and_then(|_| {
            cmd::capture(
                Command::new(&python)
                    .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
                    .args(&requirements),
            )
        });
        spinner.finish_and_clear();
        made?;
        std::fs::write(&ready, requirements.join("\n"))?;
    }
    Ok(python)
}

/// A command that runs `script` in the venv with tools/models on PYTHONPATH.
pub fn script(python: &Path, script: &Path) -> Command {
    let mut command = Command::new(python);
    // Microsoft's ONNX Runtime wheel records usage telemetry unless told not to, as the SDK itself tells it.
    command.arg(script).env("PYTHONPATH", tools_dir()).env("ORT_DISABLE_TELEMETRY", "1");
    command
}
