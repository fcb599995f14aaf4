//! The benchmark runner (crate `openautoglm-bench`, benchmarks/runner), built in this one place for every device: this
//! machine for host benchmarks and the host reference, or a cross target for qemu, phones and simulators.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::{bindgen, cache, cmd};

/// Builds the runner (release) for `target` (`None`: this machine) with `env` (an NDK's linker for Android, the
/// iOS xcframework) and returns its path.
pub fn build(target: Option<&str>, env: &[(String, String)]) -> Result<PathBuf> {
    let what = target.map_or("this machine".to_owned(), str::to_owned);
    let spinner = cache::spinner(format!("building the benchmark runner (release) for {what}"));
    let mut cargo = Command::new(env!("CARGO"));
    cargo.current_dir(cmd::repo_root()).args([
        "build",
        "--release",
        "-p",
        "openautoglm-bench",
        "--bin",
        "openautoglm-bench",
    ]);
    if let Some(triple) = target {
        cargo.args(["--target", triple]);
    }
    let built = cmd::capture(cargo.envs(env.iter().map(|(k, v)| (k, v))));
    spinner.finish_and_clear();
    built?;
    let dir = match target {
        Some(triple) => bindgen::target_dir().join(triple),
        None => bindgen::target_dir(),
    };
    Ok(dir.join("release/openautoglm-bench"))
}

/// Runs the benchmark runner (`command`), its `progress DONE TOTAL` lines drawn as a bar labelled `what`.
pub fn run_with_progress(command: &mut Command, what: &str) -> Result<()> {
    use std::io::{BufRead, BufReader};
    let bar = indicatif::ProgressBar::new(1).with_style(
        indicatif::ProgressStyle::with_template(&format!("{what} [{{bar:40}}] {{pos}}/{{len}} {{elapsed}}"))
            .expect("template")
            .progress_chars("=> "),
    );
    let mut child = command.stdout(std::process::Stdio::piped()).spawn().context("cannot run the benchmark runner")?;
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        if let Some((done, total)) = line?.strip_prefix("progress ").and_then(|p| p.split_once(' ')) {
            bar.set_length(total.parse().unwrap_or(1));
            bar.set_position(done.parse().unwrap_or(0));
        }
    }
    bar.finish_and_clear();
    if !child.wait()?.success() {
        anyhow::bail!("the benchmark runner failed ({what})");
    }
    Ok(())
}

/// What the runner itself said about a failure (its last `openautoglm-bench: ` line, without the prefix) in the text
/// of an error that carries its stderr, else the text's first line; at most 300 characters, for tables and results.
pub fn message(error: &str) -> String {
    let said = error.lines().rev().find_map(|l| l.trim().strip_prefix("openautoglm-bench: "));
    said.or_else(|| error.lines().next()).unwrap_or_default().trim().chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_runners_own_line_wins() {
        let error = "the Rust benchmark runner failed\nopenautoglm-bench: first\nopenautoglm-bench: cannot load x";
        assert_eq!(super::message(error), "cannot load x");
        assert_eq!(super::message("python said no\nmore"), "python said no");
    }
}
