//! The libFuzzer targets in `core/fuzz` (cargo-fuzz): the nightly toolchain and cargo-fuzz are installed on first use
//! (rustup and crates.io), and the targets build into the cache so a fresh clone does not rebuild them from scratch.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{cache, cmd};

/// The targets, with what each needs to start (see `core/fuzz/fuzz_targets`).
pub const TARGETS: [&str; 3] = ["model_check", "input_validation", "model_load"];

fn cargo_bin(name: &str) -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo"));
    home.join("bin").join(name)
}

/// Installs nightly (minimal profile) and cargo-fuzz when missing.
pub fn ensure_tools() -> Result<()> {
    let has_nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_nightly {
        println!("installing the nightly toolchain (rustup, minimal profile) for libFuzzer");
        cmd::run(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
    }
    if !cargo_bin("cargo-fuzz").exists() {
        println!("installing cargo-fuzz (crates.io)");
        cmd::run(Command::new(env!("CARGO")).args(["install", "--locked", "cargo-fuzz"]))
            .context("cargo-fuzz is needed for the libFuzzer targets")?;
    }
    Ok(())
}

/// Runs one target for `seconds` from the seed corpus `seeds`; libFuzzer's findings land in `artifacts`.
pub fn run(target: &str, seconds: u64, seeds: &Path, artifacts: &Path, env: &[(&str, &Path)]) -> Result<String> {
    let fuzz_dir = cmd::repo_root().join("core/fuzz");
    let corpus = cache::dir().join("fuzz-corpus").join(target);
    std::fs::create_dir_all(&corpus)?;
    std::fs::create_dir_all(artifacts)?;
    let out = Command::new("rustup")
        .args(["run", "nightly"])
        .args(["cargo", "fuzz"])
        .arg("run")
        .arg("--fuzz-dir")
        .arg(&fuzz_dir)
        // Pure Rust over an uninstrumented ONNX Runtime: the fuzzers look for panics, aborts and hangs, and
        // libfuzzer-sys turns every panic (even one the engine catches) into an abort.
        .args(["--sanitizer", "none", target])
        .arg(&corpus)
        .arg(seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-rss_limit_mb=8192")
        .arg("-timeout=30")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .current_dir(&fuzz_dir)
        .env("CARGO_TARGET_DIR", cache::dir().join("fuzz-target"))
        .envs(env.iter().copied())
        .output()
        .context("running cargo fuzz")?;
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        bail!("libFuzzer target {target} failed:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    // libFuzzer's last status line: "#N DONE cov: ... exec/s: ..." or "Done N runs in S second(s)".
    let runs = text.lines().rev().find(|l| l.starts_with("Done ")).unwrap_or("").to_owned();
    Ok(runs)
}
