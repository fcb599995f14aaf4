//! An Intel CPU for the OpenVINO plugin, which offers devices only on Intel hardware (it checks the CPU vendor that
//! ONNX Runtime's device discovery reads with CPUID). On an Intel host, programs run as they are; elsewhere under
//! `qemu-x86_64 -cpu Skylake-Client`, an emulated Intel CPU whose instructions qemu's TCG implements (AVX2, no
//! AVX-512): the same x86-64 code of the SDK, ONNX Runtime, the plugin and OpenVINO, run by the emulator, so timings
//! there compare programs with each other, never with the host.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::cmd;

const QEMU: &str = "qemu-x86_64-static";
pub const CPU_MODEL: &str = "Skylake-Client";

/// Whether this machine's CPU is Intel's (the vendor `/proc/cpuinfo` reports).
pub fn host_is_intel() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| info.contains("GenuineIntel"))
}

/// What to put before a command so it runs on an Intel CPU: nothing on an Intel host, else the emulator (installed
/// from Debian's qemu-user-static if missing).
pub fn runner() -> Result<Vec<String>> {
    if host_is_intel() {
        return Ok(Vec::new());
    }
    cmd::ensure_debian_packages(&[QEMU], &["qemu-user-static"])?;
    Ok(vec![QEMU.into(), "-cpu".into(), CPU_MODEL.into()])
}

/// `program` run under `prefix` (what [`runner`] returned): the emulator with the program as its argument, or the
/// program itself when the prefix is empty.
pub fn command(prefix: &[String], program: &Path) -> std::process::Command {
    match prefix.split_first() {
        Some((emulator, args)) => {
            let mut command = std::process::Command::new(emulator);
            command.args(args).arg(program);
            command
        }
        None => std::process::Command::new(program),
    }
}

/// Whether programs run emulated here (their timings then compare with each other only).
pub fn emulated() -> bool {
    !host_is_intel()
}

/// A script named like `program`, in `dir`, that runs `program` on an Intel CPU with its arguments: for tools that
/// take a program path, not a command line (Maven Surefire's `jvm`, which must end in `java`).
pub fn wrapper(program: &Path, dir: &Path) -> Result<PathBuf> {
    let prefix = runner()?.join(" ");
    let script = dir.join(program.file_name().context("a program")?);
    std::fs::create_dir_all(dir)?;
    std::fs::write(&script, format!("#!/bin/sh\nexec {prefix} {} \"$@\"\n", program.display()))?;
    cmd::run(std::process::Command::new("chmod").arg("755").arg(&script))?;
    Ok(script)
}
