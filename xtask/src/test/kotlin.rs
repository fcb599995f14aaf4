//! Kotlin tests on the JVM: the Android module's sources plus the JVM variant of the bindings, compiled by
//! Maven's Kotlin plugin, run by Surefire against the host library (there is no Gradle or Android SDK here).

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::{Suite, TestEnv, written_tests};
use crate::cmd;

/// Maven and a JDK, which every Kotlin part needs.
pub(super) fn require_maven() -> Result<()> {
    if !cmd::exists("mvn") {
        bail!(
            "Maven (mvn) and a JDK 17+ are needed for the Kotlin tests: apt-get install maven openjdk-17-jdk-headless"
        );
    }
    Ok(())
}

pub(super) fn test(lib_dir: &Path, env: &TestEnv<'_>) -> Result<Suite> {
    require_maven()?;
    let android = cmd::repo_root().join("android");
    let reports = android.join("build/maven/surefire-reports");
    let _ = fs::remove_dir_all(&reports);
    // ONNX Runtime keeps its telemetry store under $XDG_CACHE_HOME: an empty one per run, which the telemetry test
    // checks stays without events.
    let telemetry_home = cmd::repo_root().join("target/telemetry-home");
    let _ = fs::remove_dir_all(&telemetry_home);
    fs::create_dir_all(&telemetry_home)?;
    let status = Command::new("mvn")
        .current_dir(&android)
        .args(["-B", "-q", "--no-transfer-progress", "-Dstyle.color=never", "test"])
        .envs(env.iter().copied())
        // JNA finds libopenautoglm_ffi through the loader path.
        .env("LD_LIBRARY_PATH", lib_dir)
        .env("XDG_CACHE_HOME", &telemetry_home)
        .status()
        .context("cannot run mvn")?;
    // PluginTest (kept out of the run above by the pom) in its own JVM on an Intel CPU, emulated on other hosts:
    // OpenVINO's plugin offers devices only there.
    let on_intel = if status.success() {
        let java = which_java()?;
        let jvm = crate::intel::wrapper(&java, &cmd::repo_root().join("target/intel-jvm/bin"))?;
        Command::new("mvn")
            .current_dir(&android)
            .args(["-B", "-q", "--no-transfer-progress", "-Dstyle.color=never", "surefire:test", "-Dtest=PluginTest"])
            .arg(format!("-Djvm={}", jvm.display()))
            .envs(env.iter().copied())
            .env("LD_LIBRARY_PATH", lib_dir)
            .env("XDG_CACHE_HOME", &telemetry_home)
            .status()
            .context("cannot run mvn")?
    } else {
        status
    };
    let suite = surefire_counts(&reports, "Kotlin")?;
    println!("Kotlin: {} passed, {} failed, {} skipped", suite.passed, suite.failed, suite.skipped);
    if !status.success() {
        bail!("Kotlin tests failed ({status})");
    }
    if !on_intel.success() {
        bail!("Kotlin PluginTest failed on the (emulated) Intel CPU ({on_intel})");
    }
    // JUnit silently ignores a test method that returns a value (`= runBlocking { ... }` ending in an expression):
    // every @Test written must have run.
    let written = written_tests(&android.join("src/test"), "kt", |source| source.matches("@Test").count())?;
    let ran = suite.passed + suite.failed + suite.skipped;
    if ran < written {
        bail!("{written} Kotlin @Test methods are written but JUnit ran {ran}: a test returning a value is not run");
    }
    Ok(suite)
}

/// The java Maven runs tests with: `$JAVA_HOME/bin/java`, else the one on PATH (links resolved: the emulator runs the
/// real binary).
fn which_java() -> Result<std::path::PathBuf> {
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        return Ok(Path::new(&home).join("bin/java"));
    }
    let path = cmd::capture(Command::new("sh").args(["-c", "command -v java"]))?;
    let found = String::from_utf8_lossy(&path.stdout).trim().to_owned();
    fs::canonicalize(&found).with_context(|| format!("no java on PATH ({found:?})"))
}

/// Sums the Surefire XML reports (`<testsuite tests= failures= errors= skipped=>`).
pub(super) fn surefire_counts(reports: &Path, language: &'static str) -> Result<Suite> {
    let mut suite = Suite { language, passed: 0, failed: 0, skipped: 0 };
    let entries = fs::read_dir(reports).with_context(|| format!("no Surefire reports in {}", reports.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "xml") {
            continue;
        }
        let xml = fs::read_to_string(&path)?;
        let head = xml.split("<testsuite").nth(1).and_then(|s| s.split('>').next()).unwrap_or("");
        let attr = |name: &str| -> usize {
            head.split(&format!(" {name}=\""))
                .nth(1)
                .and_then(|s| s.split('"').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        let (tests, failures, errors, skipped) = (attr("tests"), attr("failures"), attr("errors"), attr("skipped"));
        suite.failed += failures + errors;
        suite.skipped += skipped;
        suite.passed += tests.saturating_sub(failures + errors + skipped);
    }
    Ok(suite)
}
