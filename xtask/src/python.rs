//! The Python tools the project uses (fixture generation, the python-ort benchmark peer), pinned, in one venv in
//! the cache, made on first use.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;

use crate::{cache, cmd};

/// Pinned requirements; changing them makes a new venv (the name carries a hash of this list).
const REQUIREMENTS: &[&str] = &[
    "onnx==1.19.1",
    "numpy==2.4.6",
    "onnxruntime==1.31.1",
    // LLMs: reading GGUF, the 4-bit quantizer's IR, tokenizer and chat template for the checks, and the
    // onnxruntime-genai peer (it runs on the onnxruntime above).
    "gguf==0.19.0",
    "onnx-ir==1.1.0",
    "tokenizers==0.23.3",
    "minijinja==3.0.5",
    "onnxruntime-genai==0.18.0",
];

/// The venv's python, creating the venv if needed.
pub fn python() -> Result<PathBuf> {
    let tag: u32 = REQUIREMENTS.join(" ").bytes().fold(17u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    let venv = cache::dir().join(format!("venv-{tag:08x}"));
    let python = venv.join("bin/python");
    let ready = venv.join(".ready");
    if !ready.exists() {
        let spinner = cache::spinner(format!("creating the Python tools venv ({})", REQUIREMENTS.join(", ")));
        let made = cmd::capture(Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv)).and_then(|_| {
            cmd::capture(
                Command::new(&python)
                    .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
                    .args(REQUIREMENTS),
            )
        });
        spinner.finish_and_clear();
        made?;
        std::fs::write(&ready, REQUIREMENTS.join("\n"))?;
    }
    Ok(python)
}
