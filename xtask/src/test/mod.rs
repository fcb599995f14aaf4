//! `cargo xtask test`: every check, in the order a failure is cheapest to find, then one summary. It is the one
//! subcommand that runs others: each through its typed entry point (`bench::device_smoke`, `fuzz::smoke`,
//! `publish::local`, `size::run`, `targets::check`); nothing imports it. Its own parts, the Kotlin (JVM) and Swift test runs, live here.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Result, bail};

mod android;
mod examples;
mod kotlin;
mod swift;

use crate::devices::Device;
use crate::models::{self, llm};
use crate::{bench, bindgen, cache, cascades, cmd, fuzz, layout, size, targets};

#[derive(clap::Args)]
pub struct Args {
    /// Run only these parts (default: all): lint, rust, kotlin, android (the Android layer under Robolectric),
    /// swift, targets (check-targets + size),
    /// examples (publish --local, then the Kotlin and Swift example programs as the README runs them),
    /// device (qemu-arm64 outputs vs host), fuzz (a short `cargo xtask fuzz`).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

/// Counts from one language's test run.
#[derive(Debug, Clone)]
pub struct Suite {
    pub language: &'static str,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Suite {
    /// From `cargo test` output: the sum of every "test result:" line.
    fn from_cargo(text: &str) -> Suite {
        let mut suite = Suite { language: "Rust", passed: 0, failed: 0, skipped: 0 };
        for line in text.lines().filter(|l| l.starts_with("test result:")) {
            suite.passed += number_before(line, " passed");
            suite.failed += number_before(line, " failed");
            suite.skipped += number_before(line, " ignored");
        }
        suite
    }

    /// From XCTest output: the last "Executed N tests, with F failures" line (the "All tests" total).
    fn from_xctest(language: &'static str, text: &str, succeeded: bool) -> Suite {
        let line = text.lines().rev().find(|l| l.trim_start().starts_with("Executed ")).unwrap_or("");
        let total = line
            .trim_start()
            .strip_prefix("Executed ")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let failed = number_before(line, " failure").max(usize::from(!succeeded && total == 0));
        let skipped = number_before(line, " skipped");
        Suite { language, passed: total - failed.min(total) - skipped.min(total), failed, skipped }
    }
}

/// The tests written in the sources under `dir` with extension `ext`, as `count` finds them in each file: a
/// runner that silently skips one (JUnit a method returning a value, XCTest one it does not discover) runs fewer.
fn written_tests(dir: &Path, ext: &str, count: fn(&str) -> usize) -> Result<usize> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            total += written_tests(&path, ext, count)?;
        } else if path.extension().is_some_and(|e| e == ext) {
            total += count(&std::fs::read_to_string(&path)?);
        }
    }
    Ok(total)
}

/// The number just before `word` in `line` ("3 passed" -> 3), or 0.
fn number_before(line: &str, word: &str) -> usize {
    line.find(word)
        .and_then(|end| line[..end].rsplit(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The variables by which ONNX Runtime 1.31's telemetry client detects a CI machine and stays silent (each one
/// alone silences it; tried one by one against the Linux build).
const ORT_CI_MARKERS: [&str; 12] = [
    "CI",
    "TF_BUILD",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "CIRCLECI",
    "TRAVIS",
    "JENKINS_URL",
    "CODEBUILD_BUILD_ID",
    "BUILDKITE",
    "TEAMCITY_VERSION",
    "APPVEYOR",
    "BITBUCKET_BUILD_NUMBER",
];

fn step(name: &str) {
    println!("\n==> {name}");
}

pub fn run(args: Args) -> Result<()> {
    let wants = |part: &str| args.only.is_empty() || args.only.iter().any(|o| o == part);
    let started = Instant::now();
    // Every process this run starts inherits this mark, so what is left running afterwards can be told apart from
    // other runs' processes.
    let mark = format!("{RUN_MARK}={}", std::process::id());
    // SAFETY: set before this run starts any thread or process; nothing reads the environment concurrently.
    unsafe { std::env::set_var(RUN_MARK, std::process::id().to_string()) };
    // ONNX Runtime records no telemetry when it sees one of these (a CI machine), which would make the telemetry
    // tests pass without the SDK's switch: every test runs as on a developer's or a user's machine.
    for marker in ORT_CI_MARKERS {
        // SAFETY: as above, before any thread or process starts.
        unsafe { std::env::remove_var(marker) };
    }
    let root = cmd::repo_root();
    let cargo = env!("CARGO");

    if wants("lint") {
        step("cargo fmt --check");
        cmd::run(Command::new(cargo).current_dir(root).args(["fmt", "--all", "--check"]))?;
        step("cargo clippy (warnings are errors)");
        cmd::run(Command::new(cargo).current_dir(root).args([
            "clippy",
            "--quiet",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
        step("layout: no file over 600 lines, no import cycle, subcommands import helpers only");
        layout::check(root)?;
    }

    step("setup: ONNX Runtime and real models (cached)");
    let ort = cache::host_onnxruntime()?;
    for id in models::TEST_MODELS {
        models::fetch(id)?;
    }
    for id in models::TEST_BUNDLES {
        models::prepared_variants(id)?;
    }
    for id in llm::TEST_LLMS {
        llm::prepare(id)?;
    }
    // The OCR cascade pair and its labelled evaluation lines.
    let pair = cascades::pair::pair("ocr-rec")?;
    cascades::pair::files(&pair)?;
    cascades::lines::labelled(&pair, cascades::lines::Set::Evaluation)?;
    // The OpenVINO plugin, and the emulator that gives it an Intel CPU on other hosts (see core/tests/plugin_ep.rs).
    let openvino = cache::openvino_plugin()?;
    let old_ort = cache::old_onnxruntime()?;
    cmd::ensure_debian_packages(&["qemu-x86_64-static"], &["qemu-user-static"])?;
    let cascades = cascades::pair::dir(&pair).parent().expect("in the cascade folder").to_path_buf();
    let models = models::models_dir();
    let bundles = models::bundles_dir();
    let llms = llm::dir("");
    let data = root.join("core/tests/data");
    let env = [
        ("ORT_DYLIB_PATH", ort.as_path()),
        ("OPENAUTOGLM_MODELS", models.as_path()),
        ("OPENAUTOGLM_BUNDLES", bundles.as_path()),
        ("OPENAUTOGLM_LLMS", llms.as_path()),
        ("OPENAUTOGLM_CASCADES", cascades.as_path()),
        ("OPENAUTOGLM_TEST_DATA", data.as_path()),
        ("OPENAUTOGLM_OPENVINO_PLUGIN", openvino.as_path()),
        ("OPENAUTOGLM_OLD_ORT", old_ort.as_path()),
    ];

    let mut suites = Vec::new();
    if wants("rust") {
        step("Rust tests");
        let out = Command::new(cargo)
            .current_dir(root)
            .args(["test", "--workspace", "--all-features", "--color", "never"])
            .envs(env)
            .output()?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        print!("{}", text.lines().filter(|l| !l.ends_with("... ok")).collect::<Vec<_>>().join("\n"));
        println!();
        let suite = Suite::from_cargo(&text);
        if !out.status.success() {
            bail!("Rust tests failed: {suite:?}");
        }
        suites.push(suite);
    }
    if wants("kotlin") || wants("android") || wants("swift") {
        step("generate bindings (uniffi)");
        let generated = bindgen::generate()?;
        let lib_dir = generated.library.parent().expect("library directory");
        if wants("kotlin") {
            step("Kotlin tests (JVM, Maven)");
            suites.push(kotlin::test(lib_dir, &env)?);
        }
        if wants("android") {
            step("Android tests (the Android layer and the example app on Android 14's framework, Robolectric)");
            suites.push(android::test(lib_dir, &env)?);
        }
        if wants("swift") {
            step("Swift tests (swift test in the Debian trixie chroot)");
            suites.push(swift::test(&generated.library, &ort, &models)?);
        }
    }
    if wants("examples") {
        step("examples: publish --local, then the Kotlin (JVM) and Swift (Linux) programs as the README runs them");
        suites.push(examples::test(&ort)?);
    }
    if wants("targets") || wants("device") {
        let mut checks = Suite { language: "Targets", passed: 0, failed: 0, skipped: 0 };
        if wants("targets") {
            step("check-targets: staticlib for every Android and iOS target installable here");
            checks.passed += targets::check()?;
            step("size: stripped library per target against the budget");
            size::run()?;
            checks.passed += 1;
        }
        if wants("device") {
            step("qemu-arm64: cross-built runner on emulated ARM64, outputs vs host");
            for model in ["silero-vad", "tiny-matmul"] {
                bench::device_smoke(Device::QemuArm64, model)?;
                checks.passed += 1;
            }
            step("qemu-arm64: text generation with the tiny decoder, greedy tokens vs host");
            bench::generation_device_smoke(Device::QemuArm64, "smollm2-tiny")?;
            checks.passed += 1;
        }
        suites.push(checks);
    }
    if wants("fuzz") {
        step("fuzz: a short mutation run over real models and the libFuzzer targets (no crash, hang or panic)");
        fuzz::smoke()?;
        suites.push(Suite { language: "Fuzz", passed: 1, failed: 0, skipped: 0 });
    }
    // The test command leaves nothing running: the Kotlin compiler runs inside Maven (kotlin.compiler.daemon=false in
    // the poms), and a daemon that appears anyway is a regression.
    let left = kotlin_daemons_started_by(&mark);
    if !left.is_empty() {
        bail!("the Kotlin tests left a Kotlin compile daemon running (pid {left:?}): set kotlin.compiler.daemon=false");
    }
    summarize(&suites, started.elapsed().as_secs_f64())
}

/// The environment variable that marks the processes of one test run.
const RUN_MARK: &str = "OPENAUTOGLM_TEST_RUN";

/// The process ids of running Kotlin compile daemons whose environment holds `mark` (from /proc; none where there is
/// no /proc).
fn kotlin_daemons_started_by(mark: &str) -> Vec<u32> {
    let contains = |bytes: &[u8], part: &[u8]| bytes.windows(part.len()).any(|w| w == part);
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| contains(&c, b"KotlinCompileDaemon"))
                && std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|e| e.split(|&b| b == 0).any(|var| var == mark.as_bytes()))
        })
        .collect()
}

fn summarize(suites: &[Suite], seconds: f64) -> Result<()> {
    println!("\n{:<8} {:>7} {:>7} {:>8}", "language", "passed", "failed", "skipped");
    for s in suites {
        println!("{:<8} {:>7} {:>7} {:>8}", s.language, s.passed, s.failed, s.skipped);
    }
    let passed: usize = suites.iter().map(|s| s.passed).sum();
    let failed: usize = suites.iter().map(|s| s.failed).sum();
    let skipped: usize = suites.iter().map(|s| s.skipped).sum();
    println!("({seconds:.0} s)");
    println!("total: {passed} passed, {failed} failed, {skipped} skipped");
    if failed > 0 || skipped > 0 {
        bail!("{failed} failed and {skipped} skipped: a skipped test is not a passing one");
    }
    Ok(())
}

/// Environment shared by the Kotlin and Swift runs.
pub type TestEnv<'a> = [(&'static str, &'a Path); 8];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_counts_sum_every_result_line() {
        let text = "test result: ok. 7 passed; 0 failed; 2 ignored; 0 measured\nnoise\ntest result: FAILED. 3 passed; 1 failed; 0 ignored";
        let s = Suite::from_cargo(text);
        assert_eq!((s.passed, s.failed, s.skipped), (10, 1, 2));
    }

    #[test]
    fn xctest_counts_come_from_the_last_total() {
        let text = "\t Executed 1 test, with 0 failures (0 unexpected) in 0.1 seconds\n\t Executed 40 tests, with 2 failures (0 unexpected) in 0.5 seconds\n";
        let s = Suite::from_xctest("Swift", text, false);
        assert_eq!((s.passed, s.failed), (38, 2));
        // A run that printed no total but failed counts as a failure, never as a pass.
        let s = Suite::from_xctest("Swift", "error: build failed", false);
        assert_eq!((s.passed, s.failed), (0, 1));
    }
}
