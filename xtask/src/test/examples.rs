//! The examples, built and run exactly as the README tells a user: `cargo xtask publish --local`, then the Kotlin
//! program with Maven against `ai.openautoglm:openautoglm-jvm` and the Swift program with `swift run` against the
//! package in ios/, both with no library or runtime environment variables. Both print the same numbers, because
//! both run the same model on the same input through the same engine.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::Suite;
use crate::swift_toolchain::{STAGE, Stage};
use crate::{cache, cmd, models, publish};

/// The model both examples run (the README's steps fetch it with `cargo xtask models fetch silero-vad`).
const MODEL: &str = "silero-vad";

/// The recording they run it on after a second of silence: "Front Center", spoken (Debian's alsa-utils), fetched by
/// `cargo xtask models fetch speech-front-center`.
const SPEECH: &str = "speech-front-center";

pub(super) fn test(ort: &Path) -> Result<Suite> {
    let mut suite = Suite { language: "Examples", passed: 0, failed: 0, skipped: 0 };
    let published = publish::local()?;
    let model = models::fetch(MODEL)?;
    let speech = models::fetch_asset(SPEECH)?;

    let kotlin = kotlin_jvm(&model, &speech)?;
    println!("{kotlin}");
    check("Kotlin (JVM)", &kotlin)?;
    // Run with no runtime variables: the jar's own ONNX Runtime, which must be the one every test runs.
    let tested = format!("runtime: ONNX Runtime {}", cache::ORT_VERSION);
    if !kotlin.lines().any(|l| l == tested) {
        bail!("the published jar did not run the tested ONNX Runtime ({tested}):\n{kotlin}");
    }
    suite.passed += 1;

    let stage = Stage::new(&published.swift_lib_dir.join("libopenautoglm_ffi.so"), ort, &models::models_dir())?;
    // The chroot sees the models folder; the recording goes beside the model there.
    fs::copy(&speech, models::models_dir().join(format!("{SPEECH}.wav")))?;
    let out = stage.sh_as_user(
        "examples/swift-linux",
        &format!(
            "swift build -c release --quiet 2>&1 && swift run -c release --skip-build VoiceActivity \
             {STAGE}/models/{MODEL}.onnx {STAGE}/models/{SPEECH}.wav 2>&1"
        ),
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
fn kotlin_jvm(model: &Path, speech: &Path) -> Result<String> {
    let dir = cmd::repo_root().join("examples/kotlin-jvm");
    let out = cmd::capture(
        Command::new("mvn")
            .current_dir(&dir)
            .args(["-B", "-q", "--no-transfer-progress", "-Dstyle.color=never", "compile", "exec:java"])
            .arg(format!("-Dexec.args={} {}", model.display(), speech.display()))
            .env_remove("LD_LIBRARY_PATH")
            .env_remove("ORT_DYLIB_PATH"),
    )
    .context("the Kotlin (JVM) example failed")?;
    // Maven's console still writes its reset code around the program's output.
    Ok(String::from_utf8_lossy(&out.stdout).replace("\u{1b}[0m", ""))
}

/// The example ran the model over every frame, and found speech in the recording and none in the silence.
fn check(what: &str, output: &str) -> Result<()> {
    let frames = output.lines().any(|l| l.starts_with("frames: ") && l.ends_with(" of 512 samples"));
    let (Some(silence), Some(speech)) = (frames_over(output, "silence"), frames_over(output, "speech")) else {
        bail!("the {what} example did not print its results:\n{output}");
    };
    if !frames || silence.0 != 0 || silence.1 != 31 {
        bail!("the {what} example found speech in silence:\n{output}");
    }
    // "Front Center" is about half of the recording; Silero VAD marks most of those frames.
    if speech.0 * 4 < speech.1 {
        bail!("the {what} example found too little speech in the recording:\n{output}");
    }
    Ok(())
}

/// From "speech probability, WHAT: 0.123 (N of M frames over 0.5)": (N, M).
fn frames_over(output: &str, what: &str) -> Option<(usize, usize)> {
    let line = output.lines().find(|l| l.starts_with(&format!("speech probability, {what}: ")))?;
    let inside = line.split('(').nth(1)?.strip_suffix(" frames over 0.5)")?;
    let (over, total) = inside.split_once(" of ")?;
    Some((over.parse().ok()?, total.parse().ok()?))
}

/// The printed probabilities, as text (both languages format them the same way).
fn results(output: &str) -> Vec<&str> {
    output.lines().filter(|l| l.starts_with("speech probability")).collect()
}
