//! The examples, built and run exactly as the README tells a user: `cargo xtask publish --local`, then the Kotlin
//! program with Maven against `ai.openautoglm:openautoglm-jvm` and the Swift program with `swift run` against the
//! package in ios/, both with no library or runtime environment variables. Both print the same numbers, because
//! both run the same model on the same input through the same engine.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::Suite;
use crate::swift_toolchain::{STAGE, Stage};
use crate::{cmd, models, publish};

/// The model both examples run (the README's steps fetch it with `cargo xtask models fetch silero-vad`).
const MODEL: &str = "silero-vad";

pub(super) fn test(ort: &Path) -> Result<Suite> {
    let mut suite = Suite { language: "Examples", passed: 0, failed: 0, skipped: 0 };
    let published = publish::local()?;
    let model = models::fetch(MODEL)?;

    let kotlin = kotlin_jvm(&model)?;
    println!("{kotlin}");
    check("Kotlin (JVM)", &kotlin)?;
    suite.passed += 1;

    let stage = Stage::new(&published.swift_lib_dir.join("libopenautoglm_ffi.so"), ort, &models::models_dir())?;
    let out = stage.sh_as_user(
        "examples/swift-linux",
        &format!("swift build -c release --quiet 2>&1 && swift run -c release --skip-build VoiceActivity {STAGE}/models/{MODEL}.onnx 2>&1"),
    )?;
    let swift = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{swift}");
    if !out.status.success() {
        bail!("the Swift example failed ({})", out.status);
    }
    check("Swift (Linux)", &swift)?;
    suite.passed += 1;

    if results(&kotlin) != results(&swift) {
        bail!("the Kotlin and Swift examples printed different results:\n{kotlin}\n{swift}");
    }
    suite.passed += 1;
    Ok(suite)
}

/// `mvn -q compile exec:java` in examples/kotlin-jvm, with the loader variables a developer might have unset.
fn kotlin_jvm(model: &Path) -> Result<String> {
    let dir = cmd::repo_root().join("examples/kotlin-jvm");
    let out = cmd::capture(
        Command::new("mvn")
            .current_dir(&dir)
            .args(["-B", "-q", "--no-transfer-progress", "-Dstyle.color=never", "compile", "exec:java"])
            .arg(format!("-Dexec.args={}", model.display()))
            .env_remove("LD_LIBRARY_PATH")
            .env_remove("ORT_DYLIB_PATH"),
    )
    .context("the Kotlin (JVM) example failed")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The example ran the model over every frame and printed both probabilities.
fn check(what: &str, output: &str) -> Result<()> {
    let frames = output.lines().any(|l| l.starts_with("frames: 62 of 512 samples"));
    if !frames || results(output).len() != 2 {
        bail!("the {what} example did not print its results:\n{output}");
    }
    Ok(())
}

/// The printed probabilities, as text (both languages format them the same way).
fn results(output: &str) -> Vec<&str> {
    output.lines().filter(|l| l.starts_with("speech probability")).collect()
}
