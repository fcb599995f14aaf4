//! Running external tools with a readable failure.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context, Result, bail};

/// The repository root (xtask lives one level below it).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask has a parent directory")
}

/// Runs `cmd`, streaming its output; fails with the command line if it exits non-zero.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Runs `cmd` and captures its output; fails with the command's stderr if it exits non-zero.
pub fn capture(cmd: &mut Command) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed with {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// Whether `program` is on PATH.
pub fn exists(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Makes sure the Debian packages providing `programs` are installed (apt-get, as root), installing `packages`
/// if any program is missing.
pub fn ensure_debian_packages(programs: &[&str], packages: &[&str]) -> Result<()> {
    if programs.iter().all(|p| exists(p)) {
        return Ok(());
    }
    println!("installing {} (apt-get)", packages.join(" "));
    let install =
        format!("apt-get install -y -q {} || (apt-get update -q && apt-get install -y -q {0})", packages.join(" "));
    run(Command::new("sh").args(["-c", &install]).env("DEBIAN_FRONTEND", "noninteractive")).with_context(|| {
        format!("{} are needed (Debian: apt-get install {}, as root)", programs.join(", "), packages.join(" "))
    })?;
    Ok(())
}
